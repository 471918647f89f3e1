//go:build cgo

package cuda

// The driver_* functions below are the cgo side of the package: each is one
// call to a C wrapper in fxcuda.c and returns the driver's CUresult. The
// exported API (cuda.go, context.go, stream.go) turns results into errors;
// driver_nocgo.go has the same functions for builds without cgo.

/*
#cgo LDFLAGS: -ldl
#cgo noescape fx_launch
#cgo nocallback fx_launch
#include "fxcuda.h"
*/
import "C"

import "unsafe"

// maxArgs is FX_MAX_ARGS; the build fails if MaxArgs and it disagree.
const maxArgs = C.FX_MAX_ARGS

var _ [MaxArgs - maxArgs]struct{}
var _ [maxArgs - MaxArgs]struct{}

func api(p unsafe.Pointer) *C.fx_api { return (*C.fx_api)(p) }

func driverLoad() (p unsafe.Pointer, status, code int, msg string) {
	var out *C.fx_api
	var res C.CUresult
	var buf [512]C.char
	st := C.fx_load(&out, &res, &buf[0], C.size_t(len(buf)))
	return unsafe.Pointer(out), int(st), int(res), C.GoString(&buf[0])
}

func driverErrorName(p unsafe.Pointer, code int) string {
	return C.GoString(C.fx_error_name(api(p), C.CUresult(code)))
}

func driverVersion(p unsafe.Pointer) (int, int) {
	var v C.int
	r := C.fx_driver_get_version(api(p), &v)
	return int(v), int(r)
}

func driverDeviceCount(p unsafe.Pointer) (int, int) {
	var n C.int
	r := C.fx_device_get_count(api(p), &n)
	return int(n), int(r)
}

func driverDeviceGet(p unsafe.Pointer, ordinal int) (int, int) {
	var dev C.CUdevice
	r := C.fx_device_get(api(p), &dev, C.int(ordinal))
	return int(dev), int(r)
}

func driverDeviceName(p unsafe.Pointer, dev int) (string, int) {
	var buf [256]C.char
	r := C.fx_device_get_name(api(p), &buf[0], C.int(len(buf)), C.CUdevice(dev))
	buf[len(buf)-1] = 0
	return C.GoString(&buf[0]), int(r)
}

func driverDeviceAttribute(p unsafe.Pointer, dev, attr int) (int, int) {
	var v C.int
	r := C.fx_device_get_attribute(api(p), &v, C.int(attr), C.CUdevice(dev))
	return int(v), int(r)
}

func driverDeviceTotalMem(p unsafe.Pointer, dev int) (int64, int) {
	var n C.size_t
	r := C.fx_device_total_mem(api(p), &n, C.CUdevice(dev))
	return int64(n), int(r)
}

func driverPrimaryCtxRetain(p unsafe.Pointer, dev int) (unsafe.Pointer, int) {
	var ctx C.CUcontext
	r := C.fx_primary_ctx_retain(api(p), &ctx, C.CUdevice(dev))
	return unsafe.Pointer(ctx), int(r)
}

func driverPrimaryCtxRelease(p unsafe.Pointer, dev int) int {
	return int(C.fx_primary_ctx_release(api(p), C.CUdevice(dev)))
}

func driverCtxSynchronize(p, ctx unsafe.Pointer) int {
	return int(C.fx_ctx_synchronize(api(p), C.CUcontext(ctx)))
}

func driverMemInfo(p, ctx unsafe.Pointer) (free, total int64, res int) {
	var f, t C.size_t
	r := C.fx_mem_get_info(api(p), C.CUcontext(ctx), &f, &t)
	return int64(f), int64(t), int(r)
}

func driverModuleLoad(p, ctx unsafe.Pointer, ptx string) (unsafe.Pointer, string, int) {
	var mod C.CUmodule
	log := make([]C.char, C.FX_JIT_LOG_BYTES)
	// A Go string's bytes may be passed to C for the length of the call;
	// fx_module_load copies them (and adds the NUL) before the driver sees them.
	src := (*C.char)(unsafe.Pointer(unsafe.StringData(ptx)))
	r := C.fx_module_load(api(p), C.CUcontext(ctx), &mod, src, C.size_t(len(ptx)), &log[0], C.size_t(len(log)))
	return unsafe.Pointer(mod), C.GoString(&log[0]), int(r)
}

func driverModuleUnload(p, ctx, mod unsafe.Pointer) int {
	return int(C.fx_module_unload(api(p), C.CUcontext(ctx), C.CUmodule(mod)))
}

func driverModuleFunction(p, ctx, mod unsafe.Pointer, name string) (unsafe.Pointer, int) {
	var fn C.CUfunction
	cname := append([]byte(name), 0)
	r := C.fx_module_get_function(api(p), C.CUcontext(ctx), &fn, C.CUmodule(mod), (*C.char)(unsafe.Pointer(&cname[0])))
	return unsafe.Pointer(fn), int(r)
}

func driverFuncSetAttribute(p, ctx, fn unsafe.Pointer, attr, value int) int {
	return int(C.fx_func_set_attribute(api(p), C.CUcontext(ctx), C.CUfunction(fn), C.int(attr), C.int(value)))
}

// driverLaunch does not allocate: fx_launch is declared noescape, so args
// stays wherever the caller put it.
func driverLaunch(p, ctx, fn unsafe.Pointer, grid, block Dim3, shared int, stream unsafe.Pointer, args *Args, nargs int) int {
	var a *C.uint64_t
	if args != nil {
		a = (*C.uint64_t)(unsafe.Pointer(&args[0]))
	}
	return int(C.fx_launch(api(p), C.CUcontext(ctx), C.CUfunction(fn),
		C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z),
		C.uint(block.X), C.uint(block.Y), C.uint(block.Z),
		C.uint(shared), C.CUstream(stream), a, C.int(nargs)))
}

