// Package backendtest is a conformance suite for engine.Backend
// implementations. Each backend's tests call Run, which checks every op
// against hand-computed values and against naive float64 reference
// implementations written here, independently of any backend.
//
// The suite checks semantics (shapes, masking, broadcasting, -Inf and zero
// rows), agreement with float64 within a relative tolerance, that ops leave
// their inputs unchanged, and that shape mismatches panic. It does not check
// determinism, which is a property of the CPU backend tested there.
package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
)

// Tolerance is the largest max|got-want| / max|want| that Run accepts for a
// float op against its float64 reference.
const Tolerance = 1e-5

// Run checks every op of b, each in its own subtest.
func Run(t *testing.T, b engine.Backend) {
	s := &suite{b: b}
	t.Run("Basics", s.testBasics)
	t.Run("MatMul", s.testMatMul)
	t.Run("LayerNorm", s.testLayerNorm)
	t.Run("LayerNormScale", s.testLayerNormScale)
	t.Run("AddLayerNorm", s.testAddLayerNorm)
	t.Run("GELU", s.testGELU)
	t.Run("MatMulGELU", s.testMatMulGELU)
	t.Run("Tanh", s.testTanh)
	t.Run("Add", s.testAdd)
	t.Run("Embedding", s.testEmbedding)
	t.Run("Gather", s.testGather)
	t.Run("SetRowsAt", s.testSetRowsAt)
	t.Run("QueryOffsetAt", s.testQueryOffsetAt)
	t.Run("Rows", s.testRows)
	t.Run("SliceLast", s.testSliceLast)
	t.Run("Concat", s.testConcat)
	t.Run("AttnScores", s.testAttnScores)
	t.Run("Softmax", s.testSoftmax)
	t.Run("AttnMix", s.testAttnMix)
	t.Run("Attention", s.testAttention)
	t.Run("HeadResult", s.testHeadResult)
	t.Run("SumAxis", s.testSumAxis)
	t.Run("Edit", s.testEdit)
	t.Run("View", s.testView)
	t.Run("Panics", s.testPanics)
}

type suite struct {
	b engine.Backend
}

// input is a tensor on the backend and a private copy of its values.
type input struct {
	t    *engine.Tensor
	vals []float32
}

// rng returns a generator for one test, seeded by name so that tests do not
// depend on each other's order.
func rng(t *testing.T) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(t.Name()) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(h, 0x5eed))
}

// randn returns n standard normal values.
func randn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// in uploads vals (a copy, since host backends alias) as a tensor of shape.
func (s *suite) in(vals []float32, shape ...int) input {
	return input{t: s.b.FromHost(slices.Clone(vals), shape...), vals: vals}
}

// randIn uploads normal values of the given shape.
func (s *suite) randIn(r *rand.Rand, shape ...int) input {
	return s.in(randn(r, engine.NumElements(shape)), shape...)
}

// unchanged checks that ops left the inputs' values as they were.
func (s *suite) unchanged(t *testing.T, ins ...input) {
	t.Helper()
	for i, in := range ins {
		got := s.b.ToHost(in.t)
		require.Len(t, got, len(in.vals), "input %d", i)
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(in.vals[j]) {
				require.Failf(t, "input changed", "input %d element %d: %v, was %v", i, j, got[j], in.vals[j])
			}
		}
	}
}

// host returns got's values after checking its shape.
func (s *suite) host(t *testing.T, got *engine.Tensor, shape []int) []float32 {
	t.Helper()
	require.NotNil(t, got)
	require.NoError(t, s.b.Sync())
	require.Equal(t, shape, got.Shape(), "shape")
	v := s.b.ToHost(got)
	require.Len(t, v, engine.NumElements(shape))
	return v
}

// close checks got against a float64 reference: infinities must match
// exactly, NaN never appears, and finite values agree within Tolerance of
// the largest |want|.
func (s *suite) close(t *testing.T, got *engine.Tensor, shape []int, want []float64) {
	t.Helper()
	closeTo(t, s.host(t, got, shape), want, Tolerance)
}

func closeTo(t *testing.T, got []float32, want []float64, tol float64) {
	t.Helper()
	require.Len(t, got, len(want))
	var maxErr, maxRef float64
	for i, w := range want {
		g := float64(got[i])
		require.False(t, math.IsNaN(g), "element %d is NaN, want %v", i, w)
		if math.IsInf(w, 0) || math.IsInf(g, 0) {
			require.Equal(t, w, g, "element %d", i)
			continue
		}
		maxErr = max(maxErr, math.Abs(g-w))
		maxRef = max(maxRef, math.Abs(w))
	}
	if maxRef == 0 {
		require.Zero(t, maxErr, "want all zeros")
		return
	}
	require.LessOrEqual(t, maxErr/maxRef, tol, "relative error: max error %g, max |want| %g", maxErr, maxRef)
}

// exact checks that got has exactly the values want.
func (s *suite) exact(t *testing.T, got *engine.Tensor, shape []int, want []float32) {
	t.Helper()
	v := s.host(t, got, shape)
	for i := range want {
		if math.Float32bits(v[i]) != math.Float32bits(want[i]) {
			require.Failf(t, "values differ", "element %d: got %v, want %v", i, v[i], want[i])
		}
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func (s *suite) testBasics(t *testing.T) {
	assert.NotEmpty(t, s.b.Name())
	vals := []float32{1, -2, 3.5, 0, float32(math.Inf(-1)), 6}
	x := s.in(vals, 2, 3)
	s.exact(t, x.t, []int{2, 3}, vals)
	assert.Equal(t, 2, x.t.Rank())

	s.exact(t, s.b.Zeros(3, 1, 2), []int{3, 1, 2}, make([]float32, 6))
	s.exact(t, s.b.Zeros(2, 0, 4), []int{2, 0, 4}, nil)
	require.NoError(t, s.b.Sync())

	// A reshaped view reads the same values.
	s.exact(t, x.t.Reshape(3, -1), []int{3, 2}, vals)
}

func refMatMul(x, w, bias []float32, m, k, n int, transW bool) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				wv := w[p*n+j]
				if transW {
					wv = w[j*k+p]
				}
				s += float64(x[i*k+p]) * float64(wv)
			}
			if bias != nil {
				s += float64(bias[j])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// matmulInputs returns random inputs of a product of x [lead..., k] and w
// ([k, n], or [n, k] with transW), with a bias [n] when bias is set (biasT
// nil otherwise), and all of them as ins for unchanged.
func (s *suite) matmulInputs(r *rand.Rand, lead []int, k, n int, bias, transW bool) (x, w input, biasT *engine.Tensor, biasV []float32, ins []input) {
	x = s.randIn(r, append(slices.Clone(lead), k)...)
	wShape := []int{k, n}
	if transW {
		wShape = []int{n, k}
	}
	w = s.randIn(r, wShape...)
	ins = []input{x, w}
	if bias {
		b := s.randIn(r, n)
		biasT, biasV = b.t, b.vals
		ins = append(ins, b)
	}
	return x, w, biasT, biasV, ins
}

func (s *suite) testMatMul(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		x := s.in([]float32{1, 2, 3, 4}, 2, 2)
		w := s.in([]float32{5, 6, 7, 8}, 2, 2)
		bias := s.in([]float32{1, -1}, 2)
		s.exact(t, s.b.MatMul(x.t, w.t, nil, false), []int{2, 2}, []float32{19, 22, 43, 50})
		s.exact(t, s.b.MatMul(x.t, w.t, bias.t, false), []int{2, 2}, []float32{20, 21, 44, 49})
		s.exact(t, s.b.MatMul(x.t, w.t, bias.t, true), []int{2, 2}, []float32{18, 22, 40, 52})
		s.unchanged(t, x, w, bias)
	})
	tests := []struct {
		name   string
		lead   []int // leading dimensions of x
		k, n   int
		bias   bool
		transW bool
	}{
		{"1x1", []int{1}, 1, 1, false, false},
		{"vector x", nil, 7, 5, true, false},
		{"vector x transW", nil, 7, 5, true, true},
		{"odd", []int{5}, 37, 61, true, false},
		{"odd transW", []int{5}, 37, 61, true, true},
		{"leading dims", []int{2, 3}, 37, 61, true, false},
		{"leading dims transW", []int{2, 3}, 37, 61, false, true},
		{"K 768", []int{3}, 768, 67, true, false},
		{"K 768 transW", []int{3}, 768, 67, true, true},
		{"many rows", []int{70}, 19, 33, true, false},
		{"many rows transW", []int{70}, 19, 33, true, true},
		{"no rows", []int{0}, 8, 3, true, false},
		{"no rows transW", []int{0}, 8, 3, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := engine.NumElements(tc.lead)
			x, w, biasT, biasV, ins := s.matmulInputs(rng(t), tc.lead, tc.k, tc.n, tc.bias, tc.transW)
			got := s.b.MatMul(x.t, w.t, biasT, tc.transW)
			s.close(t, got, append(slices.Clone(tc.lead), tc.n), refMatMul(x.vals, w.vals, biasV, m, tc.k, tc.n, tc.transW))
			s.unchanged(t, ins...)
		})
	}
}

