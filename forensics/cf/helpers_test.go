package cf

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
)

// testModel returns a model of testdata/models.
func testModel(t testing.TB, name string) *transformer.Model {
	t.Helper()
	m, err := transformer.Load(filepath.Join("..", "..", "testdata", "models", name), cpu.New())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// testSketch is the recording section's default sketch.
var testSketch = bundle.Sketch{K: 8, Seed: 1, Hash: bundle.HashXXH64}

// tokens returns n token ids below vocab, varied by seed.
func tokens(n, seed, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (seed*131 + i*37 + i*i*seed) % vocab
	}
	return ids
}

// recordRun records ids on m as CF records a baseline prompt, storing the
// activations values names.
func recordRun(t testing.TB, m *transformer.Model, ids []int, maxNew int, values []string) Run {
	t.Helper()
	run, _, err := RecordPrompt(context.Background(), m, ids, maxNew, RecordOptions(m, values, testSketch), values)
	require.NoError(t, err)
	return run
}
