package backendtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
)

// RunGrad checks every backward op of b (engine.GradBackend), each in its own
// subtest.
//
// Each gradient is compared, within Tolerance, with central finite
// differences of a float64 implementation of the corresponding forward op
// written here: for an op y = f(x) and a random dy, the gradient of
// L(x) = Σ dy·f(x) with respect to each element of x. The inputs are small,
// random (seeded by the test's name) and of odd sizes, with the masks,
// padding and saturated values the forward suite uses. Each gradient is
// also checked, loosely, against a central difference of b's own forward op
// along a random direction, so that a backward op cannot silently assume
// other semantics than its forward op. The linear ops (ConcatLast,
// ScatterRows) are checked exactly and through their adjoint identities with
// SliceLast and Rows. Like Run, the suite also checks that inputs are left
// unchanged, that empty tensors work and that shape mismatches panic.
func RunGrad(t *testing.T, b engine.GradBackend) {
	s := &gradSuite{suite: &suite{b: b}, g: b}
	t.Run("LayerNormBackward", s.testLayerNormBackward)
	t.Run("GELUBackward", s.testGELUBackward)
	t.Run("TanhBackward", s.testTanhBackward)
	t.Run("SoftmaxBackward", s.testSoftmaxBackward)
	t.Run("AttnScoresBackward", s.testAttnScoresBackward)
	t.Run("AttnMixBackward", s.testAttnMixBackward)
	t.Run("AttentionChain", s.testAttentionChain)
	t.Run("ConcatLast", s.testConcatLast)
	t.Run("ScatterRows", s.testScatterRows)
	t.Run("Empty", s.testGradEmpty)
	t.Run("Panics", s.testGradPanics)
}

type gradSuite struct {
	*suite
	g engine.GradBackend
}

// fdStep is the step of the float64 central differences: the truncation
// error (step² times a third derivative) and the rounding error
// (2⁻⁵³·|L| / step) both stay near 1e-10 of the gradients.
const fdStep = 1e-5

// numGrad returns the central-difference gradient of f at x, zero where x
// is infinite (a masked input). f may read x, which numGrad perturbs one
// element at a time and restores.
func numGrad(f func(x []float64) float64, x []float64) []float64 {
	g := make([]float64, len(x))
	for i, v := range x {
		if math.IsInf(v, 0) {
			continue
		}
		xp, xm := v+fdStep, v-fdStep
		x[i] = xp
		fp := f(x)
		x[i] = xm
		fm := f(x)
		x[i] = v
		g[i] = (fp - fm) / (xp - xm)
	}
	return g
}

// Forward-consistency check: a central difference of the backend's own
// forward op along a random direction. The step is large enough that
// float32 rounding in the forward op stays far below the tolerance, which is
// relative to |grad|·|Δx| (Cauchy-Schwarz bounds the directional derivative
// by it). The CPU backend stays below 1e-5; the tolerance leaves room for a
// forward op that is only within Tolerance of float64. The check catches a
// backward op that disagrees with its forward op in sign, scale or
// convention; the float64 differences check precision.
const (
	dirStep = 3e-3
	dirTol  = 2e-3
)

// forwardCheck checks grads, the backend's gradients of L = loss(xs) with
// respect to each of xs, against (L(xs+h·u) - L(xs-h·u)) for a random
// direction u that is zero where xs[k][i] is infinite (masked). loss must
// run the backend's forward op on the inputs it is given and return Σ dy·y
// in float64.
func (s *gradSuite) forwardCheck(t *testing.T, r *rand.Rand, xs, grads [][]float32, loss func(xs [][]float32) float64) {
	t.Helper()
	require.Len(t, grads, len(xs))
	plus, minus := make([][]float32, len(xs)), make([][]float32, len(xs))
	var pred, gn, dn float64
	for k, x := range xs {
		require.Len(t, grads[k], len(x), "gradient %d", k)
		plus[k], minus[k] = slices.Clone(x), slices.Clone(x)
		for i, v := range x {
			if math.IsInf(float64(v), 0) {
				continue
			}
			u := r.NormFloat64() * dirStep
			plus[k][i], minus[k][i] = float32(float64(v)+u), float32(float64(v)-u)
			// The step actually taken, after rounding to float32.
			d := float64(plus[k][i]) - float64(minus[k][i])
			g := float64(grads[k][i])
			pred += g * d
			gn += g * g
			dn += d * d
		}
	}
	fd := loss(plus) - loss(minus)
	scale := math.Sqrt(gn) * math.Sqrt(dn)
	if scale == 0 {
		require.Zero(t, fd, "zero gradient, but the forward op changes")
		return
	}
	require.LessOrEqual(t, math.Abs(fd-pred)/scale, dirTol,
		"gradient disagrees with the backend's forward op: Σ grad·Δx = %g, L(x+Δx/2)-L(x-Δx/2) = %g", pred, fd)
}

