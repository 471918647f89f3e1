package cuda

import (
	"fmt"
	"math"
	"time"
	"unsafe"
)

// streamNonBlocking is CU_STREAM_NON_BLOCKING: no implicit synchronization
// with the legacy default stream.
const streamNonBlocking = 1

// Stream is a CUDA stream: work queued on it runs in order, asynchronously
// with the host.
type Stream struct {
	c *Context
	h unsafe.Pointer // CUstream
}

// NewStream creates a non-blocking stream.
func (c *Context) NewStream() (*Stream, error) {
	if c.h == nil {
		return nil, closedError("cuStreamCreate")
	}
	s, r := driverStreamCreate(c.d.api, c.h, streamNonBlocking)
	if r != 0 {
		return nil, c.d.fail("cuStreamCreate", r)
	}
	return &Stream{c: c, h: s}, nil
}

// Close destroys the stream; work already queued on it still runs.
func (s *Stream) Close() error {
	if s.h == nil {
		return nil
	}
	h := s.h
	s.h = nil
	return s.c.d.check("cuStreamDestroy", driverStreamDestroy(s.c.d.api, s.c.h, h))
}

// Synchronize waits for the work queued on s to finish.
func (s *Stream) Synchronize() error {
	if s.h == nil {
		return closedError("cuStreamSynchronize")
	}
	return s.c.d.check("cuStreamSynchronize", driverStreamSynchronize(s.c.d.api, s.c.h, s.h))
}

// CopyHtoD queues a copy of bytes from host memory at src to dst. From
// pinned memory (HostBuffer) the copy is asynchronous and src must stay
// unchanged until it is done; from other memory the driver stages src before
// CopyHtoD returns.
func (s *Stream) CopyHtoD(dst DevicePtr, src unsafe.Pointer, bytes int) error {
	if s.h == nil {
		return closedError("cuMemcpyHtoDAsync")
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: cuMemcpyHtoDAsync: negative size %d", bytes)
	}
	if r := driverCopyHtoD(s.c.d.api, s.c.h, dst, src, bytes, s.h); r != 0 {
		return s.c.d.fail(fmt.Sprintf("cuMemcpyHtoDAsync %d bytes", bytes), r)
	}
	return nil
}

// CopyDtoH queues a copy of bytes from src to host memory at dst. Into pinned
// memory (HostBuffer) the copy is asynchronous: dst holds the data once the
// stream is synchronized; into other memory CopyDtoH returns when it is done.
func (s *Stream) CopyDtoH(dst unsafe.Pointer, src DevicePtr, bytes int) error {
	if s.h == nil {
		return closedError("cuMemcpyDtoHAsync")
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: cuMemcpyDtoHAsync: negative size %d", bytes)
	}
	if r := driverCopyDtoH(s.c.d.api, s.c.h, dst, src, bytes, s.h); r != 0 {
		return s.c.d.fail(fmt.Sprintf("cuMemcpyDtoHAsync %d bytes", bytes), r)
	}
	return nil
}

// CopyDtoD queues a copy of bytes from src to dst, both in device memory.
func (s *Stream) CopyDtoD(dst, src DevicePtr, bytes int) error {
	if s.h == nil {
		return closedError("cuMemcpyDtoDAsync")
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: cuMemcpyDtoDAsync: negative size %d", bytes)
	}
	if r := driverCopyDtoD(s.c.d.api, s.c.h, dst, src, bytes, s.h); r != 0 {
		return s.c.d.fail(fmt.Sprintf("cuMemcpyDtoDAsync %d bytes", bytes), r)
	}
	return nil
}

