package cuda

import (
	"fmt"
	"unsafe"
)

// Context is a retained primary context of one device. Every handle made from
// it (memory, modules, streams, events, graphs) belongs to it.
type Context struct {
	d   *Driver
	dev Device
	h   unsafe.Pointer // CUcontext
}

// Device returns the context's device.
func (c *Context) Device() Device { return c.dev }

// Close releases the primary context. The driver destroys it, and everything
// allocated in it, when its last retain is released.
func (c *Context) Close() error {
	if c.h == nil {
		return nil
	}
	c.h = nil
	if r := driverPrimaryCtxRelease(c.d.api, c.dev.h); r != 0 {
		return c.d.fail(fmt.Sprintf("cuDevicePrimaryCtxRelease device %d", c.dev.ordinal), r)
	}
	return nil
}

// Synchronize waits for all work in the context to finish.
func (c *Context) Synchronize() error {
	if c.h == nil {
		return closedError("cuCtxSynchronize")
	}
	return c.d.check("cuCtxSynchronize", driverCtxSynchronize(c.d.api, c.h))
}

// MemInfo returns the device memory free and in total, in bytes.
func (c *Context) MemInfo() (free, total int64, err error) {
	if c.h == nil {
		return 0, 0, closedError("cuMemGetInfo")
	}
	free, total, r := driverMemInfo(c.d.api, c.h)
	if r != 0 {
		return 0, 0, c.d.fail("cuMemGetInfo", r)
	}
	return free, total, nil
}

// Module is a loaded (JIT-compiled) PTX module.
type Module struct {
	c    *Context
	h    unsafe.Pointer // CUmodule
	name string
}

// LoadModule JIT-compiles PTX source and loads it into the context. The name
// is for errors only (the kernel file's name, say). A failed load's error
// carries the JIT compiler's log.
func (c *Context) LoadModule(name, ptx string) (*Module, error) {
	op := fmt.Sprintf("cuModuleLoadDataEx module %q", name)
	if c.h == nil {
		return nil, closedError(op)
	}
	if ptx == "" {
		return nil, fmt.Errorf("cuda: %s: empty PTX", op)
	}
	mod, log, r := driverModuleLoad(c.d.api, c.h, ptx)
	if r != 0 {
		return nil, fmt.Errorf("%w; JIT log:\n%s", c.d.fail(op, r), log)
	}
	return &Module{c: c, h: mod, name: name}, nil
}

// Name returns the name the module was loaded with.
func (m *Module) Name() string { return m.name }

// Close unloads the module; its functions must not be launched after.
func (m *Module) Close() error {
	if m.h == nil {
		return nil
	}
	h := m.h
	m.h = nil
	if r := driverModuleUnload(m.c.d.api, m.c.h, h); r != 0 {
		return m.c.d.fail(fmt.Sprintf("cuModuleUnload module %q", m.name), r)
	}
	return nil
}

// Function returns the kernel with the given (unmangled, extern "C") name.
func (m *Module) Function(name string) (Function, error) {
	op := fmt.Sprintf("cuModuleGetFunction %q in module %q", name, m.name)
	if m.h == nil {
		return Function{}, closedError(op)
	}
	fn, r := driverModuleFunction(m.c.d.api, m.c.h, m.h, name)
	if r != 0 {
		return Function{}, m.c.d.fail(op, r)
	}
	return Function{c: m.c, h: fn, name: name}, nil
}

// Function is a kernel in a loaded Module, launched with Stream.Launch.
type Function struct {
	c    *Context
	h    unsafe.Pointer // CUfunction
	name string
}

// Name returns the kernel's name.
func (f Function) Name() string { return f.name }

// funcAttrMaxDynamicSharedSize is CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
const funcAttrMaxDynamicSharedSize = 8

// SetMaxDynamicSharedMemory lets launches of f ask for up to bytes of dynamic
// shared memory; above 48 KiB a kernel must opt in this way (up to
// AttrMaxSharedMemoryPerBlockOptin).
func (f Function) SetMaxDynamicSharedMemory(bytes int) error {
	if f.h == nil {
		return fmt.Errorf("cuda: cuFuncSetAttribute: zero Function")
	}
	if r := driverFuncSetAttribute(f.c.d.api, f.c.h, f.h, funcAttrMaxDynamicSharedSize, bytes); r != 0 {
		return f.c.d.fail(fmt.Sprintf("cuFuncSetAttribute %q max dynamic shared memory %d bytes", f.name, bytes), r)
	}
	return nil
}

// DevicePtr is an address in device memory (a CUdeviceptr).
type DevicePtr uint64

// Alloc allocates bytes of device memory.
func (c *Context) Alloc(bytes int) (DevicePtr, error) {
	op := "cuMemAlloc"
	if c.h == nil {
		return 0, closedError(op)
	}
	if bytes < 0 {
		return 0, fmt.Errorf("cuda: %s: negative size %d", op, bytes)
	}
	p, r := driverMemAlloc(c.d.api, c.h, bytes)
	if r != 0 {
		return 0, c.d.fail(fmt.Sprintf("%s %d bytes", op, bytes), r)
	}
	return p, nil
}

// Free frees device memory from Alloc.
func (c *Context) Free(p DevicePtr) error {
	if c.h == nil {
		return closedError("cuMemFree")
	}
	if r := driverMemFree(c.d.api, c.h, p); r != 0 {
		return c.d.fail(fmt.Sprintf("cuMemFree %#x", uint64(p)), r)
	}
	return nil
}

// HostBuffer is page-locked (pinned) host memory from cuMemHostAlloc, which
// copies to and from the device can use without staging, asynchronously.
type HostBuffer struct {
	c *Context
	p unsafe.Pointer
	n int
}

// AllocHost allocates bytes of pinned host memory.
func (c *Context) AllocHost(bytes int) (*HostBuffer, error) {
	op := "cuMemHostAlloc"
	if c.h == nil {
		return nil, closedError(op)
	}
	if bytes < 0 {
		return nil, fmt.Errorf("cuda: %s: negative size %d", op, bytes)
	}
	p, r := driverMemHostAlloc(c.d.api, c.h, bytes)
	if r != 0 {
		return nil, c.d.fail(fmt.Sprintf("%s %d bytes", op, bytes), r)
	}
	return &HostBuffer{c: c, p: p, n: bytes}, nil
}

// Len returns the buffer's size in bytes (0 after Free).
func (h *HostBuffer) Len() int { return h.n }

// Pointer returns the buffer's address (nil after Free), for the Stream copies.
func (h *HostBuffer) Pointer() unsafe.Pointer { return h.p }

// Float32s returns the buffer as float32s (Len()/4 of them), a view of the
// pinned memory, not a copy; it must not be used after Free.
func (h *HostBuffer) Float32s() []float32 {
	if h.p == nil {
		return nil
	}
	return unsafe.Slice((*float32)(h.p), h.n/4)
}

// Free frees the buffer. Copies into or out of it must have finished.
func (h *HostBuffer) Free() error {
	if h.p == nil {
		return nil
	}
	p := h.p
	h.p, h.n = nil, 0
	return h.c.d.check("cuMemFreeHost", driverMemFreeHost(h.c.d.api, h.c.h, p))
}