// dotLoss returns Σ dy·y in float64 over the entries where dy is not zero
// (so that -Inf at masked outputs, where dy is 0, is skipped).
func dotLoss(dy, y []float32) float64 {
	var l float64
	for i, g := range dy {
		if g != 0 {
			l += float64(g) * float64(y[i])
		}
	}
	return l
}

// tensors uploads copies of vals with the shapes of like.
func (s *gradSuite) tensors(vals [][]float32, like ...*engine.Tensor) []*engine.Tensor {
	out := make([]*engine.Tensor, len(vals))
	for i, v := range vals {
		out[i] = s.b.FromHost(slices.Clone(v), like[i].Shape()...)
	}
	return out
}

// refLayerNormLoss is Σ dy·LayerNorm(x) over rows of d in float64, without
// beta (a constant).
func refLayerNormLoss(x []float64, gamma, dy []float32, d int, eps float32) float64 {
	var l float64
	for row := 0; row < len(x); row += d {
		var mean, v float64
		for _, xv := range x[row : row+d] {
			mean += xv
		}
		mean /= float64(d)
		for _, xv := range x[row : row+d] {
			v += (xv - mean) * (xv - mean)
		}
		rstd := 1 / math.Sqrt(v/float64(d)+float64(eps))
		for i := range d {
			l += float64(dy[row+i]) * (x[row+i] - mean) * rstd * float64(gamma[i])
		}
	}
	return l
}

func (s *gradSuite) testLayerNormBackward(t *testing.T) {
	tests := []struct {
		name   string
		shape  []int
		offset float32
		eps    float32
	}{
		{"odd", []int{2, 7, 61}, 0, 1e-5},
		{"offset", []int{3, 130}, 100, 1e-5},
		{"large eps", []int{4, 15}, 0, 0.5},
		{"vector", []int{37}, 3, 1e-12},
		{"one column", []int{3, 1}, 0, 1e-5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			vals := randn(r, engine.NumElements(tc.shape))
			for i := range vals {
				vals[i] = vals[i]*0.5 + tc.offset
			}
			x := s.in(vals, tc.shape...)
			d := tc.shape[len(tc.shape)-1]
			gamma, beta, dy := s.randIn(r, d), s.randIn(r, d), s.randIn(r, tc.shape...)
			got := s.g.LayerNormBackward(x.t, gamma.t, dy.t, tc.eps)
			want := numGrad(func(x []float64) float64 {
				return refLayerNormLoss(x, gamma.vals, dy.vals, d, tc.eps)
			}, f64(x.vals))
			s.close(t, got, tc.shape, want)
			s.unchanged(t, x, gamma, dy)

			s.forwardCheck(t, r, [][]float32{x.vals}, [][]float32{s.b.ToHost(got)}, func(xs [][]float32) float64 {
				in := s.tensors(xs, x.t)
				return dotLoss(dy.vals, s.b.ToHost(s.b.LayerNorm(in[0], gamma.t, beta.t, tc.eps)))
			})
		})
	}
}

