//go:build !amd64

package cpu

// avx2Kernels returns nil: the AVX2 kernels exist on amd64 only.
func avx2Kernels() *simdKernels { return nil }
