package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// shape is a model's dimensions.
type shape struct {
	Layers, Hidden, Heads, Inner, Vocab, Positions int
}

// headDim returns Hidden / Heads.
func (s shape) headDim() int { return s.Hidden / s.Heads }

// initStd returns the standard deviation of the random weights: Hugging
// Face's initializer_range of 0.02 at GPT-2 small's width of 768, scaled by
// sqrt(768/Hidden) at other widths so that every pre-activation has the
// variance it has in GPT-2 small and BERT base.
func (s shape) initStd() float64 { return 0.02 * math.Sqrt(768/float64(s.Hidden)) }

// gpt2Shape returns the GPT-2 shape of a size.
func gpt2Shape(size Size) shape {
	if size == Small {
		return shape{Layers: 12, Hidden: 768, Heads: 12, Inner: 3072, Vocab: 50257, Positions: 1024}
	}
	return shape{Layers: 4, Hidden: 64, Heads: 4, Inner: 256, Vocab: 50257, Positions: 128}
}

// bertShape returns the BERT shape of a size.
func bertShape(size Size) shape {
	if size == Small {
		return shape{Layers: 12, Hidden: 768, Heads: 12, Inner: 3072, Vocab: 30522, Positions: 512}
	}
	return shape{Layers: 4, Hidden: 64, Heads: 4, Inner: 256, Vocab: 30522, Positions: 128}
}

// param is one named tensor of a model being made: its Hugging Face name,
// shape and values (row-major float32).
type param struct {
	name  string
	shape []int
	data  []float32
}

// paramSet is a model's tensors in the order they are made.
type paramSet struct {
	list   []*param
	byName map[string]*param
}

func newParamSet() *paramSet { return &paramSet{byName: map[string]*param{}} }

// add makes a tensor of the given shape filled by fill (nil: zeros).
func (ps *paramSet) add(name string, fill func([]float32), shape ...int) *param {
	p := &param{name: name, shape: shape, data: make([]float32, engine.NumElements(shape))}
	if fill != nil {
		fill(p.data)
	}
	ps.list = append(ps.list, p)
	ps.byName[name] = p
	return p
}

// get returns the named tensor; it panics on a name the maker did not add,
// which is a bug in this package.
func (ps *paramSet) get(name string) *param {
	p, ok := ps.byName[name]
	if !ok {
		panic("scenario: no tensor " + name)
	}
	return p
}

// tensors returns the set as F32 weights.Tensors (the data is shared).
func (ps *paramSet) tensors() []weights.Tensor {
	ts := make([]weights.Tensor, len(ps.list))
	for i, p := range ps.list {
		ts[i] = weights.Tensor{Name: p.name, DType: weights.F32, Shape: p.shape, Data: p.data}
	}
	return ts
}

// hfMetadata returns the safetensors metadata that transformers'
// save_pretrained writes.
func hfMetadata() map[string]string { return map[string]string{"format": "pt"} }

// model encodes the set as a safetensors file in memory and loads it with
// the config as a transformer.Model on b, for calibration.
func (ps *paramSet) model(name string, configJSON []byte, tok tokenizer.Tokenizer, b engine.Backend) (*transformer.Model, error) {
	var buf bytes.Buffer
	if err := weights.Encode(&buf, ps.tensors(), hfMetadata()); err != nil {
		return nil, fmt.Errorf("scenario: %s: %w", name, err)
	}
	file, err := weights.Parse(name+"/model.safetensors", buf.Bytes())
	if err != nil {
		return nil, err
	}
	set, err := weights.NewSet(file)
	if err != nil {
		return nil, err
	}
	cfg, err := weights.ParseConfig(name+"/config.json", configJSON)
	if err != nil {
		set.Close()
		return nil, err
	}
	m, err := transformer.New(name, cfg, set, tok, b)
	if err != nil {
		set.Close()
		return nil, err
	}
	return m, nil
}

// gpt2CalibrationModel returns the GPT-2 of ps cut to its first `layers`
// blocks and to the embedding rows of vocab (token vocab[i] becomes id i),
// for calibration: every activation of those blocks equals the whole
// model's on the same tokens, and the unembedding, over len(vocab) rows,
// costs next to nothing.
func gpt2CalibrationModel(name string, ps *paramSet, s shape, layers int, vocab []int, tok tokenizer.Tokenizer, b engine.Backend) (*transformer.Model, error) {
	cut := s
	cut.Layers, cut.Vocab = layers, len(vocab)
	cfg, err := gpt2ConfigJSON(cut)
	if err != nil {
		return nil, err
	}
	sub := newParamSet()
	for _, p := range ps.list {
		var block int
		if _, err := fmt.Sscanf(p.name, "transformer.h.%d.", &block); err == nil && block >= layers {
			continue
		}
		if p.name == "transformer.wte.weight" {
			d := s.Hidden
			wte := sub.add(p.name, nil, len(vocab), d)
			for i, id := range vocab {
				copy(wte.data[i*d:(i+1)*d], p.data[id*d:(id+1)*d])
			}
			continue
		}
		sub.list = append(sub.list, p)
		sub.byName[p.name] = p
	}
	return sub.model(name, cfg, tok, b)
}