func (s *gradSuite) testGELUBackward(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		x := s.in([]float32{0, 1, -1}, 3)
		dy := s.in([]float32{2, 1, 1}, 3)
		// GELU'(0) = 1/2 for both; the erf variant's derivative is
		// Φ(x) + x·φ(x).
		s.close(t, s.g.GELUBackward(x.t, dy.t, engine.GELUErf), []int{3},
			[]float64{1, 0.8413447460685429 + 0.24197072451914337, 0.15865525393145707 - 0.24197072451914337})
		s.close(t, s.g.GELUBackward(x.t, dy.t, engine.GELUTanh), []int{3},
			[]float64{1, numDeriv(geluTanh, 1), numDeriv(geluTanh, -1)})
		s.unchanged(t, x, dy)
	})
	for _, tc := range []struct {
		name string
		kind engine.Activation
		f    func(float64) float64
	}{
		{"tanh", engine.GELUTanh, geluTanh},
		{"erf", engine.GELUErf, geluErf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := s.unaryInput(t)
			r := rng(t)
			dy := s.randIn(r, x.t.Shape()...)
			want := make([]float64, len(x.vals))
			for i, v := range x.vals {
				want[i] = float64(dy.vals[i]) * numDeriv(tc.f, float64(v))
			}
			got := s.g.GELUBackward(x.t, dy.t, tc.kind)
			s.close(t, got, x.t.Shape(), want)
			s.unchanged(t, x, dy)
			s.forwardCheck(t, r, [][]float32{x.vals}, [][]float32{s.b.ToHost(got)}, func(xs [][]float32) float64 {
				return dotLoss(dy.vals, s.b.ToHost(s.b.GELU(s.tensors(xs, x.t)[0], tc.kind)))
			})
		})
	}
}

// numDeriv is the float64 central difference of f at x.
func numDeriv(f func(float64) float64, x float64) float64 {
	return numGrad(func(v []float64) float64 { return f(v[0]) }, []float64{x})[0]
}

func (s *gradSuite) testTanhBackward(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		y := s.in([]float32{0, 0.5, -1, 1}, 2, 2)
		dy := s.in([]float32{3, 2, 5, -5}, 2, 2)
		s.close(t, s.g.TanhBackward(y.t, dy.t), []int{2, 2}, []float64{3, 1.5, 0, 0})
		s.unchanged(t, y, dy)
	})
	t.Run("random", func(t *testing.T) {
		x := s.unaryInput(t)
		r := rng(t)
		y := s.in(slices.Clone(s.b.ToHost(s.b.Tanh(x.t))), x.t.Shape()...)
		dy := s.randIn(r, x.t.Shape()...)
		want := make([]float64, len(x.vals))
		for i, v := range x.vals {
			want[i] = float64(dy.vals[i]) * numDeriv(math.Tanh, float64(v))
		}
		got := s.g.TanhBackward(y.t, dy.t)
		s.close(t, got, x.t.Shape(), want)
		s.unchanged(t, y, dy)
		s.forwardCheck(t, r, [][]float32{x.vals}, [][]float32{s.b.ToHost(got)}, func(xs [][]float32) float64 {
			return dotLoss(dy.vals, s.b.ToHost(s.b.Tanh(s.tensors(xs, x.t)[0])))
		})
	})
}

// refSoftmaxLoss is Σ dy·Softmax(x) over rows of d in float64; -Inf entries
// and all -Inf rows contribute nothing.
func refSoftmaxLoss(x []float64, dy []float32, d int) float64 {
	var l float64
	for row := 0; row < len(x); row += d {
		xs := x[row : row+d]
		mx := math.Inf(-1)
		for _, v := range xs {
			mx = max(mx, v)
		}
		if math.IsInf(mx, -1) {
			continue
		}
		var sum, dot float64
		for i, v := range xs {
			e := math.Exp(v - mx)
			sum += e
			dot += float64(dy[row+i]) * e
		}
		l += dot / sum
	}
	return l
}

