package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/engine/gpu"
)

// newBackend returns a backend on GPU 0, or skips the test on a machine
// without a driver or a GPU. A test's backend has Poison on; a
// benchmark's has not, as the NaN fill of every new tensor would be timed
// with the ops.
func newBackend(tb testing.TB, opts gpu.Options) *gpu.Backend {
	tb.Helper()
	if _, err := cuda.Load(); err != nil { // no driver, or no GPU
		tb.Skipf("no GPU: %v", err)
	}
	_, bench := tb.(*testing.B)
	opts.Poison = !bench
	b, err := gpu.New(opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, b.Close()) })
	return b
}

// TestNoDriver checks the error on a machine without the CUDA driver: it
// names the library and wraps cuda.ErrNoDriver.
func TestNoDriver(t *testing.T) {
	if _, err := cuda.Load(); err == nil {
		t.Skip("this machine has a CUDA driver")
	}
	_, err := gpu.New(gpu.Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, cuda.ErrNoDriver)
	assert.Contains(t, err.Error(), "libcuda.so.1")
}

// TestConformance runs the backend conformance suite (float64 references,
// masking, shapes, panics) on the GPU, with every new tensor poisoned.
func TestConformance(t *testing.T) {
	b := newBackend(t, gpu.Options{})
	t.Logf("device: %s", b.Name())
	backendtest.Run(t, b)
	backendtest.RunGrad(t, b)
}

// seed returns a fresh seed and logs it, so a failure can be replayed.
func seed(t *testing.T) *rand.Rand {
	s := uint64(time.Now().UnixNano())
	t.Logf("seed %d", s)
	return rand.New(rand.NewPCG(s, 0x5eed))
}

func randn(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return v
}

// relDiff returns max|got-want| / max|want|, or +Inf when got has a NaN
// (an unwritten, poisoned element) or a length other than want's.
func relDiff(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) || math.IsInf(g, 0) != math.IsInf(w, 0) {
			return math.Inf(1)
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			continue
		}
		diff = math.Max(diff, math.Abs(g-w))
		scale = math.Max(scale, math.Abs(w))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// parityCase is one op at a realistic size, run on the CPU backend (the
// reference) and on the GPU from the same random inputs.
type parityCase struct {
	name   string
	shapes [][]int // the inputs' shapes, filled with N(0, 1)
	op     func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor
	tol    float64
	work   int // multiply-adds, for the emulated device (0: small)
}

func matmulCase(m, k, n int, transW, bias bool, tol float64) parityCase {
	ws := []int{k, n}
	if transW {
		ws = []int{n, k}
	}
	shapes := [][]int{{m, k}, ws}
	if bias {
		shapes = append(shapes, []int{n})
	}
	return parityCase{
		name:   fmt.Sprintf("MatMul/M=%d,K=%d,N=%d,transW=%v,bias=%v", m, k, n, transW, bias),
		shapes: shapes,
		work:   m * k * n,
		op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
			var bs *engine.Tensor
			if len(in) > 2 {
				bs = in[2]
			}
			return []*engine.Tensor{b.MatMul(in[0], in[1], bs, transW)}
		},
		tol: tol,
	}
}

func matmulGELUCase(m, k, n int, transW bool, kind engine.Activation, tol float64) parityCase {
	ws := []int{k, n}
	if transW {
		ws = []int{n, k}
	}
	return parityCase{
		name:   fmt.Sprintf("MatMulGELU/M=%d,K=%d,N=%d,transW=%v,kind=%d", m, k, n, transW, kind),
		shapes: [][]int{{m, k}, ws, {n}},
		work:   m * k * n,
		op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
			return []*engine.Tensor{b.MatMulGELU(in[0], in[1], in[2], transW, kind)}
		},
		tol: tol,
	}
}

