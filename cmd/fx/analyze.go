package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/modelforensics/fx"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

// cmdAnalyze is "fx analyze STAGE BUNDLE ...", one stage of the analysis
// of an incident bundle (cf: Compression Forensics), or "fx analyze BUNDLE",
// the whole pipeline (analyzePipeline: CF, then CCA, then a certificate).
func cmdAnalyze(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: fx analyze BUNDLE [--baseline F.fxbase] --out report/ [flags]   CF → CCA → report/certificate.json")
		fmt.Fprintln(stderr, "       fx analyze cf BUNDLE --baseline F.fxbase [--json] [--png F] [--svg F] [flags]")
		fmt.Fprintln(stderr, "  cf   rank the bundle's layers and positions by how anomalous their activations are")
		fmt.Fprintln(stderr, "       against a baseline of benign runs (compressibility, norms, projections)")
	}
	if len(args) == 0 {
		usage()
		return usagef("want a BUNDLE, or a stage and a BUNDLE (cf)")
	}
	switch args[0] {
	case "cf":
		return analyzeCF(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage()
		return flag.ErrHelp
	}
	// Not a stage: the whole pipeline, fx analyze BUNDLE (CF → CCA → certificate).
	return analyzePipeline(args, stdin, stdout, stderr)
}

// analyzeCF is "fx analyze cf BUNDLE --baseline F".
func analyzeCF(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze cf", stderr)
	baseline := fs.String("baseline", "", "baseline of the bundle's model (.fxbase, made by fx baseline)")
	asJSON := fs.Bool("json", false, "print the report as JSON (every score)")
	png := fs.String("png", "", "write a chart of the scores by layer as PNG")
	svg := fs.String("svg", "", "write a chart of the scores by layer as SVG")
	signals := fs.String("signals", "", "signals to combine, comma-separated: compression, norm, projection (default: the config's cf.signals, all three)")
	replayFlag := fs.Bool("replay", false, "replay on the model the activations cf.values names that the bundle does not store (a minimal bundle always is)")
	noReplay := fs.Bool("no-replay", false, "never replay: score only what the bundle holds (a minimal bundle: its sketches)")
	modelFlag := fs.String("model", "", "model to replay on (default: the one the manifest names)")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cf section, bundle limits)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx analyze BUNDLE [--baseline F.fxbase] --out report/ [flags]   CF → CCA → report/certificate.json")
		fmt.Fprintln(stderr, "       fx analyze cf BUNDLE --baseline F.fxbase [--json] [--png F] [--svg F] [flags]")
		fmt.Fprintln(stderr, "A layer or full bundle is analysed alone; a minimal bundle's activations are replayed on its model.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one BUNDLE argument, got %d", len(pos))
	}
	if *baseline == "" {
		return usageError{errNoBaseline}
	}
	if *replayFlag && *noReplay {
		return usagef("--replay and --no-replay contradict each other")
	}
	cfg, rc, err := loadCFConfig(*config)
	if err != nil {
		return err
	}
	if *signals != "" {
		cfg.Signals = strings.Split(*signals, ",")
		if err := cfg.Validate(); err != nil {
			return usagef("--signals %q: %w", *signals, err)
		}
	}
	b, err := openBundle(pos[0], rc)
	if err != nil {
		return err
	}
	base, err := cf.ReadBaseline(*baseline)
	if err != nil {
		return usagef("--baseline: %w", err)
	}
	man := b.Manifest
	if diff := recorder.ModelMismatch(base.Model, man.Model); len(diff) > 0 {
		return usagef("--baseline %s was made on another model than the bundle's: %s", *baseline, strings.Join(diff, "; "))
	}
	replay := *replayFlag || (man.Record.Level == bundle.LevelMinimal && !*noReplay)
	values := cfg.Values
	if !replay {
		values = storedValues(man, cfg.Values)
	}
	ctx := context.Background()
	var m *transformer.Model
	if replay {
		if m, err = replayModel(b, *modelFlag, *device); err != nil {
			return err
		}
		defer m.Close()
	}
	run, src, err := cf.BundleRun(ctx, b, m, values)
	if err != nil {
		if errors.Is(err, cf.ErrReplayMismatch) {
			return fmt.Errorf("%w; check the bundle with fx replay", err)
		}
		return err
	}
	run.Tokens = runTokens(b)
	rep, err := cf.Analyze(run, base, cfg)
	if err != nil {
		return err
	}
	rep.Bundle, rep.Level, rep.Source = b.Dir, man.Record.Level, src
	if !replay && man.Record.Level != bundle.LevelFull {
		rep.Notes = append(rep.Notes, fmt.Sprintf("level %s: compression of the %d hooks the bundle stores only; --replay adds the rest of cf.values",
			man.Record.Level, len(values)))
	}
	for _, c := range []struct{ flag, path string }{{"--png", *png}, {"--svg", *svg}} {
		if c.path == "" {
			continue
		}
		if err := rep.WriteChart(c.path); err != nil {
			return fmt.Errorf("%s: %w", c.flag, err)
		}
	}
	if *asJSON {
		return writeJSON(stdout, rep)
	}
	fmt.Fprint(stdout, rep.Text())
	return nil
}

// storedValues returns the hooks of values that the bundle stores.
func storedValues(man *bundle.Manifest, values []string) []string {
	out := []string{}
	for _, name := range cf.NeededHooks(man, values) {
		if h, _ := man.Hook(name); h.Stored {
			out = append(out, name)
		}
	}
	return out
}

// replayModel loads the model to replay a bundle on (--model, else the
// manifest's) and checks that its files are the recorded ones.
func replayModel(b *bundle.Bundle, modelFlag, device string) (*transformer.Model, error) {
	name := modelFlag
	if name == "" {
		name = b.Manifest.Model.Name
	}
	if name == fx.DefaultModelName {
		name = ""
	}
	be, err := backend(device)
	if err != nil {
		return nil, err
	}
	m, err := loadModel(name, be)
	if err != nil {
		if modelFlag == "" {
			return nil, usagef("the recorded model %s: %w (pass --model DIR, or --no-replay to score the sketches alone)", b.Manifest.Model.Name, err)
		}
		return nil, err
	}
	id, err := identifyModel(name, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	if diff := recorder.ModelMismatch(b.Manifest.Model, id); len(diff) > 0 {
		m.Close()
		return nil, usagef("--model: not the recorded model: %s", strings.Join(diff, "; "))
	}
	return m, nil
}

// runTokens returns the tokens at each recorded position: the prompt, then
// the generated tokens fed back.
func runTokens(b *bundle.Bundle) []int {
	toks := append([]int(nil), b.Input.InputIDs...)
	if b.Input.Generate != nil {
		toks = append(toks, b.Input.OutputIDs...)
	}
	if n := b.Manifest.Record.Positions; len(toks) > n {
		toks = toks[:n]
	}
	return toks
}