func refMoments(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x))
}

func (s *suite) testLayerNorm(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// mean 2.5, variance 1.25.
		x := s.in([]float32{1, 2, 3, 4}, 1, 4)
		g := s.in([]float32{1, 1, 2, 1}, 4)
		beta := s.in([]float32{0, 0, 0, 10}, 4)
		sd := math.Sqrt(1.25)
		s.close(t, s.b.LayerNorm(x.t, g.t, beta.t, 0), []int{1, 4},
			[]float64{-1.5 / sd, -0.5 / sd, 2 * 0.5 / sd, 1.5/sd + 10})
		s.unchanged(t, x, g, beta)
	})
	for _, tc := range layerNormCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			vals := randn(r, engine.NumElements(tc.shape))
			for i := range vals {
				vals[i] = vals[i]*0.5 + tc.offset
			}
			x := s.in(vals, tc.shape...)
			d := tc.shape[len(tc.shape)-1]
			g, beta := s.randIn(r, d), s.randIn(r, d)
			s.close(t, s.b.LayerNorm(x.t, g.t, beta.t, tc.eps), tc.shape, refLayerNorm(x.vals, g.vals, beta.vals, d, tc.eps))
			s.unchanged(t, x, g, beta)
		})
	}
}

// layerNormCase is a random input of LayerNorm and AddLayerNorm: values
// N(offset, 0.25) of shape, normalised with eps.
type layerNormCase struct {
	name   string
	shape  []int
	offset float32
	eps    float32
}

// layerNormCases returns the random cases of LayerNorm and AddLayerNorm.
func layerNormCases() []layerNormCase {
	return []layerNormCase{
		{"odd", []int{2, 7, 61}, 0, 1e-5},
		{"offset", []int{3, 768}, 100, 1e-5},
		{"large eps", []int{4, 15}, 0, 0.5},
		{"vector", []int{37}, 3, 1e-12},
		{"many rows", []int{300, 33}, 0, 1e-5},
		{"no rows", []int{0, 8}, 0, 1e-5},
	}
}

func (s *suite) testLayerNormScale(t *testing.T) {
	x := s.in([]float32{1, 2, 3, 4, 5, 5, 5, 5}, 2, 1, 4)
	s.close(t, s.b.LayerNormScale(x.t, 0.75), []int{2, 1, 1},
		[]float64{math.Sqrt(1.25 + 0.75), math.Sqrt(0.75)})
	s.unchanged(t, x)

	r := rng(t)
	y := s.randIn(r, 3, 5, 61)
	want := make([]float64, 15)
	for i := range want {
		_, v := refMoments(y.vals[i*61 : (i+1)*61])
		want[i] = math.Sqrt(v + 1e-5)
	}
	s.close(t, s.b.LayerNormScale(y.t, 1e-5), []int{3, 5, 1}, want)
	s.unchanged(t, y)
}

// refLayerNorm is LayerNorm over rows of d in float64.
func refLayerNorm(x, gamma, beta []float32, d int, eps float32) []float64 {
	out := make([]float64, len(x))
	for row := 0; row < len(x); row += d {
		mean, v := refMoments(x[row : row+d])
		for i := range d {
			out[row+i] = (float64(x[row+i])-mean)/math.Sqrt(v+float64(eps))*float64(gamma[i]) + float64(beta[i])
		}
	}
	return out
}

// testAddLayerNorm checks the fused residual add and LayerNorm: the sum
// exactly (one float32 addition per element), the normalised sum against
// float64, and both against Add then LayerNorm.
func (s *suite) testAddLayerNorm(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// The sum is (1, 2, 3, 4): mean 2.5, variance 1.25.
		x := s.in([]float32{0.5, 3, 3, 0}, 1, 4)
		delta := s.in([]float32{0.5, -1, 0, 4}, 1, 4)
		g := s.in([]float32{1, 1, 2, 1}, 4)
		beta := s.in([]float32{0, 0, 0, 10}, 4)
		sd := math.Sqrt(1.25)
		sum, normed := s.b.AddLayerNorm(x.t, delta.t, g.t, beta.t, 0)
		s.exact(t, sum, []int{1, 4}, []float32{1, 2, 3, 4})
		s.close(t, normed, []int{1, 4}, []float64{-1.5 / sd, -0.5 / sd, 2 * 0.5 / sd, 1.5/sd + 10})
		s.unchanged(t, x, delta, g, beta)
	})
	for _, tc := range layerNormCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			n := engine.NumElements(tc.shape)
			xv, dv := randn(r, n), randn(r, n)
			for i := range xv {
				xv[i] = xv[i]*0.5 + tc.offset
			}
			x, delta := s.in(xv, tc.shape...), s.in(dv, tc.shape...)
			d := tc.shape[len(tc.shape)-1]
			g, beta := s.randIn(r, d), s.randIn(r, d)
			wantSum := make([]float32, n)
			for i := range wantSum {
				wantSum[i] = xv[i] + dv[i]
			}
			sum, normed := s.b.AddLayerNorm(x.t, delta.t, g.t, beta.t, tc.eps)
			s.exact(t, sum, tc.shape, wantSum)
			s.close(t, normed, tc.shape, refLayerNorm(wantSum, g.vals, beta.vals, d, tc.eps))
			// And the two ops it fuses, within the tolerance.
			two := s.b.LayerNorm(s.b.Add(x.t, delta.t), g.t, beta.t, tc.eps)
			closeTo(t, s.host(t, normed, tc.shape), f64(s.host(t, two, tc.shape)), Tolerance)
			s.unchanged(t, x, delta, g, beta)
		})
	}
}

func geluTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func geluErf(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// unaryInput returns values spanning the interesting range of an activation.
func (s *suite) unaryInput(t *testing.T) input {
	r := rng(t)
	v := randn(r, 300)
	for i := range v {
		v[i] *= 3
	}
	v = append(v, 0, 1, -1, 10, -10, 30, -30, 1e-8, -1e-8)
	return s.in(v, 3, len(v)/3)
}

func (s *suite) testGELU(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		x := s.in([]float32{0, 1, -1, 2}, 4)
		s.close(t, s.b.GELU(x.t, engine.GELUTanh), []int{4},
			[]float64{0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775})
		s.close(t, s.b.GELU(x.t, engine.GELUErf), []int{4},
			[]float64{0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416})
		s.unchanged(t, x)
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
			want := f64(x.vals)
			for i, v := range want {
				want[i] = tc.f(v)
			}
			s.close(t, s.b.GELU(x.t, tc.kind), x.t.Shape(), want)
			s.unchanged(t, x)
		})
	}
}

// testMatMulGELU checks the matmul with the GELU epilogue against GELU of
// the float64 product, and against MatMul then GELU.
func (s *suite) testMatMulGELU(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// x·w + bias = [[0, 1], [-1, 2]].
		x := s.in([]float32{1, 0, 0, 1}, 2, 2)
		w := s.in([]float32{1, 2, 0, 3}, 2, 2)
		bias := s.in([]float32{-1, -1}, 2)
		s.close(t, s.b.MatMulGELU(x.t, w.t, bias.t, false, engine.GELUTanh), []int{2, 2},
			[]float64{0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775})
		s.close(t, s.b.MatMulGELU(x.t, w.t, bias.t, false, engine.GELUErf), []int{2, 2},
			[]float64{0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416})
		s.unchanged(t, x, w, bias)
	})
	tests := []struct {
		name   string
		lead   []int // leading dimensions of x
		k, n   int
		bias   bool
		transW bool
		kind   engine.Activation
	}{
		{"vector x", nil, 7, 5, true, false, engine.GELUTanh},
		{"odd", []int{5}, 37, 61, true, false, engine.GELUTanh},
		{"odd transW erf", []int{5}, 37, 61, true, true, engine.GELUErf},
		{"leading dims", []int{2, 3}, 37, 61, false, false, engine.GELUErf},
		{"K 768", []int{3}, 768, 67, true, false, engine.GELUTanh},
		{"K 768 transW", []int{3}, 768, 67, true, true, engine.GELUErf},
		{"many rows", []int{70}, 19, 33, true, false, engine.GELUTanh},
		{"many rows transW", []int{130}, 40, 129, true, true, engine.GELUTanh},
		{"no rows", []int{0}, 8, 3, true, false, engine.GELUTanh},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := engine.NumElements(tc.lead)
			x, w, biasT, biasV, ins := s.matmulInputs(rng(t), tc.lead, tc.k, tc.n, tc.bias, tc.transW)
			f := geluTanh
			if tc.kind == engine.GELUErf {
				f = geluErf
			}
			want := refMatMul(x.vals, w.vals, biasV, m, tc.k, tc.n, tc.transW)
			for i, v := range want {
				want[i] = f(v)
			}
			shape := append(slices.Clone(tc.lead), tc.n)
			got := s.b.MatMulGELU(x.t, w.t, biasT, tc.transW, tc.kind)
			s.close(t, got, shape, want)
			// And the two ops it fuses, within the tolerance.
			two := s.b.GELU(s.b.MatMul(x.t, w.t, biasT, tc.transW), tc.kind)
			closeTo(t, s.host(t, got, shape), f64(s.host(t, two, shape)), Tolerance)
			s.unchanged(t, ins...)
		})
	}
}

func (s *suite) testTanh(t *testing.T) {
	x := s.unaryInput(t)
	want := f64(x.vals)
	for i, v := range want {
		want[i] = math.Tanh(v)
	}
	s.close(t, s.b.Tanh(x.t), x.t.Shape(), want)
	s.unchanged(t, x)
}

func (s *suite) testAdd(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		a := s.in([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
		b := s.in([]float32{10, 20, 30}, 3)
		s.exact(t, s.b.Add(a.t, b.t), []int{2, 3}, []float32{11, 22, 33, 14, 25, 36})
		s.unchanged(t, a, b)
	})
	tests := []struct {
		name   string
		aShape []int
		bShape []int
	}{
		{"same shape", []int{2, 7, 61}, []int{2, 7, 61}},
		{"last dim", []int{2, 7, 61}, []int{61}},
		{"two dims", []int{2, 7, 61}, []int{7, 61}},
		{"vector", []int{5}, []int{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			a, b := s.randIn(r, tc.aShape...), s.randIn(r, tc.bShape...)
			want := make([]float32, len(a.vals))
			for i := range want {
				want[i] = a.vals[i] + b.vals[i%len(b.vals)]
			}
			s.exact(t, s.b.Add(a.t, b.t), tc.aShape, want)
			s.unchanged(t, a, b)
		})
	}
}

func (s *suite) testEmbedding(t *testing.T) {
	r := rng(t)
	table := s.randIn(r, 50, 15)
	tests := []struct {
		name string
		ids  []int32
	}{
		{"one", []int32{7}},
		{"repeats and ends", []int32{0, 49, 3, 3, 17, 0}},
		{"none", []int32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []float32
			for _, id := range tc.ids {
				want = append(want, table.vals[int(id)*15:int(id+1)*15]...)
			}
			s.exact(t, s.b.Embedding(table.t, tc.ids), []int{len(tc.ids), 15}, want)
			s.unchanged(t, table)
		})
	}
}

// testGather checks Gather against the rows of the table, and a row of
// NaN for each index that is not a row: negative, past the end, not an
// integer, NaN.
func (s *suite) testGather(t *testing.T) {
	r := rng(t)
	const rows, d = 50, 15
	table := s.randIn(r, rows, d)
	nan := float32(math.NaN())
	tests := []struct {
		name string
		idx  []float32
	}{
		{"one", []float32{7}},
		{"repeats and ends", []float32{0, 49, 3, 3, 17, 0}},
		{"not rows", []float32{50, -1, 2.5, nan, 1 << 24, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx := s.in(tc.idx, len(tc.idx))
			got := s.host(t, s.b.Gather(table.t, idx.t), []int{len(tc.idx), d})
			for i, f := range tc.idx {
				row := got[i*d : (i+1)*d]
				if f >= 0 && f < rows && f == float32(int(f)) {
					assert.Equal(t, table.vals[int(f)*d:int(f+1)*d], row, "index %v", f)
					continue
				}
				for c, v := range row {
					assert.True(t, math.IsNaN(float64(v)), "index %v, column %d: %v, want NaN", f, c, v)
				}
			}
			s.unchanged(t, table, idx)
		})
	}
}

