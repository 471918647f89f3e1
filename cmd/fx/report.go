package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/certificate"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/forensics/report"
)

// reportOutput is fx report --json's output.
type reportOutput struct {
	// HTML is the page written ("-": standard output).
	HTML string `json:"html"`
	// Verification is "verified", "failed" or "not verified here"; Checks
	// the claims replayed (with --bundle).
	Verification string              `json:"verification"`
	Checks       []certificate.Check `json:"checks,omitempty"`
}

// cmdReport is `fx report REPORT_DIR [-o incident.html] [--bundle BUNDLE]`:
// the incident report of an analysed incident as one self-contained HTML
// page. With --bundle it first re-verifies the certificate by replay, as
// fx certificate verify does, and exits 1 when a claim fails (the page is
// written either way).
func cmdReport(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	var out string
	fs.StringVar(&out, "o", "", "HTML file to write (default: REPORT_DIR/incident.html; - for standard output)")
	fs.StringVar(&out, "out", "", "the same as -o")
	bundleDir := fs.String("bundle", "", "replay this bundle to verify every claim of the certificate (as fx certificate verify) and show the result; without it the page says \"not verified here\"")
	modelFlag := fs.String("model", "", "with --bundle: model to replay on (default: the one the manifest names)")
	scenarioDir := fs.String("scenario", "", "with --bundle: scenario directory, for detectors bundles do not record (default: the model directory when it holds ground_truth.json)")
	device := fs.String("device", "cpu", "with --bundle: auto, cpu, cuda, cuda:N, cuda-tf32, cuda-bf16 (replay is bit for bit on the recording's backend)")
	config := fs.String("config", "", "with --bundle: YAML config file over configs/default.yaml (cca.tolerance, bundle limits)")
	asJSON := fs.Bool("json", false, "print what was written and the verification as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx report REPORT_DIR [-o incident.html] [--bundle BUNDLE] [flags]")
		fmt.Fprintln(stderr, "Writes the incident report of a report directory (fx analyze --out) as one self-contained HTML page:")
		fmt.Fprintln(stderr, "the incident, CF's layer scores and token × layer heat map, the attribution ranking, the fix set with")
		fmt.Fprintln(stderr, "the metric and the output before and after, and the certificate's verification status.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one REPORT_DIR argument (the --out of fx analyze), got %d", len(pos))
	}
	dir := pos[0]
	if out == "" {
		out = filepath.Join(dir, "incident.html")
	}
	if out == "-" && *asJSON {
		return usagef("-o - and --json both write to standard output; give -o a file")
	}
	if *bundleDir == "" && (*modelFlag != "" || *scenarioDir != "" || *config != "") {
		return usagef("--model, --scenario and --config are for the replay of --bundle")
	}
	if _, err := os.Stat(filepath.Join(dir, report.CertificateFile)); err != nil {
		return usagef("%s: no %s (make it with fx analyze BUNDLE --out %s)", dir, report.CertificateFile, dir)
	}
	page, err := report.Load(dir)
	if err != nil {
		return usageError{err}
	}
	page.Generator = "fx report"
	if bi, ok := debug.ReadBuildInfo(); ok {
		page.Generator += " " + bi.Main.Version
	}
	if *bundleDir != "" {
		bar := newProgress(stderr, *quiet)
		bar.stepf("verifying the certificate by replay")
		err := verifyForReport(page, *bundleDir, *modelFlag, *scenarioDir, *device, *config)
		bar.done()
		if err != nil {
			return err
		}
	}
	page.Generated = time.Now().UTC()
	if out == "-" {
		err = page.Render(stdout)
	} else {
		err = page.WriteFile(out)
	}
	if err != nil {
		return err
	}
	status := page.Verified()
	switch {
	case *asJSON:
		o := reportOutput{HTML: out, Verification: status}
		if v := page.Verification; v != nil {
			o.Checks = v.Report.Checks
		}
		if err := writeJSON(stdout, o); err != nil {
			return err
		}
	case out != "-":
		fmt.Fprintf(stdout, "wrote %s: certificate %s\n", out, status)
	}
	if status == "failed" {
		rep := page.Verification.Report
		return fmt.Errorf("%s: %d of %d claims not confirmed by replay (the page shows which)", filepath.Join(dir, report.CertificateFile),
			len(rep.Failed()), len(rep.Checks))
	}
	return nil
}

// verifyForReport verifies the page's certificate by replaying a bundle,
// as fx certificate verify does, and records the result on the page;
// when the report directory has no analysis.json, the incident is read
// from the bundle.
func verifyForReport(page *report.Page, bundleDir, modelFlag, scenarioDir, device, config string) error {
	cfg, err := configs.Load(config)
	if err != nil {
		return usageError{err}
	}
	ccfg, err := ccaConfig(config)
	if err != nil {
		return usageError{err}
	}
	b, err := openBundle(bundleDir, cfg)
	if err != nil {
		return err
	}
	m, id, sc, err := incidentModel(b, modelFlag, scenarioDir, device)
	if err != nil {
		return err
	}
	defer m.Close()
	rep, err := certificate.Verify(context.Background(), page.Certificate, b, m, certificate.Options{Tolerance: ccfg.Tolerance,
		Judge: certificate.JudgeFor(b, m, id, sc)})
	if err != nil {
		return err
	}
	rep.Certificate = filepath.Join(page.Dir, report.CertificateFile)
	page.Verification = &report.Verification{Report: rep, Bundle: b.Dir, Backend: recorder.RuntimeInfo(m.Backend).Backend, Time: time.Now().UTC()}
	if page.Analysis == nil {
		sum, err := certificate.BundleSHA256(b.Dir)
		if err != nil {
			return err
		}
		page.Analysis = &report.Analysis{Format: report.AnalysisFormat, Created: time.Now().UTC(), Incident: report.IncidentOf(b, sum, tokenText(m))}
		if sc != nil {
			page.Analysis.GroundTruth = sc.Truth.Components
		}
	}
	return nil
}
