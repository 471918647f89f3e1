package gpu

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// errClosed is what a Pending returns when the backend closed before it
// was waited for.
var errClosed = errors.New("gpu: the backend was closed before the copy was waited for")

// recordKernels holds the kernels of kernels/record.cu and the pinned host
// buffers and events of asynchronous copies (ToHostAsync, SketchRows),
// reused from one copy to the next (cuMemHostAlloc costs far more than a
// copy of a hook's activation) and freed by Close.
type recordKernels struct {
	rows, f16 cuda.Function

	mu     sync.Mutex // guards the fields below; Pending.Wait runs without b.mu
	free   map[int][]*cuda.HostBuffer
	all    []*cuda.HostBuffer
	events []*cuda.Event
	closed bool
}

// loadMore looks up the kernels of the modules kernelSet.load does not
// list (matmul_bf16.cu, record.cu) in the modules it loaded.
func (b *Backend) loadMore(ctx *cuda.Context) error {
	if err := b.bf16.load(ctx, b.k.modules); err != nil {
		return err
	}
	var err error
	if b.rec.rows, err = moduleFunction(b.k.modules, "record", "fx_record_rows"); err != nil {
		return err
	}
	b.rec.f16, err = moduleFunction(b.k.modules, "record", "fx_record_f16")
	b.rec.free = map[int][]*cuda.HostBuffer{}
	return err
}

// pinned returns a pinned host buffer of at least n bytes and an event;
// b.mu is held.
func (b *Backend) pinned(op string, n int) (*cuda.HostBuffer, *cuda.Event) {
	k := &b.rec
	size := roundSize(n)
	k.mu.Lock()
	defer k.mu.Unlock()
	var hb *cuda.HostBuffer
	if list := k.free[size]; len(list) > 0 {
		hb, k.free[size] = list[len(list)-1], list[:len(list)-1]
	} else {
		var err error
		if hb, err = b.ctx.AllocHost(size); err != nil {
			b.fail(op, err)
			return nil, nil
		}
		k.all = append(k.all, hb)
	}
	var ev *cuda.Event
	if len(k.events) > 0 {
		ev, k.events = k.events[len(k.events)-1], k.events[:len(k.events)-1]
	} else {
		var err error
		if ev, err = b.ctx.NewEvent(); err != nil {
			k.free[size] = append(k.free[size], hb)
			b.fail(op, err)
			return nil, nil
		}
	}
	return hb, ev
}

// release returns a pinned buffer and its event for reuse; k.mu is held.
func (k *recordKernels) release(hb *cuda.HostBuffer, ev *cuda.Event) {
	k.free[hb.Len()] = append(k.free[hb.Len()], hb)
	k.events = append(k.events, ev)
}

// close frees every pinned buffer and event, after the stream is
// synchronized; Pendings not yet waited for then fail with errClosed.
func (k *recordKernels) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, hb := range k.all {
		hb.Free()
	}
	for _, ev := range k.events {
		ev.Close()
	}
	k.all, k.free, k.events, k.closed = nil, nil, nil, true
}

// asyncCopy is a Pending's state: the pinned buffer the copies go to and
// the event recorded after them.
type asyncCopy struct {
	b  *Backend
	hb *cuda.HostBuffer
	ev *cuda.Event
}

// start queues copies of each (device address, bytes) part, one after
// the other, into one pinned buffer and records the event; b.mu is held.
func (c *asyncCopy) start(op string, parts ...copyPart) {
	b := c.b
	total := 0
	for _, p := range parts {
		total += p.bytes
	}
	if b.err != nil || total == 0 {
		return
	}
	if c.hb, c.ev = b.pinned(op, total); c.hb == nil {
		return
	}
	off := 0
	for _, p := range parts {
		if p.bytes == 0 {
			continue
		}
		if err := b.stream.CopyDtoH(unsafe.Add(c.hb.Pointer(), off), p.src, p.bytes); err != nil {
			b.fail(op, err)
			return
		}
		off += p.bytes
		b.toHost += int64(p.bytes)
	}
	if err := c.ev.Record(b.stream); err != nil {
		b.fail(op, err)
	}
}

// copyPart is one device range of an asyncCopy.
type copyPart struct {
	src   cuda.DevicePtr
	bytes int
}

