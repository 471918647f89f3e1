package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/weights/npy"
)

func TestGradConformance(t *testing.T) {
	for _, workers := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			backendtest.RunGrad(t, cpu.New(cpu.WithWorkers(workers)))
		})
	}
}

// gradGoldenTol is the largest max|got-want| / max|want| allowed against
// PyTorch's float64 autograd.
const gradGoldenTol = 1e-5

// loadGradGolden reads testdata/golden/grad.npz
// (testdata/gen/make_grad_golden.py) once.
var loadGradGolden = sync.OnceValues(func() (map[string]npy.Array, error) {
	return npy.ReadNPZ(filepath.Join("testdata", "golden", "grad.npz"))
})

// gradGolden returns the float32 values and shape of one golden array.
func gradGolden(t *testing.T, name string) ([]float32, []int) {
	t.Helper()
	m, err := loadGradGolden()
	require.NoError(t, err)
	a, ok := m[name]
	require.True(t, ok, "no array %q in grad.npz", name)
	v, err := a.Float32()
	require.NoError(t, err, name)
	return v, a.Shape
}

// gradGoldenInts returns an integer golden array.
func gradGoldenInts(t *testing.T, name string) []int64 {
	t.Helper()
	m, err := loadGradGolden()
	require.NoError(t, err)
	a, ok := m[name]
	require.True(t, ok, "no array %q in grad.npz", name)
	v, err := a.Int64()
	require.NoError(t, err, name)
	return v
}

// gradClose checks got against want: same shape, no NaN, and
// max|got-want| ≤ gradGoldenTol·max|want|.
func gradClose(t *testing.T, want []float32, wantShape []int, got *engine.Tensor) {
	t.Helper()
	require.Equal(t, wantShape, got.Shape(), "shape")
	g := got.Host()
	require.Len(t, g, len(want))
	var maxErr, maxRef float64
	for i, w := range want {
		a, b := float64(g[i]), float64(w)
		require.False(t, math.IsNaN(a) || math.IsInf(a, 0), "element %d is %v", i, a)
		maxErr = max(maxErr, math.Abs(a-b))
		maxRef = max(maxRef, math.Abs(b))
	}
	if maxRef == 0 {
		require.Zero(t, maxErr)
		return
	}
	t.Logf("relative error %.3g", maxErr/maxRef)
	require.LessOrEqual(t, maxErr/maxRef, gradGoldenTol, "relative error (max error %g, max |want| %g)", maxErr, maxRef)
}

