package cpu_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
)

// TestGELUAccuracy checks each set of kernels' GELU against float64 value
// by value, within 4e-6 relative plus 1e-14 absolute for the tanh form
// (for x < -9, where 0.5x(1+tanh(u)) rounds to -0 in float64 and
// x/(1+exp(-2u)) does not). The tanh kernel's largest relative errors
// (tens of ulps) are in the negative tail, where GELU is small: exp(-2u)
// amplifies the rounding of its float32 argument; the absolute error there
// is below 1e-9. The erf form, x·erfc(-x/√2)/2 in float64 (no
// cancellation), is checked in relative terms down to 1e-30, deep in the
// lower tail (x = -11.5 gives -1e-29).
func TestGELUAccuracy(t *testing.T) {
	var xs []float32
	for x := -12.0; x <= 12; x += 1.0 / 1024 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-8, -1e-8, 30, -30, 1e4, -1e4,
		math.MaxFloat32, float32(math.Inf(1)), float32(math.NaN()))
	gelu := func(kind engine.Activation, x float64) float64 {
		if kind == engine.GELUTanh {
			return x / (1 + math.Exp(-2*math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}
		return 0.5 * x * math.Erfc(-x/math.Sqrt2)
	}
	for kn, be := range kernelSets(t, cpu.WithWorkers(3)) {
		for _, kind := range []engine.Activation{engine.GELUTanh, engine.GELUErf} {
			got := be.GELU(be.FromHost(xs, len(xs)), kind).Host()
			maxUlps := 0.0
			for i, x := range xs {
				want := gelu(kind, float64(x))
				g := float64(got[i])
				if math.IsNaN(want) || math.IsInf(want, 0) {
					require.Equal(t, math.IsNaN(want), math.IsNaN(g), "%s: GELU(%v) = %v, want %v", kn, x, g, want)
					require.Equal(t, math.IsInf(want, 1), math.IsInf(g, 1), "%s: GELU(%v) = %v, want %v", kn, x, g, want)
					continue
				}
				abs := 1e-14
				if kind == engine.GELUErf {
					abs = 1e-30
				}
				if math.Abs(want) < abs {
					require.InDelta(t, want, g, abs, "%s: GELU(%v), kind %d", kn, x, kind)
					continue
				}
				err := max(0, math.Abs(g-want)-abs)
				require.LessOrEqual(t, err, 4e-6*math.Abs(want), "%s: GELU(%v) = %v, want %v, kind %d", kn, x, g, want, kind)
				ulp := float64(math.Nextafter32(float32(math.Abs(want)), float32(math.Inf(1)))) - math.Abs(float64(float32(want)))
				maxUlps = max(maxUlps, err/ulp)
			}
			t.Logf("%s, kind %d: max error %.2f ulps", kn, kind, maxUlps)
		}
	}
}

// TestSoftmaxKernelsBits checks that Softmax gives the same bits with every
// set of kernels (the SIMD exponentials are math.Exp's), over scores that
// reach every path of math.Exp: ordinary, near zero, tiny (denormal and
// zero results), -Inf (masked) and NaN.
func TestSoftmaxKernelsBits(t *testing.T) {
	const rows, d = 64, 203
	x := randSlice(5, rows*d)
	for i := range x {
		switch r := i % 97; {
		case r < 60:
			x[i] *= 8
		case r < 70:
			x[i] *= 1e-6
		case r < 80:
			x[i] = x[i]*5 - 720 // exp(x - max) near and below the denormal range
		case r < 90:
			x[i] = float32(math.Inf(-1))
		case r < 91 && i > 5*d:
			x[i] = float32(math.NaN())
		default:
			x[i] *= 300
		}
	}
	var want []float32
	for kn, be := range kernelSets(t, cpu.WithWorkers(2)) {
		got := be.Softmax(be.FromHost(x, rows, d)).Host()
		if want == nil {
			want = got
			continue
		}
		sameBits(t, want, got, kn)
	}
}
