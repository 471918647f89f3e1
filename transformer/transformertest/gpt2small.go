// Package transformertest builds models for tests and benchmarks of the
// packages above transformer.
package transformertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// gpt2SmallConfig is GPT-2 small's shape.
const gpt2SmallConfig = `{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
 "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null,
 "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}`

// GPT2Small returns a GPT-2-small-shaped model (12 layers, 768 wide, 12
// heads, vocab 50257) on b: the files in $FX_BENCH_MODEL when set
// (bench/run_cpu_bench.sh points it at the weights PyTorch also runs), else
// random weights made here from a fixed seed, initialised as GPT-2 is (std
// 0.02; residual output projections 0.02/5 ≈ 0.02/√(2·12)).
func GPT2Small(tb testing.TB, b engine.Backend) *transformer.Model {
	tb.Helper()
	if dir := os.Getenv("FX_BENCH_MODEL"); dir != "" {
		m, err := transformer.Load(dir, b)
		require.NoError(tb, err)
		return m
	}
	cfg, err := weights.ParseConfig("gpt2-small.json", []byte(gpt2SmallConfig))
	require.NoError(tb, err)
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
			weights.Tensor{Name: p + "attn.c_attn.weight", Shape: []int{d, 3 * d}, Data: normal(0.02, d*3*d)},
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
	require.NoError(tb, weights.Encode(&buf, ts, nil))
	f, err := weights.Parse("gpt2-small-random", buf.Bytes())
	require.NoError(tb, err)
	set, err := weights.NewSet(f)
	require.NoError(tb, err)
	tok, err := tokenizer.DefaultGPT2()
	require.NoError(tb, err)
	m, err := transformer.New("gpt2-small-random", cfg, set, tok, b)
	require.NoError(tb, err)
	return m
}
