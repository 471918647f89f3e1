package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/certificate"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/report"
	"github.com/modelforensics/fx/transformer"
)

// analyzePipeline is `fx analyze BUNDLE --baseline B --out report/`: CF
// flags the anomalous layers, CCA finds a 1-minimal fix set within them
// (within every layer when there is none there), and the certificate and
// a summary are written to the report directory.
func analyzePipeline(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze", stderr)
	baseline := fs.String("baseline", "", "CF baseline (.fxbase, from fx baseline) whose flagged layers CCA searches first (every layer when no fix lies within them); without it, every layer")
	out := fs.String("out", "", "report directory: certificate.json, cf.json, analysis.json, summary.txt (required)")
	modelFlag := fs.String("model", "", "model to replay on (default: the one the manifest names)")
	scenarioDir := fs.String("scenario", "", "scenario directory (default: the model directory when it holds ground_truth.json)")
	device := fs.String("device", "cpu", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cf and cca sections)")
	layersFlag := fs.String("layers", "", "comma-separated layers to search instead of CF's (e.g. 1,2)")
	gran := fs.String("granularity", "", "neuron, head, layer or auto (neurons for MLPs, heads for attention); default cca.granularity")
	iv := fs.String("intervention", "", "patch (from the counterfactual run), mean or zero; default cca.intervention")
	maxFwd := fs.Int("max-forwards", -1, "budget of batched forwards (0: none); default cca.max_forwards")
	timeout := fs.Duration("timeout", -1, "budget of wall time (0: none); default cca.timeout")
	top := fs.Int("top", 50, "candidates of the attribution ranking kept in analysis.json (the report shows the first 20)")
	asJSON := fs.Bool("json", false, "print the certificate and the files written as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx analyze BUNDLE --baseline B --out REPORT_DIR [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one BUNDLE argument and --out REPORT_DIR")
	}
	if *top < 0 {
		return usagef("--top %d: want 0 or more", *top)
	}
	cfg, err := configs.Load(*config)
	if err != nil {
		return usageError{err}
	}
	ccfg, err := ccaConfig(*config)
	if err != nil {
		return usageError{err}
	}
	if *gran != "" {
		ccfg.Granularity = *gran
	}
	if *iv != "" {
		ccfg.Intervention = *iv
	}
	if *maxFwd >= 0 {
		ccfg.MaxForwards = *maxFwd
	}
	if *timeout >= 0 {
		ccfg.Timeout = *timeout
	}
	if err := ccfg.Validate(); err != nil {
		return usagef("%w (flags --granularity, --intervention, --max-forwards, --timeout)", err)
	}
	b, err := openBundle(pos[0], cfg)
	if err != nil {
		return err
	}
	m, id, sc, err := incidentModel(b, *modelFlag, *scenarioDir, *device)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return usagef("--out: %w", err)
	}
	ctx := context.Background()
	start := time.Now()
	bar := newProgress(stderr, *quiet)
	defer bar.done()
	written := []string{}

	// CF: the flagged layers. A cf.json of an earlier analysis would
	// describe another run: it goes, and is written again with a baseline.
	if err := os.Remove(filepath.Join(*out, report.CFFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	var layers []int
	from, widen := "all layers", false
	switch {
	case *layersFlag != "":
		for _, s := range strings.Split(*layersFlag, ",") {
			l, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return usagef("--layers: %q is not a layer number", s)
			}
			layers = append(layers, l)
		}
		from = "--layers"
	case *baseline != "":
		base, err := cf.ReadBaseline(*baseline)
		if err != nil {
			return usageError{fmt.Errorf("--baseline: %w", err)}
		}
		docs := []cf.NamedYAML{{Name: "configs/default.yaml", Data: configs.DefaultYAML()}}
		if *config != "" {
			data, err := os.ReadFile(*config)
			if err != nil {
				return usagef("--config: %w", err)
			}
			docs = append(docs, cf.NamedYAML{Name: *config, Data: data})
		}
		cfCfg, err := cf.LoadConfig(docs...)
		if err != nil {
			return usageError{err}
		}
		bar.stepf("cf: scoring the bundle's activations against the baseline")
		run, src, err := cf.BundleRun(ctx, b, m, cfCfg.Values)
		if err != nil {
			return fmt.Errorf("cf: %w", err)
		}
		run.Tokens = runTokens(b)
		rep, err := cf.Analyze(run, base, cfCfg)
		if err != nil {
			return fmt.Errorf("cf: %w", err)
		}
		rep.Bundle, rep.Level, rep.Source = b.Dir, b.Manifest.Record.Level, src
		path := filepath.Join(*out, report.CFFile)
		if err := writeJSONFile(path, rep); err != nil {
			return err
		}
		written = append(written, path)
		// CF narrows the search; when no fix lies within its layers the
		// search widens to every layer (certificate.CFScope).
		scope := certificate.CFScope(rep.Flagged, rep.Threshold)
		layers, from, widen = scope.Layers, scope.From, scope.Widen
	default:
		fmt.Fprintln(stderr, "fx analyze: no --baseline: CCA searches every layer (CF's narrowing needs a baseline: fx baseline)")
	}
	cert, res, err := certificate.Analyze(ctx, b, m, certificate.Request{ModelID: id, Scenario: sc, Layers: layers,
		LayersFrom: from, Widen: widen, Config: ccfg, Progress: bar.stepf})
	if err != nil {
		return err
	}
	cert.Cost.Seconds = time.Since(start).Seconds()
	path := filepath.Join(*out, report.CertificateFile)
	if err := cert.WriteFile(path); err != nil {
		return err
	}
	an := &report.Analysis{Format: report.AnalysisFormat, Created: time.Now().UTC(),
		Incident:    report.IncidentOf(b, cert.Bundle.SHA256, tokenText(m)),
		Attribution: report.AttributionOf(res, *top)}
	if sc != nil {
		an.GroundTruth = sc.Truth.Components
	}
	anPath := filepath.Join(*out, report.AnalysisFile)
	if err := an.WriteFile(anPath); err != nil {
		return err
	}
	summary := cert.Summary()
	sumPath := filepath.Join(*out, report.SummaryFile)
	if err := os.WriteFile(sumPath, []byte(summary), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	written = append(written, path, anPath, sumPath)
	bar.done()
	if *asJSON {
		return writeJSON(stdout, analyzeOutput{Out: *out, Files: written, Certificate: cert})
	}
	fmt.Fprint(stdout, summary)
	fmt.Fprintf(stdout, "wrote %s; check it with: fx certificate verify %s --bundle %s\n", path, path, b.Dir)
	fmt.Fprintf(stdout, "read it in a browser: fx report %s --bundle %s -o incident.html\n", *out, b.Dir)
	return nil
}

// analyzeOutput is fx analyze --json's output.
type analyzeOutput struct {
	// Out is the report directory and Files the files written there.
	Out   string   `json:"out"`
	Files []string `json:"files"`
	// Certificate is the certificate written.
	Certificate *certificate.Certificate `json:"certificate"`
}

// tokenText returns a function giving one token's text with m's
// tokenizer ("" for an id it does not know).
func tokenText(m *transformer.Model) func(int) string {
	return func(id int) string {
		s, err := m.Tokenizer.Decode([]int{id})
		if err != nil {
			return ""
		}
		return s
	}
}

// writeJSONFile writes v as indented JSON to path.
func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
