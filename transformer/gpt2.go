package transformer

import (
	"fmt"
	"math"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/weights"
)

// GPT2 is Hugging Face's GPT2LMHeadModel: token and position embeddings,
// pre-LN blocks, a final LayerNorm and an unembedding tied to the token
// embedding (or lm_head.weight when the file has one).
type GPT2 struct {
	Config *weights.Config
	Wte    *engine.Tensor // [vocab, d_model]
	Wpe    *engine.Tensor // [n_positions, d_model]
	H      []GPT2Block
	LnF    layerNorm
	LMHead *engine.Tensor // [vocab, d_model], nn.Linear layout
}

// GPT2Block is one pre-LN transformer block (HF GPT2Block).
type GPT2Block struct {
	Ln1   layerNorm
	Attn  GPT2Attention
	Ln2   layerNorm
	MLP   GPT2MLP
	hooks blockHooks
}

// GPT2Attention is HF's GPT2Attention: a fused QKV projection (Conv1D,
// [d_model, 3·d_model]) and an output projection ([d_model, d_model]).
type GPT2Attention struct {
	CAttn, CProj linear
	Heads        int
	// Scale multiplies the attention scores: 1/√d_head, or 1 when the
	// config sets scale_attn_weights false.
	Scale float32
}

// GPT2MLP is HF's GPT2MLP: c_fc ([d_model, d_mlp]), GELU, c_proj.
type GPT2MLP struct {
	CFc, CProj linear
	Act        engine.Activation
}

// blockHooks holds the hook point names of block i, built once at load so a
// forward pass formats no strings.
type blockHooks struct {
	residPre, q, k, v, scores, pattern, z, result, attnOut, residMid string
	pre, post, mlpOut, residPost                                     string
}

func newBlockHooks(i int) blockHooks {
	p := fmt.Sprintf("blocks.%d.", i)
	return blockHooks{
		residPre: p + "hook_resid_pre",
		q:        p + "attn.hook_q", k: p + "attn.hook_k", v: p + "attn.hook_v",
		scores: p + "attn.hook_attn_scores", pattern: p + "attn.hook_pattern",
		z: p + "attn.hook_z", result: p + "attn.hook_result",
		attnOut: p + "hook_attn_out", residMid: p + "hook_resid_mid",
		pre: p + "mlp.hook_pre", post: p + "mlp.hook_post",
		mlpOut: p + "hook_mlp_out", residPost: p + "hook_resid_post",
	}
}

// gpt2HookNames lists GPT-2's hook points in forward order.
func gpt2HookNames(layers int) []string {
	names := []string{"hook_embed", "hook_pos_embed"}
	for i := range layers {
		h := newBlockHooks(i)
		p := fmt.Sprintf("blocks.%d.", i)
		names = append(names, h.residPre, p+"ln1.hook_scale", p+"ln1.hook_normalized",
			h.q, h.k, h.v, h.scores, h.pattern, h.z, h.result, h.attnOut, h.residMid,
			p+"ln2.hook_scale", p+"ln2.hook_normalized", h.pre, h.post, h.mlpOut, h.residPost)
	}
	return append(names, "ln_final.hook_scale", "ln_final.hook_normalized", "unembed.hook_out")
}