func attentionCases() []parityCase {
	mask := func(nb, tk, pad int, causal bool, qoff int) engine.AttnMask {
		m := engine.AttnMask{Causal: causal, QueryOffset: qoff}
		if pad > 0 { // the last pad keys of every other sequence are padding
			m.KeyValid = make([]int32, nb*tk)
			for bi := range nb {
				for j := range tk {
					if bi%2 == 0 || j < tk-pad {
						m.KeyValid[bi*tk+j] = 1
					}
				}
			}
		}
		return m
	}
	var cases []parityCase
	for _, c := range []struct {
		nb, tq, tk, h, dh, pad int
		causal                 bool
	}{
		{2, 130, 130, 12, 64, 7, true},    // prefill with padding
		{1, 1, 129, 12, 64, 0, true},      // a decode step
		{3, 33, 33, 4, 15, 5, false},      // BERT-like, odd head size
		{1, 512, 512, 12, 64, 0, true},    // a long prefill
		{2, 5, 9, 2, 128, 0, true},        // the largest fused head
		{1, 4, 6, 2, 130, 0, false},       // unfused fallback
		{2, 64, 70, 3, 32, 70 - 64, true}, // causal with cached keys
		{2, 40, 45, 3, 128, 3, true},      // the tiled kernel's 32-query layout
		{1, 70, 70, 2, 100, 0, false},     // the same, Dh not a power of two
	} {
		qoff := c.tk - c.tq
		m := mask(c.nb, c.tk, c.pad, c.causal, qoff)
		scale := float32(1 / math.Sqrt(float64(c.dh)))
		name := fmt.Sprintf("B=%d,Tq=%d,Tk=%d,H=%d,Dh=%d,pad=%d,causal=%v", c.nb, c.tq, c.tk, c.h, c.dh, c.pad, c.causal)
		q, kv := []int{c.nb, c.tq, c.h, c.dh}, []int{c.nb, c.tk, c.h, c.dh}
		cases = append(cases,
			parityCase{name: "Attention/" + name, shapes: [][]int{q, kv, kv}, tol: 1e-5,
				op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
					return []*engine.Tensor{b.Attention(in[0], in[1], in[2], scale, m)}
				}},
			parityCase{name: "AttnScoresSoftmaxMix/" + name, shapes: [][]int{q, kv, kv}, tol: 1e-5,
				op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
					s := b.AttnScores(in[0], in[1], scale, m)
					p := b.Softmax(s)
					return []*engine.Tensor{s, p, b.AttnMix(p, in[2])}
				}},
			parityCase{name: "AttnBackward/" + name, shapes: [][]int{q, kv, kv, q}, tol: 1e-5,
				op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
					p := b.Softmax(b.AttnScores(in[0], in[1], scale, m))
					dp, dv := b.AttnMixBackward(in[3], p, in[2])
					ds := b.SoftmaxBackward(p, dp)
					dq, dk := b.AttnScoresBackward(ds, in[0], in[1], scale)
					return []*engine.Tensor{dp, dv, ds, dq, dk}
				}},
		)
	}
	return cases
}

