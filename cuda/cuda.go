// Package cuda calls the CUDA driver API for fx's GPU backend. It declares the
// few driver functions fx uses by hand and finds them in libcuda.so.1 with
// dlopen at run time, so fx builds without the CUDA toolkit and Load reports
// ErrNoDriver on a machine without an NVIDIA driver.
//
// CUDA makes a context current per OS thread, and goroutines move between
// threads, so every call that needs a context makes its Context current on
// the calling thread first, in the same cgo call as the driver call. A launch
// is one cgo call and does not allocate.
//
// Handles (Context, Module, Stream, Event, Graph, GraphExec, HostBuffer) may be
// used from any goroutine, as the driver allows, but must not be used
// concurrently with their own Close (or Free). Closing a handle twice does
// nothing; using it after Close returns an error wrapping ErrClosed.
package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrNoDriver is the error Load wraps when this process cannot use the CUDA
// driver: libcuda.so.1 is not installed, or fx was built without cgo.
var ErrNoDriver = errors.New("cuda: no CUDA driver (libcuda.so.1) on this machine")

// ErrClosed is the error wrapped by calls on a handle after its Close (or Free).
var ErrClosed = errors.New("handle used after Close")

// Error is a CUresult other than CUDA_SUCCESS from a driver call.
type Error struct {
	Op   string // the driver call and what it acted on: cuModuleGetFunction "fx_axpy" in module "axpy"
	Code int    // the CUresult
	Name string // its name from cuGetErrorName: CUDA_ERROR_OUT_OF_MEMORY
}

// Error returns "cuda: Op: Name (Code)".
func (e *Error) Error() string {
	name := e.Name
	if name == "" {
		name = "unnamed CUresult"
	}
	return fmt.Sprintf("cuda: %s: %s (%d)", e.Op, name, e.Code)
}

// The results of driverLoad (FX_LOAD_* in fxcuda.h).
const (
	loadOK         = 0
	loadNoLibrary  = 1
	loadNoSymbol   = 2
	loadInitFailed = 3
	loadNoMemory   = 4
	loadNoCgo      = -1 // driver_nocgo.go only
)

// Driver is the loaded CUDA driver: its function table, in C memory. A Driver
// is meant to live as long as the process; its table is never freed and
// libcuda.so.1 is never unloaded. The zero Driver is not usable: use Load.
type Driver struct {
	api unsafe.Pointer // *C.fx_api
}

// Load opens libcuda.so.1, resolves every driver function fx uses and calls
// cuInit. Where the library cannot be opened the error wraps ErrNoDriver and
// carries dlopen's reason; a missing function is named in the error; a failing
// cuInit (CUDA_ERROR_NO_DEVICE on a machine with the driver but no GPU) is an
// *Error.
func Load() (*Driver, error) {
	p, status, code, msg := driverLoad()
	switch status {
	case loadOK:
		return &Driver{api: p}, nil
	case loadNoLibrary:
		return nil, fmt.Errorf("%w: %s", ErrNoDriver, msg)
	case loadNoSymbol:
		return nil, fmt.Errorf("cuda: libcuda.so.1 has no function %s (driver too old?)", msg)
	case loadInitFailed:
		return nil, &Error{Op: "cuInit", Code: code, Name: msg}
	case loadNoMemory:
		return nil, errors.New("cuda: load libcuda.so.1: out of memory for the function table")
	case loadNoCgo:
		return nil, fmt.Errorf("%w: fx was built without cgo (CGO_ENABLED=0), so it cannot load libcuda.so.1", ErrNoDriver)
	}
	return nil, fmt.Errorf("cuda: load libcuda.so.1: unknown status %d", status)
}

// fail turns res, a CUresult other than CUDA_SUCCESS from op, into an *Error.
func (d *Driver) fail(op string, res int) error {
	return &Error{Op: op, Code: res, Name: driverErrorName(d.api, res)}
}

// check is fail for a constant op, and nil where res is CUDA_SUCCESS.
func (d *Driver) check(op string, res int) error {
	if res == 0 {
		return nil
	}
	return d.fail(op, res)
}

// loaded reports an error for the zero Driver.
func (d *Driver) loaded(op string) error {
	if d.api == nil {
		return fmt.Errorf("cuda: %s: Driver not loaded (use Load)", op)
	}
	return nil
}

