package recorder

import (
	"testing"

	"github.com/modelforensics/fx/cuda/cudatest"
)

// TestEmulatedDevice runs the recorder's tests on the emulated CUDA device
// (cuda/cudatest), as FX_TEST_DEVICE=cuda runs them on a card: recordings
// through the device path (record.cu's kernels, pinned asynchronous
// copies) against the host path bit for bit, in FP32 and BF16 mode.
func TestEmulatedDevice(t *testing.T) {
	const tests = "TestRecordingIsFaithful|TestGenerationRecording|TestLevels|TestInterventionsAreRecordedAsTheyFlow|" +
		"TestRowSketchMatchesHost|TestDevicePathMatchesHostPath"
	for _, dev := range []string{"cuda", "cuda-bf16"} {
		t.Run(dev, func(t *testing.T) {
			cudatest.Rerun(t, "^("+tests+")$", "FX_TEST_DEVICE="+dev)
		})
	}
}