// TestGradGolden compares every backward op with the input gradients
// PyTorch's autograd computed in float64 from the same inputs.
func TestGradGolden(t *testing.T) {
	const (
		eps    = 1e-5
		dh     = 15
		offset = 4
	)
	scale := float32(1 / math.Sqrt(dh))
	for _, workers := range []int{1, 3} {
		be := cpu.New(cpu.WithWorkers(workers))
		in := func(t *testing.T, name string) *engine.Tensor {
			v, shape := gradGolden(t, name)
			return be.FromHost(v, shape...)
		}
		attnMask := func(t *testing.T) engine.AttnMask {
			var valid []int32
			for _, v := range gradGoldenInts(t, "attn_valid") {
				valid = append(valid, int32(v))
			}
			return engine.AttnMask{Causal: true, KeyValid: valid}
		}
		decMask := func(*testing.T) engine.AttnMask { return engine.AttnMask{Causal: true, QueryOffset: offset} }
		// chain runs the attention forward and then its backward, as a
		// caller does: mix, softmax, scores.
		chain := func(t *testing.T, qName, dzName string, mask engine.AttnMask) (dq, dk, dv *engine.Tensor) {
			q, k := in(t, qName), in(t, "attn_k")
			p := be.Softmax(be.AttnScores(q, k, scale, mask))
			dp, dv := be.AttnMixBackward(in(t, dzName), p, in(t, "attn_v"))
			dq, dk = be.AttnScoresBackward(be.SoftmaxBackward(p, dp), q, k, scale)
			return dq, dk, dv
		}
		first := func(a, _ *engine.Tensor) *engine.Tensor { return a }
		second := func(_, b *engine.Tensor) *engine.Tensor { return b }
		tests := []struct {
			name string
			want string
			op   func(t *testing.T) *engine.Tensor
		}{
			{"LayerNormBackward", "ln_dx", func(t *testing.T) *engine.Tensor {
				return be.LayerNormBackward(in(t, "ln_x"), in(t, "ln_gamma"), in(t, "ln_dy"), eps)
			}},
			{"LayerNormBackward/offset", "ln_offset_dx", func(t *testing.T) *engine.Tensor {
				return be.LayerNormBackward(in(t, "ln_offset_x"), in(t, "ln_offset_gamma"), in(t, "ln_offset_dy"), eps)
			}},
			{"GELUBackward/tanh", "gelu_tanh_dx", func(t *testing.T) *engine.Tensor {
				return be.GELUBackward(in(t, "act_x"), in(t, "act_dy"), engine.GELUTanh)
			}},
			{"GELUBackward/erf", "gelu_erf_dx", func(t *testing.T) *engine.Tensor {
				return be.GELUBackward(in(t, "act_x"), in(t, "act_dy"), engine.GELUErf)
			}},
			{"TanhBackward", "tanh_dx", func(t *testing.T) *engine.Tensor {
				return be.TanhBackward(in(t, "tanh_y"), in(t, "act_dy"))
			}},
			{"SoftmaxBackward", "sm_dx", func(t *testing.T) *engine.Tensor {
				y := in(t, "sm_y")
				dx := be.SoftmaxBackward(y, in(t, "sm_dy"))
				for i, v := range y.Host() {
					if v == 0 {
						require.Zero(t, math.Float32bits(dx.Host()[i]), "element %d: y is 0, dx must be +0", i)
					}
				}
				return dx
			}},
			{"SoftmaxBackward/own forward", "sm_dx", func(t *testing.T) *engine.Tensor {
				return be.SoftmaxBackward(be.Softmax(in(t, "sm_x")), in(t, "sm_dy"))
			}},
			{"AttnScoresBackward/dq", "scores_dq", func(t *testing.T) *engine.Tensor {
				return first(be.AttnScoresBackward(in(t, "scores_ds"), in(t, "attn_q"), in(t, "attn_k"), scale))
			}},
			{"AttnScoresBackward/dk", "scores_dk", func(t *testing.T) *engine.Tensor {
				return second(be.AttnScoresBackward(in(t, "scores_ds"), in(t, "attn_q"), in(t, "attn_k"), scale))
			}},
			{"AttnScoresBackward/decode/dq", "dec_dq", func(t *testing.T) *engine.Tensor {
				return first(be.AttnScoresBackward(in(t, "dec_ds"), in(t, "dec_q"), in(t, "attn_k"), scale))
			}},
			{"AttnScoresBackward/decode/dk", "dec_dk", func(t *testing.T) *engine.Tensor {
				return second(be.AttnScoresBackward(in(t, "dec_ds"), in(t, "dec_q"), in(t, "attn_k"), scale))
			}},
			{"AttnMixBackward/dpattern", "mix_dpattern", func(t *testing.T) *engine.Tensor {
				return first(be.AttnMixBackward(in(t, "mix_dz"), in(t, "mix_pattern"), in(t, "attn_v")))
			}},
			{"AttnMixBackward/dv", "mix_dv", func(t *testing.T) *engine.Tensor {
				return second(be.AttnMixBackward(in(t, "mix_dz"), in(t, "mix_pattern"), in(t, "attn_v")))
			}},
			{"Attention/dq", "chain_dq", func(t *testing.T) *engine.Tensor {
				dq, _, _ := chain(t, "attn_q", "mix_dz", attnMask(t))
				return dq
			}},
			{"Attention/dk", "chain_dk", func(t *testing.T) *engine.Tensor {
				_, dk, _ := chain(t, "attn_q", "mix_dz", attnMask(t))
				return dk
			}},
			{"Attention/dv", "chain_dv", func(t *testing.T) *engine.Tensor {
				_, _, dv := chain(t, "attn_q", "mix_dz", attnMask(t))
				return dv
			}},
			{"Attention/decode/dq", "dec_chain_dq", func(t *testing.T) *engine.Tensor {
				dq, _, _ := chain(t, "dec_q", "dec_dz", decMask(t))
				return dq
			}},
			{"Attention/decode/dk", "dec_chain_dk", func(t *testing.T) *engine.Tensor {
				_, dk, _ := chain(t, "dec_q", "dec_dz", decMask(t))
				return dk
			}},
			{"Attention/decode/dv", "dec_chain_dv", func(t *testing.T) *engine.Tensor {
				_, _, dv := chain(t, "dec_q", "dec_dz", decMask(t))
				return dv
			}},
			{"ConcatLast", "concat_out", func(t *testing.T) *engine.Tensor {
				return be.ConcatLast(in(t, "concat_part0"), in(t, "concat_part1"), in(t, "concat_part2"))
			}},
			{"ScatterRows", "scatter_out", func(t *testing.T) *engine.Tensor {
				var idx []int
				for _, i := range gradGoldenInts(t, "scatter_idx") {
					idx = append(idx, int(i))
				}
				return be.ScatterRows(in(t, "scatter_x"), idx, 12)
			}},
		}
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					want, shape := gradGolden(t, tc.want)
					gradClose(t, want, shape, tc.op(t))
				})
			}
		})
	}
}

