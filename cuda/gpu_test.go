package cuda_test

// The TestGPU tests and the benchmarks need a CUDA device. They skip where
// Load finds no driver or no device, unless FX_CUDA_REQUIRE_GPU is set (as the
// device scripts and TestFakeDriver set it), where they fail instead.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
)

// testPTX holds the test kernels, written by hand:
//
//	fx_axpy(float *y, const float *x, float a, unsigned n): y[i] = a*x[i] + y[i] for i < n
//	fx_noop(float *p, unsigned n): nothing, for timing launches
const testPTX = `.version 7.0
.target sm_80
.address_size 64

.visible .entry fx_axpy(
	.param .u64 fx_axpy_param_y,
	.param .u64 fx_axpy_param_x,
	.param .f32 fx_axpy_param_a,
	.param .u32 fx_axpy_param_n
)
{
	.reg .pred %p<2>;
	.reg .b32 %r<6>;
	.reg .f32 %f<5>;
	.reg .b64 %rd<8>;

	ld.param.u64 %rd1, [fx_axpy_param_y];
	ld.param.u64 %rd2, [fx_axpy_param_x];
	ld.param.f32 %f1, [fx_axpy_param_a];
	ld.param.u32 %r1, [fx_axpy_param_n];
	mov.u32 %r2, %ctaid.x;
	mov.u32 %r3, %ntid.x;
	mov.u32 %r4, %tid.x;
	mad.lo.s32 %r5, %r2, %r3, %r4;
	setp.ge.u32 %p1, %r5, %r1;
	@%p1 bra DONE;
	cvta.to.global.u64 %rd3, %rd1;
	cvta.to.global.u64 %rd4, %rd2;
	mul.wide.u32 %rd5, %r5, 4;
	add.s64 %rd6, %rd4, %rd5;
	ld.global.f32 %f2, [%rd6];
	add.s64 %rd7, %rd3, %rd5;
	ld.global.f32 %f3, [%rd7];
	fma.rn.f32 %f4, %f1, %f2, %f3;
	st.global.f32 [%rd7], %f4;
DONE:
	ret;
}

.visible .entry fx_noop(
	.param .u64 fx_noop_param_p,
	.param .u32 fx_noop_param_n
)
{
	ret;
}
`

// gpu is what the GPU tests share: a context on device 0, a stream, and the
// test kernels.
type gpu struct {
	dev    cuda.Device
	ctx    *cuda.Context
	stream *cuda.Stream
	axpy   cuda.Function
	noop   cuda.Function
}

// newGPU sets up a gpu for t, or skips t where there is no CUDA device.
// Everything is closed when t ends.
func newGPU(t testing.TB) *gpu {
	t.Helper()
	d, err := cuda.Load()
	var ce *cuda.Error
	switch {
	case errors.Is(err, cuda.ErrNoDriver),
		errors.As(err, &ce) && ce.Name == "CUDA_ERROR_NO_DEVICE":
		noGPU(t, err.Error())
	case err != nil:
		t.Fatal(err)
	}
	n, err := d.DeviceCount()
	require.NoError(t, err)
	if n == 0 {
		noGPU(t, "no CUDA device")
	}
	dev, err := d.Device(0)
	require.NoError(t, err)
	ctx, err := dev.RetainPrimaryContext()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ctx.Close()) })
	stream, err := ctx.NewStream()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, stream.Close()) })
	mod, err := ctx.LoadModule("test", testPTX)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, mod.Close()) })
	g := &gpu{dev: dev, ctx: ctx, stream: stream}
	g.axpy, err = mod.Function("fx_axpy")
	require.NoError(t, err)
	g.noop, err = mod.Function("fx_noop")
	require.NoError(t, err)
	return g
}

func noGPU(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("FX_CUDA_REQUIRE_GPU") != "" {
		t.Fatalf("FX_CUDA_REQUIRE_GPU is set but there is no GPU: %s", why)
	}
	t.Skip(why)
}

