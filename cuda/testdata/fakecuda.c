// fakecuda.c is a stand-in libcuda.so.1 for package cuda's tests on machines
// without a GPU (TestFakeDriver builds it and runs the TestGPU tests against
// it). "Device" memory is host memory, work runs on the CPU at once, and the
// kernels are the test PTX's fx_axpy and fx_noop, found by name, and those
// of a library linked with it that defines fx_fake_kernel (fake_kernel.h):
// kernels/emu/fakekernels.cpp gives every fx kernel on the host emulator,
// so that engine/gpu runs whole on the CPU. It checks what the real driver
// would refuse: a call that needs a context without the retained primary
// context current on the calling thread, a launch with too much shared
// memory, a copy, memset or allocation while a stream is capturing, the
// end of a capture on another thread than its beginning, a kernel the
// module lacks.
//
// Build: cc -shared -fPIC -I.. -o DIR/libcuda.so.1 fakecuda.c
// -DFX_FAKE_OMIT_GRAPH_DESTROY leaves cuGraphDestroy out; the environment
// variable FX_FAKE_CUDA_INIT_ERROR makes cuInit return that CUresult.

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fxcuda.h"
#include "fake_kernel.h"

enum {
	SUCCESS = 0,
	INVALID_VALUE = 1,
	OUT_OF_MEMORY = 2,
	NOT_INITIALIZED = 3,
	NO_DEVICE = 100,
	INVALID_DEVICE = 101,
	INVALID_CONTEXT = 201,
	INVALID_PTX = 218,
	INVALID_HANDLE = 400,
	NOT_FOUND = 500,
	STREAM_CAPTURE_UNSUPPORTED = 900,
	STREAM_CAPTURE_WRONG_THREAD = 908,
};

