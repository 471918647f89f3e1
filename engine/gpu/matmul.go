package gpu

import (
	"fmt"

	"github.com/modelforensics/fx/engine"
)

// MatMul implements engine.Backend. Products of at most eight rows (a
// decode step) run a kernel that reads w once; larger ones the tiled FP32
// kernel, or the TF32 tensor-core kernel when Options.MatMul asks.
func (b *Backend) MatMul(x, w, bias *engine.Tensor, transW bool) *engine.Tensor {
	if x.Rank() < 1 || w.Rank() != 2 {
		panic(fmt.Sprintf("gpu: MatMul: x %v, w %v", x, w))
	}
	m, k := lastDim(x.Shape())
	n, wk := w.Dim(1), w.Dim(0)
	if transW {
		n, wk = wk, n
	}
	if wk != k {
		panic(fmt.Sprintf("gpu: MatMul: x %v, w %v (transW %v): inner dimensions differ", x, w, transW))
	}
	if bias != nil && (bias.Rank() != 1 || bias.Len() != n) {
		panic(fmt.Sprintf("gpu: MatMul: bias %v for %d outputs", bias, n))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("MatMul", withLast(x.Shape(), n)...)
	if out.Len() == 0 {
		return out
	}
	if k == 0 { // x·w is 0; the bias remains
		b.memset("MatMul", ptr("MatMul", out), 0, out.Len())
		if bias != nil {
			a := b.newArgs()
			a.ptr(ptr("MatMul", out)).ptr(ptr("MatMul", out)).ptr(ptr("MatMul", bias)).int(out.Len()).int(n)
			grid, block := gridStride(out.Len())
			b.launch("MatMul", b.k.add, grid, block, &a)
		}
		return out
	}
	a := b.newArgs()
	a.ptr(ptr("MatMul", out)).ptr(ptr("MatMul", x)).ptr(ptr("MatMul", w)).ptr(ptr("MatMul", bias)).
		int(m).int(n).int(k).bool(transW)
	switch {
	case m <= 8 && !transW:
		b.launch("MatMul", b.k.matmulSkinnyF32, dim(ceilDiv(n, 256), 1, 1), dim(256, 1, 1), &a)
	case m <= 8:
		b.launch("MatMul", b.k.matmulSkinnyF32, dim(ceilDiv(n, 8), 1, 1), dim(256, 1, 1), &a)
	case b.opts.MatMul == TF32:
		b.launch("MatMul", b.k.matmulTF32, dim(ceilDiv(n, 64), ceilDiv(m, 64), 1), dim(128, 1, 1), &a)
	default:
		b.launch("MatMul", b.k.matmulF32, dim(ceilDiv(n, 128), ceilDiv(m, 128), 1), dim(256, 1, 1), &a)
	}
	return out
}
