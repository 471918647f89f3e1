// Package transformer runs GPT-2 and BERT from Hugging Face files on an
// engine.Backend, with TransformerLens-named hook points in every forward
// pass and KV-cache generation for GPT-2.
package transformer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// ErrBadInput is wrapped by errors about the tokens given to a model:
// an id outside the vocabulary, a sequence longer than the model's context.
var ErrBadInput = errors.New("bad input")

// Model is a loaded GPT-2 or BERT with its tokenizer. Exactly one of GPT2
// and BERT is set.
type Model struct {
	// Name is where the model came from: a directory or "embedded:NAME".
	Name      string
	Config    *weights.Config
	Tokenizer tokenizer.Tokenizer
	GPT2      *GPT2
	BERT      *BERT
	Backend   engine.Backend

	weights   *weights.Set
	hookNames []string
}

// Load resolves nameOrDir (a model directory, or a hub name found in the
// Hugging Face cache) and loads its config, weights and tokenizer onto b.
func Load(nameOrDir string, b engine.Backend) (*Model, error) {
	dir, err := weights.Resolve(nameOrDir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := weights.ReadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	set, err := weights.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	tok, err := dirTokenizer(dir, cfg)
	if err != nil {
		set.Close()
		return nil, err
	}
	m, err := New(dir, cfg, set, tok, b)
	if err != nil {
		set.Close()
		return nil, err
	}
	return m, nil
}

// New builds a model from an opened config and weight set; name is used in
// errors. The model takes ownership of set (Close closes it).
func New(name string, cfg *weights.Config, set *weights.Set, tok tokenizer.Tokenizer, b engine.Backend) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m := &Model{Name: name, Config: cfg, Tokenizer: tok, Backend: b, weights: set}
	var err error
	switch cfg.ModelType {
	case "gpt2":
		if cfg.ScaleAttnByInverseLayerIdx || cfg.ReorderAndUpcastAttn {
			return nil, fmt.Errorf("%s: config.json: scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported", name)
		}
		m.GPT2, err = loadGPT2(cfg, newLoader(set, name, b, "transformer."))
		m.hookNames = gpt2HookNames(cfg.Layers)
	case "bert":
		m.BERT, err = loadBERT(cfg, newLoader(set, name, b, "bert."))
		if err == nil {
			m.hookNames = bertHookNames(cfg.Layers, m.BERT.Head)
		}
	default:
		err = fmt.Errorf("config.json: model_type %q is not supported (gpt2, bert)", cfg.ModelType)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// dirTokenizer loads the tokenizer files of a model directory, or the
// embedded default of the model type when the directory has none.
func dirTokenizer(dir string, cfg *weights.Config) (tokenizer.Tokenizer, error) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch cfg.ModelType {
	case "gpt2":
		if exists("vocab.json") && exists("merges.txt") {
			return tokenizer.LoadGPT2Dir(dir)
		}
		return tokenizer.DefaultGPT2()
	case "bert":
		if exists("vocab.txt") {
			return tokenizer.LoadWordPieceDir(dir, true)
		}
		return tokenizer.DefaultBERT()
	}
	return nil, fmt.Errorf("%s: no tokenizer for model_type %q", dir, cfg.ModelType)
}

// Close releases the model's weight files.
func (m *Model) Close() error {
	if m.weights == nil {
		return nil
	}
	return m.weights.Close()
}

// Weights returns the model's open weight files.
func (m *Model) Weights() *weights.Set { return m.weights }

// Batch is a batch of token sequences, right-padded to one length T.
type Batch struct {
	B, T int
	// IDs holds B·T token ids, row-major; padding positions hold 0.
	IDs []int32
	// Valid is [B·T], 1 for a real token and 0 for padding; nil when no
	// sequence is padded.
	Valid []int32
	// TypeIDs are BERT's token type ids [B·T]; nil means all 0.
	TypeIDs []int32
	// LogitPositions, when not nil, are the positions (the same for every
	// sequence) at which GPT-2 computes its logits: the output is then
	// [B, len(LogitPositions), vocab], row j the logits at position
	// LogitPositions[j], as transformers' logits_to_keep with indices. The
	// unembedding, a third of a short forward's arithmetic, runs on those
	// rows only (unless a hook reads unembed.hook_out, which then sees
	// every position). GPT-2 only.
	LogitPositions []int
}

// NewBatch right-pads seqs to the longest one. typeIDs, when not nil, gives
// BERT token types per sequence (same lengths as seqs).
func NewBatch(seqs [][]int, typeIDs [][]int) (Batch, error) {
	if len(seqs) == 0 {
		return Batch{}, fmt.Errorf("%w: empty batch", ErrBadInput)
	}
	if typeIDs != nil && len(typeIDs) != len(seqs) {
		return Batch{}, fmt.Errorf("%w: %d token-type sequences for %d sequences", ErrBadInput, len(typeIDs), len(seqs))
	}
	T := 0
	for i, s := range seqs {
		if len(s) == 0 {
			return Batch{}, fmt.Errorf("%w: sequence %d is empty", ErrBadInput, i)
		}
		T = max(T, len(s))
	}
	in := Batch{B: len(seqs), T: T, IDs: make([]int32, len(seqs)*T)}
	padded := false
	for i, s := range seqs {
		padded = padded || len(s) < T
		for j, id := range s {
			in.IDs[i*T+j] = int32(id)
		}
	}
	if padded {
		in.Valid = make([]int32, len(seqs)*T)
		for i, s := range seqs {
			for j := range s {
				in.Valid[i*T+j] = 1
			}
		}
	}
	if typeIDs != nil {
		in.TypeIDs = make([]int32, len(seqs)*T)
		for i, s := range typeIDs {
			if len(s) != len(seqs[i]) {
				return Batch{}, fmt.Errorf("%w: sequence %d has %d tokens and %d token types", ErrBadInput, i, len(seqs[i]), len(s))
			}
			for j, t := range s {
				in.TypeIDs[i*T+j] = int32(t)
			}
		}
	}
	return in, nil
}

// Lengths returns each sequence's number of real tokens.
func (in Batch) Lengths() []int {
	n := make([]int, in.B)
	for i := range n {
		if in.Valid == nil {
			n[i] = in.T
			continue
		}
		for j := range in.T {
			n[i] += int(in.Valid[i*in.T+j])
		}
	}
	return n
}

// check validates token ids, token types and lengths against the model,
// with offset tokens already in a KV cache.
func (m *Model) check(in Batch, offset int) error {
	cfg := m.Config
	if offset+in.T > cfg.MaxPositions {
		return fmt.Errorf("%w: %d tokens exceed the model's %d positions", ErrBadInput, offset+in.T, cfg.MaxPositions)
	}
	for i, id := range in.IDs {
		if id < 0 || int(id) >= cfg.VocabSize {
			return fmt.Errorf("%w: token id %d (sequence %d, position %d) is outside the vocabulary of %d",
				ErrBadInput, id, i/in.T, i%in.T, cfg.VocabSize)
		}
	}
	for i, t := range in.TypeIDs {
		if t < 0 || int(t) >= cfg.TypeVocabSize {
			return fmt.Errorf("%w: token type %d (sequence %d, position %d) is outside type_vocab_size %d",
				ErrBadInput, t, i/in.T, i%in.T, cfg.TypeVocabSize)
		}
	}
	if in.LogitPositions != nil {
		if m.GPT2 == nil {
			return fmt.Errorf("%w: LogitPositions: BERT's heads take every position", ErrBadInput)
		}
		if len(in.LogitPositions) == 0 {
			return fmt.Errorf("%w: LogitPositions is empty (nil asks for every position)", ErrBadInput)
		}
		for _, p := range in.LogitPositions {
			if p < 0 || p >= in.T {
				return fmt.Errorf("%w: LogitPositions: position %d of %d", ErrBadInput, p, in.T)
			}
		}
	}
	return nil
}

// Forward runs the model on in with hooks (nil for none) and returns its
// output: logits [B, T, vocab] for GPT-2 and BERT's masked LM, class logits
// [B, labels] for sequence classification, the hidden state [B, T, D] for a
// bare BertModel.
func (m *Model) Forward(ctx context.Context, in Batch, hooks *Hooks) (*engine.Tensor, error) {
	if err := m.check(in, 0); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &run{b: m.Backend, hooks: hooks}
	var out *engine.Tensor
	if m.GPT2 != nil {
		out = m.GPT2.forward(r, in, nil, false)
	} else {
		out = m.BERT.forward(r, in)
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := m.Backend.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Backend.Name(), err)
	}
	return out, nil
}

