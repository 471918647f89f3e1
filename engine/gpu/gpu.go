// Package gpu implements engine.Backend and engine.GradBackend on an NVIDIA
// GPU, with fx's own CUDA kernels (package kernels, compiled to PTX and
// JIT-compiled by the driver) launched through fx's own driver binding
// (package cuda). No CUDA toolkit is needed to build it; New fails with an
// error wrapping cuda.ErrNoDriver on a machine without the driver.
//
// # Memory
//
// A tensor's device memory comes from a caching pool, as PyTorch's
// allocator does: when a tensor becomes unreachable its block goes back to
// the pool (runtime.AddCleanup) and a later tensor of the same rounded size
// reuses it. Every kernel and copy runs on one stream, in order, so a block
// reused by a later op is never still in use by an earlier one. When the
// driver runs out of memory, the backend collects garbage, waits for the
// cleanups and returns the cached blocks to the driver before it tries
// again.
//
// # Errors
//
// Ops return tensors, not errors (engine.Backend). A failed allocation,
// launch or copy is kept, later ops are skipped, and Sync returns the first
// error with the op that met it.
//
// # Precision
//
// Every op computes in float32. MatMul runs FP32 FFMA kernels by default
// (within 1e-4 relative of the CPU backend on a model's logits); with
// Options.MatMul TF32 or BF16 products of more than eight rows run on
// tensor cores with TF32 or BF16 operands and FP32 accumulation (within
// 1e-2; BF16 within 2.5e-2, its 8-bit mantissa alone moving some models'
// logits by 2e-2). Results are
// deterministic for a given device and kernel choice: no kernel uses
// atomics, and a reduction split across blocks (split-K) writes partial
// sums that one more kernel adds in a fixed order.
package gpu

import (
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// Precision selects the arithmetic of MatMul.
type Precision int

const (
	// FP32 multiplies in float32 with FFMA: the exact path.
	FP32 Precision = iota
	// TF32 multiplies on tensor cores with TF32 operands (10-bit mantissa)
	// and float32 accumulation.
	TF32
	// BF16 multiplies on tensor cores with bfloat16 operands (8-bit
	// mantissa) and float32 accumulation; each weight is converted to
	// BF16 once, on its first product (matmul_bf16.go).
	BF16
)

// String returns "fp32", "tf32" or "bf16".
func (p Precision) String() string {
	switch p {
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return "fp32"
}

// Options configures New.
type Options struct {
	// Ordinal is the CUDA device index.
	Ordinal int
	// MatMul selects MatMul's arithmetic.
	MatMul Precision
	// Poison fills every new tensor with NaN before the op writes it, so
	// that a test finds any element a kernel leaves unwritten.
	Poison bool
}

// Backend runs fx's ops on one GPU. Its methods may be called from several
// goroutines; they are serialised.
type Backend struct {
	opts   Options
	name   string
	sms    int // the device's multiprocessor count
	ctx    *cuda.Context
	stream *cuda.Stream
	k      kernelSet
	bf16   bf16Kernels   // matmul_bf16.go
	rec    recordKernels // record.go
	pool   *pool

	mu        sync.Mutex // guards the fields below
	args      cuda.Args
	err       error
	launches  int64
	toHost    int64    // bytes copied to the host (ToHost, ToHostAsync, SketchRows)
	fromHost  int64    // bytes copied from the host (FromHost, uploads)
	capturing *capture // graph.go; nil unless Capture is recording
}

// New opens the CUDA driver, makes device opts.Ordinal's primary context
// current, and loads fx's kernels.
func New(opts Options) (*Backend, error) {
	drv, err := cuda.Load()
	if err != nil {
		return nil, err
	}
	n, err := drv.DeviceCount()
	if err != nil {
		return nil, err
	}
	if opts.Ordinal < 0 || opts.Ordinal >= n {
		return nil, fmt.Errorf("gpu: device %d: this machine has %d CUDA device(s)", opts.Ordinal, n)
	}
	dev, err := drv.Device(opts.Ordinal)
	if err != nil {
		return nil, err
	}
	devName, err := dev.Name()
	if err != nil {
		return nil, err
	}
	sms, err := dev.Attribute(cuda.AttrMultiprocessorCount)
	if err != nil {
		return nil, err
	}
	ctx, err := dev.RetainPrimaryContext()
	if err != nil {
		return nil, err
	}
	b := &Backend{opts: opts, ctx: ctx, sms: sms, name: fmt.Sprintf("cuda:%d %s", opts.Ordinal, devName)}
	if opts.MatMul != FP32 {
		b.name += " " + opts.MatMul.String()
	}
	if b.stream, err = ctx.NewStream(); err != nil {
		ctx.Close()
		return nil, err
	}
	if err := b.k.load(ctx); err != nil {
		b.stream.Close()
		ctx.Close()
		return nil, err
	}
	if err := b.loadMore(ctx); err != nil {
		b.stream.Close()
		ctx.Close()
		return nil, err
	}
	_, total, err := ctx.MemInfo()
	if err != nil {
		b.Close()
		return nil, err
	}
	b.pool = newPool(ctx, total/8)
	return b, nil
}

// Close waits for queued work and releases the stream and the context.
// Tensors of the backend must not be used afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.stream.Synchronize()
	b.rec.close()
	if b.pool != nil {
		b.pool.drain()
	}
	if e := b.stream.Close(); err == nil {
		err = e
	}
	if e := b.ctx.Close(); err == nil {
		err = e
	}
	return err
}

// Name implements engine.Backend: "cuda:0 NVIDIA H100 80GB HBM3", with
// " tf32" or " bf16" when MatMul runs on tensor cores.
func (b *Backend) Name() string { return b.name }

// Launches returns the number of kernels launched so far.
func (b *Backend) Launches() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.launches
}