// Version returns the driver's CUDA version as 1000*major + 10*minor
// (12040 is CUDA 12.4).
func (d *Driver) Version() (int, error) {
	if err := d.loaded("cuDriverGetVersion"); err != nil {
		return 0, err
	}
	v, r := driverVersion(d.api)
	return v, d.check("cuDriverGetVersion", r)
}

// DeviceCount returns the number of CUDA devices this process can see.
func (d *Driver) DeviceCount() (int, error) {
	if err := d.loaded("cuDeviceGetCount"); err != nil {
		return 0, err
	}
	n, r := driverDeviceCount(d.api)
	return n, d.check("cuDeviceGetCount", r)
}

// Device returns the device with the given ordinal, 0 to DeviceCount()-1.
func (d *Driver) Device(ordinal int) (Device, error) {
	if err := d.loaded("cuDeviceGet"); err != nil {
		return Device{}, err
	}
	dev, r := driverDeviceGet(d.api, ordinal)
	if r != 0 {
		return Device{}, d.fail(fmt.Sprintf("cuDeviceGet ordinal %d", ordinal), r)
	}
	return Device{d: d, h: dev, ordinal: ordinal}, nil
}

// Device is one CUDA device (a CUdevice).
type Device struct {
	d       *Driver
	h       int // CUdevice
	ordinal int
}

// DeviceAttribute is a CUdevice_attribute: what Device.Attribute asks for.
type DeviceAttribute int

// The device attributes fx reads, with the driver's values.
const (
	AttrMaxThreadsPerBlock           DeviceAttribute = 1
	AttrMaxSharedMemoryPerBlock      DeviceAttribute = 8  // bytes, without opting in
	AttrClockRate                    DeviceAttribute = 13 // kHz
	AttrMultiprocessorCount          DeviceAttribute = 16
	AttrMemoryClockRate              DeviceAttribute = 36 // kHz
	AttrGlobalMemoryBusWidth         DeviceAttribute = 37 // bits
	AttrL2CacheSize                  DeviceAttribute = 38 // bytes
	AttrComputeCapabilityMajor       DeviceAttribute = 75
	AttrComputeCapabilityMinor       DeviceAttribute = 76
	AttrMaxSharedMemoryPerBlockOptin DeviceAttribute = 97 // bytes, with Function.SetMaxDynamicSharedMemory
)

// Name returns the device's name, such as "NVIDIA H100 80GB HBM3".
func (dev Device) Name() (string, error) {
	name, r := driverDeviceName(dev.d.api, dev.h)
	if r != 0 {
		return "", dev.d.fail(fmt.Sprintf("cuDeviceGetName device %d", dev.ordinal), r)
	}
	return name, nil
}

// Attribute returns the value of one device attribute.
func (dev Device) Attribute(a DeviceAttribute) (int, error) {
	v, r := driverDeviceAttribute(dev.d.api, dev.h, int(a))
	if r != 0 {
		return 0, dev.d.fail(fmt.Sprintf("cuDeviceGetAttribute %d device %d", a, dev.ordinal), r)
	}
	return v, nil
}

// TotalMem returns the device's memory in bytes.
func (dev Device) TotalMem() (int64, error) {
	n, r := driverDeviceTotalMem(dev.d.api, dev.h)
	if r != 0 {
		return 0, dev.d.fail(fmt.Sprintf("cuDeviceTotalMem device %d", dev.ordinal), r)
	}
	return n, nil
}

// RetainPrimaryContext retains the device's primary context (the one the CUDA
// runtime would use) and returns it; Close releases it.
func (dev Device) RetainPrimaryContext() (*Context, error) {
	ctx, r := driverPrimaryCtxRetain(dev.d.api, dev.h)
	if r != 0 {
		return nil, dev.d.fail(fmt.Sprintf("cuDevicePrimaryCtxRetain device %d", dev.ordinal), r)
	}
	return &Context{d: dev.d, dev: dev, h: ctx}, nil
}

// closedError is the error for op on a closed handle.
func closedError(op string) error {
	return fmt.Errorf("cuda: %s: %w", op, ErrClosed)
}
