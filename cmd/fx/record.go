package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelforensics/fx"
	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

// stallEnv, when set to a duration ("200ms"), makes fx run --record pause
// after each bundle file it writes. Tests use it to kill fx mid-write; it is
// not documented for users.
const stallEnv = "FX_TEST_RECORD_STALL"

// recordFlags are fx run's recording flags.
type recordFlags struct {
	fs     *flag.FlagSet
	record *bool
	level  *string
	out    *string
	config *string
	detect *string
}

// addRecordFlags defines fx run's recording flags on fs.
func addRecordFlags(fs *flag.FlagSet) *recordFlags {
	return &recordFlags{
		fs:     fs,
		record: fs.Bool("record", false, "record the run into an incident bundle (fx-bundle/1)"),
		level:  fs.String("record-level", "", "minimal, layer or full (default: the config's recording.level, layer)"),
		out:    fs.String("out", "", "bundle directory to create, or an existing directory to create incident_YYYYMMDD_HHMMSS in (default: the current directory)"),
		config: fs.String("config", "", "YAML config file over configs/default.yaml"),
		detect: fs.String("detect-contains", "", "outcome detector: the run failed if its output text contains this string"),
	}
}

// requested reports whether any recording flag was given (--config alone
// does not count).
func (f *recordFlags) requested() bool {
	given := false
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "record", "record-level", "out", "detect-contains":
			given = true
		}
	})
	return given
}

// recordRun is what fx run hands to the recorder: the run as the flags
// describe it.
type recordRun struct {
	modelArg string
	model    *transformer.Model
	text     string
	ids      []int
	maxNew   int
	stopEOS  bool
	sampler  transformer.Sampler
	// unrecordable is set when --intervene, --dump or --cache was given.
	unrecordable bool
	asJSON       bool
}

// recordOutput is fx run --record --json's output.
type recordOutput struct {
	runOutput
	Bundle  string         `json:"bundle"`
	Outcome bundle.Outcome `json:"outcome"`
}

// run records the run into a bundle and prints its output as fx run does.
// A detector that finds the failure makes it return an error (exit 1)
// after the bundle is written.
func (f *recordFlags) run(ctx context.Context, stdout, stderr io.Writer, r recordRun) error {
	if !*f.record {
		return usagef("--record-level, --out and --detect-contains need --record")
	}
	if r.unrecordable {
		return usagef("--intervene, --dump and --cache do not go with --record: record the incident as it happened " +
			"(the bundle holds the activations; --record-level full keeps every hook), then intervene on replay: fx replay BUNDLE --intervene ...")
	}
	cfg, err := configs.Load(*f.config)
	if err != nil {
		return usageError{err}
	}
	opts := recordOptions(cfg)
	if *f.level != "" {
		opts.Level = *f.level
	}
	if err := opts.Validate(); err != nil {
		return usagef("%w", err)
	}
	spec := "none"
	if *f.detect != "" {
		spec = "contains:" + *f.detect
	}
	det, err := recorder.ParseDetector(spec)
	if err != nil {
		return usageError{err}
	}
	path, err := bundlePath(*f.out, time.Now())
	if err != nil {
		return err
	}
	m := r.model
	id, err := identifyModel(r.modelArg, m)
	if err != nil {
		return err
	}
	rec, err := recorder.New(m, opts)
	if err != nil {
		return usageError{err}
	}
	in := bundle.Input{Text: r.text, InputIDs: r.ids}
	if m.GPT2 != nil && r.maxNew > 0 {
		s := r.sampler
		in.Generate = &bundle.Generate{MaxNewTokens: r.maxNew, StopAtEOS: r.stopEOS, EOS: gpt2EOS(m),
			Sampler: bundle.Sampler{Temperature: s.Temperature, TopK: s.TopK, TopP: s.TopP, Seed: s.Seed}}
	}
	out, err := rec.Run(ctx, in)
	if err != nil {
		return inputError(err)
	}
	recording, err := rec.Finish()
	if err != nil {
		return err
	}
	outcome := det.Detect(out)
	wo := recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend), Outcome: outcome}
	if d, err := time.ParseDuration(os.Getenv(stallEnv)); err == nil && d > 0 {
		wo.Progress = func(string, int64) { time.Sleep(d) }
	}
	if err := recording.Write(path, wo); err != nil {
		return err
	}
	if err := printRecorded(stdout, stderr, m, r, out, path, outcome); err != nil {
		return err
	}
	if outcome.Failed {
		return fmt.Errorf("failure found (%s): %s; bundle %s", outcome.Detector, outcome.Detail, path)
	}
	return nil
}

