package cca

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSearchFindsPlantedCauses runs CCA on two failing prompts of the tiny
// prompt-injection scenario at each granularity: the fix set must correct
// the failure on a replayed generation, be 1-minimal, and consist of
// planted causes.
func TestSearchFindsPlantedCauses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/pi"
	_, err := scenario.Make(ctx, "prompt-injection", dir, scenario.Options{Size: scenario.Tiny, Seed: 1})
	require.NoError(t, err)
	sc, err := scenario.Open(dir)
	require.NoError(t, err)
	m, err := sc.Load(cpu.New())
	require.NoError(t, err)
	causes := map[string]bool{}
	for _, c := range sc.Truth.Causes() {
		causes[c.Site] = true
	}
	failing := sc.PromptsOf(scenario.Failing)
	cases := []struct {
		name, gran, iv, gradDrop string
	}{
		{"auto patch", Auto, Patch, GradDropAuto},
		{"neurons patch", Neurons, Patch, GradDropAuto},
		{"heads patch", Heads, Patch, GradDropAuto},
		{"neurons zero", Neurons, ZeroAbl, GradDropAuto},
		{"heads mean", Heads, MeanAbl, GradDropAuto},
		{"neurons patch, GradDrop on", Neurons, Patch, GradDropOn},
		{"heads patch, GradDrop on", Heads, Patch, GradDropOn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, pr := range failing[:2] {
				oc, out, err := sc.Check(ctx, m, pr.Text, nil)
				require.NoError(t, err)
				require.True(t, oc.Failed)
				p, err := NewProblem(ctx, m, Incident{Text: pr.Text, PromptIDs: m.Encode(pr.Text), OutputIDs: out.Tokens}, "", sc)
				require.NoError(t, err)
				cfg := DefaultConfig()
				cfg.Granularity, cfg.Intervention, cfg.GradDrop = tc.gran, tc.iv, tc.gradDrop
				res, err := Search(ctx, p, nil, cfg, nil)
				require.NoError(t, err)
				require.True(t, res.Minimal)
				want := map[string]int{Auto: m.Config.Inner + m.Config.Heads, Neurons: m.Config.Inner, Heads: m.Config.Heads}[tc.gran] * m.Config.Layers
				assert.Equal(t, want, res.Candidates, "candidate sites over all layers")
				assert.Greater(t, res.Before, 0.0)
				assert.LessOrEqual(t, res.After, 0.0)
				require.Len(t, res.Removed, len(res.FixSet))
				for i, v := range res.Removed {
					assert.Greater(t, v, 0.0, "member %d is not necessary", i)
				}
				for _, mb := range res.FixSet {
					assert.True(t, causes[mb.Site.String()], "%s is not a planted cause", mb.Site)
				}
				fixed, _, err := sc.Check(ctx, m, pr.Text, Interventions(m, res.FixSet))
				require.NoError(t, err)
				assert.False(t, fixed.Failed, "the fix does not flip the detector")
				// The batched, resumed evaluation equals a plain forward.
				got, err := m.RunWithInterventions(ctx, p.Tokens, Interventions(m, res.FixSet))
				require.NoError(t, err)
				assert.Equal(t, res.After, p.Metric.Of(got.Host(), got.Shape(), 0))
			}
		})
	}
}

func TestBudgetsAndErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/pi"
	_, err := scenario.Make(ctx, "prompt-injection", dir, scenario.Options{Size: scenario.Tiny, Seed: 1})
	require.NoError(t, err)
	sc, err := scenario.Open(dir)
	require.NoError(t, err)
	m, err := sc.Load(cpu.New())
	require.NoError(t, err)
	pr := sc.PromptsOf(scenario.Failing)[0]
	_, out, err := sc.Check(ctx, m, pr.Text, nil)
	require.NoError(t, err)
	p, err := NewProblem(ctx, m, Incident{Text: pr.Text, PromptIDs: m.Encode(pr.Text), OutputIDs: out.Tokens}, "", sc)
	require.NoError(t, err)
	cases := []struct {
		name   string
		mod    func(*Config)
		layers []int
		want   error
		msg    string
	}{
		{name: "max forwards", mod: func(c *Config) { c.MaxForwards = 1 }, want: ErrBudget},
		{name: "timeout", mod: func(c *Config) { c.Timeout = time.Nanosecond }, want: ErrBudget},
		{name: "bad granularity", mod: func(c *Config) { c.Granularity = "atom" }, msg: "cca.granularity"},
		{name: "bad layer", mod: func(*Config) {}, layers: []int{9}, msg: "layer 9"},
		{name: "no fix in layer 0 neurons", mod: func(c *Config) { c.Granularity = Neurons }, layers: []int{0}, want: ErrNoFix},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			_, err := Search(ctx, p, tc.layers, cfg, nil)
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err = NewProblem(ctx, m, Incident{Text: "hello", PromptIDs: m.Encode("hello"), OutputIDs: m.Encode(" fine")}, "contains:HACKED", nil)
	assert.ErrorContains(t, err, "does not contain")
	_, err = NewProblem(ctx, m, Incident{Text: "hello"}, "none", nil)
	assert.ErrorContains(t, err, "gives no failure metric")
}

func TestParseMember(t *testing.T) {
	m, err := transformer.Load("../../testdata/models/gpt2-default", cpu.New())
	if err != nil {
		t.Skip("no default model: ", err)
	}
	cases := []struct {
		site   string
		mode   transformer.Mode
		values []float32
		ok     bool
	}{
		{"blocks.1.mlp.hook_post[i=3]", transformer.Mean, []float32{1}, true},
		{"blocks.1.mlp.hook_post[i=3]", transformer.Zero, nil, true},
		{"blocks.1.mlp.hook_post[i=3]", transformer.Mean, []float32{1, 2}, false},
		{"blocks.1.attn.hook_q[head=0]", transformer.Zero, nil, true},
		{"blocks.1.attn.hook_k[head=1]", transformer.Mean, make([]float32, 2), false},
		{"blocks.1.attn.hook_v[head=0]", transformer.Zero, nil, false},
		{"blocks.1.mlp.hook_post[i=3]", transformer.Scale, nil, false},
		{"hook_embed", transformer.Zero, nil, false},
		{"blocks.x.mlp.hook_post[i=3]", transformer.Zero, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.site+string(tc.mode), func(t *testing.T) {
			mb, err := ParseMember(m, tc.site, tc.mode, tc.values)
			if !tc.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.site, mb.Site.String())
		})
	}
}

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name, doc, err string
	}{
		{"defaults", "", ""},
		{"override", "cca:\n  granularity: head\n  timeout: 30s\n", ""},
		{"unknown key", "cca:\n  nope: 1\n", "nope"},
		{"bad value", "cca:\n  batch: 0\n", "cca.batch"},
		{"bad grad_drop", "cca:\n  grad_drop: yes\n", "cca.grad_drop"},
		{"other sections", "recording:\n  level: full\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(NamedYAML{Name: "x.yaml", Data: []byte(tc.doc)})
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.name == "override" {
				assert.Equal(t, Heads, c.Granularity)
				assert.Equal(t, 30*time.Second, c.Timeout)
			}
		})
	}
}

// TestDefaultYAMLDocumentsDefaults checks that configs/default.yaml's cca
// section (commented out until configs.Config accepts it) holds exactly
// DefaultConfig.
func TestDefaultYAMLDocumentsDefaults(t *testing.T) {
	data, err := os.ReadFile("../../configs/default.yaml")
	require.NoError(t, err)
	require.Contains(t, string(data), "\ncca:\n", "no cca section in configs/default.yaml")
	c, err := LoadConfig(NamedYAML{Name: "default.yaml", Data: data})
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), c)
}
