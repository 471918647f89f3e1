package gpu

import (
	"runtime"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// LayerNormBackward implements engine.GradBackend.
func (b *Backend) LayerNormBackward(x, gamma, dy *engine.Tensor, eps float32) *engine.Tensor {
	must(engine.CheckLayerNormBackward(x, gamma, dy))
	rows, d := engine.SplitLast(x.Shape())
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
	must(engine.CheckGELUBackward(x, dy, kind))
	if kind == engine.GELUErf {
		return b.binary("GELUBackward", b.k.geluErfBackward, x, dy)
	}
	return b.binary("GELUBackward", b.k.geluTanhBackward, x, dy)
}

// TanhBackward implements engine.GradBackend.
func (b *Backend) TanhBackward(y, dy *engine.Tensor) *engine.Tensor {
	must(engine.CheckTanhBackward(y, dy))
	return b.binary("TanhBackward", b.k.tanhBackward, y, dy)
}

// binary runs an elementwise kernel f(out, x, dy, n) of two tensors that
// the op's check found of one shape.
func (b *Backend) binary(op string, f cuda.Function, x, dy *engine.Tensor) *engine.Tensor {
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
	must(engine.CheckSoftmaxBackward(y, dy))
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
	dims, err := engine.CheckAttnScoresBackward(dscores, q, k)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
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
	dims, err := engine.CheckAttnMixBackward(dz, pattern, v)
	must(err)
	nb, tq, tk, h, dh := dims.B, dims.Tq, dims.Tk, dims.H, dims.Dh
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
	shape, err := engine.CheckConcatLast(parts...)
	must(err)
	rows, total := engine.SplitLast(shape)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("ConcatLast", shape...)
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
	must(engine.CheckScatterRows(x, idx, rows))
	n, d := engine.SplitLast(x.Shape())
	ids := int32s(idx)
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
