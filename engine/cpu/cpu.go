// Package cpu implements engine.Backend on host memory, in Go with
// assembly kernels where the CPU has the SIMD units fx uses.
//
// Tensors are plain []float32 slices. FromHost aliases the caller's slice
// (weights may be read-only mapped memory), and no op ever writes into an
// input: every op allocates its result.
//
// # Kernels
//
// New chooses the kernels once: AVX2 and FMA assembly on x86-64 CPUs that
// have both (KernelsAVX2), else portable pure Go (KernelsGo). On CPUs with
// AVX-512F, KernelsAVX512 runs the matmul's register tiles in 512-bit
// registers and everything else as KernelsAVX2, with the same bits; it is
// chosen by name only (WithKernels), not yet by default: see
// KernelsAVX512. WithKernels forces a choice; Backend.Kernels reports it.
// With KernelsAVX2:
//
//   - MatMul and HeadResult run BLIS-style: x and w packed into panels,
//     cache blocking, 6×16 register tiles (and narrower tiles for the last
//     rows and for products of few rows), the bias added in the kernel;
//     products of 1–3 rows stream w in place through gemv kernels (for
//     w [N, K], with 8×8 transposes in registers).
//   - GELU runs in float32 SIMD, within a few float32 ulps of the float64
//     GELU of KernelsGo: GELUTanh within tens of ulps where it is tiny
//     (x < -2), GELUErf within 7 ulps down to results of 1e-30.
//   - AttnScores, AttnMix, Attention and Softmax run their dot products,
//     weighted sums and exponentials in SIMD with the same bits as
//     KernelsGo (the exponentials are math.Exp's, which uses FMA on such
//     CPUs).
//
// Everything else is pure Go. Building with the fxpurego tag leaves the
// assembly out, so `go test -tags fxpurego ./...` runs every test on
// KernelsGo; without the tag the package's own tests run every available
// set of kernels.
//
// # Determinism
//
// Results are bit-identical from run to run and for any worker count or
// GOMAXPROCS, for a given choice of kernels. Work is split across
// goroutines only over output elements (rows, columns, heads); a reduction
// is never split, and the order in which one output element is accumulated
// depends only on the reduction length, never on the number of rows or on
// how the work is divided. A batch of N sequences therefore gives exactly
// the bits of N separate runs.
//
// The reduction orders are:
//
//   - MatMul and HeadResult with KernelsAVX2 or KernelsAVX512, either
//     layout of w: each
//     output element is one chain of fused multiply-adds (one rounding per
//     k) in float32 over k = 0, 1, …, K-1, starting from zero:
//     s = fma(x[i,k], w[k,j], s); then the bias is added. The chain is the
//     same whatever tile, panel, block or task the element falls in and
//     whether w is packed or read in place, so every kernel shape, the row
//     and column remainders and every number of rows give the same bits.
//   - MatMul and HeadResult with KernelsGo, w [K, N]: each output element
//     is summed in float32 in order k = 0, 1, …, K-1 starting from zero,
//     each product rounded to float32 before it is added (never fused),
//     then the bias is added.
//   - MatMul and HeadResult with KernelsGo, w [N, K], and AttnScores with
//     any kernels: a dot product over K with eight float32 partial sums,
//     sum i taking k ≡ i (mod 8) for k < K&^7, combined as
//     ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)), after which the remaining
//     k = K&^7, …, K-1 are added in order, products rounded before they
//     are added; then the bias is added (MatMul) or the product with scale
//     is taken (AttnScores).
//   - AttnMix: each output element is summed in float32 over keys in
//     order, skipping keys whose weight is exactly zero, products rounded
//     before they are added.
//   - Attention gives exactly the bits of AttnMix(Softmax(AttnScores(…))):
//     one query row at a time, by the same code.
//   - AddLayerNorm gives exactly the bits of Add then LayerNorm, and
//     MatMulGELU those of MatMul then GELU, by the same code.
//   - LayerNorm and LayerNormScale take the mean and the biased variance in
//     float64, in two passes over the row, each with four partial sums.
//   - Softmax and SumAxis sum in float64 in index order.
//
// KernelsAVX2 and KernelsGo differ from each other within float32 rounding
// (MatMul, HeadResult, GELU); KernelsAVX512 gives KernelsAVX2's bits.
// KernelsAVX2 gives the same bits on every x86-64 CPU with AVX2 and FMA
// (and KernelsAVX512 on every one with AVX-512F); KernelsGo the same bits on every
// architecture and GOAMD64 level for the ops without transcendental
// functions. GELU (KernelsGo), Tanh and Softmax call package math, whose
// results can differ in the last bit between architectures.
package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/modelforensics/fx/engine"
)

