// Package cudatest runs tests against the emulated device: the fake CUDA
// driver of package cuda's tests (cuda/testdata/fakecuda.c) linked with
// every fx kernel compiled for the host emulator
// (kernels/emu/fakekernels.cpp), so that engine/gpu and the packages above
// it run whole on a machine without a GPU: the Go code's launches,
// argument packing, pools, copies, events and graphs against the kernels'
// real code, about a million times slower than a card. Tests call Rerun,
// which builds the driver once and runs the test binary again against it.
package cudatest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/modelforensics/fx/cuda"
)

// ChildEnv is set in the environment of a test binary Rerun started, so
// that the test that called Rerun skips itself there.
const ChildEnv = "FX_CUDA_EMULATED"

// DeviceName is the name the emulated device reports (cuDeviceGetName).
const DeviceName = "fx fake CUDA device"

// ErrUnsupported says that this machine cannot build the emulated driver:
// it is not linux/amd64 (the fibers' context switch) or has no C and C++
// compiler. Rerun skips on it and fails on any other error.
var ErrUnsupported = errors.New("cudatest: the emulated driver cannot be built here")

// Compilers returns the C and C++ compilers Build uses: clang-14 and
// clang++-14 (CI's), else cc and c++; it fails when there is none.
func Compilers() (cc, cxx string, err error) {
	for _, pair := range [][2]string{{"clang-14", "clang++-14"}, {"cc", "c++"}} {
		a, errA := exec.LookPath(pair[0])
		b, errB := exec.LookPath(pair[1])
		if errA == nil && errB == nil {
			return a, b, nil
		}
	}
	return "", "", fmt.Errorf("%w: no C and C++ compiler (clang-14 and clang++-14, or cc and c++)", ErrUnsupported)
}

// repoRoot returns the repository's root, from this file's path.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cudatest: cannot find the source tree")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "kernels", "emu", "fakekernels.cpp")); err != nil {
		return "", fmt.Errorf("cudatest: source tree: %w", err)
	}
	return root, nil
}

// sources returns the files the emulated driver is built from.
func sources(root string) ([]string, error) {
	var files []string
	for _, pattern := range []string{"kernels/*.cu", "kernels/*.h", "kernels/emu/fx_emu.h", "kernels/emu/fakekernels.cpp",
		"cuda/fxcuda.h", "cuda/testdata/fakecuda.c", "cuda/testdata/fake_kernel.h"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil || len(m) == 0 {
			return nil, fmt.Errorf("cudatest: no %s in %s", pattern, root)
		}
		files = append(files, m...)
	}
	return files, nil
}

// Driver returns a directory holding the emulated driver, libcuda.so.1,
// built from the current sources: once, then reused from the system's
// temporary directory (fx-emulated-cuda-HASH) by every test binary until a
// source changes.
func Driver() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	files, err := sources(root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("cudatest: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	dir := filepath.Join(os.TempDir(), "fx-emulated-cuda-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "libcuda.so.1")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "fx-emulated-build-")
	if err != nil {
		return "", fmt.Errorf("cudatest: %w", err)
	}
	if err := Build(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp) // another test binary built it first
		if _, serr := os.Stat(filepath.Join(dir, "libcuda.so.1")); serr != nil {
			return "", fmt.Errorf("cudatest: %w", err)
		}
	}
	return dir, nil
}

// Build compiles the emulated driver into dir/libcuda.so.1.
func Build(dir string) error {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return fmt.Errorf("%w: the emulator's fibers need linux/amd64, not %s/%s", ErrUnsupported, runtime.GOOS, runtime.GOARCH)
	}
	cc, cxx, err := Compilers()
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	kernels := filepath.Join(root, "kernels")
	cudaDir := filepath.Join(root, "cuda")
	steps := [][]string{
		{cxx, "-std=c++17", "-O2", "-fPIC", "-I", kernels, "-I", cudaDir, "-c", filepath.Join(kernels, "emu", "fakekernels.cpp"), "-o", filepath.Join(dir, "fakekernels.o")},
		{cc, "-O1", "-fPIC", "-I", cudaDir, "-c", filepath.Join(cudaDir, "testdata", "fakecuda.c"), "-o", filepath.Join(dir, "fakecuda.o")},
		{cxx, "-shared", "-o", filepath.Join(dir, "libcuda.so.1"), filepath.Join(dir, "fakekernels.o"), filepath.Join(dir, "fakecuda.o"), "-pthread"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("cudatest: %s: %w\n%s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// Rerun runs the current test binary again against the emulated device,
// with -test.run pattern (and -test.v), the extra environment variables
// env ("NAME=value") and ChildEnv set, and fails t unless it passes; it
// logs the child's test lines. It skips t in such a child, where a real
// CUDA device is present (the tests run on it; bench/gpu/run.sh), where it
// cannot build the driver, and with -short.
func Rerun(t *testing.T, pattern string, env ...string) {
	t.Helper()
	if os.Getenv(ChildEnv) != "" {
		t.Skip("running on the emulated device already")
	}
	if _, err := cuda.Load(); err == nil {
		t.Skip("a CUDA driver and device are present: the device tests run on them instead")
	}
	if testing.Short() {
		t.Skip("-short: the emulated device is slow")
	}
	dir, err := Driver()
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", pattern, "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir, ChildEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--- ") || strings.Contains(l, "FAIL") || strings.Contains(l, "panic") ||
			strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "PASS") {
			lines = append(lines, l)
		}
	}
	t.Logf("on the emulated device (-test.run %q):\n%s", pattern, strings.Join(lines, "\n"))
	if err != nil {
		t.Fatalf("on the emulated device: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS") {
		t.Fatalf("on the emulated device: no test ran for -test.run %q\n%s", pattern, out.String())
	}
}
