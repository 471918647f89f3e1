package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
)

// LayerNorm normalises over the last dimension:
// (x-mean)/sqrt(var+eps)·gamma + beta, with the biased variance.
// The mean and variance are computed in float64 in two passes.
func (b *Backend) LayerNorm(x, gamma, beta *engine.Tensor, eps float32) *engine.Tensor {
	xd, gd, bd := host("LayerNorm", x), host("LayerNorm", gamma), host("LayerNorm", beta)
	rows, d := engine.SplitLast(x.Shape())
	if gamma.Len() != d || beta.Len() != d {
		panic(fmt.Sprintf("cpu: LayerNorm: x %v, gamma %v, beta %v", x, gamma, beta))
	}
	out := output(x.Shape()...)
	od := out.Host()
	b.parallel(rows, 4*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := xd[r*d : r*d+d]
			mean, v := moments(row)
			rstd := 1 / math.Sqrt(v+float64(eps))
			o := od[r*d : r*d+d]
			o = o[:len(row)]
			g, bt := gd[:len(row)], bd[:len(row)]
			for i, xv := range row {
				n := float32((float64(xv) - mean) * rstd)
				o[i] = float32(n*g[i]) + bt[i]
			}
		}
	})
	return out
}

// LayerNormScale returns sqrt(var+eps) of each row of x (last dimension),
// shaped as x with the last dimension 1.
func (b *Backend) LayerNormScale(x *engine.Tensor, eps float32) *engine.Tensor {
	xd := host("LayerNormScale", x)
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
// passes. Each pass keeps four partial sums, sum j taking indices ≡ j (mod 4)
// below len(x)&^3, combined as (s0+s1)+(s2+s3), and then adds the tail in
// order.
func moments(x []float32) (mean, variance float64) {
	if len(x) == 0 {
		return 0, 0
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
	mean = s / float64(len(x))
	s0, s1, s2, s3 = 0, 0, 0, 0
	i = 0
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
	return mean, q / float64(len(x))
}

// geluTanhC is √(2/π).
const geluTanhC = 0.7978845608028654

// GELU applies the activation elementwise: in float64 with package math,
// or, for GELUTanh with KernelsAVX2, in float32 SIMD (see geluTanh in
// simdKernels) within a few float32 ulps of it.
func (b *Backend) GELU(x *engine.Tensor, kind engine.Activation) *engine.Tensor {
	if kind == engine.GELUTanh && b.simd != nil && b.simd.geluTanh != nil {
		return b.unarySIMD("GELU", x, b.simd.geluTanh)
	}
	switch kind {
	case engine.GELUTanh:
		return b.unary("GELU", x, 16, func(v float64) float64 {
			return 0.5 * v * (1 + math.Tanh(geluTanhC*(v+0.044715*v*v*v)))
		})
	case engine.GELUErf:
		return b.unary("GELU", x, 16, func(v float64) float64 {
			return 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
		})
	}
	panic(fmt.Sprintf("cpu: GELU: unknown activation %d", kind))
}

// Tanh applies tanh elementwise.
func (b *Backend) Tanh(x *engine.Tensor) *engine.Tensor {
	return b.unary("Tanh", x, 16, math.Tanh)
}

// unary applies f elementwise in float64; cost is its approximate cost per
// element in multiply-adds.
func (b *Backend) unary(op string, x *engine.Tensor, cost int, f func(float64) float64) *engine.Tensor {
	xd := host(op, x)
	out := output(x.Shape()...)
	od := out.Host()
	b.parallel(len(xd), cost, func(lo, hi int) {
		for i, v := range xd[lo:hi] {
			od[lo+i] = float32(f(float64(v)))
		}
	})
	return out
}

// unarySIMD applies f, a kernel over multiples of 8 values, elementwise.
// A range's last values (fewer than 8) go through f in a padded buffer, so
// every value gets the same arithmetic wherever the ranges split.
func (b *Backend) unarySIMD(op string, x *engine.Tensor, f func(dst, src *float32, n int)) *engine.Tensor {
	xd := host(op, x)
	out := output(x.Shape()...)
	od := out.Host()
	b.parallel(len(xd), 4, func(lo, hi int) {
		n8 := (hi - lo) &^ 7
		if n8 > 0 {
			f(&od[lo], &xd[lo], n8)
		}
		if lo+n8 < hi {
			var buf [8]float32
			copy(buf[:], xd[lo+n8:hi])
			f(&buf[0], &buf[0], len(buf))
			copy(od[lo+n8:hi], buf[:])
		}
	})
	return out
}

// Add returns a+b, where b has a's shape or a suffix of it and is broadcast
// over a's leading dimensions.
func (b *Backend) Add(x, y *engine.Tensor) *engine.Tensor {
	xd, yd := host("Add", x), host("Add", y)
	xs, ys := x.Shape(), y.Shape()
	if len(ys) > len(xs) || !slices.Equal(xs[len(xs)-len(ys):], ys) {
		panic(fmt.Sprintf("cpu: Add: %v is not a suffix of %v", engine.ShapeString(ys), engine.ShapeString(xs)))
	}
	out := output(xs...)
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
// bits of math.Exp.
func softmaxRow(o, x []float32, e []float64, s *simdKernels) {
	o, e = o[:len(x)], e[:len(x)]
	mx := float32(math.Inf(-1))
	for _, v := range x {
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		clear(o)
		return
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
	shape := x.Shape()
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis >= len(shape) {
		panic(fmt.Sprintf("cpu: SumAxis: axis %d of %v", axis, x))
	}
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
