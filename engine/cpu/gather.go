package cpu

import (
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
)

// Embedding gathers rows of table [V, D] for ids and returns [len(ids), D].
func (b *Backend) Embedding(table *engine.Tensor, ids []int32) *engine.Tensor {
	td := host("Embedding", table)
	must(engine.CheckEmbedding(table, ids))
	d := table.Dim(1)
	out := output(len(ids), d)
	od := out.Host()
	for i, id := range ids {
		copy(od[i*d:(i+1)*d], td[int(id)*d:int(id+1)*d])
	}
	return out
}

// Gather implements engine.Backend: Embedding with the ids in a tensor.
func (b *Backend) Gather(table, idx *engine.Tensor) *engine.Tensor {
	td, ids := host("Gather", table), host("Gather", idx)
	must(engine.CheckGather(table, idx))
	v, d := table.Dim(0), table.Dim(1)
	out := output(len(ids), d)
	od := out.Host()
	for i, f := range ids {
		row := od[i*d : (i+1)*d]
		id, ok := indexValue(f)
		if !ok || id >= v {
			for c := range row {
				row[c] = float32(math.NaN())
			}
			continue
		}
		copy(row, td[id*d:(id+1)*d])
	}
	return out
}

// SetRowsAt implements engine.Backend.
func (b *Backend) SetRowsAt(dst, src, at *engine.Tensor) {
	dd, sd, ad := host("SetRowsAt", dst), host("SetRowsAt", src), host("SetRowsAt", at)
	must(engine.CheckSetRowsAt(dst, src, at))
	r0, ok := indexValue(ad[0])
	if !ok {
		return
	}
	nb, rows, t := dst.Dim(0), dst.Dim(1), src.Dim(1)
	inner := engine.NumElements(dst.Shape()[2:])
	for bi := range nb {
		for ti := range min(t, rows-r0) {
			s := (bi*t + ti) * inner
			copy(dd[(bi*rows+r0+ti)*inner:], sd[s:s+inner])
		}
	}
}

// indexValue returns v as an index, and whether it is one: an integer
// value in [0, 2^24), where float32 holds every integer.
func indexValue(v float32) (int, bool) {
	if !(v >= 0 && v < 1<<24) || v != float32(math.Trunc(float64(v))) {
		return 0, false
	}
	return int(v), true
}

// Rows gathers rows of x viewed as [R, D] (D the last dimension) and returns
// [len(idx), D].
func (b *Backend) Rows(x *engine.Tensor, idx []int) *engine.Tensor {
	xd := host("Rows", x)
	must(engine.CheckRows(x, idx))
	_, d := engine.SplitLast(x.Shape())
	out := output(len(idx), d)
	od := out.Host()
	for i, j := range idx {
		copy(od[i*d:(i+1)*d], xd[j*d:(j+1)*d])
	}
	return out
}

// SliceLast returns the columns [from, to) of the last dimension.
func (b *Backend) SliceLast(x *engine.Tensor, from, to int) *engine.Tensor {
	xd := host("SliceLast", x)
	must(engine.CheckSliceLast(x, from, to))
	r, d := engine.SplitLast(x.Shape())
	w := to - from
	out := output(engine.WithLast(x.Shape(), w)...)
	od := out.Host()
	for i := range r {
		copy(od[i*w:(i+1)*w], xd[i*d+from:i*d+to])
	}
	return out
}

// Concat joins a [B, Ta, ...] and c [B, Tb, ...] along dimension 1.
func (b *Backend) Concat(a, c *engine.Tensor) *engine.Tensor {
	ad, cd := host("Concat", a), host("Concat", c)
	must(engine.CheckConcat(a, c))
	as, cs := a.Shape(), c.Shape()
	inner := engine.NumElements(as[2:])
	na, nc := as[1]*inner, cs[1]*inner
	shape := slices.Clone(as)
	shape[1] += cs[1]
	out := output(shape...)
	od := out.Host()
	for i := range as[0] {
		o := od[i*(na+nc):]
		copy(o[:na], ad[i*na:(i+1)*na])
		copy(o[na:na+nc], cd[i*nc:(i+1)*nc])
	}
	return out
}