// gradRand returns n normal values from a fixed seed.
func gradRand(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// gradSameBits fails unless got holds exactly the bits of want.
func gradSameBits(t *testing.T, want, got []float32, what string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "bits differ", "%s: element %d: %v (%#x), want %v (%#x)",
				fmt.Sprintf(what, args...), i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// gradWorkload runs every backward op on inputs big enough to be split
// across goroutines and returns the results by name.
func gradWorkload(be *cpu.Backend) map[string][]float32 {
	const (
		nb, tt, h, dh = 2, 64, 4, 32
		lnRows, lnD   = 96, 768
		n             = 100_003
	)
	valid := make([]int32, nb*tt)
	for i := range valid {
		valid[i] = int32(min(1, (i+3)%7))
	}
	mask := engine.AttnMask{Causal: true, KeyValid: valid}
	q := be.FromHost(gradRand(1, nb*tt*h*dh), nb, tt, h, dh)
	k := be.FromHost(gradRand(2, nb*tt*h*dh), nb, tt, h, dh)
	v := be.FromHost(gradRand(3, nb*tt*h*dh), nb, tt, h, dh)
	dz := be.FromHost(gradRand(4, nb*tt*h*dh), nb, tt, h, dh)
	scale := float32(1 / math.Sqrt(dh))
	p := be.Softmax(be.AttnScores(q, k, scale, mask))
	dp, dv := be.AttnMixBackward(dz, p, v)
	ds := be.SoftmaxBackward(p, dp)
	dq, dk := be.AttnScoresBackward(ds, q, k, scale)

	lx := be.FromHost(gradRand(5, lnRows*lnD), lnRows, lnD)
	g := be.FromHost(gradRand(6, lnD), lnD)
	ldy := be.FromHost(gradRand(7, lnRows*lnD), lnRows, lnD)
	x := be.FromHost(gradRand(8, n), n)
	dy := be.FromHost(gradRand(9, n), n)
	idx := make([]int, 900)
	for i := range idx {
		idx[i] = i * 7 % 300
	}
	sx := be.FromHost(gradRand(10, len(idx)*lnD), len(idx), lnD)
	return map[string][]float32{
		"AttnMixBackward/dpattern":  dp.Host(),
		"AttnMixBackward/dv":        dv.Host(),
		"SoftmaxBackward":           ds.Host(),
		"AttnScoresBackward/dq":     dq.Host(),
		"AttnScoresBackward/dk":     dk.Host(),
		"LayerNormBackward":         be.LayerNormBackward(lx, g, ldy, 1e-5).Host(),
		"GELUBackward/tanh":         be.GELUBackward(x, dy, engine.GELUTanh).Host(),
		"GELUBackward/erf":          be.GELUBackward(x, dy, engine.GELUErf).Host(),
		"TanhBackward":              be.TanhBackward(be.Tanh(x), dy).Host(),
		"ScatterRows":               be.ScatterRows(sx, idx, 300).Host(),
		"ConcatLast":                be.ConcatLast(lx, ldy).Host(),
		"ConcatLast/three":          be.ConcatLast(q, k, v).Host(),
		"AttnScoresBackward/sparse": func() []float32 { a, _ := be.AttnScoresBackward(dp, q, k, scale); return a.Host() }(),
	}
}

// TestGradDeterminism checks that every backward op gives the same bits for
// 1, 2 and 3 workers, and from run to run.
func TestGradDeterminism(t *testing.T) {
	want := gradWorkload(cpu.New(cpu.WithWorkers(1)))
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			got := gradWorkload(cpu.New(cpu.WithWorkers(workers)))
			require.Len(t, got, len(want))
			for name, w := range want {
				gradSameBits(t, w, got[name], "%s", name)
			}
		})
	}
}

