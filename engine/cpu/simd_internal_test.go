package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpDiffBits checks the SIMD exponential against math.Exp bit for bit
// over its whole range, [-708, 709], and at the edges that matter to
// softmax (0 and -Inf).
func TestExpDiffBits(t *testing.T) {
	s := avx2Kernels()
	if s == nil || s.expDiff == nil {
		t.Skip("no SIMD exponential on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 18
	src := make([]float32, n)
	for i := range src {
		switch i % 4 {
		case 0:
			src[i] = float32(r.Float64()*1417 - 708) // the whole range
		case 1:
			src[i] = float32(-r.ExpFloat64()) // softmax's usual arguments
		case 2:
			src[i] = float32(r.NormFloat64() * 1e-3)
		default:
			src[i] = -float32(r.Float64() * 30)
		}
	}
	src[0], src[1], src[2], src[3] = 0, float32(math.Copysign(0, -1)), float32(math.Inf(-1)), 709
	for _, m := range []float32{0, 1.5, -3} {
		x := make([]float32, n)
		for i, v := range src {
			x[i] = v + m // so that x - m is close to v
		}
		got := make([]float64, n)
		s.expDiff(&got[0], &x[0], m, n)
		for i, v := range x {
			d := v - m
			if !(d >= -708 && d <= 709 || math.IsInf(float64(d), -1)) {
				continue
			}
			if want := math.Exp(float64(d)); math.Float64bits(want) != math.Float64bits(got[i]) {
				t.Fatalf("exp(%v) = %v, math.Exp gives %v", d, got[i], want)
			}
		}
	}
}

// TestSoftmaxRowTrailingInf checks that softmaxRow, which leaves trailing
// -Inf values out of its exponentials and sum, gives the bits of the whole
// row computed without that shortcut, for rows with and without trailing
// -Inf, all -Inf, and with a NaN.
func TestSoftmaxRowTrailingInf(t *testing.T) {
	negInf := float32(math.Inf(-1))
	whole := func(x []float32) []float32 {
		mx := negInf
		for _, v := range x {
			mx = max(mx, v)
		}
		o := make([]float32, len(x))
		if math.IsInf(float64(mx), -1) {
			return o
		}
		e := make([]float64, len(x))
		var sum float64
		for i, v := range x {
			e[i] = math.Exp(float64(v - mx))
			sum += e[i]
		}
		for i := range o {
			o[i] = float32(e[i] / sum)
		}
		return o
	}
	r := rand.New(rand.NewPCG(3, 4))
	sets := map[string]*simdKernels{"go": nil}
	if s := avx2Kernels(); s != nil {
		sets["avx2"] = s
	}
	for name, s := range sets {
		for _, tc := range []struct {
			n, valid int
			nan      bool
		}{{1, 1, false}, {7, 3, false}, {37, 37, false}, {37, 12, false}, {128, 65, false}, {64, 0, false}, {40, 20, true}} {
			x := make([]float32, tc.n)
			for i := range x {
				x[i] = negInf
				if i < tc.valid {
					x[i] = float32(r.NormFloat64() * 4)
				}
			}
			if tc.nan {
				x[tc.valid/2] = float32(math.NaN())
			}
			x[0] = negInf // a masked key before the last valid one stays
			got := make([]float32, tc.n)
			softmaxRow(got, x, make([]float64, tc.n), s)
			want := whole(x)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: n=%d valid=%d nan=%v: [%d] = %v, want %v", name, tc.n, tc.valid, tc.nan, i, got[i], want[i])
				}
			}
		}
	}
}
