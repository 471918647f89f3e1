package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"weak"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// mmBF16 is fx_matmul_bf16 (kernels/matmul_bf16.cu): BF16 tensor cores,
// 128×128 block tiles, cp.async stages in dynamic shared memory, split-K.
// It is not in matmul.go's list: MatMul reaches it only through
// matmulBF16.
const mmBF16 matmulKernel = 16

// bf16SharedBytes is fx_matmul_bf16's dynamic shared memory
// (FX_MATMUL_BF16_SHARED): three stages of a 128×40 FP32 x tile and a
// 128×40 BF16 W tile.
const bf16SharedBytes = 3 * (128*40*4 + 128*40*2)

// bf16Kernels holds the kernels of kernels/matmul_bf16.cu and the BF16
// copies of the weights MatMul has multiplied in BF16 mode.
type bf16Kernels struct {
	pack, matmul cuda.Function
	// tile128 is whether fx_matmul_bf16 may have its bf16SharedBytes of
	// dynamic shared memory on this device; without it BF16 mode runs the
	// FP32 kernels.
	tile128 bool
	cache   *bf16Cache
}

// load looks up the kernels in the loaded modules and raises
// fx_matmul_bf16's shared-memory limit where the device allows.
func (k *bf16Kernels) load(ctx *cuda.Context, mods []*cuda.Module) error {
	var err error
	if k.pack, err = moduleFunction(mods, "matmul_bf16", "fx_bf16_pack_weight"); err != nil {
		return err
	}
	if k.matmul, err = moduleFunction(mods, "matmul_bf16", "fx_matmul_bf16"); err != nil {
		return err
	}
	k.cache = &bf16Cache{m: map[weak.Pointer[buffer]][]*bf16Weight{}}
	if optin, err := ctx.Device().Attribute(cuda.AttrMaxSharedMemoryPerBlockOptin); err == nil && optin >= bf16SharedBytes {
		if err := k.matmul.SetMaxDynamicSharedMemory(bf16SharedBytes); err != nil {
			return err
		}
		k.tile128 = true
	}
	return nil
}

// moduleFunction returns kernel name of the loaded module of package
// kernels called module.
func moduleFunction(mods []*cuda.Module, module, name string) (cuda.Function, error) {
	for _, m := range mods {
		if m.Name() == module {
			return m.Function(name)
		}
	}
	return cuda.Function{}, fmt.Errorf("gpu: kernel %s: no module %s among package kernels' modules", name, module)
}

// bf16Weight is one weight's BF16 copy: wb [n, kp] (k contiguous, kp = k
// rounded up to a multiple of 8, zeros after k), as fx_bf16_pack_weight
// writes it from w [k, n] or, with transW, [n, k].
type bf16Weight struct {
	buf       *buffer
	n, k, kp  int
	transW    bool
	converted bool
}

// bf16Cache maps a weight's device memory to its BF16 copies (one per
// shape and layout it was multiplied with: GPT-2's backward pass reads its
// weights transposed). Keys are weak, so the cache does not keep a weight
// alive; a cleanup on the weight's buffer drops its entry, and the BF16
// copies go back to the pool with it.
type bf16Cache struct {
	mu sync.Mutex // cleanups run on their own goroutine
	m  map[weak.Pointer[buffer]][]*bf16Weight
}

// get returns w's BF16 copy for an [n, k] product (transW as MatMul's),
// new and not yet converted on the first call; b.mu is held. After an
// allocation error the copy has no buffer.
func (c *bf16Cache) get(b *Backend, w *buffer, n, k int, transW bool) *bf16Weight {
	key := weak.Make(w)
	c.mu.Lock()
	defer c.mu.Unlock()
	list, seen := c.m[key]
	for _, e := range list {
		if e.n == n && e.k == k && e.transW == transW {
			return e
		}
	}
	kp := (k + 7) &^ 7
	e := &bf16Weight{buf: b.allocLasting("MatMul", 2*n*kp), n: n, k: k, kp: kp, transW: transW}
	if e.buf == nil {
		return e // the error is kept
	}
	c.m[key] = append(list, e)
	if !seen {
		runtime.AddCleanup(w, c.drop, key)
	}
	return e
}

