package cpu

import (
	"math"

	"github.com/modelforensics/fx/engine"
)

// AttnScores returns q·kᵀ·scale for q [B, Tq, H, Dh] and k [B, Tk, H, Dh] as
// [B, H, Tq, Tk], with -Inf where mask forbids attention. Each score is
// dot(q, k)·scale with dot as for MatMul with transW.
func (b *Backend) AttnScores(q, k *engine.Tensor, scale float32, mask engine.AttnMask) *engine.Tensor {
	qd, kd := host("AttnScores", q), host("AttnScores", k)
	dims, err := engine.CheckAttnScores(q, k, mask)
	must(err)
	mask = resolveOffset("AttnScores", mask)
	a := newAttnShape(dims, b.simd)
	nb, tq, tk, h, dh := a.nb, a.tq, a.tk, a.h, a.dh
	out := output(nb, h, tq, tk)
	od := out.Host()
	b.parallel(nb*h*tq, tk*dh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			a.scoresRow(od[r*tk:(r+1)*tk], qd, kd, scale, mask, r)
		}
	})
	return out
}

// resolveOffset returns mask with the value of mask.QueryOffsetAt added
// to QueryOffset. A value that is not an index (indexValue) masks every
// key of a causal mask, as the GPU's kernels do.
func resolveOffset(op string, mask engine.AttnMask) engine.AttnMask {
	if mask.QueryOffsetAt == nil {
		return mask
	}
	if v, ok := indexValue(host(op, mask.QueryOffsetAt)[0]); ok {
		mask.QueryOffset += v
	} else {
		mask.QueryOffset = invalidQueryOffset
	}
	mask.QueryOffsetAt = nil
	return mask
}

// invalidQueryOffset is the query offset of a QueryOffsetAt that holds no
// index: far enough below any query that a causal mask forbids every key.
const invalidQueryOffset = -(1 << 30)

// attnShape is the shape of an attention: batch, queries, keys, heads and
// the head size, and the SIMD kernels to use (nil: pure Go; they give the
// same bits). Row r of the [B, H, Tq, Tk] scores is query r%Tq of head
// r/Tq%H of sequence r/(H·Tq).
type attnShape struct {
	nb, tq, tk, h, dh int
	simd              *simdKernels
}

// newAttnShape returns the attnShape of d with the SIMD kernels simd.
func newAttnShape(d engine.AttnDims, simd *simdKernels) attnShape {
	return attnShape{nb: d.B, tq: d.Tq, tk: d.Tk, h: d.H, dh: d.Dh, simd: simd}
}

// attnScratch is a worker's scratch for mixRow: Tk capacity each.
type attnScratch struct {
	w   []float32
	off []int
}

func newAttnScratch(tk int) *attnScratch {
	return &attnScratch{w: make([]float32, 0, tk), off: make([]int, 0, tk)}
}

// scoresRow writes row r of the scores (see AttnScores) to o.
func (a *attnShape) scoresRow(o, qd, kd []float32, scale float32, mask engine.AttnMask, r int) {
	bi, hh, i := r/(a.h*a.tq), r/a.tq%a.h, r%a.tq
	qo := ((bi*a.tq+i)*a.h + hh) * a.dh
	qrow := qd[qo : qo+a.dh]
	var valid []int32
	if mask.KeyValid != nil {
		valid = mask.KeyValid[bi*a.tk : (bi+1)*a.tk]
	}
	negInf := float32(math.Inf(-1))
	o = o[:a.tk]
	// Keys at and past end are masked by causality.
	end := a.tk
	if mask.Causal {
		end = max(0, min(a.tk, i+mask.QueryOffset+1))
	}
	if a.simd != nil && a.simd.dots != nil && a.dh%8 == 0 && a.dh > 0 && end > 0 {
		ko := (bi*a.tk*a.h + hh) * a.dh
		_ = kd[ko : ko+(end-1)*a.h*a.dh+a.dh]
		a.simd.dots(&qrow[0], &kd[ko], a.h*a.dh, end, a.dh, &o[0])
		for j := range end {
			if valid != nil && valid[j] == 0 {
				o[j] = negInf
			} else {
				o[j] *= scale
			}
		}
		for j := end; j < len(o); j++ {
			o[j] = negInf
		}
		return
	}
	for j := range o {
		if j >= end || (valid != nil && valid[j] == 0) {
			o[j] = negInf
			continue
		}
		ko := ((bi*a.tk+j)*a.h + hh) * a.dh
		o[j] = dot(qrow, kd[ko:ko+a.dh]) * scale
	}
}

