package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
)

const h200SMs = 132 // H100 SXM and H200: 132 SMs

// normals returns n standard normal values from r.
func normals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// TestPlanMatMul pins planMatMul's choice at GPT-2's shapes on 132 SMs (the
// shapes of bench_test.go's BenchmarkMatMul).
func TestPlanMatMul(t *testing.T) {
	for _, c := range []struct {
		m, k, n       int
		transW        bool
		prec          Precision
		kernel        matmulKernel
		gx, gy, gz    int
		kchunk        int
		splits, block int
	}{
		// Decode: the skinny kernel, about 2 blocks per SM.
		{1, 3072, 768, false, FP32, mmSkinny, 6, 48, 1, 64, 48, 256},
		{1, 768, 2304, false, FP32, mmSkinny, 18, 12, 1, 64, 12, 256},
		{1, 768, 3072, false, FP32, mmSkinny, 24, 12, 1, 64, 12, 256},
		{1, 768, 50257, true, FP32, mmSkinny, 1571, 1, 1, 768, 1, 256},
		{1, 768, 50257, false, FP32, mmSkinny, 393, 1, 1, 768, 1, 256},
		{8, 768, 50257, true, FP32, mmSkinny, 1571, 1, 1, 768, 1, 256},
		{1, 3072, 768, true, FP32, mmSkinny, 24, 12, 1, 256, 12, 256},
		{1, 768, 2304, true, FP32, mmSkinny, 72, 6, 1, 128, 6, 256},
		{8, 768, 3072, false, TF32, mmSkinny, 24, 12, 1, 64, 12, 256}, // TF32 decodes in FP32 too
		// Mid-size M, FP32: 64×64 tiles, split-K below 2 blocks per SM.
		{128, 3072, 768, false, FP32, mmF32Tile64, 12, 2, 12, 272, 12, 128},
		{128, 768, 2304, false, FP32, mmF32Tile64, 36, 2, 4, 192, 4, 128},
		{128, 768, 768, false, FP32, mmF32Tile64, 12, 2, 12, 64, 12, 128},
		{512, 3072, 768, false, FP32, mmF32Tile64, 12, 8, 3, 1024, 3, 128},
		{512, 768, 3072, false, FP32, mmF32Tile64, 48, 8, 1, 768, 1, 128},
		{1024, 768, 768, false, FP32, mmF32Tile64, 12, 16, 2, 384, 2, 128},
		{9, 768, 3072, false, FP32, mmF32Tile64, 48, 1, 6, 128, 6, 128},
		// Large M, FP32: 128×128 tiles once they give a block per SM.
		{4096, 768, 3072, false, FP32, mmF32, 24, 32, 1, 768, 1, 256},
		{4096, 3072, 768, false, FP32, mmF32, 6, 32, 1, 3072, 1, 256},
		{4096, 768, 50257, false, FP32, mmF32, 393, 32, 1, 768, 1, 256},
		{4096, 768, 50257, true, FP32, mmF32, 393, 32, 1, 768, 1, 256},
		// TF32: 128×128 tiles, split-K up to a block per SM.
		{128, 3072, 768, false, TF32, mmTF32, 6, 1, 24, 128, 24, 256},
		{128, 768, 2304, false, TF32, mmTF32, 18, 1, 8, 96, 8, 256},
		{512, 3072, 768, false, TF32, mmTF32, 6, 4, 6, 512, 6, 256},
		{512, 768, 3072, false, TF32, mmTF32, 24, 4, 2, 384, 2, 256},
		{4096, 768, 3072, false, TF32, mmTF32, 24, 32, 1, 768, 1, 256},
		{4096, 768, 50257, true, TF32, mmTF32, 393, 32, 1, 768, 1, 256},
	} {
		name := fmt.Sprintf("%v/M=%d,K=%d,N=%d,transW=%v", c.prec, c.m, c.k, c.n, c.transW)
		t.Run(name, func(t *testing.T) {
			p := planMatMul(c.m, c.n, c.k, c.transW, c.prec, h200SMs, true)
			assert.Equal(t, c.kernel, p.kernel)
			assert.Equal(t, dim(c.gx, c.gy, c.gz), p.grid)
			assert.Equal(t, dim(c.block, 1, 1), p.block)
			assert.Equal(t, c.kchunk, p.kchunk)
			assert.Equal(t, c.splits, p.splits)
			checkPlan(t, p, c.m, c.n, c.k, c.transW, c.prec, h200SMs, true)
		})
	}
}