func (s *gradSuite) testSoftmaxBackward(t *testing.T) {
	inf := float32(math.Inf(-1))
	tests := []struct {
		name  string
		x     []float32 // nil: random [2, 3, 7, 7] with masked entries
		shape []int
	}{
		{"by hand", []float32{0, 1, 2}, []int{1, 3}},
		{"masked", []float32{0, inf, 0, inf}, []int{4}},
		{"all masked", []float32{inf, inf, inf, 1, 1, 1}, []int{2, 3}},
		{"saturated", []float32{1000, 999, 998.5, -1000, 1001, 0, 1000}, []int{1, 7}},
		{"one column", []float32{3, inf, -7}, []int{3, 1}},
		{"random", nil, []int{2, 3, 7, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			xv := tc.x
			if xv == nil {
				xv = randn(r, engine.NumElements(tc.shape))
				for i := range xv {
					xv[i] *= 4
					if r.IntN(4) == 0 {
						xv[i] = inf
					}
				}
				copy(xv[2*7:3*7], slices.Repeat([]float32{inf}, 7)) // a fully masked row
			}
			x := s.in(xv, tc.shape...)
			d := tc.shape[len(tc.shape)-1]
			y := s.in(slices.Clone(s.b.ToHost(s.b.Softmax(x.t))), tc.shape...)
			// dy is large where y is 0: those entries must not matter.
			dyv := randn(r, len(xv))
			for i, v := range y.vals {
				if v == 0 {
					dyv[i] *= 1e3
				}
			}
			dy := s.in(dyv, tc.shape...)
			got := s.g.SoftmaxBackward(y.t, dy.t)
			want := numGrad(func(x []float64) float64 { return refSoftmaxLoss(x, dy.vals, d) }, f64(xv))
			s.close(t, got, tc.shape, want)
			for i, g := range s.b.ToHost(got) {
				if y.vals[i] == 0 {
					require.Zero(t, g, "element %d: y is 0, dx must be 0", i)
				}
			}
			s.unchanged(t, x, y, dy)
			s.forwardCheck(t, r, [][]float32{xv}, [][]float32{s.b.ToHost(got)}, func(xs [][]float32) float64 {
				return dotLoss(dy.vals, s.b.ToHost(s.b.Softmax(s.tensors(xs, x.t)[0])))
			})
		})
	}
}

// attnDims are the sizes of an attention case.
type attnDims struct{ nb, tq, tk, h, dh int }

// allowed reports whether mask lets query i of batch b attend to key j.
func allowed(mask engine.AttnMask, tk, b, i, j int) bool {
	return !(mask.Causal && j > i+mask.QueryOffset) && (mask.KeyValid == nil || mask.KeyValid[b*tk+j] != 0)
}

// refScoresLoss is Σ ds·q·kᵀ·scale in float64 over allowed entries.
func refScoresLoss(q, k []float64, ds []float32, a attnDims, scale float32, mask engine.AttnMask) float64 {
	var l float64
	for b := range a.nb {
		for hh := range a.h {
			for i := range a.tq {
				for j := range a.tk {
					if !allowed(mask, a.tk, b, i, j) {
						continue
					}
					qo, ko := ((b*a.tq+i)*a.h+hh)*a.dh, ((b*a.tk+j)*a.h+hh)*a.dh
					var dot float64
					for d := range a.dh {
						dot += q[qo+d] * k[ko+d]
					}
					l += float64(ds[((b*a.h+hh)*a.tq+i)*a.tk+j]) * dot * float64(scale)
				}
			}
		}
	}
	return l
}

// attnCases are the attention shapes and masks of the backward tests.
var attnCases = []struct {
	name string
	attnDims
	mask engine.AttnMask
}{
	{"no mask", attnDims{2, 7, 7, 3, 15}, engine.AttnMask{}},
	{"causal", attnDims{2, 7, 7, 3, 15}, engine.AttnMask{Causal: true}},
	{"causal offset", attnDims{2, 3, 7, 3, 15}, engine.AttnMask{Causal: true, QueryOffset: 4}},
	{"decode", attnDims{1, 1, 9, 2, 64}, engine.AttnMask{Causal: true, QueryOffset: 8}},
	{"causal padding", attnDims{2, 5, 5, 2, 8}, engine.AttnMask{Causal: true, KeyValid: []int32{1, 1, 1, 0, 0, 0, 1, 1, 1, 1}}},
	{"fully masked rows", attnDims{1, 3, 4, 1, 4}, engine.AttnMask{Causal: true, QueryOffset: -1}},
}