// drop forgets the BF16 copies of the weight whose buffer key names.
func (c *bf16Cache) drop(key weak.Pointer[buffer]) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// invalidate forgets t's BF16 copies: t's values change (Edit).
func (c *bf16Cache) invalidate(t *engine.Tensor) {
	if c == nil {
		return
	}
	if buf, ok := t.Device().(*buffer); ok && buf != nil {
		c.drop(weak.Make(buf))
	}
}

// planMatMulBF16 is the plan of an [m, k]·[k, n] product (m > 8) on
// fx_matmul_bf16: 128×128 tiles, K split in chunks of at least 64 (a
// multiple of 32) when the grid has fewer blocks than SMs, as for
// fx_matmul_tf32.
func planMatMulBF16(m, n, k, sms int) matmulPlan {
	sms = max(sms, 1)
	bx, by := ceilDiv(n, 128), ceilDiv(m, 128)
	kchunk, splits := splitK(k, ceilDiv(sms, bx*by), 32, 64, maxSplits)
	return matmulPlan{kernel: mmBF16, grid: dim(bx, by, splits), block: dim(256, 1, 1), shared: bf16SharedBytes,
		kchunk: kchunk, splits: splits, partial: splits > 1}
}

// useBF16 reports whether MatMul runs an [m, ·]·[·, ·] product on BF16
// tensor cores: in BF16 mode, for more than eight rows (a decode step
// runs the skinny FP32 kernel, bound by reading w), on a device that
// gives fx_matmul_bf16 its shared memory.
func (b *Backend) useBF16(m int) bool {
	return b.opts.MatMul == BF16 && m > skinnyMaxM && b.bf16.tile128
}

// matmulBF16 queues y = x·W + bias on fx_matmul_bf16, converting w to
// BF16 first if this is its first BF16 product; b.mu is held.
func (b *Backend) matmulBF16(yp, xp cuda.DevicePtr, w *engine.Tensor, bp cuda.DevicePtr, m, n, k int, transW bool) {
	wbuf, ok := w.Device().(*buffer)
	if !ok || wbuf == nil || b.err != nil {
		return
	}
	e := b.bf16.cache.get(b, wbuf, n, k, transW)
	if e.buf == nil {
		return // the error is kept
	}
	if !e.converted && b.capturing != nil {
		b.fail("MatMul", errors.New("a weight's BF16 copy would be made while capturing; run the ops once before Capture"))
		return
	}
	b.keep(e.buf)
	if !e.converted {
		a := b.newArgs()
		a.ptr(e.buf.ptr).ptr(wbuf.ptr).int(k).int(n).int(e.kp).bool(transW)
		b.launch("MatMul", b.bf16.pack, dim(ceilDiv(e.kp, 32), ceilDiv(n, 32), 1), dim(256, 1, 1), &a)
		e.converted = b.err == nil
	}
	p := planMatMulBF16(m, n, k, b.sms)
	dst, kbias := yp, bp
	if p.partial {
		if dst = b.matmulWorkspace(4 * p.splits * m * n); dst == 0 {
			return // the error is kept
		}
		kbias = 0
	}
	a := b.newArgs()
	a.ptr(dst).ptr(xp).ptr(e.buf.ptr).ptr(kbias).int(m).int(n).int(k).int(e.kp).int(p.kchunk)
	b.launchShared("MatMul", b.bf16.matmul, p.grid, p.block, p.shared, &a)
	if p.partial {
		r := b.newArgs()
		r.ptr(yp).ptr(dst).ptr(bp).int(m).int(n).int(p.splits)
		grid, block := gridStride(m * n)
		b.launch("MatMul", b.k.matmulSplitKReduce, grid, block, &r)
	}
}