// testSetRowsAt checks SetRowsAt against a copy by hand: rows written at
// the position, in every sequence, none past the end, none when the
// position is not an index.
func (s *suite) testSetRowsAt(t *testing.T) {
	const nb, rows, steps, inner = 2, 6, 2, 6
	tests := []struct {
		name string
		at   float32
	}{
		{"first", 0},
		{"middle", 3},
		{"last two", 4},
		{"partly past the end", 5},
		{"past the end", 6},
		{"negative", -1},
		{"not an integer", 1.5},
		{"NaN", float32(math.NaN())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			dst := s.randIn(r, nb, rows, 3, 2)
			src := s.randIn(r, nb, steps, 3, 2)
			at := s.in([]float32{tc.at}, 1)
			want := slices.Clone(dst.vals)
			if tc.at >= 0 && tc.at == float32(int(tc.at)) {
				for b := range nb {
					for i := range steps {
						if row := int(tc.at) + i; row < rows {
							copy(want[(b*rows+row)*inner:(b*rows+row+1)*inner], src.vals[(b*steps+i)*inner:(b*steps+i+1)*inner])
						}
					}
				}
			}
			s.b.SetRowsAt(dst.t, src.t, at.t)
			s.exact(t, dst.t, []int{nb, rows, 3, 2}, want)
			s.unchanged(t, src, at)
		})
	}
}

// testQueryOffsetAt checks that an attention whose offset is read from a
// tensor gives the bits of the same offset given as a number, split
// between the two or not, and that a value that is not an index masks
// every key.
func (s *suite) testQueryOffsetAt(t *testing.T) {
	r := rng(t)
	const nb, tq, tk, h, dh = 1, 2, 9, 2, 16
	q := s.randIn(r, nb, tq, h, dh)
	k := s.randIn(r, nb, tk, h, dh)
	v := s.randIn(r, nb, tk, h, dh)
	scale := float32(0.25)
	for _, c := range []struct{ offset, at int }{{0, 5}, {2, 3}, {0, 0}, {4, 4}} {
		t.Run(fmt.Sprintf("offset %d at %d", c.offset, c.at), func(t *testing.T) {
			at := s.in([]float32{float32(c.at)}, 1)
			byNumber := engine.AttnMask{Causal: true, QueryOffset: c.offset + c.at}
			byTensor := engine.AttnMask{Causal: true, QueryOffset: c.offset, QueryOffsetAt: at.t}
			zShape, sShape := []int{nb, tq, h, dh}, []int{nb, h, tq, tk}
			s.exact(t, s.b.Attention(q.t, k.t, v.t, scale, byTensor), zShape,
				s.host(t, s.b.Attention(q.t, k.t, v.t, scale, byNumber), zShape))
			s.exact(t, s.b.AttnScores(q.t, k.t, scale, byTensor), sShape,
				s.host(t, s.b.AttnScores(q.t, k.t, scale, byNumber), sShape))
			s.unchanged(t, q, k, v, at)
		})
	}
	t.Run("not an index", func(t *testing.T) {
		at := s.in([]float32{float32(math.NaN())}, 1)
		mask := engine.AttnMask{Causal: true, QueryOffset: 3, QueryOffsetAt: at.t}
		s.exact(t, s.b.Attention(q.t, k.t, v.t, scale, mask), []int{nb, tq, h, dh}, make([]float32, nb*tq*h*dh))
		inf := make([]float32, nb*h*tq*tk)
		for i := range inf {
			inf[i] = float32(math.Inf(-1))
		}
		s.exact(t, s.b.AttnScores(q.t, k.t, scale, mask), []int{nb, h, tq, tk}, inf)
	})
}

func (s *suite) testRows(t *testing.T) {
	r := rng(t)
	x := s.randIn(r, 2, 3, 5) // six rows of five
	tests := []struct {
		name string
		idx  []int
	}{
		{"one", []int{4}},
		{"all reversed", []int{5, 4, 3, 2, 1, 0}},
		{"repeats", []int{1, 1, 0}},
		{"none", []int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []float32
			for _, i := range tc.idx {
				want = append(want, x.vals[i*5:(i+1)*5]...)
			}
			s.exact(t, s.b.Rows(x.t, tc.idx), []int{len(tc.idx), 5}, want)
			s.unchanged(t, x)
		})
	}
}

func (s *suite) testSliceLast(t *testing.T) {
	r := rng(t)
	x := s.randIn(r, 2, 3, 7)
	tests := []struct {
		name     string
		from, to int
	}{
		{"middle", 2, 5},
		{"all", 0, 7},
		{"first", 0, 1},
		{"last", 6, 7},
		{"empty", 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []float32
			for row := 0; row < 6; row++ {
				want = append(want, x.vals[row*7+tc.from:row*7+tc.to]...)
			}
			s.exact(t, s.b.SliceLast(x.t, tc.from, tc.to), []int{2, 3, tc.to - tc.from}, want)
			s.unchanged(t, x)
		})
	}
}

func (s *suite) testConcat(t *testing.T) {
	tests := []struct {
		name   string
		ta, tb int
		inner  []int
	}{
		{"cache and step", 5, 1, []int{3, 4}},
		{"empty cache", 0, 3, []int{3, 4}},
		{"empty step", 2, 0, []int{2}},
		{"rank 2", 2, 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			const batch = 2
			n := engine.NumElements(tc.inner)
			a := s.randIn(r, append([]int{batch, tc.ta}, tc.inner...)...)
			b := s.randIn(r, append([]int{batch, tc.tb}, tc.inner...)...)
			var want []float32
			for i := range batch {
				want = append(want, a.vals[i*tc.ta*n:(i+1)*tc.ta*n]...)
				want = append(want, b.vals[i*tc.tb*n:(i+1)*tc.tb*n]...)
			}
			s.exact(t, s.b.Concat(a.t, b.t), append([]int{batch, tc.ta + tc.tb}, tc.inner...), want)
			s.unchanged(t, a, b)
		})
	}
}

// refScores is q·kᵀ·scale with -Inf where mask forbids, as [B, H, Tq, Tk].
func refScores(q, k []float32, nb, tq, tk, h, dh int, scale float32, mask engine.AttnMask) []float64 {
	out := make([]float64, nb*h*tq*tk)
	for b := range nb {
		for hh := range h {
			for i := range tq {
				for j := range tk {
					o := ((b*h+hh)*tq+i)*tk + j
					if (mask.Causal && j > i+mask.QueryOffset) || (mask.KeyValid != nil && mask.KeyValid[b*tk+j] == 0) {
						out[o] = math.Inf(-1)
						continue
					}
					var sum float64
					for d := range dh {
						sum += float64(q[((b*tq+i)*h+hh)*dh+d]) * float64(k[((b*tk+j)*h+hh)*dh+d])
					}
					out[o] = sum * float64(scale)
				}
			}
		}
	}
	return out
}