// alloc allocates device memory for n float32s, freed when t ends.
func (g *gpu) alloc(t testing.TB, n int) cuda.DevicePtr {
	t.Helper()
	p, err := g.ctx.Alloc(4 * n)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, g.ctx.Free(p)) })
	return p
}

// upload copies v to new device memory.
func (g *gpu) upload(t testing.TB, v []float32) cuda.DevicePtr {
	t.Helper()
	p := g.alloc(t, len(v))
	require.NoError(t, g.stream.CopyHtoD(p, unsafe.Pointer(&v[0]), 4*len(v)))
	return p
}

// download copies n float32s from p to a new slice.
func (g *gpu) download(t testing.TB, p cuda.DevicePtr, n int) []float32 {
	t.Helper()
	v := make([]float32, n)
	require.NoError(t, g.stream.CopyDtoH(unsafe.Pointer(&v[0]), p, 4*n))
	require.NoError(t, g.stream.Synchronize())
	return v
}

// launchAxpy queues y = a*x + y over n elements, with blocks of 256 threads.
func (g *gpu) launchAxpy(s *cuda.Stream, y, x cuda.DevicePtr, a float32, n int, args *cuda.Args) error {
	args.SetPtr(0, y)
	args.SetPtr(1, x)
	args.SetFloat(2, a)
	args.SetInt(3, n)
	grid := cuda.Dim3{X: uint32((n + 255) / 256), Y: 1, Z: 1}
	return s.Launch(g.axpy, grid, cuda.Dim3{X: 256, Y: 1, Z: 1}, 0, args, 4)
}

// assertAll checks every element of got against want(i), reporting the count
// of mismatches and the first few.
func assertAll(t *testing.T, got []float32, want func(i int) float32) {
	t.Helper()
	bad := 0
	for i, v := range got {
		if w := want(i); v != w {
			if bad < 5 {
				t.Errorf("element %d: got %v, want %v", i, v, w)
			}
			bad++
		}
	}
	assert.Zero(t, bad, "mismatched elements of %d", len(got))
}

func TestGPUDevice(t *testing.T) {
	g := newGPU(t)
	name, err := g.dev.Name()
	require.NoError(t, err)
	assert.NotEmpty(t, name)
	total, err := g.dev.TotalMem()
	require.NoError(t, err)
	assert.Positive(t, total)
	free, ctxTotal, err := g.ctx.MemInfo()
	require.NoError(t, err)
	assert.Positive(t, free)
	assert.LessOrEqual(t, free, ctxTotal)
	t.Logf("%s: %d MiB, %d MiB free", name, total>>20, free>>20)

	cases := []struct {
		name string
		attr cuda.DeviceAttribute
		min  int
	}{
		{"max threads per block", cuda.AttrMaxThreadsPerBlock, 256},
		{"max shared memory per block", cuda.AttrMaxSharedMemoryPerBlock, 16 << 10},
		{"max shared memory per block (opt-in)", cuda.AttrMaxSharedMemoryPerBlockOptin, 16 << 10},
		{"multiprocessors", cuda.AttrMultiprocessorCount, 1},
		{"compute capability major", cuda.AttrComputeCapabilityMajor, 8}, // the test PTX targets sm_80
		{"compute capability minor", cuda.AttrComputeCapabilityMinor, 0},
		{"L2 cache", cuda.AttrL2CacheSize, 1},
		{"bus width", cuda.AttrGlobalMemoryBusWidth, 1},
		{"clock rate", cuda.AttrClockRate, 0},
		{"memory clock rate", cuda.AttrMemoryClockRate, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := g.dev.Attribute(tc.attr)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, v, tc.min)
			t.Logf("%s = %d", tc.name, v)
		})
	}
	_, err = g.dev.Attribute(cuda.DeviceAttribute(-1))
	var ce *cuda.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CUDA_ERROR_INVALID_VALUE", ce.Name)
}