func driverMemAlloc(p, ctx unsafe.Pointer, bytes int) (DevicePtr, int) {
	var ptr C.CUdeviceptr
	r := C.fx_mem_alloc(api(p), C.CUcontext(ctx), &ptr, C.size_t(bytes))
	return DevicePtr(ptr), int(r)
}

func driverMemFree(p, ctx unsafe.Pointer, ptr DevicePtr) int {
	return int(C.fx_mem_free(api(p), C.CUcontext(ctx), C.CUdeviceptr(ptr)))
}

func driverMemHostAlloc(p, ctx unsafe.Pointer, bytes int) (unsafe.Pointer, int) {
	var ptr unsafe.Pointer
	r := C.fx_mem_host_alloc(api(p), C.CUcontext(ctx), &ptr, C.size_t(bytes))
	return ptr, int(r)
}

func driverMemFreeHost(p, ctx, ptr unsafe.Pointer) int {
	return int(C.fx_mem_free_host(api(p), C.CUcontext(ctx), ptr))
}

func driverCopyHtoD(p, ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int, stream unsafe.Pointer) int {
	return int(C.fx_memcpy_htod(api(p), C.CUcontext(ctx), C.CUdeviceptr(dst), src, C.size_t(bytes), C.CUstream(stream)))
}

func driverCopyDtoH(p, ctx, dst unsafe.Pointer, src DevicePtr, bytes int, stream unsafe.Pointer) int {
	return int(C.fx_memcpy_dtoh(api(p), C.CUcontext(ctx), dst, C.CUdeviceptr(src), C.size_t(bytes), C.CUstream(stream)))
}

func driverCopyDtoD(p, ctx unsafe.Pointer, dst, src DevicePtr, bytes int, stream unsafe.Pointer) int {
	return int(C.fx_memcpy_dtod(api(p), C.CUcontext(ctx), C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes), C.CUstream(stream)))
}

func driverMemsetD32(p, ctx unsafe.Pointer, dst DevicePtr, value uint32, n int, stream unsafe.Pointer) int {
	return int(C.fx_memset_d32(api(p), C.CUcontext(ctx), C.CUdeviceptr(dst), C.uint(value), C.size_t(n), C.CUstream(stream)))
}

func driverStreamCreate(p, ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) {
	var s C.CUstream
	r := C.fx_stream_create(api(p), C.CUcontext(ctx), &s, C.uint(flags))
	return unsafe.Pointer(s), int(r)
}

func driverStreamDestroy(p, ctx, stream unsafe.Pointer) int {
	return int(C.fx_stream_destroy(api(p), C.CUcontext(ctx), C.CUstream(stream)))
}

func driverStreamSynchronize(p, ctx, stream unsafe.Pointer) int {
	return int(C.fx_stream_synchronize(api(p), C.CUcontext(ctx), C.CUstream(stream)))
}

func driverEventCreate(p, ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) {
	var e C.CUevent
	r := C.fx_event_create(api(p), C.CUcontext(ctx), &e, C.uint(flags))
	return unsafe.Pointer(e), int(r)
}

func driverEventRecord(p, ctx, event, stream unsafe.Pointer) int {
	return int(C.fx_event_record(api(p), C.CUcontext(ctx), C.CUevent(event), C.CUstream(stream)))
}

func driverEventSynchronize(p, ctx, event unsafe.Pointer) int {
	return int(C.fx_event_synchronize(api(p), C.CUcontext(ctx), C.CUevent(event)))
}

func driverEventElapsed(p, ctx, start, end unsafe.Pointer) (float32, int) {
	var ms C.float
	r := C.fx_event_elapsed(api(p), C.CUcontext(ctx), &ms, C.CUevent(start), C.CUevent(end))
	return float32(ms), int(r)
}

func driverEventDestroy(p, ctx, event unsafe.Pointer) int {
	return int(C.fx_event_destroy(api(p), C.CUcontext(ctx), C.CUevent(event)))
}

func driverBeginCapture(p, ctx, stream unsafe.Pointer, mode int) int {
	return int(C.fx_stream_begin_capture(api(p), C.CUcontext(ctx), C.CUstream(stream), C.int(mode)))
}

func driverEndCapture(p, ctx, stream unsafe.Pointer) (unsafe.Pointer, int) {
	var g C.CUgraph
	r := C.fx_stream_end_capture(api(p), C.CUcontext(ctx), C.CUstream(stream), &g)
	return unsafe.Pointer(g), int(r)
}

func driverGraphInstantiate(p, ctx, graph unsafe.Pointer) (unsafe.Pointer, int) {
	var e C.CUgraphExec
	r := C.fx_graph_instantiate(api(p), C.CUcontext(ctx), &e, C.CUgraph(graph))
	return unsafe.Pointer(e), int(r)
}

func driverGraphLaunch(p, ctx, exec, stream unsafe.Pointer) int {
	return int(C.fx_graph_launch(api(p), C.CUcontext(ctx), C.CUgraphExec(exec), C.CUstream(stream)))
}

func driverGraphExecDestroy(p, ctx, exec unsafe.Pointer) int {
	return int(C.fx_graph_exec_destroy(api(p), C.CUcontext(ctx), C.CUgraphExec(exec)))
}

func driverGraphDestroy(p, ctx, graph unsafe.Pointer) int {
	return int(C.fx_graph_destroy(api(p), C.CUcontext(ctx), C.CUgraph(graph)))
}
