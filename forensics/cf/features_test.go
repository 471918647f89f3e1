package cf

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/bundle"
)

func seriesByKey(f *Features) map[string]*Series {
	out := map[string]*Series{}
	for i := range f.Series {
		out[f.Series[i].Key()] = &f.Series[i]
	}
	return out
}

func TestExtractGPT2(t *testing.T) {
	m := testModel(t, "gpt2-tiny")
	c, err := NewCompressor(Int8, 3, 1)
	require.NoError(t, err)
	defer c.Close()
	run := recordRun(t, m, tokens(10, 1, 512), 4, []string{"*"})
	f, err := Extract(run, c, 32)
	require.NoError(t, err)
	assert.Equal(t, 13, f.Positions, "10 prompt tokens and 3 of the 4 generated ones fed back")
	assert.Equal(t, 2, f.Layers)
	byKey := seriesByKey(f)
	for _, key := range []string{"blocks.0.mlp.hook_post/ratio", "blocks.1.attn.hook_pattern/ratio", "blocks.1.delta_attn/ratio",
		"blocks.1.delta_mlp/proj7", "blocks.0.ln1.hook_scale/rms", "blocks.1.hook_resid_post/crest"} {
		require.Contains(t, byKey, key)
		assert.Len(t, byKey[key].Values, f.Positions, key)
	}
	// One value per position is below min_row_bytes: no ratio.
	assert.NotContains(t, byKey, "blocks.0.ln1.hook_scale/ratio")
	for _, s := range f.Series {
		assert.Equal(t, LayerOf(s.Hook), s.Layer, s.Hook)
		if s.Stat == StatRatio {
			for p, r := range s.Values {
				if !math.IsNaN(r) {
					assert.True(t, r > 0 && r < 1.5, "%s position %d ratio %g", s.Hook, p, r)
				}
			}
		}
	}
	// Causal attention at position 0 sees one key per head: 4 values,
	// fewer than min_row_bytes.
	assert.True(t, math.IsNaN(byKey["blocks.0.attn.hook_pattern/ratio"].Values[0]))
	assert.False(t, math.IsNaN(byKey["blocks.0.attn.hook_pattern/ratio"].Values[12]))

	// delta_attn is resid_mid - resid_pre, which for GPT-2 is hook_attn_out:
	// its RMS from the values and its projection (the difference of the
	// residuals' projections) agree with hook_attn_out's own sketch, up to
	// float16 rounding of the residuals.
	for l := range 2 {
		for _, pair := range [][2]string{{"delta_attn", "hook_attn_out"}, {"delta_mlp", "hook_mlp_out"}} {
			d, o := "blocks."+string(rune('0'+l))+"."+pair[0], "blocks."+string(rune('0'+l))+"."+pair[1]
			for _, stat := range []string{"rms", "maxabs", "proj0", "proj5"} {
				dv, ov := byKey[d+"/"+stat].Values, byKey[o+"/"+stat].Values
				for p := range dv {
					assert.InDelta(t, ov[p], dv[p], 2e-3*max(1, math.Abs(ov[p]))+0.01, "%s %s position %d", d, stat, p)
				}
			}
		}
	}

	// Without stored activations, only sketch features.
	bare := recordRun(t, m, tokens(10, 1, 512), 4, nil)
	g, err := Extract(bare, c, 32)
	require.NoError(t, err)
	for _, s := range g.Series {
		assert.NotEqual(t, StatRatio, s.Stat, s.Hook)
		assert.False(t, strings.Contains(s.Hook, "delta"), s.Hook)
	}
	// The sketch features do not depend on what is stored.
	gk := seriesByKey(g)
	for k, s := range gk {
		assert.Equal(t, byKey[k].Values, s.Values, k)
	}
}

func TestExtractBERTAttentionRows(t *testing.T) {
	m := testModel(t, "bert-tiny-cls")
	c, err := NewCompressor(Int8, 3, 1)
	require.NoError(t, err)
	defer c.Close()
	run := recordRun(t, m, []int{2, 50, 60, 70, 80, 90, 100, 3}, 0, []string{"*"})
	f, err := Extract(run, c, 16)
	require.NoError(t, err)
	byKey := seriesByKey(f)
	// Bidirectional attention: every position sees all 8 keys of 3 heads.
	pat := byKey["blocks.0.attn.hook_pattern/ratio"]
	require.NotNil(t, pat)
	for p, r := range pat.Values {
		assert.False(t, math.IsNaN(r), "position %d", p)
	}
	assert.Contains(t, byKey, "blocks.1.delta_mlp/ratio")
}

func TestRowOf(t *testing.T) {
	// [H=2, T=3, T=3] pattern: value = 100h + 10q + k.
	raw := &bundle.Raw{Shape: []int{2, 3, 3}, DType: bundle.Float32}
	for h := range 2 {
		for q := range 3 {
			for k := range 3 {
				raw.F32 = append(raw.F32, float32(100*h+10*q+k))
			}
		}
	}
	info := bundle.HookInfo{Name: "blocks.0.attn.hook_pattern", Positions: 3, Shape: raw.Shape}
	assert.Equal(t, []float32{10, 11, 110, 111}, rowOf(nil, raw, info, 1, true))
	assert.Equal(t, []float32{10, 11, 12, 110, 111, 112}, rowOf(nil, raw, info, 1, false))
	seq := &bundle.Raw{Shape: []int{3, 2}, DType: bundle.Float32, F32: []float32{1, 2, 3, 4, 5, 6.0001}}
	// Values are rounded to float16: 6.0001 → 6.
	assert.Equal(t, []float32{5, 6}, rowOf(nil, seq, bundle.HookInfo{Name: "blocks.0.hook_z", Positions: 3, Shape: seq.Shape}, 2, true))
}

func TestExtractErrors(t *testing.T) {
	m := testModel(t, "gpt2-tiny")
	run := recordRun(t, m, tokens(5, 2, 512), 0, nil)
	cases := []struct {
		name   string
		mutate func(r *Run)
		want   string
	}{
		{"model type", func(r *Run) { r.ModelType = "t5" }, `model type "t5"`},
		{"missing hook", func(r *Run) { r.Hooks = r.Hooks[1:] }, "hook records for"},
		{"wrong order", func(r *Run) { r.Hooks[0], r.Hooks[1] = r.Hooks[1], r.Hooks[0] }, "the record lists"},
		{"short sketch", func(r *Run) { r.Hooks[2].L2 = r.Hooks[2].L2[:1] }, "sketch arrays"},
		{"bad raw", func(r *Run) {
			r.Hooks[0].Raw = &bundle.Raw{Shape: []int{5, 60}, DType: bundle.Float32, F32: make([]float32, 3)}
		}, "stored values for shape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run
			r.Hooks = append([]bundle.HookRecord(nil), run.Hooks...)
			r.Record.Hooks = append([]bundle.HookInfo(nil), run.Record.Hooks...)
			tc.mutate(&r)
			_, err := Extract(r, nil, 32)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
