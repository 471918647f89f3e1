package transformer

import (
	"fmt"
	"math"
	"slices"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/weights"
)

// BertHead says which task head sits on a BERT encoder.
type BertHead int

const (
	// HeadNone is a bare BertModel: the output is the last hidden state.
	HeadNone BertHead = iota
	// HeadSequenceClassification is BertForSequenceClassification: pooler,
	// then a linear classifier over the [CLS] token.
	HeadSequenceClassification
	// HeadMaskedLM is BertForMaskedLM: a transform and an unembedding tied
	// to the word embeddings.
	HeadMaskedLM
)

// BERT is Hugging Face's BertModel with an optional task head.
type BERT struct {
	Config     *weights.Config
	Embeddings BertEmbeddings
	Layers     []BertLayer
	Head       BertHead
	Pooler     linear // [D, D], HeadSequenceClassification only
	Classifier linear // [labels, D]
	MLM        BertLMHead
}

// BertEmbeddings is HF's BertEmbeddings: word, position and token-type
// embeddings summed, then a LayerNorm.
type BertEmbeddings struct {
	Word, Position, TokenType *engine.Tensor
	LayerNorm                 layerNorm
}

// BertLayer is one post-LN encoder layer (HF BertLayer): self-attention,
// its output projection and LayerNorm (ln1), the intermediate GELU MLP and
// its output LayerNorm (ln2).
type BertLayer struct {
	Query, Key, Value linear // nn.Linear [D, D]
	AttnOutput        linear
	AttnLayerNorm     layerNorm
	Intermediate      linear // [I, D]
	Output            linear // [D, I]
	OutputLayerNorm   layerNorm
	Heads             int
	Act               engine.Activation
	hooks             blockHooks
}

// BertLMHead is HF's BertLMPredictionHead: dense, GELU, LayerNorm, then the
// decoder (tied to the word embeddings) with its own bias.
type BertLMHead struct {
	Transform     linear
	LayerNorm     layerNorm
	Act           engine.Activation
	Decoder       *engine.Tensor // [V, D]
	DecoderBias   *engine.Tensor // [V]
	hookTransform string
}

// bertHookNames lists BERT's hook points in forward order.
func bertHookNames(layers int, head BertHead) []string {
	names := []string{"embed.hook_embed", "embed.hook_pos_embed", "embed.hook_token_type_embed",
		"embed.ln.hook_scale", "embed.ln.hook_normalized"}
	for i := range layers {
		h := newBlockHooks(i)
		p := fmt.Sprintf("blocks.%d.", i)
		names = append(names, h.residPre, h.q, h.k, h.v, h.scores, h.pattern, h.z, h.result,
			h.attnOut, h.residMid, p+"ln1.hook_scale", p+"ln1.hook_normalized",
			h.pre, h.post, h.mlpOut, p+"ln2.hook_scale", p+"ln2.hook_normalized", h.residPost)
	}
	switch head {
	case HeadSequenceClassification:
		names = append(names, "pooler.hook_out", "classifier.hook_out")
	case HeadMaskedLM:
		names = append(names, "mlm.hook_transform", "unembed.hook_out")
	}
	return names
}

// bertHead picks the head from the config's architectures, else from the
// tensors present.
func bertHead(cfg *weights.Config, l *loader) BertHead {
	for _, a := range cfg.Architectures {
		switch a {
		case "BertForSequenceClassification":
			return HeadSequenceClassification
		case "BertForMaskedLM", "BertForPreTraining":
			return HeadMaskedLM
		case "BertModel":
			return HeadNone
		}
	}
	switch {
	case l.has("classifier.weight"):
		return HeadSequenceClassification
	case l.has("cls.predictions.bias"):
		return HeadMaskedLM
	}
	return HeadNone
}