// wait waits for the copies and calls read on the pinned bytes (nil when
// nothing was copied), then releases the buffer. It returns the backend's
// first error, if any.
func (c *asyncCopy) wait(read func(p unsafe.Pointer)) error {
	b := c.b
	if c.ev != nil {
		err := c.ev.Synchronize()
		b.rec.mu.Lock()
		if b.rec.closed {
			b.rec.mu.Unlock()
			return errClosed
		}
		if err == nil {
			read(c.hb.Pointer())
		}
		b.rec.release(c.hb, c.ev)
		b.rec.mu.Unlock()
		c.hb, c.ev = nil, nil
		if err != nil {
			return fmt.Errorf("gpu: waiting for a copy to the host: %w", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// hostCopy is ToHostAsync's Pending.
type hostCopy struct {
	asyncCopy
	n    int
	done []float32 // a host tensor's values
}

// Wait implements engine.Pending.
func (c *hostCopy) Wait() ([]float32, error) {
	if c.done != nil {
		return c.done, nil
	}
	out := make([]float32, c.n)
	err := c.wait(func(p unsafe.Pointer) { copy(out, unsafe.Slice((*float32)(p), c.n)) })
	return out, err
}

// ToHostAsync implements engine.HostCopier: a copy into pinned host memory
// on the backend's stream, behind the queued work, and an event after it;
// Wait waits for the event. On the one stream, later kernels that change t
// in place (Edit) or reuse its memory run after the copy. After an error
// Wait returns zeros and the error.
func (b *Backend) ToHostAsync(t *engine.Tensor) engine.Pending[[]float32] {
	if h := t.Host(); h != nil || t.Device() == nil {
		return &hostCopy{asyncCopy: asyncCopy{b: b}, done: h, n: t.Len()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &hostCopy{asyncCopy: asyncCopy{b: b}, n: t.Len()}
	c.start("ToHostAsync", copyPart{ptr("ToHostAsync", t), 4 * t.Len()})
	return c
}

// sketchCopy is SketchRows' Pending.
type sketchCopy struct {
	asyncCopy
	rows, n int
	f16     bool
}

// Wait implements engine.Pending.
func (c *sketchCopy) Wait() (*engine.RowSketch, error) {
	s := &engine.RowSketch{Sum: make([]float64, c.rows), SumSq: make([]float64, c.rows), Min: make([]float32, c.rows),
		Max: make([]float32, c.rows), Hash: make([]uint64, c.rows)}
	if c.f16 {
		s.F16 = make([]uint16, c.rows*c.n)
	}
	err := c.wait(func(p unsafe.Pointer) {
		words := unsafe.Slice((*uint64)(p), 4*c.rows)
		for r := range c.rows {
			w := words[4*r : 4*r+4]
			s.Sum[r], s.SumSq[r] = math.Float64frombits(w[0]), math.Float64frombits(w[1])
			s.Min[r], s.Max[r] = math.Float32frombits(uint32(w[2])), math.Float32frombits(uint32(w[2]>>32))
			s.Hash[r] = w[3]
		}
		if c.f16 {
			copy(s.F16, unsafe.Slice((*uint16)(unsafe.Add(p, 32*c.rows)), c.rows*c.n))
		}
	})
	return s, err
}

// SketchRows implements engine.RowSketcher with kernels/record.cu:
// fx_record_rows (32 bytes per row: the float64 sums, min and max, the
// hash) and, with f16, fx_record_f16 (2 bytes per value), both into
// scratch device memory, then one asynchronous copy of both into pinned
// host memory, as ToHostAsync.
func (b *Backend) SketchRows(x *engine.Tensor, rows int, f16 bool) engine.Pending[*engine.RowSketch] {
	if rows < 1 || x.Len() < rows || x.Len()%rows != 0 {
		panic(fmt.Sprintf("gpu: SketchRows: %v as %d rows", x, rows))
	}
	n := x.Len() / rows
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &sketchCopy{asyncCopy: asyncCopy{b: b}, rows: rows, n: n, f16: f16}
	xp := ptr("SketchRows", x)
	if xp == 0 {
		return c
	}
	stats := b.allocBytes("SketchRows", 32*rows, false)
	if stats == nil {
		return c
	}
	a := b.newArgs()
	a.ptr(stats.ptr).ptr(xp).int(rows).int(n)
	b.launch("SketchRows", b.rec.rows, dim(min(rows, 65535), 1, 1), dim(256, 1, 1), &a)
	parts := []copyPart{{stats.ptr, 32 * rows}}
	if f16 {
		half := b.allocBytes("SketchRows", 2*rows*n, false)
		if half == nil {
			return c
		}
		h := b.newArgs()
		h.ptr(half.ptr).ptr(xp).int(rows * n)
		grid, block := gridStride(rows * n)
		b.launch("SketchRows", b.rec.f16, grid, block, &h)
		parts = append(parts, copyPart{half.ptr, 2 * rows * n})
	}
	// The scratch blocks go back to the pool when unreachable; on the one
	// stream a reuse runs after these copies.
	c.start("SketchRows", parts...)
	return c
}

var (
	_ engine.HostCopier  = (*Backend)(nil)
	_ engine.RowSketcher = (*Backend)(nil)
)