// Backend is the host backend. Its zero value is not usable; call New. A
// Backend holds no mutable state but pools of scratch buffers, which never
// change results, and is safe for concurrent use.
type Backend struct {
	workers int          // 0: runtime.GOMAXPROCS(0), read at each op
	kernels Kernels      // as asked for by WithKernels
	simd    *simdKernels // the SIMD kernels, nil for KernelsGo
	// Scratch for the SIMD matmul: packed x, and a worker's packed w.
	packedX, packedW *bufPool
}

// bufPool recycles float32 scratch buffers between ops. A buffer from get
// holds arbitrary values; ops overwrite what they read.
type bufPool struct{ p sync.Pool }

// get returns a buffer of n values.
func (bp *bufPool) get(n int) []float32 {
	if v, ok := bp.p.Get().(*[]float32); ok && cap(*v) >= n {
		return (*v)[:n]
	}
	return make([]float32, n)
}

// put returns b to the pool.
func (bp *bufPool) put(b []float32) { bp.p.Put(&b) }

// Kernels names a set of compute kernels of the backend.
type Kernels string

const (
	// KernelsAuto selects KernelsAVX2 where the CPU supports it, else
	// KernelsGo. It is the default.
	KernelsAuto Kernels = "auto"
	// KernelsGo is portable pure Go, on every architecture.
	KernelsGo Kernels = "go"
	// KernelsAVX2 is x86-64 assembly for CPUs with AVX2 and FMA.
	KernelsAVX2 Kernels = "avx2"
	// KernelsAVX512 is KernelsAVX2 with the matmul's register tiles in
	// AVX-512 registers, for CPUs with AVX-512F; it gives KernelsAVX2's
	// bits. KernelsAuto does not choose it until it has been measured
	// faster on an AVX-512 machine (bench/RESULTS.md says where that
	// stands).
	KernelsAVX512 Kernels = "avx512"
)

// AvailableKernels returns the kernels this CPU can run, the default
// (KernelsAuto's choice) first and KernelsGo, always among them, last.
func AvailableKernels() []Kernels {
	var ks []Kernels
	if avx2Kernels() != nil {
		ks = append(ks, KernelsAVX2)
	}
	if avx512Kernels() != nil {
		ks = append(ks, KernelsAVX512)
	}
	return append(ks, KernelsGo)
}

var _ engine.Backend = (*Backend)(nil)

// Option configures a Backend.
type Option func(*Backend)

// WithWorkers sets the number of goroutines an op may use. A value below 1
// selects the default, runtime.GOMAXPROCS(0) read at each op. The worker
// count never changes results.
func WithWorkers(n int) Option {
	return func(b *Backend) {
		if n < 1 {
			n = 0
		}
		b.workers = n
	}
}

// WithKernels selects the kernels. Kernels the CPU cannot run, and unknown
// names, fall back to KernelsGo; Backend.Kernels reports the choice.
func WithKernels(k Kernels) Option {
	return func(b *Backend) { b.kernels = k }
}

// New returns a CPU backend. It detects the CPU's features once, here.
func New(opts ...Option) *Backend {
	b := &Backend{kernels: KernelsAuto, packedX: &bufPool{}, packedW: &bufPool{}}
	for _, o := range opts {
		o(b)
	}
	switch b.kernels {
	case KernelsAuto, KernelsAVX2:
		b.simd = avx2Kernels()
	case KernelsAVX512:
		b.simd = avx512Kernels()
	}
	return b
}

