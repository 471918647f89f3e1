package transformer_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights/npy"
)

// modelDir is where testdata/gen/make_models.py writes the tiny models.
func modelDir(name string) string { return filepath.Join("..", "testdata", "models", name) }

// golden is one PyTorch-computed golden file: inputs and every hook.
type golden struct {
	ids, mask, types [][]int
	hooks            map[string]npy.Array
}

func readGolden(t *testing.T, name string) golden {
	t.Helper()
	arrays, err := npy.ReadNPZ(filepath.Join("..", "testdata", "golden", name+".npz"))
	require.NoError(t, err)
	g := golden{hooks: map[string]npy.Array{}}
	rows := func(key string) [][]int {
		a, ok := arrays[key]
		if !ok {
			return nil
		}
		v, err := a.Int64()
		require.NoError(t, err, key)
		B, T := a.Shape[0], a.Shape[1]
		out := make([][]int, B)
		for b := range B {
			for j := range T {
				out[b] = append(out[b], int(v[b*T+j]))
			}
		}
		return out
	}
	g.ids, g.mask, g.types = rows("input_ids"), rows("attention_mask"), rows("token_type_ids")
	for k, a := range arrays {
		if k != "input_ids" && k != "attention_mask" && k != "token_type_ids" {
			g.hooks[k] = a
		}
	}
	require.NotEmpty(t, g.ids)
	return g
}

// batch turns the golden's padded ids and mask into per-sequence inputs.
func (g golden) batch(t *testing.T) (transformer.Batch, []int) {
	var seqs, types [][]int
	var lengths []int
	for b, row := range g.ids {
		n := 0
		for _, m := range g.mask[b] {
			n += m
		}
		lengths = append(lengths, n)
		seqs = append(seqs, row[:n])
		if g.types != nil {
			types = append(types, g.types[b][:n])
		}
	}
	in, err := transformer.NewBatch(seqs, types)
	require.NoError(t, err)
	return in, lengths
}

// seqAxes returns the axes of a hook's activation that run over sequence
// positions: both attention axes of scores and patterns, else axis 1 of a
// [B, T, ...] activation; none for pooled [B, D] outputs.
func seqAxes(name string, rank int) []int {
	switch {
	case strings.HasSuffix(name, "hook_attn_scores"), strings.HasSuffix(name, "hook_pattern"):
		return []int{2, 3}
	case rank >= 3:
		return []int{1}
	}
	return nil
}

// validDiff returns max|got-want| and max|want| over the entries that belong
// to real tokens (padding positions are skipped on every sequence axis);
// infinities (masked attention scores) must match exactly.
func validDiff(t *testing.T, name string, got, want []float32, shape, lengths []int) (diff, scale float64) {
	t.Helper()
	axes := seqAxes(name, len(shape))
	idx := make([]int, len(shape))
	for off := range want {
		rem := off
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax] = rem % shape[ax]
			rem /= shape[ax]
		}
		skip := false
		for _, ax := range axes {
			skip = skip || idx[ax] >= lengths[idx[0]]
		}
		if skip {
			continue
		}
		w, g := float64(want[off]), float64(got[off])
		if math.IsInf(w, 0) || math.IsInf(g, 0) {
			require.Equal(t, w, g, "%s at %v", name, idx)
			continue
		}
		diff = math.Max(diff, math.Abs(g-w))
		scale = math.Max(scale, math.Abs(w))
	}
	return diff, scale
}

func TestGoldenActivations(t *testing.T) {
	cases := []struct{ model, golden string }{
		{"gpt2-tiny", "gpt2-tiny"},
		{"gpt2-tiny-sharded", "gpt2-tiny"},
		{"gpt2-tiny-bf16", "gpt2-tiny-bf16"},
		{"gpt2-default", "gpt2-default"},
		{"bert-tiny-cls", "bert-tiny-cls"},
		{"bert-tiny-mlm", "bert-tiny-mlm"},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			m, err := transformer.Load(modelDir(tc.model), devicetest.Backend(t))
			require.NoError(t, err)
			defer m.Close()
			g := readGolden(t, tc.golden)
			in, lengths := g.batch(t)

			captured := map[string][]float32{}
			var hooks []transformer.HookSpec
			for name := range g.hooks {
				hooks = append(hooks, transformer.Hook(name, func(a *engine.Tensor, h *transformer.HookCtx) error {
					captured[h.Name] = append([]float32(nil), h.Backend.ToHost(a)...)
					return nil
				}))
			}
			hs, err := m.NewHooks(hooks...)
			require.NoError(t, err)
			_, err = m.Forward(context.Background(), in, hs)
			require.NoError(t, err)

			assert.Len(t, captured, len(g.hooks))
			for name, want := range g.hooks {
				wantF, err := want.Float32()
				require.NoError(t, err)
				got, ok := captured[name]
				if !assert.True(t, ok, "hook %s was not called", name) {
					continue
				}
				require.Len(t, got, len(wantF), name)
				diff, scale := validDiff(t, name, got, wantF, want.Shape, lengths)
				assert.LessOrEqual(t, diff, 1e-4*scale, "%s: max|fx-torch| %.3g, max|torch| %.3g", name, diff, scale)
			}
			// every hook point the model lists is covered by the golden file
			for _, name := range m.HookNames() {
				if strings.HasPrefix(name, "mlm.ln.") {
					continue
				}
				assert.Contains(t, g.hooks, name, "golden file lacks hook %s", name)
			}
		})
	}
}

