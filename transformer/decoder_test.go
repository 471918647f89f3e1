package transformer_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

// TestDecoderMatchesKVCache checks the Decoder, whose steps read their
// token and position from the backend's memory (and, on a backend that
// captures, replay a graph), against the KV-cache forward that hooks run
// on: the same logits, bit for bit, at every step of a greedy generation
// that grows the KV cache past its first capacity. A prompt given in two
// parts, around a step, gives the same logits within 1e-5.
func TestDecoderMatchesKVCache(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"gpt2-tiny", "gpt2-tiny-bf16"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			prompt := []int{5, 17, 300, 42}
			const steps = 20
			var want [][]float32
			hs, err := m.NewHooks(transformer.Hook("unembed.hook_out", func(a *engine.Tensor, h *transformer.HookCtx) error {
				host := h.Backend.ToHost(a)
				want = append(want, append([]float32(nil), host[len(host)-a.Dim(-1):]...))
				return nil
			}))
			require.NoError(t, err)
			gen, err := m.Generate(ctx, prompt, transformer.GenerateOptions{MaxNewTokens: steps}, hs)
			require.NoError(t, err)

			dec, err := m.NewDecoder(len(prompt) + steps)
			require.NoError(t, err)
			defer func() { assert.NoError(t, dec.Close()) }()
			got, err := dec.Prefill(ctx, prompt)
			require.NoError(t, err)
			assert.Equal(t, want[0], got, "prefill")
			for i, tok := range gen.Tokens[:steps-1] {
				got, err := dec.Step(ctx, tok)
				require.NoError(t, err)
				assert.Equal(t, want[i+1], got, "step %d", i+1)
				assert.Equal(t, len(prompt)+i+1, dec.Len())
			}
			captured, err := dec.Captured()
			require.NoError(t, err)
			_, canCapture := m.Backend.(engine.Capturer)
			assert.Equal(t, canCapture, captured, "the steps replay a graph where the backend captures")

			split, err := m.NewDecoder(len(prompt) + 2)
			require.NoError(t, err)
			defer func() { assert.NoError(t, split.Close()) }()
			_, err = split.Prefill(ctx, prompt[:1])
			require.NoError(t, err)
			_, err = split.Step(ctx, prompt[1])
			require.NoError(t, err)
			got, err = split.Prefill(ctx, append(prompt[2:], gen.Tokens[0]))
			require.NoError(t, err)
			assertClose(t, want[1], got, 1e-5)
		})
	}
}

// TestDecoderErrors checks the decoder's refusals: a BERT model, a
// capacity outside the model's positions, a token outside the vocabulary,
// more tokens than the capacity.
func TestDecoderErrors(t *testing.T) {
	ctx := context.Background()
	_, err := loadTiny(t, "bert-tiny-mlm").NewDecoder(4)
	assert.ErrorContains(t, err, "only GPT-2 generates")

	m := loadTiny(t, "gpt2-tiny")
	for _, capacity := range []int{0, m.Config.MaxPositions + 1} {
		_, err := m.NewDecoder(capacity)
		assert.ErrorIs(t, err, transformer.ErrBadInput, "capacity %d", capacity)
	}
	dec, err := m.NewDecoder(3)
	require.NoError(t, err)
	_, err = dec.Prefill(ctx, []int{1, m.Config.VocabSize})
	assert.ErrorIs(t, err, transformer.ErrBadInput)
	assert.ErrorContains(t, err, "outside the vocabulary")
	_, err = dec.Prefill(ctx, []int{1, 2})
	require.NoError(t, err)
	_, err = dec.Step(ctx, -1)
	assert.ErrorIs(t, err, transformer.ErrBadInput)
	_, err = dec.Step(ctx, 3)
	require.NoError(t, err)
	_, err = dec.Step(ctx, 4)
	assert.ErrorIs(t, err, transformer.ErrBadInput)
	assert.ErrorContains(t, err, "capacity of 3")
	assert.Equal(t, 3, dec.Len(), "a refused token changes nothing")
}

// assertClose checks max|got-want| ≤ tol·max|want|.
func assertClose(t *testing.T, want, got []float32, tol float64) {
	t.Helper()
	require.Len(t, got, len(want))
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i]-want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	assert.LessOrEqual(t, diff, tol*scale)
}
