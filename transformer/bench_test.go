package transformer_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// gpt2SmallConfig is GPT-2 small's shape.
const gpt2SmallConfig = `{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
 "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null,
 "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}`

// gpt2Small returns a GPT-2-small-shaped model: the files in $FX_BENCH_MODEL
// when set (bench/run_cpu_bench.sh points it at the weights PyTorch also
// runs), else random weights made here, initialised as GPT-2 is.
func gpt2Small(b *testing.B) *transformer.Model {
	b.Helper()
	if dir := os.Getenv("FX_BENCH_MODEL"); dir != "" {
		m, err := transformer.Load(dir, cpu.New())
		require.NoError(b, err)
		return m
	}
	cfg, err := weights.ParseConfig("gpt2-small.json", []byte(gpt2SmallConfig))
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	normal := func(std float64, shape ...int) []float32 {
		n := 1
		for _, d := range shape {
			n *= d
		}
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
		{Name: "wte.weight", Shape: []int{v, d}, Data: normal(0.02, v, d)},
		{Name: "wpe.weight", Shape: []int{1024, d}, Data: normal(0.01, 1024, d)},
		{Name: "ln_f.weight", Shape: []int{d}, Data: ones(d)},
		{Name: "ln_f.bias", Shape: []int{d}, Data: make([]float32, d)},
	}
	for i := range 12 {
		p := fmt.Sprintf("h.%d.", i)
		ts = append(ts,
			weights.Tensor{Name: p + "ln_1.weight", Shape: []int{d}, Data: ones(d)},
			weights.Tensor{Name: p + "ln_1.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "attn.c_attn.weight", Shape: []int{d, 3 * d}, Data: normal(0.02, d, 3*d)},
			weights.Tensor{Name: p + "attn.c_attn.bias", Shape: []int{3 * d}, Data: make([]float32, 3*d)},
			weights.Tensor{Name: p + "attn.c_proj.weight", Shape: []int{d, d}, Data: normal(0.02/5, d, d)},
			weights.Tensor{Name: p + "attn.c_proj.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "ln_2.weight", Shape: []int{d}, Data: ones(d)},
			weights.Tensor{Name: p + "ln_2.bias", Shape: []int{d}, Data: make([]float32, d)},
			weights.Tensor{Name: p + "mlp.c_fc.weight", Shape: []int{d, inner}, Data: normal(0.02, d, inner)},
			weights.Tensor{Name: p + "mlp.c_fc.bias", Shape: []int{inner}, Data: make([]float32, inner)},
			weights.Tensor{Name: p + "mlp.c_proj.weight", Shape: []int{inner, d}, Data: normal(0.02/5, inner, d)},
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

// BenchmarkGPT2SmallForward is a full forward (every position's logits) of
// a GPT-2-small-shaped model; tokens/s is the prefill throughput.
func BenchmarkGPT2SmallForward(b *testing.B) {
	m := gpt2Small(b)
	defer m.Close()
	for _, T := range []int{1, 128} {
		b.Run(fmt.Sprintf("tokens=%d", T), func(b *testing.B) {
			ids := make([]int, T)
			for i := range ids {
				ids[i] = (i * 7919) % 50257
			}
			in, err := transformer.NewBatch([][]int{ids}, nil)
			require.NoError(b, err)
			b.ResetTimer()
			for b.Loop() {
				_, err := m.Forward(context.Background(), in, nil)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkGPT2SmallDecode generates 16 tokens after a 128-token prompt
// through the KV cache; tokens/s counts the generated tokens and the
// prefill.
func BenchmarkGPT2SmallDecode(b *testing.B) {
	m := gpt2Small(b)
	defer m.Close()
	ids := make([]int, 128)
	for i := range ids {
		ids[i] = (i * 7919) % 50257
	}
	b.ResetTimer()
	for b.Loop() {
		_, err := m.Generate(context.Background(), ids, transformer.GenerateOptions{MaxNewTokens: 16}, nil)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "new-tokens/s")
}
