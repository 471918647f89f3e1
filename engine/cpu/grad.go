package cpu

import (
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
)

// The backward ops (engine.GradBackend) follow the determinism rules of the
// forward ops (see the package comment): work is split across goroutines
// only over output rows, each output element is reduced by one goroutine in
// an order that depends only on the reduction length, and every output row
// depends only on the inputs of its own batch element. Products are rounded
// (float32 or float64 conversions) before they are added, so no multiply-add
// is fused. Their reduction orders are:
//
//   - LayerNormBackward: the row's mean and variance exactly as LayerNorm
//     takes them (moments), then Σ dy·gamma and Σ dy·gamma·x̂ in float64 in
//     index order; dx is formed in float64 and rounded once.
//   - GELUBackward, TanhBackward: elementwise in float64, rounded once.
//   - SoftmaxBackward: Σ y·dy in float64 in index order over the entries
//     where y is not zero; dx is exactly +0 where y is 0, whatever dy holds
//     there (so a non-finite dy at a masked entry does not spread).
//   - AttnScoresBackward: dq[b,i,h,:] sums dscores[b,h,i,j]·k[b,j,h,:] over
//     keys j in order, and dk[b,j,h,:] sums dscores[b,h,i,j]·q[b,i,h,:] over
//     queries i in order, in float32 as AttnMix does (products rounded
//     before they are added, entries of dscores that are exactly zero
//     skipped); the sum is then multiplied by scale.
//   - AttnMixBackward: dpattern[b,h,i,j] is dot(dz[b,i,h,:], v[b,j,h,:])
//     with dot as for AttnScores, for every (i, j), masked or not; dv[b,j,h,:]
//     sums pattern[b,h,i,j]·dz[b,i,h,:] over queries i in order in float32,
//     skipping weights that are exactly zero.
//   - ScatterRows: an output row with one source row is a copy of it; one
//     with several sums them in float64 in the order of idx and is rounded
//     once.

var _ engine.GradBackend = (*Backend)(nil)

// LayerNormBackward returns dx for y = LayerNorm(x, gamma, beta, eps) over
// the last dimension, given dy: with x̂ = (x-mean)·rstd and g = dy·gamma,
// dx = rstd·(g - mean(g) - x̂·mean(g·x̂)), in float64.
func (b *Backend) LayerNormBackward(x, gamma, dy *engine.Tensor, eps float32) *engine.Tensor {
	xd, gd, dyd := host("LayerNormBackward", x), host("LayerNormBackward", gamma), host("LayerNormBackward", dy)
	must(engine.CheckLayerNormBackward(x, gamma, dy))
	rows, d := engine.SplitLast(x.Shape())
	out := output(x.Shape()...)
	od := out.Host()
	if d == 0 {
		return out
	}
	b.parallel(rows, 8*d, func(lo, hi int) {
		xh := make([]float64, d)
		gg := make([]float64, d)
		for r := lo; r < hi; r++ {
			row := xd[r*d : r*d+d]
			dyr := dyd[r*d : r*d+d]
			o := od[r*d : r*d+d]
			mean, v := moments(row)
			rstd := 1 / math.Sqrt(v+float64(eps))
			var s1, s2 float64
			for i, xv := range row {
				n := (float64(xv) - mean) * rstd
				g := float64(float64(dyr[i]) * float64(gd[i]))
				xh[i], gg[i] = n, g
				s1 += g
				s2 += float64(g * n)
			}
			m1, m2 := s1/float64(d), s2/float64(d)
			for i := range o {
				o[i] = float32(rstd * (gg[i] - m1 - float64(xh[i]*m2)))
			}
		}
	})
	return out
}

// GELUBackward returns dx = dy·GELU'(x), computed in float64.
func (b *Backend) GELUBackward(x, dy *engine.Tensor, kind engine.Activation) *engine.Tensor {
	xd, dyd := host("GELUBackward", x), host("GELUBackward", dy)
	must(engine.CheckGELUBackward(x, dy, kind))
	if kind == engine.GELUErf {
		const invSqrt2Pi = 0.3989422804014327 // 1/√(2π)
		return b.gradBinary(xd, dyd, x.Shape(), 24, func(v, g float64) float64 {
			return g * (float64(0.5*(1+math.Erf(v/math.Sqrt2))) + float64(v*invSqrt2Pi*math.Exp(-0.5*v*v)))
		})
	}
	const a = 0.044715 // GELUTanh
	return b.gradBinary(xd, dyd, x.Shape(), 24, func(v, g float64) float64 {
		v2 := float64(v * v)
		t := math.Tanh(geluTanhC * (v + float64(a*float64(v2*v))))
		sech2 := 1 - float64(t*t)
		du := geluTanhC * (1 + float64(3*a*v2))
		return g * (float64(0.5*(1+t)) + float64(0.5*v*sech2*du))
	})
}

