//go:build cgo

package cuda_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
)

// TestFakeDriver runs this test binary again against testdata/fakecuda.c, a
// stand-in libcuda.so.1 that runs the test kernels on the CPU, so that the
// cgo and C layers (function table, argument passing, current context per
// thread, errors and JIT logs) are tested on machines without a GPU.
func TestFakeDriver(t *testing.T) {
	if os.Getenv("FX_CUDA_HELPER") != "" {
		t.Skip("running as a helper")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build the fake driver")
	}
	src, err := filepath.Abs(filepath.Join("testdata", "fakecuda.c"))
	require.NoError(t, err)
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no fake driver source: %v", err)
	}
	cases := []struct {
		name    string
		defines []string
		env     []string
		args    []string
		want    []string
		notWant []string
	}{
		{
			name: "gpu tests",
			env:  []string{"FX_CUDA_REQUIRE_GPU=1"},
			args: []string{"-test.run=^TestGPU", "-test.bench=.", "-test.benchtime=100x"},
			want: []string{"--- PASS: TestGPUAxpy", "--- PASS: TestGPUGraph", "--- PASS: TestGPULaunchAllocs",
				"BenchmarkLaunch", "BenchmarkGraphLaunch", "PASS"},
			notWant: []string{"--- SKIP", "--- FAIL"},
		},
		{
			name:    "missing symbol",
			defines: []string{"-DFX_FAKE_OMIT_GRAPH_DESTROY"},
			env:     []string{"FX_CUDA_HELPER=load"},
			args:    []string{"-test.run=^TestHelperLoad$"},
			want:    []string{"load: cuda: libcuda.so.1 has no function cuGraphDestroy"},
		},
		{
			name: "no device",
			env:  []string{"FX_CUDA_HELPER=load", "FX_FAKE_CUDA_INIT_ERROR=100"},
			args: []string{"-test.run=^TestHelperLoad$"},
			want: []string{"load: cuda: cuInit: CUDA_ERROR_NO_DEVICE (100)"},
		},
		{
			name:    "no device skips",
			env:     []string{"FX_FAKE_CUDA_INIT_ERROR=100"},
			args:    []string{"-test.run=^TestGPUAxpy$"},
			want:    []string{"--- SKIP: TestGPUAxpy", "CUDA_ERROR_NO_DEVICE"},
			notWant: []string{"--- FAIL"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			build := append([]string{"-shared", "-fPIC", "-I", filepath.Dir(filepath.Dir(src)), "-o", filepath.Join(dir, "libcuda.so.1")}, tc.defines...)
			out, err := exec.Command(cc, append(build, src)...).CombinedOutput()
			require.NoError(t, err, "build the fake driver: %s", out)

			cmd := exec.Command(os.Args[0], append(tc.args, "-test.v", "-test.count=1")...)
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir, "FX_CUDA_HELPER=fake")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err = cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, w := range tc.want {
				assert.Contains(t, string(out), w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, string(out), w)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// TestHelperLoad prints Load's error, for TestFakeDriver to check.
func TestHelperLoad(t *testing.T) {
	if os.Getenv("FX_CUDA_HELPER") != "load" {
		t.Skip("a helper for TestFakeDriver")
	}
	_, err := cuda.Load()
	fmt.Println("load:", strings.ReplaceAll(fmt.Sprint(err), "\n", " "))
}
