package cpu

import (
	"fmt"
	"math"

	"github.com/modelforensics/fx/engine"
)

// AttnScores returns q·kᵀ·scale for q [B, Tq, H, Dh] and k [B, Tk, H, Dh] as
// [B, H, Tq, Tk], with -Inf where mask forbids attention. Each score is
// dot(q, k)·scale with dot as for MatMul with transW.
func (b *Backend) AttnScores(q, k *engine.Tensor, scale float32, mask engine.AttnMask) *engine.Tensor {
	qd, kd := host("AttnScores", q), host("AttnScores", k)
	if q.Rank() != 4 || k.Rank() != 4 || q.Dim(0) != k.Dim(0) || q.Dim(2) != k.Dim(2) || q.Dim(3) != k.Dim(3) {
		panic(fmt.Sprintf("cpu: AttnScores: q %v, k %v", q, k))
	}
	nb, tq, h, dh := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	tk := k.Dim(1)
	if mask.KeyValid != nil && len(mask.KeyValid) != nb*tk {
		panic(fmt.Sprintf("cpu: AttnScores: KeyValid has %d entries for %d×%d keys", len(mask.KeyValid), nb, tk))
	}
	out := output(nb, h, tq, tk)
	od := out.Host()
	negInf := float32(math.Inf(-1))
	b.parallel(nb*h*tq, tk*dh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			bi, hh, i := r/(h*tq), r/tq%h, r%tq
			qo := ((bi*tq+i)*h + hh) * dh
			qrow := qd[qo : qo+dh]
			o := od[r*tk : (r+1)*tk]
			var valid []int32
			if mask.KeyValid != nil {
				valid = mask.KeyValid[bi*tk : (bi+1)*tk]
			}
			krow := func(j int) []float32 {
				ko := ((bi*tk+j)*h + hh) * dh
				return kd[ko : ko+dh]
			}
			allowed := func(j int) bool {
				return !(mask.Causal && j > i+mask.QueryOffset) && (valid == nil || valid[j] != 0)
			}
			for j := range o {
				o[j] = negInf
				if allowed(j) {
					o[j] = dot(qrow, krow(j)) * scale
				}
			}
		}
	})
	return out
}

// AttnMix returns pattern·v for pattern [B, H, Tq, Tk] and v [B, Tk, H, Dh]
// as z [B, Tq, H, Dh]. Each element sums keys in order in float32, skipping
// keys whose weight is exactly zero (masked keys never contribute, even if
// their values are not finite).
func (b *Backend) AttnMix(pattern, v *engine.Tensor) *engine.Tensor {
	pd, vd := host("AttnMix", pattern), host("AttnMix", v)
	if pattern.Rank() != 4 || v.Rank() != 4 || pattern.Dim(0) != v.Dim(0) ||
		pattern.Dim(1) != v.Dim(2) || pattern.Dim(3) != v.Dim(1) {
		panic(fmt.Sprintf("cpu: AttnMix: pattern %v, v %v", pattern, v))
	}
	nb, h, tq, tk := pattern.Dim(0), pattern.Dim(1), pattern.Dim(2), pattern.Dim(3)
	dh := v.Dim(3)
	out := output(nb, tq, h, dh)
	od := out.Host()
	b.parallel(nb*h*tq, tk*dh, func(lo, hi int) {
		keys := make([]int, 0, tk)
		for r := lo; r < hi; r++ {
			bi, hh, i := r/(h*tq), r/tq%h, r%tq
			zo := ((bi*tq+i)*h + hh) * dh
			z := od[zo : zo+dh]
			p := pd[r*tk : (r+1)*tk]
			keys = keys[:0]
			for j, pj := range p {
				if pj != 0 {
					keys = append(keys, j)
				}
			}
			vrow := func(j int) []float32 {
				vo := ((bi*tk+j)*h + hh) * dh
				return vd[vo : vo+dh]
			}
			n := 0
			for ; n+4 <= len(keys); n += 4 {
				j := keys[n : n+4 : n+4]
				axpy1x4(z, p[j[0]], p[j[1]], p[j[2]], p[j[3]], vrow(j[0]), vrow(j[1]), vrow(j[2]), vrow(j[3]))
			}
			for _, j := range keys[n:] {
				axpy1x1(z, p[j], vrow(j))
			}
		}
	})
	return out
}