func (s *gradSuite) testAttnScoresBackward(t *testing.T) {
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			a := tc.attnDims
			q := s.randIn(r, a.nb, a.tq, a.h, a.dh)
			k := s.randIn(r, a.nb, a.tk, a.h, a.dh)
			dsv := randn(r, a.nb*a.h*a.tq*a.tk)
			for b := range a.nb {
				for hh := range a.h {
					for i := range a.tq {
						for j := range a.tk {
							if !allowed(tc.mask, a.tk, b, i, j) {
								dsv[((b*a.h+hh)*a.tq+i)*a.tk+j] = 0
							}
						}
					}
				}
			}
			ds := s.in(dsv, a.nb, a.h, a.tq, a.tk)
			scale := float32(1 / math.Sqrt(float64(a.dh)))
			dq, dk := s.g.AttnScoresBackward(ds.t, q.t, k.t, scale)
			q64, k64 := f64(q.vals), f64(k.vals)
			s.close(t, dq, q.t.Shape(), numGrad(func(q []float64) float64 {
				return refScoresLoss(q, k64, dsv, a, scale, tc.mask)
			}, q64))
			s.close(t, dk, k.t.Shape(), numGrad(func(k []float64) float64 {
				return refScoresLoss(q64, k, dsv, a, scale, tc.mask)
			}, k64))
			s.unchanged(t, ds, q, k)
			s.forwardCheck(t, r, [][]float32{q.vals, k.vals}, [][]float32{s.b.ToHost(dq), s.b.ToHost(dk)},
				func(xs [][]float32) float64 {
					in := s.tensors(xs, q.t, k.t)
					return dotLoss(dsv, s.b.ToHost(s.b.AttnScores(in[0], in[1], scale, tc.mask)))
				})
		})
	}
}

// refMixLoss is Σ dz·pattern·v in float64.
func refMixLoss(p, v []float64, dz []float32, a attnDims) float64 {
	var l float64
	for b := range a.nb {
		for hh := range a.h {
			for i := range a.tq {
				zo := ((b*a.tq+i)*a.h + hh) * a.dh
				for j := range a.tk {
					w := p[((b*a.h+hh)*a.tq+i)*a.tk+j]
					vo := ((b*a.tk+j)*a.h + hh) * a.dh
					for d := range a.dh {
						l += float64(dz[zo+d]) * w * v[vo+d]
					}
				}
			}
		}
	}
	return l
}

func (s *gradSuite) testAttnMixBackward(t *testing.T) {
	tests := []struct {
		name string
		attnDims
		zeroFrac float64 // fraction of weights that are zero
	}{
		{"dense", attnDims{2, 7, 7, 3, 15}, 0},
		{"sparse", attnDims{2, 7, 7, 3, 15}, 0.5},
		{"decode", attnDims{2, 1, 9, 2, 64}, 0.2},
		{"cross", attnDims{1, 3, 5, 2, 8}, 0},
		{"all zero", attnDims{1, 2, 3, 1, 4}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			a := tc.attnDims
			pv := make([]float32, a.nb*a.h*a.tq*a.tk)
			for i := range pv {
				if r.Float64() >= tc.zeroFrac {
					pv[i] = float32(r.Float64())
				}
			}
			p := s.in(pv, a.nb, a.h, a.tq, a.tk)
			v := s.randIn(r, a.nb, a.tk, a.h, a.dh)
			dz := s.randIn(r, a.nb, a.tq, a.h, a.dh)
			dp, dv := s.g.AttnMixBackward(dz.t, p.t, v.t)
			p64, v64 := f64(pv), f64(v.vals)
			// dpattern is the full gradient, also where pattern is 0.
			s.close(t, dp, p.t.Shape(), numGrad(func(p []float64) float64 { return refMixLoss(p, v64, dz.vals, a) }, p64))
			s.close(t, dv, v.t.Shape(), numGrad(func(v []float64) float64 { return refMixLoss(p64, v, dz.vals, a) }, v64))
			s.unchanged(t, dz, p, v)
			s.forwardCheck(t, r, [][]float32{pv, v.vals}, [][]float32{s.b.ToHost(dp), s.b.ToHost(dv)},
				func(xs [][]float32) float64 {
					in := s.tensors(xs, p.t, v.t)
					return dotLoss(dz.vals, s.b.ToHost(s.b.AttnMix(in[0], in[1])))
				})
		})
	}
}

