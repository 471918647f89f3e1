package certificate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// Request is what Analyze needs besides the bundle and the model.
type Request struct {
	// ModelID is the identity of the model given (see recorder.Identify);
	// the replay refuses a model that is not the recorded one.
	ModelID bundle.Model
	// Scenario is the scenario the model comes from, when known: it gives
	// the detector (lexicon, label-flip), the trigger and the baseline.
	Scenario *scenario.Scenario
	// Layers are the layers to search (nil: all), and LayersFrom says
	// where they came from.
	Layers     []int
	LayersFrom string
	// Widen searches every layer again when no fix lies within Layers
	// (Scope.Widen; CFScope sets it for CF's flagged layers).
	Widen bool
	// Config holds the search settings.
	Config cca.Config
	// Progress receives progress lines (nil: silent).
	Progress cca.Progress
}

// ScenarioOf opens the scenario a bundle's model directory holds, or
// returns nil when it holds none (no ground_truth.json).
func ScenarioOf(b *bundle.Bundle) (*scenario.Scenario, error) {
	dir := b.Manifest.Model.Name
	if _, err := os.Stat(filepath.Join(dir, scenario.GroundTruthFile)); err != nil {
		return nil, nil
	}
	return scenario.Open(dir)
}

// Analyze finds a 1-minimal fix set for the bundle's incident on m, the
// recorded model, replays the incident with it, and returns the
// certificate with the search result.
func Analyze(ctx context.Context, b *bundle.Bundle, m *transformer.Model, r Request) (*Certificate, *cca.Result, error) {
	if !b.Manifest.Outcome.Failed && r.Scenario == nil {
		return nil, nil, fmt.Errorf("certificate: bundle %s: the recorded run did not fail (%s)", b.Dir, b.Manifest.Outcome.Detail)
	}
	p, err := cca.NewProblem(ctx, m, cca.IncidentOf(b), b.Manifest.Outcome.Detector, r.Scenario)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: bundle %s: %w", b.Dir, err)
	}
	res, searched, err := SearchWithin(ctx, p, Scope{Layers: r.Layers, From: r.LayersFrom, Widen: r.Widen}, r.Config, r.Progress)
	if err != nil {
		return nil, res, fmt.Errorf("certificate: bundle %s: %w", b.Dir, err)
	}
	var corpus [][]int
	switch {
	case res.Intervention == cca.ZeroAbl || strings.HasPrefix(res.Source, "zero"):
	case res.Intervention == cca.Patch && p.Counterfactual != nil:
		corpus = [][]int{p.Counterfactual}
	default:
		corpus = p.Baseline
	}
	cert, err := New(b, p, res, corpus, searched.From)
	if err != nil {
		return nil, res, err
	}
	cert.Search.WidenedFrom = searched.WidenedFrom
	judge := JudgeFor(b, m, r.ModelID, r.Scenario)
	out, err := judge(ctx, cca.Interventions(m, res.FixSet))
	if err != nil {
		return nil, res, fmt.Errorf("certificate: replaying the fix: %w", err)
	}
	cert.Outcome = out
	cert.Cost.Forwards++ // the replay's generation counts as one run
	return cert, res, nil
}

// JudgeFor returns the judge of a bundle's incident: its own detector on
// replay when it records one (contains), else the scenario's.
func JudgeFor(b *bundle.Bundle, m *transformer.Model, id bundle.Model, sc *scenario.Scenario) Judge {
	if strings.HasPrefix(b.Manifest.Outcome.Detector, "contains:") || sc == nil {
		return ReplayJudge(b, m, id)
	}
	return ScenarioJudge(sc, m, b.Input.Text, true)
}
