package cpu_test

import (
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
)

// readOnly returns a copy of vals in memory mapped without write access, as
// mmapped weights are.
func readOnly(t *testing.T, vals []float32) []float32 {
	t.Helper()
	size := max(4*len(vals), 1)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	out := unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), len(vals))
	copy(out, vals)
	require.NoError(t, syscall.Mprotect(mem, syscall.PROT_READ))
	return out
}

// TestReadOnlyInputs runs every op on inputs in read-only memory: a write
// into an input faults, which SetPanicOnFault turns into a test failure.
func TestReadOnlyInputs(t *testing.T) {
	be := cpu.New(cpu.WithWorkers(1)) // ops run on the calling goroutine
	ro := func(seed uint64, shape ...int) *engine.Tensor {
		return be.FromHost(readOnly(t, randSlice(seed, engine.NumElements(shape))), shape...)
	}
	const nb, tt, h, dh = 2, 5, 2, 8
	x := ro(1, 3, 16)
	q, k, v := ro(2, nb, tt, h, dh), ro(3, nb, tt, h, dh), ro(4, nb, tt, h, dh)
	p := be.FromHost(readOnly(t, be.Softmax(be.AttnScores(q, k, 1, engine.AttnMask{Causal: true})).Host()), nb, h, tt, tt)
	ops := map[string]func(){
		"MatMul":         func() { be.MatMul(x, ro(5, 16, 7), ro(6, 7), false) },
		"MatMul transW":  func() { be.MatMul(x, ro(5, 7, 16), ro(6, 7), true) },
		"LayerNorm":      func() { be.LayerNorm(x, ro(7, 16), ro(8, 16), 1e-5) },
		"LayerNormScale": func() { be.LayerNormScale(x, 1e-5) },
		"GELU":           func() { be.GELU(x, engine.GELUErf) },
		"Tanh":           func() { be.Tanh(x) },
		"Add":            func() { be.Add(x, ro(9, 16)) },
		"Embedding":      func() { be.Embedding(x, []int32{2, 0}) },
		"Rows":           func() { be.Rows(x, []int{1}) },
		"SliceLast":      func() { be.SliceLast(x, 2, 9) },
		"Concat":         func() { be.Concat(q, k) },
		"AttnScores":     func() { be.AttnScores(q, k, 0.5, engine.AttnMask{Causal: true}) },
		"Softmax":        func() { be.Softmax(x) },
		"AttnMix":        func() { be.AttnMix(p, v) },
		"HeadResult":     func() { be.HeadResult(q, ro(10, h*dh, 3), false) },
		"SumAxis":        func() { be.SumAxis(q, 2) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			require.NotPanics(t, op)
		})
	}
}