func parityCases(tf32 bool) []parityCase {
	tol := 1e-5
	if tf32 {
		tol = 1e-2
	}
	var cases []parityCase
	for _, s := range [][3]int{{128, 768, 2304}, {128, 768, 3072}, {512, 3072, 768}, {4096, 768, 3072}, {37, 61, 53}, {9, 8, 1}, {130, 33, 129}} {
		for _, transW := range []bool{false, true} {
			cases = append(cases, matmulCase(s[0], s[1], s[2], transW, true, tol))
		}
	}
	cases = append(cases, matmulCase(128, 768, 50257, true, false, tol), matmulCase(64, 100, 70, false, false, tol))
	// The GELU epilogue on each of MatMul's paths at the MLP's shapes: the
	// skinny kernel (decode), split-K (128 rows), the 128×128 tiles (4096
	// rows), and odd sizes; BERT's erf form with w [N, K].
	for _, s := range [][3]int{{1, 768, 3072}, {8, 768, 3072}, {128, 768, 3072}, {4096, 768, 3072}, {37, 61, 53}} {
		for _, kind := range []engine.Activation{engine.GELUTanh, engine.GELUErf} {
			cases = append(cases, matmulGELUCase(s[0], s[1], s[2], kind == engine.GELUErf, kind, tol))
		}
	}
	if tf32 {
		return cases
	}
	for _, s := range [][3]int{{1, 768, 50257}, {1, 768, 2304}, {5, 3072, 768}, {8, 768, 3072}, {3, 17, 45}} {
		for _, transW := range []bool{false, true} {
			cases = append(cases, matmulCase(s[0], s[1], s[2], transW, true, 1e-5))
		}
	}
	cases = append(cases, attentionCases()...)
	cases = append(cases,
		parityCase{name: "LayerNorm/4096x768", shapes: [][]int{{4096, 768}, {768}, {768}, {4096, 768}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.LayerNorm(in[0], in[1], in[2], 1e-5), b.LayerNormScale(in[0], 1e-5),
					b.LayerNormBackward(in[0], in[1], in[3], 1e-5)}
			}},
		parityCase{name: "LayerNorm/7x1000", shapes: [][]int{{7, 1000}, {1000}, {1000}, {7, 1000}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.LayerNorm(in[0], in[1], in[2], 1e-12), b.LayerNormScale(in[0], 1e-12),
					b.LayerNormBackward(in[0], in[1], in[3], 1e-12)}
			}},
		parityCase{name: "AddLayerNorm/8x512x768", shapes: [][]int{{8, 512, 768}, {8, 512, 768}, {768}, {768}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				sum, normed := b.AddLayerNorm(in[0], in[1], in[2], in[3], 1e-5)
				return []*engine.Tensor{sum, normed}
			}},
		parityCase{name: "AddLayerNorm/7x1000", shapes: [][]int{{7, 1000}, {7, 1000}, {1000}, {1000}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				sum, normed := b.AddLayerNorm(in[0], in[1], in[2], in[3], 1e-12)
				return []*engine.Tensor{sum, normed}
			}},
		parityCase{name: "GELU/4096x3072", shapes: [][]int{{4096, 3072}, {4096, 3072}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.GELU(in[0], engine.GELUTanh), b.GELU(in[0], engine.GELUErf),
					b.GELUBackward(in[0], in[1], engine.GELUTanh), b.GELUBackward(in[0], in[1], engine.GELUErf)}
			}},
		parityCase{name: "Tanh/1000x768", shapes: [][]int{{1000, 768}, {1000, 768}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				y := b.Tanh(in[0])
				return []*engine.Tensor{y, b.TanhBackward(y, in[1])}
			}},
		parityCase{name: "Softmax/96x1000", shapes: [][]int{{96, 1000}, {96, 1000}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				y := b.Softmax(in[0])
				return []*engine.Tensor{y, b.SoftmaxBackward(y, in[1])}
			}},
		parityCase{name: "Add/broadcast", shapes: [][]int{{8, 512, 768}, {512, 768}}, tol: 0,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.Add(in[0], in[1])}
			}},
		parityCase{name: "HeadResult/2x130x12x64", shapes: [][]int{{2, 130, 12, 64}, {768, 768}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.HeadResult(in[0], in[1], false), b.HeadResult(in[0], in[1], true)}
			}},
		parityCase{name: "SumAxis/2x130x12x768", shapes: [][]int{{2, 130, 12, 768}}, tol: 1e-5,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.SumAxis(in[0], 2), b.SumAxis(in[0], 0), b.SumAxis(in[0], -1)}
			}},
		// ScatterRows accumulates repeated rows in float32, the CPU in float64.
		parityCase{name: "Copies", shapes: [][]int{{4, 100, 2304}, {4, 3, 2304}}, tol: 1e-6,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				q := b.SliceLast(in[0], 768, 1536)
				return []*engine.Tensor{q, b.Concat(in[0], in[1]), b.ConcatLast(q, in[0], q),
					b.Rows(in[0], []int{399, 0, 5, 5}), b.ScatterRows(in[1], []int{3, 0, 3, 7, 7, 7, 1, 3, 3, 3, 2, 0}, 9)}
			}},
		parityCase{name: "Embedding", shapes: [][]int{{50257, 768}}, tol: 0,
			op: func(b engine.GradBackend, in []*engine.Tensor) []*engine.Tensor {
				return []*engine.Tensor{b.Embedding(in[0], []int32{0, 50256, 7, 7, 1234})}
			}},
	)
	return cases
}

