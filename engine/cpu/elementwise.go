package cpu

import (
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
)

// LayerNorm normalises over the last dimension:
// (x-mean)/sqrt(var+eps)·gamma + beta, with the biased variance.
// The mean and variance are computed in float64 in two passes.
func (b *Backend) LayerNorm(x, gamma, beta *engine.Tensor, eps float32) *engine.Tensor {
	xd, gd, bd := host("LayerNorm", x), host("LayerNorm", gamma), host("LayerNorm", beta)
	must(engine.CheckLayerNorm(x, gamma, beta))
	rows, d := engine.SplitLast(x.Shape())
	out := output(x.Shape()...)
	od := out.Host()
	b.parallel(rows, 4*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			layerNormRow(od[r*d:r*d+d], xd[r*d:r*d+d], gd, bd, eps)
		}
	})
	return out
}

// layerNormRow writes the LayerNorm of row to o (len(row) values each):
// n = float32((x-mean)·rstd) in float64, then float32(n·γ) + β.
func layerNormRow(o, row, gamma, beta []float32, eps float32) {
	normalizeRow(o, row, gamma, beta, eps, rowMean(row))
}

// normalizeRow is layerNormRow given the row's mean, as rowMean returns it.
func normalizeRow(o, row, gamma, beta []float32, eps float32, mean float64) {
	rstd := 1 / math.Sqrt(rowVariance(row, mean)+float64(eps))
	o = o[:len(row)]
	g, bt := gamma[:len(row)], beta[:len(row)]
	for i, xv := range row {
		n := float32((float64(xv) - mean) * rstd)
		o[i] = float32(n*g[i]) + bt[i]
	}
}

// LayerNormScale returns sqrt(var+eps) of each row of x (last dimension),
// shaped as x with the last dimension 1.
func (b *Backend) LayerNormScale(x *engine.Tensor, eps float32) *engine.Tensor {
	xd := host("LayerNormScale", x)
	must(engine.CheckLayerNormScale(x))
	rows, d := engine.SplitLast(x.Shape())
	out := output(engine.WithLast(x.Shape(), 1)...)
	od := out.Host()
	b.parallel(rows, 2*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			_, v := moments(xd[r*d : r*d+d])
			od[r] = float32(math.Sqrt(v + float64(eps)))
		}
	})
	return out
}

// moments returns the mean and biased variance of x in float64, in two
// passes (rowMean, then rowVariance).
func moments(x []float32) (mean, variance float64) {
	if len(x) == 0 {
		return 0, 0
	}
	mean = rowMean(x)
	return mean, rowVariance(x, mean)
}

// rowMean returns the mean of x in float64 (0 for no values): four
// partial sums, sum j taking indices ≡ j (mod 4) below len(x)&^3, combined
// as (s0+s1)+(s2+s3), then the tail added in order. AddLayerNorm takes the
// same sums as it adds the row.
func rowMean(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		s0 += float64(v[0])
		s1 += float64(v[1])
		s2 += float64(v[2])
		s3 += float64(v[3])
	}
	s := (s0 + s1) + (s2 + s3)
	for _, v := range x[i:] {
		s += float64(v)
	}
	return s / float64(len(x))
}

// rowVariance returns the biased variance of x about mean in float64 (0
// for no values), with rowMean's four partial sums of the squared
// deviations.
func rowVariance(x []float32, mean float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(v[0])-mean, float64(v[1])-mean, float64(v[2])-mean, float64(v[3])-mean
		s0 += float64(d0 * d0)
		s1 += float64(d1 * d1)
		s2 += float64(d2 * d2)
		s3 += float64(d3 * d3)
	}
	q := (s0 + s1) + (s2 + s3)
	for _, v := range x[i:] {
		d := float64(v) - mean
		q += float64(d * d)
	}
	return q / float64(len(x))
}

// geluTanhC is √(2/π).
const geluTanhC = 0.7978845608028654

