// fake_kernel.h: a kernel that the fake driver (fakecuda.c) can run. The
// fake has two test kernels of its own (fx_noop, fx_axpy); a library
// linked with it can add more by defining fx_fake_kernel, as
// kernels/emu/fakekernels.cpp does with every fx kernel run on the host
// emulator.

#ifndef FX_FAKE_KERNEL_H
#define FX_FAKE_KERNEL_H

// FX_FAKE_PARAM_BYTES is the largest kernel parameter the fake copies.
#define FX_FAKE_PARAM_BYTES 8

struct fake_kernel {
	const char *name;
	int nparams;
	const int *param_sizes; // bytes of each parameter, at most FX_FAKE_PARAM_BYTES
	// run runs the kernel on grid × block threads with shared bytes of
	// dynamic shared memory; params[i] points at parameter i.
	void (*run)(const unsigned grid[3], const unsigned block[3], unsigned shared, void **params);
};

#ifdef __cplusplus
extern "C"
#endif
	// fx_fake_kernel returns the kernel called name, or NULL. It is weak:
	// without a library that defines it, its address is NULL.
	__attribute__((weak)) const struct fake_kernel *
	fx_fake_kernel(const char *name);

#endif