// Encode tokenizes text as the model expects it: GPT-2's byte-level BPE as
// is; BERT's WordPiece inside [CLS] … [SEP].
func (m *Model) Encode(text string) []int { return EncodeText(m.Tokenizer, text) }

// EncodeText tokenizes text as a model expects it: WordPiece inside
// [CLS] … [SEP], any other tokenizer as is.
func EncodeText(tok tokenizer.Tokenizer, text string) []int {
	if wp, ok := tok.(*tokenizer.WordPiece); ok {
		return wp.EncodeForModel(text)
	}
	return tok.Encode(text)
}

// LoadTokenizer loads only the tokenizer of a model directory or hub name
// (its own files, else the embedded default of its model type).
func LoadTokenizer(nameOrDir string) (tokenizer.Tokenizer, *weights.Config, error) {
	dir, err := weights.Resolve(nameOrDir)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := weights.ReadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, err
	}
	tok, err := dirTokenizer(dir, cfg)
	return tok, cfg, err
}

// MaskPositions returns the positions of [MASK] in ids (a WordPiece model's
// input), or every position when there is none.
func (m *Model) MaskPositions(ids []int) []int {
	var pos []int
	if wp, ok := m.Tokenizer.(*tokenizer.WordPiece); ok {
		for i, id := range ids {
			if id == wp.MASK() {
				pos = append(pos, i)
			}
		}
	}
	if len(pos) == 0 {
		for i := range ids {
			pos = append(pos, i)
		}
	}
	return pos
}
