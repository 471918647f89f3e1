package cca

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// freeFailPrompt is a failing prompt of the tiny toxic-generation scenario
// (seed 1) whose first 1-minimal neuron fix set, found on the recorded
// generation alone, lets free generation reach " idiot" a step later (the
// misses of the evaluation before the search replayed the detector).
const freeFailPrompt = "I baked cookies for the neighbours next door and"

// generate runs greedy generation of the scenario's length with
// interventions (a plain generation, without the detector).
func generate(t *testing.T, sc *scenario.Scenario, m *transformer.Model, prompt []int, ivs []transformer.Intervention) []int {
	t.Helper()
	hooks, err := m.InterventionHooks(ivs)
	require.NoError(t, err)
	hs, err := m.NewHooks(hooks...)
	require.NoError(t, err)
	gen, err := m.Generate(context.Background(), prompt, transformer.GenerateOptions{MaxNewTokens: sc.Truth.Detector.MaxNewTokens}, hs)
	require.NoError(t, err)
	return gen.Tokens
}

// plainMetric is the extended metric from plain forwards: the largest over
// the metric's sequences of each one's path margin, recomputed here from
// the logits (the largest over steps of the lexicon margin capped by the
// smallest margin of the path's tokens before it).
func plainMetric(t *testing.T, p *Problem, spec MetricSpec, ivs []transformer.Intervention) float64 {
	t.Helper()
	type seq struct {
		tokens, positions, targets []int
	}
	seqs := []seq{{p.Tokens, spec.Positions, spec.Targets}}
	for _, pt := range spec.Paths {
		seqs = append(seqs, seq{pt.Tokens, pt.Positions, pt.Targets})
	}
	margin := func(logits []float32, up func(int) bool) float64 {
		bestUp, bestDown := math.Inf(-1), math.Inf(-1)
		for i, x := range logits {
			if up(i) {
				bestUp = max(bestUp, float64(x))
			} else {
				bestDown = max(bestDown, float64(x))
			}
		}
		return bestUp - bestDown
	}
	best := math.Inf(-1)
	for _, s := range seqs {
		out, err := p.Model.RunWithInterventions(context.Background(), s.tokens, ivs)
		require.NoError(t, err)
		host, V := out.Host(), out.Shape()[len(out.Shape())-1]
		limit := math.Inf(1)
		for j, pos := range s.positions {
			logits := host[pos*V : (pos+1)*V]
			lex := margin(logits, func(i int) bool { return slices.Contains(spec.Lexicon, i) })
			best = max(best, min(lex, limit))
			target := s.targets[j]
			limit = min(limit, margin(logits, func(i int) bool { return i == target }))
		}
	}
	return best
}

