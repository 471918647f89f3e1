package transformer

import (
	"context"
	"fmt"
	"math"

	"github.com/modelforensics/fx/engine"
)

// GradResult is the outcome of Model.Gradients.
type GradResult struct {
	// Output is the model's output (see Forward).
	Output *engine.Tensor
	// Metric is the metric of each batch row.
	Metric []float64
	// Grads holds, for each hook point the filter named, the gradient of
	// the metric (summed over batch rows) with respect to that activation,
	// shaped like it.
	Grads Cache
	// Acts holds the activations themselves, for the same hook points.
	Acts Cache
}

// Gradients runs a forward pass on in and one backward pass of metric, and
// returns the gradient of the metric with respect to every hook activation
// the filter names. hooks (interventions, say) run in the forward pass as
// usual. The backend must implement engine.GradBackend. Gradients of
// hook_scale points are not computed (fx's LayerNorm is one op).
//
// The metric reads the last position of each row (see Metric), so rows
// should not be padded.
func (m *Model) Gradients(ctx context.Context, in Batch, metric Metric, names Filter, hooks ...HookSpec) (*GradResult, error) {
	gb, ok := m.Backend.(engine.GradBackend)
	if !ok {
		return nil, fmt.Errorf("gradients: the %s backend has no backward ops", m.Backend.Name())
	}
	if metric.Grad == nil {
		return nil, fmt.Errorf("gradients: metric %s has no gradient", metric.Name)
	}
	// Keep a reference (no copy) to every activation the backward pass
	// reads: the forward makes a new tensor for each, so they stay as they
	// were when the hook saw them.
	acts := Cache{}
	keep := func(a *engine.Tensor, h *HookCtx) error { acts[h.Name] = a; return nil }
	all := append([]HookSpec(nil), hooks...)
	for _, n := range m.hookNames {
		if !isScaleOrResult(n) {
			all = append(all, Hook(n, keep))
		}
	}
	hs, err := m.NewHooks(all...)
	if err != nil {
		return nil, err
	}
	out, err := m.Forward(ctx, in, hs)
	if err != nil {
		return nil, err
	}
	host := gb.ToHost(out)
	res := &GradResult{Output: out, Grads: Cache{}, Acts: Cache{}}
	dout := make([]float32, len(host))
	for row := range in.B {
		res.Metric = append(res.Metric, metric.Of(host, out.Shape(), row))
		metric.Grad(host, out.Shape(), row, dout)
	}
	g := &grads{b: gb, names: names, acts: acts, res: res}
	g.put(outputHook(m), gb.FromHost(dout, out.Shape()...))
	if m.GPT2 != nil {
		m.GPT2.backward(g, in)
	} else {
		m.BERT.backward(g, in)
	}
	for name, a := range acts {
		if names.Match(name) {
			res.Acts[name] = a
		}
	}
	if err := gb.Sync(); err != nil {
		return nil, err
	}
	return res, nil
}

