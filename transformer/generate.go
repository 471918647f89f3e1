package transformer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/modelforensics/fx/engine"
)

// Sampler settings for generation. The zero value is greedy decoding.
type Sampler struct {
	// Temperature divides the logits; 0 means greedy (argmax, lowest id on
	// ties).
	Temperature float64 `json:"temperature"`
	// TopK keeps the K most likely tokens; 0 keeps all.
	TopK int `json:"top_k"`
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches P; 0 or 1 keeps all.
	TopP float64 `json:"top_p"`
	// Seed seeds the sampler's PCG random source.
	Seed uint64 `json:"seed"`
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxNewTokens int
	Sampler      Sampler
	// StopAtEOS ends generation after the tokenizer's end-of-text token.
	StopAtEOS bool
	// EOS is the end-of-text token id (GPT-2: 50256).
	EOS int
}

// Step records one generation step.
type Step struct {
	// Token is the token chosen at this step.
	Token int `json:"token"`
	// CacheLen is the KV-cache length after the step's forward.
	CacheLen int `json:"kv_cache_len"`
	// RNGState is the sampler's PCG state before the draw (binary, as
	// rand.PCG.MarshalBinary writes it).
	RNGState []byte `json:"rng_state"`
}

// Generation is the result of Generate.
type Generation struct {
	Prompt []int  `json:"prompt"`
	Tokens []int  `json:"tokens"`
	Steps  []Step `json:"steps"`
}

// Generate continues prompt with GPT-2, running each new token through the
// KV cache; hooks see every step's activations (the prompt's at step 0, then
// one position at a time, with HookCtx.Offset set).
func (m *Model) Generate(ctx context.Context, prompt []int, opts GenerateOptions, hooks *Hooks) (gen *Generation, err error) {
	if m.GPT2 == nil {
		return nil, fmt.Errorf("generate: %s is a %s model; only GPT-2 generates", m.Name, m.Config.ModelType)
	}
	if opts.MaxNewTokens < 0 {
		return nil, fmt.Errorf("%w: max new tokens %d < 0", ErrBadInput, opts.MaxNewTokens)
	}
	if s := opts.Sampler; s.Temperature < 0 || s.TopK < 0 || s.TopP < 0 || s.TopP > 1 {
		return nil, fmt.Errorf("%w: sampler temperature %g, top-k %d, top-p %g (need ≥ 0, ≥ 0, in [0,1])",
			ErrBadInput, s.Temperature, s.TopK, s.TopP)
	}
	if len(prompt)+opts.MaxNewTokens > m.Config.MaxPositions {
		return nil, fmt.Errorf("%w: %d prompt tokens + %d new tokens exceed the model's %d positions",
			ErrBadInput, len(prompt), opts.MaxNewTokens, m.Config.MaxPositions)
	}
	pcg := rand.NewPCG(opts.Sampler.Seed, opts.Sampler.Seed^0x9e3779b97f4a7c15)
	rng := rand.New(pcg)
	gen = &Generation{Prompt: append([]int(nil), prompt...)}
	if opts.MaxNewTokens == 0 {
		return gen, nil
	}
	forward, done, err := m.stepper(prompt, opts, hooks)
	if err != nil {
		return nil, err
	}
	defer func() {
		if e := done(); e != nil && err == nil {
			gen, err = nil, e
		}
	}()
	next := prompt
	for range opts.MaxNewTokens {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		row, cacheLen, err := forward(ctx, next)
		if err != nil {
			return nil, err
		}
		state, _ := pcg.MarshalBinary()
		tok := opts.Sampler.pick(row, rng)
		gen.Tokens = append(gen.Tokens, tok)
		gen.Steps = append(gen.Steps, Step{Token: tok, CacheLen: cacheLen, RNGState: state})
		if opts.StopAtEOS && tok == opts.EOS {
			break
		}
		next = []int{tok}
	}
	return gen, nil
}

// stepFunc runs tokens after the cached ones and returns the last one's
// logits and the cache's length after them.
type stepFunc func(ctx context.Context, tokens []int) (logits []float32, cacheLen int, err error)

// stepper returns Generate's step and what ends it (releasing a
// Decoder's graph). Without hooks it is
// a Decoder's (on a GPU, a replayed graph); with hooks, the forward pass
// through a KV cache that calls them at every step.
func (m *Model) stepper(prompt []int, opts GenerateOptions, hooks *Hooks) (stepFunc, func() error, error) {
	if hooks.empty() {
		dec, err := m.NewDecoder(len(prompt) + opts.MaxNewTokens)
		if err != nil {
			return nil, nil, err
		}
		step := func(ctx context.Context, tokens []int) ([]float32, int, error) {
			var row []float32
			var err error
			if dec.Len() == 0 {
				row, err = dec.Prefill(ctx, tokens)
			} else {
				row, err = dec.Step(ctx, tokens[0])
			}
			return row, dec.Len(), err
		}
		return step, dec.Close, nil
	}
	cache := m.GPT2.NewKVCache()
	step := func(ctx context.Context, tokens []int) ([]float32, int, error) {
		in, err := NewBatch([][]int{tokens}, nil)
		if err != nil {
			return nil, 0, err
		}
		if err := m.check(in, cache.Len); err != nil {
			return nil, 0, err
		}
		r := &run{b: m.Backend, hooks: hooks}
		logits := m.GPT2.forward(r, in, cache, true)
		if r.err != nil {
			return nil, 0, r.err
		}
		row, err := m.lastLogits(logits)
		return row, cache.Len, err
	}
	return step, func() error { return nil }, nil
}

// lastLogits returns the logits [vocab] of logits' last position on the
// host, or the backend's error.
func (m *Model) lastLogits(logits *engine.Tensor) ([]float32, error) {
	row := m.Backend.ToHost(logits)
	if err := m.Backend.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Backend.Name(), err)
	}
	return row[len(row)-m.Config.VocabSize:], nil
}

// pick chooses the next token from one row of logits.
func (s Sampler) pick(logits []float32, rng *rand.Rand) int {
	if s.Temperature == 0 {
		return argmax(logits)
	}
	type cand struct {
		id    int
		logit float64
	}
	cands := make([]cand, len(logits))
	for i, l := range logits {
		cands[i] = cand{i, float64(l) / s.Temperature}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].logit > cands[j].logit })
	if s.TopK > 0 && s.TopK < len(cands) {
		cands = cands[:s.TopK]
	}
	probs := make([]float64, len(cands))
	sum := 0.0
	for i, c := range cands {
		probs[i] = math.Exp(c.logit - cands[0].logit)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	if s.TopP > 0 && s.TopP < 1 {
		cum := 0.0
		for i, p := range probs {
			cum += p
			if cum >= s.TopP {
				cands, probs = cands[:i+1], probs[:i+1]
				break
			}
		}
		total := 0.0
		for _, p := range probs {
			total += p
		}
		for i := range probs {
			probs[i] /= total
		}
	}
	u := rng.Float64()
	for i, p := range probs {
		u -= p
		if u < 0 {
			return cands[i].id
		}
	}
	return cands[len(cands)-1].id
}

// argmax returns the index of the largest value, the lowest on ties.
func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}
