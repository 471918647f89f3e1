//go:build !fxpurego

// The emulated device runs once, in the default build: with fxpurego only
// the CPU reference changes.

package gpu

import (
	"testing"

	"github.com/modelforensics/fx/cuda/cudatest"
)

// TestEmulatedDevice runs this package's device tests on the emulated
// device (cuda/cudatest; card-sized cases left out): every op on every
// precision, graph capture, models, interventions, gradients and generation against the
// CPU backend, through the Go code and the kernels that run on a card.
// MatMul's edge shapes, BF16's shapes and AddLayerNorm's bits run on a
// sample of their grids (ThinOnEmulator); FX_EMULATED_FULL=1 runs them
// whole (about 8 minutes more on 2 cores).
func TestEmulatedDevice(t *testing.T) {
	cudatest.Rerun(t, "^(TestConformance|TestOpsMatchCPU|TestEditMatchesCPU|TestToHostAsync|TestModelsMatchCPU|"+
		"TestInterventionsMatchCPU|TestGradientsMatchCPU|TestGenerateMatchesCPU|"+
		"TestAddLayerNormBits|TestMatMulEdgesOnDevice|TestMatMulBF16OnDevice|TestCapture|TestCaptureKeepsWorkspace)$")
}