static const struct {
	int code;
	const char *name;
} names[] = {
	{SUCCESS, "CUDA_SUCCESS"},
	{INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"},
	{OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"},
	{NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED"},
	{NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
	{INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE"},
	{INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT"},
	{INVALID_PTX, "CUDA_ERROR_INVALID_PTX"},
	{INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE"},
	{NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
	{STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
	{STREAM_CAPTURE_WRONG_THREAD, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD"},
};

#define SHARED_DEFAULT (48 << 10)
#define SHARED_OPTIN (99 << 10)

struct CUctx_st {
	int retains;
};
static struct CUctx_st the_ctx;
static __thread CUcontext current;
static int initialized;

#define NEED_CTX()                                          \
	do {                                                    \
		if (!initialized) return NOT_INITIALIZED;           \
		if (current != &the_ctx || the_ctx.retains <= 0)    \
			return INVALID_CONTEXT;                         \
	} while (0)

struct CUmod_st {
	char *ptx;
};

struct CUfunc_st {
	const struct fake_kernel *k;
	int max_dynamic_shared;
};

// A launch with its parameters copied, as the driver copies them.
struct launch {
	const struct fake_kernel *k;
	unsigned grid[3], block[3], shared;
	unsigned char params[FX_MAX_ARGS][FX_FAKE_PARAM_BYTES];
};

struct CUgraph_st {
	int n, cap;
	struct launch *launches;
};

struct CUgraphExec_st {
	struct CUgraph_st g;
};

struct CUstream_st {
	CUgraph capture;         // non-NULL while capturing
	pthread_t capture_thread; // the thread that began the capture
};

struct CUevent_st {
	int recorded;
	struct timespec t;
};

static void run_noop(const unsigned grid[3], const unsigned block[3], unsigned shared, void **params) {
	(void)grid, (void)block, (void)shared, (void)params;
}

static void run_axpy(const unsigned grid[3], const unsigned block[3], unsigned shared, void **params) {
	(void)shared;
	float *y, *x, a;
	unsigned n;
	memcpy(&y, params[0], 8);
	memcpy(&x, params[1], 8);
	memcpy(&a, params[2], 4);
	memcpy(&n, params[3], 4);
	unsigned long long threads = (unsigned long long)grid[0] * block[0];
	for (unsigned long long i = 0; i < threads && i < n; i++) {
		y[i] = a * x[i] + y[i];
	}
}

static const int noop_sizes[] = {8, 4}, axpy_sizes[] = {8, 8, 4, 4};

// builtins are the kernels of package cuda's test PTX.
static const struct fake_kernel builtins[] = {
	{"fx_noop", 2, noop_sizes, run_noop},
	{"fx_axpy", 4, axpy_sizes, run_axpy},
};

// find_kernel returns the kernel called name, or NULL.
static const struct fake_kernel *find_kernel(const char *name) {
	if (fx_fake_kernel != NULL) {
		const struct fake_kernel *k = fx_fake_kernel(name);
		if (k != NULL) return k;
	}
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		if (strcmp(builtins[i].name, name) == 0) return &builtins[i];
	}
	return NULL;
}

static void run(struct launch *l) {
	void *params[FX_MAX_ARGS];
	for (int i = 0; i < l->k->nparams; i++) params[i] = l->params[i];
	l->k->run(l->grid, l->block, l->shared, params);
}

CUresult cuInit(unsigned int flags) {
	const char *e = getenv("FX_FAKE_CUDA_INIT_ERROR");
	if (flags != 0) return INVALID_VALUE;
	if (e != NULL && atoi(e) != 0) return atoi(e);
	initialized = 1;
	return SUCCESS;
}

CUresult cuDriverGetVersion(int *version) {
	*version = 12080;
	return SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **str) {
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].code == error) {
			*str = names[i].name;
			return SUCCESS;
		}
	}
	*str = NULL;
	return INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **str) {
	return cuGetErrorName(error, str);
}

CUresult cuDeviceGetCount(int *count) {
	if (!initialized) return NOT_INITIALIZED;
	*count = 1;
	return SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal) {
	if (!initialized) return NOT_INITIALIZED;
	if (ordinal != 0) return INVALID_DEVICE;
	*device = 0;
	return SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
	if (dev != 0) return INVALID_DEVICE;
	if (len <= 0) return INVALID_VALUE;
	strncpy(name, "fx fake CUDA device", len - 1); // cudatest.DeviceName: tests find the emulator by it
	name[len - 1] = 0;
	return SUCCESS;
}

CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice dev) {
	if (dev != 0) return INVALID_DEVICE;
	switch (attrib) {
	case 1: *value = 1024; break;
	case 8: *value = SHARED_DEFAULT; break;
	case 13: *value = 1000000; break;
	case 16: *value = 4; break;
	case 36: *value = 1000000; break;
	case 37: *value = 256; break;
	case 38: *value = 4 << 20; break;
	case 75: *value = 8; break;
	case 76: *value = 0; break;
	case 97: *value = SHARED_OPTIN; break;
	default: return INVALID_VALUE;
	}
	return SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
	if (dev != 0) return INVALID_DEVICE;
	*bytes = (size_t)1 << 30;
	return SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
	if (!initialized) return NOT_INITIALIZED;
	if (dev != 0) return INVALID_DEVICE;
	__atomic_add_fetch(&the_ctx.retains, 1, __ATOMIC_SEQ_CST);
	*ctx = &the_ctx;
	return SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
	if (dev != 0) return INVALID_DEVICE;
	if (__atomic_sub_fetch(&the_ctx.retains, 1, __ATOMIC_SEQ_CST) < 0) {
		__atomic_add_fetch(&the_ctx.retains, 1, __ATOMIC_SEQ_CST);
		return INVALID_CONTEXT;
	}
	return SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
	if (ctx != NULL && ctx != &the_ctx) return INVALID_CONTEXT;
	current = ctx;
	return SUCCESS;
}

CUresult cuCtxSynchronize(void) {
	NEED_CTX();
	return SUCCESS;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
	NEED_CTX();
	*free = (size_t)1 << 29;
	*total = (size_t)1 << 30;
	return SUCCESS;
}

static void write_log(void **values, unsigned n, const int *options, int buf_opt, int size_opt, const char *text) {
	char *buf = NULL;
	size_t size = 0;
	unsigned size_at = n;
	for (unsigned i = 0; i < n; i++) {
		if (options[i] == buf_opt) buf = values[i];
		if (options[i] == size_opt) {
			size = (size_t)(uintptr_t)values[i];
			size_at = i;
		}
	}
	if (buf == NULL || size == 0) return;
	strncpy(buf, text, size - 1);
	buf[size - 1] = 0;
	if (size_at < n) values[size_at] = (void *)(uintptr_t)strlen(buf);
}

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
	unsigned int n, int *options, void **values) {
	NEED_CTX();
	const char *ptx = image;
	if (strncmp(ptx, ".version", 8) != 0 && strstr(ptx, "\n.version") == NULL) {
		write_log(values, n, options, 5, 6, "ptxas application ptx input, line 1; fatal   : Missing .version directive");
		return INVALID_PTX;
	}
	if (strstr(ptx, "bogus") != NULL) {
		write_log(values, n, options, 5, 6, "ptxas application ptx input, line 5; error   : Unknown symbol 'bogus'\nptxas fatal   : Ptx assembly aborted due to errors");
		return INVALID_PTX;
	}
	write_log(values, n, options, 3, 4, "fake JIT: compiled");
	struct CUmod_st *m = calloc(1, sizeof *m);
	if (m == NULL || (m->ptx = strdup(ptx)) == NULL) {
		free(m);
		return OUT_OF_MEMORY;
	}
	*module = m;
	return SUCCESS;
}

CUresult cuModuleUnload(CUmodule module) {
	NEED_CTX();
	if (module == NULL) return INVALID_HANDLE;
	free(module->ptx);
	free(module);
	return SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *fn, CUmodule module, const char *name) {
	NEED_CTX();
	if (module == NULL) return INVALID_HANDLE;
	size_t len = strlen(name);
	for (const char *p = strstr(module->ptx, ".entry "); p != NULL; p = strstr(p + 1, ".entry ")) {
		const char *q = p + strlen(".entry ");
		if (strncmp(q, name, len) == 0 && (q[len] == '(' || q[len] == ' ' || q[len] == '\n')) {
			const struct fake_kernel *k = find_kernel(name);
			if (k == NULL) return NOT_FOUND;
			struct CUfunc_st *f = calloc(1, sizeof *f);
			if (f == NULL) return OUT_OF_MEMORY;
			f->k = k;
			f->max_dynamic_shared = SHARED_DEFAULT;
			*fn = f;
			return SUCCESS;
		}
	}
	return NOT_FOUND;
}

CUresult cuFuncSetAttribute(CUfunction fn, int attrib, int value) {
	NEED_CTX();
	if (fn == NULL) return INVALID_HANDLE;
	if (attrib != 8 || value < 0 || value > SHARED_OPTIN) return INVALID_VALUE;
	fn->max_dynamic_shared = value;
	return SUCCESS;
}

CUresult cuLaunchKernel(CUfunction fn, unsigned int gx, unsigned int gy,
	unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,
	unsigned int shmem, CUstream stream, void **params, void **extra) {
	NEED_CTX();
	if (fn == NULL) return INVALID_HANDLE;
	if (gx == 0 || gy == 0 || gy > 65535 || gz == 0 || gz > 65535 || bx == 0 || bx > 1024 || by != 1 || bz != 1)
		return INVALID_VALUE;
	if (shmem > (unsigned)fn->max_dynamic_shared || extra != NULL || params == NULL) return INVALID_VALUE;
	if (fn->k->nparams > FX_MAX_ARGS) return INVALID_VALUE;
	struct launch l = {.k = fn->k, .grid = {gx, gy, gz}, .block = {bx, by, bz}, .shared = shmem};
	for (int i = 0; i < fn->k->nparams; i++) {
		int size = fn->k->param_sizes[i];
		if (size <= 0 || size > FX_FAKE_PARAM_BYTES) return INVALID_VALUE;
		memcpy(l.params[i], params[i], size);
	}
	if (stream != NULL && stream->capture != NULL) {
		CUgraph g = stream->capture;
		if (g->n == g->cap) {
			int cap = g->cap ? 2 * g->cap : 8;
			struct launch *ls = realloc(g->launches, cap * sizeof *ls);
			if (ls == NULL) return OUT_OF_MEMORY;
			g->launches = ls;
			g->cap = cap;
		}
		g->launches[g->n++] = l;
		return SUCCESS;
	}
	run(&l);
	return SUCCESS;
}

// capturing counts the streams capturing: the real driver refuses
// cuMemAlloc on the thread of a capture in thread-local mode, and this one
// on any thread, which is stricter.
static int capturing;

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
	NEED_CTX();
	if (bytes == 0) return INVALID_VALUE;
	if (__atomic_load_n(&capturing, __ATOMIC_SEQ_CST) > 0) return STREAM_CAPTURE_UNSUPPORTED;
	void *p = malloc(bytes);
	if (p == NULL) return OUT_OF_MEMORY;
	*ptr = (CUdeviceptr)(uintptr_t)p;
	return SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
	NEED_CTX();
	free((void *)(uintptr_t)ptr);
	return SUCCESS;
}

CUresult cuMemHostAlloc(void **ptr, size_t bytes, unsigned int flags) {
	NEED_CTX();
	if (bytes == 0 || flags != 0) return INVALID_VALUE;
	*ptr = malloc(bytes);
	return *ptr == NULL ? OUT_OF_MEMORY : SUCCESS;
}

CUresult cuMemFreeHost(void *ptr) {
	NEED_CTX();
	free(ptr);
	return SUCCESS;
}

#define NOT_CAPTURING(stream) \
	if ((stream) != NULL && (stream)->capture != NULL) return STREAM_CAPTURE_UNSUPPORTED

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, CUstream stream) {
	NEED_CTX();
	NOT_CAPTURING(stream);
	memcpy((void *)(uintptr_t)dst, src, bytes);
	return SUCCESS;
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, CUstream stream) {
	NEED_CTX();
	NOT_CAPTURING(stream);
	memcpy(dst, (void *)(uintptr_t)src, bytes);
	return SUCCESS;
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) {
	NEED_CTX();
	NOT_CAPTURING(stream);
	memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, bytes);
	return SUCCESS;
}

CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int value, size_t n, CUstream stream) {
	NEED_CTX();
	NOT_CAPTURING(stream);
	unsigned int *p = (void *)(uintptr_t)dst;
	for (size_t i = 0; i < n; i++) p[i] = value;
	return SUCCESS;
}

CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
	NEED_CTX();
	if (flags > 1) return INVALID_VALUE;
	*stream = calloc(1, sizeof **stream);
	return *stream == NULL ? OUT_OF_MEMORY : SUCCESS;
}

CUresult cuStreamDestroy_v2(CUstream stream) {
	NEED_CTX();
	if (stream == NULL) return INVALID_HANDLE;
	free(stream);
	return SUCCESS;
}

CUresult cuStreamSynchronize(CUstream stream) {
	NEED_CTX();
	NOT_CAPTURING(stream);
	return SUCCESS;
}

CUresult cuEventCreate(CUevent *event, unsigned int flags) {
	NEED_CTX();
	if (flags != 0) return INVALID_VALUE;
	*event = calloc(1, sizeof **event);
	return *event == NULL ? OUT_OF_MEMORY : SUCCESS;
}

CUresult cuEventRecord(CUevent event, CUstream stream) {
	NEED_CTX();
	if (event == NULL) return INVALID_HANDLE;
	NOT_CAPTURING(stream);
	event->recorded = 1;
	clock_gettime(CLOCK_MONOTONIC, &event->t);
	return SUCCESS;
}

CUresult cuEventSynchronize(CUevent event) {
	NEED_CTX();
	return event == NULL ? INVALID_HANDLE : SUCCESS;
}

CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
	NEED_CTX();
	if (start == NULL || end == NULL || !start->recorded || !end->recorded) return INVALID_HANDLE;
	*ms = (float)((end->t.tv_sec - start->t.tv_sec) * 1e3 + (end->t.tv_nsec - start->t.tv_nsec) / 1e6);
	return SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent event) {
	NEED_CTX();
	if (event == NULL) return INVALID_HANDLE;
	free(event);
	return SUCCESS;
}

CUresult cuStreamBeginCapture_v2(CUstream stream, int mode) {
	NEED_CTX();
	if (stream == NULL) return STREAM_CAPTURE_UNSUPPORTED;
	if (stream->capture != NULL || mode < 0 || mode > 2) return INVALID_VALUE;
	stream->capture = calloc(1, sizeof *stream->capture);
	if (stream->capture == NULL) return OUT_OF_MEMORY;
	stream->capture_thread = pthread_self();
	__atomic_add_fetch(&capturing, 1, __ATOMIC_SEQ_CST);
	return SUCCESS;
}

CUresult cuStreamEndCapture(CUstream stream, CUgraph *graph) {
	NEED_CTX();
	if (stream == NULL || stream->capture == NULL) return INVALID_VALUE;
	// Thread-local (and global) capture ends on the thread that began it.
	if (!pthread_equal(stream->capture_thread, pthread_self())) return STREAM_CAPTURE_WRONG_THREAD;
	*graph = stream->capture;
	stream->capture = NULL;
	__atomic_sub_fetch(&capturing, 1, __ATOMIC_SEQ_CST);
	return SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph, unsigned long long flags) {
	NEED_CTX();
	if (graph == NULL) return INVALID_HANDLE;
	if (flags != 0) return INVALID_VALUE;
	struct CUgraphExec_st *e = calloc(1, sizeof *e);
	if (e == NULL) return OUT_OF_MEMORY;
	e->g.n = e->g.cap = graph->n;
	e->g.launches = malloc((graph->n + 1) * sizeof *graph->launches);
	if (e->g.launches == NULL) {
		free(e);
		return OUT_OF_MEMORY;
	}
	memcpy(e->g.launches, graph->launches, graph->n * sizeof *graph->launches);
	*exec = e;
	return SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec exec, CUstream stream) {
	NEED_CTX();
	if (exec == NULL) return INVALID_HANDLE;
	NOT_CAPTURING(stream);
	for (int i = 0; i < exec->g.n; i++) run(&exec->g.launches[i]);
	return SUCCESS;
}

CUresult cuGraphExecDestroy(CUgraphExec exec) {
	NEED_CTX();
	if (exec == NULL) return INVALID_HANDLE;
	free(exec->g.launches);
	free(exec);
	return SUCCESS;
}

#ifndef FX_FAKE_OMIT_GRAPH_DESTROY
CUresult cuGraphDestroy(CUgraph graph) {
	NEED_CTX();
	if (graph == NULL) return INVALID_HANDLE;
	free(graph->launches);
	free(graph);
	return SUCCESS;
}
#endif
