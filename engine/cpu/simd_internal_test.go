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
