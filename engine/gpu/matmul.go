package gpu

import (
	"fmt"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// matmulKernel names the kernel of package kernels (matmul.cu) a plan
// launches.
type matmulKernel int

const (
	// mmSkinny is fx_matmul_skinny_partial: M <= 8, split-K partial sums
	// that read w once.
	mmSkinny matmulKernel = iota
	// mmF32 is fx_matmul_f32: FP32, 128×128 block tiles.
	mmF32
	// mmF32Tile64 is fx_matmul_f32_64: FP32, 64×64 block tiles, split-K.
	mmF32Tile64
	// mmTF32 is fx_matmul_tf32: TF32 tensor cores, 128×128 block tiles,
	// cp.async stages in dynamic shared memory, split-K.
	mmTF32
	// mmTF32Tile64 is fx_matmul_tf32_64: TF32 tensor cores, 64×64 block
	// tiles, split-K; for devices that cannot give fx_matmul_tf32 its
	// shared memory.
	mmTF32Tile64
)

func (k matmulKernel) String() string {
	switch k {
	case mmSkinny:
		return "skinny"
	case mmF32:
		return "f32"
	case mmF32Tile64:
		return "f32_64"
	case mmTF32:
		return "tf32"
	case mmTF32Tile64:
		return "tf32_64"
	}
	return fmt.Sprintf("matmulKernel(%d)", int(k))
}

// Launch geometry of the matmul kernels (see each kernel's comment in
// kernels/matmul.cu).
const (
	skinnyMaxM        = 8   // SK_MAXM: rows of the skinny kernel
	skinnyColsKN      = 128 // SK_NB: columns per block, w [K, N]
	skinnyColsNK      = 32  // SK_WARPS·SK_NW: columns per block, w [N, K]
	skinnyBlocksPerSM = 2   // skinny grids aim at 2 blocks per SM: all resident at once
	tileBlocksPerSM   = 2   // 64×64 grids aim at 2 blocks per SM
	maxSplits         = 64  // tiled split-K: at most this many partial sums
	// tf32SharedBytes is fx_matmul_tf32's dynamic shared memory
	// (FX_MATMUL_TF32_SHARED): three stages of a 128×36 x tile and a
	// 128×36 (or 32×136) W tile of 4-byte words.
	tf32SharedBytes = 3 * (128*36 + 128*36) * 4
)

// matmulPlan is how MatMul computes an [m, k]·[k, n] product: one launch of
// kernel, which writes either the output (with the bias) or, when partial,
// splits partial sums over chunks of kchunk values of k (the last one
// shorter) that fx_matmul_splitk_reduce then adds in order, with the bias.
type matmulPlan struct {
	kernel      matmulKernel
	grid, block cuda.Dim3
	shared      int  // dynamic shared memory, bytes
	kchunk      int  // k per split; k itself for one split
	splits      int  // ceil(k/kchunk)
	partial     bool // kernel writes partial sums [splits, m, n] without the bias
}

// planMatMul picks the kernel and its geometry for an [m, k]·[k, n]
// product (m, n, k >= 1) on a device of sms multiprocessors; tf32Tile128
// says whether fx_matmul_tf32's shared memory could be had. The rules:
//
//   - m <= 8 (a decode step), either precision: fx_matmul_skinny_partial,
//     which is bound by reading w; K is split so that the grid has about
//     2 blocks per SM (as many as fit at once: each thread then keeps its
//     8 16-byte loads in flight once), in chunks of at least 64 (w [K, N]:
//     8 rows per warp) or 128 (w [N, K]) values of k. Its partial sums are always reduced (with the bias),
//     except for one split and no bias, when the kernel writes the output.
//   - FP32: the 128×128 fx_matmul_f32 when its grid has at least one block
//     per SM (it is the fastest per block, and good at large m); else the
//     64×64 fx_matmul_f32_64, with K split in chunks of at least 64 when
//     its grid has fewer than 2 blocks per SM.
//   - TF32: the 128×128 fx_matmul_tf32, with K split in chunks of at least
//     64 when its grid has fewer blocks than SMs (its tensor-core
//     throughput per block is several times the 64×64 kernel's); without
//     its shared memory the 64×64 fx_matmul_tf32_64, split like
//     fx_matmul_f32_64.
//
// A plan depends only on its arguments, and each kernel sums every output
// in a fixed order, so results are deterministic for a given device.
func planMatMul(m, n, k int, transW bool, prec Precision, sms int, tf32Tile128 bool) matmulPlan {
	sms = max(sms, 1)
	if m <= skinnyMaxM {
		cols, g, kmin := skinnyColsKN, 8, 64
		if transW {
			cols, g, kmin = skinnyColsNK, 128, 128
		}
		cb := ceilDiv(n, cols)
		kchunk, splits := splitK(k, ceilDiv(skinnyBlocksPerSM*sms, cb), g, kmin, 1<<16-1)
		return matmulPlan{kernel: mmSkinny, grid: dim(cb, splits, 1), block: dim(256, 1, 1),
			kchunk: kchunk, splits: splits, partial: true}
	}
	bx128, by128 := ceilDiv(n, 128), ceilDiv(m, 128)
	bx64, by64 := ceilDiv(n, 64), ceilDiv(m, 64)
	tiled := func(kernel matmulKernel, bx, by, threads, shared, want, g int) matmulPlan {
		kchunk, splits := splitK(k, want, g, 64, maxSplits)
		return matmulPlan{kernel: kernel, grid: dim(bx, by, splits), block: dim(threads, 1, 1), shared: shared,
			kchunk: kchunk, splits: splits, partial: splits > 1}
	}
	if prec == TF32 {
		if tf32Tile128 {
			return tiled(mmTF32, bx128, by128, 256, tf32SharedBytes, ceilDiv(sms, bx128*by128), 32)
		}
		return tiled(mmTF32Tile64, bx64, by64, 128, 0, ceilDiv(tileBlocksPerSM*sms, bx64*by64), 32)
	}
	if bx128*by128 >= sms {
		return matmulPlan{kernel: mmF32, grid: dim(bx128, by128, 1), block: dim(256, 1, 1), kchunk: k, splits: 1}
	}
	return tiled(mmF32Tile64, bx64, by64, 128, 0, ceilDiv(tileBlocksPerSM*sms, bx64*by64), 16)
}

// splitK divides k into splits = ceil(k/kchunk) chunks for about want
// splits: kchunk is k/want rounded down to a multiple of g, but at least
// kmin (a multiple of g) and small enough for at most maxSplits splits
// (rounded up to a multiple of g). One split (kchunk = k) when want <= 1 or
// the chunk would cover k. Every split is non-empty.
func splitK(k, want, g, kmin, maxSplits int) (kchunk, splits int) {
	if want <= 1 || k <= kmin {
		return k, 1
	}
	c := max(k/want/g*g, kmin, ceilDiv(ceilDiv(k, maxSplits), g)*g)
	if c >= k {
		return k, 1
	}
	return c, ceilDiv(k, c)
}

// MatMul implements engine.Backend. planMatMul picks the kernel: a split-K
// kernel that reads w once for at most eight rows (a decode step), else
// tiled FP32 kernels, or the TF32 tensor-core kernels when Options.MatMul
// asks (BF16: matmulBF16, matmul_bf16.go); split-K partial sums go to a workspace the backend keeps
// (matmulWorkspace) and are added, in order, by fx_matmul_splitk_reduce.
func (b *Backend) MatMul(x, w, bias *engine.Tensor, transW bool) *engine.Tensor {
	m, n, k, err := engine.CheckMatMul(x, w, bias, transW)
	must(err)
	return b.matmul(x, w, bias, transW, actNone, m, n, k)
}

// The activations of a matmul's epilogue, as matmul.cu's act argument
// takes them (fx_gelu.h's FX_ACT_*).
const (
	actNone     = 0
	actGELUTanh = 1
	actGELUErf  = 2
)

// MatMulGELU implements engine.Backend: MatMul's kernels with the GELU in
// their epilogue, applied to each output as it is written (the tiled
// kernels, to the outputs each thread has just stored; with split-K or the
// skinny kernel, in fx_matmul_splitk_reduce_act), by the elementwise GELU
// kernel's code on the same float32 value: the bits of MatMul then GELU.
// The BF16 products and K = 0 run MatMul's launches, then the GELU kernel
// in place.
func (b *Backend) MatMulGELU(x, w, bias *engine.Tensor, transW bool, kind engine.Activation) *engine.Tensor {
	m, n, k, err := engine.CheckMatMulGELU(x, w, bias, transW, kind)
	must(err)
	act := actGELUTanh
	if kind == engine.GELUErf {
		act = actGELUErf
	}
	return b.matmul(x, w, bias, transW, act, m, n, k)
}

// matmul is MatMul with the epilogue's activation act, for operands that
// engine.CheckMatMul accepted with m, n and k.
func (b *Backend) matmul(x, w, bias *engine.Tensor, transW bool, act, m, n, k int) *engine.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.alloc("MatMul", engine.WithLast(x.Shape(), n)...)
	if out.Len() == 0 {
		return out
	}
	yp, xp, wp, bp := ptr("MatMul", out), ptr("MatMul", x), ptr("MatMul", w), ptr("MatMul", bias)
	if k == 0 { // x·w is 0; the bias remains
		b.memset("MatMul", yp, 0, out.Len())
		if bias != nil {
			a := b.newArgs()
			a.ptr(yp).ptr(yp).ptr(bp).int(out.Len()).int(n)
			grid, block := gridStride(out.Len())
			b.launch("MatMul", b.k.add, grid, block, &a)
		}
		b.activateInPlace(yp, out.Len(), act)
		return out
	}
	if b.useBF16(m) {
		b.matmulBF16(yp, xp, w, bp, m, n, k, transW)
		b.activateInPlace(yp, out.Len(), act)
		return out
	}
	p := planMatMul(m, n, k, transW, b.opts.MatMul, b.sms, b.k.matmulTF32Tile128)
	b.matmulLaunch(p, yp, xp, wp, bp, m, n, k, transW, act)
	return out
}

