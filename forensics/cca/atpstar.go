package cca

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

// This file holds the attribution estimates: attribution patching (AtP,
// Nanda 2023; Syed et al. 2023) and the two fixes of AtP* (Kramár et al.
// 2024, "AtP*: An efficient and scalable method for localizing LLM
// behaviour to components"):
//
//   - query and key sites: AtP linearises the metric through the attention
//     softmax, which saturates (a planted head attends with a score gap of
//     16, where the softmax's gradient is ~e⁻¹⁶), so AtP* recomputes the
//     head's attention pattern exactly with the patched query or key and
//     linearises only from the pattern on: Σ (A − A′)·∂metric/∂A;
//   - GradDrop: an effect through one downstream layer can cancel one
//     through another, so the linear estimate is near 0 for a site that
//     matters. AtP* repeats the backward pass L times, each with the
//     gradient through one layer's residual writes (attention and MLP
//     output) dropped, and scores a site by the mean over the drops of
//     |estimate|.

// estimator computes attribution estimates of candidates from one forward's
// activations and the patch values.
type estimator struct {
	m *transformer.Model
	T int
	// acts are the activations (host) by hook, sources the per-position
	// patch vectors (nil entries: zero).
	acts, sources map[string][]float32
	// dPattern caches, per query/key candidate, the exact change of its
	// head's attention pattern [dest, src] under the intervention: A − A′.
	dPattern map[string][]float64
}

// patternHook names the attention pattern of a layer.
func patternHook(l int) string { return fmt.Sprintf("blocks.%d.attn.hook_pattern", l) }

// gradHooks returns the hooks whose activations and gradients the
// estimates read: the candidates' own, and the attention patterns of the
// layers with query/key candidates.
func gradHooks(cands []Candidate) []string {
	hooks := hooksOf(cands)
	for _, c := range cands {
		if c.Kind == "q" || c.Kind == "k" {
			if h := patternHook(c.Layer); !slices.Contains(hooks, h) {
				hooks = append(hooks, h)
			}
		}
	}
	return hooks
}

// perPositionEstimate returns the candidate's estimate at each position
// (the destination position for query/key sites), given the gradients by
// hook; their sum is the AtP (or AtP*) estimate of how much the
// intervention lowers the metric.
func (e *estimator) perPositionEstimate(c Candidate, grads map[string][]float32) []float64 {
	out := make([]float64, e.T)
	if c.Kind == "q" || c.Kind == "k" {
		dA := e.patternChange(c)
		g := grads[patternHook(c.Layer)]
		T := e.T
		base := c.Index * T * T
		for d := range T {
			var s float64
			for src := range T {
				s += dA[d*T+src] * float64(g[base+d*T+src])
			}
			out[d] = s
		}
		return out
	}
	per := perPosition(e.m, c)
	off, n := siteRange(e.m, c)
	act, grad, src := e.acts[c.Site.Hook], grads[c.Site.Hook], e.sources[c.Site.Hook]
	for p := range e.T {
		var s float64
		for j := off; j < off+n; j++ {
			target := float32(0)
			if src != nil {
				target = src[j]
			}
			s += float64(act[p*per+j]-target) * float64(grad[p*per+j])
		}
		out[p] = s
	}
	return out
}

// patternChange returns A − A′ for a query/key candidate: A its head's
// attention pattern [dest, src], A′ the pattern recomputed exactly with the
// candidate's query (or key) set to its patch value at every position.
func (e *estimator) patternChange(c Candidate) []float64 {
	key := c.Site.String()
	if d, ok := e.dPattern[key]; ok {
		return d
	}
	m, T := e.m, e.T
	H, D := m.Config.Heads, m.Config.Hidden
	dh := D / H
	q := e.acts[fmt.Sprintf("blocks.%d.attn.hook_q", c.Layer)]
	k := e.acts[fmt.Sprintf("blocks.%d.attn.hook_k", c.Layer)]
	A := e.acts[patternHook(c.Layer)]
	patched := make([]float32, dh)
	if src := e.sources[c.Site.Hook]; src != nil {
		copy(patched, src[c.Index*dh:(c.Index+1)*dh])
	}
	vec := func(x []float32, p int) []float32 { return x[(p*H+c.Index)*dh : (p*H+c.Index+1)*dh] }
	scale, causal := attnScale(m, c.Layer)
	dA := make([]float64, T*T)
	scores := make([]float64, T)
	for d := range T {
		n := T
		if causal {
			n = d + 1
		}
		mx := math.Inf(-1)
		for s := range n {
			qv, kv := vec(q, d), vec(k, s)
			if c.Kind == "q" {
				qv = patched
			} else {
				kv = patched
			}
			var dot float64
			for j := range dh {
				dot += float64(qv[j]) * float64(kv[j])
			}
			scores[s] = dot * scale
			mx = max(mx, scores[s])
		}
		var z float64
		for s := range n {
			scores[s] = math.Exp(scores[s] - mx)
			z += scores[s]
		}
		for s := range n {
			dA[d*T+s] = float64(A[(c.Index*T+d)*T+s]) - scores[s]/z
		}
	}
	e.dPattern[key] = dA
	return dA
}

