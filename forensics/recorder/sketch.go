package recorder

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/modelforensics/fx/engine"
)

// projector holds the random signs of the sketch projection. Row r of the
// projection matrix is the sign stream of a PCG (math/rand/v2) seeded with
// (seed, r): element j is -1 when bit j%64 of the stream's (j/64)-th
// Uint64 is set, else +1; the projection of values x is
// Σ_j x_j·sign_rj / √k. Rows grow on demand and never change what they
// already hold, so every hook shares one matrix.
type projector struct {
	k     int
	seed  uint64
	rows  [][]float32
	rngs  []*rand.PCG
	scale float32
	// inter holds the same signs element-major: inter[j*k+r] is sign j of
	// row r, so that one pass over the values feeds all k sums.
	inter []float32
	// matrices caches the [n, k] sign matrices given to the backend's
	// MatMul, by n.
	matrices map[int]*engine.Tensor
}

func newProjector(k int, seed uint64) *projector {
	p := &projector{k: k, seed: seed, rows: make([][]float32, k), rngs: make([]*rand.PCG, k),
		scale: float32(1 / math.Sqrt(float64(k)))}
	for r := range k {
		p.rngs[r] = rand.NewPCG(seed, uint64(r))
	}
	return p
}

// ensure grows every row to at least n signs.
func (p *projector) ensure(n int) {
	for r := range p.k {
		row := p.rows[r]
		for len(row) < n {
			u := p.rngs[r].Uint64()
			for b := range 64 {
				s := float32(1)
				if u>>b&1 == 1 {
					s = -1
				}
				row = append(row, s)
			}
		}
		p.rows[r] = row
	}
	for j := len(p.inter) / p.k; j < len(p.rows[0]); j++ {
		for r := range p.k {
			p.inter = append(p.inter, p.rows[r][j])
		}
	}
}

// matrix returns the signs of elements [0, n) as an [n, k] tensor on b
// (element-major), for projecting [T, n] activations with one MatMul.
func (p *projector) matrix(b engine.Backend, n int) *engine.Tensor {
	if w, ok := p.matrices[n]; ok {
		return w
	}
	p.ensure(n)
	if p.matrices == nil {
		p.matrices = map[int]*engine.Tensor{}
	}
	w := b.FromHost(slices.Clone(p.inter[:n*p.k]), n, p.k)
	p.matrices[n] = w
	return w
}

// sketchAcc accumulates the sketch of one position, whose values may come
// in several segments (one per attention head).
type sketchAcc struct {
	n          int64
	sum, sumsq float64
	min, max   float32
	seen       bool
	proj       []float32
	h          xxh64
}

func (a *sketchAcc) reset(k int) {
	*a = sketchAcc{proj: a.proj[:0], min: float32(math.Inf(1)), max: float32(math.Inf(-1))}
	for range k {
		a.proj = append(a.proj, 0)
	}
	a.h.reset()
}

// add sketches the next segment of values.
func (a *sketchAcc) add(xs []float32, p *projector) {
	j := int(a.n)
	p.ensure(j + len(xs))
	project(a.proj, xs, p.inter[j*p.k:(j+len(xs))*p.k], p.k)
	a.addStats(xs)
}

// addStats sketches the next segment of values but for the projection.
// Sums run in float32 over blocks of 256 values (four partial sums each)
// and in float64 across blocks.
func (a *sketchAcc) addStats(xs []float32) {
	const block = 256
	mn, mx := a.min, a.max
	for start := 0; start < len(xs); start += block {
		chunk := xs[start:min(start+block, len(xs))]
		var s0, s1, s2, s3, q0, q1, q2, q3 float32
		mn0, mn1, mx0, mx1 := mn, mn, mx, mx
		i := 0
		for ; i+4 <= len(chunk); i += 4 {
			c := (*[4]float32)(chunk[i:])
			x0, x1, x2, x3 := c[0], c[1], c[2], c[3]
			s0 += x0
			s1 += x1
			s2 += x2
			s3 += x3
			q0 += x0 * x0
			q1 += x1 * x1
			q2 += x2 * x2
			q3 += x3 * x3
			mn0 = min32(mn0, min32(x0, x1))
			mn1 = min32(mn1, min32(x2, x3))
			mx0 = max32(mx0, max32(x0, x1))
			mx1 = max32(mx1, max32(x2, x3))
		}
		for ; i < len(chunk); i++ {
			x := chunk[i]
			s0 += x
			q0 += x * x
			mn0, mx0 = min32(mn0, x), max32(mx0, x)
		}
		a.sum += float64((s0 + s1) + (s2 + s3))
		a.sumsq += float64((q0 + q1) + (q2 + q3))
		mn, mx = min32(mn, min32(mn0, mn1)), max32(mx, max32(mx0, mx1))
	}
	a.min, a.max = mn, mx
	a.n += int64(len(xs))
	a.h.WriteFloat32s(xs)
}

