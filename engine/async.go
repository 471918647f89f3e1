package engine

// HostCopier is an optional capability of a Backend whose tensors live off
// the host (engine/gpu): copies to the host that do not wait for the
// device. A caller that finds it (a type assertion) can queue copies as a
// forward pass goes and collect them afterwards, instead of stopping the
// device at every ToHost.
type HostCopier interface {
	// ToHostAsync queues a copy of t's current values to host memory
	// behind the work queued so far and returns at once. Later work may
	// change t or reuse its memory: the copy still holds the values t had
	// when it was queued.
	ToHostAsync(t *Tensor) Pending[[]float32]
}

// Pending is a result on its way to the host.
type Pending[T any] interface {
	// Wait blocks until the result is on the host and returns it, or the
	// first error the backend met. The result belongs to the caller. Call
	// it once.
	Wait() (T, error)
}

// RowSketcher is an optional capability of a Backend: it computes, where a
// tensor lives, the per-row statistics forensics/recorder keeps of an
// activation, and its float16 rounding, so that only those cross to the
// host. The arithmetic is the recorder's own (forensics/recorder's
// sketch.go and xxh64.go, weights.Float32ToF16), bit for bit, so that a
// recording made through it is the one the host path makes.
type RowSketcher interface {
	// SketchRows queues the statistics of x as rows [rows, n] (n =
	// x.Len()/rows, at least 1) and, with f16, the float16 bits of every
	// value, behind the work queued so far, and returns at once.
	SketchRows(x *Tensor, rows int, f16 bool) Pending[*RowSketch]
}

// RowSketch is what RowSketcher computes for each row of n values.
type RowSketch struct {
	// Sum and SumSq are the sum of the values and of their squares:
	// float32 partial sums over consecutive blocks of 256 values (each
	// (s0+s1)+(s2+s3) of four chains over the values 4i, 4i+1, 4i+2, 4i+3,
	// a tail going to s0; squares rounded before they are added), added in
	// float64 in order of the blocks. A NaN is any NaN.
	Sum, SumSq []float64
	// Min and Max are the least and greatest value as
	// forensics/recorder's min32/max32 fold them (a NaN is skipped; of
	// equal values the first stays); +Inf and -Inf when every value is
	// NaN.
	Min, Max []float32
	// Hash is the XXH64 (seed 0) of the row's float32 little-endian bytes.
	Hash []uint64
	// F16 holds every value's float16 bits (weights.Float32ToF16), row
	// after row, when asked for.
	F16 []uint16
}
