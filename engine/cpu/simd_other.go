//go:build !amd64 || fxpurego

package cpu

// avx2Kernels returns nil: the AVX2 kernels exist on amd64 only, and
// not with the fxpurego build tag.
func avx2Kernels() *simdKernels { return nil }

// avx512Kernels returns nil, as avx2Kernels does.
func avx512Kernels() *simdKernels { return nil }