// TestGradBatchIndependence checks that the attention and layer norm
// backward of a batch have the bits of each sequence run alone, including a
// right-padded sequence run at its true length. The gradient of the padded
// queries' outputs is zero, as it is for any loss that ignores padding.
func TestGradBatchIndependence(t *testing.T) {
	const (
		nb, tt, h, dh = 2, 9, 3, 16
		d             = h * dh
		short         = 6 // true length of the second sequence
	)
	be := cpu.New()
	qd, kd, vd := gradRand(11, nb*tt*d), gradRand(12, nb*tt*d), gradRand(13, nb*tt*d)
	dzd := gradRand(14, nb*tt*d)
	clear(dzd[(tt+short)*d:]) // padded queries of the second sequence
	g := be.FromHost(gradRand(15, d), d)
	scale := float32(0.25)

	type result struct{ dp, ds, dq, dk, dv, ln []float32 }
	run := func(nb, tt int, q, k, v, dz []float32, mask engine.AttnMask) result {
		qt, kt, vt := be.FromHost(q, nb, tt, h, dh), be.FromHost(k, nb, tt, h, dh), be.FromHost(v, nb, tt, h, dh)
		p := be.Softmax(be.AttnScores(qt, kt, scale, mask))
		dp, dv := be.AttnMixBackward(be.FromHost(dz, nb, tt, h, dh), p, vt)
		ds := be.SoftmaxBackward(p, dp)
		dq, dk := be.AttnScoresBackward(ds, qt, kt, scale)
		ln := be.LayerNormBackward(qt.Reshape(nb, tt, d), g, be.FromHost(dz, nb, tt, d), 1e-5)
		return result{dp.Host(), ds.Host(), dq.Host(), dk.Host(), dv.Host(), ln.Host()}
	}
	valid := make([]int32, nb*tt)
	for i := range valid {
		if i < tt+short {
			valid[i] = 1
		}
	}
	batch := run(nb, tt, qd, kd, vd, dzd, engine.AttnMask{Causal: true, KeyValid: valid})
	for b, length := range []int{tt, short} {
		t.Run(fmt.Sprintf("sequence %d", b), func(t *testing.T) {
			seq := func(x []float32) []float32 { return x[b*tt*d : b*tt*d+length*d] }
			one := run(1, length, seq(qd), seq(kd), seq(vd), seq(dzd), engine.AttnMask{Causal: true})
			per := tt * d
			for i := range length {
				row := func(x []float32, base int) []float32 { return x[base+i*d : base+(i+1)*d] }
				gradSameBits(t, row(one.dq, 0), row(batch.dq, b*per), "dq row %d", i)
				gradSameBits(t, row(one.dk, 0), row(batch.dk, b*per), "dk row %d", i)
				gradSameBits(t, row(one.dv, 0), row(batch.dv, b*per), "dv row %d", i)
				gradSameBits(t, row(one.ln, 0), row(batch.ln, b*per), "layer norm row %d", i)
				for hh := range h {
					br := ((b*h+hh)*tt + i) * tt
					or := (hh*length + i) * length
					gradSameBits(t, one.dp[or:or+length], batch.dp[br:br+length], "dpattern head %d row %d", hh, i)
					gradSameBits(t, one.ds[or:or+length], batch.ds[br:br+length], "dscores head %d row %d", hh, i)
				}
			}
		})
	}
}