func TestGPUAxpy(t *testing.T) {
	g := newGPU(t)
	for _, n := range []int{1, 255, 256, 257, 100_003} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x, y := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i] = float32(i % 1000)
				y[i] = float32(2 * (i % 777))
			}
			dx, dy := g.upload(t, x), g.upload(t, y)
			var args cuda.Args
			require.NoError(t, g.launchAxpy(g.stream, dy, dx, 0.5, n, &args))
			// Values are small integers and halves: exact with or without FMA.
			assertAll(t, g.download(t, dy, n), func(i int) float32 { return 0.5*x[i] + y[i] })
		})
	}
}

func TestGPUModuleErrors(t *testing.T) {
	g := newGPU(t)
	const bad = ".version 7.0\n.target sm_80\n.address_size 64\n.visible .entry fx_bad()\n{\n\tbogus.instruction;\n\tret;\n}\n"
	cases := []struct {
		name, ptx string
		want      []string
	}{
		{"bad instruction", bad, []string{`module "broken"`, "CUDA_ERROR_INVALID_PTX", "JIT log", "ptxas"}},
		{"not PTX", "this is not PTX", []string{`module "broken"`, "JIT log"}},
		{"empty", "", []string{`module "broken"`, "empty PTX"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := g.ctx.LoadModule("broken", tc.ptx)
			require.Error(t, err)
			assert.Nil(t, m)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			t.Log(err)
		})
	}

	m, err := g.ctx.LoadModule("kernels", testPTX)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Function("fx_missing")
	var ce *cuda.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CUDA_ERROR_NOT_FOUND", ce.Name)
	assert.Contains(t, err.Error(), `"fx_missing" in module "kernels"`)
}

func TestGPULaunchErrors(t *testing.T) {
	g := newGPU(t)
	var args cuda.Args
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	cases := []struct {
		name  string
		grid  cuda.Dim3
		block cuda.Dim3
		args  *cuda.Args
		nargs int
		want  string
	}{
		{"too many args", one, one, &args, cuda.MaxArgs + 1, "25 parameters"},
		{"nil args", one, one, nil, 2, "2 parameters"},
		{"zero block", one, cuda.Dim3{}, &args, 2, "CUDA_ERROR_INVALID_VALUE"},
		{"huge block", one, cuda.Dim3{X: 1 << 20, Y: 1, Z: 1}, &args, 2, "CUDA_ERROR_INVALID_VALUE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := g.stream.Launch(g.noop, tc.grid, tc.block, 0, tc.args, tc.nargs)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), `"fx_noop"`)
		})
	}
	require.NoError(t, g.stream.Synchronize())
}

