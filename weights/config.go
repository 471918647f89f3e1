package weights

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// maxConfigSize bounds the size of a config.json.
const maxConfigSize = 16 << 20

// maxConfigDim bounds each size in a config, so that products of two sizes
// cannot overflow.
const maxConfigDim = 1 << 30

// ErrInvalidConfig marks a config.json that cannot be parsed or describes an
// impossible model. Such errors are *ConfigError values.
var ErrInvalidConfig = errors.New("invalid config")

// ConfigError reports a problem with a config.json, usually with one field.
type ConfigError struct {
	File    string // the name given to ParseConfig, or the path given to ReadConfig
	Field   string // the JSON field at fault; empty if none in particular
	Problem string
}

// Error returns a message such as
// `weights: config.json: field "n_layer": expected a number`.
func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("weights: %s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("weights: %s: field %q: %s", e.File, e.Field, e.Problem)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Model types that Config describes.
const (
	ModelGPT2 = "gpt2"
	ModelBERT = "bert"
)

// Config is a GPT-2 or BERT config.json, normalised: the fields that the
// two model types spell differently (n_embd and hidden_size, say) land in
// the same place. A field missing from the file, or null, takes the default
// of the Hugging Face transformers config class (GPT2Config or BertConfig);
// token ids default to -1, meaning none.
type Config struct {
	ModelType     string   // "gpt2" or "bert": model_type, or inferred from architectures
	Architectures []string // architectures, e.g. "GPT2LMHeadModel"

	VocabSize    int     // vocab_size
	MaxPositions int     // n_positions | max_position_embeddings
	Hidden       int     // n_embd | hidden_size
	Layers       int     // n_layer | num_hidden_layers
	Heads        int     // n_head | num_attention_heads
	Inner        int     // n_inner (null: 4*Hidden) | intermediate_size
	LayerNormEps float64 // layer_norm_epsilon (1e-5) | layer_norm_eps (1e-12)
	Activation   string  // activation_function ("gelu_new") | hidden_act ("gelu")

	TypeVocabSize int // type_vocab_size (BERT; 2)

	PadTokenID int // pad_token_id, -1 if none
	BOSTokenID int // bos_token_id, -1 if none
	EOSTokenID int // eos_token_id, -1 if none

	NumLabels int      // len(id2label), else num_labels, else 2
	ID2Label  []string // labels in index order; "LABEL_0", "LABEL_1", ... by default

	TieWordEmbeddings          bool // tie_word_embeddings (true)
	ScaleAttnWeights           bool // scale_attn_weights (GPT-2; true)
	ScaleAttnByInverseLayerIdx bool // scale_attn_by_inverse_layer_idx (GPT-2; false)
	ReorderAndUpcastAttn       bool // reorder_and_upcast_attn (GPT-2; false)

	Raw []byte // the file's bytes

	name string // for errors
}

// ReadConfig reads and parses the config.json at path, as ParseConfig does.
func ReadConfig(path string) (*Config, error) {
	data, err := readLimited(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses a GPT-2 or BERT config.json; name identifies it in
// errors. It checks the JSON types of the fields it reads, but not whether
// their values make sense: call Validate for that.
func ParseConfig(name string, data []byte) (*Config, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil {
		return nil, &ConfigError{File: name, Problem: "not valid JSON: " + err.Error()}
	}
	if v.Type() != fastjson.TypeObject {
		return nil, &ConfigError{File: name, Problem: fmt.Sprintf("a JSON %s, not an object", v.Type())}
	}
	r := &configReader{name: name, v: v}
	c := &Config{name: name, Raw: append([]byte(nil), data...)}
	c.Architectures = r.strings("architectures")
	c.ModelType = r.str("model_type", "")
	if r.err != nil {
		return nil, r.err
	}
	switch c.ModelType {
	case ModelGPT2, ModelBERT:
	case "":
		for _, a := range c.Architectures {
			if strings.HasPrefix(a, "GPT2") {
				c.ModelType = ModelGPT2
				break
			}
			if strings.HasPrefix(a, "Bert") {
				c.ModelType = ModelBERT
				break
			}
		}
		if c.ModelType == "" {
			return nil, &ConfigError{File: name,
				Problem: `cannot tell the model type: no "model_type" and no GPT2* or Bert* architecture`}
		}
	default:
		return nil, &ConfigError{File: name, Field: "model_type",
			Problem: fmt.Sprintf("unsupported model type %q (want gpt2 or bert)", c.ModelType)}
	}

	f := fieldNames(c.ModelType)
	if c.ModelType == ModelGPT2 {
		c.VocabSize = r.int(f.vocab, 50257)
		c.MaxPositions = r.int(f.positions, 1024)
		c.Hidden = r.int(f.hidden, 768)
		c.Layers = r.int(f.layers, 12)
		c.Heads = r.int(f.heads, 12)
		c.Inner = r.int(f.inner, 4*c.Hidden)
		c.LayerNormEps = r.float(f.eps, 1e-5)
		c.Activation = r.str(f.act, "gelu_new")
		c.ScaleAttnWeights = r.bool("scale_attn_weights", true)
		c.ScaleAttnByInverseLayerIdx = r.bool("scale_attn_by_inverse_layer_idx", false)
		c.ReorderAndUpcastAttn = r.bool("reorder_and_upcast_attn", false)
	} else {
		c.VocabSize = r.int(f.vocab, 30522)
		c.MaxPositions = r.int(f.positions, 512)
		c.Hidden = r.int(f.hidden, 768)
		c.Layers = r.int(f.layers, 12)
		c.Heads = r.int(f.heads, 12)
		c.Inner = r.int(f.inner, 3072)
		c.LayerNormEps = r.float(f.eps, 1e-12)
		c.Activation = r.str(f.act, "gelu")
		c.TypeVocabSize = r.int(f.typeVocab, 2)
	}
	c.PadTokenID = r.int("pad_token_id", -1)
	c.BOSTokenID = r.int("bos_token_id", -1)
	c.EOSTokenID = r.int("eos_token_id", -1)
	c.TieWordEmbeddings = r.bool("tie_word_embeddings", true)
	c.ID2Label = r.labels("id2label")
	if c.ID2Label == nil && r.err == nil {
		c.NumLabels = r.int("num_labels", 2)
		if c.NumLabels < 0 || c.NumLabels > 1<<20 {
			return nil, &ConfigError{File: name, Field: "num_labels",
				Problem: fmt.Sprintf("%d is out of range", c.NumLabels)}
		}
		c.ID2Label = make([]string, c.NumLabels)
		for i := range c.ID2Label {
			c.ID2Label[i] = "LABEL_" + strconv.Itoa(i)
		}
	}
	c.NumLabels = len(c.ID2Label)
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// Validate checks that c describes a model that can be built: positive
// sizes (at most 2^30), a hidden size divisible by the number of heads, a positive layer
// norm epsilon, a known activation, token ids within the vocabulary and at
// least one label.
func (c *Config) Validate() error {
	name := c.name
	if name == "" {
		name = "config.json"
	}
	bad := func(field, format string, args ...any) error {
		return &ConfigError{File: name, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if c.ModelType != ModelGPT2 && c.ModelType != ModelBERT {
		return bad("model_type", "unsupported model type %q (want gpt2 or bert)", c.ModelType)
	}
	f := fieldNames(c.ModelType)
	sizes := []struct {
		field string
		v     int
	}{
		{f.vocab, c.VocabSize},
		{f.positions, c.MaxPositions},
		{f.hidden, c.Hidden},
		{f.layers, c.Layers},
		{f.heads, c.Heads},
		{f.inner, c.Inner},
	}
	if c.ModelType == ModelBERT {
		sizes = append(sizes, struct {
			field string
			v     int
		}{f.typeVocab, c.TypeVocabSize})
	}
	for _, s := range sizes {
		if s.v <= 0 {
			return bad(s.field, "must be positive, got %d", s.v)
		}
		if s.v > maxConfigDim {
			return bad(s.field, "%d exceeds the limit of %d", s.v, maxConfigDim)
		}
	}
	if c.Hidden%c.Heads != 0 {
		return bad("", "%s (%d) is not divisible by %s (%d)", f.hidden, c.Hidden, f.heads, c.Heads)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) {
		return bad(f.eps, "must be positive and finite, got %g", c.LayerNormEps)
	}
	switch c.Activation {
	case "gelu_new", "gelu_pytorch_tanh", "gelu", "gelu_python":
	default:
		return bad(f.act, "unsupported activation %q (want gelu_new, gelu_pytorch_tanh, gelu or gelu_python)", c.Activation)
	}
	for _, t := range []struct {
		field string
		id    int
	}{{"pad_token_id", c.PadTokenID}, {"bos_token_id", c.BOSTokenID}, {"eos_token_id", c.EOSTokenID}} {
		if t.id < -1 || t.id >= c.VocabSize {
			return bad(t.field, "%d is outside the vocabulary of %d tokens", t.id, c.VocabSize)
		}
	}
	if c.NumLabels < 1 || c.NumLabels != len(c.ID2Label) {
		return bad("id2label", "%d labels named for num_labels %d", len(c.ID2Label), c.NumLabels)
	}
	return nil
}

// HeadDim returns the size of one attention head, Hidden / Heads.
func (c *Config) HeadDim() int {
	if c.Heads == 0 {
		return 0
	}
	return c.Hidden / c.Heads
}

// configFields holds the JSON names of the fields that GPT-2 and BERT spell
// differently.
type configFields struct {
	vocab, positions, hidden, layers, heads, inner, eps, act, typeVocab string
}

func fieldNames(modelType string) configFields {
	if modelType == ModelGPT2 {
		return configFields{"vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
			"n_inner", "layer_norm_epsilon", "activation_function", "type_vocab_size"}
	}
	return configFields{"vocab_size", "max_position_embeddings", "hidden_size", "num_hidden_layers",
		"num_attention_heads", "intermediate_size", "layer_norm_eps", "hidden_act", "type_vocab_size"}
}

// configReader reads typed fields of a config object, keeping the first
// type error.
type configReader struct {
	name string
	v    *fastjson.Value
	err  error
}

// get returns the field's value, or nil if it is absent or null, or an
// earlier field was bad.
func (r *configReader) get(field string) *fastjson.Value {
	if r.err != nil {
		return nil
	}
	v := r.v.Get(field)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	return v
}

func (r *configReader) fail(field, format string, args ...any) {
	r.err = &ConfigError{File: r.name, Field: field, Problem: fmt.Sprintf(format, args...)}
}

func (r *configReader) int(field string, def int) int {
	v := r.get(field)
	if v == nil {
		return def
	}
	if v.Type() != fastjson.TypeNumber {
		r.fail(field, "expected a number, got a JSON %s", v.Type())
		return def
	}
	if n, err := v.Int(); err == nil {
		return n
	}
	x, err := v.Float64()
	if err != nil || x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		r.fail(field, "expected an integer, got %s", v)
		return def
	}
	return int(x)
}

func (r *configReader) float(field string, def float64) float64 {
	v := r.get(field)
	if v == nil {
		return def
	}
	if v.Type() != fastjson.TypeNumber {
		r.fail(field, "expected a number, got a JSON %s", v.Type())
		return def
	}
	x, err := v.Float64()
	if err != nil {
		r.fail(field, "expected a number, got %s", v)
		return def
	}
	return x
}

func (r *configReader) str(field, def string) string {
	v := r.get(field)
	if v == nil {
		return def
	}
	b, err := v.StringBytes()
	if err != nil {
		r.fail(field, "expected a string, got a JSON %s", v.Type())
		return def
	}
	return string(b)
}

func (r *configReader) bool(field string, def bool) bool {
	v := r.get(field)
	if v == nil {
		return def
	}
	b, err := v.Bool()
	if err != nil {
		r.fail(field, "expected a boolean, got a JSON %s", v.Type())
		return def
	}
	return b
}

func (r *configReader) strings(field string) []string {
	v := r.get(field)
	if v == nil {
		return nil
	}
	a, err := v.Array()
	if err != nil {
		r.fail(field, "expected an array of strings, got a JSON %s", v.Type())
		return nil
	}
	out := make([]string, len(a))
	for i, e := range a {
		b, err := e.StringBytes()
		if err != nil {
			r.fail(field, "expected an array of strings, element %d is a JSON %s", i, e.Type())
			return nil
		}
		out[i] = string(b)
	}
	return out
}

// labels reads an id2label object, {"0": "NEGATIVE", "1": "POSITIVE"}, into
// a slice in index order. The keys must be 0 to n-1, each once.
func (r *configReader) labels(field string) []string {
	v := r.get(field)
	if v == nil {
		return nil
	}
	o, err := v.Object()
	if err != nil {
		r.fail(field, "expected an object, got a JSON %s", v.Type())
		return nil
	}
	out := make([]string, o.Len())
	set := make([]bool, o.Len())
	o.Visit(func(key []byte, e *fastjson.Value) {
		if r.err != nil {
			return
		}
		i, err := strconv.Atoi(string(key))
		if err != nil || i < 0 || i >= len(out) {
			r.fail(field, "key %q is not a label index from 0 to %d", key, len(out)-1)
			return
		}
		if set[i] {
			r.fail(field, "duplicate label index %q", key)
			return
		}
		b, err := e.StringBytes()
		if err != nil {
			r.fail(field, "label %q is a JSON %s, not a string", key, e.Type())
			return
		}
		out[i], set[i] = string(b), true
	})
	if r.err != nil {
		return nil
	}
	return out
}
