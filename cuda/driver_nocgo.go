//go:build !cgo

package cuda

// Without cgo there is no way to call the driver: driverLoad reports that, so
// Load fails with ErrNoDriver and no Driver (and so nothing that could reach
// the functions below) ever exists.

import "unsafe"

const noCgo = "cuda: unreachable without cgo (Load always fails)"

func driverLoad() (p unsafe.Pointer, status, code int, msg string) {
	return nil, loadNoCgo, 0, ""
}

func driverErrorName(p unsafe.Pointer, code int) string { panic(noCgo) }

func driverVersion(p unsafe.Pointer) (int, int)                              { panic(noCgo) }
func driverDeviceCount(p unsafe.Pointer) (int, int)                          { panic(noCgo) }
func driverDeviceGet(p unsafe.Pointer, ordinal int) (int, int)               { panic(noCgo) }
func driverDeviceName(p unsafe.Pointer, dev int) (string, int)               { panic(noCgo) }
func driverDeviceAttribute(p unsafe.Pointer, dev, attr int) (int, int)       { panic(noCgo) }
func driverDeviceTotalMem(p unsafe.Pointer, dev int) (int64, int)            { panic(noCgo) }
func driverPrimaryCtxRetain(p unsafe.Pointer, dev int) (unsafe.Pointer, int) { panic(noCgo) }
func driverPrimaryCtxRelease(p unsafe.Pointer, dev int) int                  { panic(noCgo) }

func driverCtxSynchronize(p, ctx unsafe.Pointer) int                                   { panic(noCgo) }
func driverMemInfo(p, ctx unsafe.Pointer) (free, total int64, res int)                 { panic(noCgo) }
func driverModuleLoad(p, ctx unsafe.Pointer, ptx string) (unsafe.Pointer, string, int) { panic(noCgo) }
func driverModuleUnload(p, ctx, mod unsafe.Pointer) int                                { panic(noCgo) }
func driverModuleFunction(p, ctx, mod unsafe.Pointer, name string) (unsafe.Pointer, int) {
	panic(noCgo)
}
func driverFuncSetAttribute(p, ctx, fn unsafe.Pointer, attr, value int) int { panic(noCgo) }

func driverLaunch(p, ctx, fn unsafe.Pointer, grid, block Dim3, shared int, stream unsafe.Pointer, args *Args, nargs int) int {
	panic(noCgo)
}

func driverMemAlloc(p, ctx unsafe.Pointer, bytes int) (DevicePtr, int)          { panic(noCgo) }
func driverMemFree(p, ctx unsafe.Pointer, ptr DevicePtr) int                    { panic(noCgo) }
func driverMemHostAlloc(p, ctx unsafe.Pointer, bytes int) (unsafe.Pointer, int) { panic(noCgo) }
func driverMemFreeHost(p, ctx, ptr unsafe.Pointer) int                          { panic(noCgo) }

func driverCopyHtoD(p, ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes int, stream unsafe.Pointer) int {
	panic(noCgo)
}
func driverCopyDtoH(p, ctx, dst unsafe.Pointer, src DevicePtr, bytes int, stream unsafe.Pointer) int {
	panic(noCgo)
}
func driverCopyDtoD(p, ctx unsafe.Pointer, dst, src DevicePtr, bytes int, stream unsafe.Pointer) int {
	panic(noCgo)
}
func driverMemsetD32(p, ctx unsafe.Pointer, dst DevicePtr, value uint32, n int, stream unsafe.Pointer) int {
	panic(noCgo)
}

func driverStreamCreate(p, ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) { panic(noCgo) }
func driverStreamDestroy(p, ctx, stream unsafe.Pointer) int                        { panic(noCgo) }
func driverStreamSynchronize(p, ctx, stream unsafe.Pointer) int                    { panic(noCgo) }

func driverEventCreate(p, ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) { panic(noCgo) }
func driverEventRecord(p, ctx, event, stream unsafe.Pointer) int                  { panic(noCgo) }
func driverEventSynchronize(p, ctx, event unsafe.Pointer) int                     { panic(noCgo) }
func driverEventElapsed(p, ctx, start, end unsafe.Pointer) (float32, int)         { panic(noCgo) }
func driverEventDestroy(p, ctx, event unsafe.Pointer) int                         { panic(noCgo) }

func driverBeginCapture(p, ctx, stream unsafe.Pointer, mode int) int            { panic(noCgo) }
func driverEndCapture(p, ctx, stream unsafe.Pointer) (unsafe.Pointer, int)      { panic(noCgo) }
func driverGraphInstantiate(p, ctx, graph unsafe.Pointer) (unsafe.Pointer, int) { panic(noCgo) }
func driverGraphLaunch(p, ctx, exec, stream unsafe.Pointer) int                 { panic(noCgo) }
func driverGraphExecDestroy(p, ctx, exec unsafe.Pointer) int                    { panic(noCgo) }
func driverGraphDestroy(p, ctx, graph unsafe.Pointer) int                       { panic(noCgo) }
