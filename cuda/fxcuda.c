//go:build cgo

// fxcuda.c loads libcuda.so.1 and wraps each driver call fx makes in a small
// function, so that a Go method is one cgo call: make the context current on
// this thread (if it is not already), then call the driver.

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "fxcuda.h"

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2

// The CUjit_option values fx_module_load passes.
#define CU_JIT_INFO_LOG_BUFFER 3
#define CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES 4
#define CU_JIT_ERROR_LOG_BUFFER 5
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6

// fx_current caches the context current on this OS thread, so that fx_use
// calls cuCtxSetCurrent only when a goroutine lands on a thread that has
// another (or no) context current. Code outside fx that changes the current
// context on a thread fx uses makes this cache stale.
static __thread CUcontext fx_current;

static CUresult fx_use(const fx_api *api, CUcontext ctx) {
	if (ctx == fx_current) {
		return CUDA_SUCCESS;
	}
	CUresult r = api->cuCtxSetCurrent(ctx);
	if (r == CUDA_SUCCESS) {
		fx_current = ctx;
	}
	return r;
}

#define FX_USE(api, ctx)                   \
	do {                                   \
		CUresult r_ = fx_use((api), (ctx)); \
		if (r_ != CUDA_SUCCESS) {          \
			return r_;                     \
		}                                  \
	} while (0)

static void fx_copy(char *dst, size_t cap, const char *src) {
	if (cap == 0) {
		return;
	}
	if (src == NULL) {
		src = "";
	}
	strncpy(dst, src, cap - 1);
	dst[cap - 1] = 0;
}

int fx_load(fx_api **out, CUresult *code, char *msg, size_t msgcap) {
	*out = NULL;
	*code = CUDA_SUCCESS;
	fx_copy(msg, msgcap, "");
	void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fx_copy(msg, msgcap, dlerror());
		return FX_LOAD_NO_LIBRARY;
	}
	fx_api *api = calloc(1, sizeof *api);
	if (api == NULL) {
		dlclose(lib);
		return FX_LOAD_NO_MEMORY;
	}
	api->lib = lib;