// TestPlanMatMulInvariants checks every plan over the kernels' edge shapes
// (sizes around the tiles, N odd, K below a chunk), both layouts, both
// precisions, with and without fx_matmul_tf32's shared memory, on several
// SM counts.
func TestPlanMatMulInvariants(t *testing.T) {
	seen := map[string]bool{}
	for _, sms := range []int{1, 2, 16, 108, 132, 144} {
		for _, m := range []int{1, 2, 5, 8, 9, 17, 64, 65, 127, 129, 512, 1024, 4096, 100000} {
			for _, n := range []int{1, 7, 768, 769, 3072, 50257} {
				for _, k := range []int{1, 5, 31, 33, 768, 3072, 100000} {
					for _, transW := range []bool{false, true} {
						for _, prec := range []Precision{FP32, TF32} {
							for _, tile128 := range []bool{true, false} {
								p := planMatMul(m, n, k, transW, prec, sms, tile128)
								checkPlan(t, p, m, n, k, transW, prec, sms, tile128)
								seen[fmt.Sprintf("%v/split=%v", p.kernel, p.splits > 1)] = true
							}
						}
					}
				}
			}
		}
	}
	// Every kernel is planned, with and without split-K (fx_matmul_f32
	// never splits).
	for _, k := range []matmulKernel{mmSkinny, mmF32Tile64, mmTF32, mmTF32Tile64} {
		assert.True(t, seen[fmt.Sprintf("%v/split=true", k)], "%v with split-K", k)
		assert.True(t, seen[fmt.Sprintf("%v/split=false", k)], "%v without split-K", k)
	}
	assert.True(t, seen["f32/split=false"])
}