// Transferred returns the bytes copied so far between the host and the
// device, each way: what a workload costs the PCIe or NVLink-C2C link
// beside its kernels.
func (b *Backend) Transferred() (toHost, fromHost int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.toHost, b.fromHost
}

// Context returns the CUDA context the backend runs in.
func (b *Backend) Context() *cuda.Context { return b.ctx }

// Stream returns the stream every op of the backend is queued on.
func (b *Backend) Stream() *cuda.Stream { return b.stream }

// buffer is a tensor's device memory: a block of the pool, or the start
// of another buffer's (a view: parent keeps that block alive).
type buffer struct {
	ptr    cuda.DevicePtr
	size   int // the block's size in bytes, rounded by the pool
	parent *buffer
}

// ptr returns t's device address; it panics for a host tensor, which a
// caller passed to the wrong backend.
func ptr(op string, t *engine.Tensor) cuda.DevicePtr {
	if t == nil {
		return 0
	}
	buf, ok := t.Device().(*buffer)
	if !ok {
		panic(fmt.Sprintf("gpu: %s: %v is not a tensor of the gpu backend", op, t))
	}
	if buf == nil {
		return 0
	}
	return buf.ptr
}

// must panics with err, behind the backend's prefix, unless it is nil: an
// engine.Check function's report of operands that an op cannot take.
func must(err error) {
	if err != nil {
		panic("gpu: " + err.Error())
	}
}

// fail keeps the first error met; b.mu is held. While Capture records,
// the error fails the capture, not the backend.
func (b *Backend) fail(op string, err error) {
	if c := b.capturing; c != nil {
		if c.err == nil {
			c.err = fmt.Errorf("%s: %w", op, err)
		}
		return
	}
	if b.err == nil {
		b.err = fmt.Errorf("gpu: %s: %w", op, err)
	}
}

// alloc returns a new device tensor of shape, poisoned with NaN when the
// options ask; b.mu is held. After an error it returns a tensor without
// memory, which later ops skip.
func (b *Backend) alloc(op string, shape ...int) *engine.Tensor {
	return engine.NewDevice(b.allocBytes(op, 4*engine.NumElements(shape), b.opts.Poison), shape...)
}

// allocBytes returns a pool block of at least n bytes; b.mu is held.
// While Capture records, the block belongs to the graph (captureAlloc)
// and is not poisoned.
func (b *Backend) allocBytes(op string, n int, poison bool) *buffer {
	if n == 0 || b.err != nil {
		return nil
	}
	if b.capturing != nil {
		return b.captureAlloc(n)
	}
	buf, err := b.pool.get(n)
	if err != nil {
		b.fail(op, err)
		return nil
	}
	if poison {
		b.memset(op, buf.ptr, 0x7fc00000, n/4)
	}
	return buf
}