#define FX_RESOLVE(name, params)                                \
	api->name = (CUresult(*) params)dlsym(lib, #name);          \
	if (api->name == NULL) {                                    \
		fx_copy(msg, msgcap, #name);                            \
		free(api);                                              \
		dlclose(lib);                                           \
		return FX_LOAD_NO_SYMBOL;                               \
	}
	FX_CUDA_SYMBOLS(FX_RESOLVE)
#undef FX_RESOLVE
	CUresult r = api->cuInit(0);
	if (r != CUDA_SUCCESS) {
		// The library stays open: unloading a driver that has started to
		// initialize is not worth the risk.
		*code = r;
		fx_copy(msg, msgcap, fx_error_name(api, r));
		free(api);
		return FX_LOAD_INIT_FAILED;
	}
	*out = api;
	return FX_LOAD_OK;
}

const char *fx_error_name(const fx_api *api, CUresult code) {
	const char *name = NULL;
	if (api->cuGetErrorName(code, &name) != CUDA_SUCCESS) {
		return NULL;
	}
	return name;
}

CUresult fx_driver_get_version(const fx_api *api, int *version) {
	return api->cuDriverGetVersion(version);
}

CUresult fx_device_get_count(const fx_api *api, int *count) {
	return api->cuDeviceGetCount(count);
}

CUresult fx_device_get(const fx_api *api, CUdevice *dev, int ordinal) {
	return api->cuDeviceGet(dev, ordinal);
}

CUresult fx_device_get_name(const fx_api *api, char *name, int len, CUdevice dev) {
	return api->cuDeviceGetName(name, len, dev);
}

CUresult fx_device_get_attribute(const fx_api *api, int *value, int attrib, CUdevice dev) {
	return api->cuDeviceGetAttribute(value, attrib, dev);
}

CUresult fx_device_total_mem(const fx_api *api, size_t *bytes, CUdevice dev) {
	return api->cuDeviceTotalMem_v2(bytes, dev);
}

CUresult fx_primary_ctx_retain(const fx_api *api, CUcontext *ctx, CUdevice dev) {
	return api->cuDevicePrimaryCtxRetain(ctx, dev);
}

CUresult fx_primary_ctx_release(const fx_api *api, CUdevice dev) {
	return api->cuDevicePrimaryCtxRelease_v2(dev);
}

CUresult fx_ctx_synchronize(const fx_api *api, CUcontext ctx) {
	FX_USE(api, ctx);
	return api->cuCtxSynchronize();
}

CUresult fx_mem_get_info(const fx_api *api, CUcontext ctx, size_t *free, size_t *total) {
	FX_USE(api, ctx);
	return api->cuMemGetInfo_v2(free, total);
}

// fx_module_load JIT-compiles n bytes of PTX (not NUL-terminated) and copies
// the JIT's error log (or, if that is empty, its info log) into log.
CUresult fx_module_load(const fx_api *api, CUcontext ctx, CUmodule *module,
	const char *ptx, size_t n, char *log, size_t logcap) {
	fx_copy(log, logcap, "");
	FX_USE(api, ctx);
	char *image = malloc(n + 1);
	char *errlog = calloc(1, FX_JIT_LOG_BYTES);
	char *infolog = calloc(1, FX_JIT_LOG_BYTES);
	CUresult r = CUDA_ERROR_OUT_OF_MEMORY;
	if (image != NULL && errlog != NULL && infolog != NULL) {
		memcpy(image, ptx, n);
		image[n] = 0;
		int options[4] = {
			CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
			CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
		};
		void *values[4] = {
			errlog, (void *)(uintptr_t)FX_JIT_LOG_BYTES,
			infolog, (void *)(uintptr_t)FX_JIT_LOG_BYTES,
		};
		r = api->cuModuleLoadDataEx(module, image, 4, options, values);
		errlog[FX_JIT_LOG_BYTES - 1] = 0;
		infolog[FX_JIT_LOG_BYTES - 1] = 0;
		fx_copy(log, logcap, errlog[0] != 0 ? errlog : infolog);
	}
	free(image);
	free(errlog);
	free(infolog);
	return r;
}

CUresult fx_module_unload(const fx_api *api, CUcontext ctx, CUmodule module) {
	FX_USE(api, ctx);
	return api->cuModuleUnload(module);
}

CUresult fx_module_get_function(const fx_api *api, CUcontext ctx, CUfunction *fn,
	CUmodule module, const char *name) {
	FX_USE(api, ctx);
	return api->cuModuleGetFunction(fn, module, name);
}

CUresult fx_func_set_attribute(const fx_api *api, CUcontext ctx, CUfunction fn,
	int attrib, int value) {
	FX_USE(api, ctx);
	return api->cuFuncSetAttribute(fn, attrib, value);
}

// fx_launch passes args[i] as the kernel's i-th parameter: the driver copies
// sizeof(parameter) bytes from &args[i], so a 4-byte parameter sits in the
// slot's low (first, on little-endian machines) 4 bytes.
CUresult fx_launch(const fx_api *api, CUcontext ctx, CUfunction fn,
	unsigned int gx, unsigned int gy, unsigned int gz,
	unsigned int bx, unsigned int by, unsigned int bz,
	unsigned int shmem, CUstream stream, uint64_t *args, int nargs) {
	void *params[FX_MAX_ARGS];
	if (nargs < 0 || nargs > FX_MAX_ARGS) {
		return CUDA_ERROR_INVALID_VALUE;
	}
	for (int i = 0; i < nargs; i++) {
		params[i] = &args[i];
	}
	FX_USE(api, ctx);
	return api->cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, shmem, stream, params, NULL);
}

CUresult fx_mem_alloc(const fx_api *api, CUcontext ctx, CUdeviceptr *ptr, size_t bytes) {
	FX_USE(api, ctx);
	return api->cuMemAlloc_v2(ptr, bytes);
}

