package transformer_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/transformer"
)

// TestGradientsFiniteDifferences checks the backward pass against central
// finite differences of the forward pass: each probe adds ±eps to one
// element of a hook activation through an add intervention.
func TestGradientsFiniteDifferences(t *testing.T) {
	cases := []struct {
		model  string
		toks   []int
		metric transformer.Metric
		hooks  []string
	}{
		{"gpt2-tiny", []int{11, 200, 37, 5, 480, 99}, transformer.LogProb(42), []string{
			"hook_embed", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
			"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_pre",
			"blocks.1.hook_resid_mid", "blocks.0.ln1.hook_normalized", "ln_final.hook_normalized"}},
		{"bert-tiny-mlm", []int{1, 17, 300, 42, 8, 2}, transformer.LogProb(7), []string{
			"embed.hook_embed", "blocks.0.attn.hook_k", "blocks.1.attn.hook_attn_scores", "blocks.2.mlp.hook_post",
			"blocks.2.ln1.hook_normalized", "blocks.0.hook_resid_pre", "mlm.hook_transform"}},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	const eps = 1e-2
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			m := loadTiny(t, tc.model)
			in, err := transformer.NewBatch([][]int{tc.toks}, nil)
			require.NoError(t, err)
			res, err := m.Gradients(context.Background(), in, tc.metric, transformer.Names(tc.hooks...))
			require.NoError(t, err)
			for _, hook := range tc.hooks {
				grad := res.Grads[hook]
				require.NotNil(t, grad, hook)
				shape := grad.Shape()
				for range 3 {
					// a random element, as a site with every axis pinned
					idx := make([]int, len(shape)-1)
					off := 0
					for ax := range idx {
						idx[ax] = rng.IntN(shape[ax+1])
						off = off*shape[ax+1] + idx[ax]
					}
					s := pinnedSite(t, hook, idx)
					metricAt := func(delta float32) float64 {
						out, err := m.RunWithInterventions(context.Background(), tc.toks,
							[]transformer.Intervention{{Site: s, Mode: transformer.Add, Value: delta, Row: -1}})
						require.NoError(t, err)
						return tc.metric.Of(out.Host(), out.Shape(), 0)
					}
					if hook == "blocks.1.attn.hook_attn_scores" && math.IsInf(float64(res.Acts[hook].Host()[off]), -1) {
						assert.Zero(t, grad.Host()[off], "masked score")
						continue
					}
					fd := (metricAt(eps) - metricAt(-eps)) / (2 * eps)
					got := float64(grad.Host()[off])
					assert.InDelta(t, fd, got, 2e-3+2e-2*math.Abs(fd), "%s at %v", s, idx)
				}
			}
		})
	}
}

// pinnedSite names one element of a hook's activation.
func pinnedSite(t *testing.T, hook string, idx []int) transformer.Site {
	var sel string
	switch len(idx) {
	case 1:
		sel = fmt.Sprintf("[i=%d]", idx[0])
	case 2:
		sel = fmt.Sprintf("[pos=%d,i=%d]", idx[0], idx[1])
	default:
		if hasAttnAxes(hook) {
			sel = fmt.Sprintf("[head=%d,pos=%d,src=%d]", idx[0], idx[1], idx[2])
		} else {
			sel = fmt.Sprintf("[pos=%d,head=%d,i=%d]", idx[0], idx[1], idx[2])
		}
	}
	return site(t, hook+sel)
}

func hasAttnAxes(hook string) bool {
	return strings.HasSuffix(hook, "hook_pattern") || strings.HasSuffix(hook, "hook_attn_scores")
}
