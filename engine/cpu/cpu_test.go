package cpu_test

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/cpu"
)

func TestConformance(t *testing.T) {
	for _, kn := range cpu.AvailableKernels() {
		for _, workers := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/workers=%d", kn, workers), func(t *testing.T) {
				backendtest.Run(t, cpu.New(cpu.WithKernels(kn), cpu.WithWorkers(workers)))
			})
		}
	}
}

func TestHostAliasing(t *testing.T) {
	be := cpu.New()
	data := []float32{1, 2, 3, 4, 5, 6}
	x := be.FromHost(data, 2, 3)
	require.Equal(t, []int{2, 3}, x.Shape())
	got := be.ToHost(x)
	require.Len(t, got, 6)
	assert.Same(t, &data[0], &got[0], "FromHost and ToHost alias the caller's slice")
	assert.NoError(t, be.Sync())
	assert.Equal(t, "cpu/"+string(be.Kernels()), be.Name())
	assert.Panics(t, func() { be.FromHost(data, 4, 2) })
}

// sameBits fails unless a and b hold bit-identical values.
func sameBits(t *testing.T, want, got []float32, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "bits differ", "element %d: %v (%#x), want %v (%#x): %v",
				i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]), fmt.Sprint(msgAndArgs...))
		}
	}
}

// workload runs a mix of ops big enough to be split across goroutines and
// returns their results.
func workload(be engine.Backend) map[string][]float32 {
	const (
		m, k, n     = 70, 300, 517
		nb, tt      = 2, 40
		h, dh       = 4, 32
		d           = h * dh
		lnRows, lnD = 96, 768
	)
	x := be.FromHost(randSlice(1, m*k), m, k)
	w := be.FromHost(randSlice(2, k*n), k, n)
	wt := be.FromHost(randSlice(3, n*k), n, k)
	bias := be.FromHost(randSlice(4, n), n)
	lx := be.FromHost(randSlice(5, lnRows*lnD), lnRows, lnD)
	g := be.FromHost(randSlice(6, lnD), lnD)
	beta := be.FromHost(randSlice(7, lnD), lnD)
	q := be.FromHost(randSlice(8, nb*tt*d), nb, tt, h, dh)
	kk := be.FromHost(randSlice(9, nb*tt*d), nb, tt, h, dh)
	v := be.FromHost(randSlice(10, nb*tt*d), nb, tt, h, dh)
	wo := be.FromHost(randSlice(11, d*n), d, n)
	valid := make([]int32, nb*tt)
	for i := range valid {
		valid[i] = int32(min(1, (i+3)%7))
	}
	mask := engine.AttnMask{Causal: true, KeyValid: valid}
	scores := be.AttnScores(q, kk, 0.125, mask)
	pattern := be.Softmax(scores)
	z := be.AttnMix(pattern, v)
	hr := be.HeadResult(z, wo, false)
	sum, normed := be.AddLayerNorm(lx, be.FromHost(randSlice(12, lnRows*lnD), lnRows, lnD), g, beta, 1e-5)
	return map[string][]float32{
		"AddLayerNorm sum":    sum.Host(),
		"AddLayerNorm normed": normed.Host(),
		"MatMulGELU":          be.MatMulGELU(x, w, bias, false, engine.GELUTanh).Host(),
		"MatMulGELU erf":      be.MatMulGELU(x, wt, bias, true, engine.GELUErf).Host(),
		"MatMul":              be.MatMul(x, w, bias, false).Host(),
		"MatMul transW":       be.MatMul(x, wt, bias, true).Host(),
		"LayerNorm":           be.LayerNorm(lx, g, beta, 1e-5).Host(),
		"LayerNormScale":      be.LayerNormScale(lx, 1e-5).Host(),
		"GELU":                be.GELU(lx, engine.GELUTanh).Host(),
		"AttnScores":          scores.Host(),
		"Softmax":             pattern.Host(),
		"AttnMix":             z.Host(),
		"Attention":           be.Attention(q, kk, v, 0.125, mask).Host(),
		"HeadResult":          hr.Host(),
		"SumAxis":             be.SumAxis(hr, 2).Host(),
	}
}

// TestDeterminismWorkers checks that results are bit-identical for any
// worker count and GOMAXPROCS, with every set of kernels.
func TestDeterminismWorkers(t *testing.T) {
	for _, kn := range cpu.AvailableKernels() {
		t.Run(string(kn), func(t *testing.T) {
			want := workload(cpu.New(cpu.WithKernels(kn), cpu.WithWorkers(1)))
			check := func(t *testing.T, got map[string][]float32) {
				for op, w := range want {
					sameBits(t, w, got[op], op)
				}
			}
			for _, workers := range []int{1, 2, 3, 7} {
				t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
					check(t, workload(cpu.New(cpu.WithKernels(kn), cpu.WithWorkers(workers))))
				})
			}
			prev := runtime.GOMAXPROCS(0)
			t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
			for _, procs := range []int{1, 2, 5} {
				t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
					runtime.GOMAXPROCS(procs)
					check(t, workload(cpu.New(cpu.WithKernels(kn))))
				})
			}
		})
	}
}