CUresult fx_mem_free(const fx_api *api, CUcontext ctx, CUdeviceptr ptr) {
	FX_USE(api, ctx);
	return api->cuMemFree_v2(ptr);
}

CUresult fx_mem_host_alloc(const fx_api *api, CUcontext ctx, void **ptr, size_t bytes) {
	FX_USE(api, ctx);
	return api->cuMemHostAlloc(ptr, bytes, 0);
}

CUresult fx_mem_free_host(const fx_api *api, CUcontext ctx, void *ptr) {
	FX_USE(api, ctx);
	return api->cuMemFreeHost(ptr);
}

CUresult fx_memcpy_htod(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	const void *src, size_t bytes, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuMemcpyHtoDAsync_v2(dst, src, bytes, stream);
}

CUresult fx_memcpy_dtoh(const fx_api *api, CUcontext ctx, void *dst,
	CUdeviceptr src, size_t bytes, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuMemcpyDtoHAsync_v2(dst, src, bytes, stream);
}

CUresult fx_memcpy_dtod(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	CUdeviceptr src, size_t bytes, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuMemcpyDtoDAsync_v2(dst, src, bytes, stream);
}

CUresult fx_memset_d32(const fx_api *api, CUcontext ctx, CUdeviceptr dst,
	unsigned int value, size_t n, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuMemsetD32Async(dst, value, n, stream);
}

CUresult fx_stream_create(const fx_api *api, CUcontext ctx, CUstream *stream, unsigned int flags) {
	FX_USE(api, ctx);
	return api->cuStreamCreate(stream, flags);
}

CUresult fx_stream_destroy(const fx_api *api, CUcontext ctx, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuStreamDestroy_v2(stream);
}

CUresult fx_stream_synchronize(const fx_api *api, CUcontext ctx, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuStreamSynchronize(stream);
}

CUresult fx_event_create(const fx_api *api, CUcontext ctx, CUevent *event, unsigned int flags) {
	FX_USE(api, ctx);
	return api->cuEventCreate(event, flags);
}

CUresult fx_event_record(const fx_api *api, CUcontext ctx, CUevent event, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuEventRecord(event, stream);
}

CUresult fx_event_synchronize(const fx_api *api, CUcontext ctx, CUevent event) {
	FX_USE(api, ctx);
	return api->cuEventSynchronize(event);
}

CUresult fx_event_elapsed(const fx_api *api, CUcontext ctx, float *ms, CUevent start, CUevent end) {
	FX_USE(api, ctx);
	return api->cuEventElapsedTime(ms, start, end);
}

CUresult fx_event_destroy(const fx_api *api, CUcontext ctx, CUevent event) {
	FX_USE(api, ctx);
	return api->cuEventDestroy_v2(event);
}

CUresult fx_stream_begin_capture(const fx_api *api, CUcontext ctx, CUstream stream, int mode) {
	FX_USE(api, ctx);
	return api->cuStreamBeginCapture_v2(stream, mode);
}

CUresult fx_stream_end_capture(const fx_api *api, CUcontext ctx, CUstream stream, CUgraph *graph) {
	FX_USE(api, ctx);
	return api->cuStreamEndCapture(stream, graph);
}

CUresult fx_graph_instantiate(const fx_api *api, CUcontext ctx, CUgraphExec *exec, CUgraph graph) {
	FX_USE(api, ctx);
	return api->cuGraphInstantiateWithFlags(exec, graph, 0);
}

CUresult fx_graph_launch(const fx_api *api, CUcontext ctx, CUgraphExec exec, CUstream stream) {
	FX_USE(api, ctx);
	return api->cuGraphLaunch(exec, stream);
}

CUresult fx_graph_exec_destroy(const fx_api *api, CUcontext ctx, CUgraphExec exec) {
	FX_USE(api, ctx);
	return api->cuGraphExecDestroy(exec);
}

CUresult fx_graph_destroy(const fx_api *api, CUcontext ctx, CUgraph graph) {
	FX_USE(api, ctx);
	return api->cuGraphDestroy(graph);
}
