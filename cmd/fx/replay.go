package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/modelforensics/fx"
	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/replay"
	"github.com/modelforensics/fx/transformer"
)

// cmdReplay re-runs a bundle's incident and proves it equal to the
// recording, then applies interventions.
func cmdReplay(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	modelFlag := fs.String("model", "", "model to replay on (default: the one the manifest names)")
	allowMismatch := fs.Bool("allow-model-mismatch", false, "replay on model files that differ from the recorded ones (sha256), reporting the difference")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (bundle limits)")
	asJSON := fs.Bool("json", false, "print JSON")
	var intervene listFlag
	fs.Var(&intervene, "intervene", "SITE=MODE[:ARG] applied in a second run whose outcome is reported beside the recorded one (repeatable; modes as in fx run)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx replay BUNDLE [--intervene SITE=MODE ...] [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one BUNDLE argument, got %d", len(pos))
	}
	cfg, err := configs.Load(*config)
	if err != nil {
		return usageError{err}
	}
	b, err := openBundle(pos[0], cfg)
	if err != nil {
		return err
	}
	name := *modelFlag
	if name == "" {
		name = b.Manifest.Model.Name
		if name == fx.DefaultModelName {
			name = ""
		}
	}
	be, err := backend(*device)
	if err != nil {
		return err
	}
	m, err := loadModel(name, be)
	if err != nil {
		if *modelFlag == "" {
			return usagef("the recorded model %s: %w (pass --model DIR)", b.Manifest.Model.Name, err)
		}
		return err
	}
	defer m.Close()
	id, err := identifyModel(name, m)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var ivs []transformer.Intervention
	for _, text := range intervene {
		parsed, err := parseIntervention(ctx, m, text)
		if err != nil {
			return err
		}
		ivs = append(ivs, parsed...)
	}
	rep, err := replay.Replay(ctx, b, m, replay.Options{Model: id, AllowModelMismatch: *allowMismatch, Interventions: ivs})
	if err != nil {
		if errors.Is(err, transformer.ErrBadInput) || errors.Is(err, transformer.ErrBadSite) {
			return usageError{err}
		}
		return err
	}
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if !rep.Match {
		what := "the replay differs from the recording"
		if d := rep.FirstDivergence; d != nil {
			what += ": first divergence at " + d.String()
		} else if s := rep.Steps.FirstMismatch; s != nil {
			what += fmt.Sprintf(": step %d %s", s.Step, s.Field)
		}
		return errors.New(what)
	}
	return nil
}

// printReport prints a replay report for a terminal.
func printReport(w io.Writer, r *replay.Report) {
	fmt.Fprintf(w, "replay       %s\n", r.Bundle)
	if len(r.ModelMismatch) > 0 {
		fmt.Fprintf(w, "model        DIFFERS from the recording (allowed): %s\n", strings.Join(r.ModelMismatch, "; "))
	} else {
		fmt.Fprintln(w, "model        config, weights and tokenizer match the recording (sha256)")
	}
	if r.BackendNote != "" {
		fmt.Fprintf(w, "backend      %s\n", r.BackendNote)
	}
	same := map[bool]string{true: "identical", false: "DIFFER"}
	fmt.Fprintf(w, "tokens       %d recorded, %d replayed: %s\n", len(r.RecordedTokens), len(r.ReplayedTokens), same[r.TokensMatch])
	if s := r.Steps.FirstMismatch; s != nil {
		fmt.Fprintf(w, "steps        step %d: %s recorded %s, replayed %s\n", s.Step, s.Field, s.Recorded, s.Replayed)
	} else if r.Steps.Recorded > 0 {
		fmt.Fprintf(w, "steps        %d: token, KV-cache length, sampler RNG state and KV-cache sketch identical\n", r.Steps.Recorded)
	}
	a := r.Activations
	verdict := "bit for bit"
	if !a.BitForBit {
		verdict = "DIVERGED"
	}
	fmt.Fprintf(w, "activations  %d hooks, %d hook×position sketches, %d stored activations: %s\n", a.Hooks, a.Sketches, a.Stored, verdict)
	if d := r.FirstDivergence; d != nil {
		fmt.Fprintf(w, "divergence   first at %s\n", d)
	}
	if c := r.Calls; c.Harness {
		fmt.Fprintf(w, "calls        %d recorded, %d served to the harness\n", c.Recorded, c.Served)
		if len(c.Unused) > 0 {
			fmt.Fprintf(w, "             never made: %s\n", strings.Join(c.Unused, ", "))
		}
		if c.PromptDiffers != "" {
			fmt.Fprintf(w, "             %s\n", c.PromptDiffers)
		}
	} else if c.Recorded > 0 {
		fmt.Fprintf(w, "calls        %d recorded (served to a harness by the Go API; fx replay re-runs the recorded input)\n", c.Recorded)
	}
	fmt.Fprintf(w, "outcome      recorded: %s\n             replayed: %s\n", outcomeString(r.RecordedOutcome), outcomeString(r.ReplayedOutcome))
	if iv := r.Intervened; iv != nil {
		fmt.Fprintf(w, "intervened   %s\n", strings.Join(iv.Interventions, " "))
		fmt.Fprintf(w, "  output     %q\n  recorded   %q\n", iv.OutputText, iv.RecordedText)
		flip := ""
		if iv.Flipped {
			flip = " (FLIPPED)"
		}
		fmt.Fprintf(w, "  outcome    %s%s\n  recorded   %s\n", outcomeString(iv.Outcome), flip, outcomeString(iv.RecordedOutcome))
		if d := iv.FirstChange; d != nil {
			fmt.Fprintf(w, "  first change  %s\n", d)
		} else {
			fmt.Fprintln(w, "  first change  none: the interventions changed no recorded activation")
		}
	}
}
