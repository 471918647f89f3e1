package cca

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// tinyScenario makes a tiny scenario and loads its model.
func tinyScenario(t *testing.T, name string) (*scenario.Scenario, *transformer.Model) {
	t.Helper()
	dir := t.TempDir() + "/" + name
	_, err := scenario.Make(context.Background(), name, dir, scenario.Options{Size: scenario.Tiny, Seed: 1})
	require.NoError(t, err)
	sc, err := scenario.Open(dir)
	require.NoError(t, err)
	m, err := sc.Load(cpu.New())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return sc, m
}

// problemOf builds the problem of a failing prompt.
func problemOf(t *testing.T, sc *scenario.Scenario, m *transformer.Model, text string) *Problem {
	t.Helper()
	ctx := context.Background()
	oc, out, err := sc.Check(ctx, m, text, nil)
	require.NoError(t, err)
	require.True(t, oc.Failed, "%q must fail", text)
	p, err := NewProblem(ctx, m, Incident{Text: text, PromptIDs: m.Encode(text), OutputIDs: out.Tokens, Label: out.Label}, "", sc)
	require.NoError(t, err)
	return p
}

// metricWith runs the problem's tokens with interventions (plain forward)
// and returns the metric.
func metricWith(t *testing.T, p *Problem, ivs []transformer.Intervention) float64 {
	t.Helper()
	out, err := p.Model.RunWithInterventions(context.Background(), p.Tokens, ivs)
	require.NoError(t, err)
	return p.Metric.Of(out.Host(), out.Shape(), 0)
}

// TestQueryKeyEstimateAgainstPatching checks AtP*'s query/key estimate on
// the planted trigger-mover head of prompt-injection (its key reads the
// trigger with a score gap of 16, a saturated softmax) against oracles of
// plain forwards: the recomputed pattern A′ must be the pattern of a
// forward with the key (or query) really patched, and the estimate
// Σ (A − A′)·∂metric/∂A must be the metric's change along A′ − A by
// central finite differences of pattern patches. (Plain attribution
// patching through the softmax, Δk · ∂metric/∂k, gives about −7e-4 here
// for a real effect of 38–72: why AtP* recomputes the pattern. What is
// left between the estimate and real patching is the model's nonlinearity
// downstream of the pattern, which no linear estimate removes.)
func TestQueryKeyEstimateAgainstPatching(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "prompt-injection")
	var head scenario.Component
	for _, c := range sc.Truth.Causes() {
		if c.Kind == scenario.KindHead {
			head = c
		}
	}
	require.NotEmpty(t, head.Site, "the scenario plants a head")
	all := transformer.Span{All: true}
	pat := patternHook(head.Layer)
	for _, pr := range sc.PromptsOf(scenario.Failing)[:2] {
		p := problemOf(t, sc, m, pr.Text)
		T, H := len(p.Tokens), m.Config.Heads
		cfg := DefaultConfig()
		cfg.Granularity, cfg.QueryKey = Heads, true
		res, err := Search(ctx, p, []int{head.Layer}, cfg, nil)
		require.NoError(t, err)
		before := metricWith(t, p, nil)
		_, cleanCache, err := m.RunWithCache(ctx, p.Tokens, transformer.Names(pat))
		require.NoError(t, err)
		A := cleanCache[pat].Host()
		for _, kind := range []string{"q", "k"} {
			hook := fmt.Sprintf("blocks.%d.attn.hook_%s", head.Layer, kind)
			i := slices.IndexFunc(res.Ranking, func(c Candidate) bool { return c.Kind == kind && c.Index == head.Index })
			require.GreaterOrEqual(t, i, 0)
			c := res.Ranking[i]
			src, err := SourceValues(ctx, m, [][]int{p.Counterfactual}, []string{hook})
			require.NoError(t, err)
			ivs := Interventions(m, []Member{member(m, c, Patch, src[hook])})
			// Oracle 1: the pattern of a forward with the site patched.
			ih, err := m.InterventionHooks(ivs)
			require.NoError(t, err)
			_, cache, err := m.RunWithCache(ctx, p.Tokens, transformer.Names(pat), ih...)
			require.NoError(t, err)
			Ap := cache[pat].Host()
			est := &estimator{m: m, T: T, acts: map[string][]float32{}, sources: map[string][]float32{hook: src[hook]}, dPattern: map[string][]float64{}}
			_, qk, err := m.RunWithCache(ctx, p.Tokens, transformer.Names(fmt.Sprintf("blocks.%d.attn.hook_[qk]", head.Layer), pat))
			require.NoError(t, err)
			for h, a := range qk {
				est.acts[h] = a.Host()
			}
			dA := est.patternChange(c)
			for d := range T {
				for s := range T {
					at := (head.Index*T+d)*T + s
					require.InDelta(t, float64(A[at]-Ap[at]), dA[d*T+s], 1e-5, "%s: pattern [%d, %d]", c.Site, d, s)
				}
			}
			// Oracle 2: central differences of the metric along A′ − A.
			const eps = 1e-3
			along := func(e float64) float64 {
				v := make([]float32, len(A))
				for j := range v {
					v[j] = A[j] + float32(e)*(Ap[j]-A[j])
				}
				site := transformer.Site{Hook: pat, Pos: all, Head: transformer.Index(head.Index), Src: all, I: all}
				return metricWith(t, p, []transformer.Intervention{{Site: site, Mode: transformer.Patch, Source: engine.NewHost(v, 1, H, T, T), Row: -1}})
			}
			fd := -(along(eps) - along(-eps)) / (2 * eps)
			truth := before - metricWith(t, p, ivs)
			t.Logf("%q %s: AtP* %.4g, finite differences along the pattern %.4g, real patching %.4g", pr.Text, c.Site, c.Attribution, fd, truth)
			assert.InDelta(t, fd, c.Attribution, 0.02*math.Abs(fd)+1e-3, "%s", c.Site)
		}
	}
}