// checkPlan checks what the kernels and MatMul rely on: the grid covers the
// output, the chunks cover k exactly with none empty, the chunk is a whole
// number of the kernel's k-steps where its vector paths need it, and the
// skinny and split grids fill the device as planned.
func checkPlan(t *testing.T, p matmulPlan, m, n, k int, transW bool, prec Precision, sms int, tile128 bool) {
	t.Helper()
	where := fmt.Sprintf("M=%d N=%d K=%d transW=%v %v sms=%d tile128=%v: %+v", m, n, k, transW, prec, sms, tile128, p)
	require.GreaterOrEqual(t, p.splits, 1, where)
	require.GreaterOrEqual(t, p.kchunk, 1, where)
	assert.Equal(t, ceilDiv(k, p.kchunk), p.splits, where)
	assert.Greater(t, k-(p.splits-1)*p.kchunk, 0, "last split is empty: %s", where)
	assert.LessOrEqual(t, k-(p.splits-1)*p.kchunk, p.kchunk, where)
	if p.splits == 1 {
		assert.Equal(t, k, p.kchunk, where)
	}
	assert.LessOrEqual(t, p.grid.Y, uint32(65535), where)
	assert.LessOrEqual(t, p.grid.Z, uint32(65535), where)
	assert.Equal(t, p.splits > 1 || p.kernel == mmSkinny, p.partial, where)
	switch p.kernel {
	case mmSkinny:
		require.LessOrEqual(t, m, skinnyMaxM, where)
		cols, g, kmin := skinnyColsKN, 8, 64
		if transW {
			cols, g, kmin = skinnyColsNK, 128, 128
		}
		cb, target := ceilDiv(n, cols), skinnyBlocksPerSM*sms
		assert.Equal(t, dim(cb, p.splits, 1), p.grid, where)
		assert.Equal(t, dim(256, 1, 1), p.block, where)
		if p.splits > 1 {
			// Split only where the columns give too few blocks, and
			// about as far as 2 blocks per SM.
			assert.Zero(t, p.kchunk%g, "chunk %d not a multiple of %d: %s", p.kchunk, g, where)
			assert.GreaterOrEqual(t, p.kchunk, kmin, where)
			assert.Less(t, cb, target, where)
			assert.True(t, cb*p.splits >= target || p.kchunk == kmin, where) // the minimum chunk may stop short
			assert.LessOrEqual(t, p.splits, 2*ceilDiv(target, cb)+1, where)
		} else {
			assert.True(t, cb >= target || k <= kmin, where)
		}
	case mmF32:
		require.Greater(t, m, skinnyMaxM, where)
		assert.Equal(t, FP32, prec, where)
		assert.Equal(t, dim(ceilDiv(n, 128), ceilDiv(m, 128), 1), p.grid, where)
		assert.GreaterOrEqual(t, ceilDiv(n, 128)*ceilDiv(m, 128), sms, where)
		assert.Equal(t, dim(256, 1, 1), p.block, where)
	case mmF32Tile64, mmTF32Tile64:
		require.Greater(t, m, skinnyMaxM, where)
		assert.Equal(t, p.kernel == mmTF32Tile64, prec == TF32, where)
		if prec == TF32 {
			assert.False(t, tile128, where)
		}
		assert.Equal(t, dim(ceilDiv(n, 64), ceilDiv(m, 64), p.splits), p.grid, where)
		assert.Equal(t, dim(128, 1, 1), p.block, where)
		assert.Zero(t, p.shared, where)
		blocks := ceilDiv(n, 64) * ceilDiv(m, 64)
		if p.splits > 1 {
			assert.Less(t, blocks, tileBlocksPerSM*sms, where)
			assert.Zero(t, p.kchunk%map[bool]int{false: 16, true: 32}[prec == TF32], where)
			assert.GreaterOrEqual(t, p.kchunk, 64, where)
			assert.LessOrEqual(t, p.splits, maxSplits, where)
		} else {
			assert.True(t, blocks >= tileBlocksPerSM*sms || k <= 64 || 2*blocks >= tileBlocksPerSM*sms && k < 128, where)
		}
	case mmTF32:
		require.Greater(t, m, skinnyMaxM, where)
		assert.Equal(t, TF32, prec, where)
		assert.True(t, tile128, where)
		assert.Equal(t, dim(ceilDiv(n, 128), ceilDiv(m, 128), p.splits), p.grid, where)
		assert.Equal(t, dim(256, 1, 1), p.block, where)
		assert.Equal(t, tf32SharedBytes, p.shared, where)
		if p.splits == 1 {
			assert.True(t, ceilDiv(n, 128)*ceilDiv(m, 128) >= sms || k < 128, where)
		} else {
			assert.Less(t, ceilDiv(n, 128)*ceilDiv(m, 128), sms, where)
			assert.Zero(t, p.kchunk%32, where)
			assert.GreaterOrEqual(t, p.kchunk, 64, where)
			assert.LessOrEqual(t, p.splits, maxSplits, where)
		}
	default:
		t.Fatalf("unknown kernel: %s", where)
	}
}

// TestSplitK checks splitK's chunks directly.
func TestSplitK(t *testing.T) {
	for _, c := range []struct{ k, want, g, kmin, maxSplits, kchunk, splits int }{
		{768, 1, 8, 32, 64, 768, 1},       // no split wanted
		{20, 8, 8, 32, 64, 20, 1},         // k below the minimum chunk
		{768, 22, 8, 32, 1 << 16, 32, 24}, // 34 rounds down to 32
		{3072, 22, 128, 128, 1 << 16, 128, 24},
		{768, 8, 128, 128, 1 << 16, 128, 6}, // the minimum chunk wins
		{100, 2, 16, 64, 64, 64, 2},         // 50 rounds to 48, below the minimum chunk
		{3072, 1000, 16, 64, 64, 64, 48},
		{100000, 1000, 16, 64, 64, 1568, 64}, // at most 64 splits
		{129, 2, 32, 64, 64, 64, 3},          // last split of 1
	} {
		kchunk, splits := splitK(c.k, c.want, c.g, c.kmin, c.maxSplits)
		assert.Equal(t, c.kchunk, kchunk, "%+v", c)
		assert.Equal(t, c.splits, splits, "%+v", c)
	}
}