// MemsetD32 queues setting n 32-bit words at dst to value (a float32's bits,
// from math.Float32bits, to fill with a float).
func (s *Stream) MemsetD32(dst DevicePtr, value uint32, n int) error {
	if s.h == nil {
		return closedError("cuMemsetD32Async")
	}
	if n < 0 {
		return fmt.Errorf("cuda: cuMemsetD32Async: negative count %d", n)
	}
	if r := driverMemsetD32(s.c.d.api, s.c.h, dst, value, n, s.h); r != 0 {
		return s.c.d.fail(fmt.Sprintf("cuMemsetD32Async %d words", n), r)
	}
	return nil
}

// Dim3 is a grid size in blocks or a block size in threads. Every component
// must be at least 1.
type Dim3 struct{ X, Y, Z uint32 }

// MaxArgs is the most parameters a kernel launched with Launch can take.
const MaxArgs = 24

// Args holds a launch's kernel parameters, one per slot, in the kernel's
// parameter order: a DevicePtr (8 bytes), or a 4-byte int32, uint32 or float32
// in the slot's low 4 bytes. The driver copies each parameter's size from its
// slot's address, which is why 4-byte values sit in the low bytes (fx runs
// on little-endian machines only). Fill it with SetPtr, SetInt and SetFloat.
type Args [MaxArgs]uint64

// SetPtr sets parameter i to a device pointer.
func (a *Args) SetPtr(i int, p DevicePtr) { a[i] = uint64(p) }

// SetInt sets parameter i to an int (a kernel's int or unsigned int). It
// panics if v does not fit in 32 bits (as an int32 or a uint32).
func (a *Args) SetInt(i int, v int) {
	if v < math.MinInt32 || v > math.MaxUint32 {
		panic(fmt.Sprintf("cuda: Args.SetInt(%d, %d): does not fit in 32 bits", i, v))
	}
	a[i] = uint64(uint32(v))
}

// SetFloat sets parameter i to a float.
func (a *Args) SetFloat(i int, v float32) { a[i] = uint64(math.Float32bits(v)) }

// Launch queues kernel f on s with a grid of grid blocks of block threads,
// sharedBytes of dynamic shared memory, and its first nargs parameters from
// args (nil when nargs is 0). The parameters are copied before Launch
// returns, so args may be reused at once. Launch does not allocate unless it
// fails.
func (s *Stream) Launch(f Function, grid, block Dim3, sharedBytes int, args *Args, nargs int) error {
	if s.h == nil {
		return closedError("cuLaunchKernel")
	}
	if nargs < 0 || nargs > MaxArgs || (nargs > 0 && args == nil) {
		return fmt.Errorf("cuda: cuLaunchKernel %q: %d parameters (want 0 to %d, with non-nil args)", f.name, nargs, MaxArgs)
	}
	if sharedBytes < 0 || sharedBytes > math.MaxUint32 {
		return fmt.Errorf("cuda: cuLaunchKernel %q: %d bytes of shared memory", f.name, sharedBytes)
	}
	if r := driverLaunch(s.c.d.api, s.c.h, f.h, grid, block, sharedBytes, s.h, args, nargs); r != 0 {
		return s.c.d.fail(fmt.Sprintf("cuLaunchKernel %q grid %v block %v shared %d", f.name, grid, block, sharedBytes), r)
	}
	return nil
}

// Event marks a point in a stream's work, for waiting and timing.
type Event struct {
	c *Context
	h unsafe.Pointer // CUevent
}

// NewEvent creates an event that records timing.
func (c *Context) NewEvent() (*Event, error) {
	if c.h == nil {
		return nil, closedError("cuEventCreate")
	}
	e, r := driverEventCreate(c.d.api, c.h, 0)
	if r != 0 {
		return nil, c.d.fail("cuEventCreate", r)
	}
	return &Event{c: c, h: e}, nil
}

// Record queues the event on s: it completes when the work queued on s
// before it has finished.
func (e *Event) Record(s *Stream) error {
	if e.h == nil || s.h == nil {
		return closedError("cuEventRecord")
	}
	return e.c.d.check("cuEventRecord", driverEventRecord(e.c.d.api, e.c.h, e.h, s.h))
}