// loadBERT reads a BertModel and its head.
func loadBERT(cfg *weights.Config, l *loader) (*BERT, error) {
	d, inner := cfg.Hidden, cfg.Inner
	act, err := activation(cfg.Activation)
	if err != nil {
		return nil, err
	}
	eps := float32(cfg.LayerNormEps)
	m := &BERT{Config: cfg, Head: bertHead(cfg, l)}
	e := &m.Embeddings
	if e.Word, err = l.tensor("embeddings.word_embeddings.weight", cfg.VocabSize, d); err != nil {
		return nil, err
	}
	if e.Position, err = l.tensor("embeddings.position_embeddings.weight", cfg.MaxPositions, d); err != nil {
		return nil, err
	}
	if e.TokenType, err = l.tensor("embeddings.token_type_embeddings.weight", cfg.TypeVocabSize, d); err != nil {
		return nil, err
	}
	if e.LayerNorm, err = l.layerNorm("embeddings.LayerNorm", d, eps, "embed.ln"); err != nil {
		return nil, err
	}
	for i := range cfg.Layers {
		p := fmt.Sprintf("encoder.layer.%d.", i)
		hp := fmt.Sprintf("blocks.%d.", i)
		ly := BertLayer{Heads: cfg.Heads, Act: act, hooks: newBlockHooks(i)}
		steps := []struct {
			dst   *linear
			name  string
			shape []int
		}{
			{&ly.Query, "attention.self.query", []int{d, d}},
			{&ly.Key, "attention.self.key", []int{d, d}},
			{&ly.Value, "attention.self.value", []int{d, d}},
			{&ly.AttnOutput, "attention.output.dense", []int{d, d}},
			{&ly.Intermediate, "intermediate.dense", []int{inner, d}},
			{&ly.Output, "output.dense", []int{d, inner}},
		}
		for _, s := range steps {
			if *s.dst, err = l.linear(p+s.name, s.shape, s.shape[0]); err != nil {
				return nil, err
			}
		}
		if ly.AttnLayerNorm, err = l.layerNorm(p+"attention.output.LayerNorm", d, eps, hp+"ln1"); err != nil {
			return nil, err
		}
		if ly.OutputLayerNorm, err = l.layerNorm(p+"output.LayerNorm", d, eps, hp+"ln2"); err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, ly)
	}
	switch m.Head {
	case HeadSequenceClassification:
		if m.Pooler, err = l.linear("pooler.dense", []int{d, d}, d); err != nil {
			return nil, err
		}
		if m.Classifier, err = l.linear("classifier", []int{cfg.NumLabels, d}, cfg.NumLabels); err != nil {
			return nil, err
		}
	case HeadMaskedLM:
		h := &m.MLM
		h.Act, h.hookTransform = act, "mlm.hook_transform"
		if h.Transform, err = l.linear("cls.predictions.transform.dense", []int{d, d}, d); err != nil {
			return nil, err
		}
		if h.LayerNorm, err = l.layerNorm("cls.predictions.transform.LayerNorm", d, eps, "mlm.ln"); err != nil {
			return nil, err
		}
		h.Decoder = e.Word
		if l.has("cls.predictions.decoder.weight") {
			if h.Decoder, err = l.tensor("cls.predictions.decoder.weight", cfg.VocabSize, d); err != nil {
				return nil, err
			}
		}
		if h.DecoderBias, err = l.tensor("cls.predictions.bias", cfg.VocabSize); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forward runs the encoder and its head on in. It returns the class logits
// [B, labels], the MLM logits [B, T, vocab], or the last hidden state
// [B, T, D], by head.
func (m *BERT) forward(r *run, in Batch) *engine.Tensor {
	b := r.b
	B, T, D := in.B, in.T, m.Config.Hidden
	positions := make([]int32, B*T)
	for i := range positions {
		positions[i] = int32(i % T)
	}
	types := in.TypeIDs
	if types == nil {
		types = make([]int32, B*T)
	}
	e := &m.Embeddings
	word := r.point("embed.hook_embed", b.Embedding(e.Word, in.IDs).Reshape(B, T, D))
	pos := r.point("embed.hook_pos_embed", b.Embedding(e.Position, positions).Reshape(B, T, D))
	typ := r.point("embed.hook_token_type_embed", b.Embedding(e.TokenType, types).Reshape(B, T, D))
	_, x := e.LayerNorm.addForward(r, b.Add(word, pos), typ)
	return m.forwardFrom(r, in, 0, x)
}

// forwardFrom runs layers layer.. and the head on x, layer's resid_pre.
func (m *BERT) forwardFrom(r *run, in Batch, layer int, x *engine.Tensor) *engine.Tensor {
	b := r.b
	B, T := in.B, in.T
	mask := engine.AttnMask{KeyValid: in.Valid}
	for i := layer; i < len(m.Layers); i++ {
		x = m.Layers[i].forward(r, x, mask)
	}
	switch m.Head {
	case HeadSequenceClassification:
		cls := make([]int, B)
		for i := range cls {
			cls[i] = i * T
		}
		pooled := r.point("pooler.hook_out", b.Tanh(b.MatMul(b.Rows(x, cls), m.Pooler.W, m.Pooler.B, true)))
		return r.point("classifier.hook_out", b.MatMul(pooled, m.Classifier.W, m.Classifier.B, true))
	case HeadMaskedLM:
		h := &m.MLM
		t := b.MatMulGELU(x, h.Transform.W, h.Transform.B, true, h.Act)
		t = r.point(h.hookTransform, b.LayerNorm(t, h.LayerNorm.Weight, h.LayerNorm.Bias, h.LayerNorm.Eps))
		return r.point("unembed.hook_out", b.MatMul(t, h.Decoder, h.DecoderBias, true))
	}
	return x
}

// forward runs one encoder layer on x [B, T, D]. Each residual add runs
// fused with the LayerNorm after it unless a hook reads the sum
// (hook_resid_mid; the MLP's sum has no hook point), and the GELU runs in
// the intermediate matmul's epilogue unless a hook reads mlp.hook_pre.
func (ly *BertLayer) forward(r *run, x *engine.Tensor, mask engine.AttnMask) *engine.Tensor {
	b, h := r.b, &ly.hooks
	B, T, D := x.Dim(0), x.Dim(1), x.Dim(2)
	H := ly.Heads
	x = r.point(h.residPre, x)
	q := r.point(h.q, b.MatMul(x, ly.Query.W, ly.Query.B, true).Reshape(B, T, H, D/H))
	k := r.point(h.k, b.MatMul(x, ly.Key.W, ly.Key.B, true).Reshape(B, T, H, D/H))
	v := r.point(h.v, b.MatMul(x, ly.Value.W, ly.Value.B, true).Reshape(B, T, H, D/H))
	scale := float32(1 / math.Sqrt(float64(D/H)))
	attnOut := r.point(h.attnOut, attend(r, h, q, k, v, scale, mask, ly.AttnOutput, true))
	_, x = ly.AttnLayerNorm.addForward(r, x, attnOut, h.residMid)
	post := mlpIn(r, h, x, ly.Intermediate, ly.Act, true)
	mlpOut := r.point(h.mlpOut, b.MatMul(post, ly.Output.W, ly.Output.B, true))
	_, x = ly.OutputLayerNorm.addForward(r, x, mlpOut)
	return r.point(h.residPost, x)
}

// Labels returns the class names of a sequence-classification model.
func (m *BERT) Labels() []string { return slices.Clone(m.Config.ID2Label) }