// attnScale returns the attention score scale of a layer and whether its
// attention is causal.
func attnScale(m *transformer.Model, l int) (float64, bool) {
	if m.GPT2 != nil {
		return float64(m.GPT2.H[l].Attn.Scale), true
	}
	return 1 / math.Sqrt(float64(m.Config.Hidden/m.Config.Heads)), false
}

// estimate returns the sum and the sum of absolute values of a per-position
// estimate.
func estimate(per []float64) (float64, float64) {
	var total, abs float64
	for _, v := range per {
		total += v
		abs += math.Abs(v)
	}
	return total, abs
}

// gradDrop returns, for each layer l in drops, the gradients of the
// metric at hooks (host) with the gradient through layer l's residual
// writes dropped: a backward pass through a copy of the model whose layer-l
// output projections are zero, with hook_attn_out and hook_mlp_out patched
// to their values in the plain run (clean), so the forward is unchanged and
// those writes are constants of the backward pass.
func gradDrop(ctx context.Context, m *transformer.Model, in transformer.Batch, metric transformer.Metric, hooks []string, clean map[string]*engine.Tensor, drops []int, cost *Cost) (map[int]map[string][]float32, error) {
	out := map[int]map[string][]float32{}
	for _, l := range drops {
		fm, err := frozenModel(m, l)
		if err != nil {
			return nil, err
		}
		var ivs []transformer.Intervention
		all := transformer.Span{All: true}
		for _, h := range []string{fmt.Sprintf("blocks.%d.hook_attn_out", l), fmt.Sprintf("blocks.%d.hook_mlp_out", l)} {
			a := clean[h]
			if a == nil {
				return nil, fmt.Errorf("cca: GradDrop: no activation of %s", h)
			}
			ivs = append(ivs, transformer.Intervention{Site: transformer.Site{Hook: h, Pos: all, Head: all, Src: all, I: all},
				Mode: transformer.Patch, Source: engine.NewHost(m.Backend.ToHost(a), a.Shape()...), Row: -1})
		}
		ih, err := fm.InterventionHooks(ivs)
		if err != nil {
			return nil, fmt.Errorf("cca: GradDrop: %w", err)
		}
		g, err := fm.Gradients(ctx, in, metric, transformer.Names(hooks...), ih...)
		if err != nil {
			return nil, fmt.Errorf("cca: GradDrop at layer %d: %w", l, err)
		}
		cost.Backward++
		gl := map[string][]float32{}
		for _, h := range hooks {
			if g.Grads[h] == nil {
				return nil, fmt.Errorf("cca: GradDrop at layer %d: no gradient for %s", l, h)
			}
			gl[h] = m.Backend.ToHost(g.Grads[h])
		}
		out[l] = gl
	}
	return out, nil
}

// frozenModel returns a shallow copy of m that shares every weight but the
// output projections of layer l's attention and MLP, which are zero.
func frozenModel(m *transformer.Model, l int) (*transformer.Model, error) {
	zero := func(t *engine.Tensor) *engine.Tensor {
		if t == nil {
			return nil
		}
		return m.Backend.FromHost(make([]float32, t.Len()), t.Shape()...)
	}
	fm := *m
	switch {
	case m.GPT2 != nil:
		g := *m.GPT2
		g.H = slices.Clone(g.H)
		b := &g.H[l]
		b.Attn.CProj.W, b.Attn.CProj.B = zero(b.Attn.CProj.W), zero(b.Attn.CProj.B)
		b.MLP.CProj.W, b.MLP.CProj.B = zero(b.MLP.CProj.W), zero(b.MLP.CProj.B)
		fm.GPT2 = &g
	case m.BERT != nil:
		bt := *m.BERT
		bt.Layers = slices.Clone(bt.Layers)
		ly := &bt.Layers[l]
		ly.AttnOutput.W, ly.AttnOutput.B = zero(ly.AttnOutput.W), zero(ly.AttnOutput.B)
		ly.Output.W, ly.Output.B = zero(ly.Output.W), zero(ly.Output.B)
		fm.BERT = &bt
	default:
		return nil, fmt.Errorf("cca: GradDrop: the model is neither GPT-2 nor BERT")
	}
	return &fm, nil
}
