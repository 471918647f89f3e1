package cuda_test

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
)

// TestLoadWithoutDriver checks what Load says on a machine without
// libcuda.so.1 (or in a build without cgo). It skips where a driver loads.
func TestLoadWithoutDriver(t *testing.T) {
	d, err := cuda.Load()
	if err == nil {
		t.Skip("libcuda.so.1 loaded: this machine has a CUDA driver")
	}
	var ce *cuda.Error
	if errors.As(err, &ce) {
		t.Skipf("libcuda.so.1 loaded but cuInit failed: %v", err)
	}
	assert.Nil(t, d)
	require.ErrorIs(t, err, cuda.ErrNoDriver)
	assert.Contains(t, err.Error(), "libcuda.so.1")
	assert.NotEqual(t, cuda.ErrNoDriver.Error(), err.Error(), "the error should say why (dlerror, or no cgo)")
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		name string
		err  *cuda.Error
		want string
	}{
		{"named", &cuda.Error{Op: "cuMemAlloc 1024 bytes", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"},
			"cuda: cuMemAlloc 1024 bytes: CUDA_ERROR_OUT_OF_MEMORY (2)"},
		{"function", &cuda.Error{Op: `cuModuleGetFunction "fx_axpy" in module "axpy"`, Code: 500, Name: "CUDA_ERROR_NOT_FOUND"},
			`cuda: cuModuleGetFunction "fx_axpy" in module "axpy": CUDA_ERROR_NOT_FOUND (500)`},
		{"unnamed", &cuda.Error{Op: "cuInit", Code: 12345},
			"cuda: cuInit: unnamed CUresult (12345)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.err.Error())
			var target *cuda.Error
			require.ErrorAs(t, error(tc.err), &target)
			assert.Equal(t, tc.err.Code, target.Code)
		})
	}
}

func TestArgs(t *testing.T) {
	cases := []struct {
		name string
		set  func(a *cuda.Args)
		slot int
		want uint64
	}{
		{"ptr", func(a *cuda.Args) { a.SetPtr(0, 0x7f00_1234_5678) }, 0, 0x7f00_1234_5678},
		{"int", func(a *cuda.Args) { a.SetInt(3, 100_003) }, 3, 100_003},
		{"negative int", func(a *cuda.Args) { a.SetInt(1, -1) }, 1, 0xffff_ffff},
		{"min int32", func(a *cuda.Args) { a.SetInt(1, math.MinInt32) }, 1, 0x8000_0000},
		{"max uint32", func(a *cuda.Args) { a.SetInt(2, math.MaxUint32) }, 2, 0xffff_ffff},
		{"float", func(a *cuda.Args) { a.SetFloat(cuda.MaxArgs-1, 0.5) }, cuda.MaxArgs - 1, 0x3f00_0000},
		{"negative float", func(a *cuda.Args) { a.SetFloat(4, -2) }, 4, 0xc000_0000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a cuda.Args
			for i := range a {
				a[i] = 0xdead_beef_dead_beef
			}
			tc.set(&a)
			assert.Equal(t, tc.want, a[tc.slot], "slot %d: %#x", tc.slot, a[tc.slot])
			for i := range a {
				if i != tc.slot {
					assert.Equal(t, uint64(0xdead_beef_dead_beef), a[i], "slot %d changed", i)
				}
			}
		})
	}
}

func TestArgsSetIntOutOfRange(t *testing.T) {
	for _, v := range []int{math.MinInt32 - 1, math.MaxUint32 + 1, math.MaxInt64} {
		var a cuda.Args
		assert.Panics(t, func() { a.SetInt(0, v) }, "SetInt(0, %d)", v)
	}
	var a cuda.Args
	assert.Panics(t, func() { a.SetPtr(cuda.MaxArgs, 1) }, "slot MaxArgs")
}