// TanhBackward returns dx = dy·(1-y²) for y = tanh(x), in float64.
func (b *Backend) TanhBackward(y, dy *engine.Tensor) *engine.Tensor {
	yd, dyd := host("TanhBackward", y), host("TanhBackward", dy)
	must(engine.CheckTanhBackward(y, dy))
	return b.gradBinary(yd, dyd, y.Shape(), 4, func(v, g float64) float64 {
		return g * (1 - float64(v*v))
	})
}

// gradBinary returns f(a, dy) elementwise, computed in float64, as a tensor
// of shape, for the values ad and dyd of two tensors of that shape; cost is
// f's approximate cost per element.
func (b *Backend) gradBinary(ad, dyd []float32, shape []int, cost int, f func(v, g float64) float64) *engine.Tensor {
	out := output(shape...)
	od := out.Host()
	b.parallel(len(ad), cost, func(lo, hi int) {
		g := dyd[lo:hi]
		for i, v := range ad[lo:hi] {
			od[lo+i] = float32(f(float64(v), float64(g[i])))
		}
	})
	return out
}

// SoftmaxBackward returns dx = y·(dy - Σ y·dy) over the last dimension, for
// y = Softmax(x), given y and dy. Where y is 0, dx is +0 and dy is not read.
func (b *Backend) SoftmaxBackward(y, dy *engine.Tensor) *engine.Tensor {
	yd, dyd := host("SoftmaxBackward", y), host("SoftmaxBackward", dy)
	must(engine.CheckSoftmaxBackward(y, dy))
	rows, d := engine.SplitLast(y.Shape())
	out := output(y.Shape()...)
	od := out.Host()
	if d == 0 {
		return out
	}
	b.parallel(rows, 4*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			yr, g, o := yd[r*d:r*d+d], dyd[r*d:r*d+d], od[r*d:r*d+d]
			var s float64
			for i, v := range yr {
				if v != 0 {
					s += float64(float64(v) * float64(g[i]))
				}
			}
			for i, v := range yr {
				if v != 0 {
					o[i] = float32(float64(v) * (float64(g[i]) - s))
				}
			}
		}
	})
	return out
}

// AttnScoresBackward returns dq [B, Tq, H, Dh] and dk [B, Tk, H, Dh] for
// scores = q·kᵀ·scale, given dscores [B, H, Tq, Tk]. Entries of dscores
// that are exactly zero (masked) are skipped, so keys and queries they pair
// never contribute, even if their values are not finite.
func (b *Backend) AttnScoresBackward(dscores, q, k *engine.Tensor, scale float32) (dq, dk *engine.Tensor) {
	sd, qd, kd := host("AttnScoresBackward", dscores), host("AttnScoresBackward", q), host("AttnScoresBackward", k)
	dims, err := engine.CheckAttnScoresBackward(dscores, q, k)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
	dq, dk = output(q.Shape()...), output(k.Shape()...)
	dqd, dkd := dq.Host(), dk.Host()
	nq, nk := nb*h*tq, nb*h*tk
	// Units [0, nq) are rows (b, h, i) of dq; units [nq, nq+nk) are rows
	// (b, h, j) of dk.
	b.parallel(nq+nk, max(tq, tk)*dh, func(lo, hi int) {
		idx := make([]int, 0, max(tq, tk))
		w := make([]float32, 0, max(tq, tk))
		for u := lo; u < hi; u++ {
			idx, w = idx[:0], w[:0]
			var o, src []float32
			if u < nq {
				bi, hh, i := u/(h*tq), u/tq%h, u%tq
				oo := ((bi*tq+i)*h + hh) * dh
				o = dqd[oo : oo+dh]
				row := sd[u*tk : (u+1)*tk]
				for j, s := range row {
					if s != 0 {
						idx, w = append(idx, (bi*tk+j)*h+hh), append(w, s)
					}
				}
				src = kd
			} else {
				r := u - nq
				bi, hh, j := r/(h*tk), r/tk%h, r%tk
				oo := ((bi*tk+j)*h + hh) * dh
				o = dkd[oo : oo+dh]
				base := (bi*h + hh) * tq * tk
				for i := range tq {
					if s := sd[base+i*tk+j]; s != 0 {
						idx, w = append(idx, (bi*tq+i)*h+hh), append(w, s)
					}
				}
				src = qd
			}
			weightedRows(o, w, idx, src, dh)
			for c := range o {
				o[c] *= scale
			}
		}
	})
	return dq, dk
}

// weightedRows adds Σ_n w[n]·src[rows[n]·dh : rows[n]·dh+dh] to o in order of
// n, in float32 with each product rounded before it is added (as AttnMix).
func weightedRows(o, w []float32, rows []int, src []float32, dh int) {
	row := func(r int) []float32 { return src[r*dh : r*dh+dh] }
	n := 0
	for ; n+4 <= len(rows); n += 4 {
		r, c := rows[n:n+4:n+4], w[n:n+4:n+4]
		axpy1x4(o, c[0], c[1], c[2], c[3], row(r[0]), row(r[1]), row(r[2]), row(r[3]))
	}
	for ; n < len(rows); n++ {
		axpy1x1(o, w[n], row(rows[n]))
	}
}

