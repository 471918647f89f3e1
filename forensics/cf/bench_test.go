package cf

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer/transformertest"
)

// BenchmarkAnalyzeGPT2Small is CF on a 128-token bundle of a
// GPT-2-small-shaped model, from the verified bundle on disk to the
// report: decoding its activations, quantising and compressing every
// position of every stored hook, the sketch features, the z-scores and
// the ranking. Issue 6 asks for under 2 s on 2 cores.
func BenchmarkAnalyzeGPT2Small(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	ctx := context.Background()
	ids := func(seed int) []int {
		out := make([]int, 128)
		for i := range out {
			out[i] = (i*7919 + seed*104729) % 50257
		}
		return out
	}
	cfg := DefaultConfig()
	cfg.Baseline.MaxNewTokens, cfg.Baseline.MinSamples = 0, 1
	id := bundle.Model{Name: "gpt2-small-random", Type: "gpt2", WeightsSHA256: "random"}
	base, err := BuildBaseline(ctx, m, [][]int{ids(1), ids(2)}, BaselineOptions{Config: cfg, Model: id, Sketch: testSketch})
	require.NoError(b, err)
	for _, level := range []string{bundle.LevelFull, bundle.LevelLayer} {
		opts := recorder.DefaultOptions()
		opts.Level = level
		r, err := recorder.New(m, opts)
		require.NoError(b, err)
		_, err = r.Run(ctx, bundle.Input{InputIDs: ids(3)})
		require.NoError(b, err)
		rec, err := r.Finish()
		require.NoError(b, err)
		path := b.TempDir() + "/incident"
		id := bundle.Model{Name: "gpt2-small-random", Type: "gpt2", DType: "F32", Tokenizer: "embedded:gpt2",
			ConfigSHA256: fmt.Sprintf("%064x", 1), WeightsSHA256: fmt.Sprintf("%064x", 2), TokenizerSHA256: fmt.Sprintf("%064x", 3)}
		require.NoError(b, rec.Write(path, recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend), Outcome: bundle.Outcome{Detector: "none"}}))
		bd, err := bundle.Open(path, bundle.DefaultLimits())
		require.NoError(b, err)
		b.Run("level="+level, func(b *testing.B) {
			for b.Loop() {
				run, _, err := BundleRun(ctx, bd, nil, storedOf(bd, cfg.Values))
				if err != nil {
					b.Fatal(err)
				}
				rep, err := Analyze(run, base, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Ranking) != 12 || rep.NumPositions != 128 {
					b.Fatalf("%d layers, %d positions", len(rep.Ranking), rep.NumPositions)
				}
			}
		})
	}
}

// storedOf returns the hooks of values the bundle stores.
func storedOf(b *bundle.Bundle, values []string) []string {
	out := []string{}
	for _, h := range NeededHooks(b.Manifest, values) {
		if info, _ := b.Manifest.Hook(h); info.Stored {
			out = append(out, h)
		}
	}
	return out
}