// min32 and max32 skip NaNs (a comparison with NaN is false), unlike the
// built-in min and max.
func min32(a, b float32) float32 {
	if b < a {
		return b
	}
	return a
}

func max32(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}

// project adds Σ_j x_j·sign_rj to acc[r] for every row r, with signs
// element-major (signs[j*k+r]). Each sum runs in order over j, one chain
// per row; the signs are ±1, so every product is exact and the result
// does not depend on whether the compiler fuses multiply and add.
func project(acc, xs, signs []float32, k int) {
	if k == 8 {
		var a0, a1, a2, a3, a4, a5, a6, a7 float32
		for j, x := range xs {
			s := (*[8]float32)(signs[j*8:])
			a0 += x * s[0]
			a1 += x * s[1]
			a2 += x * s[2]
			a3 += x * s[3]
			a4 += x * s[4]
			a5 += x * s[5]
			a6 += x * s[6]
			a7 += x * s[7]
		}
		acc[0] += a0
		acc[1] += a1
		acc[2] += a2
		acc[3] += a3
		acc[4] += a4
		acc[5] += a5
		acc[6] += a6
		acc[7] += a7
		return
	}
	part := make([]float32, k)
	for j, x := range xs {
		s := signs[j*k : j*k+k]
		for r, sr := range s {
			part[r] += x * sr
		}
	}
	for r := range k {
		acc[r] += part[r]
	}
}

// sketches holds the per-position sketches of one hook as they grow.
type sketches struct {
	count          []int64
	mean, l2       []float32
	min, max, proj []float32
	hash           []uint64
}

// appendAcc appends the finished sketch of one position.
func (s *sketches) appendAcc(a *sketchAcc, p *projector) {
	i := s.grow(1, p.k)
	s.set(i, a, a.proj, p.scale)
}

// grow adds room for n positions and returns the index of the first.
func (s *sketches) grow(n, k int) int {
	i := len(s.count)
	s.count = append(s.count, make([]int64, n)...)
	s.mean = append(s.mean, make([]float32, n)...)
	s.l2 = append(s.l2, make([]float32, n)...)
	s.min = append(s.min, make([]float32, n)...)
	s.max = append(s.max, make([]float32, n)...)
	s.proj = append(s.proj, make([]float32, n*k)...)
	s.hash = append(s.hash, make([]uint64, n)...)
	return i
}

// set stores the finished sketch of position i with its projection
// (unscaled sums).
func (s *sketches) set(i int, a *sketchAcc, proj []float32, scale float32) {
	s.setStats(i, a.n, a.sum, a.sumsq, a.min, a.max, a.h.Sum64(), proj, scale)
}

// canonicalNaN is the bits of the one NaN a sketch's mean and L2 norm
// hold: which NaN a sum of NaNs ends in is the hardware's (a CPU keeps an
// operand's payload, a GPU gives its own), and a recording is the same
// on both.
const canonicalNaN = 0x7fc00000

// setStats stores the sketch of position i from its statistics: n values
// with sums sum and sumsq (addStats'), min and max as addStats folds them,
// the XXH64 of their bytes and the projection (unscaled sums).
func (s *sketches) setStats(i int, n int64, sum, sumsq float64, mn, mx float32, hash uint64, proj []float32, scale float32) {
	s.count[i] = n
	mean := 0.0
	if n > 0 {
		mean = sum / float64(n)
	}
	s.mean[i] = float32(mean)
	s.l2[i] = float32(math.Sqrt(sumsq))
	if s.mean[i] != s.mean[i] {
		s.mean[i] = math.Float32frombits(canonicalNaN)
	}
	if s.l2[i] != s.l2[i] {
		s.l2[i] = math.Float32frombits(canonicalNaN)
	}
	if n == 0 || mn > mx { // no values, or all NaN
		mn, mx = float32(math.NaN()), float32(math.NaN())
	}
	s.min[i], s.max[i] = mn, mx
	k := len(proj)
	for r, v := range proj {
		s.proj[i*k+r] = v * scale
	}
	s.hash[i] = hash
}

// parallel calls fn on [lo, hi) ranges covering [0, n), on up to
// GOMAXPROCS goroutines when work (values in all) is large enough to pay
// for them. Each index is handled by exactly one call, so results written
// by index do not depend on the number of goroutines.
func parallel(n, work int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 || work < 1<<15 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
