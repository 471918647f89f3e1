// Package devicetest gives tests the backend $FX_TEST_DEVICE names, so
// that a package's tests against its PyTorch goldens also run on a GPU.
package devicetest

import (
	"os"
	"testing"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/engine/device"
	"github.com/modelforensics/fx/engine/gpu"
)

// Env is the environment variable that Backend reads.
const Env = "FX_TEST_DEVICE"

// Backend returns the backend that $FX_TEST_DEVICE names (device.Open's names;
// the CPU when unset), so that a package's tests against its PyTorch
// goldens run on a GPU too: FX_TEST_DEVICE=cuda go test ./transformer.
// A test's CUDA backend runs with Poison on, so that an element a kernel
// leaves unwritten shows up as NaN; a benchmark's does not, as that fill
// of every new tensor would be timed with the ops.
func Backend(tb testing.TB) engine.Backend {
	tb.Helper()
	name := os.Getenv(Env)
	if name == "" || name == "cpu" {
		return cpu.New()
	}
	opts, ok := device.ParseCUDA(name)
	if !ok {
		tb.Fatalf("%s=%q: want %s", Env, name, device.Names)
	}
	_, bench := tb.(*testing.B)
	opts.Poison = !bench
	b, err := gpu.New(opts)
	if err != nil {
		tb.Fatalf("%s=%s: %v", Env, name, err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("closing %s: %v", b.Name(), err)
		}
	})
	return b
}
