//go:build !fxpurego

// The emulated device runs once, in the default build: with fxpurego only
// the CPU reference changes.

package transformer_test

import (
	"testing"

	"github.com/modelforensics/fx/cuda/cudatest"
)

// TestEmulatedDevice runs the PyTorch-golden tests (activations at every
// hook, greedy generation, interventions, gradients), the fused ops
// against the hooked path, logits at given positions, the KV cache
// against recomputation and the decoder's captured steps against the KV
// cache on the emulated CUDA device (cuda/cudatest), as FX_TEST_DEVICE=cuda
// runs them on a card.
func TestEmulatedDevice(t *testing.T) {
	cudatest.Rerun(t, "^(TestGoldenActivations|TestGenerateGreedyMatchesTorch|TestInterventionsMatchTorch|TestGradientsMatchTorch|TestFusedMatchesHooked|TestLogitPositions|TestKVCacheMatchesRecompute|TestDecoderMatchesKVCache)$",
		"FX_TEST_DEVICE=cuda")
}