// TestOpsMatchCPU is llm.c's discipline per kernel: fresh random inputs,
// the CPU backend's op as the reference, outputs poisoned with NaN before
// the run, every element checked.
func TestOpsMatchCPU(t *testing.T) {
	for _, prec := range []gpu.Precision{gpu.FP32, gpu.TF32, gpu.BF16} {
		t.Run(prec.String(), func(t *testing.T) {
			g := newBackend(t, gpu.Options{MatMul: prec})
			c := cpu.New()
			for _, tc := range parityCases(prec != gpu.FP32) {
				t.Run(tc.name, func(t *testing.T) {
					if gpu.TooBigForEmulator(g, tc.work) {
						t.Skip("card-sized: left out on the emulated device")
					}
					r := seed(t)
					var cin, gin []*engine.Tensor
					for _, s := range tc.shapes {
						v := randn(r, engine.NumElements(s), 1)
						cin = append(cin, c.FromHost(v, s...))
						gin = append(gin, g.FromHost(v, s...))
					}
					want := tc.op(c, cin)
					got := tc.op(g, gin)
					require.NoError(t, g.Sync())
					require.Len(t, got, len(want))
					for i := range want {
						assert.Equal(t, want[i].Shape(), got[i].Shape(), "output %d", i)
						d := relDiff(g.ToHost(got[i]), c.ToHost(want[i]))
						assert.LessOrEqual(t, d, tc.tol, "output %d: max|gpu-cpu|/max|cpu|", i)
						t.Logf("output %d %v: rel diff %.3g", i, want[i].Shape(), d)
					}
				})
			}
		})
	}
}

// TestEditMatchesCPU applies each intervention mode through Edit on both
// backends, with a device source and a host source.
func TestEditMatchesCPU(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	c := cpu.New()
	r := seed(t)
	x := randn(r, 2*130*3072, 1)
	src := randn(r, 130*3072, 1)
	var e engine.Edit
	e.Mode = engine.EditSet
	e.Dims = [engine.MaxEditDims]int{2, 1, 130, 1, 2}
	e.Strides = [engine.MaxEditDims]int{130 * 3072, 0, 3072, 0, 1000}
	e.Offset = 75
	e.SourceStrides = [engine.MaxEditDims]int{0, 0, 3072, 0, 1}
	e.SourceOffset = 75
	for _, hostSource := range []bool{false, true} {
		for _, mode := range []engine.EditMode{engine.EditZero, engine.EditSet, engine.EditAdd, engine.EditScale} {
			t.Run(fmt.Sprintf("mode=%d,hostSource=%v", mode, hostSource), func(t *testing.T) {
				ct, gt := c.FromHost(append([]float32(nil), x...), 2, 130, 3072), g.FromHost(x, 2, 130, 3072)
				ce, ge := e, e
				ce.Mode, ge.Mode, ce.Value, ge.Value = mode, mode, 0.5, 0.5
				ce.Source = c.FromHost(src, 130, 3072)
				ge.Source = engine.NewHost(src, 130, 3072)
				if !hostSource {
					ge.Source = g.FromHost(src, 130, 3072)
				}
				c.Edit(ct, ce)
				g.Edit(gt, ge)
				require.NoError(t, g.Sync())
				assert.Zero(t, relDiff(g.ToHost(gt), ct.Host()))
			})
		}
	}
}

