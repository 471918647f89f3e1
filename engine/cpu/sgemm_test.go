package cpu_test

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
)

// kernelSets returns a backend for each set of kernels this CPU can run,
// KernelsGo among them, so that every path is tested on any machine.
func kernelSets(t testing.TB, opts ...cpu.Option) map[cpu.Kernels]*cpu.Backend {
	t.Helper()
	out := map[cpu.Kernels]*cpu.Backend{}
	for _, k := range cpu.AvailableKernels() {
		be := cpu.New(append([]cpu.Option{cpu.WithKernels(k)}, opts...)...)
		require.Equal(t, k, be.Kernels(), "WithKernels(%s)", k)
		out[k] = be
	}
	require.Contains(t, out, cpu.KernelsGo)
	return out
}

func TestKernelsSelection(t *testing.T) {
	avail := cpu.AvailableKernels()
	require.Equal(t, cpu.KernelsGo, avail[len(avail)-1], "KernelsGo is always available, last")
	require.Equal(t, avail[0], cpu.New().Kernels(), "the default is the fastest available")
	require.Equal(t, avail[0], cpu.New(cpu.WithKernels(cpu.KernelsAuto)).Kernels())
	require.Equal(t, cpu.KernelsGo, cpu.New(cpu.WithKernels(cpu.KernelsGo)).Kernels())
	require.Equal(t, cpu.KernelsGo, cpu.New(cpu.WithKernels("no such kernels")).Kernels())
}

// fma32 returns a·b+c rounded once to float32, computed exactly.
func fma32(a, b, c float32) float32 {
	p := new(big.Float).SetPrec(64).SetFloat64(float64(a))
	p.Mul(p, new(big.Float).SetFloat64(float64(b))) // exact: 48 bits
	s := new(big.Float).SetPrec(400).Add(p, new(big.Float).SetFloat64(float64(c)))
	f, _ := s.Float32()
	return f
}

// fmaChainMatMul is the documented order of the SIMD kernels: each element
// is s = fma(x[i,k], w[k,j], s) over k in order from zero, plus the bias.
func fmaChainMatMul(x, w, bias []float32, m, k, n int, transW bool) []float32 {
	out := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var s float32
			for p := range k {
				wv := w[p*n+j]
				if transW {
					wv = w[j*k+p]
				}
				s = fma32(x[i*k+p], wv, s)
			}
			if bias != nil {
				s += bias[j]
			}
			out[i*n+j] = s
		}
	}
	return out
}

// TestMatMulSIMDOrder checks the SIMD kernels bit for bit against an
// exact model of their documented summation order, at sizes that are not
// multiples of the tiles (rows of 6, panels of 16 columns, k blocks of
// 256, row blocks of 120), for both layouts of w, with and without bias,
// and on every path of the driver: the gemv kernels for 1–3 rows (w
// [N, K] with k a multiple of 8 and not), w read in place or packed for
// few rows (a row stride of 1024 values is packed from 7 rows). Each set
// runs again with main tiles of 2 and 4 panels (AVX-512's 6×32 and 6×64;
// made of one-panel tiles where a set has none, which tests the driver's
// path for them on any SIMD CPU), over shapes that leave 0–3 panels after
// the wide tiles.
func TestMatMulSIMDOrder(t *testing.T) {
	sets := kernelSets(t, cpu.WithWorkers(3))
	delete(sets, cpu.KernelsGo)
	if len(sets) == 0 {
		t.Skip("no SIMD kernels on this CPU")
	}
	for kn := range maps.Clone(sets) {
		for _, p := range []int{2, 4} {
			be := cpu.New(cpu.WithKernels(kn), cpu.WithWorkers(3))
			require.True(t, cpu.SetMainPanels(be, p, true))
			sets[cpu.Kernels(fmt.Sprintf("%s-main%d", kn, p))] = be
		}
	}
	cases := []struct{ m, k, n int }{
		{1, 1, 1}, {1, 7, 15}, {1, 8, 16}, {1, 9, 17}, {1, 33, 64}, {1, 20, 65}, {1, 40, 200},
		{2, 5, 33}, {2, 17, 96}, {3, 31, 47}, {3, 16, 130}, {4, 9, 31}, {5, 24, 49},
		{6, 8, 16}, {6, 257, 16}, {7, 19, 18}, {8, 30, 100}, {12, 13, 64}, {13, 21, 35},
		{19, 300, 37}, {121, 10, 33}, {130, 3, 17},
		{1, 64, 33}, {2, 24, 47}, {2, 776, 80}, {3, 40, 64}, {8, 256, 40}, {10, 16, 100}, {8, 20, 1024},
		{13, 40, 80}, {14, 9, 96}, {25, 260, 112}, {127, 12, 176}, {18, 33, 101},
	}
	for _, tc := range cases {
		for _, transW := range []bool{false, true} {
			for _, withBias := range []bool{false, true} {
				xd := randSlice(uint64(tc.m*1000+tc.k), tc.m*tc.k)
				wd := randSlice(uint64(tc.n*1000+tc.k), tc.k*tc.n)
				wShape := []int{tc.k, tc.n}
				if transW {
					wShape = []int{tc.n, tc.k}
				}
				var bd []float32
				if withBias {
					bd = randSlice(7, tc.n)
				}
				want := fmaChainMatMul(xd, wd, bd, tc.m, tc.k, tc.n, transW)
				for kn, be := range sets {
					name := fmt.Sprintf("%s/M=%d/K=%d/N=%d/transW=%v/bias=%v", kn, tc.m, tc.k, tc.n, transW, withBias)
					t.Run(name, func(t *testing.T) {
						var bias *engine.Tensor
						if withBias {
							bias = be.FromHost(bd, tc.n)
						}
						got := be.MatMul(be.FromHost(xd, tc.m, tc.k), be.FromHost(wd, wShape...), bias, transW).Host()
						sameBits(t, want, got)
					})
				}
			}
		}
	}
}

