// fxcuda.h declares, by hand, the part of the CUDA driver API that fx uses, and
// the C wrappers that package cuda calls through cgo. There is no cuda.h here on
// purpose: fx builds without the CUDA toolkit and finds libcuda.so.1 with dlopen
// at run time. The types and enum values below are the driver's own (cuda.h).

#ifndef FX_CUDA_H
#define FX_CUDA_H

#include <stddef.h>
#include <stdint.h>

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef unsigned long long CUdeviceptr;

// FX_MAX_ARGS is the most kernel parameters fx_launch passes (MaxArgs in Go).
#define FX_MAX_ARGS 24

// FX_JIT_LOG_BYTES is the size of each JIT log buffer fx_module_load allocates.
#define FX_JIT_LOG_BYTES (16 << 10)

// FX_CUDA_SYMBOLS lists every driver function fx resolves with dlsym: the
// exported (versioned) symbol name and its parameters. All return CUresult.
#define FX_CUDA_SYMBOLS(X)                                                        \
	X(cuInit, (unsigned int flags))                                               \
	X(cuDriverGetVersion, (int *version))                                         \
	X(cuGetErrorName, (CUresult error, const char **str))                         \
	X(cuGetErrorString, (CUresult error, const char **str))                       \
	X(cuDeviceGetCount, (int *count))                                             \
	X(cuDeviceGet, (CUdevice *device, int ordinal))                               \
	X(cuDeviceGetName, (char *name, int len, CUdevice dev))                       \
	X(cuDeviceGetAttribute, (int *value, int attrib, CUdevice dev))               \
	X(cuDeviceTotalMem_v2, (size_t *bytes, CUdevice dev))                         \
	X(cuDevicePrimaryCtxRetain, (CUcontext *ctx, CUdevice dev))                   \
	X(cuDevicePrimaryCtxRelease_v2, (CUdevice dev))                               \
	X(cuCtxSetCurrent, (CUcontext ctx))                                           \
	X(cuCtxSynchronize, (void))                                                   \
	X(cuMemGetInfo_v2, (size_t *free, size_t *total))                             \
	X(cuModuleLoadDataEx, (CUmodule *module, const void *image,                   \
		unsigned int n, int *options, void **values))                             \
	X(cuModuleUnload, (CUmodule module))                                          \
	X(cuModuleGetFunction, (CUfunction *fn, CUmodule module, const char *name))   \
	X(cuFuncSetAttribute, (CUfunction fn, int attrib, int value))                 \
	X(cuLaunchKernel, (CUfunction fn, unsigned int gx, unsigned int gy,           \
		unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,       \
		unsigned int shmem, CUstream stream, void **params, void **extra))        \
	X(cuMemAlloc_v2, (CUdeviceptr *ptr, size_t bytes))                            \
	X(cuMemFree_v2, (CUdeviceptr ptr))                                            \
	X(cuMemHostAlloc, (void **ptr, size_t bytes, unsigned int flags))             \
	X(cuMemFreeHost, (void *ptr))                                                 \
	X(cuMemcpyHtoDAsync_v2, (CUdeviceptr dst, const void *src, size_t bytes,      \
		CUstream stream))                                                         \
	X(cuMemcpyDtoHAsync_v2, (void *dst, CUdeviceptr src, size_t bytes,            \
		CUstream stream))                                                         \
	X(cuMemcpyDtoDAsync_v2, (CUdeviceptr dst, CUdeviceptr src, size_t bytes,      \
		CUstream stream))                                                         \
	X(cuMemsetD32Async, (CUdeviceptr dst, unsigned int value, size_t n,           \
		CUstream stream))                                                         \
	X(cuStreamCreate, (CUstream *stream, unsigned int flags))                     \
	X(cuStreamDestroy_v2, (CUstream stream))                                      \
	X(cuStreamSynchronize, (CUstream stream))                                     \
	X(cuEventCreate, (CUevent *event, unsigned int flags))                        \
	X(cuEventRecord, (CUevent event, CUstream stream))                            \
	X(cuEventSynchronize, (CUevent event))                                        \
	X(cuEventElapsedTime, (float *ms, CUevent start, CUevent end))                \
	X(cuEventDestroy_v2, (CUevent event))                                         \
	X(cuStreamBeginCapture_v2, (CUstream stream, int mode))                       \
	X(cuStreamEndCapture, (CUstream stream, CUgraph *graph))                      \
	X(cuGraphInstantiateWithFlags, (CUgraphExec *exec, CUgraph graph,             \
		unsigned long long flags))                                                \
	X(cuGraphLaunch, (CUgraphExec exec, CUstream stream))                         \
	X(cuGraphExecDestroy, (CUgraphExec exec))                                     \
	X(cuGraphDestroy, (CUgraph graph))

// fx_api is one loaded driver: the dlopen handle and a pointer per symbol.
typedef struct fx_api {
	void *lib;
#define FX_FIELD(name, params) CUresult (*name) params;
	FX_CUDA_SYMBOLS(FX_FIELD)
#undef FX_FIELD
} fx_api;

