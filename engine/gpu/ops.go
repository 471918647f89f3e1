package gpu

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// LayerNorm implements engine.Backend.
func (b *Backend) LayerNorm(x, gamma, beta *engine.Tensor, eps float32) *engine.Tensor {
	must(engine.CheckLayerNorm(x, gamma, beta))
	rows, d := engine.SplitLast(x.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("LayerNorm", x.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("LayerNorm", out)).ptr(ptr("LayerNorm", x)).ptr(ptr("LayerNorm", gamma)).ptr(ptr("LayerNorm", beta)).
		int(rows).int(d).f32(eps)
	b.launch("LayerNorm", b.k.layerNorm, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return out
}

// AddLayerNorm implements engine.Backend with one kernel,
// fx_add_layernorm: each row is added, then normalised as fx_layernorm
// does, so the bits are those of Add then LayerNorm.
func (b *Backend) AddLayerNorm(x, delta, gamma, beta *engine.Tensor, eps float32) (sum, normed *engine.Tensor) {
	must(engine.CheckAddLayerNorm(x, delta, gamma, beta))
	rows, d := engine.SplitLast(x.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	sum, normed = b.alloc("AddLayerNorm", x.Shape()...), b.alloc("AddLayerNorm", x.Shape()...)
	if sum.Len() == 0 {
		return sum, normed
	}
	a := b.newArgs()
	a.ptr(ptr("AddLayerNorm", sum)).ptr(ptr("AddLayerNorm", normed)).ptr(ptr("AddLayerNorm", x)).
		ptr(ptr("AddLayerNorm", delta)).ptr(ptr("AddLayerNorm", gamma)).ptr(ptr("AddLayerNorm", beta)).
		int(rows).int(d).f32(eps)
	b.launch("AddLayerNorm", b.k.addLayerNorm, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return sum, normed
}

// LayerNormScale implements engine.Backend.
func (b *Backend) LayerNormScale(x *engine.Tensor, eps float32) *engine.Tensor {
	must(engine.CheckLayerNormScale(x))
	rows, d := engine.SplitLast(x.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("LayerNormScale", engine.WithLast(x.Shape(), 1)...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("LayerNormScale", out)).ptr(ptr("LayerNormScale", x)).int(rows).int(d).f32(eps)
	b.launch("LayerNormScale", b.k.layerNormScale, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return out
}

// GELU implements engine.Backend.
func (b *Backend) GELU(x *engine.Tensor, kind engine.Activation) *engine.Tensor {
	must(engine.CheckGELU(kind))
	if kind == engine.GELUErf {
		return b.unary("GELU", b.k.geluErf, x)
	}
	return b.unary("GELU", b.k.geluTanh, x)
}

// Tanh implements engine.Backend.
func (b *Backend) Tanh(x *engine.Tensor) *engine.Tensor { return b.unary("Tanh", b.k.tanh, x) }

// unary runs an elementwise kernel f(y, x, n).
func (b *Backend) unary(op string, f cuda.Function, x *engine.Tensor) *engine.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc(op, x.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr(op, out)).ptr(ptr(op, x)).int(out.Len())
	grid, block := gridStride(out.Len())
	b.launch(op, f, grid, block, &a)
	return out
}

// Add implements engine.Backend.
func (b *Backend) Add(x, y *engine.Tensor) *engine.Tensor {
	must(engine.CheckAdd(x, y))
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("Add", x.Shape()...)
	if out.Len() == 0 || y.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("Add", out)).ptr(ptr("Add", x)).ptr(ptr("Add", y)).int(out.Len()).int(y.Len())
	grid, block := gridStride(out.Len())
	b.launch("Add", b.k.add, grid, block, &a)
	return out
}

// Embedding implements engine.Backend.
func (b *Backend) Embedding(table *engine.Tensor, ids []int32) *engine.Tensor {
	must(engine.CheckEmbedding(table, ids))
	return b.gather("Embedding", table, ids, table.Dim(1))
}

// Gather implements engine.Backend with fx_gather_rows_at.
func (b *Backend) Gather(table, idx *engine.Tensor) *engine.Tensor {
	must(engine.CheckGather(table, idx))
	n, d := idx.Len(), table.Dim(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("Gather", n, d)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("Gather", out)).ptr(ptr("Gather", table)).ptr(ptr("Gather", idx)).int(n).int(d).int(table.Dim(0))
	b.launch("Gather", b.k.gatherRowsAt, dim(ceilDiv(d, 256), min(n, 65535), 1), dim(256, 1, 1), &a)
	return out
}

// SetRowsAt implements engine.Backend with fx_set_rows_at.
func (b *Backend) SetRowsAt(dst, src, at *engine.Tensor) {
	must(engine.CheckSetRowsAt(dst, src, at))
	nb, rows, t := dst.Dim(0), dst.Dim(1), src.Dim(1)
	inner := engine.NumElements(dst.Shape()[2:])
	if nb*t*inner == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bf16.cache.invalidate(dst)
	a := b.newArgs()
	a.ptr(ptr("SetRowsAt", dst)).ptr(ptr("SetRowsAt", src)).ptr(ptr("SetRowsAt", at)).int(nb).int(rows).int(t).int(inner)
	b.launch("SetRowsAt", b.k.setRowsAt, dim(ceilDiv(inner, 256), min(nb*t, 65535), 1), dim(256, 1, 1), &a)
}

// Rows implements engine.Backend.
func (b *Backend) Rows(x *engine.Tensor, idx []int) *engine.Tensor {
	must(engine.CheckRows(x, idx))
	_, d := engine.SplitLast(x.Shape())
	return b.gather("Rows", x, int32s(idx), d)
}

// int32s returns idx as the int32 row indices that the kernels take.
func int32s(idx []int) []int32 {
	ids := make([]int32, len(idx))
	for i, j := range idx {
		ids[i] = int32(j)
	}
	return ids
}

// gather returns rows ids of x viewed as [R, d].
func (b *Backend) gather(op string, x *engine.Tensor, ids []int32, d int) *engine.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc(op, len(ids), d)
	if out.Len() == 0 {
		return out
	}
	idp, keep := b.uploadInt32(op, ids)
	a := b.newArgs()
	a.ptr(ptr(op, out)).ptr(ptr(op, x)).ptr(idp).int(len(ids)).int(d)
	b.launch(op, b.k.gatherRows, dim(ceilDiv(d, 256), min(len(ids), 65535), 1), dim(256, 1, 1), &a)
	runtime.KeepAlive(keep) // the ids stay alive until the launch is queued
	return out
}

// SliceLast implements engine.Backend.
func (b *Backend) SliceLast(x *engine.Tensor, from, to int) *engine.Tensor {
	must(engine.CheckSliceLast(x, from, to))
	r, d := engine.SplitLast(x.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("SliceLast", engine.WithLast(x.Shape(), to-from)...)
	b.copyCols("SliceLast", out, to-from, 0, x, d, from, r, to-from)
	return out
}

// Concat implements engine.Backend.
func (b *Backend) Concat(x, y *engine.Tensor) *engine.Tensor {
	must(engine.CheckConcat(x, y))
	xs, ys := x.Shape(), y.Shape()
	inner := engine.NumElements(xs[2:])
	nx, ny := xs[1]*inner, ys[1]*inner
	shape := slices.Clone(xs)
	shape[1] += ys[1]
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("Concat", shape...)
	b.copyCols("Concat", out, nx+ny, 0, x, nx, 0, xs[0], nx)
	b.copyCols("Concat", out, nx+ny, nx, y, ny, 0, xs[0], ny)
	return out
}

// copyCols copies n columns of rows rows: dst[r, dstOff+c] = src[r, srcOff+c];
// b.mu is held.
func (b *Backend) copyCols(op string, dst *engine.Tensor, dstCols, dstOff int, src *engine.Tensor, srcCols, srcOff, rows, n int) {
	if rows == 0 || n == 0 {
		return
	}
	a := b.newArgs()
	a.ptr(ptr(op, dst)).int(dstCols).int(dstOff).ptr(ptr(op, src)).int(srcCols).int(srcOff).int(rows).int(n)
	b.launch(op, b.k.copyCols, dim(ceilDiv(n, 256), min(rows, 65535), 1), dim(256, 1, 1), &a)
}

// AttnScores implements engine.Backend.
func (b *Backend) AttnScores(q, k *engine.Tensor, scale float32, mask engine.AttnMask) *engine.Tensor {
	dims, err := engine.CheckAttnScores(q, k, mask)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("AttnScores", nb, h, tq, tk)
	if out.Len() == 0 {
		return out
	}
	valid, keep := b.uploadInt32("AttnScores", mask.KeyValid)
	a := b.newArgs()
	a.ptr(ptr("AttnScores", out)).ptr(ptr("AttnScores", q)).ptr(ptr("AttnScores", k)).ptr(valid).
		int(nb).int(tq).int(tk).int(h).int(dh).f32(scale).bool(mask.Causal).int(mask.QueryOffset).
		ptr(ptr("AttnScores", mask.QueryOffsetAt))
	grid, block := gridStride(out.Len())
	b.launch("AttnScores", b.k.attnScores, grid, block, &a)
	runtime.KeepAlive(keep)
	return out
}

// Softmax implements engine.Backend.
func (b *Backend) Softmax(x *engine.Tensor) *engine.Tensor {
	rows, d := engine.SplitLast(x.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("Softmax", x.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("Softmax", out)).ptr(ptr("Softmax", x)).int(rows).int(d)
	b.launch("Softmax", b.k.softmax, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return out
}

// AttnMix implements engine.Backend.
func (b *Backend) AttnMix(pattern, v *engine.Tensor) *engine.Tensor {
	dims, err := engine.CheckAttnMix(pattern, v)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("AttnMix", nb, tq, h, dh)
	if out.Len() == 0 {
		return out
	}
	if tk == 0 {
		b.memset("AttnMix", ptr("AttnMix", out), 0, out.Len())
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("AttnMix", out)).ptr(ptr("AttnMix", pattern)).ptr(ptr("AttnMix", v)).
		int(nb).int(tq).int(tk).int(h).int(dh)
	grid, block := gridStride(out.Len())
	b.launch("AttnMix", b.k.attnMix, grid, block, &a)
	return out
}

// maxFusedHeadDim is the largest head size fx_attention holds in registers.
const maxFusedHeadDim = 128

// Attention implements engine.Backend with one fused kernel (online
// softmax; no [Tq, Tk] in memory) for heads of up to 128 values, else with
// AttnScores, Softmax and AttnMix. The fused kernel is fx_attention_tiled
// (tiles of 64 queries, 32 for heads of more than 64 values) from 16
// queries on (prefill), fx_attention (4 queries a block) below that
// (decode steps).
func (b *Backend) Attention(q, k, v *engine.Tensor, scale float32, mask engine.AttnMask) *engine.Tensor {
	dims, err := engine.CheckAttention(q, k, v, mask)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
	if dh > maxFusedHeadDim {
		return b.AttnMix(b.Softmax(b.AttnScores(q, k, scale, mask)), v)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("Attention", nb, tq, h, dh)
	if out.Len() == 0 {
		return out
	}
	if tk == 0 {
		b.memset("Attention", ptr("Attention", out), 0, out.Len())
		return out
	}
	valid, keep := b.uploadInt32("Attention", mask.KeyValid)
	a := b.newArgs()
	a.ptr(ptr("Attention", out)).ptr(ptr("Attention", q)).ptr(ptr("Attention", k)).ptr(ptr("Attention", v)).ptr(valid).
		int(nb).int(tq).int(tk).int(h).int(dh).f32(scale).bool(mask.Causal).int(mask.QueryOffset).
		ptr(ptr("Attention", mask.QueryOffsetAt))
	if nb > 65535 || h > 65535 {
		panic(fmt.Sprintf("gpu: Attention: %d sequences of %d heads exceed the grid", nb, h))
	}
	const tiledMinQueries = 16
	if tq >= tiledMinQueries {
		bq := 64
		if dh > 64 {
			bq = 32
		}
		b.launch("Attention", b.k.attentionTiled, dim(ceilDiv(tq, bq), h, nb), dim(128, 1, 1), &a)
	} else {
		b.launch("Attention", b.k.attention, dim(ceilDiv(tq, 4), h, nb), dim(128, 1, 1), &a)
	}
	runtime.KeepAlive(keep)
	return out
}

// HeadResult implements engine.Backend.
func (b *Backend) HeadResult(z, w *engine.Tensor, transW bool) *engine.Tensor {
	d, err := engine.CheckHeadResult(z, w, transW)
	must(err)
	bt := z.Dim(0) * z.Dim(1)
	h, dh := z.Dim(2), z.Dim(3)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("HeadResult", z.Dim(0), z.Dim(1), h, d)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("HeadResult", out)).ptr(ptr("HeadResult", z)).ptr(ptr("HeadResult", w)).
		int(bt).int(h).int(dh).int(d).bool(transW)
	grid, block := gridStride(out.Len())
	b.launch("HeadResult", b.k.headResult, grid, block, &a)
	return out
}

// SumAxis implements engine.Backend.
func (b *Backend) SumAxis(x *engine.Tensor, axis int) *engine.Tensor {
	axis, err := engine.CheckSumAxis(x, axis)
	must(err)
	shape := x.Shape()
	outer := engine.NumElements(shape[:axis])
	n := shape[axis]
	inner := engine.NumElements(shape[axis+1:])
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("SumAxis", slices.Delete(slices.Clone(shape), axis, axis+1)...)
	if out.Len() == 0 {
		return out
	}
	if n == 0 {
		b.memset("SumAxis", ptr("SumAxis", out), 0, out.Len())
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("SumAxis", out)).ptr(ptr("SumAxis", x)).int(outer).int(n).int(inner)
	grid, block := gridStride(out.Len())
	b.launch("SumAxis", b.k.sumAxis, grid, block, &a)
	return out
}

// Edit implements engine.Backend: one launch changes the box in place. A
// host Source is copied to the device first.
func (b *Backend) Edit(t *engine.Tensor, e engine.Edit) {
	must(engine.CheckEdit(t, e))
	n := e.Len()
	if n == 0 {
		return
	}
	src := e.Source
	if src != nil && src.Host() != nil {
		src = b.FromHost(src.Host(), src.Shape()...)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bf16.cache.invalidate(t)
	a := b.newArgs()
	a.ptr(ptr("Edit", t)).ptr(ptr("Edit", src)).int(int(e.Mode)).f32(e.Value)
	for _, d := range e.Dims {
		a.int(d)
	}
	for _, s := range e.Strides {
		a.int(s)
	}
	a.int(e.Offset)
	for _, s := range e.SourceStrides {
		a.int(s)
	}
	a.int(e.SourceOffset)
	grid, block := gridStride(n)
	b.launch("Edit", b.k.editBox, grid, block, &a)
}