// recordOptions maps the config's recording section to recorder options.
func recordOptions(cfg *configs.Config) recorder.Options {
	rc := cfg.Recording
	return recorder.Options{Level: rc.Level, Hooks: rc.Hooks, Exclude: rc.Exclude, DType: rc.DType,
		SketchK: rc.Sketch.K, SketchSeed: rc.Sketch.Seed, CompressionLevel: rc.CompressionLevel}
}

// bundleLimits maps the config's bundle section to reader limits.
func bundleLimits(cfg *configs.Config) bundle.Limits {
	b := cfg.Bundle
	return bundle.Limits{MaxManifestBytes: b.MaxManifestBytes, MaxFileBytes: b.MaxFileBytes,
		MaxTotalBytes: b.MaxTotalBytes, MaxFiles: b.MaxFiles}
}

// bundlePath returns where to create the bundle: out itself, or, when out
// is empty, an existing directory or ends in a separator,
// incident_YYYYMMDD_HHMMSS inside it.
func bundlePath(out string, now time.Time) (string, error) {
	dir := ""
	switch st, err := os.Stat(out); {
	case out == "":
		dir = "."
	case strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)):
		dir = out
	case err == nil && st.IsDir():
		dir = out
	case err == nil:
		return "", usagef("--out %s: exists and is not a directory", out)
	case !errors.Is(err, fs.ErrNotExist):
		return "", usagef("--out %s: %w", out, err)
	default:
		return out, nil
	}
	base := filepath.Join(dir, "incident_"+now.Format("20060102_150405"))
	p := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		p = fmt.Sprintf("%s_%d", base, i)
	}
}

// identifyModel returns the identity of the model fx loaded as name (the
// embedded default when name is empty).
func identifyModel(name string, m *transformer.Model) (bundle.Model, error) {
	if name == "" || name == fx.DefaultModelName {
		cfg, st, err := fx.DefaultModel()
		if err != nil {
			return bundle.Model{}, err
		}
		return recorder.Identify(m, fx.DefaultModelName, []recorder.ModelFile{
			{Role: recorder.RoleConfig, Name: "config.json", Data: cfg},
			{Role: recorder.RoleWeights, Name: weights.SingleFileName, Data: st},
		})
	}
	dir, err := weights.Resolve(name)
	if err != nil {
		return bundle.Model{}, err
	}
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
	}
	return recorder.Identify(m, name, recorder.DirFiles(m, dir))
}

// printRecorded prints a recorded run's output as fx run prints it, and
// the bundle's path on stderr.
func printRecorded(stdout, stderr io.Writer, m *transformer.Model, r recordRun, out bundle.Input, path string, outcome bundle.Outcome) error {
	ro := runOutput{Model: m.Name, InputIDs: r.ids, OutputIDs: out.OutputIDs, Label: out.Label, Probabilities: out.Probabilities}
	if out.Generate != nil {
		ro.OutputText = out.OutputText
		text, err := m.Tokenizer.Decode(append(append([]int(nil), r.ids...), out.OutputIDs...))
		if err != nil {
			return err
		}
		ro.Text = text
	}
	if r.asJSON {
		return writeJSON(stdout, recordOutput{runOutput: ro, Bundle: path, Outcome: outcome})
	}
	switch {
	case out.Generate != nil:
		fmt.Fprintln(stdout, ro.Text)
	case out.Label != "":
		fmt.Fprintln(stdout, out.Label)
		for _, l := range m.BERT.Labels() {
			fmt.Fprintf(stdout, "  %-12s %s\n", l, fmtProb(out.Probabilities[l]))
		}
	default:
		fmt.Fprintf(stdout, "predicted %v %q\n", out.OutputIDs, out.OutputText)
	}
	fmt.Fprintf(stderr, "fx run: recorded %s (outcome: %s)\n", path, outcomeString(outcome))
	return nil
}

// outcomeString formats an outcome in one line.
func outcomeString(o bundle.Outcome) string {
	if o.Detector == "none" {
		return "no detector"
	}
	verdict := "passed"
	if o.Failed {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%s by %s: %s", verdict, o.Detector, o.Detail)
}
