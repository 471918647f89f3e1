package transformer_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

func loadTiny(t *testing.T, name string) *transformer.Model {
	t.Helper()
	m, err := transformer.Load(modelDir(name), devicetest.Backend(t))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func forwardHost(t *testing.T, m *transformer.Model, seqs [][]int) ([]float32, []int) {
	t.Helper()
	in, err := transformer.NewBatch(seqs, nil)
	require.NoError(t, err)
	out, err := m.Forward(context.Background(), in, nil)
	require.NoError(t, err)
	return m.Backend.ToHost(out), out.Shape()
}

// TestKVCacheMatchesRecompute checks that each generation step's logits,
// computed through the KV cache, equal a full forward over every token so
// far, and that the greedy token is their argmax; over 30 steps, so that
// the cache's buffers fill and grow (16 positions, then 34).
func TestKVCacheMatchesRecompute(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "gpt2-tiny-bf16"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			prompt := []int{5, 17, 300, 42}
			var steps [][]float32
			hs, err := m.NewHooks(transformer.Hook("unembed.hook_out", func(a *engine.Tensor, h *transformer.HookCtx) error {
				host := h.Backend.ToHost(a)
				V := a.Dim(-1)
				steps = append(steps, append([]float32(nil), host[len(host)-V:]...))
				return nil
			}))
			require.NoError(t, err)
			gen, err := m.Generate(context.Background(), prompt, transformer.GenerateOptions{MaxNewTokens: 30}, hs)
			require.NoError(t, err)
			require.Len(t, gen.Tokens, 30)
			require.Len(t, steps, 30)
			seq := append([]int(nil), prompt...)
			for i, tok := range gen.Tokens {
				full, shape := forwardHost(t, m, [][]int{seq})
				V := shape[2]
				want := full[len(full)-V:]
				diff, scale := 0.0, 0.0
				for j := range want {
					diff = math.Max(diff, math.Abs(float64(steps[i][j]-want[j])))
					scale = math.Max(scale, math.Abs(float64(want[j])))
				}
				assert.LessOrEqual(t, diff, 1e-5*scale, "step %d", i)
				assert.Equal(t, argmax(want), tok, "step %d", i)
				assert.Equal(t, len(seq), gen.Steps[i].CacheLen, "step %d cache length", i)
				seq = append(seq, tok)
			}
		})
	}
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// TestBatchBitIdenticalToSingle checks that a padded batch gives, at every
// real position, the same bits as each sequence run alone.
func TestBatchBitIdenticalToSingle(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "bert-tiny-mlm"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			seqs := [][]int{{1, 2, 3, 4, 5, 6, 7}, {9, 8, 7}, {100, 200, 300, 50, 60}}
			batch, shape := forwardHost(t, m, seqs)
			T, V := shape[1], shape[2]
			for b, s := range seqs {
				single, _ := forwardHost(t, m, [][]int{s})
				got := batch[b*T*V : b*T*V+len(s)*V]
				assert.Equal(t, single, got, "sequence %d", b)
			}
		})
	}
}

func TestSamplerSeeded(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	prompt := []int{3, 1, 4, 1, 5}
	greedy, err := m.Generate(context.Background(), prompt, transformer.GenerateOptions{MaxNewTokens: 8}, nil)
	require.NoError(t, err)
	topK1, err := m.Generate(context.Background(), prompt, transformer.GenerateOptions{MaxNewTokens: 8,
		Sampler: transformer.Sampler{Temperature: 0.7, TopK: 1, Seed: 9}}, nil)
	require.NoError(t, err)
	assert.Equal(t, greedy.Tokens, topK1.Tokens, "top-k 1 is greedy")

	opts := transformer.GenerateOptions{MaxNewTokens: 8, Sampler: transformer.Sampler{Temperature: 1.5, TopP: 0.9, Seed: 42}}
	a, err := m.Generate(context.Background(), prompt, opts, nil)
	require.NoError(t, err)
	b, err := m.Generate(context.Background(), prompt, opts, nil)
	require.NoError(t, err)
	assert.Equal(t, a.Tokens, b.Tokens, "same seed, same tokens")
	assert.Equal(t, a.Steps, b.Steps)
}

// copyModel copies a testdata model into a temp dir, letting edit change the
// config (a map) and the tensors before they are written.
func copyModel(t *testing.T, name string, editConfig func(map[string]any), editTensors func([]weights.Tensor) []weights.Tensor) string {
	t.Helper()
	src := modelDir(name)
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	cfg := map[string]any{}
	require.NoError(t, json.Unmarshal(raw, &cfg))
	if editConfig != nil {
		editConfig(cfg)
	}
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))

	f, err := weights.Open(filepath.Join(src, "model.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	var ts []weights.Tensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		data, err := f.Float32(n)
		require.NoError(t, err)
		ts = append(ts, weights.Tensor{Name: n, DType: weights.F32, Shape: info.Shape, Data: append([]float32(nil), data...)})
	}
	if editTensors != nil {
		ts = editTensors(ts)
	}
	require.NoError(t, weights.Write(filepath.Join(dir, "model.safetensors"), ts, nil))
	return dir
}