func (s *suite) testAttnScores(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// B=1, Tq=Tk=2, H=1, Dh=2.
		q := s.in([]float32{1, 0, 0, 2}, 1, 2, 1, 2)
		k := s.in([]float32{3, 4, 5, 6}, 1, 2, 1, 2)
		inf := float32(math.Inf(-1))
		s.exact(t, s.b.AttnScores(q.t, k.t, 0.5, engine.AttnMask{}), []int{1, 1, 2, 2}, []float32{1.5, 2.5, 4, 6})
		s.exact(t, s.b.AttnScores(q.t, k.t, 0.5, engine.AttnMask{Causal: true}), []int{1, 1, 2, 2}, []float32{1.5, inf, 4, 6})
		s.exact(t, s.b.AttnScores(q.t, k.t, 0.5, engine.AttnMask{KeyValid: []int32{0, 1}}), []int{1, 1, 2, 2}, []float32{inf, 2.5, inf, 6})
		s.unchanged(t, q, k)
	})
	tests := []struct {
		name       string
		nb, tq, tk int
		h, dh      int
		mask       engine.AttnMask
	}{
		{"no mask", 2, 7, 7, 3, 15, engine.AttnMask{}},
		{"causal", 2, 7, 7, 3, 15, engine.AttnMask{Causal: true}},
		{"causal offset", 2, 3, 7, 3, 15, engine.AttnMask{Causal: true, QueryOffset: 4}},
		{"decode", 1, 1, 9, 2, 64, engine.AttnMask{Causal: true, QueryOffset: 8}},
		{"padding", 2, 5, 5, 2, 8, engine.AttnMask{KeyValid: []int32{1, 1, 1, 1, 1, 0, 0, 1, 1, 1}}},
		{"causal padding", 2, 5, 5, 2, 8, engine.AttnMask{Causal: true, KeyValid: []int32{1, 1, 1, 0, 0, 0, 1, 1, 1, 1}}},
		{"fully masked rows", 1, 3, 4, 1, 4, engine.AttnMask{Causal: true, QueryOffset: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			q := s.randIn(r, tc.nb, tc.tq, tc.h, tc.dh)
			k := s.randIn(r, tc.nb, tc.tk, tc.h, tc.dh)
			scale := float32(1 / math.Sqrt(float64(tc.dh)))
			got := s.b.AttnScores(q.t, k.t, scale, tc.mask)
			s.close(t, got, []int{tc.nb, tc.h, tc.tq, tc.tk}, refScores(q.vals, k.vals, tc.nb, tc.tq, tc.tk, tc.h, tc.dh, scale, tc.mask))
			s.unchanged(t, q, k)
		})
	}
}

func refSoftmax(x []float32, d int) []float64 {
	out := make([]float64, len(x))
	for row := 0; row < len(x); row += d {
		mx := math.Inf(-1)
		for _, v := range x[row : row+d] {
			mx = max(mx, float64(v))
		}
		if math.IsInf(mx, -1) {
			continue
		}
		var sum float64
		for i := range d {
			out[row+i] = math.Exp(float64(x[row+i]) - mx)
			sum += out[row+i]
		}
		for i := range d {
			out[row+i] /= sum
		}
	}
	return out
}

func (s *suite) testSoftmax(t *testing.T) {
	inf := float32(math.Inf(-1))
	e1, e2 := math.Exp(1), math.Exp(2)
	tests := []struct {
		name  string
		x     []float32
		shape []int
		want  []float64
	}{
		{"by hand", []float32{0, 1, 2}, []int{1, 3}, []float64{1 / (1 + e1 + e2), e1 / (1 + e1 + e2), e2 / (1 + e1 + e2)}},
		{"masked", []float32{0, inf, 0, inf}, []int{4}, []float64{0.5, 0, 0.5, 0}},
		{"all masked", []float32{inf, inf, inf, 1, 1, 1}, []int{2, 3}, []float64{0, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3}},
		{"large", []float32{1000, 1000, -1000}, []int{3}, []float64{0.5, 0.5, 0}},
		{"very negative", []float32{-1e4, -1e4}, []int{2}, []float64{0.5, 0.5}},
		{"one column", []float32{3, inf, -7}, []int{3, 1}, []float64{1, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := s.in(tc.x, tc.shape...)
			s.close(t, s.b.Softmax(x.t), tc.shape, tc.want)
			s.unchanged(t, x)
		})
	}
	t.Run("random", func(t *testing.T) {
		r := rng(t)
		x := randn(r, 2*3*7*7)
		for i := range x {
			x[i] *= 4
			if r.IntN(4) == 0 {
				x[i] = inf
			}
		}
		in := s.in(x, 2, 3, 7, 7)
		s.close(t, s.b.Softmax(in.t), []int{2, 3, 7, 7}, refSoftmax(x, 7))
		s.unchanged(t, in)
	})
}

func refMix(p, v []float32, nb, h, tq, tk, dh int) []float64 {
	out := make([]float64, nb*tq*h*dh)
	for b := range nb {
		for hh := range h {
			for i := range tq {
				for d := range dh {
					var sum float64
					for j := range tk {
						sum += float64(p[((b*h+hh)*tq+i)*tk+j]) * float64(v[((b*tk+j)*h+hh)*dh+d])
					}
					out[((b*tq+i)*h+hh)*dh+d] = sum
				}
			}
		}
	}
	return out
}

func (s *suite) testAttnMix(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// B=1, H=1, Tq=2, Tk=2, Dh=2.
		p := s.in([]float32{1, 0, 0.25, 0.75}, 1, 1, 2, 2)
		v := s.in([]float32{4, 8, 8, -4}, 1, 2, 1, 2)
		s.exact(t, s.b.AttnMix(p.t, v.t), []int{1, 2, 1, 2}, []float32{4, 8, 7, -1})
		s.unchanged(t, p, v)
	})
	tests := []struct {
		name              string
		nb, h, tq, tk, dh int
		zeroFrac          float64 // fraction of weights that are zero
	}{
		{"dense", 2, 3, 7, 7, 15, 0},
		{"sparse", 2, 3, 7, 7, 15, 0.5},
		{"decode", 2, 2, 1, 9, 64, 0.2},
		{"cross", 1, 2, 3, 5, 8, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			pv := make([]float32, tc.nb*tc.h*tc.tq*tc.tk)
			for i := range pv {
				if r.Float64() >= tc.zeroFrac {
					pv[i] = float32(r.Float64())
				}
			}
			p := s.in(pv, tc.nb, tc.h, tc.tq, tc.tk)
			v := s.randIn(r, tc.nb, tc.tk, tc.h, tc.dh)
			s.close(t, s.b.AttnMix(p.t, v.t), []int{tc.nb, tc.tq, tc.h, tc.dh}, refMix(pv, v.vals, tc.nb, tc.h, tc.tq, tc.tk, tc.dh))
			s.unchanged(t, p, v)
		})
	}
}