// GELU applies the activation elementwise: in float64 with package math,
// or, with KernelsAVX2, in float32 SIMD (geluTanh and geluErf in
// simdKernels) within a few float32 ulps of it.
func (b *Backend) GELU(x *engine.Tensor, kind engine.Activation) *engine.Tensor {
	must(engine.CheckGELU(kind))
	f, cost := b.gelu(kind)
	out := output(x.Shape()...)
	b.mapRanges(out.Host(), host("GELU", x), cost, f)
	return out
}

// gelu returns the function that writes GELU(src) to dst (dst may be
// src), and its approximate cost per element in multiply-adds, for a kind
// that engine.CheckGELU accepted: GELUErf, else GELUTanh. Each value gets
// the same arithmetic however the values are split into ranges.
func (b *Backend) gelu(kind engine.Activation) (f func(dst, src []float32), cost int) {
	if kind == engine.GELUErf {
		if b.simd != nil && b.simd.geluErf != nil {
			return simdRange(b.simd.geluErf), 6
		}
		return float64Range(func(v float64) float64 {
			return 0.5 * v * math.Erfc(-v/math.Sqrt2) // 1+erf(v/√2), without its cancellation for v < 0
		}), 16
	}
	if b.simd != nil && b.simd.geluTanh != nil {
		return simdRange(b.simd.geluTanh), 4
	}
	return float64Range(func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(geluTanhC*(v+0.044715*v*v*v)))
	}), 16
}

// Tanh applies tanh elementwise.
func (b *Backend) Tanh(x *engine.Tensor) *engine.Tensor {
	out := output(x.Shape()...)
	b.mapRanges(out.Host(), host("Tanh", x), 16, float64Range(math.Tanh))
	return out
}

// mapRanges applies f to src, writing dst (len(src) values; dst may be
// src), over ranges of the values in parallel; cost is f's approximate cost
// per element in multiply-adds.
func (b *Backend) mapRanges(dst, src []float32, cost int, f func(dst, src []float32)) {
	dst = dst[:len(src)]
	b.parallel(len(src), cost, func(lo, hi int) { f(dst[lo:hi], src[lo:hi]) })
}

// float64Range returns the range function that applies f elementwise in
// float64.
func float64Range(f func(float64) float64) func(dst, src []float32) {
	return func(dst, src []float32) {
		dst = dst[:len(src)]
		for i, v := range src {
			dst[i] = float32(f(float64(v)))
		}
	}
}

// simdRange returns the range function of f, a kernel over multiples of 8
// values. A range's last values (fewer than 8) go through f in a padded
// buffer, so every value gets the same arithmetic wherever the ranges
// split.
func simdRange(f func(dst, src *float32, n int)) func(dst, src []float32) {
	return func(dst, src []float32) {
		n8 := len(src) &^ 7
		if n8 > 0 {
			f(&dst[0], &src[0], n8)
		}
		if n8 < len(src) {
			var buf [8]float32
			copy(buf[:], src[n8:])
			f(&buf[0], &buf[0], len(buf))
			copy(dst[n8:len(src)], buf[:])
		}
	}
}

// Add returns a+b, where b has a's shape or a suffix of it and is broadcast
// over a's leading dimensions.
func (b *Backend) Add(x, y *engine.Tensor) *engine.Tensor {
	xd, yd := host("Add", x), host("Add", y)
	must(engine.CheckAdd(x, y))
	out := output(x.Shape()...)
	od := out.Host()
	n := len(yd)
	if n == 0 {
		return out
	}
	b.parallel(len(xd)/n, n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			a, o := xd[r*n:r*n+n], od[r*n:r*n+n]
			o, c := o[:len(a)], yd[:len(a)]
			for i, v := range a {
				o[i] = v + c[i]
			}
		}
	})
	return out
}

