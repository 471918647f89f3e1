package gpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/gpu"
)

// TestToHostAsync checks engine.HostCopier on the GPU (it skips without
// one): the values are ToHost's, a copy holds the values its tensor had
// when it was queued although an Edit changes the tensor right after, many
// copies may be in flight at once, and a host tensor's values come back as
// they are. forensics/recorder's TestRowSketchMatchesHost and
// TestDevicePathMatchesHostPath check SketchRows and the recorder's use of
// both with FX_TEST_DEVICE=cuda.
func TestToHostAsync(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	r := rand.New(rand.NewPCG(7, 8))
	var pend []engine.Pending[[]float32]
	var want [][]float32
	for _, n := range []int{1, 7, 768, 128 * 768, 3 << 20} {
		v := randn(r, n, 1)
		x := g.FromHost(v, n)
		pend = append(pend, g.ToHostAsync(x))
		want = append(want, v)
		g.Edit(x, engine.Edit{Mode: engine.EditZero, Dims: [engine.MaxEditDims]int{n, 1, 1, 1, 1},
			Strides: [engine.MaxEditDims]int{1}})
	}
	for i, p := range pend {
		got, err := p.Wait()
		require.NoError(t, err)
		assert.Equal(t, want[i], got, "copy %d", i)
	}
	h := []float32{1, 2, 3}
	got, err := g.ToHostAsync(engine.NewHost(h, 3)).Wait()
	require.NoError(t, err)
	assert.Equal(t, h, got)
}

// BenchmarkSketchRows times the recorder's device work per hook at GPT-2
// shapes ([T, 768] and [T, 3072]): SketchRows (statistics, hash; with
// float16 values for a stored hook) waited for, against ToHost of the
// whole activation, which the host path does for every recorded hook.
func BenchmarkSketchRows(b *testing.B) {
	g := newBackend(b, gpu.Options{})
	r := rand.New(rand.NewPCG(9, 10))
	for _, T := range []int{128, 1024} {
		for _, n := range []int{768, 3072} {
			x := g.FromHost(randn(r, T*n, 1), 1, T, n)
			for _, c := range []struct {
				name string
				op   func()
			}{
				{"sketch", func() { _, err := g.SketchRows(x, T, false).Wait(); require.NoError(b, err) }},
				{"sketch+f16", func() { _, err := g.SketchRows(x, T, true).Wait(); require.NoError(b, err) }},
				{"ToHost", func() { g.ToHost(x) }},
			} {
				b.Run(fmt.Sprintf("%s/T=%d,n=%d", c.name, T, n), func(b *testing.B) {
					c.op() // warm up: pinned buffers, pool
					for b.Loop() {
						c.op()
					}
				})
			}
		}
	}
}
