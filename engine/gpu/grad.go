package gpu

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// sameShape panics unless a and c have the same shape.
func sameShape(op string, a, c *engine.Tensor, an, cn string) {
	if !slices.Equal(a.Shape(), c.Shape()) {
		panic(fmt.Sprintf("gpu: %s: %s %v and %s %v differ in shape", op, an, a, cn, c))
	}
}

// LayerNormBackward implements engine.GradBackend.
func (b *Backend) LayerNormBackward(x, gamma, dy *engine.Tensor, eps float32) *engine.Tensor {
	rows, d := engine.SplitLast(x.Shape())
	if gamma.Len() != d {
		panic(fmt.Sprintf("gpu: LayerNormBackward: x %v, gamma %v", x, gamma))
	}
	sameShape("LayerNormBackward", x, dy, "x", "dy")
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("LayerNormBackward", x.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("LayerNormBackward", out)).ptr(ptr("LayerNormBackward", x)).ptr(ptr("LayerNormBackward", gamma)).
		ptr(ptr("LayerNormBackward", dy)).int(rows).int(d).f32(eps)
	b.launch("LayerNormBackward", b.k.layerNormBackward, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return out
}

// GELUBackward implements engine.GradBackend.
func (b *Backend) GELUBackward(x, dy *engine.Tensor, kind engine.Activation) *engine.Tensor {
	switch kind {
	case engine.GELUTanh:
		return b.binary("GELUBackward", b.k.geluTanhBackward, x, dy)
	case engine.GELUErf:
		return b.binary("GELUBackward", b.k.geluErfBackward, x, dy)
	}
	panic(fmt.Sprintf("gpu: GELUBackward: unknown activation %d", kind))
}

// TanhBackward implements engine.GradBackend.
func (b *Backend) TanhBackward(y, dy *engine.Tensor) *engine.Tensor {
	return b.binary("TanhBackward", b.k.tanhBackward, y, dy)
}

// binary runs an elementwise kernel f(out, a, dy, n) of two tensors of one
// shape.
func (b *Backend) binary(op string, f cuda.Function, x, dy *engine.Tensor) *engine.Tensor {
	sameShape(op, x, dy, "x", "dy")
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc(op, x.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr(op, out)).ptr(ptr(op, x)).ptr(ptr(op, dy)).int(out.Len())
	grid, block := gridStride(out.Len())
	b.launch(op, f, grid, block, &a)
	return out
}

// SoftmaxBackward implements engine.GradBackend.
func (b *Backend) SoftmaxBackward(y, dy *engine.Tensor) *engine.Tensor {
	sameShape("SoftmaxBackward", y, dy, "y", "dy")
	rows, d := engine.SplitLast(y.Shape())
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("SoftmaxBackward", y.Shape()...)
	if out.Len() == 0 {
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("SoftmaxBackward", out)).ptr(ptr("SoftmaxBackward", y)).ptr(ptr("SoftmaxBackward", dy)).int(rows).int(d)
	b.launch("SoftmaxBackward", b.k.softmaxBackward, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	return out
}

// AttnScoresBackward implements engine.GradBackend.
func (b *Backend) AttnScoresBackward(dscores, q, k *engine.Tensor, scale float32) (dq, dk *engine.Tensor) {
	nb, tq, tk, h, dh := attnDims("AttnScoresBackward", q, k, engine.AttnMask{})
	if want := []int{nb, h, tq, tk}; !slices.Equal(dscores.Shape(), want) {
		panic(fmt.Sprintf("gpu: AttnScoresBackward: dscores %v for q %v and k %v, want %v", dscores, q, k, engine.ShapeString(want)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dq, dk = b.alloc("AttnScoresBackward", q.Shape()...), b.alloc("AttnScoresBackward", k.Shape()...)
	for _, g := range []struct {
		out, other *engine.Tensor
		f          cuda.Function
	}{{dq, k, b.k.attnScoresBackwardDQ}, {dk, q, b.k.attnScoresBackwardDK}} {
		if g.out.Len() == 0 {
			continue
		}
		a := b.newArgs()
		a.ptr(ptr("AttnScoresBackward", g.out)).ptr(ptr("AttnScoresBackward", dscores)).ptr(ptr("AttnScoresBackward", g.other)).
			int(nb).int(tq).int(tk).int(h).int(dh).f32(scale)
		grid, block := gridStride(g.out.Len())
		b.launch("AttnScoresBackward", g.f, grid, block, &a)
	}
	return dq, dk
}

// AttnMixBackward implements engine.GradBackend.
func (b *Backend) AttnMixBackward(dz, pattern, v *engine.Tensor) (dpattern, dv *engine.Tensor) {
	if pattern.Rank() != 4 || v.Rank() != 4 || pattern.Dim(0) != v.Dim(0) ||
		pattern.Dim(1) != v.Dim(2) || pattern.Dim(3) != v.Dim(1) {
		panic(fmt.Sprintf("gpu: AttnMixBackward: pattern %v, v %v", pattern, v))
	}
	nb, h, tq, tk := pattern.Dim(0), pattern.Dim(1), pattern.Dim(2), pattern.Dim(3)
	dh := v.Dim(3)
	if want := []int{nb, tq, h, dh}; !slices.Equal(dz.Shape(), want) {
		panic(fmt.Sprintf("gpu: AttnMixBackward: dz %v for pattern %v and v %v, want %v", dz, pattern, v, engine.ShapeString(want)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dpattern, dv = b.alloc("AttnMixBackward", pattern.Shape()...), b.alloc("AttnMixBackward", v.Shape()...)
	if dpattern.Len() > 0 {
		if dh == 0 {
			b.memset("AttnMixBackward", ptr("AttnMixBackward", dpattern), 0, dpattern.Len())
		} else {
			a := b.newArgs()
			a.ptr(ptr("AttnMixBackward", dpattern)).ptr(ptr("AttnMixBackward", dz)).ptr(ptr("AttnMixBackward", v)).
				int(nb).int(tq).int(tk).int(h).int(dh)
			grid, block := gridStride(dpattern.Len())
			b.launch("AttnMixBackward", b.k.attnMixBackwardDP, grid, block, &a)
		}
	}
	if dv.Len() > 0 {
		a := b.newArgs()
		a.ptr(ptr("AttnMixBackward", dv)).ptr(ptr("AttnMixBackward", pattern)).ptr(ptr("AttnMixBackward", dz)).
			int(nb).int(tq).int(tk).int(h).int(dh)
		grid, block := gridStride(dv.Len())
		b.launch("AttnMixBackward", b.k.attnMixBackwardDV, grid, block, &a)
	}
	return dpattern, dv
}

// ConcatLast implements engine.GradBackend.
func (b *Backend) ConcatLast(parts ...*engine.Tensor) *engine.Tensor {
	if len(parts) == 0 {
		panic("gpu: ConcatLast: no parts")
	}
	lead := parts[0].Shape()
	if len(lead) > 0 {
		lead = lead[:len(lead)-1]
	}
	total := 0
	for i, p := range parts {
		s := p.Shape()
		if len(s) == 0 || !slices.Equal(s[:len(s)-1], lead) {
			panic(fmt.Sprintf("gpu: ConcatLast: part %d %v does not match part 0 %v in its leading dimensions", i, p, parts[0]))
		}
		total += s[len(s)-1]
	}
	rows := engine.NumElements(lead)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("ConcatLast", append(slices.Clone(lead), total)...)
	off := 0
	for _, p := range parts {
		w := p.Dim(-1)
		b.copyCols("ConcatLast", out, total, off, p, w, 0, rows, w)
		off += w
	}
	return out
}

// ScatterRows implements engine.GradBackend. Repeated indices accumulate
// in float32 in the order of idx.
func (b *Backend) ScatterRows(x *engine.Tensor, idx []int, rows int) *engine.Tensor {
	if x.Rank() == 0 {
		panic(fmt.Sprintf("gpu: ScatterRows: x %v has no rows", x))
	}
	n, d := engine.SplitLast(x.Shape())
	if n != len(idx) {
		panic(fmt.Sprintf("gpu: ScatterRows: x %v has %d rows for %d indices", x, n, len(idx)))
	}
	if rows < 0 {
		panic(fmt.Sprintf("gpu: ScatterRows: %d rows", rows))
	}
	ids := make([]int32, len(idx))
	for i, j := range idx {
		if j < 0 || j >= rows {
			panic(fmt.Sprintf("gpu: ScatterRows: row %d of %d", j, rows))
		}
		ids[i] = int32(j)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("ScatterRows", rows, d)
	if out.Len() == 0 {
		return out
	}
	b.memset("ScatterRows", ptr("ScatterRows", out), 0, out.Len())
	if n == 0 {
		return out
	}
	idp, keep := b.uploadInt32("ScatterRows", ids)
	a := b.newArgs()
	a.ptr(ptr("ScatterRows", out)).ptr(ptr("ScatterRows", x)).ptr(idp).int(n).int(d)
	b.launch("ScatterRows", b.k.scatterAddRows, dim(ceilDiv(d, 256), 1, 1), dim(256, 1, 1), &a)
	runtime.KeepAlive(keep)
	return out
}