// testAttentionChain runs the backward of scores → softmax → mix through
// AttnMixBackward, SoftmaxBackward and AttnScoresBackward, as a caller
// does, and compares dq, dk and dv with finite differences of the whole
// attention in float64.
func (s *gradSuite) testAttentionChain(t *testing.T) {
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			a := tc.attnDims
			q := s.randIn(r, a.nb, a.tq, a.h, a.dh)
			k := s.randIn(r, a.nb, a.tk, a.h, a.dh)
			v := s.randIn(r, a.nb, a.tk, a.h, a.dh)
			dz := s.randIn(r, a.nb, a.tq, a.h, a.dh)
			scale := float32(1 / math.Sqrt(float64(a.dh)))

			pattern := s.b.Softmax(s.b.AttnScores(q.t, k.t, scale, tc.mask))
			dp, dv := s.g.AttnMixBackward(dz.t, pattern, v.t)
			ds := s.g.SoftmaxBackward(pattern, dp)
			dq, dk := s.g.AttnScoresBackward(ds, q.t, k.t, scale)

			loss := func(q, k, v []float64) float64 {
				// Scores, softmax and mix in float64.
				p := make([]float64, a.nb*a.h*a.tq*a.tk)
				for b := range a.nb {
					for hh := range a.h {
						for i := range a.tq {
							row := p[((b*a.h+hh)*a.tq+i)*a.tk:][:a.tk]
							mx := math.Inf(-1)
							for j := range row {
								row[j] = math.Inf(-1)
								if allowed(tc.mask, a.tk, b, i, j) {
									qo, ko := ((b*a.tq+i)*a.h+hh)*a.dh, ((b*a.tk+j)*a.h+hh)*a.dh
									var dot float64
									for d := range a.dh {
										dot += q[qo+d] * k[ko+d]
									}
									row[j] = dot * float64(scale)
								}
								mx = max(mx, row[j])
							}
							if math.IsInf(mx, -1) {
								clear(row)
								continue
							}
							var sum float64
							for j := range row {
								row[j] = math.Exp(row[j] - mx)
								sum += row[j]
							}
							for j := range row {
								row[j] /= sum
							}
						}
					}
				}
				return refMixLoss(p, v, dz.vals, a)
			}
			q64, k64, v64 := f64(q.vals), f64(k.vals), f64(v.vals)
			s.close(t, dq, q.t.Shape(), numGrad(func(q []float64) float64 { return loss(q, k64, v64) }, q64))
			s.close(t, dk, k.t.Shape(), numGrad(func(k []float64) float64 { return loss(q64, k, v64) }, k64))
			s.close(t, dv, v.t.Shape(), numGrad(func(v []float64) float64 { return loss(q64, k64, v) }, v64))
			s.unchanged(t, q, k, v, dz)
		})
	}
}

func (s *gradSuite) testConcatLast(t *testing.T) {
	tests := []struct {
		name   string
		lead   []int
		widths []int
	}{
		{"three parts", []int{2, 3}, []int{5, 1, 7}},
		{"one part", []int{4}, []int{6}},
		{"empty part", []int{2, 3}, []int{4, 0, 2}},
		{"rank 1", nil, []int{4, 3}},
		{"no rows", []int{0, 3}, []int{2, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			rows := engine.NumElements(tc.lead)
			parts := make([]input, len(tc.widths))
			ts := make([]*engine.Tensor, len(tc.widths))
			total := 0
			for i, w := range tc.widths {
				parts[i] = s.randIn(r, append(slices.Clone(tc.lead), w)...)
				ts[i] = parts[i].t
				total += w
			}
			var want []float32
			for row := range rows {
				for i, w := range tc.widths {
					want = append(want, parts[i].vals[row*w:(row+1)*w]...)
				}
			}
			shape := append(slices.Clone(tc.lead), total)
			got := s.g.ConcatLast(ts...)
			s.exact(t, got, shape, want)
			s.unchanged(t, parts...)
			// ConcatLast is the adjoint of SliceLast: slicing the result
			// gives back each part.
			from := 0
			for i, w := range tc.widths {
				s.exact(t, s.b.SliceLast(got, from, from+w), parts[i].t.Shape(), parts[i].vals)
				from += w
			}
		})
	}
}