// Softmax normalises the last dimension: exp(x-max)/Σexp(x-max), with the
// exponentials and their sum in float64. A row that is all -Inf becomes all
// zeros.
func (b *Backend) Softmax(x *engine.Tensor) *engine.Tensor {
	xd := host("Softmax", x)
	rows, d := engine.SplitLast(x.Shape())
	out := output(x.Shape()...)
	od := out.Host()
	b.parallel(rows, 16*d, func(lo, hi int) {
		e := make([]float64, d)
		for r := lo; r < hi; r++ {
			softmaxRow(od[r*d:r*d+d], xd[r*d:r*d+d], e, b.simd)
		}
	})
	return out
}

// softmaxRow writes the softmax of x to o, using e (len(x)) as scratch.
// With s's expDiff the exponentials are computed four at a time, with the
// bits of math.Exp. Trailing -Inf values (keys past a causal limit) are
// left out of the exponentials and the sum, and get weight 0: exp(-Inf) is
// exactly 0 and adding 0 changes no sum, so the bits are those of the
// whole row, unless the row holds a NaN, which then takes the whole row.
func softmaxRow(o, x []float32, e []float64, s *simdKernels) {
	o, e = o[:len(x)], e[:len(x)]
	n := len(x)
	for n > 0 && math.IsInf(float64(x[n-1]), -1) {
		n--
	}
	mx := float32(math.Inf(-1))
	for _, v := range x[:n] {
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		clear(o)
		return
	}
	if mx == mx { // no NaN: leave the trailing -Inf out
		clear(o[n:])
		x, o, e = x[:n], o[:n], e[:n]
	}
	var sum float64
	n4 := 0
	if s != nil && s.expDiff != nil {
		n4 = len(x) &^ 3
		if n4 > 0 {
			s.expDiff(&e[0], &x[0], mx, n4)
		}
	}
	for i, v := range x {
		d := v - mx
		// expDiff leaves arguments outside [-708, 709] (but -Inf) to
		// math.Exp.
		if i >= n4 || !(d >= -708 && d <= 709 || math.IsInf(float64(d), -1)) {
			e[i] = math.Exp(float64(d))
		}
		sum += e[i]
	}
	i := 0
	if s != nil && s.divToF32 != nil && len(o) >= 4 {
		i = len(o) &^ 3
		s.divToF32(&o[0], &e[0], sum, i)
	}
	for ; i < len(o); i++ {
		o[i] = float32(e[i] / sum)
	}
}

// SumAxis sums over dimension axis (negative counts from the end) and
// removes it. Sums are taken in float64 in index order.
func (b *Backend) SumAxis(x *engine.Tensor, axis int) *engine.Tensor {
	xd := host("SumAxis", x)
	axis, err := engine.CheckSumAxis(x, axis)
	must(err)
	shape := x.Shape()
	outer := engine.NumElements(shape[:axis])
	n := shape[axis]
	inner := engine.NumElements(shape[axis+1:])
	out := output(slices.Delete(slices.Clone(shape), axis, axis+1)...)
	od := out.Host()
	if inner == 0 {
		return out
	}
	// Work units are column blocks of each outer index, so a sum over the
	// leading axis is split too; each output element is summed by one unit.
	const cols = 1024
	blocks := (inner + cols - 1) / cols
	b.parallel(outer*blocks, n*min(inner, cols), func(lo, hi int) {
		acc := make([]float64, min(inner, cols))
		for u := lo; u < hi; u++ {
			o, c0 := u/blocks, u%blocks*cols
			c1 := min(c0+cols, inner)
			acc := acc[:c1-c0]
			clear(acc)
			for i := range n {
				base := (o*n + i) * inner
				row := xd[base+c0 : base+c1]
				row = row[:len(acc)]
				for j, v := range row {
					acc[j] += float64(v)
				}
			}
			dst := od[o*inner+c0 : o*inner+c1]
			for j, v := range acc {
				dst[j] = float32(v)
			}
		}
	})
	return out
}