func TestLoadErrors(t *testing.T) {
	without := func(name string) func([]weights.Tensor) []weights.Tensor {
		return func(ts []weights.Tensor) []weights.Tensor {
			var out []weights.Tensor
			for _, x := range ts {
				if x.Name != name {
					out = append(out, x)
				}
			}
			return out
		}
	}
	cases := []struct {
		name    string
		config  func(map[string]any)
		tensors func([]weights.Tensor) []weights.Tensor
		want    []string
	}{
		{"heads do not divide width", func(c map[string]any) { c["n_head"] = 7 }, nil, []string{"n_head"}},
		{"missing tensor", nil, without("h.1.mlp.c_fc.bias"), []string{"missing tensor", "h.1.mlp.c_fc.bias"}},
		{"shape disagrees with config", func(c map[string]any) { c["vocab_size"] = 600 }, nil,
			[]string{"wte.weight", "[512 60]", "[600 60]"}},
		{"unsupported activation", func(c map[string]any) { c["activation_function"] = "relu" }, nil, []string{"relu"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyModel(t, "gpt2-tiny", tc.config, tc.tensors)
			_, err := transformer.Load(dir, cpu.New())
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestInputErrors(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	long := make([]int, 65)
	cases := []struct {
		name string
		seqs [][]int
		want string
	}{
		{"token id outside vocabulary", [][]int{{1, 512}}, "token id 512"},
		{"negative token id", [][]int{{-1}}, "token id -1"},
		{"longer than n_positions", [][]int{long}, "exceed the model's 64 positions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := transformer.NewBatch(tc.seqs, nil)
			require.NoError(t, err)
			_, err = m.Forward(context.Background(), in, nil)
			require.ErrorIs(t, err, transformer.ErrBadInput)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := transformer.NewBatch([][]int{{}}, nil)
	assert.ErrorIs(t, err, transformer.ErrBadInput)
	_, err = m.Generate(context.Background(), make([]int, 60), transformer.GenerateOptions{MaxNewTokens: 5}, nil)
	assert.ErrorIs(t, err, transformer.ErrBadInput)
}

func TestHookErrors(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	_, err := m.NewHooks(transformer.Hook("blocks.9.hook_resid_post", nil))
	require.ErrorIs(t, err, transformer.ErrUnknownHook)
	assert.Contains(t, err.Error(), "blocks.9.hook_resid_post")

	names, err := m.MatchHooks("blocks.*.mlp.hook_post")
	require.NoError(t, err)
	assert.Equal(t, []string{"blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post"}, names)
}

// TestHookEditsInPlace zeroes the residual stream's last position after the
// last block through a hook and checks the logits follow: with a zero
// residual the final LayerNorm outputs its bias, so the logits are
// bias·Wteᵀ.
func TestHookEditsInPlace(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	hs, err := m.NewHooks(transformer.Hook("blocks.1.hook_resid_post", func(a *engine.Tensor, h *transformer.HookCtx) error {
		h.Backend.Edit(a, engine.Edit{Mode: engine.EditZero, Dims: [engine.MaxEditDims]int{1, 1, 1, 1, a.Len()}, Strides: [engine.MaxEditDims]int{0, 0, 0, 0, 1}})
		return nil
	}))
	require.NoError(t, err)
	in, err := transformer.NewBatch([][]int{{1, 2, 3}}, nil)
	require.NoError(t, err)
	out, err := m.Forward(context.Background(), in, hs)
	require.NoError(t, err)
	logits := m.Backend.ToHost(out)
	bias := m.Backend.ToHost(m.GPT2.LnF.Bias)
	wte := m.Backend.ToHost(m.GPT2.Wte)
	D := len(bias)
	V := len(wte) / D
	for _, v := range []int{0, 17, V - 1} {
		want := 0.0
		for d := range D {
			want += float64(bias[d]) * float64(wte[v*D+d])
		}
		assert.InDelta(t, want, float64(logits[2*V+v]), 1e-5*math.Max(1, math.Abs(want)))
	}
}

// TestFusedMatchesHooked checks that the fused residual-add-LayerNorm and
// matmul-GELU paths, taken when no hook reads between the fused ops, give
// the bits of the unfused ops that hooks there (resid_pre, resid_mid,
// resid_post, mlp.hook_pre) force: the output of a forward without hooks,
// and with hooks that read only at points that keep the fusion (the
// LayerNorms' outputs and scales, mlp.hook_post, hook_mlp_out), and what
// those hooks see.
func TestFusedMatchesHooked(t *testing.T) {
	keepFused := []string{"*hook_normalized", "*hook_scale", "blocks.*.mlp.hook_post", "blocks.*.hook_mlp_out"}
	splitFused := append([]string{"blocks.*.hook_resid_*", "blocks.*.mlp.hook_pre"}, keepFused...)
	for _, name := range []string{"gpt2-tiny", "bert-tiny-mlm", "bert-tiny-cls"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			in, err := transformer.NewBatch([][]int{{1, 2, 3, 4, 5, 6, 7}, {9, 8, 7}}, nil)
			require.NoError(t, err)
			ctx := context.Background()
			plain, err := m.Forward(ctx, in, nil)
			require.NoError(t, err)
			fused, fusedCache, err := m.ForwardWithCache(ctx, in, transformer.Names(keepFused...))
			require.NoError(t, err)
			split, splitCache, err := m.ForwardWithCache(ctx, in, transformer.Names(splitFused...))
			require.NoError(t, err)
			want := m.Backend.ToHost(split)
			assert.Equal(t, want, m.Backend.ToHost(plain), "no hooks")
			assert.Equal(t, want, m.Backend.ToHost(fused), "hooks that keep the fusion")
			require.NotEmpty(t, fusedCache)
			for hook, act := range fusedCache {
				require.Contains(t, splitCache, hook)
				assert.Equal(t, splitCache[hook].Host(), act.Host(), hook)
			}
		})
	}
}