// TestGradDropAgainstFiniteDifferences checks the gradients of GradDrop's
// backward passes against an oracle of plain forwards: the central finite
// difference of the metric in one neuron's activation, with layer l's
// attention and MLP outputs patched to their clean values (so nothing
// flows through them), equals the GradDrop gradient at that neuron.
func TestGradDropAgainstFiniteDifferences(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "prompt-injection")
	p := problemOf(t, sc, m, sc.PromptsOf(scenario.Failing)[0].Text)
	in, err := transformer.NewBatch([][]int{p.Tokens}, nil)
	require.NoError(t, err)
	metric := p.Metric.Transformer()
	L := m.Config.Layers
	var names []string
	for l := range L {
		names = append(names, fmt.Sprintf("blocks.%d.hook_attn_out", l), fmt.Sprintf("blocks.%d.hook_mlp_out", l))
	}
	_, clean, err := m.RunWithCache(ctx, p.Tokens, transformer.Names(names...))
	require.NoError(t, err)
	hook := "blocks.0.mlp.hook_post"
	var drops []int
	for l := 1; l < L; l++ {
		drops = append(drops, l)
	}
	var cost Cost
	dropped, err := gradDrop(ctx, m, in, metric, []string{hook}, clean, drops, &cost)
	require.NoError(t, err)
	assert.Equal(t, len(drops), cost.Backward)
	T, I := len(p.Tokens), m.Config.Inner
	all := transformer.Span{All: true}
	freeze := func(l int) []transformer.Intervention {
		var ivs []transformer.Intervention
		for _, h := range []string{fmt.Sprintf("blocks.%d.hook_attn_out", l), fmt.Sprintf("blocks.%d.hook_mlp_out", l)} {
			ivs = append(ivs, transformer.Intervention{Site: transformer.Site{Hook: h, Pos: all, Head: all, Src: all, I: all},
				Mode: transformer.Patch, Source: clean[h], Row: -1})
		}
		return ivs
	}
	const eps = 1e-2
	for _, l := range drops {
		g := dropped[l][hook]
		// The (position, neuron) pairs with the largest dropped gradient.
		idx := make([]int, T*I)
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return -cmpAbs(g[a], g[b]) })
		require.NotZero(t, g[idx[0]], "drop layer %d: a zero gradient", l)
		for _, at := range idx[:3] {
			pos, n := at/I, at%I
			nudge := func(v float32) []transformer.Intervention {
				return append(freeze(l), transformer.Intervention{Site: transformer.Site{Hook: hook, Pos: transformer.Index(pos), Head: all, Src: all, I: transformer.Index(n)},
					Mode: transformer.Add, Value: v, Row: -1})
			}
			fd := (metricWith(t, p, nudge(eps)) - metricWith(t, p, nudge(-eps))) / (2 * eps)
			got := float64(g[at])
			t.Logf("drop layer %d, neuron %d: GradDrop gradient %.5g, finite difference %.5g", l, n, got, fd)
			assert.InDelta(t, fd, got, 0.02*math.Abs(fd)+1e-3, "drop layer %d neuron %d", l, n)
		}
	}
}

