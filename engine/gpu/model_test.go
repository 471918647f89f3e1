package gpu_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/engine/gpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/transformertest"
)

func modelDir(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

// modelPair is one model loaded on the CPU (the reference) and on the GPU.
type modelPair struct {
	cpu, gpu *transformer.Model
}

func loadPair(t *testing.T, g *gpu.Backend, name string) modelPair {
	t.Helper()
	c, err := transformer.Load(modelDir(name), cpu.New())
	require.NoError(t, err)
	d, err := transformer.Load(modelDir(name), g)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); d.Close() })
	return modelPair{c, d}
}

// seqs returns two token sequences of different lengths (the batch is
// padded) with ids below vocab.
func seqs(vocab, n int) [][]int {
	a, b := make([]int, n), make([]int, n-3)
	for i := range a {
		a[i] = (i*7919 + 11) % vocab
	}
	for i := range b {
		b[i] = (i*104729 + 5) % vocab
	}
	return [][]int{a, b}
}

// forwardBoth runs one batch with a cache of every hook on both models and
// returns the outputs and caches, in host memory.
func (p modelPair) forwardBoth(t *testing.T, in transformer.Batch, hooks ...transformer.HookSpec) (cpuOut, gpuOut []float32, cpuCache, gpuCache transformer.Cache) {
	t.Helper()
	ctx := context.Background()
	co, cc, err := p.cpu.ForwardWithCache(ctx, in, transformer.Names("*"), hooks...)
	require.NoError(t, err)
	gpuHooks := hooks
	go_, gc, err := p.gpu.ForwardWithCache(ctx, in, transformer.Names("*"), gpuHooks...)
	require.NoError(t, err)
	return p.cpu.Backend.ToHost(co), p.gpu.Backend.ToHost(go_), cc, gc
}

// TestModelsMatchCPU runs GPT-2 and BERT models on both backends with every
// hook cached: the logits agree within 1e-4 relative on the FP32 path,
// 1e-2 on TF32 and 2.5e-2 on BF16 (bf16LogitsTol), and every hook's
// activation within ten times those bounds.
func TestModelsMatchCPU(t *testing.T) {
	for _, prec := range []gpu.Precision{gpu.FP32, gpu.TF32, gpu.BF16} {
		t.Run(prec.String(), func(t *testing.T) {
			g := newBackend(t, gpu.Options{MatMul: prec})
			tol := 1e-4
			switch prec {
			case gpu.TF32:
				tol = 1e-2
			case gpu.BF16:
				tol = 2.5e-2 // matmul_bf16_test.go's bf16LogitsTol: BF16 operands alone miss 1e-2
			}
			for _, name := range []string{"gpt2-tiny", "gpt2-tiny-bf16", "gpt2-default", "bert-tiny-cls", "bert-tiny-mlm"} {
				t.Run(name, func(t *testing.T) {
					p := loadPair(t, g, name)
					in, err := transformer.NewBatch(seqs(p.cpu.Config.VocabSize, 24), nil)
					require.NoError(t, err)
					co, gout, cc, gc := p.forwardBoth(t, in)
					d := relDiff(gout, co)
					t.Logf("logits: rel diff %.3g", d)
					assert.LessOrEqual(t, d, tol, "logits")
					require.Equal(t, len(cc), len(gc))
					for name, want := range cc {
						got, ok := gc[name]
						require.True(t, ok, name)
						// Padded positions of BERT's scores are -Inf on both; relDiff skips them.
						assert.LessOrEqual(t, relDiff(got.Host(), want.Host()), 10*tol, name)
					}
				})
			}
			t.Run("gpt2-small-shaped", func(t *testing.T) {
				if gpu.OnEmulator(g) {
					t.Skip("card-sized: left out on the emulated device")
				}
				c := transformertest.GPT2Small(t, cpu.New())
				d := transformertest.GPT2Small(t, g)
				p := modelPair{c, d}
				for _, n := range []int{1, 128} {
					in, err := transformer.NewBatch([][]int{seqs(50257, max(n, 4))[0][:n]}, nil)
					require.NoError(t, err)
					ctx := context.Background()
					co, err := p.cpu.Forward(ctx, in, nil)
					require.NoError(t, err)
					gout, err := p.gpu.Forward(ctx, in, nil)
					require.NoError(t, err)
					rd := relDiff(g.ToHost(gout), co.Host())
					t.Logf("%d tokens: logits rel diff %.3g", n, rd)
					assert.LessOrEqual(t, rd, tol, "%d tokens", n)
				}
			})
		})
	}
}