// TestMatMulEdgesOnDevice runs MatMul on the GPU (it skips without one) at
// every shape of the kernels' edge lists, both layouts, both precisions,
// with bias: against the CPU backend (FP32 within 1e-5 of max|cpu|, TF32
// within 1e-2), with every output poisoned first, and twice, for the same
// bits; and MatMulGELU (GELU's tanh and erf forms in turn), which must give
// the bits of MatMul then GELU on every path of the epilogue.
func TestMatMulEdgesOnDevice(t *testing.T) {
	if _, err := cuda.Load(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	c := cpu.New()
	r := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 { return normals(r, n) }
	for _, prec := range []Precision{FP32, TF32} {
		g, err := New(Options{MatMul: prec, Poison: true})
		require.NoError(t, err)
		t.Logf("%s, %d SMs, fx_matmul_tf32 available: %v", g.Name(), g.sms, g.k.matmulTF32Tile128)
		ms, ns, ks := []int{1, 2, 5, 8, 9, 17, 64, 65, 127, 129}, []int{1, 7, 768, 769}, []int{1, 5, 768, 3072}
		if ThinOnEmulator(g) {
			ms, ns, ks = []int{1, 9, 65, 129}, []int{7, 769}, []int{5, 768}
		}
		for _, m := range ms {
			for _, n := range ns {
				for _, k := range ks {
					for _, transW := range []bool{false, true} {
						xv, wv, bv := randn(m*k), randn(k*n), randn(n)
						ws := []int{k, n}
						if transW {
							ws = []int{n, k}
						}
						want := c.ToHost(c.MatMul(c.FromHost(xv, m, k), c.FromHost(wv, ws...), c.FromHost(bv, n), transW))
						x, w, b := g.FromHost(xv, m, k), g.FromHost(wv, ws...), g.FromHost(bv, n)
						got1, got2 := g.ToHost(g.MatMul(x, w, b, transW)), g.ToHost(g.MatMul(x, w, b, transW))
						require.NoError(t, g.Sync())
						p := planMatMul(m, n, k, transW, prec, g.sms, g.k.matmulTF32Tile128)
						what := fmt.Sprintf("%v M=%d N=%d K=%d transW=%v: %v kchunk %d splits %d", prec, m, n, k, transW,
							p.kernel, p.kchunk, p.splits)
						var diff, scale float64
						same := true
						for i := range want {
							diff = max(diff, math.Abs(float64(got1[i])-float64(want[i])))
							if math.IsNaN(float64(got1[i])) {
								diff = math.Inf(1)
							}
							scale = max(scale, math.Abs(float64(want[i])))
							same = same && math.Float32bits(got1[i]) == math.Float32bits(got2[i])
						}
						tol := 1e-5
						if prec == TF32 && p.kernel != mmSkinny {
							tol = 1e-2
						}
						assert.LessOrEqual(t, diff/scale, tol, what)
						assert.True(t, same, "two runs differ: %s", what)

						kind := engine.Activation((m + n + k) % 2)
						fused := g.ToHost(g.MatMulGELU(x, w, b, transW, kind))
						twoOps := g.ToHost(g.GELU(g.MatMul(x, w, b, transW), kind))
						require.NoError(t, g.Sync())
						for i := range twoOps {
							if math.Float32bits(fused[i]) != math.Float32bits(twoOps[i]) {
								assert.Failf(t, "MatMulGELU differs from MatMul then GELU",
									"%s GELU %d: element %d: %v, want %v", what, kind, i, fused[i], twoOps[i])
								break
							}
						}
					}
				}
			}
		}
		require.NoError(t, g.Close())
	}
}

// BenchmarkMatMulKernels times planMatMul's launches alone (device time from
// CUDA events, per product) at the shapes of the GPT-2 table: preallocated
// outputs, and as many input sets, rotated, as bench/gpu/torch_gpu_bench.py
// uses for cuBLAS (about three times the 50 MiB L2 when a set fits in it),
// so that w comes from DRAM. BenchmarkMatMul measures MatMul as a model
// calls it, with an output allocation per call.
func BenchmarkMatMulKernels(bm *testing.B) {
	if _, err := cuda.Load(); err != nil {
		bm.Skipf("no GPU: %v", err)
	}
	const l2 = 50 << 20
	for _, prec := range []Precision{FP32, TF32} {
		g, err := New(Options{MatMul: prec})
		require.NoError(bm, err)
		for _, s := range []struct {
			m, k, n int
			transW  bool
		}{
			{1, 3072, 768, false}, {1, 768, 2304, false}, {1, 768, 3072, false}, {1, 768, 50257, true},
			{1, 768, 50257, false}, {8, 768, 3072, false}, {8, 3072, 768, true},
			{128, 3072, 768, false}, {128, 768, 2304, false}, {512, 3072, 768, false}, {512, 768, 3072, false},
			{4096, 768, 3072, false}, {4096, 3072, 768, false}, {4096, 768, 50257, false},
		} {
			p := planMatMul(s.m, s.n, s.k, s.transW, prec, g.sms, g.k.matmulTF32Tile128)
			name := fmt.Sprintf("%v/M=%d,K=%d,N=%d,transW=%v/%v,splits=%d", prec, s.m, s.k, s.n, s.transW, p.kernel, p.splits)
			bm.Run(name, func(bm *testing.B) {
				setBytes := 4 * (s.m*s.k + s.k*s.n + s.m*s.n)
				sets := 1
				if setBytes <= l2 {
					sets = min(16, max(2, ceilDiv(3*l2, setBytes)))
				}
				r := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n)))
				host := func(n int) []float32 {
					v := make([]float32, n)
					for i := range v {
						v[i] = float32(r.NormFloat64())
					}
					return v
				}
				xh, wh := host(s.m*s.k), host(s.k*s.n)
				ws := []int{s.k, s.n}
				if s.transW {
					ws = []int{s.n, s.k}
				}
				var xs, wts, ys []cuda.DevicePtr
				var keep []any
				for range sets {
					x, w, y := g.FromHost(xh, s.m, s.k), g.FromHost(wh, ws...), g.Zeros(s.m, s.n)
					keep = append(keep, x, w, y)
					xs, wts, ys = append(xs, ptr("", x)), append(wts, ptr("", w)), append(ys, ptr("", y))
				}
				bias := g.FromHost(host(s.n), s.n)
				run := func(i int) {
					g.mu.Lock()
					g.matmulLaunch(p, ys[i%sets], xs[i%sets], wts[i%sets], ptr("", bias), s.m, s.n, s.k, s.transW, actNone)
					g.mu.Unlock()
				}
				for i := range 3 {
					run(i)
				}
				require.NoError(bm, g.Sync())
				bm.ResetTimer()
				timer, err := g.StartTimer()
				require.NoError(bm, err)
				for i := range bm.N {
					run(i)
				}
				dev, err := timer.Stop()
				require.NoError(bm, err)
				require.NoError(bm, g.Sync())
				perOp := dev.Seconds() / float64(bm.N)
				bm.ReportMetric(perOp*1e6, "us/op")
				bm.ReportMetric(2*float64(s.m)*float64(s.k)*float64(s.n)/perOp/1e12, "TFLOP/s")
				bm.ReportMetric(4*float64(s.k)*float64(s.n)/perOp/1e12, "TB/s(w)")
				runtime.KeepAlive(keep)
			})
		}
		require.NoError(bm, g.Close())
	}
}