func cmpAbs(a, b float32) int {
	x, y := math.Abs(float64(a)), math.Abs(float64(b))
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TestSearchWidensPastTheCut runs CCA on sentiment-bypass at neuron
// granularity with a cut (cca.max_candidates) that leaves out the planted
// flip neurons: each of them alone changes the classifier margin by about
// −0.01 (their effect is redundant, through a saturated readout), so
// attribution patching ranks them last. The search must widen past the cut
// and still end on planted causes only, and the fix must flip the
// detector on replay.
func TestSearchWidensPastTheCut(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "sentiment-bypass")
	causes := map[string]bool{}
	for _, c := range sc.Truth.Causes() {
		causes[c.Site] = true
	}
	for _, pr := range sc.PromptsOf(scenario.Failing)[:2] {
		p := problemOf(t, sc, m, pr.Text)
		cfg := DefaultConfig()
		cfg.Granularity, cfg.MaxCandidates = Neurons, 16
		res, err := Search(ctx, p, nil, cfg, nil)
		require.NoError(t, err)
		first := slices.IndexFunc(res.Ranking, func(c Candidate) bool { return causes[c.Site.String()] })
		require.Greater(t, first, cfg.MaxCandidates, "precondition: the planted neurons rank past the cut")
		assert.True(t, slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "widened") }), "notes: %v", res.Notes)
		require.NotEmpty(t, res.FixSet)
		for _, mb := range res.FixSet {
			assert.True(t, causes[mb.Site.String()], "%s is not a planted cause", mb.Site)
		}
		fixed, _, err := sc.Check(ctx, m, pr.Text, Interventions(m, res.FixSet))
		require.NoError(t, err)
		assert.False(t, fixed.Failed, "the fix does not flip the detector")
	}
}

// TestLexiconPathFindsPlantedHead runs CCA on toxic-generation at head
// granularity. The planted chain is head → " frankly" neurons → " idiot"
// neurons, the last reading the generated " frankly" fed back as input, so
// with the generated tokens teacher-forced no head can lower the lexicon
// margin at the " idiot" step; the path metric also asks that " frankly"
// stay the greedy choice. The fix set must be the planted head (ground
// truth) and flip the detector on a free replayed generation.
func TestLexiconPathFindsPlantedHead(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, "toxic-generation")
	var heads []string
	for _, c := range sc.Truth.Causes() {
		if c.Kind == scenario.KindHead {
			heads = append(heads, c.Site)
		}
	}
	require.Len(t, heads, 1)
	for _, pr := range sc.PromptsOf(scenario.Failing)[:2] {
		p := problemOf(t, sc, m, pr.Text)
		require.Equal(t, KindLexiconPath, p.Metric.Kind)
		cfg := DefaultConfig()
		cfg.Granularity = Heads
		res, err := Search(ctx, p, nil, cfg, nil)
		require.NoError(t, err)
		var sites []string
		for _, mb := range res.FixSet {
			sites = append(sites, mb.Site.String())
		}
		assert.Equal(t, heads, sites)
		fixed, _, err := sc.Check(ctx, m, pr.Text, Interventions(m, res.FixSet))
		require.NoError(t, err)
		assert.False(t, fixed.Failed, "the fix does not flip the detector")
		// The teacher-forced lexicon margin alone has no head-level fix.
		old := *p
		old.Metric.Kind, old.Metric.Targets = KindLexiconMargin, nil
		_, err = Search(ctx, &old, nil, cfg, nil)
		assert.ErrorIs(t, err, ErrNoFix)
	}
}

// TestLexiconPathMetric checks the path metric and its gradient's tokens
// on hand-made logits (vocabulary of 4, lexicon {3}, two steps whose
// recorded tokens are 1 then 3).
func TestLexiconPathMetric(t *testing.T) {
	spec := MetricSpec{Kind: KindLexiconPath, Positions: []int{0, 1}, Targets: []int{1, 3}, Lexicon: []int{3}}
	require.NoError(t, spec.Validate(2, 4))
	cases := []struct {
		name     string
		logits   []float32 // [2 positions × 4]
		want     float64
		up, down int
	}{
		// step 0: token 1 leads by 2; step 1: lexicon 3 leads by 5 → min(5, 2) = 2.
		{"path holds", []float32{0, 3, 1, -1, 0, 0, 1, 6}, 2, 1, 2},
		// step 0 no longer greedy (−1), lexicon at step 0 is at −4 → max(−4, min(5, −1)) = −1.
		{"path broken", []float32{0, 1, 2, -2, 0, 0, 1, 6}, -1, 1, 2},
		// the lexicon token becomes greedy at step 0: 1.5 → max(1.5, min(5, −3)) = 1.5.
		{"earlier lexicon", []float32{0, 1, 2.5, 4, 0, 0, 1, 6}, 1.5, 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, off, up, down := spec.eval(tc.logits, []int{1, 2, 4}, 0)
			assert.InDelta(t, tc.want, v, 1e-6)
			assert.Equal(t, tc.up, up)
			assert.Equal(t, tc.down, down)
			assert.Equal(t, 0, off%4)
		})
	}
	bad := spec
	bad.Targets = []int{1}
	assert.ErrorContains(t, bad.Validate(2, 4), "targets")
}