func (s *gradSuite) testScatterRows(t *testing.T) {
	tests := []struct {
		name   string
		xShape []int // rows of x must number len(idx)
		idx    []int
		rows   int
	}{
		{"permutation", []int{4, 7}, []int{3, 0, 2, 1}, 4},
		{"repeats", []int{6, 15}, []int{1, 1, 0, 4, 1, 4}, 6},
		{"leading dims", []int{2, 3, 5}, []int{5, 4, 0, 0, 2, 5}, 7},
		{"none", []int{0, 5}, []int{}, 3},
		{"no rows", []int{0, 5}, []int{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			x := s.randIn(r, tc.xShape...)
			d := tc.xShape[len(tc.xShape)-1]
			want := make([]float64, tc.rows*d)
			for i, row := range tc.idx {
				for c := range d {
					want[row*d+c] += float64(x.vals[i*d+c])
				}
			}
			got := s.g.ScatterRows(x.t, tc.idx, tc.rows)
			s.close(t, got, []int{tc.rows, d}, want)
			s.unchanged(t, x)
			// ScatterRows is the adjoint of Rows:
			// ⟨ScatterRows(x), y⟩ = ⟨x, Rows(y)⟩.
			y := s.randIn(r, tc.rows, d)
			lhs := dotLoss(y.vals, s.b.ToHost(got))
			rhs := dotLoss(x.vals, s.b.ToHost(s.b.Rows(y.t, tc.idx)))
			assert.InDelta(t, rhs, lhs, 1e-5*(1+math.Abs(rhs)), "adjoint of Rows")
			// Without repeated indices, every row is copied exactly.
			seen := map[int]bool{}
			repeats := false
			for _, i := range tc.idx {
				repeats = repeats || seen[i]
				seen[i] = true
			}
			if !repeats {
				w32 := make([]float32, len(want))
				for i, v := range want {
					w32[i] = float32(v)
				}
				s.exact(t, got, []int{tc.rows, d}, w32)
			}
		})
	}
}

// testGradEmpty runs every backward op on tensors with no elements.
func (s *gradSuite) testGradEmpty(t *testing.T) {
	z := func(shape ...int) *engine.Tensor { return s.b.Zeros(shape...) }
	check := func(t *testing.T, got *engine.Tensor, shape ...int) {
		t.Helper()
		s.host(t, got, shape)
	}
	t.Run("LayerNormBackward", func(t *testing.T) {
		check(t, s.g.LayerNormBackward(z(0, 8), z(8), z(0, 8), 1e-5), 0, 8)
	})
	t.Run("GELUBackward", func(t *testing.T) {
		check(t, s.g.GELUBackward(z(0), z(0), engine.GELUTanh), 0)
		check(t, s.g.GELUBackward(z(2, 0), z(2, 0), engine.GELUErf), 2, 0)
	})
	t.Run("TanhBackward", func(t *testing.T) { check(t, s.g.TanhBackward(z(0, 3), z(0, 3)), 0, 3) })
	t.Run("SoftmaxBackward", func(t *testing.T) {
		check(t, s.g.SoftmaxBackward(z(0, 5), z(0, 5)), 0, 5)
		check(t, s.g.SoftmaxBackward(z(3, 0), z(3, 0)), 3, 0)
	})
	t.Run("AttnScoresBackward", func(t *testing.T) {
		dq, dk := s.g.AttnScoresBackward(z(1, 2, 0, 3), z(1, 0, 2, 4), z(1, 3, 2, 4), 0.5)
		check(t, dq, 1, 0, 2, 4)
		s.exact(t, dk, []int{1, 3, 2, 4}, make([]float32, 24))
	})
	t.Run("AttnMixBackward", func(t *testing.T) {
		dp, dv := s.g.AttnMixBackward(z(1, 0, 2, 4), z(1, 2, 0, 3), z(1, 3, 2, 4))
		check(t, dp, 1, 2, 0, 3)
		s.exact(t, dv, []int{1, 3, 2, 4}, make([]float32, 24))
	})
	t.Run("ScatterRows", func(t *testing.T) {
		s.exact(t, s.g.ScatterRows(z(0, 4), nil, 2), []int{2, 4}, make([]float32, 8))
	})
	t.Run("ConcatLast", func(t *testing.T) { check(t, s.g.ConcatLast(z(0, 2), z(0, 3)), 0, 5) })
}