// refAttention is softmax(q·kᵀ·scale, masked)·v in float64, as
// [B, Tq, H, Dh]; a query with every key masked gets zeros.
func refAttention(q, k, v []float32, nb, tq, tk, h, dh int, scale float32, mask engine.AttnMask) []float64 {
	scores := refScores(q, k, nb, tq, tk, h, dh, scale, mask)
	out := make([]float64, nb*tq*h*dh)
	for b := range nb {
		for hh := range h {
			for i := range tq {
				row := scores[((b*h+hh)*tq+i)*tk : ((b*h+hh)*tq+i+1)*tk]
				mx := math.Inf(-1)
				for _, x := range row {
					mx = max(mx, x)
				}
				if math.IsInf(mx, -1) {
					continue
				}
				var sum float64
				for _, x := range row {
					sum += math.Exp(x - mx)
				}
				for j, x := range row {
					if math.IsInf(x, -1) {
						continue
					}
					p := math.Exp(x-mx) / sum
					for d := range dh {
						out[((b*tq+i)*h+hh)*dh+d] += p * float64(v[((b*tk+j)*h+hh)*dh+d])
					}
				}
			}
		}
	}
	return out
}

func (s *suite) testAttention(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		// B=1, Tq=Tk=2, H=1, Dh=2; scores [[0, -Inf], [0, 0]] with the causal mask.
		q := s.in([]float32{1, 0, 0, 0}, 1, 2, 1, 2)
		k := s.in([]float32{0, 5, 7, 0}, 1, 2, 1, 2)
		v := s.in([]float32{2, 4, 6, -8}, 1, 2, 1, 2)
		// Query 0: scores (0, 7), causal: key 0 only. Query 1: scores (0, 0).
		s.close(t, s.b.Attention(q.t, k.t, v.t, 1, engine.AttnMask{Causal: true}), []int{1, 2, 1, 2}, []float64{2, 4, 4, -2})
		s.unchanged(t, q, k, v)
	})
	tests := []struct {
		name       string
		nb, tq, tk int
		h, dh      int
		mask       engine.AttnMask
	}{
		{"no mask", 2, 7, 7, 3, 15, engine.AttnMask{}},
		{"causal", 2, 7, 7, 3, 15, engine.AttnMask{Causal: true}},
		{"causal offset", 2, 3, 7, 3, 15, engine.AttnMask{Causal: true, QueryOffset: 4}},
		{"decode", 1, 1, 9, 2, 64, engine.AttnMask{Causal: true, QueryOffset: 8}},
		{"cross", 1, 3, 5, 2, 8, engine.AttnMask{}},
		{"padding", 2, 5, 5, 2, 8, engine.AttnMask{KeyValid: []int32{1, 1, 1, 1, 1, 0, 0, 1, 1, 1}}},
		{"causal padding", 2, 5, 5, 2, 8, engine.AttnMask{Causal: true, KeyValid: []int32{1, 1, 1, 0, 0, 0, 1, 1, 1, 1}}},
		{"fully masked rows", 1, 3, 4, 1, 4, engine.AttnMask{Causal: true, QueryOffset: -1}},
		{"long", 1, 40, 40, 2, 64, engine.AttnMask{Causal: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			q := s.randIn(r, tc.nb, tc.tq, tc.h, tc.dh)
			k := s.randIn(r, tc.nb, tc.tk, tc.h, tc.dh)
			vv := randn(r, tc.nb*tc.tk*tc.h*tc.dh)
			if tc.mask.KeyValid != nil {
				// Values of padded keys are never read.
				for b := range tc.nb {
					for j := range tc.tk {
						if tc.mask.KeyValid[b*tc.tk+j] == 0 {
							for x := range tc.h * tc.dh {
								vv[(b*tc.tk+j)*tc.h*tc.dh+x] = float32(math.NaN())
							}
						}
					}
				}
			}
			v := s.in(vv, tc.nb, tc.tk, tc.h, tc.dh)
			scale := float32(1 / math.Sqrt(float64(tc.dh)))
			shape := []int{tc.nb, tc.tq, tc.h, tc.dh}
			got := s.b.Attention(q.t, k.t, v.t, scale, tc.mask)
			s.close(t, got, shape, refAttention(q.vals, k.vals, vv, tc.nb, tc.tq, tc.tk, tc.h, tc.dh, scale, tc.mask))
			// And the three ops it fuses, within the tolerance.
			three := s.b.AttnMix(s.b.Softmax(s.b.AttnScores(q.t, k.t, scale, tc.mask)), v.t)
			closeTo(t, s.host(t, got, shape), f64(s.host(t, three, shape)), Tolerance)
			s.unchanged(t, q, k, v)
		})
	}
}

func (s *suite) testHeadResult(t *testing.T) {
	tests := []struct {
		name           string
		nb, tt, h, dh  int
		d              int
		transW         bool
		checkSumMatMul bool
	}{
		{"odd", 2, 7, 3, 15, 61, false, true},
		{"odd transW", 2, 7, 3, 15, 61, true, true},
		{"one head", 1, 2, 1, 4, 3, false, false},
		{"one head transW", 1, 2, 1, 4, 3, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			z := s.randIn(r, tc.nb, tc.tt, tc.h, tc.dh)
			hd := tc.h * tc.dh
			wShape := []int{hd, tc.d}
			if tc.transW {
				wShape = []int{tc.d, hd}
			}
			w := s.randIn(r, wShape...)
			want := make([]float64, tc.nb*tc.tt*tc.h*tc.d)
			for row := range tc.nb * tc.tt {
				for hh := range tc.h {
					for n := range tc.d {
						var sum float64
						for k := range tc.dh {
							wi := (hh*tc.dh+k)*tc.d + n
							if tc.transW {
								wi = n*hd + hh*tc.dh + k
							}
							sum += float64(z.vals[(row*tc.h+hh)*tc.dh+k]) * float64(w.vals[wi])
						}
						want[(row*tc.h+hh)*tc.d+n] = sum
					}
				}
			}
			got := s.b.HeadResult(z.t, w.t, tc.transW)
			s.close(t, got, []int{tc.nb, tc.tt, tc.h, tc.d}, want)
			s.unchanged(t, z, w)
			if tc.checkSumMatMul {
				// The heads' results sum to the attention output z·w.
				sum := s.b.SumAxis(got, 2)
				mm := s.b.MatMul(z.t.Reshape(tc.nb, tc.tt, hd), w.t, nil, tc.transW)
				closeTo(t, s.host(t, sum, []int{tc.nb, tc.tt, tc.d}), f64(s.host(t, mm, []int{tc.nb, tc.tt, tc.d})), Tolerance)
			}
		})
	}
}

