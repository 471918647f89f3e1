package cuda_test

import (
	"errors"
	"fmt"
	"log"
	"unsafe"

	"github.com/modelforensics/fx/cuda"
)

// Example runs y = 2*x + y on the GPU with the hand-written fx_axpy kernel,
// falling back where the machine has no CUDA driver.
func Example() {
	d, err := cuda.Load()
	if errors.Is(err, cuda.ErrNoDriver) {
		fmt.Println("no GPU here; use the CPU backend")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	dev, err := d.Device(0)
	if err != nil {
		log.Fatal(err)
	}
	ctx, err := dev.RetainPrimaryContext()
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()
	mod, err := ctx.LoadModule("axpy", testPTX)
	if err != nil {
		log.Fatal(err) // names the module, with the JIT log
	}
	defer mod.Close()
	axpy, err := mod.Function("fx_axpy")
	if err != nil {
		log.Fatal(err)
	}
	s, err := ctx.NewStream()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const n = 1000
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = 1, float32(i)
	}
	dx, _ := ctx.Alloc(4 * n)
	defer ctx.Free(dx)
	dy, _ := ctx.Alloc(4 * n)
	defer ctx.Free(dy)
	_ = s.CopyHtoD(dx, unsafe.Pointer(&x[0]), 4*n)
	_ = s.CopyHtoD(dy, unsafe.Pointer(&y[0]), 4*n)

	var args cuda.Args
	args.SetPtr(0, dy)
	args.SetPtr(1, dx)
	args.SetFloat(2, 2)
	args.SetInt(3, n)
	grid, block := cuda.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, cuda.Dim3{X: 256, Y: 1, Z: 1}
	if err := s.Launch(axpy, grid, block, 0, &args, 4); err != nil {
		log.Fatal(err)
	}
	if err := s.CopyDtoH(unsafe.Pointer(&y[0]), dy, 4*n); err != nil {
		log.Fatal(err)
	}
	if err := s.Synchronize(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(y[0], y[n-1]) // 2 1001
}
