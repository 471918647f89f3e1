package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/modelforensics/fx/forensics/scenario"
)

// cmdScenario is "fx scenario list|make|check".
func cmdScenario(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: fx scenario list [--json]")
		fmt.Fprintln(stderr, "       fx scenario make NAME --size tiny|small [--seed N] --out DIR")
		fmt.Fprintln(stderr, "       fx scenario check DIR [--json]")
	}
	if len(args) == 0 {
		usage()
		return usagef("want a subcommand: list, make or check")
	}
	switch args[0] {
	case "list":
		return scenarioList(args[1:], stdout, stderr)
	case "make":
		return scenarioMake(args[1:], stdout, stderr)
	case "check":
		return scenarioCheck(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage()
		return flag.ErrHelp
	}
	usage()
	return usagef("unknown subcommand %q (list, make, check)", args[0])
}

// scenarioList prints the scenarios.
func scenarioList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scenario list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("fx scenario list takes no arguments, got %q", pos)
	}
	list := scenario.List()
	if *asJSON {
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODEL\tDETECTOR\tFAILURE")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Model, s.Detector, s.Summary)
	}
	return tw.Flush()
}

// scenarioMake makes a scenario directory.
func scenarioMake(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scenario make", stderr)
	size := fs.String("size", "tiny", "model size: tiny (CI) or small (GPT-2 small / BERT base shapes)")
	seed := fs.Uint64("seed", 1, "first seed tried (a seed whose model fails calibration is rejected for the next)")
	tries := fs.Int("tries", 8, "seeds to try before giving up")
	out := fs.String("out", "", "output directory (must not exist, or be empty)")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	asJSON := fs.Bool("json", false, "print the ground truth as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx scenario make NAME --size tiny|small [--seed N] --out DIR")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one scenario NAME (%s), got %d arguments", strings.Join(scenario.Names(), ", "), len(pos))
	}
	name := pos[0]
	if !slices.Contains(scenario.Names(), name) {
		return usagef("scenario %q is unknown (want one of %s; see fx scenario list)", name, strings.Join(scenario.Names(), ", "))
	}
	sz, err := scenario.ParseSize(*size)
	if err != nil {
		return usagef("--size %q: want tiny or small", *size)
	}
	if *out == "" {
		return usagef("--out DIR is required")
	}
	if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
		return usagef("--out %s: the directory is not empty", *out)
	}
	if *tries < 1 {
		return usagef("--tries %d: want at least 1", *tries)
	}
	bar := newProgress(stderr, *quiet)
	defer bar.done()
	opts := scenario.Options{Size: sz, Seed: *seed, Tries: *tries, Log: bar.log()}
	truth, err := scenario.Make(context.Background(), name, *out, opts)
	if err != nil {
		return err
	}
	bar.done()
	if *asJSON {
		return writeJSON(stdout, truth)
	}
	fmt.Fprintf(stdout, "made %s (%s, seed %d) in %s\n", name, sz, truth.SeedUsed, *out)
	fmt.Fprintf(stdout, "held-out prompts: %.0f%% of %d failing fail, %.0f%% of %d benign fail\n",
		100*truth.Calibration.FailingFailed, truth.Calibration.FailingPrompts,
		100*truth.Calibration.BenignFailed, truth.Calibration.BenignPrompts)
	fmt.Fprintln(stdout, "planted components (ground_truth.json):")
	for _, c := range truth.Components {
		cause := "cause"
		if !c.Cause {
			cause = "normal"
		}
		fmt.Fprintf(stdout, "  %-36s stage %d  %-6s %s\n", c.Site, c.Stage, cause, c.Role)
	}
	return nil
}

// scenarioCheck verifies a scenario directory against its prompts.
func scenarioCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scenario check", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	seed := fs.Uint64("seed", 1, "seed of the random components ablated as the control")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx scenario check DIR [--json]")
		fmt.Fprintln(stderr, "Runs the scenario's prompts plain, with the ground truth zero-ablated and with as many random")
		fmt.Fprintln(stderr, "components zero-ablated; exit code 1 when a criterion of the scenario is not met.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one scenario DIR, got %d arguments", len(pos))
	}
	s, err := scenario.Open(pos[0])
	if err != nil {
		return usageError{err}
	}
	b, err := backend(*device)
	if err != nil {
		return err
	}
	m, err := s.Load(b)
	if err != nil {
		return usageError{err}
	}
	defer m.Close()
	r, err := s.Verify(context.Background(), m, *seed)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(stdout, r); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, r)
	}
	if ps := r.Problems(); len(ps) > 0 {
		return errors.New(strings.Join(ps, "; "))
	}
	return nil
}