// TestGradMaskedNonFinite checks that values behind masked entries never
// reach a gradient: NaN in dy where y is 0, in keys and queries whose
// dscores are 0, and in dz rows whose pattern weights are 0.
func TestGradMaskedNonFinite(t *testing.T) {
	be := cpu.New()
	nan := float32(math.NaN())
	finite := func(t *testing.T, x *engine.Tensor) {
		t.Helper()
		for i, v := range x.Host() {
			require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "element %d is %v", i, v)
		}
	}
	t.Run("SoftmaxBackward", func(t *testing.T) {
		inf := float32(math.Inf(-1))
		y := be.Softmax(be.FromHost([]float32{1, inf, 2, inf, inf, inf}, 2, 3))
		dx := be.SoftmaxBackward(y, be.FromHost([]float32{1, nan, 2, nan, float32(math.Inf(1)), 3}, 2, 3))
		finite(t, dx)
		require.Equal(t, []float32{0, 0, 0}, dx.Host()[3:])
	})
	t.Run("AttnScoresBackward", func(t *testing.T) {
		// One query, three keys; the last key is padding full of NaN.
		q := be.FromHost(gradRand(1, 4), 1, 1, 1, 4)
		k := be.FromHost(append(gradRand(2, 8), nan, nan, nan, nan), 1, 3, 1, 4)
		ds := be.FromHost([]float32{0.5, -1, 0}, 1, 1, 1, 3)
		dq, dk := be.AttnScoresBackward(ds, q, k, 0.5)
		finite(t, dq)
		finite(t, dk)
	})
	t.Run("AttnMixBackward", func(t *testing.T) {
		// Two queries; the second is padding, with NaN in dz and no weight.
		p := be.FromHost([]float32{0.25, 0.75, 0, 0}, 1, 1, 2, 2)
		v := be.FromHost(gradRand(3, 8), 1, 2, 1, 4)
		dz := be.FromHost(append(gradRand(4, 4), nan, nan, nan, nan), 1, 2, 1, 4)
		_, dv := be.AttnMixBackward(dz, p, v)
		finite(t, dv)
	})
}

// TestGradPanicMessages checks that shape errors panic with a message that
// names the op, and that an empty ConcatLast panics.
func TestGradPanicMessages(t *testing.T) {
	be := cpu.New()
	x := be.Zeros(2, 5)
	tests := []struct {
		op string
		f  func()
	}{
		{"LayerNormBackward", func() { be.LayerNormBackward(x, be.Zeros(5), be.Zeros(5, 2), 1e-5) }},
		{"GELUBackward", func() { be.GELUBackward(x, be.Zeros(10), engine.GELUErf) }},
		{"GELUBackward", func() { be.GELUBackward(x, x, engine.Activation(7)) }},
		{"TanhBackward", func() { be.TanhBackward(x, be.Zeros(2, 4)) }},
		{"SoftmaxBackward", func() { be.SoftmaxBackward(x, nil) }},
		{"AttnScoresBackward", func() { be.AttnScoresBackward(be.Zeros(1, 1, 3, 2), be.Zeros(1, 2, 1, 4), be.Zeros(1, 3, 1, 4), 1) }},
		{"AttnMixBackward", func() { be.AttnMixBackward(be.Zeros(1, 2, 1, 4), be.Zeros(1, 1, 3, 3), be.Zeros(1, 3, 1, 4)) }},
		{"ConcatLast", func() { be.ConcatLast() }},
		{"ConcatLast", func() { be.ConcatLast(be.Zeros(2, 3), be.Zeros()) }},
		{"ScatterRows", func() { be.ScatterRows(x, []int{0, 1}, -1) }},
		{"ScatterRows", func() { be.ScatterRows(be.Zeros(), []int{0}, 1) }},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d %s", i, tc.op), func(t *testing.T) {
			defer func() {
				r := recover()
				require.NotNil(t, r, "no panic")
				msg := fmt.Sprint(r)
				require.True(t, strings.HasPrefix(msg, "cpu: "+tc.op+":"), "panic %q", msg)
			}()
			tc.f()
		})
	}
}

// BenchmarkAttnBackward times the backward of one GPT-2 layer's causal
// self-attention over T=128 tokens: mix, softmax and scores.
func BenchmarkAttnBackward(b *testing.B) {
	const t, h, dh = 128, 12, 64
	for _, workers := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			be := cpu.New(cpu.WithWorkers(workers))
			q := be.FromHost(gradRand(1, t*h*dh), 1, t, h, dh)
			k := be.FromHost(gradRand(2, t*h*dh), 1, t, h, dh)
			v := be.FromHost(gradRand(3, t*h*dh), 1, t, h, dh)
			dz := be.FromHost(gradRand(4, t*h*dh), 1, t, h, dh)
			scale := float32(1 / math.Sqrt(dh))
			p := be.Softmax(be.AttnScores(q, k, scale, engine.AttnMask{Causal: true}))
			for b.Loop() {
				dp, _ := be.AttnMixBackward(dz, p, v)
				be.AttnScoresBackward(be.SoftmaxBackward(p, dp), q, k, scale)
			}
		})
	}
}