// allocLasting is allocBytes for memory that outlives the op that makes
// it (a workspace, a converted weight), which a graph must not own; while
// Capture records it fails the capture. b.mu is held.
func (b *Backend) allocLasting(op string, n int) *buffer {
	if b.capturing != nil {
		b.fail(op, fmt.Errorf("%d bytes of lasting memory asked for while capturing; run the ops once before Capture", n))
		return nil
	}
	return b.allocBytes(op, n, false)
}

// memset fills n 32-bit words at p with value; b.mu is held.
func (b *Backend) memset(op string, p cuda.DevicePtr, value uint32, n int) {
	if b.err != nil || n == 0 {
		return
	}
	if err := b.stream.MemsetD32(p, value, n); err != nil {
		b.fail(op, err)
	}
}

// upload copies n bytes at src to a new block; b.mu is held.
func (b *Backend) upload(op string, src unsafe.Pointer, n int) *buffer {
	buf := b.allocBytes(op, n, false)
	if buf == nil {
		return nil
	}
	if err := b.stream.CopyHtoD(buf.ptr, src, n); err != nil {
		b.fail(op, err)
		return nil
	}
	b.fromHost += int64(n)
	return buf
}

// uploadInt32 copies v to the device and returns its address (0 for an
// empty v); the block stays alive until the caller's op is queued, which
// is all the stream's order needs. b.mu is held.
func (b *Backend) uploadInt32(op string, v []int32) (cuda.DevicePtr, *buffer) {
	if len(v) == 0 {
		return 0, nil
	}
	buf := b.upload(op, unsafe.Pointer(&v[0]), 4*len(v))
	if buf == nil {
		return 0, nil
	}
	return buf.ptr, buf
}

// FromHost implements engine.Backend: it copies data to the device.
func (b *Backend) FromHost(data []float32, shape ...int) *engine.Tensor {
	if n := engine.NumElements(shape); n != len(data) {
		panic(fmt.Sprintf("gpu: FromHost: %d values for shape %v", len(data), shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var buf *buffer
	if len(data) > 0 {
		buf = b.upload("FromHost", unsafe.Pointer(&data[0]), 4*len(data))
	}
	return engine.NewDevice(buf, shape...)
}

// ToHost implements engine.Backend: it waits for the queued work and copies
// t to a new slice (t's own values for a host tensor). After an error it
// returns zeros; Sync reports the error.
func (b *Backend) ToHost(t *engine.Tensor) []float32 {
	if h := t.Host(); h != nil || t.Device() == nil {
		return h
	}
	out := make([]float32, t.Len())
	b.mu.Lock()
	defer b.mu.Unlock()
	p := ptr("ToHost", t)
	if b.err != nil || len(out) == 0 || p == 0 {
		return out
	}
	if err := b.stream.CopyDtoH(unsafe.Pointer(&out[0]), p, 4*len(out)); err != nil {
		b.fail("ToHost", err)
		return out
	}
	b.toHost += int64(4 * len(out))
	if err := b.stream.Synchronize(); err != nil {
		b.fail("ToHost", err)
	}
	return out
}

// Zeros implements engine.Backend.
func (b *Backend) Zeros(shape ...int) *engine.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.alloc("Zeros", shape...)
	b.memset("Zeros", ptr("Zeros", t), 0, t.Len())
	return t
}

// View implements engine.Backend: the view's buffer points at t's and
// keeps it alive.
func (b *Backend) View(t *engine.Tensor, shape ...int) *engine.Tensor {
	must(engine.CheckView(t, shape))
	parent, ok := t.Device().(*buffer)
	if !ok {
		panic(fmt.Sprintf("gpu: View: %v is not a tensor of the gpu backend", t))
	}
	if parent == nil || engine.NumElements(shape) == 0 {
		return engine.NewDevice((*buffer)(nil), shape...)
	}
	return engine.NewDevice(&buffer{ptr: parent.ptr, size: parent.size, parent: parent}, shape...)
}

// Sync implements engine.Backend: it waits for the queued work and returns
// the first error any op met.
func (b *Backend) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		if err := b.stream.Synchronize(); err != nil {
			b.fail("Sync", err)
		}
	}
	return b.err
}

// Timer measures device time between two points of the stream.
type Timer struct {
	b          *Backend
	start, end *cuda.Event
}