// Kernels returns the kernels the backend runs: KernelsAVX2, KernelsAVX512
// or KernelsGo.
func (b *Backend) Kernels() Kernels {
	if b.simd != nil {
		return b.simd.name
	}
	return KernelsGo
}

// Name returns "cpu/" and the kernels' numerics ("cpu/avx2", "cpu/go"):
// the kernels' results differ in the last bits, so a recording names them.
// KernelsAVX512 computes KernelsAVX2's bits and is named "cpu/avx2", so
// that a recording replays bit for bit across the two.
func (b *Backend) Name() string {
	k := b.Kernels()
	if k == KernelsAVX512 {
		k = KernelsAVX2
	}
	return "cpu/" + string(k)
}

// FromHost wraps data as a tensor without copying it.
func (b *Backend) FromHost(data []float32, shape ...int) *engine.Tensor {
	return engine.NewHost(data, shape...)
}

// ToHost returns t.Host() itself, not a copy.
func (b *Backend) ToHost(t *engine.Tensor) []float32 { return t.Host() }

// Zeros returns a zero-filled tensor.
func (b *Backend) Zeros(shape ...int) *engine.Tensor {
	return engine.NewHost(make([]float32, engine.NumElements(shape)), shape...)
}

// View returns a tensor over the first values of t's slice.
func (b *Backend) View(t *engine.Tensor, shape ...int) *engine.Tensor {
	td := host("View", t)
	must(engine.CheckView(t, shape))
	n := engine.NumElements(shape)
	return engine.NewHost(td[:n:n], shape...)
}

// Sync returns nil: every op has finished when it returns.
func (b *Backend) Sync() error { return nil }

// numWorkers returns the number of goroutines an op may use.
func (b *Backend) numWorkers() int {
	if b.workers > 0 {
		return b.workers
	}
	return runtime.GOMAXPROCS(0)
}

// minWork is roughly the number of multiply-adds below which a chunk of work
// is not worth a goroutine of its own.
const minWork = 1 << 15

// parallel calls fn over disjoint ranges [lo, hi) that cover [0, n), on up to
// numWorkers goroutines (the caller's among them). cost is the approximate
// work per index; chunks are sized so that each carries at least minWork.
// fn must write only output elements that belong to its indices, so that the
// split never affects results.
func (b *Backend) parallel(n, cost int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	cost = max(cost, 1)
	workers := b.numWorkers()
	if workers <= 1 || n*cost < 2*minWork || n == 1 {
		fn(0, n)
		return
	}
	// Aim for about four chunks per worker for balance, but no chunk
	// lighter than minWork.
	chunk := max((n+4*workers-1)/(4*workers), (minWork+cost-1)/cost, 1)
	chunks := (n + chunk - 1) / chunk
	if chunks <= 1 {
		fn(0, n)
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			fn(c*chunk, min(n, (c+1)*chunk))
		}
	}
	var wg sync.WaitGroup
	for range min(workers, chunks) - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
}

// output allocates a result tensor.
func output(shape ...int) *engine.Tensor {
	return engine.NewHost(make([]float32, engine.NumElements(shape)), shape...)
}

// must panics with err, behind the backend's prefix, unless it is nil: an
// engine.Check function's report of operands that an op cannot take.
func must(err error) {
	if err != nil {
		panic("cpu: " + err.Error())
	}
}

// host returns t's values, panicking for a tensor not on the host.
func host(op string, t *engine.Tensor) []float32 {
	if t == nil {
		panic(fmt.Sprintf("cpu: %s: nil tensor", op))
	}
	h := t.Host()
	if h == nil && t.Len() != 0 {
		panic(fmt.Sprintf("cpu: %s: %v is not a host tensor", op, t))
	}
	return h
}
