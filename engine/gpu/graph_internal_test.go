package gpu

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine"
)

// TestCaptureKeepsWorkspace checks that a graph keeps the split-K
// workspace its products were captured with: a later, larger product
// replaces the backend's workspace, and the old one must not go back to
// the pool (where a new tensor could take it and a replay would write
// partial sums into it) until the graph is closed.
func TestCaptureKeepsWorkspace(t *testing.T) {
	if _, err := cuda.Load(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	g, err := New(Options{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, g.Close()) }()
	r := rand.New(rand.NewPCG(3, 4))
	randn := func(n int) []float32 { return normals(r, n) }
	x, w := g.FromHost(randn(768), 1, 768), g.FromHost(randn(768*768), 768, 768)
	want := g.ToHost(g.MatMul(x, w, nil, false)) // a decode-sized product: split-K, makes the workspace
	require.NoError(t, g.Sync())
	captured := g.k.matmulWorkspace
	require.NotNil(t, captured)
	var y *engine.Tensor
	graph, err := g.Capture(func() { y = g.MatMul(x, w, nil, false) })
	require.NoError(t, err)

	g.MatMul(g.FromHost(randn(8*3072), 8, 3072), g.FromHost(randn(3072*768), 3072, 768), nil, false)
	require.NoError(t, g.Sync())
	require.NotSame(t, captured, g.k.matmulWorkspace, "the larger product replaced the workspace")
	old := block{captured.ptr, captured.size}
	captured = nil
	for range 3 { // the old workspace's cleanup, if it were unreachable
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	g.pool.mu.Lock()
	free := append([]cuda.DevicePtr(nil), g.pool.free[old.size]...)
	g.pool.mu.Unlock()
	assert.NotContains(t, free, old.ptr, "the graph's workspace went back to the pool")

	graph.Replay()
	assert.Equal(t, want, g.ToHost(y))
	require.NoError(t, g.Sync())
	require.NoError(t, graph.Close())
}
