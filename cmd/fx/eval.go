package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/scenario"
)

// cmdEval is "fx eval STAGE SCENARIO_DIR...": an analysis stage scored on
// planted-failure scenarios against their ground truth: cf (evalCF) or cca
// (evalCCA).
func cmdEval(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: fx eval cf|cca SCENARIO_DIR... [flags]")
		fmt.Fprintln(stderr, "  cf   rank of the planted layers and AUROC of the anomaly score, failing vs benign prompts")
	}
	if len(args) == 0 {
		usage()
		return usagef("want a stage: cf or cca")
	}
	switch args[0] {
	case "cf":
		return evalCF(args[1:], stdout, stderr)
	case "cca":
		return evalCCA(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage()
		return flag.ErrHelp
	}
	usage()
	return usagef("unknown stage %q (want cf or cca)", args[0])
}

// evalCFOutput is fx eval cf --json's output.
type evalCFOutput struct {
	Targets struct {
		Top2  float64 `json:"top2"`
		AUROC float64 `json:"auroc"`
	} `json:"targets"`
	Results []*cf.EvalResult `json:"results"`
}

// evalCF is "fx eval cf SCENARIO_DIR...".
func evalCF(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval cf", stderr)
	asJSON := fs.Bool("json", false, "print JSON (every metric, rank histograms)")
	check := fs.Bool("check", false, "exit 1 when the combined signals miss a target (top-2 ≥ 90%, AUROC ≥ 0.9) on a scenario")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cf section)")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	limit := fs.Int("prompts", 0, "use only the first N failing and N benign prompts of each file (a quick check; 0: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx eval cf SCENARIO_DIR... [flags]")
		fmt.Fprintln(stderr, "Per scenario (made by fx scenario make): the baseline is the benign prompts of calibration.jsonl and,")
		fmt.Fprintln(stderr, "cross-fitted, half the benign prompts of prompts.jsonl; every prompt of prompts.jsonl is recorded as")
		fmt.Fprintln(stderr, "an incident and scored. Reported per signal set: the rank of the best planted layer over the failing")
		fmt.Fprintln(stderr, "prompts (top-1, top-2, mean) and the AUROC of the per-prompt score, failing vs benign.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want at least one SCENARIO_DIR (make one with fx scenario make NAME --size tiny --out DIR)")
	}
	if *limit < 0 {
		return usagef("--prompts %d: want 0 (all) or more", *limit)
	}
	cfg, _, err := loadCFConfig(*config)
	if err != nil {
		return err
	}
	b, err := backend(*device)
	if err != nil {
		return err
	}
	var out evalCFOutput
	out.Targets.Top2, out.Targets.AUROC = cf.TargetTop2, cf.TargetAUROC
	ctx := context.Background()
	bar := newProgress(stderr, *quiet)
	defer bar.done()
	for _, dir := range pos {
		s, err := scenario.Open(dir)
		if err != nil {
			return usageError{err}
		}
		m, err := s.Load(b)
		if err != nil {
			return usageError{err}
		}
		o := cf.EvalOptions{Config: cfg, Limit: *limit, Log: bar.log()}
		r, err := cf.Evaluate(ctx, dir, m, o)
		m.Close()
		if err != nil {
			return err
		}
		out.Results = append(out.Results, r)
	}
	bar.done()
	if *asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprint(stdout, cf.Table(out.Results))
		fmt.Fprintf(stdout, "\ntargets: a planted layer in the top 2 for ≥ %.0f%% of failing prompts; AUROC ≥ %.2f\n", 100*cf.TargetTop2, cf.TargetAUROC)
	}
	var missed []string
	for _, r := range out.Results {
		for _, row := range r.Rows {
			if row.Signals != cf.SetName(cf.AllSignals()) || row.Variant != r.Variants[0].Name {
				continue
			}
			verdict := "met"
			if row.Top2 < cf.TargetTop2 || !(row.AUROC >= cf.TargetAUROC) {
				verdict = fmt.Sprintf("MISSED (top-2 %.0f%%, AUROC %.3f)", 100*row.Top2, row.AUROC)
				missed = append(missed, fmt.Sprintf("%s %s", r.Scenario, r.Size))
			}
			if !*asJSON {
				fmt.Fprintf(stdout, "%s %s (%s, %s): %s\n", r.Scenario, r.Size, row.Variant, row.Signals, verdict)
			}
		}
	}
	if *check && len(missed) > 0 {
		return fmt.Errorf("targets missed on %s", strings.Join(missed, ", "))
	}
	return nil
}