// mixRow adds row r of pattern·v (see AttnMix) to z, zero on entry: p is
// the row of weights.
func (a *attnShape) mixRow(z, p, vd []float32, sc *attnScratch, r int) {
	bi, hh := r/(a.h*a.tq), r/a.tq%a.h
	// The keys whose weight is not zero, in order.
	w, off := sc.w[:len(p)], sc.off[:len(p)]
	n, o, step := 0, (bi*a.tk*a.h+hh)*a.dh, a.h*a.dh
	for _, pj := range p {
		if pj != 0 {
			w[n], off[n] = pj, o
			n++
		}
		o += step
	}
	w, off = w[:n], off[:n]
	if a.simd != nil && a.simd.mix != nil && a.dh%32 == 0 && a.dh > 0 && len(w) > 0 {
		_ = vd[off[len(off)-1] : off[len(off)-1]+a.dh]
		a.simd.mix(&z[0], a.dh, &w[0], &off[0], len(w), &vd[0])
		return
	}
	vrow := func(n int) []float32 { return vd[off[n] : off[n]+a.dh] }
	n = 0
	for ; n+4 <= len(w); n += 4 {
		axpy1x4(z, w[n], w[n+1], w[n+2], w[n+3], vrow(n), vrow(n+1), vrow(n+2), vrow(n+3))
	}
	for ; n < len(w); n++ {
		axpy1x1(z, w[n], vrow(n))
	}
}

// AttnMix returns pattern·v for pattern [B, H, Tq, Tk] and v [B, Tk, H, Dh]
// as z [B, Tq, H, Dh]. Each element sums keys in order in float32, skipping
// keys whose weight is exactly zero (masked keys never contribute, even if
// their values are not finite).
func (b *Backend) AttnMix(pattern, v *engine.Tensor) *engine.Tensor {
	pd, vd := host("AttnMix", pattern), host("AttnMix", v)
	dims, err := engine.CheckAttnMix(pattern, v)
	must(err)
	a := newAttnShape(dims, b.simd)
	nb, tq, tk, h, dh := a.nb, a.tq, a.tk, a.h, a.dh
	out := output(nb, tq, h, dh)
	od := out.Host()
	b.parallel(nb*h*tq, tk*dh, func(lo, hi int) {
		sc := newAttnScratch(tk)
		for r := lo; r < hi; r++ {
			bi, hh, i := r/(h*tq), r/tq%h, r%tq
			zo := ((bi*tq+i)*h + hh) * dh
			a.mixRow(od[zo:zo+dh], pd[r*tk:(r+1)*tk], vd, sc, r)
		}
	})
	return out
}

// Attention returns AttnMix(Softmax(AttnScores(q, k, scale, mask)), v) for
// q [B, Tq, H, Dh] and k, v [B, Tk, H, Dh], as z [B, Tq, H, Dh], with the
// bits of those three ops: each query row's scores, weights and mix are
// computed by the same code, one row at a time in a worker's scratch of Tk
// values, so the [B, H, Tq, Tk] scores and pattern never exist.
func (b *Backend) Attention(q, k, v *engine.Tensor, scale float32, mask engine.AttnMask) *engine.Tensor {
	qd, kd, vd := host("Attention", q), host("Attention", k), host("Attention", v)
	dims, err := engine.CheckAttention(q, k, v, mask)
	must(err)
	mask = resolveOffset("Attention", mask)
	a := newAttnShape(dims, b.simd)
	nb, tq, tk, h, dh := a.nb, a.tq, a.tk, a.h, a.dh
	out := output(nb, tq, h, dh)
	od := out.Host()
	b.parallel(nb*h*tq, 2*tk*dh+16*tk, func(lo, hi int) {
		scores, p := make([]float32, tk), make([]float32, tk)
		e := make([]float64, tk)
		sc := newAttnScratch(tk)
		for r := lo; r < hi; r++ {
			bi, hh, i := r/(h*tq), r/tq%h, r%tq
			a.scoresRow(scores, qd, kd, scale, mask, r)
			// Keys past the causal limit have weight 0, and adding 0 to
			// the softmax's sum changes nothing: leave them out.
			end := tk
			if mask.Causal {
				end = max(0, min(tk, i+mask.QueryOffset+1))
			}
			softmaxRow(p[:end], scores[:end], e, a.simd)
			zo := ((bi*tq+i)*h + hh) * dh
			a.mixRow(od[zo:zo+dh], p[:end], vd, sc, r)
		}
	})
	return out
}