// TestDetectorPathExtension checks the path-extension logic against plain
// runs: the path of a free generation with the first fix set (a plain
// greedy generation) is the prompt then the generated tokens up to the
// first lexicon token, each the greedy choice of a plain forward with the
// fix (so the failure shows on it: margin > 0); the evaluator's resumed,
// batched metric over the recorded and the new path equals the largest of
// the plain forwards' path margins.
func TestDetectorPathExtension(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "toxic-generation")
	p := problemOf(t, sc, m, freeFailPrompt)
	require.NotNil(t, p.Detector)
	cfg := DefaultConfig()
	cfg.Granularity = Neurons
	cfg.MaxPaths = 0
	first, err := Search(ctx, p, nil, cfg, nil)
	require.NoError(t, err)
	require.True(t, first.DetectorChecked)
	assert.Equal(t, 1, first.Paths())
	assert.Equal(t, 1, first.Cost.Replays, "a search checks its fix set once")
	ivs := Interventions(m, first.FixSet)

	gen := generate(t, sc, m, p.Prompt, ivs)
	path, ok := first.Metric.NewPath(p.Prompt, gen)
	require.True(t, ok, "free generation with the first fix set reaches no lexicon token: %v", gen)
	k := len(path.Targets) - 1
	assert.Equal(t, append(slices.Clone(p.Prompt), gen[:k]...), path.Tokens)
	assert.Equal(t, gen[:k+1], path.Targets)
	assert.Contains(t, first.Metric.Lexicon, path.Targets[k])
	for _, id := range path.Targets[:k] {
		assert.NotContains(t, first.Metric.Lexicon, id)
	}
	assert.False(t, first.Metric.HasPath(p.Tokens, path), "the new generation leaves the recorded path")
	assert.True(t, first.Metric.HasPath(p.Tokens, Path{Tokens: p.Tokens, Targets: p.Metric.Targets}))

	// Each path token is the greedy choice of a plain forward with the fix.
	out, err := m.RunWithInterventions(ctx, path.Tokens, ivs)
	require.NoError(t, err)
	host, V := out.Host(), m.Config.VocabSize
	for j, pos := range path.Positions {
		logits := host[pos*V : (pos+1)*V]
		best := 0
		for i := range logits {
			if logits[i] > logits[best] {
				best = i
			}
		}
		assert.Equal(t, path.Targets[j], best, "step %d", j)
	}

	spec := first.Metric
	spec.Paths = []Path{path}
	require.NoError(t, spec.Validate(len(p.Tokens), V))
	assert.LessOrEqual(t, plainMetric(t, p, first.Metric, ivs), 0.0, "the first fix set corrects the recorded path")
	assert.Greater(t, plainMetric(t, p, spec, ivs), 0.0, "the new path shows the failure with the first fix set")

	// The evaluator over both paths against plain forwards.
	var cost Cost
	ev, err := newEvaluator(ctx, p, &spec, cfg, &cost)
	require.NoError(t, err)
	assert.Equal(t, 2, cost.Forwards, "one cached forward per path")
	var members []Member
	for _, c := range sc.Truth.Causes() {
		for _, mb := range first.Ranking {
			if mb.Site.String() == c.Site {
				members = append(members, member(m, mb, cfg.Intervention, nil))
			}
		}
	}
	members = append(members, first.FixSet...)
	n := len(members)
	sets := [][]int{nil, {n - 1}, {0, 1}, {n - 2, n - 1}, {0, n - 1}}
	got, err := ev.eval(members, sets)
	require.NoError(t, err)
	for i, set := range sets {
		var ms []Member
		for _, j := range set {
			ms = append(ms, members[j])
		}
		assert.InDelta(t, plainMetric(t, p, spec, Interventions(m, ms)), got[i], 1e-4, "set %v", set)
	}
}

// TestDetectorPathsFixFreeGeneration runs CCA at neuron granularity on a
// prompt whose first fix set failed under free generation: with the
// detector replayed inside the search, the certified fix set must stop the
// scenario's detector on a free replayed generation, hold only planted
// causes (ground_truth.json), and stay 1-minimal on the plain forwards of
// every generation path its metric follows.
func TestDetectorPathsFixFreeGeneration(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "toxic-generation")
	p := problemOf(t, sc, m, freeFailPrompt)
	cfg := DefaultConfig()
	cfg.Granularity = Neurons

	// Without paths the fix set holds on the recorded path only.
	cfg.MaxPaths = 0
	old, err := Search(ctx, p, nil, cfg, nil)
	require.NoError(t, err)
	still, _, err := sc.Check(ctx, m, freeFailPrompt, Interventions(m, old.FixSet))
	require.NoError(t, err)
	require.True(t, still.Failed, "the prompt no longer shows the miss this test is about")
	assert.True(t, old.DetectorFailed)

	cfg.MaxPaths = DefaultConfig().MaxPaths
	res, err := Search(ctx, p, nil, cfg, nil)
	require.NoError(t, err)
	fixed, _, err := sc.Check(ctx, m, freeFailPrompt, Interventions(m, res.FixSet))
	require.NoError(t, err)
	assert.False(t, fixed.Failed, "the certified fix set does not stop the detector: %s", fixed.Detail)
	assert.True(t, res.DetectorChecked)
	assert.False(t, res.DetectorFailed)
	assert.Greater(t, res.Paths(), 1)
	assert.Equal(t, res.Paths(), res.Cost.Replays, "one replay per path: each added path's search, then the last check")

	var planted []string
	for _, c := range sc.Truth.Causes() {
		planted = append(planted, c.Site)
	}
	require.True(t, res.Minimal)
	require.NotEmpty(t, res.FixSet)
	for i, mb := range res.FixSet {
		assert.Contains(t, planted, mb.Site.String())
		rest := slices.Delete(slices.Clone(res.FixSet), i, i+1)
		assert.Greater(t, plainMetric(t, p, res.Metric, Interventions(m, rest)), 0.0, "without %s", mb.Site)
	}
	assert.LessOrEqual(t, plainMetric(t, p, res.Metric, Interventions(m, res.FixSet)), 0.0)
}
