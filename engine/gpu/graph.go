package gpu

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// Capture implements engine.Capturer: it records the ops that record
// queues as a CUDA graph (stream capture, thread-local mode, on the calling
// goroutine's OS thread, locked for it) and instantiates it, so that a
// replay is one cuGraphLaunch however many kernels the ops launch.
//
// The tensors the recorded ops return get blocks of the pool that belong
// to the graph until Graph.Close: no cleanup hands them back while the
// graph may still write them. No block is allocated from the driver
// during the capture (the driver forbids it on the capturing thread): the
// first call of record takes what the pool has cached and notes what it
// lacks; when it lacked anything, Capture allocates those blocks, drops
// that capture and records again.
//
// An op that fails while recording (a copy, a sync, a lasting allocation
// such as a larger split-K workspace or a weight's first BF16 copy) fails
// the capture, not the backend: Capture returns the error and the backend
// stays usable. The graph holds the workspace and the BF16 copies it reads,
// so a later, larger workspace does not hand its memory to a tensor, and
// a replay reads the weights' BF16 copies as they were at the capture.
func (b *Backend) Capture(record func()) (engine.Graph, error) {
	for attempt := 0; ; attempt++ {
		g, missed, err := b.captureOnce(record)
		if err != nil || len(missed) == 0 {
			return g, err
		}
		if attempt > 0 {
			return nil, fmt.Errorf("gpu: Capture: the recorded ops asked for %d more blocks on the second recording; record must queue the same ops each time", len(missed))
		}
		if err := b.pool.reserve(missed); err != nil {
			return nil, fmt.Errorf("gpu: Capture: %w", err)
		}
	}
}

// capture is the state of a Capture while record runs; b.mu guards it.
type capture struct {
	owned   []block   // the blocks given to the recorded ops
	lasting []*buffer // the backend's own memory they use (keep)
	missed  []int     // the sizes the pool had no cached block of
	err     error     // the first error of a recorded op
	kernels int       // the kernels the recorded ops launched
}

// keep notes that the recorded ops use buf, memory the backend owns and
// may replace (a split-K workspace, a weight's BF16 copy): the graph holds
// it so that it goes back to the pool only after the graph; b.mu is held.
func (b *Backend) keep(buf *buffer) {
	if c := b.capturing; c != nil && buf != nil {
		c.lasting = append(c.lasting, buf)
	}
}

// captureOnce records record's ops once. It returns the graph, or the
// sizes of the blocks the pool lacked (and no graph), or an error.
func (b *Backend) captureOnce(record func()) (g *Graph, missed []int, err error) {
	// The capture must end on the OS thread that began it (thread-local
	// capture mode; CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD otherwise), and
	// record's ops run on the calling goroutine.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.mu.Lock()
	switch {
	case b.err != nil:
		err = b.err
	case b.capturing != nil:
		err = errors.New("gpu: Capture: a capture is already in progress")
	default:
		if err = b.stream.BeginCapture(); err == nil {
			b.capturing = &capture{}
		}
	}
	b.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	done := false
	defer func() {
		if !done { // record panicked: end the capture, give the blocks back
			b.mu.Lock()
			c := b.capturing
			b.capturing = nil
			if graph, err := b.stream.EndCapture(); err == nil {
				graph.Close()
			}
			b.mu.Unlock()
			b.pool.putAll(c.owned)
		}
	}()
	record()
	done = true

	b.mu.Lock()
	c := b.capturing
	b.capturing = nil
	graph, err := b.stream.EndCapture()
	b.mu.Unlock()
	if err == nil && (c.err != nil || len(c.missed) > 0) {
		err = graph.Close()
	}
	if err == nil && c.err == nil && len(c.missed) == 0 {
		var exec *cuda.GraphExec
		exec, err = graph.Instantiate()
		if e := graph.Close(); err == nil {
			err = e
		}
		if err == nil {
			return &Graph{b: b, exec: exec, owned: c.owned, lasting: c.lasting, kernels: c.kernels}, nil, nil
		}
		if exec != nil {
			exec.Close()
		}
	}
	b.pool.putAll(c.owned)
	if c.err != nil {
		return nil, nil, fmt.Errorf("gpu: Capture: %w", c.err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gpu: Capture: %w", err)
	}
	return nil, c.missed, nil
}

// captureAlloc is allocBytes while a capture records: a cached block of
// the pool, owned by the capture, or none (the size noted as missed);
// b.mu is held.
func (b *Backend) captureAlloc(n int) *buffer {
	c := b.capturing
	size := roundSize(n)
	dp := b.pool.take(size)
	if dp == 0 {
		c.missed = append(c.missed, size)
		return nil
	}
	c.owned = append(c.owned, block{dp, size})
	return &buffer{ptr: dp, size: size}
}

// Graph is a CUDA graph of a backend's ops (engine.Graph), made by
// Capture.
type Graph struct {
	b       *Backend
	exec    *cuda.GraphExec
	owned   []block
	lasting []*buffer // held until Close (capture.keep)
	kernels int
}

// Replay implements engine.Graph: one cuGraphLaunch on the backend's
// stream, counted as one launch (Backend.Launches).
func (g *Graph) Replay() {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return
	}
	if g.exec == nil {
		b.fail("Replay", errors.New("the graph is closed"))
		return
	}
	b.launches++
	if err := g.exec.Launch(b.stream); err != nil {
		b.fail("Replay", err)
	}
}

// Kernels returns the number of kernel launches the graph holds: what a
// replay saves the host from issuing one by one.
func (g *Graph) Kernels() int { return g.kernels }

// Close implements engine.Graph: it waits for the stream, destroys the
// graph and gives its blocks back to the pool.
func (g *Graph) Close() error {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if g.exec == nil {
		return nil
	}
	err := b.stream.Synchronize()
	if e := g.exec.Close(); err == nil {
		err = e
	}
	g.exec = nil
	b.pool.putAll(g.owned)
	g.owned, g.lasting = nil, nil
	return err
}

// take returns a cached block of exactly size bytes (a rounded size), or
// 0 when there is none; it never asks the driver.
func (p *pool) take(size int) cuda.DevicePtr {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.free[size]
	if len(list) == 0 {
		return 0
	}
	p.free[size] = list[:len(list)-1]
	return list[len(list)-1]
}

// putAll returns blocks to the pool.
func (p *pool) putAll(blocks []block) {
	for _, b := range blocks {
		p.put(b)
	}
}

// reserve allocates a block of each size (rounded sizes) from the driver
// into the pool's cache.
func (p *pool) reserve(sizes []int) error {
	for _, size := range sizes {
		dp, err := p.ctx.Alloc(size)
		if err != nil {
			if dp, err = p.retry(size); err != nil {
				return fmt.Errorf("allocating %d bytes: %w", size, err)
			}
		}
		p.put(block{dp, size})
	}
	return nil
}