func isScaleOrResult(name string) bool {
	return hasSuffix(name, ".hook_scale") || hasSuffix(name, "attn.hook_result")
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// outputHook names the hook point of the model's output.
func outputHook(m *Model) string {
	if m.BERT != nil {
		switch m.BERT.Head {
		case HeadSequenceClassification:
			return "classifier.hook_out"
		case HeadNone:
			return fmt.Sprintf("blocks.%d.hook_resid_post", m.Config.Layers-1)
		}
	}
	return "unembed.hook_out"
}

// grads collects the backward pass's gradients.
type grads struct {
	b     engine.GradBackend
	names Filter
	acts  Cache
	res   *GradResult
	// last is the gradient most recently put, by hook name.
	last map[string]*engine.Tensor
}

// put records d as the gradient at hook point name and returns it.
func (g *grads) put(name string, d *engine.Tensor) *engine.Tensor {
	if g.names.Match(name) {
		g.res.Grads[name] = d
	}
	if g.last == nil {
		g.last = map[string]*engine.Tensor{}
	}
	g.last[name] = d
	return d
}

// get returns the gradient recorded at name.
func (g *grads) get(name string) *engine.Tensor { return g.last[name] }

// act returns the forward activation at name.
func (g *grads) act(name string) *engine.Tensor { return g.acts[name] }

// putHeadResult records the gradient of hook_result: each head's output
// adds into the attention output, so every head gets dAttnOut.
func (g *grads) putHeadResult(h *blockHooks, dAttnOut *engine.Tensor, heads int) {
	if !g.names.Match(h.result) {
		return
	}
	src := g.b.ToHost(dAttnOut)
	B, T, D := dAttnOut.Dim(0), dAttnOut.Dim(1), dAttnOut.Dim(2)
	out := make([]float32, B*T*heads*D)
	for bt := range B * T {
		for hd := range heads {
			copy(out[(bt*heads+hd)*D:], src[bt*D:(bt+1)*D])
		}
	}
	g.put(h.result, g.b.FromHost(out, B, T, heads, D))
}

// attnBackward runs attention's backward pass from dz to dq, dk, dv
// ([B, T, H, Dh] each), recording the hook gradients on the way.
func (g *grads) attnBackward(h *blockHooks, dz *engine.Tensor, scale float32) (dq, dk, dv *engine.Tensor) {
	b := g.b
	q, k, v, pattern := g.act(h.q), g.act(h.k), g.act(h.v), g.act(h.pattern)
	g.put(h.z, dz)
	dPattern, dv := b.AttnMixBackward(dz, pattern, v)
	g.put(h.pattern, dPattern)
	dScores := g.put(h.scores, b.SoftmaxBackward(pattern, dPattern))
	dq, dk = b.AttnScoresBackward(dScores, q, k, scale)
	return g.put(h.q, dq), g.put(h.k, dk), g.put(h.v, dv)
}

// backward runs GPT-2's backward pass from the logits' gradient.
func (m *GPT2) backward(g *grads, in Batch) {
	b := g.b
	B, T, D := in.B, in.T, m.Config.Hidden
	dNorm := g.put("ln_final.hook_normalized", b.MatMul(g.get("unembed.hook_out"), m.LMHead, nil, false))
	last := fmt.Sprintf("blocks.%d.hook_resid_post", len(m.H)-1)
	dResid := b.LayerNormBackward(g.act(last), m.LnF.Weight, dNorm, m.LnF.Eps)
	for i := len(m.H) - 1; i >= 0; i-- {
		blk := &m.H[i]
		h := &blk.hooks
		g.put(h.residPost, dResid)
		// MLP: resid_post = resid_mid + c_proj(gelu(c_fc(ln2(resid_mid))))
		dMLPOut := g.put(h.mlpOut, dResid)
		dPost := g.put(h.post, b.MatMul(dMLPOut, blk.MLP.CProj.W, nil, true))
		dPre := g.put(h.pre, b.GELUBackward(g.act(h.pre), dPost, blk.MLP.Act))
		dLn2 := g.put(blk.Ln2.hookNormalized, b.MatMul(dPre, blk.MLP.CFc.W, nil, true))
		dMid := g.put(h.residMid, b.Add(dResid, b.LayerNormBackward(g.act(h.residMid), blk.Ln2.Weight, dLn2, blk.Ln2.Eps)))
		// Attention: resid_mid = resid_pre + c_proj(attn(ln1(resid_pre)))
		dAttnOut := g.put(h.attnOut, dMid)
		g.putHeadResult(h, dAttnOut, blk.Attn.Heads)
		dz := b.MatMul(dAttnOut, blk.Attn.CProj.W, nil, true).Reshape(B, T, blk.Attn.Heads, D/blk.Attn.Heads)
		dq, dk, dv := g.attnBackward(h, dz, blk.Attn.Scale)
		dQKV := b.ConcatLast(dq.Reshape(B, T, D), dk.Reshape(B, T, D), dv.Reshape(B, T, D))
		dLn1 := g.put(blk.Ln1.hookNormalized, b.MatMul(dQKV, blk.Attn.CAttn.W, nil, true))
		dResid = g.put(h.residPre, b.Add(dMid, b.LayerNormBackward(g.act(h.residPre), blk.Ln1.Weight, dLn1, blk.Ln1.Eps)))
	}
	g.put("hook_embed", dResid)
	g.put("hook_pos_embed", dResid)
}

// backward runs BERT's backward pass from its output's gradient.
func (m *BERT) backward(g *grads, in Batch) {
	b := g.b
	B, T, D := in.B, in.T, m.Config.Hidden
	last := fmt.Sprintf("blocks.%d.hook_resid_post", len(m.Layers)-1)
	var dX *engine.Tensor
	switch m.Head {
	case HeadSequenceClassification:
		dPooled := g.put("pooler.hook_out", b.MatMul(g.get("classifier.hook_out"), m.Classifier.W, nil, false))
		dDense := b.TanhBackward(g.act("pooler.hook_out"), dPooled)
		dCLS := b.MatMul(dDense, m.Pooler.W, nil, false)
		cls := make([]int, B)
		for i := range cls {
			cls[i] = i * T
		}
		dX = b.ScatterRows(dCLS, cls, B*T).Reshape(B, T, D)
	case HeadMaskedLM:
		h := &m.MLM
		x := g.act(last)
		dense := b.MatMul(x, h.Transform.W, h.Transform.B, true)
		dT := g.put(h.hookTransform, b.MatMul(g.get("unembed.hook_out"), h.Decoder, nil, false))
		dAct := b.LayerNormBackward(b.GELU(dense, h.Act), h.LayerNorm.Weight, dT, h.LayerNorm.Eps)
		dX = b.MatMul(b.GELUBackward(dense, dAct, h.Act), h.Transform.W, nil, false)
	default:
		dX = g.get(last)
	}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		ly := &m.Layers[i]
		h := &ly.hooks
		H := ly.Heads
		g.put(h.residPost, dX)
		g.put(ly.OutputLayerNorm.hookNormalized, dX)
		// resid_post = ln2(x1 + output(gelu(intermediate(x1)))), x1 = ln1(resid_mid)
		x1 := g.act(ly.AttnLayerNorm.hookNormalized)
		dSum := b.LayerNormBackward(b.Add(x1, g.act(h.mlpOut)), ly.OutputLayerNorm.Weight, dX, ly.OutputLayerNorm.Eps)
		dMLPOut := g.put(h.mlpOut, dSum)
		dPost := g.put(h.post, b.MatMul(dMLPOut, ly.Output.W, nil, false))
		dPre := g.put(h.pre, b.GELUBackward(g.act(h.pre), dPost, ly.Act))
		dX1 := g.put(ly.AttnLayerNorm.hookNormalized, b.Add(dSum, b.MatMul(dPre, ly.Intermediate.W, nil, false)))
		// x1 = ln1(resid_pre + attn(resid_pre))
		dMid := g.put(h.residMid, b.LayerNormBackward(g.act(h.residMid), ly.AttnLayerNorm.Weight, dX1, ly.AttnLayerNorm.Eps))
		dAttnOut := g.put(h.attnOut, dMid)
		g.putHeadResult(h, dAttnOut, H)
		dz := b.MatMul(dAttnOut, ly.AttnOutput.W, nil, false).Reshape(B, T, H, D/H)
		dq, dk, dv := g.attnBackward(h, dz, float32(1/math.Sqrt(float64(D/H))))
		dIn := b.MatMul(dq.Reshape(B, T, D), ly.Query.W, nil, false)
		dIn = b.Add(dIn, b.MatMul(dk.Reshape(B, T, D), ly.Key.W, nil, false))
		dIn = b.Add(dIn, b.MatMul(dv.Reshape(B, T, D), ly.Value.W, nil, false))
		dX = g.put(h.residPre, b.Add(dMid, dIn))
	}
	e := &m.Embeddings
	g.put(e.LayerNorm.hookNormalized, dX)
	sum := b.Add(b.Add(g.act("embed.hook_embed"), g.act("embed.hook_pos_embed")), g.act("embed.hook_token_type_embed"))
	dSum := b.LayerNormBackward(sum, e.LayerNorm.Weight, dX, e.LayerNorm.Eps)
	for _, n := range []string{"embed.hook_embed", "embed.hook_pos_embed", "embed.hook_token_type_embed"} {
		g.put(n, dSum)
	}
}
