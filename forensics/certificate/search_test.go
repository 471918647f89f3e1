package certificate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/scenario"
)

// plantedNeuronLayers returns, from a scenario's ground truth, the layers
// that hold a planted neuron cause and the other layers of its n-layer
// model, and the planted causes by site.
func plantedNeuronLayers(sc *scenario.Scenario, n int) (planted, others []int, causes map[string]scenario.Component) {
	causes = map[string]scenario.Component{}
	for _, c := range sc.Truth.Causes() {
		causes[c.Site] = c
		if c.Kind == scenario.KindNeuron && !slices.Contains(planted, c.Layer) {
			planted = append(planted, c.Layer)
		}
	}
	for l := range n {
		if !slices.Contains(planted, l) {
			others = append(others, l)
		}
	}
	slices.Sort(planted)
	return planted, others, causes
}

// everyLayer returns 0, 1, …, n-1.
func everyLayer(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func sitesOf(ms []cca.Member) []string {
	out := make([]string, len(ms))
	for i, mb := range ms {
		out[i] = mb.Site.String()
	}
	return out
}

// TestAnalyzeWidensBeyondCFLayers analyzes a recorded tiny prompt-injection
// incident at neuron granularity within layers as CF would hand them over
// (certificate.CFScope). Where they hold none of the planted neurons
// (ground_truth.json), no fix lies within them (checked with a plain
// cca.Search) and the certificate must come from a search of every layer:
// search.layers every layer, widened_from the first layers, layers_from
// saying so, the fix set that of a plain search of every layer (planted
// causes outside the first layers), and the cost both plain searches' plus
// the replay. Where they hold the planted neurons, nothing widens. Both
// certificates verify by replay, and one whose widening is misstated does
// not.
func TestAnalyzeWidensBeyondCFLayers(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	sc, model, id, b := recordInjection(t, tmp)
	n := model.Config.Layers
	planted, others, causes := plantedNeuronLayers(sc, n)
	require.NotEmpty(t, planted, "the scenario plants neurons")
	require.NotEmpty(t, others)
	cfg := cca.DefaultConfig()
	cfg.Granularity = cca.Neurons
	p, err := cca.NewProblem(ctx, model, cca.IncidentOf(b), b.Manifest.Outcome.Detector, sc)
	require.NoError(t, err)
	judge := JudgeFor(b, model, id, sc)

	cases := []struct {
		name    string
		flagged []int
		widen   bool
	}{
		{"no planted neuron in the flagged layers: widens", others, true},
		{"the planted neurons' layers flagged: no widening", planted, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Oracles: plain searches of the flagged layers and of every layer.
			narrow, narrowErr := cca.Search(ctx, p, tc.flagged, cfg, nil)
			require.NotNil(t, narrow)
			scope := CFScope(tc.flagged, 10)
			cert, _, err := Analyze(ctx, b, model, Request{ModelID: id, Scenario: sc, Layers: scope.Layers,
				LayersFrom: scope.From, Widen: scope.Widen, Config: cfg})
			require.NoError(t, err)
			require.NotNil(t, cert.Outcome)
			assert.False(t, cert.Outcome.Failed, "the fix does not flip the detector")
			if tc.widen {
				require.ErrorIs(t, narrowErr, cca.ErrNoFix, "precondition: no fix within layers %v", tc.flagged)
				wide, err := cca.Search(ctx, p, nil, cfg, nil)
				require.NoError(t, err)
				assert.Equal(t, everyLayer(n), cert.Search.Layers)
				assert.Equal(t, tc.flagged, cert.Search.WidenedFrom)
				assert.Equal(t, "cf: flagged layers (threshold 10); no fix within them, widened to all layers", cert.Search.LayersFrom)
				assert.Equal(t, sitesOf(wide.FixSet), fixSites(cert))
				assert.Equal(t, narrow.Cost.Forwards+wide.Cost.Forwards+1, cert.Cost.Forwards, "both searches and the replay")
				assert.Equal(t, narrow.Cost.Rows+wide.Cost.Rows, cert.Cost.Rows)
				assert.Equal(t, narrow.Cost.Backward+wide.Cost.Backward, cert.Cost.Backward)
				assert.True(t, slices.ContainsFunc(cert.Notes, func(s string) bool { return strings.Contains(s, "widened to all") }), "notes: %v", cert.Notes)
			} else {
				require.NoError(t, narrowErr)
				assert.Equal(t, tc.flagged, cert.Search.Layers)
				assert.Nil(t, cert.Search.WidenedFrom)
				assert.Equal(t, "cf: flagged layers (threshold 10)", cert.Search.LayersFrom)
				assert.Equal(t, sitesOf(narrow.FixSet), fixSites(cert))
				assert.Equal(t, narrow.Cost.Forwards+1, cert.Cost.Forwards, "one search and the replay")
				assert.Equal(t, narrow.Cost.Backward, cert.Cost.Backward)
			}
			require.NotEmpty(t, cert.FixSet)
			for _, f := range cert.FixSet {
				c, ok := causes[f.Site]
				require.True(t, ok, "%s is not a planted cause", f.Site)
				if tc.widen {
					assert.NotContains(t, tc.flagged, c.Layer, "%s lies within the flagged layers", f.Site)
				}
			}

			path := filepath.Join(t.TempDir(), "certificate.json")
			require.NoError(t, cert.WriteFile(path))
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			var raw struct {
				Search map[string]json.RawMessage `json:"search"`
			}
			require.NoError(t, json.Unmarshal(data, &raw))
			_, has := raw.Search["widened_from"]
			assert.Equal(t, tc.widen, has, "search.widened_from is written only when the search widened")
			back, err := Read(path)
			require.NoError(t, err)
			rep, err := Verify(ctx, back, b, model, Options{Judge: judge})
			require.NoError(t, err)
			assert.True(t, rep.OK(), "%+v", rep.Failed())
			if !tc.widen {
				return
			}
			assert.Contains(t, back.Summary(), "widened to all layers")
			tamper := []struct {
				name string
				edit func(c *Certificate)
			}{
				{"widened from every layer", func(c *Certificate) { c.Search.WidenedFrom = everyLayer(n) }},
				{"final layers not every layer", func(c *Certificate) { c.Search.Layers = tc.flagged }},
				{"layer out of range", func(c *Certificate) { c.Search.WidenedFrom = []int{n} }},
			}
			for _, tt := range tamper {
				t.Run(tt.name, func(t *testing.T) {
					var c Certificate
					require.NoError(t, json.Unmarshal(data, &c))
					tt.edit(&c)
					rep, err := Verify(ctx, &c, b, model, Options{Judge: judge})
					require.NoError(t, err)
					assert.True(t, slices.ContainsFunc(rep.Failed(), func(f Check) bool { return f.Claim == "search.widened_from" }),
						"no failed search.widened_from check in %+v", rep.Failed())
				})
			}
		})
	}
}

