package replay

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/bundle"
)

// rec returns a record of positions sketches of n values each, with raw
// values when raw is not nil ([positions, n]).
func rec(hook string, positions int, raw *bundle.Raw) bundle.HookRecord {
	r := bundle.HookRecord{Hook: hook, Raw: raw}
	for p := range positions {
		r.Count = append(r.Count, 2)
		r.Mean = append(r.Mean, float32(p))
		r.L2 = append(r.L2, 1)
		r.Min = append(r.Min, 0)
		r.Max = append(r.Max, float32(p))
		r.Proj = append(r.Proj, 0.5)
		r.Hash = append(r.Hash, uint64(p))
	}
	return r
}

func clone(r bundle.HookRecord) bundle.HookRecord {
	c := r
	c.Count, c.Mean, c.L2, c.Min, c.Max = slices.Clone(r.Count), slices.Clone(r.Mean), slices.Clone(r.L2), slices.Clone(r.Min), slices.Clone(r.Max)
	c.Proj, c.Hash = slices.Clone(r.Proj), slices.Clone(r.Hash)
	if r.Raw != nil {
		raw := *r.Raw
		raw.F16, raw.F32 = slices.Clone(raw.F16), slices.Clone(raw.F32)
		c.Raw = &raw
	}
	return c
}

func TestCompare(t *testing.T) {
	const T, prompt = 5, 3
	man := &bundle.Manifest{Record: bundle.Record{Positions: T, Hooks: []bundle.HookInfo{
		{Name: "hook_embed", Positions: T, Shape: []int{T, 2}},
		{Name: "blocks.0.hook_resid_post", Positions: T, Shape: []int{T, 2}, Stored: true},
	}}}
	raw16 := &bundle.Raw{Shape: []int{T, 2}, DType: bundle.Float16, F16: make([]uint16, 2*T)}
	recorded := []bundle.HookRecord{rec("hook_embed", T, nil), rec("blocks.0.hook_resid_post", T, raw16)}
	for _, tc := range []struct {
		name    string
		edit    func(r []bundle.HookRecord) []bundle.HookRecord
		want    *Divergence
		message string
	}{
		{name: "equal", edit: func(r []bundle.HookRecord) []bundle.HookRecord { return r }},
		{name: "hash at a generated step", edit: func(r []bundle.HookRecord) []bundle.HookRecord {
			r[0].Hash[4] ^= 1
			r[0].Max[4] += 0.25
			return r
		}, want: &Divergence{Hook: "hook_embed", Position: 4, Step: 2, MaxDiff: 0.25}},
		{name: "earlier step first, whatever the hook", edit: func(r []bundle.HookRecord) []bundle.HookRecord {
			r[0].Hash[4] ^= 1
			r[1].Hash[1] ^= 1
			r[1].Raw.F16[3] = 0x3c00 // 1.0 at position 1
			return r
		}, want: &Divergence{Hook: "blocks.0.hook_resid_post", Position: 1, Step: 0, MaxDiff: 1, Exact: true}},
		{name: "below float16 resolution", edit: func(r []bundle.HookRecord) []bundle.HookRecord {
			r[1].Hash[2] ^= 1
			r[1].Mean[2] += 1e-6
			return r
		}, want: &Divergence{Hook: "blocks.0.hook_resid_post", Position: 2, Step: 0, MaxDiff: float64(float32(2)+1e-6) - 2}, message: "below float16 resolution"},
		{name: "replay shorter", edit: func(r []bundle.HookRecord) []bundle.HookRecord {
			s := rec("hook_embed", 4, nil)
			r[0] = s
			return r
		}, want: &Divergence{Hook: "hook_embed", Position: 4, Step: 2, MaxDiff: math.MaxFloat64}, message: "the replay has 4 positions"},
		{name: "NaN", edit: func(r []bundle.HookRecord) []bundle.HookRecord {
			r[0].Hash[0] ^= 1
			r[0].Mean[0] = float32(math.NaN())
			return r
		}, want: &Divergence{Hook: "hook_embed", Position: 0, Step: 0, MaxDiff: math.MaxFloat64}},
		{name: "hook missing", edit: func(r []bundle.HookRecord) []bundle.HookRecord { return r[1:] },
			want: &Divergence{Hook: "hook_embed", Position: 0, Step: 0, MaxDiff: math.MaxFloat64}, message: "did not record this hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replayed := []bundle.HookRecord{clone(recorded[0]), clone(recorded[1])}
			d, check := compare(man, recorded, tc.edit(replayed), prompt, true)
			assert.Equal(t, 2, check.Hooks)
			assert.Equal(t, 1, check.Stored)
			assert.Equal(t, 2*T, check.Sketches)
			if tc.want == nil {
				assert.Nil(t, d)
				assert.True(t, check.BitForBit)
				return
			}
			require.NotNil(t, d)
			assert.False(t, check.BitForBit)
			assert.Equal(t, tc.want.Hook, d.Hook)
			assert.Equal(t, tc.want.Position, d.Position)
			assert.Equal(t, tc.want.Step, d.Step)
			assert.Equal(t, tc.want.Exact, d.Exact)
			assert.InDelta(t, tc.want.MaxDiff, d.MaxDiff, 1e-9)
			assert.Contains(t, d.Detail, tc.message)
			_, err := json.Marshal(d)
			assert.NoError(t, err, "a divergence always encodes as JSON")
			assert.Contains(t, d.String(), d.Hook)
		})
	}
}

func TestCompareSteps(t *testing.T) {
	steps := []bundle.StepState{
		{Step: 0, Token: 5, KVCacheLen: 3, RNGState: []byte{1}, KV: &bundle.KVState{K: []string{"a"}, V: []string{"b"}}},
		{Step: 1, Token: 6, KVCacheLen: 4, RNGState: []byte{2}, KV: &bundle.KVState{K: []string{"c"}, V: []string{"d"}}},
	}
	other := func(edit func(s []bundle.StepState) []bundle.StepState) []bundle.StepState {
		c := slices.Clone(steps)
		for i := range c {
			kv := *c[i].KV
			kv.K, kv.V = slices.Clone(kv.K), slices.Clone(kv.V)
			c[i].KV = &kv
		}
		return edit(c)
	}
	for _, tc := range []struct {
		name  string
		edit  func(s []bundle.StepState) []bundle.StepState
		step  int
		field string
	}{
		{"rng", func(s []bundle.StepState) []bundle.StepState { s[1].RNGState = []byte{9}; return s }, 1, "rng_state"},
		{"kv", func(s []bundle.StepState) []bundle.StepState { s[0].KV.V[0] = "x"; return s }, 0, "kv.v[0]"},
		{"token", func(s []bundle.StepState) []bundle.StepState { s[1].Token = 7; return s }, 1, "token"},
		{"fewer steps", func(s []bundle.StepState) []bundle.StepState { return s[:1] }, 1, "steps"},
	} {
		c := compareSteps(steps, other(tc.edit))
		require.NotNil(t, c.FirstMismatch, tc.name)
		assert.Equal(t, tc.step, c.FirstMismatch.Step, tc.name)
		assert.Equal(t, tc.field, c.FirstMismatch.Field, tc.name)
	}
	assert.Nil(t, compareSteps(steps, other(func(s []bundle.StepState) []bundle.StepState { return s })).FirstMismatch)
}
