package cf

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// gpt2SmallConfig is GPT-2 small's shape.
const gpt2SmallConfig = `{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
 "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null,
 "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}`

// gpt2Small returns a GPT-2-small-shaped model with random weights,
// initialised as GPT-2 is (as transformer's benchmarks make it).
func gpt2Small(b *testing.B) *transformer.Model {
	b.Helper()
	cfg, err := weights.ParseConfig("gpt2-small.json", []byte(gpt2SmallConfig))
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	normal := func(std float64, n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * std)
		}
		return out
	}
	ones := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	d, v, inner := 768, 50257, 3072
	ts := []weights.Tensor{
		{Name: "wte.weight", Shape: []int{v, d}, Data: normal(0.02, v*d)},
		{Name: "wpe.weight", Shape: []int{1024, d}, Data: normal(0.01, 1024*d)},
		{Name: "ln_f.weight", Shape: []int{d}, Data: ones(d)},
		{Name: "ln_f.bias", Shape: []int{d}, Data: make([]float32, d)},
	}
	for i := range 12 {
		p := fmt.Sprintf("h.%d.", i)
		ts = append(ts,
			weights.Tensor{Name: p + "ln_1.weight", Shape: []int{d}, Data: ones(d)},
			weights.Tensor{Name: p + "ln_1.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "attn.c_attn.weight", Shape: []int{d, 3 * d}, Data: normal(0.02, 3*d*d)},
			weights.Tensor{Name: p + "attn.c_attn.bias", Shape: []int{3 * d}, Data: make([]float32, 3*d)},
			weights.Tensor{Name: p + "attn.c_proj.weight", Shape: []int{d, d}, Data: normal(0.02/5, d*d)},
			weights.Tensor{Name: p + "attn.c_proj.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "ln_2.weight", Shape: []int{d}, Data: ones(d)},
			weights.Tensor{Name: p + "ln_2.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "mlp.c_fc.weight", Shape: []int{d, inner}, Data: normal(0.02, d*inner)},
			weights.Tensor{Name: p + "mlp.c_fc.bias", Shape: []int{inner}, Data: make([]float32, inner)},
			weights.Tensor{Name: p + "mlp.c_proj.weight", Shape: []int{inner, d}, Data: normal(0.02/5, inner*d)},
			weights.Tensor{Name: p + "mlp.c_proj.bias", Shape: []int{d}, Data: make([]float32, d)},
		)
	}
	for i := range ts {
		ts[i].DType = weights.F32
	}
	var buf bytes.Buffer
	require.NoError(b, weights.Encode(&buf, ts, nil))
	f, err := weights.Parse("gpt2-small-random", buf.Bytes())
	require.NoError(b, err)
	set, err := weights.NewSet(f)
	require.NoError(b, err)
	tok, err := tokenizer.DefaultGPT2()
	require.NoError(b, err)
	m, err := transformer.New("gpt2-small-random", cfg, set, tok, cpu.New())
	require.NoError(b, err)
	return m
}

// BenchmarkAnalyzeGPT2Small is CF on a 128-token bundle of a
// GPT-2-small-shaped model, from the verified bundle on disk to the
// report: decoding its activations, quantising and compressing every
// position of every stored hook, the sketch features, the z-scores and
// the ranking. Issue 6 asks for under 2 s on 2 cores.
func BenchmarkAnalyzeGPT2Small(b *testing.B) {
	m := gpt2Small(b)
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