// activateInPlace applies act to the n values at y with the elementwise
// GELU kernels; b.mu is held.
func (b *Backend) activateInPlace(y cuda.DevicePtr, n, act int) {
	f := b.k.geluTanh
	switch act {
	case actNone:
		return
	case actGELUErf:
		f = b.k.geluErf
	}
	a := b.newArgs()
	a.ptr(y).ptr(y).int(n)
	grid, block := gridStride(n)
	b.launch("MatMul", f, grid, block, &a)
}

// matmulLaunch queues plan p's launches for y = act(x·W + bias) (bias 0
// for none); b.mu is held.
func (b *Backend) matmulLaunch(p matmulPlan, yp, xp, wp, bp cuda.DevicePtr, m, n, k int, transW bool, act int) {
	// dst gets what the kernel writes: the output, or partial sums in the
	// workspace that the reduction adds into the output, with the bias and
	// the activation.
	dst, kbias, kact := yp, bp, act
	reduce := p.partial && (p.splits > 1 || bp != 0 || act != actNone)
	if p.partial {
		kbias, kact = 0, actNone
	}
	if reduce {
		if dst = b.matmulWorkspace(4 * p.splits * m * n); dst == 0 {
			return // the error is kept
		}
	}
	a := b.newArgs()
	switch p.kernel {
	case mmSkinny:
		a.ptr(dst).ptr(xp).ptr(wp).int(m).int(n).int(k).bool(transW).int(p.kchunk)
		b.launch("MatMul", b.k.matmulSkinnyPartial, p.grid, p.block, &a)
	case mmF32:
		a.ptr(dst).ptr(xp).ptr(wp).ptr(kbias).int(m).int(n).int(k).bool(transW).int(kact)
		b.launch("MatMul", b.k.matmulF32, p.grid, p.block, &a)
	default:
		f := b.k.matmulF32Tile64
		if p.kernel == mmTF32 {
			f = b.k.matmulTF32
		} else if p.kernel == mmTF32Tile64 {
			f = b.k.matmulTF32Tile64
		}
		a.ptr(dst).ptr(xp).ptr(wp).ptr(kbias).int(m).int(n).int(k).bool(transW).int(p.kchunk).int(kact)
		b.launchShared("MatMul", f, p.grid, p.block, p.shared, &a)
	}
	if reduce {
		r := b.newArgs()
		r.ptr(yp).ptr(dst).ptr(bp).int(m).int(n).int(p.splits)
		grid, block := gridStride(m * n)
		if act == actNone {
			b.launch("MatMul", b.k.matmulSplitKReduce, grid, block, &r)
		} else {
			r.int(act)
			b.launch("MatMul", b.k.matmulSplitKReduceAct, grid, block, &r)
		}
	}
}

// matmulWorkspace returns at least n bytes of device memory for split-K
// partial sums; b.mu is held. The backend keeps one workspace and grows
// it: every kernel runs on the one stream, so a reuse by a later MatMul
// runs after the reduction that read it, and a replaced workspace goes
// back to the pool like any tensor's block. (A block from the pool for
// each call would come back only after a garbage collection, so in a loop
// nearly every call would wait for cuMemAlloc.) With Options.Poison the
// part used is filled with NaN first, so that a partial sum no kernel
// writes shows in the output.
func (b *Backend) matmulWorkspace(n int) cuda.DevicePtr {
	ws := b.k.matmulWorkspace
	if ws == nil || ws.size < n {
		if ws = b.allocLasting("MatMul", n); ws == nil {
			return 0
		}
		b.k.matmulWorkspace = ws
	}
	if b.opts.Poison && b.capturing == nil {
		b.memset("MatMul", ws.ptr, 0x7fc00000, n/4)
	}
	b.keep(ws)
	return ws.ptr
}