func TestGPULaunchAllocs(t *testing.T) {
	g := newGPU(t)
	const n = 4096
	x, y := g.alloc(t, n), g.alloc(t, n)
	block := cuda.Dim3{X: 256, Y: 1, Z: 1}
	grid := cuda.Dim3{X: n / 256, Y: 1, Z: 1}
	allocs := testing.AllocsPerRun(100, func() {
		var args cuda.Args // on the stack, unless Launch lets it escape
		args.SetPtr(0, y)
		args.SetPtr(1, x)
		args.SetFloat(2, 1)
		args.SetInt(3, n)
		if err := g.stream.Launch(g.axpy, grid, block, 0, &args, 4); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "allocations per Launch")
	require.NoError(t, g.stream.Synchronize())
}

func TestGPUSharedMemoryOptin(t *testing.T) {
	g := newGPU(t)
	optin, err := g.dev.Attribute(cuda.AttrMaxSharedMemoryPerBlockOptin)
	require.NoError(t, err)
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	var args cuda.Args
	// Above the 48 KiB default a launch fails until the kernel opts in.
	require.Error(t, g.stream.Launch(g.noop, one, one, optin, &args, 2))
	require.NoError(t, g.noop.SetMaxDynamicSharedMemory(optin))
	require.NoError(t, g.stream.Launch(g.noop, one, one, optin, &args, 2))
	require.NoError(t, g.stream.Synchronize())
	assert.Error(t, g.noop.SetMaxDynamicSharedMemory(optin+1<<20))
}

func TestGPUEvents(t *testing.T) {
	g := newGPU(t)
	const n = 1 << 20
	x, y := g.alloc(t, n), g.alloc(t, n)
	require.NoError(t, g.stream.MemsetD32(x, math.Float32bits(1), n))
	require.NoError(t, g.stream.MemsetD32(y, 0, n))
	start, err := g.ctx.NewEvent()
	require.NoError(t, err)
	defer start.Close()
	end, err := g.ctx.NewEvent()
	require.NoError(t, err)
	defer end.Close()

	var args cuda.Args
	require.NoError(t, start.Record(g.stream))
	for range 10 {
		require.NoError(t, g.launchAxpy(g.stream, y, x, 1, n, &args))
	}
	require.NoError(t, end.Record(g.stream))
	require.NoError(t, end.Synchronize())
	d, err := cuda.Elapsed(start, end)
	require.NoError(t, err)
	assert.Positive(t, d)
	t.Logf("10 axpy launches over %d floats: %v", n, d)
	assertAll(t, g.download(t, y, n), func(int) float32 { return 10 })
}

func TestGPUGraph(t *testing.T) {
	g := newGPU(t)
	const n, launches, replays = 10_000, 3, 2
	x, y := g.alloc(t, n), g.alloc(t, n)
	require.NoError(t, g.stream.MemsetD32(x, math.Float32bits(1), n))
	require.NoError(t, g.stream.MemsetD32(y, 0, n))
	require.NoError(t, g.stream.Synchronize())

	// Capture on a locked thread, as a backend would: the thread-local capture
	// mode is about the thread that began the capture.
	runtime.LockOSThread()
	require.NoError(t, g.stream.BeginCapture())
	var args cuda.Args
	for range launches {
		require.NoError(t, g.launchAxpy(g.stream, y, x, 1, n, &args))
	}
	graph, err := g.stream.EndCapture()
	runtime.UnlockOSThread()
	require.NoError(t, err)
	defer graph.Close()

	// Nothing ran during the capture.
	assertAll(t, g.download(t, y, n), func(int) float32 { return 0 })

	exec, err := graph.Instantiate()
	require.NoError(t, err)
	defer exec.Close()
	require.NoError(t, graph.Close())
	for range replays {
		require.NoError(t, exec.Launch(g.stream))
	}
	assertAll(t, g.download(t, y, n), func(int) float32 { return launches * replays })
}

func TestGPUHostBuffer(t *testing.T) {
	g := newGPU(t)
	const n = 65_537
	src, err := g.ctx.AllocHost(4 * n)
	require.NoError(t, err)
	defer src.Free()
	dst, err := g.ctx.AllocHost(4 * n)
	require.NoError(t, err)
	defer dst.Free()
	require.Len(t, src.Float32s(), n)
	assert.Equal(t, 4*n, src.Len())
	for i := range src.Float32s() {
		src.Float32s()[i] = float32(i) - 0.25
	}

	a, b := g.alloc(t, n), g.alloc(t, n)
	require.NoError(t, g.stream.CopyHtoD(a, src.Pointer(), 4*n))
	require.NoError(t, g.stream.CopyDtoD(b, a, 4*n))
	require.NoError(t, g.stream.CopyDtoH(dst.Pointer(), b, 4*n))
	require.NoError(t, g.stream.Synchronize())
	assertAll(t, dst.Float32s(), func(i int) float32 { return float32(i) - 0.25 })

	require.NoError(t, g.stream.MemsetD32(b, math.Float32bits(-3), n))
	require.NoError(t, g.stream.CopyDtoH(dst.Pointer(), b, 4*n))
	require.NoError(t, g.stream.Synchronize())
	assertAll(t, dst.Float32s(), func(int) float32 { return -3 })

	require.NoError(t, src.Free())
	require.NoError(t, src.Free(), "second Free")
	assert.Nil(t, src.Float32s())
	assert.Nil(t, src.Pointer())
}

// TestGPUThreads uses one context from goroutines on distinct OS threads:
// each call must make the context current on whatever thread it runs.
func TestGPUThreads(t *testing.T) {
	g := newGPU(t)
	const workers, n = 8, 1000
	var wg sync.WaitGroup
	errs := make([]error, workers)
	got := make([][]float32, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // a fresh thread for each worker: it exits with the goroutine
			got[w], errs[w] = threadWork(g, w, n)
		}()
	}
	wg.Wait()
	for w := range workers {
		require.NoError(t, errs[w], "worker %d", w)
		assertAll(t, got[w], func(int) float32 { return float32(w) })
	}
}