// TestMatMulKernelsAgree checks every set of kernels against float64 at
// GPT-2's shapes and odd ones, and the sets against each other.
func TestMatMulKernelsAgree(t *testing.T) {
	sets := kernelSets(t)
	cases := []struct{ m, k, n int }{
		{1, 768, 2304}, {7, 768, 768}, {128, 768, 77}, {130, 3072, 40}, {9, 513, 1000}, {200, 64, 250},
	}
	for _, tc := range cases {
		for _, transW := range []bool{false, true} {
			name := fmt.Sprintf("M=%d/K=%d/N=%d/transW=%v", tc.m, tc.k, tc.n, transW)
			t.Run(name, func(t *testing.T) {
				xd := randSlice(1, tc.m*tc.k)
				wd := randSlice(2, tc.k*tc.n)
				bd := randSlice(3, tc.n)
				wShape := []int{tc.k, tc.n}
				if transW {
					wShape = []int{tc.n, tc.k}
				}
				want := make([]float64, tc.m*tc.n)
				for i := range tc.m {
					for j := range tc.n {
						s := float64(bd[j])
						for p := range tc.k {
							wv := wd[p*tc.n+j]
							if transW {
								wv = wd[j*tc.k+p]
							}
							s += float64(xd[i*tc.k+p]) * float64(wv)
						}
						want[i*tc.n+j] = s
					}
				}
				for kn, be := range sets {
					got := be.MatMul(be.FromHost(xd, tc.m, tc.k), be.FromHost(wd, wShape...), be.FromHost(bd, tc.n), transW).Host()
					var maxErr, maxRef float64
					for i, w := range want {
						maxErr = max(maxErr, math.Abs(float64(got[i])-w))
						maxRef = max(maxRef, math.Abs(w))
					}
					require.LessOrEqual(t, maxErr/maxRef, 1e-5, "%s: relative error", kn)
				}
			})
		}
	}
}

// TestMatMulNonFinite checks that infinities and NaNs in x or w reach only
// the outputs they belong to, whatever tile or padding they meet.
func TestMatMulNonFinite(t *testing.T) {
	const m, k, n = 8, 20, 37
	for kn, be := range kernelSets(t) {
		for _, transW := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/transW=%v", kn, transW), func(t *testing.T) {
				xd := randSlice(1, m*k)
				wd := randSlice(2, k*n)
				xd[3*k+5] = float32(math.Inf(1)) // row 3
				col := 35                        // in the last, partial panel
				if transW {
					wd[col*k+2] = float32(math.NaN())
				} else {
					wd[2*n+col] = float32(math.NaN())
				}
				wShape := []int{k, n}
				if transW {
					wShape = []int{n, k}
				}
				got := be.MatMul(be.FromHost(xd, m, k), be.FromHost(wd, wShape...), nil, transW).Host()
				for i := range m {
					for j := range n {
						v := float64(got[i*n+j])
						switch {
						case j == col:
							require.True(t, math.IsNaN(v), "(%d,%d) = %v, want NaN", i, j, v)
						case i == 3:
							require.True(t, math.IsInf(v, 0) || math.IsNaN(v), "(%d,%d) = %v, want non-finite", i, j, v)
						default:
							require.False(t, math.IsInf(v, 0) || math.IsNaN(v), "(%d,%d) = %v, want finite", i, j, v)
						}
					}
				}
			})
		}
	}
}