// StartTimer records an event on the stream; Stop records another and
// returns the device time between them.
func (b *Backend) StartTimer() (*Timer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start, err := b.ctx.NewEvent()
	if err != nil {
		return nil, err
	}
	end, err := b.ctx.NewEvent()
	if err != nil {
		start.Close()
		return nil, err
	}
	if err := start.Record(b.stream); err != nil {
		return nil, err
	}
	return &Timer{b: b, start: start, end: end}, nil
}

// Stop records the end event, waits for it and returns the elapsed device
// time. The timer cannot be used again.
func (t *Timer) Stop() (time.Duration, error) {
	t.b.mu.Lock()
	err := t.end.Record(t.b.stream)
	t.b.mu.Unlock()
	defer t.start.Close()
	defer t.end.Close()
	if err != nil {
		return 0, err
	}
	if err := t.end.Synchronize(); err != nil {
		return 0, err
	}
	return cuda.Elapsed(t.start, t.end)
}

// pool caches device blocks by rounded size.
type pool struct {
	ctx     *cuda.Context
	gcEvery int64 // bytes newly allocated from the driver between collections
	gcCount int   // blocks newly allocated from the driver between collections

	mu           sync.Mutex // guards the fields below; cleanups run on their own goroutine
	free         map[int][]cuda.DevicePtr
	sinceGC      int64
	sinceGCCount int
}

func newPool(ctx *cuda.Context, gcEvery int64) *pool {
	return &pool{ctx: ctx, gcEvery: max(gcEvery, 1<<30), gcCount: 256, free: map[int][]cuda.DevicePtr{}}
}

// roundSize rounds a request up to 512 bytes, or to 1 MiB above 1 MiB, so
// that the activations of repeated forwards fall into a few sizes.
func roundSize(n int) int {
	if n <= 1<<20 {
		return (n + 511) &^ 511
	}
	return (n + 1<<20 - 1) &^ (1<<20 - 1)
}

// get returns a block of at least n bytes that goes back to the pool when
// the returned buffer is unreachable.
func (p *pool) get(n int) (*buffer, error) {
	size := roundSize(n)
	p.mu.Lock()
	var dp cuda.DevicePtr
	if list := p.free[size]; len(list) > 0 {
		dp = list[len(list)-1]
		p.free[size] = list[:len(list)-1]
	}
	collect := false
	if dp == 0 {
		// A tensor's Go values are small, so the Go heap alone seldom
		// triggers a collection: collect after many bytes or many blocks
		// from the driver, so that dead tensors' blocks come back.
		p.sinceGC += int64(size)
		p.sinceGCCount++
		collect = p.sinceGC > p.gcEvery || p.sinceGCCount > p.gcCount
		if collect {
			p.sinceGC, p.sinceGCCount = 0, 0
		}
	}
	p.mu.Unlock()
	if collect {
		runtime.GC() // unreachable tensors' blocks come back through their cleanups
	}
	if dp == 0 {
		var err error
		if dp, err = p.ctx.Alloc(size); err != nil {
			dp, err = p.retry(size)
			if err != nil {
				return nil, fmt.Errorf("allocating %d bytes: %w", size, err)
			}
		}
	}
	buf := &buffer{ptr: dp, size: size}
	runtime.AddCleanup(buf, p.put, block{dp, size})
	return buf, nil
}

// block is a pool block's address and size, the argument of its cleanup.
type block struct {
	ptr  cuda.DevicePtr
	size int
}

// put returns a block to the pool.
func (p *pool) put(b block) {
	p.mu.Lock()
	p.free[b.size] = append(p.free[b.size], b.ptr)
	p.mu.Unlock()
}

// retry collects garbage, waits briefly for the cleanups to return their
// blocks, frees every cached block and allocates again.
func (p *pool) retry(size int) (cuda.DevicePtr, error) {
	runtime.GC()
	for range 20 {
		p.mu.Lock()
		found := len(p.free[size]) > 0
		p.mu.Unlock()
		if found {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.mu.Lock()
	if list := p.free[size]; len(list) > 0 {
		dp := list[len(list)-1]
		p.free[size] = list[:len(list)-1]
		p.mu.Unlock()
		return dp, nil
	}
	p.mu.Unlock()
	if err := p.ctx.Synchronize(); err != nil {
		return 0, err
	}
	p.drain()
	return p.ctx.Alloc(size)
}

// drain returns every cached block to the driver.
func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for size, list := range p.free {
		for _, dp := range list {
			p.ctx.Free(dp)
		}
		delete(p.free, size)
	}
}