// TestAddLayerNormBits checks that AddLayerNorm has exactly the bits of Add
// then LayerNorm on the device (fx_add_layernorm repeats fx_add's addition
// and fx_layernorm's steps), so that a forward pass gives the same bits
// whether a hook splits the two ops or not.
func TestAddLayerNormBits(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	r := seed(t)
	for _, shape := range [][]int{{1, 768}, {8, 512, 768}, {7, 1000}, {3, 1}, {70000, 4}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			if shape[0] == 70000 && gpu.ThinOnEmulator(g) {
				t.Skip("70 000 blocks: FX_EMULATED_FULL=1 runs it on the emulated device")
			}
			n, d := engine.NumElements(shape), shape[len(shape)-1]
			x, delta := g.FromHost(randn(r, n, 1), shape...), g.FromHost(randn(r, n, 1), shape...)
			gamma, beta := g.FromHost(randn(r, d, 1), d), g.FromHost(randn(r, d, 1), d)
			sum, normed := g.AddLayerNorm(x, delta, gamma, beta, 1e-5)
			wantSum := g.Add(x, delta)
			wantNormed := g.LayerNorm(wantSum, gamma, beta, 1e-5)
			require.NoError(t, g.Sync())
			for _, c := range []struct {
				name      string
				got, want []float32
			}{
				{"sum", g.ToHost(sum), g.ToHost(wantSum)},
				{"normed", g.ToHost(normed), g.ToHost(wantNormed)},
			} {
				require.Len(t, c.got, len(c.want), c.name)
				for i := range c.want {
					if math.Float32bits(c.got[i]) != math.Float32bits(c.want[i]) {
						require.Failf(t, "bits differ", "%s element %d: %v, want %v", c.name, i, c.got[i], c.want[i])
					}
				}
			}
		})
	}
}

// TestCapture checks a captured graph against the values its ops must
// give: each replay reads the index it gathers and writes at from device
// memory, as a decode step reads its token and position, and advances it;
// a replay counts as one launch. An op that cannot be captured fails the
// capture, not the backend, and a panic while recording ends the capture.
func TestCapture(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	r := seed(t)
	const rows, d = 10, 8
	tableVals := randn(r, rows*d, 1)
	table := g.FromHost(tableVals, rows, d)
	idx := g.Zeros(1)
	dst := g.Zeros(1, 6, d)
	one := [engine.MaxEditDims]int{1, 1, 1, 1, 1}
	var doubled *engine.Tensor
	graph, err := g.Capture(func() {
		row := g.Gather(table, idx)
		g.SetRowsAt(dst, row.Reshape(1, 1, d), idx)
		doubled = g.Add(row, row)
		g.Edit(idx, engine.Edit{Mode: engine.EditAdd, Value: 1, Dims: one})
	})
	require.NoError(t, err)
	assert.Equal(t, 4, graph.(*gpu.Graph).Kernels(), "kernels in the graph")
	assert.Equal(t, []float32{0}, g.ToHost(idx), "capture ran nothing")

	before := g.Launches()
	for i := range 7 {
		graph.Replay()
		got := g.ToHost(doubled)
		require.NoError(t, g.Sync())
		for c := range d {
			if i < rows {
				assert.Equal(t, 2*tableVals[i*d+c], got[c], "replay %d, column %d", i, c)
			}
		}
	}
	assert.Equal(t, before+7, g.Launches(), "one launch a replay")
	want := make([]float32, 6*d)
	copy(want, tableVals[:6*d]) // replay 6 wrote past the end: nothing
	assert.Equal(t, want, g.ToHost(dst))
	require.NoError(t, graph.Close())

	_, err = g.Capture(func() { g.ToHost(table) })
	require.Error(t, err, "a copy back cannot be captured")
	assert.Contains(t, err.Error(), "ToHost")
	assert.Panics(t, func() { g.Capture(func() { panic("record failed") }) })
	require.NoError(t, g.Sync(), "the backend stays usable")
	graph, err = g.Capture(func() { doubled = g.Add(table, table) })
	require.NoError(t, err)
	graph.Replay()
	got := g.ToHost(doubled)
	require.NoError(t, g.Sync())
	for i, v := range tableVals {
		assert.Equal(t, 2*v, got[i])
	}
	require.NoError(t, graph.Close())
}