func (s *suite) testSumAxis(t *testing.T) {
	t.Run("by hand", func(t *testing.T) {
		x := s.in([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
		s.exact(t, s.b.SumAxis(x.t, 0), []int{3}, []float32{5, 7, 9})
		s.exact(t, s.b.SumAxis(x.t, 1), []int{2}, []float32{6, 15})
		s.unchanged(t, x)
	})
	shape := []int{2, 3, 4, 5}
	for axis := range shape {
		t.Run(fmt.Sprintf("axis %d", axis), func(t *testing.T) {
			r := rng(t)
			x := s.randIn(r, shape...)
			outer := engine.NumElements(shape[:axis])
			inner := engine.NumElements(shape[axis+1:])
			n := shape[axis]
			want := make([]float64, outer*inner)
			for o := range outer {
				for i := range n {
					for j := range inner {
						want[o*inner+j] += float64(x.vals[(o*n+i)*inner+j])
					}
				}
			}
			outShape := slices.Delete(slices.Clone(shape), axis, axis+1)
			s.close(t, s.b.SumAxis(x.t, axis), outShape, want)
			s.unchanged(t, x)
		})
	}
}

func (s *suite) testPanics(t *testing.T) {
	r := rng(t)
	x := s.randIn(r, 2, 5)
	tests := []struct {
		name string
		op   func()
	}{
		{"MatMul inner", func() { s.b.MatMul(x.t, s.randIn(r, 4, 3).t, nil, false) }},
		{"MatMul inner transW", func() { s.b.MatMul(x.t, s.randIn(r, 5, 3).t, nil, true) }},
		{"MatMul bias", func() { s.b.MatMul(x.t, s.randIn(r, 5, 3).t, s.randIn(r, 4).t, false) }},
		{"MatMul w rank", func() { s.b.MatMul(x.t, s.randIn(r, 5).t, nil, false) }},
		{"LayerNorm gamma", func() { s.b.LayerNorm(x.t, s.randIn(r, 4).t, s.randIn(r, 5).t, 1e-5) }},
		{"LayerNorm beta", func() { s.b.LayerNorm(x.t, s.randIn(r, 5).t, s.randIn(r, 4).t, 1e-5) }},
		{"LayerNorm scalar", func() { s.b.LayerNorm(s.randIn(r).t, s.randIn(r, 1).t, s.randIn(r, 1).t, 1e-5) }},
		{"LayerNormScale scalar", func() { s.b.LayerNormScale(s.randIn(r).t, 1e-5) }},
		{"AddLayerNorm delta", func() { s.b.AddLayerNorm(x.t, s.randIn(r, 5).t, s.randIn(r, 5).t, s.randIn(r, 5).t, 1e-5) }},
		{"AddLayerNorm gamma", func() { s.b.AddLayerNorm(x.t, s.randIn(r, 2, 5).t, s.randIn(r, 4).t, s.randIn(r, 5).t, 1e-5) }},
		{"AddLayerNorm beta", func() { s.b.AddLayerNorm(x.t, s.randIn(r, 2, 5).t, s.randIn(r, 5).t, s.randIn(r, 4).t, 1e-5) }},
		{"GELU activation", func() { s.b.GELU(x.t, engine.Activation(99)) }},
		{"MatMulGELU inner", func() { s.b.MatMulGELU(x.t, s.randIn(r, 4, 3).t, nil, false, engine.GELUTanh) }},
		{"MatMulGELU activation", func() { s.b.MatMulGELU(x.t, s.randIn(r, 5, 3).t, nil, false, engine.Activation(99)) }},
		{"Add not a suffix", func() { s.b.Add(x.t, s.randIn(r, 2).t) }},
		{"Concat trailing", func() { s.b.Concat(s.randIn(r, 1, 2, 3).t, s.randIn(r, 1, 2, 4).t) }},
		{"Concat batch", func() { s.b.Concat(s.randIn(r, 1, 2, 3).t, s.randIn(r, 2, 2, 3).t) }},
		{"Concat rank", func() { s.b.Concat(s.randIn(r, 1, 2, 3).t, s.randIn(r, 1, 2).t) }},
		{"AttnScores heads", func() {
			s.b.AttnScores(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 2, 2, 4).t, 1, engine.AttnMask{})
		}},
		{"AttnScores KeyValid", func() {
			s.b.AttnScores(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 5, 3, 4).t, 1, engine.AttnMask{KeyValid: make([]int32, 4)})
		}},
		{"AttnMix keys", func() { s.b.AttnMix(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 5, 2, 4).t) }},
		{"AttnMix heads", func() { s.b.AttnMix(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 4, 3, 4).t) }},
		{"Attention v keys", func() {
			s.b.Attention(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 5, 3, 4).t, s.randIn(r, 1, 4, 3, 4).t, 1, engine.AttnMask{})
		}},
		{"Attention heads", func() {
			s.b.Attention(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 1, 5, 2, 4).t, s.randIn(r, 1, 5, 2, 4).t, 1, engine.AttnMask{})
		}},
		{"Attention KeyValid", func() {
			k := s.randIn(r, 1, 5, 3, 4).t
			s.b.Attention(s.randIn(r, 1, 2, 3, 4).t, k, k, 1, engine.AttnMask{KeyValid: make([]int32, 4)})
		}},
		{"HeadResult rows", func() { s.b.HeadResult(s.randIn(r, 1, 2, 3, 4).t, s.randIn(r, 11, 5).t, false) }},
		{"HeadResult z rank", func() { s.b.HeadResult(s.randIn(r, 2, 12).t, s.randIn(r, 12, 5).t, false) }},
		{"Embedding table", func() { s.b.Embedding(s.randIn(r, 2, 5, 1).t, []int32{0}) }},
		{"Embedding id", func() { s.b.Embedding(x.t, []int32{2}) }},
		{"Embedding negative id", func() { s.b.Embedding(x.t, []int32{0, -1}) }},
		{"Rows index", func() { s.b.Rows(x.t, []int{2}) }},
		{"Rows negative index", func() { s.b.Rows(x.t, []int{0, -1}) }},
		{"SliceLast range", func() { s.b.SliceLast(x.t, 3, 6) }},
		{"SliceLast reversed", func() { s.b.SliceLast(x.t, 3, 2) }},
		{"SumAxis axis", func() { s.b.SumAxis(x.t, 2) }},
		{"SumAxis negative axis", func() { s.b.SumAxis(x.t, -3) }},
		{"Edit outside", func() {
			e := engine.Edit{Mode: engine.EditZero, Dims: [engine.MaxEditDims]int{3, 1, 1, 1, 5}, Strides: [engine.MaxEditDims]int{5, 0, 0, 0, 1}}
			s.b.Edit(s.randIn(r, 2, 5).t, e)
		}},
		{"View too long", func() { s.b.View(x.t, 3, 5) }},
		{"Gather table rank", func() { s.b.Gather(s.randIn(r, 5).t, s.randIn(r, 1).t) }},
		{"Gather idx rank", func() { s.b.Gather(x.t, s.randIn(r, 1, 1).t) }},
		{"SetRowsAt batch", func() { s.b.SetRowsAt(s.randIn(r, 2, 4, 3).t, s.randIn(r, 1, 1, 3).t, s.randIn(r, 1).t) }},
		{"SetRowsAt row size", func() { s.b.SetRowsAt(s.randIn(r, 1, 4, 3).t, s.randIn(r, 1, 1, 2).t, s.randIn(r, 1).t) }},
		{"SetRowsAt at", func() { s.b.SetRowsAt(s.randIn(r, 1, 4, 3).t, s.randIn(r, 1, 1, 3).t, s.randIn(r, 2).t) }},
		{"Attention QueryOffsetAt", func() {
			qkv := s.randIn(r, 1, 2, 1, 4).t
			s.b.Attention(qkv, qkv, qkv, 1, engine.AttnMask{Causal: true, QueryOffsetAt: s.randIn(r, 2).t})
		}},
		{"View negative", func() { s.b.View(x.t, -1) }},
		{"Edit source outside", func() {
			e := engine.Edit{Mode: engine.EditSet, Dims: [engine.MaxEditDims]int{1, 1, 1, 2, 5}, Strides: [engine.MaxEditDims]int{0, 0, 0, 5, 1},
				Source: s.randIn(r, 5).t, SourceStrides: [engine.MaxEditDims]int{0, 0, 0, 5, 1}}
			s.b.Edit(s.randIn(r, 2, 5).t, e)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			panicsInOp(t, tc.name, tc.op)
		})
	}
}