// loadGPT2 reads a GPT2LMHeadModel's tensors.
func loadGPT2(cfg *weights.Config, l *loader) (*GPT2, error) {
	d, v, inner := cfg.Hidden, cfg.VocabSize, cfg.Inner
	act, err := activation(cfg.Activation)
	if err != nil {
		return nil, err
	}
	eps := float32(cfg.LayerNormEps)
	m := &GPT2{Config: cfg}
	if m.Wte, err = l.tensor("wte.weight", v, d); err != nil {
		return nil, err
	}
	if m.Wpe, err = l.tensor("wpe.weight", cfg.MaxPositions, d); err != nil {
		return nil, err
	}
	m.LMHead = m.Wte
	if l.has("lm_head.weight") {
		if m.LMHead, err = l.tensor("lm_head.weight", v, d); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Layers {
		p := fmt.Sprintf("h.%d.", i)
		hp := fmt.Sprintf("blocks.%d.", i)
		blk := GPT2Block{hooks: newBlockHooks(i)}
		blk.Attn.Heads = cfg.Heads
		blk.Attn.Scale = 1
		if cfg.ScaleAttnWeights {
			blk.Attn.Scale = float32(1 / math.Sqrt(float64(d/cfg.Heads)))
		}
		blk.MLP.Act = act
		if blk.Ln1, err = l.layerNorm(p+"ln_1", d, eps, hp+"ln1"); err != nil {
			return nil, err
		}
		if blk.Attn.CAttn, err = l.linear(p+"attn.c_attn", []int{d, 3 * d}, 3*d); err != nil {
			return nil, err
		}
		if blk.Attn.CProj, err = l.linear(p+"attn.c_proj", []int{d, d}, d); err != nil {
			return nil, err
		}
		if blk.Ln2, err = l.layerNorm(p+"ln_2", d, eps, hp+"ln2"); err != nil {
			return nil, err
		}
		if blk.MLP.CFc, err = l.linear(p+"mlp.c_fc", []int{d, inner}, inner); err != nil {
			return nil, err
		}
		if blk.MLP.CProj, err = l.linear(p+"mlp.c_proj", []int{inner, d}, d); err != nil {
			return nil, err
		}
		m.H = append(m.H, blk)
	}
	if m.LnF, err = l.layerNorm("ln_f", d, eps, "ln_final"); err != nil {
		return nil, err
	}
	return m, nil
}

// forward runs the model on in, appending to cache when it is not nil, and
// returns the logits [B, T, vocab]. With lastOnly (and no hook on the
// logits) it returns [B, 1, vocab] for each sequence's last real token.
func (m *GPT2) forward(r *run, in Batch, cache *KVCache, lastOnly bool) *engine.Tensor {
	b := r.b
	B, T, D := in.B, in.T, m.Config.Hidden
	offset := 0
	if cache != nil {
		offset = cache.Len
	}
	r.offset = offset
	positions := make([]int32, B*T)
	for i := range positions {
		positions[i] = int32(offset + i%T)
	}
	tok := r.point("hook_embed", b.Embedding(m.Wte, in.IDs).Reshape(B, T, D))
	pos := r.point("hook_pos_embed", b.Embedding(m.Wpe, positions).Reshape(B, T, D))
	return m.blocksAndHead(r, in, 0, tok, pos, cache, lastOnly)
}

// forwardFrom runs blocks layer.. and the head on x, block layer's
// resid_pre.
func (m *GPT2) forwardFrom(r *run, in Batch, layer int, x *engine.Tensor, lastOnly bool) *engine.Tensor {
	return m.blocksAndHead(r, in, layer, x, nil, nil, lastOnly)
}

// blocksAndHead runs blocks layer.. on the residual stream x + delta (x
// when delta is nil), then the final LayerNorm and the unembedding. Each
// residual add runs fused with the LayerNorm after it (layerNorm.addForward)
// unless a hook reads the sum in between.
func (m *GPT2) blocksAndHead(r *run, in Batch, layer int, x, delta *engine.Tensor, cache *KVCache, lastOnly bool) *engine.Tensor {
	b := r.b
	B, T := in.B, in.T
	mask := engine.AttnMask{Causal: true, QueryOffset: r.offset, KeyValid: in.Valid}
	if cache != nil {
		mask.KeyValid = cache.appendValid(in)
		mask.QueryOffsetAt = cache.at
	}
	x, normed := m.H[layer].Ln1.addForward(r, x, delta, m.H[layer].hooks.residPre)
	for i := layer; i < len(m.H); i++ {
		var kv *kvLayer
		if cache != nil {
			kv = &cache.layers[i]
		}
		next, resid := m.LnF, []string{m.H[i].hooks.residPost}
		if i+1 < len(m.H) {
			next, resid = m.H[i+1].Ln1, append(resid, m.H[i+1].hooks.residPre)
		}
		x, delta = m.H[i].forward(r, x, normed, mask, kv)
		x, normed = next.addForward(r, x, delta, resid...)
	}
	if cache != nil {
		cache.Len += T
		cache.valid = mask.KeyValid
	}
	x = normed
	var rows []int // the positions whose logits are returned (nil: all), as rows of x [B·T, D]
	switch {
	case lastOnly:
		rows = make([]int, B)
		for i, n := range in.Lengths() {
			rows[i] = i*T + n - 1
		}
	case in.LogitPositions != nil:
		rows = make([]int, 0, B*len(in.LogitPositions))
		for i := range B {
			for _, p := range in.LogitPositions {
				rows = append(rows, i*T+p)
			}
		}
	}
	if rows == nil || identity(rows, B*T) {
		return r.point("unembed.hook_out", b.MatMul(x, m.LMHead, nil, true)).Reshape(B, T, -1)
	}
	if !r.active("unembed.hook_out") {
		return b.MatMul(b.Rows(x, rows), m.LMHead, nil, true).Reshape(B, len(rows)/B, -1)
	}
	all := r.point("unembed.hook_out", b.MatMul(x, m.LMHead, nil, true))
	return b.Rows(all, rows).Reshape(B, len(rows)/B, -1)
}

// identity reports whether rows lists 0, 1, …, n-1: every row in order.
func identity(rows []int, n int) bool {
	if len(rows) != n {
		return false
	}
	for i, r := range rows {
		if r != i {
			return false
		}
	}
	return true
}

// forward runs one block on the residual stream x [B, T, D] (its
// resid_pre, hooks called) and normed, ln1's output on x. It returns the
// block's resid_mid and MLP output, whose sum is its resid_post: the caller
// adds them, fused with the LayerNorm that follows.
func (blk *GPT2Block) forward(r *run, x, normed *engine.Tensor, mask engine.AttnMask, kv *kvLayer) (residMid, mlpOut *engine.Tensor) {
	h := &blk.hooks
	attnOut := r.point(h.attnOut, blk.Attn.forward(r, h, normed, mask, kv))
	x, normed = blk.Ln2.addForward(r, x, attnOut, h.residMid)
	return x, r.point(h.mlpOut, blk.MLP.forward(r, h, normed))
}

// forward computes the attention output [B, T, D] of the normalised x.
// With a Decoder's step, the keys and values go into kv at the position
// that mask.QueryOffsetAt holds (kvLayer.append).
func (a *GPT2Attention) forward(r *run, h *blockHooks, x *engine.Tensor, mask engine.AttnMask, kv *kvLayer) *engine.Tensor {
	b := r.b
	B, T, D := x.Dim(0), x.Dim(1), x.Dim(2)
	H := a.Heads
	qkv := b.MatMul(x, a.CAttn.W, a.CAttn.B, false)
	q := r.point(h.q, b.SliceLast(qkv, 0, D).Reshape(B, T, H, D/H))
	k := r.point(h.k, b.SliceLast(qkv, D, 2*D).Reshape(B, T, H, D/H))
	v := r.point(h.v, b.SliceLast(qkv, 2*D, 3*D).Reshape(B, T, H, D/H))
	if kv != nil {
		k, v = kv.append(b, k, v, mask.QueryOffsetAt)
	}
	return attend(r, h, q, k, v, a.Scale, mask, a.CProj, false)
}

// attend is scaled dot-product attention followed by the output projection,
// shared by GPT-2 and BERT. q is [B, Tq, H, Dh]; k and v are [B, Tk, H, Dh].
// Unless a hook reads or edits the scores or the pattern (Gradients hooks
// both), the three attention ops run fused, without the [B, H, Tq, Tk]
// tensors; on the CPU backend the bits are the same either way.
func attend(r *run, h *blockHooks, q, k, v *engine.Tensor, scale float32, mask engine.AttnMask, out linear, transW bool) *engine.Tensor {
	b := r.b
	B, T, H, Dh := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	var z *engine.Tensor
	if r.active(h.scores) || r.active(h.pattern) {
		scores := r.point(h.scores, b.AttnScores(q, k, scale, mask))
		pattern := r.point(h.pattern, b.Softmax(scores))
		z = b.AttnMix(pattern, v)
	} else {
		z = b.Attention(q, k, v, scale, mask)
	}
	z = r.point(h.z, z)
	if r.active(h.result) {
		result := r.point(h.result, b.HeadResult(z, out.W, transW))
		return b.Add(b.SumAxis(result, 2), out.B)
	}
	return b.MatMul(z.Reshape(B, T, H*Dh), out.W, out.B, transW)
}

// forward computes the MLP output [B, T, D] of the normalised x.
func (mlp *GPT2MLP) forward(r *run, h *blockHooks, x *engine.Tensor) *engine.Tensor {
	post := mlpIn(r, h, x, mlp.CFc, mlp.Act, false)
	return r.b.MatMul(post, mlp.CProj.W, mlp.CProj.B, false)
}

// mlpIn is an MLP's first product and its activation, GELU(x·in.W + in.B),
// with the hook points hook_pre and hook_post; shared by GPT-2 and BERT.
// Unless a hook reads or edits hook_pre, the GELU runs in the product's
// epilogue (MatMulGELU).
func mlpIn(r *run, h *blockHooks, x *engine.Tensor, in linear, act engine.Activation, transW bool) *engine.Tensor {
	b := r.b
	var post *engine.Tensor
	if r.active(h.pre) {
		pre := r.point(h.pre, b.MatMul(x, in.W, in.B, transW))
		post = b.GELU(pre, act)
	} else {
		post = b.MatMulGELU(x, in.W, in.B, transW, act)
	}
	return r.point(h.post, post)
}

// activation maps a config's activation name to the engine's.
func activation(name string) (engine.Activation, error) {
	switch name {
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return engine.GELUTanh, nil
	case "gelu", "gelu_python":
		return engine.GELUErf, nil
	}
	return 0, fmt.Errorf("config.json: activation %q is not supported (gelu_new, gelu_pytorch_tanh, gelu)", name)
}