// normal returns a fill function drawing N(0, std²) values from rng.
func normal(rng *rand.Rand, std float64) func([]float32) {
	return func(xs []float32) {
		for i := range xs {
			xs[i] = float32(rng.NormFloat64() * std)
		}
	}
}

// ones fills xs with 1.
func ones(xs []float32) {
	for i := range xs {
		xs[i] = 1
	}
}

// newGPT2Params makes a GPT2LMHeadModel's tensors, named as save_pretrained
// writes them (the "transformer." prefix, no lm_head.weight: it is tied to
// wte), initialised as transformers' GPT2PreTrainedModel._init_weights does
// at initializer_range s.initStd(): N(0, std) matrices and embeddings, the
// residual output projections (attn.c_proj, mlp.c_proj) at
// std/sqrt(2·n_layer), zero biases, LayerNorms at weight 1 and bias 0.
func newGPT2Params(s shape, rng *rand.Rand) *paramSet {
	std := s.initStd()
	resid := std / math.Sqrt(2*float64(s.Layers))
	d, inner := s.Hidden, s.Inner
	ps := newParamSet()
	ps.add("transformer.wte.weight", normal(rng, std), s.Vocab, d)
	ps.add("transformer.wpe.weight", normal(rng, std), s.Positions, d)
	for i := range s.Layers {
		p := fmt.Sprintf("transformer.h.%d.", i)
		ps.add(p+"ln_1.weight", ones, d)
		ps.add(p+"ln_1.bias", nil, d)
		ps.add(p+"attn.c_attn.weight", normal(rng, std), d, 3*d)
		ps.add(p+"attn.c_attn.bias", nil, 3*d)
		ps.add(p+"attn.c_proj.weight", normal(rng, resid), d, d)
		ps.add(p+"attn.c_proj.bias", nil, d)
		ps.add(p+"ln_2.weight", ones, d)
		ps.add(p+"ln_2.bias", nil, d)
		ps.add(p+"mlp.c_fc.weight", normal(rng, std), d, inner)
		ps.add(p+"mlp.c_fc.bias", nil, inner)
		ps.add(p+"mlp.c_proj.weight", normal(rng, resid), inner, d)
		ps.add(p+"mlp.c_proj.bias", nil, d)
	}
	ps.add("transformer.ln_f.weight", ones, d)
	ps.add("transformer.ln_f.bias", nil, d)
	return ps
}

// gpt2Writes returns the tensors whose rows GPT-2 adds to its residual
// stream, with the row length: every row of these is a vector in the
// residual space.
func gpt2Writes(ps *paramSet, s shape) []*param {
	ws := []*param{ps.get("transformer.wte.weight"), ps.get("transformer.wpe.weight")}
	for i := range s.Layers {
		p := fmt.Sprintf("transformer.h.%d.", i)
		ws = append(ws, ps.get(p+"attn.c_proj.weight"), ps.get(p+"attn.c_proj.bias"),
			ps.get(p+"mlp.c_proj.weight"), ps.get(p+"mlp.c_proj.bias"))
	}
	return ws
}

// newBERTParams makes a BertForSequenceClassification's tensors with two
// labels, named as save_pretrained writes them ("bert." prefix, LayerNorm
// weight/bias), initialised as BertPreTrainedModel._init_weights does at
// initializer_range s.initStd(): N(0, std) matrices and embeddings (the
// [PAD] row of the word embeddings zero), zero biases, LayerNorms at 1 and 0.
func newBERTParams(s shape, rng *rand.Rand) *paramSet {
	std := s.initStd()
	d, inner := s.Hidden, s.Inner
	ps := newParamSet()
	word := ps.add("bert.embeddings.word_embeddings.weight", normal(rng, std), s.Vocab, d)
	clear(word.data[:d]) // padding_idx 0
	ps.add("bert.embeddings.position_embeddings.weight", normal(rng, std), s.Positions, d)
	ps.add("bert.embeddings.token_type_embeddings.weight", normal(rng, std), 2, d)
	ps.add("bert.embeddings.LayerNorm.weight", ones, d)
	ps.add("bert.embeddings.LayerNorm.bias", nil, d)
	for i := range s.Layers {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		for _, n := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"} {
			ps.add(p+n+".weight", normal(rng, std), d, d)
			ps.add(p+n+".bias", nil, d)
		}
		ps.add(p+"attention.output.LayerNorm.weight", ones, d)
		ps.add(p+"attention.output.LayerNorm.bias", nil, d)
		ps.add(p+"intermediate.dense.weight", normal(rng, std), inner, d)
		ps.add(p+"intermediate.dense.bias", nil, inner)
		ps.add(p+"output.dense.weight", normal(rng, std), d, inner)
		ps.add(p+"output.dense.bias", nil, d)
		ps.add(p+"output.LayerNorm.weight", ones, d)
		ps.add(p+"output.LayerNorm.bias", nil, d)
	}
	ps.add("bert.pooler.dense.weight", normal(rng, std), d, d)
	ps.add("bert.pooler.dense.bias", nil, d)
	ps.add("classifier.weight", normal(rng, std), 2, d)
	ps.add("classifier.bias", nil, 2)
	return ps
}