// testView checks that a view shows its tensor's first values in its own
// shape, that edits through either show in the other, and that the view
// keeps the memory alive after the tensor is dropped.
func (s *suite) testView(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	x := s.randIn(r, 4, 6)
	v := s.b.View(x.t, 2, 3, 2)
	assert.Equal(t, x.vals[:12], s.host(t, v, []int{2, 3, 2}), "the first 12 values")
	assert.Empty(t, s.host(t, s.b.View(x.t, 0, 6), []int{0, 6}))

	set := func(dst *engine.Tensor, off int, vals []float32) {
		src := s.b.FromHost(vals, len(vals))
		s.b.Edit(dst, engine.Edit{Mode: engine.EditSet, Dims: [engine.MaxEditDims]int{1, 1, 1, 1, len(vals)},
			Strides: [engine.MaxEditDims]int{0, 0, 0, 0, 1}, Offset: off, Source: src, SourceStrides: [engine.MaxEditDims]int{0, 0, 0, 0, 1}})
	}
	set(v, 5, []float32{7, 8})     // through the view
	set(x.t, 2, []float32{-1, -2}) // through the tensor, inside the view
	set(x.t, 20, []float32{9})     // outside the view
	want := append([]float32(nil), x.vals...)
	want[5], want[6], want[2], want[3], want[20] = 7, 8, -1, -2, 9
	assert.Equal(t, want, s.host(t, x.t, []int{4, 6}))
	assert.Equal(t, want[:12], s.host(t, v, []int{2, 3, 2}))

	// The view alone keeps the values: the tensor and its other views
	// are dropped, and collections let a device backend reuse freed memory.
	v = s.b.View(s.b.View(x.t, 24), 3, 4)
	x = input{}
	for range 3 {
		runtime.GC()
		s.b.Zeros(4, 6)
	}
	assert.Equal(t, want[:12], s.host(t, v, []int{3, 4}))
}

// panicsInOp checks that op panics with a message of the form
// "backend: Op: ..." (or "backend: Edit of ..."), as an op's check of its
// operands gives, and not with a runtime error (an index out of range),
// where Op begins name, the case's name: the op that the case calls, or
// the op whose check it runs (MatMulGELU runs MatMul's).
func panicsInOp(t *testing.T, name string, op func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		require.NotNil(t, r, "no panic")
		msg, ok := r.(string)
		require.True(t, ok, "panic %v (%T) is not an op's message", r, r)
		_, rest, _ := strings.Cut(msg, ": ")
		named, _, _ := strings.Cut(rest, ":")
		named, _, _ = strings.Cut(named, " ")
		require.True(t, named != "" && strings.HasPrefix(name, named), "panic %q does not name the op of %q", msg, name)
	}()
	op()
}

// testEdit checks each mode of Edit on a strided box against a loop
// written here, with and without a source, on the whole tensor and on a
// box that leaves elements out.
func (s *suite) testEdit(t *testing.T) {
	ones := func(d ...int) [engine.MaxEditDims]int {
		var out [engine.MaxEditDims]int
		for i := range out {
			out[i] = 1
		}
		copy(out[engine.MaxEditDims-len(d):], d)
		return out
	}
	strides := func(d ...int) [engine.MaxEditDims]int {
		var out [engine.MaxEditDims]int
		copy(out[engine.MaxEditDims-len(d):], d)
		return out
	}
	// The tensor is [2, 3, 4, 5]; the box takes rows 0..1, positions 1..2,
	// heads 0..3 by 2 and elements 1..4, through strides of the tensor.
	box := engine.Edit{Dims: ones(2, 2, 2, 3), Strides: strides(60, 20, 10, 1), Offset: 20 + 1}
	tests := []struct {
		name   string
		mode   engine.EditMode
		value  float32
		source bool
	}{
		{"zero", engine.EditZero, 0, false},
		{"set value", engine.EditSet, 2.5, false},
		{"set source", engine.EditSet, 0, true},
		{"add value", engine.EditAdd, -1.25, false},
		{"add source", engine.EditAdd, 0, true},
		{"scale", engine.EditScale, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(t)
			x := s.randIn(r, 2, 3, 4, 5)
			e := box
			e.Mode, e.Value = tc.mode, tc.value
			var src []float32
			if tc.source { // a [4, 3] source read with strides (0, 0, 3, 1) from offset 3
				srcIn := s.randIn(r, 4, 3)
				src = srcIn.vals
				e.Source, e.SourceStrides, e.SourceOffset = srcIn.t, strides(0, 0, 3, 1), 3
			}
			want := slices.Clone(x.vals)
			d := e.Dims
			for i0 := range d[0] {
				for i1 := range d[1] {
					for i2 := range d[2] {
						for i3 := range d[3] {
							for i4 := range d[4] {
								at := e.Offset + i0*e.Strides[0] + i1*e.Strides[1] + i2*e.Strides[2] + i3*e.Strides[3] + i4*e.Strides[4]
								v := e.Value
								if src != nil {
									v = src[e.SourceOffset+i0*e.SourceStrides[0]+i1*e.SourceStrides[1]+i2*e.SourceStrides[2]+i3*e.SourceStrides[3]+i4*e.SourceStrides[4]]
								}
								switch e.Mode {
								case engine.EditZero:
									want[at] = 0
								case engine.EditSet:
									want[at] = v
								case engine.EditAdd:
									want[at] += v
								case engine.EditScale:
									want[at] *= e.Value
								}
							}
						}
					}
				}
			}
			s.b.Edit(x.t, e)
			s.exact(t, x.t, []int{2, 3, 4, 5}, want)
		})
	}
}