func fixSites(c *Certificate) []string {
	out := make([]string, len(c.FixSet))
	for i, f := range c.FixSet {
		out[i] = f.Site
	}
	return out
}

// TestSearchWithinSentimentBypass is the CF→CCA miss of the evaluation at
// small size, on the tiny model: sentiment-bypass's flip neurons are in
// one layer (ground_truth.json), and at neuron granularity no fix lies in
// the other layers. SearchWithin, as fx eval cca's CF→CCA rows call it,
// must widen to every layer and end on the planted flip neurons, whose
// fix the scenario's own detector confirms; within the budget the first
// search leaves; and not at all for layers a user asked for.
func TestSearchWithinSentimentBypass(t *testing.T) {
	ctx := context.Background()
	sc, m := tinyScenario(t, t.TempDir(), "sentiment-bypass")
	n := m.Config.Layers
	planted, others, causes := plantedNeuronLayers(sc, n)
	require.Len(t, planted, 1, "the flip neurons share one layer")
	text := sc.PromptsOf(scenario.Failing)[0].Text
	oc, out, err := sc.Check(ctx, m, text, nil)
	require.NoError(t, err)
	require.True(t, oc.Failed)
	p, err := cca.NewProblem(ctx, m, cca.Incident{Text: text, PromptIDs: m.Encode(text), OutputIDs: out.Tokens, Label: out.Label}, "", sc)
	require.NoError(t, err)
	cfg := cca.DefaultConfig()
	cfg.Granularity = cca.Neurons
	narrow, err := cca.Search(ctx, p, others, cfg, nil)
	require.ErrorIs(t, err, cca.ErrNoFix, "precondition: no fix outside the flip neurons' layer")

	scope := CFScope(others, 10)
	res, searched, err := SearchWithin(ctx, p, scope, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, others, searched.WidenedFrom)
	assert.Equal(t, scope.From+"; no fix within them, widened to all layers", searched.From)
	assert.Equal(t, everyLayer(n), res.Layers)
	require.NotEmpty(t, res.FixSet)
	for _, mb := range res.FixSet {
		c, ok := causes[mb.Site.String()]
		require.True(t, ok, "%s is not a planted cause", mb.Site)
		assert.Equal(t, planted[0], c.Layer)
	}
	fixed, _, err := sc.Check(ctx, m, text, cca.Interventions(m, res.FixSet))
	require.NoError(t, err)
	assert.False(t, fixed.Failed, "the fix does not flip the detector")
	wide, err := cca.Search(ctx, p, nil, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, narrow.Cost.Forwards+wide.Cost.Forwards, res.Cost.Forwards)
	assert.Equal(t, narrow.Cost.Backward+wide.Cost.Backward, res.Cost.Backward)

	t.Run("no budget left to widen", func(t *testing.T) {
		c := cfg
		c.MaxForwards = narrow.Cost.Forwards
		_, searched, err := SearchWithin(ctx, p, scope, c, nil)
		assert.ErrorIs(t, err, cca.ErrBudget)
		assert.ErrorIs(t, err, cca.ErrNoFix)
		assert.Nil(t, searched.WidenedFrom)
	})
	t.Run("layers a user asked for do not widen", func(t *testing.T) {
		_, searched, err := SearchWithin(ctx, p, Scope{Layers: others, From: "--layers"}, cfg, nil)
		assert.ErrorIs(t, err, cca.ErrNoFix)
		assert.Equal(t, Searched{From: "--layers"}, searched)
	})
}

func TestCFScope(t *testing.T) {
	cases := []struct {
		name      string
		flagged   []int
		threshold float64
		want      Scope
	}{
		{"none flagged: every layer", nil, 10, Scope{From: "all layers: cf flagged none"}},
		{"flagged: those first, may widen", []int{5, 6}, 10, Scope{Layers: []int{5, 6}, From: "cf: flagged layers (threshold 10)", Widen: true}},
		{"threshold as given", []int{2}, 7.5, Scope{Layers: []int{2}, From: "cf: flagged layers (threshold 7.5)", Widen: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, CFScope(tc.flagged, tc.threshold))
		})
	}
}