// TestDeterminismRows checks that each row of a MatMul has the bits of the
// same row multiplied alone, and of the same row among any other number of
// rows, with every set of kernels.
func TestDeterminismRows(t *testing.T) {
	const k, n = 768, 100
	for kn, be := range kernelSets(t) {
		for _, transW := range []bool{false, true} {
			wShape := []int{k, n}
			if transW {
				wShape = []int{n, k}
			}
			w := be.FromHost(randSlice(2, k*n), wShape...)
			bias := be.FromHost(randSlice(3, n), n)
			for _, m := range []int{1, 5, 8, 13, 128, 250} {
				t.Run(fmt.Sprintf("%s/M=%d/transW=%v", kn, m, transW), func(t *testing.T) {
					xd := randSlice(uint64(m), m*k)
					all := be.MatMul(be.FromHost(xd, m, k), w, bias, transW).Host()
					for i := range m {
						one := be.MatMul(be.FromHost(xd[i*k:(i+1)*k], 1, k), w, bias, transW).Host()
						sameBits(t, all[i*n:(i+1)*n], one, "row", i)
					}
					// Every prefix of the rows: the row remainders of every size.
					for _, p := range []int{2, 3, 4, 6, 7, 12, 121} {
						if p < m {
							part := be.MatMul(be.FromHost(xd[:p*k], p, k), w, bias, transW).Host()
							sameBits(t, all[:p*n], part, "first", p, "rows")
						}
					}
				})
			}
		}
	}
}

// TestDeterminismBatch checks that attention, the head results and layer
// norm of a batch have the bits of each sequence run alone, including a
// right-padded sequence run at its true length.
func TestDeterminismBatch(t *testing.T) {
	for kn, be := range kernelSets(t) {
		t.Run(string(kn), func(t *testing.T) { testDeterminismBatch(t, be) })
	}
}

func testDeterminismBatch(t *testing.T, be *cpu.Backend) {
	const (
		nb, tt, h, dh = 2, 9, 3, 16
		d             = h * dh
		short         = 6 // true length of the second sequence
	)
	qd, kd, vd := randSlice(1, nb*tt*d), randSlice(2, nb*tt*d), randSlice(3, nb*tt*d)
	wo := be.FromHost(randSlice(4, d*20), d, 20)
	g, beta := be.FromHost(randSlice(5, d), d), be.FromHost(randSlice(6, d), d)
	scale := float32(0.25)

	type result struct{ scores, pattern, z, hr, ln []float32 }
	run := func(nb, tt int, q, k, v []float32, mask engine.AttnMask) result {
		qt := be.FromHost(q, nb, tt, h, dh)
		s := be.AttnScores(qt, be.FromHost(k, nb, tt, h, dh), scale, mask)
		p := be.Softmax(s)
		z := be.AttnMix(p, be.FromHost(v, nb, tt, h, dh))
		return result{
			scores:  s.Host(),
			pattern: p.Host(),
			z:       z.Host(),
			hr:      be.HeadResult(z, wo, false).Host(),
			ln:      be.LayerNorm(qt.Reshape(nb, tt, d), g, beta, 1e-5).Host(),
		}
	}
	valid := make([]int32, nb*tt)
	for i := range valid {
		if i < tt+short {
			valid[i] = 1
		}
	}
	batch := run(nb, tt, qd, kd, vd, engine.AttnMask{Causal: true, KeyValid: valid})
	for b, length := range []int{tt, short} {
		t.Run(fmt.Sprintf("sequence %d", b), func(t *testing.T) {
			// The sequence alone, at its true length.
			seq := func(x []float32) []float32 { return x[b*tt*d : b*tt*d+length*d] }
			one := run(1, length, seq(qd), seq(kd), seq(vd), engine.AttnMask{Causal: true})
			per := tt * d // batch elements per sequence in [B, T, ...] outputs
			for i := range length {
				sameBits(t, one.z[i*d:(i+1)*d], batch.z[b*per+i*d:b*per+(i+1)*d], "z row", i)
				sameBits(t, one.hr[i*h*20:(i+1)*h*20], batch.hr[b*tt*h*20+i*h*20:b*tt*h*20+(i+1)*h*20], "head result row", i)
				sameBits(t, one.ln[i*d:(i+1)*d], batch.ln[b*per+i*d:b*per+(i+1)*d], "layer norm row", i)
				for hh := range h {
					br := ((b*h+hh)*tt + i) * tt // row (b, hh, i) of [B, H, T, T]
					or := (hh*length + i) * length
					sameBits(t, one.scores[or:or+length], batch.scores[br:br+length], "scores head", hh, "row", i)
					sameBits(t, one.pattern[or:or+length], batch.pattern[br:br+length], "pattern head", hh, "row", i)
				}
			}
		})
	}
}