// AttnMixBackward returns dpattern [B, H, Tq, Tk] and dv [B, Tk, H, Dh] for
// z = AttnMix(pattern, v), given dz [B, Tq, H, Dh]. dpattern is the full
// gradient, also at entries where pattern is 0; dv skips pattern weights
// that are exactly zero, as AttnMix does.
func (b *Backend) AttnMixBackward(dz, pattern, v *engine.Tensor) (dpattern, dv *engine.Tensor) {
	zd, pd, vd := host("AttnMixBackward", dz), host("AttnMixBackward", pattern), host("AttnMixBackward", v)
	dims, err := engine.CheckAttnMixBackward(dz, pattern, v)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
	dpattern, dv = output(pattern.Shape()...), output(v.Shape()...)
	dpd, dvd := dpattern.Host(), dv.Host()
	nq, nk := nb*h*tq, nb*h*tk
	// Units [0, nq) are rows (b, h, i) of dpattern; units [nq, nq+nk) are
	// rows (b, h, j) of dv.
	b.parallel(nq+nk, max(tq, tk)*dh, func(lo, hi int) {
		idx := make([]int, 0, tq)
		w := make([]float32, 0, tq)
		for u := lo; u < hi; u++ {
			if u < nq {
				bi, hh, i := u/(h*tq), u/tq%h, u%tq
				zo := ((bi*tq+i)*h + hh) * dh
				zrow := zd[zo : zo+dh]
				o := dpd[u*tk : (u+1)*tk]
				for j := range o {
					vo := ((bi*tk+j)*h + hh) * dh
					o[j] = dot(zrow, vd[vo:vo+dh])
				}
				continue
			}
			r := u - nq
			bi, hh, j := r/(h*tk), r/tk%h, r%tk
			vo := ((bi*tk+j)*h + hh) * dh
			idx, w = idx[:0], w[:0]
			base := (bi*h + hh) * tq * tk
			for i := range tq {
				if p := pd[base+i*tk+j]; p != 0 {
					idx, w = append(idx, (bi*tq+i)*h+hh), append(w, p)
				}
			}
			weightedRows(dvd[vo:vo+dh], w, idx, zd, dh)
		}
	})
	return dpattern, dv
}

// ConcatLast joins tensors of equal leading dimensions along the last
// dimension. It panics when given no parts, since the result's leading
// dimensions would be unknown.
func (b *Backend) ConcatLast(parts ...*engine.Tensor) *engine.Tensor {
	data := make([][]float32, len(parts))
	for i, p := range parts {
		data[i] = host("ConcatLast", p)
	}
	shape, err := engine.CheckConcatLast(parts...)
	must(err)
	widths := make([]int, len(parts))
	for i, p := range parts {
		widths[i] = p.Dim(-1)
	}
	out := output(shape...)
	od := out.Host()
	rows, total := engine.SplitLast(shape)
	if total == 0 {
		return out
	}
	b.parallel(rows, total, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := od[r*total : (r+1)*total]
			for i, w := range widths {
				copy(o[:w], data[i][r*w:(r+1)*w])
				o = o[w:]
			}
		}
	})
	return out
}

// ScatterRows returns a zero [rows, D] tensor with row i of x, viewed as
// [len(idx), D] (D its last dimension), added at row idx[i]. Repeated
// indices accumulate in float64 in the order of idx.
func (b *Backend) ScatterRows(x *engine.Tensor, idx []int, rows int) *engine.Tensor {
	xd := host("ScatterRows", x)
	must(engine.CheckScatterRows(x, idx, rows))
	_, d := engine.SplitLast(x.Shape())
	// Contributions to each output row, in the order of idx (a stable
	// counting sort): src[start[r]:start[r+1]] are the rows of x added to r.
	start := make([]int, rows+1)
	for _, r := range idx {
		start[r+1]++
	}
	for r := range rows {
		start[r+1] += start[r]
	}
	src := make([]int, len(idx))
	fill := slices.Clone(start[:rows])
	for i, r := range idx {
		src[fill[r]] = i
		fill[r]++
	}
	out := output(rows, d)
	od := out.Host()
	if d == 0 {
		return out
	}
	b.parallel(rows, d*max(1, len(idx)/max(rows, 1)), func(lo, hi int) {
		acc := make([]float64, d)
		for r := lo; r < hi; r++ {
			from := src[start[r]:start[r+1]]
			o := od[r*d : (r+1)*d]
			switch len(from) {
			case 0:
				continue
			case 1:
				copy(o, xd[from[0]*d:(from[0]+1)*d])
				continue
			}
			clear(acc)
			for _, i := range from {
				for c, v := range xd[i*d : (i+1)*d] {
					acc[c] += float64(v)
				}
			}
			for c, v := range acc {
				o[c] = float32(v)
			}
		}
	})
	return out
}
