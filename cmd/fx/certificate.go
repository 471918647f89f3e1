package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/certificate"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// cmdCertificate is `fx certificate verify CERT --bundle BUNDLE`.
func cmdCertificate(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usagef("want: fx certificate verify CERT --bundle BUNDLE [--model DIR] [--scenario DIR] [--json]")
	}
	fs := newFlagSet("certificate verify", stderr)
	bundleDir := fs.String("bundle", "", "the incident bundle the certificate is about (required)")
	modelFlag := fs.String("model", "", "model to replay on (default: the one the manifest names)")
	scenarioDir := fs.String("scenario", "", "scenario directory, for detectors bundles do not record (default: the model directory when it holds ground_truth.json)")
	device := fs.String("device", "cpu", "auto, cpu, cuda, cuda:N, cuda-tf32, cuda-bf16 (replay is bit for bit on the recording's backend)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cca.tolerance, bundle limits)")
	asJSON := fs.Bool("json", false, "print the verification report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx certificate verify CERT --bundle BUNDLE [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || *bundleDir == "" {
		return usagef("want one CERT argument and --bundle BUNDLE")
	}
	cert, err := certificate.Read(pos[0])
	if err != nil {
		return usageError{err}
	}
	cfg, err := configs.Load(*config)
	if err != nil {
		return usageError{err}
	}
	ccfg, err := ccaConfig(*config)
	if err != nil {
		return usageError{err}
	}
	b, err := openBundle(*bundleDir, cfg)
	if err != nil {
		return err
	}
	m, id, sc, err := incidentModel(b, *modelFlag, *scenarioDir, *device)
	if err != nil {
		return err
	}
	defer m.Close()
	ctx := context.Background()
	rep, err := certificate.Verify(ctx, cert, b, m, certificate.Options{Tolerance: ccfg.Tolerance,
		Judge: certificate.JudgeFor(b, m, id, sc)})
	if err != nil {
		return err
	}
	rep.Certificate = pos[0]
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, c := range rep.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %s: %s\n", mark, c.Claim, c.Detail)
		}
		fmt.Fprintf(stdout, "%d claims, %d confirmed by replay (%d forwards)\n", len(rep.Checks), len(rep.Checks)-len(rep.Failed()), rep.Forwards)
	}
	if !rep.OK() {
		return fmt.Errorf("%s: %d of %d claims not confirmed by replay", pos[0], len(rep.Failed()), len(rep.Checks))
	}
	return nil
}

// ccaConfig loads the cca section of the defaults and of a user's file.
func ccaConfig(path string) (cca.Config, error) {
	docs := []cca.NamedYAML{{Name: "configs/default.yaml", Data: configs.DefaultYAML()}}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cca.Config{}, fmt.Errorf("config: %w", err)
		}
		docs = append(docs, cca.NamedYAML{Name: path, Data: data})
	}
	return cca.LoadConfig(docs...)
}

// incidentModel loads a bundle's model (or --model), its identity, and
// its scenario (--scenario, else the model directory's, else none).
func incidentModel(b *bundle.Bundle, modelFlag, scenarioDir, device string) (*transformer.Model, bundle.Model, *scenario.Scenario, error) {
	name := modelFlag
	if name == "" {
		name = b.Manifest.Model.Name
	}
	be, err := backend(device)
	if err != nil {
		return nil, bundle.Model{}, nil, err
	}
	m, err := loadModel(name, be)
	if err != nil {
		if modelFlag == "" {
			return nil, bundle.Model{}, nil, usagef("the recorded model %s: %w (pass --model DIR)", b.Manifest.Model.Name, err)
		}
		return nil, bundle.Model{}, nil, err
	}
	id, err := identifyModel(name, m)
	if err != nil {
		m.Close()
		return nil, bundle.Model{}, nil, err
	}
	var sc *scenario.Scenario
	if scenarioDir != "" {
		sc, err = scenario.Open(scenarioDir)
	} else {
		sc, err = certificate.ScenarioOf(b)
	}
	if err != nil {
		m.Close()
		return nil, bundle.Model{}, nil, usageError{fmt.Errorf("--scenario: %w", err)}
	}
	return m, id, sc, nil
}