// TestAttentionBits checks that the fused Attention has exactly the bits of
// the three ops it fuses, with every mask and worker count.
func TestAttentionBits(t *testing.T) {
	const nb, tt, h, dh = 2, 37, 3, 64
	valid := make([]int32, nb*tt)
	for i := range valid {
		valid[i] = int32(min(1, (i+2)%5))
	}
	masks := map[string]engine.AttnMask{
		"none":           {},
		"causal":         {Causal: true},
		"causal padding": {Causal: true, KeyValid: valid},
		"offset":         {Causal: true, QueryOffset: 30},
		"fully masked":   {Causal: true, QueryOffset: -3},
	}
	for _, workers := range []int{1, 3} {
		be := cpu.New(cpu.WithWorkers(workers))
		for name, mask := range masks {
			t.Run(fmt.Sprintf("workers=%d/%s", workers, name), func(t *testing.T) {
				tq := tt
				if mask.QueryOffset > 0 {
					tq = tt - mask.QueryOffset // the last queries of the sequence
				}
				q := be.FromHost(randSlice(1, nb*tq*h*dh), nb, tq, h, dh)
				k := be.FromHost(randSlice(2, nb*tt*h*dh), nb, tt, h, dh)
				v := be.FromHost(randSlice(3, nb*tt*h*dh), nb, tt, h, dh)
				want := be.AttnMix(be.Softmax(be.AttnScores(q, k, 0.125, mask)), v)
				sameBits(t, want.Host(), be.Attention(q, k, v, 0.125, mask).Host())
			})
		}
	}
}

// TestAttentionKernelsBits checks that the attention ops give the same bits
// with every set of kernels: the SIMD dot products and mixes keep the
// pure-Go order (eight partial sums; products rounded before adding).
func TestAttentionKernelsBits(t *testing.T) {
	sets := kernelSets(t, cpu.WithWorkers(2))
	for _, dh := range []int{8, 24, 32, 64, 128} {
		const nb, tt, h = 2, 21, 3
		valid := make([]int32, nb*tt)
		for i := range valid {
			valid[i] = int32(min(1, (i+1)%4))
		}
		mask := engine.AttnMask{Causal: true, KeyValid: valid}
		t.Run(fmt.Sprintf("dh=%d", dh), func(t *testing.T) {
			var want map[string][]float32
			for kn, be := range sets {
				q := be.FromHost(randSlice(1, nb*tt*h*dh), nb, tt, h, dh)
				k := be.FromHost(randSlice(2, nb*tt*h*dh), nb, tt, h, dh)
				v := be.FromHost(randSlice(3, nb*tt*h*dh), nb, tt, h, dh)
				scores := be.AttnScores(q, k, 0.3, mask)
				got := map[string][]float32{
					"AttnScores": scores.Host(),
					"AttnMix":    be.AttnMix(be.Softmax(scores), v).Host(),
					"Attention":  be.Attention(q, k, v, 0.3, mask).Host(),
				}
				if want == nil {
					want = got
					continue
				}
				for op, w := range want {
					sameBits(t, w, got[op], kn, op)
				}
			}
		})
	}
}

// TestFusedBits checks that the fused ops have exactly the bits of the ops
// they fuse, with every set of kernels and worker count: AddLayerNorm those
// of Add then LayerNorm, MatMulGELU those of MatMul then GELU.
func TestFusedBits(t *testing.T) {
	for _, workers := range []int{1, 3} {
		for kn, be := range kernelSets(t, cpu.WithWorkers(workers)) {
			t.Run(fmt.Sprintf("%s/workers=%d/AddLayerNorm", kn, workers), func(t *testing.T) {
				for _, shape := range [][]int{{1, 768}, {2, 128, 768}, {37, 61}, {5, 1}} {
					n := engine.NumElements(shape)
					d := shape[len(shape)-1]
					x := be.FromHost(randSlice(1, n), shape...)
					delta := be.FromHost(randSlice(2, n), shape...)
					g, beta := be.FromHost(randSlice(3, d), d), be.FromHost(randSlice(4, d), d)
					sum, normed := be.AddLayerNorm(x, delta, g, beta, 1e-5)
					wantSum := be.Add(x, delta)
					sameBits(t, wantSum.Host(), sum.Host(), shape, "sum")
					sameBits(t, be.LayerNorm(wantSum, g, beta, 1e-5).Host(), normed.Host(), shape, "normed")
				}
			})
			t.Run(fmt.Sprintf("%s/workers=%d/MatMulGELU", kn, workers), func(t *testing.T) {
				for _, c := range []struct{ m, k, n int }{{1, 768, 3072}, {128, 768, 3072}, {13, 37, 61}, {9, 5, 3}} {
					for _, transW := range []bool{false, true} {
						for _, kind := range []engine.Activation{engine.GELUTanh, engine.GELUErf} {
							wShape := []int{c.k, c.n}
							if transW {
								wShape = []int{c.n, c.k}
							}
							x := be.FromHost(randSlice(5, c.m*c.k), c.m, c.k)
							w := be.FromHost(randSlice(6, c.k*c.n), wShape...)
							bias := be.FromHost(randSlice(7, c.n), c.n)
							want := be.GELU(be.MatMul(x, w, bias, transW), kind)
							sameBits(t, want.Host(), be.MatMulGELU(x, w, bias, transW, kind).Host(), c, transW, kind)
						}
					}
				}
			})
		}
	}
}