func threadWork(g *gpu, w, n int) ([]float32, error) {
	s, err := g.ctx.NewStream()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	p, err := g.ctx.Alloc(4 * n)
	if err != nil {
		return nil, err
	}
	defer g.ctx.Free(p)
	out := make([]float32, n)
	if err := s.MemsetD32(p, math.Float32bits(float32(w)), n); err != nil {
		return nil, err
	}
	if err := s.CopyDtoH(unsafe.Pointer(&out[0]), p, 4*n); err != nil {
		return nil, err
	}
	return out, s.Synchronize()
}

func TestGPUClose(t *testing.T) {
	g := newGPU(t)
	s, err := g.ctx.NewStream()
	require.NoError(t, err)
	e, err := g.ctx.NewEvent()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")
	require.NoError(t, e.Close())
	require.NoError(t, e.Close(), "second Close")

	var args cuda.Args
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	assert.ErrorIs(t, s.Launch(g.noop, one, one, 0, &args, 0), cuda.ErrClosed)
	assert.ErrorIs(t, s.Synchronize(), cuda.ErrClosed)
	assert.ErrorIs(t, e.Record(g.stream), cuda.ErrClosed)

	// Releasing a second retain of the primary context leaves the first usable.
	other, err := g.dev.RetainPrimaryContext()
	require.NoError(t, err)
	require.NoError(t, other.Close())
	require.NoError(t, other.Close(), "second Close")
	assert.ErrorIs(t, other.Synchronize(), cuda.ErrClosed)
	require.NoError(t, g.ctx.Synchronize())
}

// BenchmarkLaunch measures queueing a kernel launch (no synchronization but
// at the end): fx's per-op overhead on the GPU.
func BenchmarkLaunch(b *testing.B) {
	g := newGPU(b)
	p := g.alloc(b, 1)
	var args cuda.Args
	args.SetPtr(0, p)
	args.SetInt(1, 1)
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.stream.Launch(g.noop, one, one, 0, &args, 2); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, g.stream.Synchronize())
}

// BenchmarkGraphLaunch measures replaying a captured graph of 32 launches;
// compare its ns/op over 32 with BenchmarkLaunch.
func BenchmarkGraphLaunch(b *testing.B) {
	g := newGPU(b)
	p := g.alloc(b, 1)
	var args cuda.Args
	args.SetPtr(0, p)
	args.SetInt(1, 1)
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	runtime.LockOSThread()
	require.NoError(b, g.stream.BeginCapture())
	for range 32 {
		require.NoError(b, g.stream.Launch(g.noop, one, one, 0, &args, 2))
	}
	graph, err := g.stream.EndCapture()
	runtime.UnlockOSThread()
	require.NoError(b, err)
	defer graph.Close()
	exec, err := graph.Instantiate()
	require.NoError(b, err)
	defer exec.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := exec.Launch(g.stream); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, g.stream.Synchronize())
}