// generateGolden is testdata/golden/NAME_generate.json.
type generateGolden struct {
	Prompts [][]int `json:"prompts"`
	Greedy  [][]int `json:"greedy"`
}

func TestGenerateGreedyMatchesTorch(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "gpt2-tiny-bf16", "gpt2-default"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "testdata", "golden", name+"_generate.json"))
			require.NoError(t, err)
			var g generateGolden
			require.NoError(t, json.Unmarshal(data, &g))
			m, err := transformer.Load(modelDir(name), devicetest.Backend(t))
			require.NoError(t, err)
			defer m.Close()
			for i, p := range g.Prompts {
				gen, err := m.Generate(context.Background(), p, transformer.GenerateOptions{MaxNewTokens: len(g.Greedy[i])}, nil)
				require.NoError(t, err)
				assert.Equal(t, g.Greedy[i], gen.Tokens, "prompt %v", p)
			}
		})
	}
}

// TestLogitPositions checks Batch.LogitPositions against PyTorch's logits
// at those positions (the golden's unembed.hook_out), and against the same
// rows of the full forward (bit for bit on the CPU, whose products do not
// depend on the number of rows; a GPU's kernels change with it), with and
// without a hook on unembed.hook_out (which then sees every position); and
// its errors.
func TestLogitPositions(t *testing.T) {
	m, err := transformer.Load(modelDir("gpt2-tiny"), devicetest.Backend(t))
	require.NoError(t, err)
	defer m.Close()
	g := readGolden(t, "gpt2-tiny")
	in, lengths := g.batch(t)
	at := []int{2, 0, 2, slices.Min(lengths) - 1} // out of order, repeated, the shortest sequence's last
	ctx := context.Background()
	full, err := m.Forward(ctx, in, nil)
	require.NoError(t, err)
	fullHost := m.Backend.ToHost(full)
	want := g.hooks["unembed.hook_out"]
	wantF, err := want.Float32()
	require.NoError(t, err)
	T, V := in.T, m.Config.VocabSize
	var seen int
	hooked, err := m.NewHooks(transformer.Hook("unembed.hook_out", func(a *engine.Tensor, h *transformer.HookCtx) error {
		seen = a.Dim(1)
		return nil
	}))
	require.NoError(t, err)
	for _, hs := range []*transformer.Hooks{nil, hooked} {
		in.LogitPositions = at
		out, err := m.Forward(ctx, in, hs)
		require.NoError(t, err)
		require.Equal(t, []int{in.B, len(at), V}, out.Shape())
		got := m.Backend.ToHost(out)
		var diff, scale float64
		for b := range in.B {
			for j, p := range at {
				row := got[(b*len(at)+j)*V : (b*len(at)+j+1)*V]
				fullRow := fullHost[(b*T+p)*V : (b*T+p+1)*V]
				if strings.HasPrefix(m.Backend.Name(), "cpu/") {
					assert.Equal(t, fullRow, row, "sequence %d, position %d: the full forward's row", b, p)
				} else {
					var d, sc float64
					for v, x := range row {
						d, sc = max(d, math.Abs(float64(x-fullRow[v]))), max(sc, math.Abs(float64(fullRow[v])))
					}
					assert.LessOrEqual(t, d, 1e-5*sc, "sequence %d, position %d: the full forward's row", b, p)
				}
				for v, x := range row {
					w := float64(wantF[(b*T+p)*V+v])
					diff, scale = max(diff, math.Abs(float64(x)-w)), max(scale, math.Abs(w))
				}
			}
		}
		assert.LessOrEqual(t, diff, 1e-4*scale, "max|fx-torch| %.3g, max|torch| %.3g", diff, scale)
	}
	assert.Equal(t, T, seen, "a hook on unembed.hook_out sees every position")

	for _, bad := range [][]int{{}, {-1}, {T}} {
		in.LogitPositions = bad
		_, err := m.Forward(ctx, in, nil)
		require.ErrorIs(t, err, transformer.ErrBadInput, "%v", bad)
		assert.Contains(t, err.Error(), "LogitPositions")
	}
	bert, err := transformer.Load(modelDir("bert-tiny-cls"), devicetest.Backend(t))
	require.NoError(t, err)
	defer bert.Close()
	bin, err := transformer.NewBatch([][]int{{2, 7, 8, 3}}, nil)
	require.NoError(t, err)
	bin.LogitPositions = []int{0}
	_, err = bert.Forward(ctx, bin, nil)
	require.ErrorIs(t, err, transformer.ErrBadInput)
}