// fx_load's results (loadOK and the others in Go).
#define FX_LOAD_OK 0
#define FX_LOAD_NO_LIBRARY 1  // msg: dlerror()
#define FX_LOAD_NO_SYMBOL 2   // msg: the missing symbol's name
#define FX_LOAD_INIT_FAILED 3 // *code: cuInit's result; msg: its name
#define FX_LOAD_NO_MEMORY 4

int fx_load(fx_api **out, CUresult *code, char *msg, size_t msgcap);
const char *fx_error_name(const fx_api *api, CUresult code);

// Calls that need no context.
CUresult fx_driver_get_version(const fx_api *api, int *version);
CUresult fx_device_get_count(const fx_api *api, int *count);
CUresult fx_device_get(const fx_api *api, CUdevice *dev, int ordinal);
CUresult fx_device_get_name(const fx_api *api, char *name, int len, CUdevice dev);
CUresult fx_device_get_attribute(const fx_api *api, int *value, int attrib, CUdevice dev);
CUresult fx_device_total_mem(const fx_api *api, size_t *bytes, CUdevice dev);
CUresult fx_primary_ctx_retain(const fx_api *api, CUcontext *ctx, CUdevice dev);
CUresult fx_primary_ctx_release(const fx_api *api, CUdevice dev);

// Calls that first make ctx current on the calling thread.
CUresult fx_ctx_synchronize(const fx_api *api, CUcontext ctx);
CUresult fx_mem_get_info(const fx_api *api, CUcontext ctx, size_t *free, size_t *total);
CUresult fx_module_load(const fx_api *api, CUcontext ctx, CUmodule *module,
	const char *ptx, size_t n, char *log, size_t logcap);
CUresult fx_module_unload(const fx_api *api, CUcontext ctx, CUmodule module);
CUresult fx_module_get_function(const fx_api *api, CUcontext ctx, CUfunction *fn,
	CUmodule module, const char *name);
CUresult fx_func_set_attribute(const fx_api *api, CUcontext ctx, CUfunction fn,
	int attrib, int value);
CUresult fx_launch(const fx_api *api, CUcontext ctx, CUfunction fn,
	unsigned int gx, unsigned int gy, unsigned int gz,
	unsigned int bx, unsigned int by, unsigned int bz,
	unsigned int shmem, CUstream stream, uint64_t *args, int nargs);
CUresult fx_mem_alloc(const fx_api *api, CUcontext ctx, CUdeviceptr *ptr, size_t bytes);
CUresult fx_mem_free(const fx_api *api, CUcontext ctx, CUdeviceptr ptr);
CUresult fx_mem_host_alloc(const fx_api *api, CUcontext ctx, void **ptr, size_t bytes);
CUresult fx_mem_free_host(const fx_api *api, CUcontext ctx, void *ptr);
CUresult fx_memcpy_htod(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	const void *src, size_t bytes, CUstream stream);
CUresult fx_memcpy_dtoh(const fx_api *api, CUcontext ctx, void *dst,
	CUdeviceptr src, size_t bytes, CUstream stream);
CUresult fx_memcpy_dtod(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	CUdeviceptr src, size_t bytes, CUstream stream);
CUresult fx_memset_d32(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	unsigned int value, size_t n, CUstream stream);
CUresult fx_stream_create(const fx_api *api, CUcontext ctx, CUstream *stream, unsigned int flags);
CUresult fx_stream_destroy(const fx_api *api, CUcontext ctx, CUstream stream);
CUresult fx_stream_synchronize(const fx_api *api, CUcontext ctx, CUstream stream);
CUresult fx_event_create(const fx_api *api, CUcontext ctx, CUevent *event, unsigned int flags);
CUresult fx_event_record(const fx_api *api, CUcontext ctx, CUevent event, CUstream stream);
CUresult fx_event_synchronize(const fx_api *api, CUcontext ctx, CUevent event);
CUresult fx_event_elapsed(const fx_api *api, CUcontext ctx, float *ms, CUevent start, CUevent end);
CUresult fx_event_destroy(const fx_api *api, CUcontext ctx, CUevent event);
CUresult fx_stream_begin_capture(const fx_api *api, CUcontext ctx, CUstream stream, int mode);
CUresult fx_stream_end_capture(const fx_api *api, CUcontext ctx, CUstream stream, CUgraph *graph);
CUresult fx_graph_instantiate(const fx_api *api, CUcontext ctx, CUgraphExec *exec, CUgraph graph);
CUresult fx_graph_launch(const fx_api *api, CUcontext ctx, CUgraphExec exec, CUstream stream);
CUresult fx_graph_exec_destroy(const fx_api *api, CUcontext ctx, CUgraphExec exec);
CUresult fx_graph_destroy(const fx_api *api, CUcontext ctx, CUgraph graph);

#endif