func (s *gradSuite) testGradPanics(t *testing.T) {
	r := rng(t)
	x := s.randIn(r, 2, 5).t
	in := func(shape ...int) *engine.Tensor { return s.randIn(r, shape...).t }
	tests := []struct {
		name string
		op   func()
	}{
		{"LayerNormBackward gamma", func() { s.g.LayerNormBackward(x, in(4), in(2, 5), 1e-5) }},
		{"LayerNormBackward dy", func() { s.g.LayerNormBackward(x, in(5), in(2, 4), 1e-5) }},
		{"LayerNormBackward scalar", func() { s.g.LayerNormBackward(in(), in(1), in(), 1e-5) }},
		{"GELUBackward dy", func() { s.g.GELUBackward(x, in(5, 2), engine.GELUTanh) }},
		{"GELUBackward activation", func() { s.g.GELUBackward(x, in(2, 5), engine.Activation(99)) }},
		{"TanhBackward dy", func() { s.g.TanhBackward(x, in(3, 5)) }},
		{"SoftmaxBackward dy", func() { s.g.SoftmaxBackward(x, in(2, 6)) }},
		{"AttnScoresBackward heads", func() {
			s.g.AttnScoresBackward(in(1, 2, 3, 3), in(1, 3, 2, 4), in(1, 3, 3, 4), 1)
		}},
		{"AttnScoresBackward dscores", func() {
			s.g.AttnScoresBackward(in(1, 2, 3, 4), in(1, 3, 2, 4), in(1, 3, 2, 4), 1)
		}},
		{"AttnMixBackward keys", func() { s.g.AttnMixBackward(in(1, 3, 2, 4), in(1, 2, 3, 4), in(1, 5, 2, 4)) }},
		{"AttnMixBackward heads", func() { s.g.AttnMixBackward(in(1, 3, 2, 4), in(1, 2, 3, 4), in(1, 4, 3, 4)) }},
		{"AttnMixBackward dz", func() { s.g.AttnMixBackward(in(1, 3, 2, 5), in(1, 2, 3, 4), in(1, 4, 2, 4)) }},
		{"ConcatLast leading", func() { s.g.ConcatLast(in(2, 3, 4), in(2, 2, 4)) }},
		{"ConcatLast rank", func() { s.g.ConcatLast(in(2, 3), in(2, 1, 3)) }},
		{"ConcatLast no parts", func() { s.g.ConcatLast() }},
		{"ConcatLast scalar", func() { s.g.ConcatLast(in()) }},
		{"ScatterRows index", func() { s.g.ScatterRows(x, []int{0, 3}, 3) }},
		{"ScatterRows negative index", func() { s.g.ScatterRows(x, []int{-1, 0}, 3) }},
		{"ScatterRows count", func() { s.g.ScatterRows(x, []int{0}, 3) }},
		{"ScatterRows negative rows", func() { s.g.ScatterRows(x, []int{0, 1}, -1) }},
		{"ScatterRows scalar", func() { s.g.ScatterRows(in(), []int{0}, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			panicsInOp(t, tc.name, tc.op)
		})
	}
}
