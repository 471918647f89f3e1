package transformer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/transformertest"
)

func benchTokens(T int) []int {
	ids := make([]int, T)
	for i := range ids {
		ids[i] = (i * 7919) % 50257
	}
	return ids
}

// BenchmarkHookOverhead is a GPT-2-small-shaped forward of 128 tokens with no
// hooks, with a no-op hook at every hook point that only observes
// (everything but hook_result and hook_scale, which compute extra values
// when asked), and with every hook point.
func BenchmarkHookOverhead(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	noop := func(*engine.Tensor, *transformer.HookCtx) error { return nil }
	var observe []transformer.HookSpec
	var every []transformer.HookSpec
	for _, n := range m.HookNames() {
		every = append(every, transformer.Hook(n, noop))
		if !strings.HasSuffix(n, "hook_result") && !strings.HasSuffix(n, "hook_scale") {
			observe = append(observe, transformer.Hook(n, noop))
		}
	}
	toks := benchTokens(128)
	for _, tc := range []struct {
		name  string
		hooks []transformer.HookSpec
	}{{"none", nil}, {"observe-all", observe}, {"every", every}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				_, err := m.RunWithHooks(context.Background(), toks, tc.hooks...)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkRunWithCache caches every hook of a 128-token forward.
func BenchmarkRunWithCache(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	toks := benchTokens(128)
	for b.Loop() {
		_, _, err := m.RunWithCache(context.Background(), toks, transformer.Names("*"))
		require.NoError(b, err)
	}
}

// BenchmarkInterventions evaluates 8 single-neuron zero ablations on a
// 32-token input batched in one forward against 8 sequential forwards; the
// sets/s metrics give the throughput ratio.
func BenchmarkInterventions(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	toks := benchTokens(32)
	sets := make([][]transformer.Intervention, 8)
	for i := range sets {
		s, err := transformer.ParseSite("blocks.6.mlp.hook_post[pos=-1]")
		require.NoError(b, err)
		s.I = transformer.Index(100 * i)
		sets[i] = []transformer.Intervention{{Site: s, Mode: transformer.Zero, Row: -1}}
	}
	b.Run("batched", func(b *testing.B) {
		for b.Loop() {
			_, err := m.RunBatchedInterventions(context.Background(), toks, sets)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(len(sets)*b.N)/b.Elapsed().Seconds(), "sets/s")
	})
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			for _, set := range sets {
				_, err := m.RunWithInterventions(context.Background(), toks, set)
				require.NoError(b, err)
			}
		}
		b.ReportMetric(float64(len(sets)*b.N)/b.Elapsed().Seconds(), "sets/s")
	})
}

// BenchmarkResume runs a 128-token forward from block 9's cached resid_pre
// against the full forward.
func BenchmarkResume(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	in, err := transformer.NewBatch([][]int{benchTokens(128)}, nil)
	require.NoError(b, err)
	_, cache, err := m.ForwardWithCache(context.Background(), in, transformer.Names("blocks.9.hook_resid_pre"))
	require.NoError(b, err)
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			_, err := m.Forward(context.Background(), in, nil)
			require.NoError(b, err)
		}
	})
	b.Run("from-block-9", func(b *testing.B) {
		for b.Loop() {
			_, err := m.ForwardFrom(context.Background(), in, 9, cache["blocks.9.hook_resid_pre"], nil)
			require.NoError(b, err)
		}
	})
}