// TestInterventionsMatchCPU applies each intervention mode on both
// backends (the device applies them with one Edit launch per hook call).
func TestInterventionsMatchCPU(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	p := loadPair(t, g, "gpt2-default")
	ctx := context.Background()
	toks := seqs(p.cpu.Config.VocabSize, 20)[0]
	_, clean, err := p.cpu.RunWithCache(ctx, toks, transformer.Names("blocks.1.attn.hook_z", "blocks.1.hook_resid_pre"))
	require.NoError(t, err)
	means, err := p.cpu.MeanActivations(ctx, seqs(p.cpu.Config.VocabSize, 16), transformer.Names("blocks.0.mlp.hook_post"))
	require.NoError(t, err)
	site := func(s string) transformer.Site {
		st, err := transformer.ParseSite(s)
		require.NoError(t, err)
		return st
	}
	ivs := []transformer.Intervention{
		{Site: site("blocks.0.mlp.hook_post[i=5]"), Mode: transformer.Zero, Row: -1},
		{Site: site("blocks.0.mlp.hook_post"), Mode: transformer.Mean, Source: means["blocks.0.mlp.hook_post"], Row: -1},
		{Site: site("blocks.1.attn.hook_z[pos=3,head=1]"), Mode: transformer.Patch, Source: clean["blocks.1.attn.hook_z"], Row: -1},
		{Site: site("blocks.1.attn.hook_pattern[head=0]"), Mode: transformer.Scale, Value: 0.5, Row: -1},
		{Site: site("blocks.1.hook_resid_pre[pos=2]"), Mode: transformer.Add, Value: 0.25, Row: -1},
		{Site: site("blocks.1.hook_resid_pre[pos=4]"), Mode: transformer.Set, Source: engine.NewHost(make([]float32, p.cpu.Config.Hidden), p.cpu.Config.Hidden), Row: -1},
	}
	for _, iv := range ivs {
		t.Run(iv.String(), func(t *testing.T) {
			other := seqs(p.cpu.Config.VocabSize, 20)[1]
			co, err := p.cpu.RunWithInterventions(ctx, other, []transformer.Intervention{iv})
			require.NoError(t, err)
			gout, err := p.gpu.RunWithInterventions(ctx, other, []transformer.Intervention{iv})
			require.NoError(t, err)
			assert.LessOrEqual(t, relDiff(g.ToHost(gout), co.Host()), 1e-4)
		})
	}
	t.Run("batched", func(t *testing.T) {
		sets := [][]transformer.Intervention{nil, ivs[:1], ivs[2:4], ivs}
		co, err := p.cpu.RunBatchedInterventions(ctx, toks, sets)
		require.NoError(t, err)
		gout, err := p.gpu.RunBatchedInterventions(ctx, toks, sets)
		require.NoError(t, err)
		assert.LessOrEqual(t, relDiff(g.ToHost(gout), co.Host()), 1e-4)
	})
}

// TestGradientsMatchCPU runs the backward pass of [hooks] on both backends.
func TestGradientsMatchCPU(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	for _, name := range []string{"gpt2-default", "bert-tiny-cls"} {
		t.Run(name, func(t *testing.T) {
			p := loadPair(t, g, name)
			toks := seqs(p.cpu.Config.VocabSize, 20)[0]
			in, err := transformer.NewBatch([][]int{toks}, nil)
			require.NoError(t, err)
			metric := transformer.LogitDiff(3, 7)
			if p.cpu.BERT != nil {
				metric = transformer.ClassMargin(1, 0)
			}
			ctx := context.Background()
			cr, err := p.cpu.Gradients(ctx, in, metric, transformer.Names("*"))
			require.NoError(t, err)
			gr, err := p.gpu.Gradients(ctx, in, metric, transformer.Names("*"))
			require.NoError(t, err)
			assert.InDelta(t, cr.Metric[0], gr.Metric[0], 1e-4*max(1, abs(cr.Metric[0])))
			for h, want := range cr.Grads {
				got, ok := gr.Grads[h]
				require.True(t, ok, h)
				assert.LessOrEqual(t, relDiff(g.ToHost(got), want.Host()), 1e-3, h)
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestGenerateMatchesCPU generates greedily on both backends through the KV
// cache: the same tokens.
func TestGenerateMatchesCPU(t *testing.T) {
	g := newBackend(t, gpu.Options{})
	p := loadPair(t, g, "gpt2-default")
	ctx := context.Background()
	prompt := seqs(p.cpu.Config.VocabSize, 12)[0]
	opts := transformer.GenerateOptions{MaxNewTokens: 16}
	cg, err := p.cpu.Generate(ctx, prompt, opts, nil)
	require.NoError(t, err)
	gg, err := p.gpu.Generate(ctx, prompt, opts, nil)
	require.NoError(t, err)
	assert.Equal(t, cg.Tokens, gg.Tokens)
}