// bertWrites returns what BERT adds to its residual stream: the embedding
// rows (embedding LayerNorm bias included), and per layer the output
// projections of attention and MLP (nn.Linear [d, in]: each column is a
// residual vector, so these are listed separately) and their biases and the
// LayerNorm biases.
func bertWrites(ps *paramSet, s shape) (rows, columns []*param) {
	rows = []*param{
		ps.get("bert.embeddings.word_embeddings.weight"),
		ps.get("bert.embeddings.position_embeddings.weight"),
		ps.get("bert.embeddings.token_type_embeddings.weight"),
		ps.get("bert.embeddings.LayerNorm.bias"),
	}
	for i := range s.Layers {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		rows = append(rows, ps.get(p+"attention.output.dense.bias"), ps.get(p+"attention.output.LayerNorm.bias"),
			ps.get(p+"output.dense.bias"), ps.get(p+"output.LayerNorm.bias"))
		columns = append(columns, ps.get(p+"attention.output.dense.weight"), ps.get(p+"output.dense.weight"))
	}
	return rows, columns
}

// gpt2ConfigJSON returns a GPT-2 config.json as transformers writes it
// (indent 2, sorted keys, Python float formatting).
func gpt2ConfigJSON(s shape) ([]byte, error) {
	var eot any = 50256 // <|endoftext|>; none in a calibration model's cut vocabulary
	if s.Vocab <= 50256 {
		eot = nil
	}
	return hfJSON(map[string]any{
		"activation_function":             "gelu_new",
		"architectures":                   []string{"GPT2LMHeadModel"},
		"attn_pdrop":                      pyFloat(0.1),
		"bos_token_id":                    eot,
		"embd_pdrop":                      pyFloat(0.1),
		"eos_token_id":                    eot,
		"initializer_range":               pyFloat(s.initStd()),
		"layer_norm_epsilon":              pyFloat(1e-5),
		"model_type":                      "gpt2",
		"n_ctx":                           s.Positions,
		"n_embd":                          s.Hidden,
		"n_head":                          s.Heads,
		"n_inner":                         nil,
		"n_layer":                         s.Layers,
		"n_positions":                     s.Positions,
		"reorder_and_upcast_attn":         false,
		"resid_pdrop":                     pyFloat(0.1),
		"scale_attn_by_inverse_layer_idx": false,
		"scale_attn_weights":              true,
		"summary_activation":              nil,
		"summary_first_dropout":           pyFloat(0.1),
		"summary_proj_to_labels":          true,
		"summary_type":                    "cls_index",
		"summary_use_proj":                true,
		"torch_dtype":                     "float32",
		"transformers_version":            "4.44.2",
		"use_cache":                       true,
		"vocab_size":                      s.Vocab,
	})
}

// bertConfigJSON returns a BertForSequenceClassification config.json with
// labels NEGATIVE and POSITIVE, as transformers writes it.
func bertConfigJSON(s shape) ([]byte, error) {
	return hfJSON(map[string]any{
		"architectures":                []string{"BertForSequenceClassification"},
		"attention_probs_dropout_prob": pyFloat(0.1),
		"classifier_dropout":           nil,
		"hidden_act":                   "gelu",
		"hidden_dropout_prob":          pyFloat(0.1),
		"hidden_size":                  s.Hidden,
		"id2label":                     map[string]string{"0": "NEGATIVE", "1": "POSITIVE"},
		"initializer_range":            pyFloat(s.initStd()),
		"intermediate_size":            s.Inner,
		"label2id":                     map[string]int{"NEGATIVE": 0, "POSITIVE": 1},
		"layer_norm_eps":               pyFloat(1e-12),
		"max_position_embeddings":      s.Positions,
		"model_type":                   "bert",
		"num_attention_heads":          s.Heads,
		"num_hidden_layers":            s.Layers,
		"pad_token_id":                 0,
		"position_embedding_type":      "absolute",
		"problem_type":                 "single_label_classification",
		"torch_dtype":                  "float32",
		"transformers_version":         "4.44.2",
		"type_vocab_size":              2,
		"use_cache":                    true,
		"vocab_size":                   s.Vocab,
	})
}

// hfJSON marshals v as transformers' to_json_file does: indent 2, keys
// sorted, a final newline.
func hfJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("scenario: config.json: %w", err)
	}
	return append(data, '\n'), nil
}

// pyFloat returns f as Python's repr writes a float (1e-05, 0.1, 1.0), as
// raw JSON.
func pyFloat(f float64) json.RawMessage {
	s := strconv.FormatFloat(f, 'g', -1, 64) // shortest round trip, "1e-05" as Python
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return json.RawMessage(s)
}
