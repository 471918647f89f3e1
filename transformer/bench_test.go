package transformer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/transformertest"
)

// BenchmarkGPT2SmallForward is a full forward (every position's logits) of
// a GPT-2-small-shaped model; tokens/s is the prefill throughput.
func BenchmarkGPT2SmallForward(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
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
	m := transformertest.GPT2Small(b, cpu.New())
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
