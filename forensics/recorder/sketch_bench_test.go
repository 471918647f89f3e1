package recorder

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSketch sketches 1M values (as 128 positions of 8192) at k = 8
// with the scalar projection (the path of attention scores and patterns;
// other hooks project with one MatMul on the backend).
func BenchmarkSketch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([]float32, 1<<20)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	p := newProjector(8, 1)
	var acc sketchAcc
	var sk sketches
	b.SetBytes(4 << 20)
	for b.Loop() {
		sk = sketches{}
		for i := 0; i < len(xs); i += 8192 {
			acc.reset(8)
			acc.add(xs[i:i+8192], p)
			sk.appendAcc(&acc, p)
		}
	}
}

// BenchmarkSketchStats sketches 1M values (128 positions of 8192) without
// the projection: the per-value cost of the statistics and the hash.
func BenchmarkSketchStats(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([]float32, 1<<20)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	var acc sketchAcc
	b.SetBytes(4 << 20)
	for b.Loop() {
		for i := 0; i < len(xs); i += 8192 {
			acc.reset(0)
			acc.addStats(xs[i : i+8192])
		}
	}
}