// Synchronize waits for the event to complete.
func (e *Event) Synchronize() error {
	if e.h == nil {
		return closedError("cuEventSynchronize")
	}
	return e.c.d.check("cuEventSynchronize", driverEventSynchronize(e.c.d.api, e.c.h, e.h))
}

// Close destroys the event.
func (e *Event) Close() error {
	if e.h == nil {
		return nil
	}
	h := e.h
	e.h = nil
	return e.c.d.check("cuEventDestroy", driverEventDestroy(e.c.d.api, e.c.h, h))
}

// Elapsed returns the GPU time between two completed events (resolution about
// half a microsecond).
func Elapsed(start, end *Event) (time.Duration, error) {
	if start.h == nil || end.h == nil {
		return 0, closedError("cuEventElapsedTime")
	}
	ms, r := driverEventElapsed(start.c.d.api, start.c.h, start.h, end.h)
	if r != 0 {
		return 0, start.c.d.fail("cuEventElapsedTime", r)
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// captureModeThreadLocal is CU_STREAM_CAPTURE_MODE_THREAD_LOCAL (GLOBAL is 0,
// RELAXED 2).
const captureModeThreadLocal = 1

// BeginCapture starts capturing the work queued on s into a graph, instead of
// running it, until EndCapture. The capture mode is thread-local: it forbids
// unsafe calls (such as synchronizing) only on the OS thread that began it.
func (s *Stream) BeginCapture() error {
	if s.h == nil {
		return closedError("cuStreamBeginCapture")
	}
	return s.c.d.check("cuStreamBeginCapture", driverBeginCapture(s.c.d.api, s.c.h, s.h, captureModeThreadLocal))
}

// EndCapture ends the capture BeginCapture started and returns the graph of
// the work captured.
func (s *Stream) EndCapture() (*Graph, error) {
	if s.h == nil {
		return nil, closedError("cuStreamEndCapture")
	}
	g, r := driverEndCapture(s.c.d.api, s.c.h, s.h)
	if r != 0 {
		return nil, s.c.d.fail("cuStreamEndCapture", r)
	}
	return &Graph{c: s.c, h: g}, nil
}

// Graph is captured work, to instantiate and then launch as a whole.
type Graph struct {
	c *Context
	h unsafe.Pointer // CUgraph
}

// Instantiate makes an executable graph of g; g may be closed after.
func (g *Graph) Instantiate() (*GraphExec, error) {
	if g.h == nil {
		return nil, closedError("cuGraphInstantiateWithFlags")
	}
	e, r := driverGraphInstantiate(g.c.d.api, g.c.h, g.h)
	if r != 0 {
		return nil, g.c.d.fail("cuGraphInstantiateWithFlags", r)
	}
	return &GraphExec{c: g.c, h: e}, nil
}

// Close destroys the graph.
func (g *Graph) Close() error {
	if g.h == nil {
		return nil
	}
	h := g.h
	g.h = nil
	return g.c.d.check("cuGraphDestroy", driverGraphDestroy(g.c.d.api, g.c.h, h))
}

// GraphExec is an instantiated graph: the captured work, replayable with
// Launch at the cost of about one kernel launch.
type GraphExec struct {
	c *Context
	h unsafe.Pointer // CUgraphExec
}

// Launch queues the graph's work on s.
func (e *GraphExec) Launch(s *Stream) error {
	if e.h == nil || s.h == nil {
		return closedError("cuGraphLaunch")
	}
	return e.c.d.check("cuGraphLaunch", driverGraphLaunch(e.c.d.api, e.c.h, e.h, s.h))
}

// Close destroys the executable graph.
func (e *GraphExec) Close() error {
	if e.h == nil {
		return nil
	}
	h := e.h
	e.h = nil
	return e.c.d.check("cuGraphExecDestroy", driverGraphExecDestroy(e.c.d.api, e.c.h, h))
}
