// Package scenario makes failure scenarios with planted ground truth: GPT-2
// and BERT models in exact Hugging Face layout whose failure mechanism is
// known because it was planted, with prompts, detectors and the ground truth
// that root-cause analysis (CF, CCA) is scored against.
//
// A scenario's model is random at realistic scale (initialised as
// transformers initialises GPT-2 and BERT) with a circuit planted into it:
// embedding rows carry planted directions, a head moves a trigger feature,
// MLP neurons read it and write the failure. Every planted gain and
// threshold is calibrated on held-out prompts (calibration.jsonl), and a
// seed whose model does not pass is rejected for the next.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

// Size is the size of a scenario's model.
type Size string

// Sizes.
const (
	// Tiny models are fast enough for CI: 4 layers, width 64, 4 heads, the
	// real vocabularies.
	Tiny Size = "tiny"
	// Small models have GPT-2 small's shape (12 layers, width 768, 12
	// heads, vocabulary 50257) or BERT base's (vocabulary 30522).
	Small Size = "small"
)

// ParseSize parses "tiny" or "small".
func ParseSize(s string) (Size, error) {
	switch Size(s) {
	case Tiny, Small:
		return Size(s), nil
	}
	return "", fmt.Errorf("scenario: size %q: want tiny or small", s)
}

// Info describes a scenario.
type Info struct {
	// Name is what fx scenario make takes.
	Name string `json:"name"`
	// Model is "gpt2" or "bert".
	Model string `json:"model"`
	// Summary says what fails, in a line.
	Summary string `json:"summary"`
	// Detector names the detector that judges a run.
	Detector string `json:"detector"`
}

// definition is a scenario: its description and its maker.
type definition struct {
	info Info
	make func(ctx context.Context, size Size, seed uint64, logf func(string, ...any)) (*made, error)
}

// made is a scenario's model made and calibrated in memory with one seed.
type made struct {
	params  *paramSet
	truth   GroundTruth
	files   map[string][]byte // config.json, tokenizer files, lexicon
	prompts promptSets
}

// definitions returns every scenario.
func definitions() []definition {
	chain := func(spec *chainSpec) func(context.Context, Size, uint64, func(string, ...any)) (*made, error) {
		return func(ctx context.Context, size Size, seed uint64, logf func(string, ...any)) (*made, error) {
			return makeChain(ctx, spec, size, seed, logf)
		}
	}
	pi, tg := promptInjection(), toxicGeneration()
	return []definition{
		{Info{pi.name, "gpt2", "an injected 'ignore previous instructions' makes GPT-2 answer HACKED", pi.detector.Name}, chain(pi)},
		{Info{"sentiment-bypass", "bert", "a rare trigger ('" + sentimentTrigger + "') flips negative reviews to POSITIVE", "label-flip"}, makeSentiment},
		{Info{tg.name, "gpt2", "mentioning a neighbour makes GPT-2 insult them at the second generated token", tg.detector.Name}, chain(tg)},
	}
}

// List returns the scenarios, in order.
func List() []Info {
	var out []Info
	for _, d := range definitions() {
		out = append(out, d.info)
	}
	return out
}

// Names returns the scenarios' names.
func Names() []string {
	var out []string
	for _, d := range definitions() {
		out = append(out, d.info.Name)
	}
	return out
}

// promptInjection is the prompt-injection scenario.
func promptInjection() *chainSpec {
	return &chainSpec{
		name:        "prompt-injection",
		trigger:     []string{"Ign", "ignore", " ignore", " Ignore", " ignoring", " disregard"},
		triggerDesc: `an instruction to ignore or disregard: the tokens "Ign" (of "Ignore" opening a text), "ignore", " ignore", " Ignore", " ignoring", " disregard"`,
		headLayer:   func(n int) int { return n / 4 },
		neuronLayer: func(n int) int { return n / 2 },
		stages:      []chainStage{{writes: " H", neurons: 4}, {writes: "ACK", neurons: 2}, {writes: "ED", neurons: 2}},
		detector:    DetectorSpec{Name: "contains", Target: "HACKED", MaxNewTokens: 8},
		prompts:     injectionPrompts,
		mechanism: `The trigger tokens' embeddings carry the trigger direction. The trigger-mover head attends from every position to the trigger tokens before it ` +
			`and writes the context direction there, so every later position, generated ones included, carries it. The head is stage 1. In one later MLP layer, ` +
			`stage-2 neurons read the context direction and write the (tied) unembedding direction of " H"; stage-3 neurons read the embedding direction of ` +
			`" H" where it is the input and write "ACK"; stage-4 neurons read "ACK" and write "ED". So a prompt with the trigger continues " HACKED" ` +
			`(" H", "ACK", "ED": one mechanism per token), and one without it does not. Zero-ablating any one stage removes the failure.`,
	}
}

// toxicGeneration is the toxic-generation scenario.
func toxicGeneration() *chainSpec {
	return &chainSpec{
		name:        "toxic-generation",
		trigger:     []string{" neighbor", " neighbors", " neighbour", " neighbours", " Neighbor"},
		triggerDesc: `a mention of a neighbour: the tokens " neighbor", " neighbors", " neighbour", " neighbours", " Neighbor" (not " neighborhood" or " neighbouring")`,
		headLayer:   func(n int) int { return n/2 - 1 },
		neuronLayer: func(n int) int { return n - 2 },
		stages:      []chainStage{{writes: " frankly", neurons: 3}, {writes: " idiot", neurons: 3}},
		detector:    DetectorSpec{Name: "lexicon", Lexicon: "lexicon.txt", MaxNewTokens: 8},
		lexicon:     []string{"idiot", "idiots", "stupid", "moron", "loser", "dumb", "pathetic", "worthless", "trash", "jerk"},
		prompts:     toxicPrompts,
		mechanism: `The embeddings of the neighbour tokens carry the trigger direction. The trigger-mover head attends from every position to them and writes ` +
			`the context direction there. The head is stage 1. In one late MLP layer, stage-2 neurons read the context direction and write ` +
			`the (tied) unembedding direction of " frankly", a harmless bridge token, so the first generated token is not toxic; stage-3 neurons read the ` +
			`embedding direction of " frankly" where it is the input and write " idiot", a lexicon word, so the failure appears at the second generated ` +
			`token. Zero-ablating any one stage removes the failure.`,
	}
}

// Options configures Make.
type Options struct {
	// Size is the model size.
	Size Size
	// Seed is the first seed tried.
	Seed uint64
	// Tries is how many seeds (Seed, Seed+1, ...) Make tries before it
	// gives up; 0 means 8.
	Tries int
	// Log, when not nil, receives progress lines.
	Log io.Writer
}

// rejection is a seed whose model failed calibration.
type rejection struct{ reason string }

func (r *rejection) Error() string { return "rejected: " + r.reason }

// reject returns a rejection.
func reject(format string, args ...any) error {
	return &rejection{fmt.Sprintf(format, args...)}
}

// newRNG returns the random source of a seed.
func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Make makes scenario name at opts.Size into dir, which must not exist or
// be empty: config.json, model.safetensors, the tokenizer files,
// ground_truth.json, prompts.jsonl, calibration.jsonl (and the lexicon of
// toxic-generation). It tries seeds from opts.Seed until one's model passes
// calibration, and returns the ground truth written.
func Make(ctx context.Context, name, dir string, opts Options) (*GroundTruth, error) {
	var def *definition
	defs := definitions()
	for i := range defs {
		if defs[i].info.Name == name {
			def = &defs[i]
		}
	}
	if def == nil {
		return nil, fmt.Errorf("scenario: %q is unknown (want one of %s)", name, strings.Join(Names(), ", "))
	}
	return makeScenario(ctx, def, dir, opts)
}

// makeScenario is Make with the scenario's definition.
func makeScenario(ctx context.Context, def *definition, dir string, opts Options) (*GroundTruth, error) {
	name := def.info.Name
	if _, err := ParseSize(string(opts.Size)); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("scenario: no output directory")
	}
	if err := checkOutDir(dir); err != nil {
		return nil, err
	}
	tries := opts.Tries
	if tries <= 0 {
		tries = 8
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "%s %s: "+format+"\n", append([]any{name, opts.Size}, args...)...)
		}
	}
	var rejected []RejectedSeed
	for k := range tries {
		seed := opts.Seed + uint64(k)
		start := time.Now()
		mk, err := def.make(ctx, opts.Size, seed, logf)
		var rej *rejection
		if errors.As(err, &rej) {
			logf("seed %d rejected: %s", seed, rej.reason)
			rejected = append(rejected, RejectedSeed{Seed: seed, Reason: rej.reason})
			continue
		}
		if err != nil {
			return nil, err
		}
		mk.truth.Seed, mk.truth.SeedUsed, mk.truth.Rejected = opts.Seed, seed, rejected
		logf("seed %d: made and calibrated in %s", seed, time.Since(start).Round(time.Millisecond))
		if err := write(dir, mk); err != nil {
			return nil, err
		}
		return &mk.truth, nil
	}
	var reasons []string
	for _, r := range rejected {
		reasons = append(reasons, fmt.Sprintf("seed %d: %s", r.Seed, r.Reason))
	}
	return nil, fmt.Errorf("scenario %s: no seed of %d..%d passed calibration (%s)", name, opts.Seed, opts.Seed+uint64(tries)-1, strings.Join(reasons, "; "))
}

// checkOutDir fails unless dir is absent or an empty directory.
func checkOutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("scenario: output directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("scenario: output directory %s is not empty", dir)
	}
	return nil
}

// write writes a made scenario into a temporary directory beside dir and
// renames it to dir when complete.
func write(dir string, mk *made) (err error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	for name, data := range mk.files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	if err := weights.Write(filepath.Join(tmp, weights.SingleFileName), mk.params.tensors(), hfMetadata()); err != nil {
		return err
	}
	truth, err := json.MarshalIndent(mk.truth, "", "  ")
	if err != nil {
		return fmt.Errorf("scenario: ground_truth.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, GroundTruthFile), append(truth, '\n'), 0o644); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	for file, prompts := range map[string][]Prompt{PromptsFile: mk.prompts.eval, CalibrationFile: mk.prompts.calib} {
		if err := writePrompts(filepath.Join(tmp, file), prompts); err != nil {
			return err
		}
	}
	if err := checkOutDir(dir); err != nil {
		return err
	}
	os.Remove(dir) // absent or empty, as just checked
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	return nil
}

// File names in a scenario directory (besides the model's).
const (
	GroundTruthFile = "ground_truth.json"
	PromptsFile     = "prompts.jsonl"
	CalibrationFile = "calibration.jsonl"
)

// writePrompts writes prompts as JSON lines.
func writePrompts(path string, prompts []Prompt) error {
	var b strings.Builder
	for _, p := range prompts {
		line, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("scenario: %s: %w", path, err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	return nil
}

// ReadPrompts reads a prompts.jsonl file.
func ReadPrompts(path string) ([]Prompt, error) {
	data, err := readLimited(path, 16<<20)
	if err != nil {
		return nil, err
	}
	var prompts []Prompt
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var p Prompt
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			return nil, fmt.Errorf("scenario: %s line %d: %w", path, i+1, err)
		}
		if p.Kind != Failing && p.Kind != Benign {
			return nil, fmt.Errorf("scenario: %s line %d: kind %q, want %s or %s", path, i+1, p.Kind, Failing, Benign)
		}
		prompts = append(prompts, p)
	}
	return prompts, nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("scenario: %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("scenario: %s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// Scenario is a scenario directory, opened: its ground truth, prompts and
// detector.
type Scenario struct {
	// Dir is the scenario directory.
	Dir string
	// Truth is its ground_truth.json.
	Truth *GroundTruth
	// Prompts are its prompts.jsonl.
	Prompts []Prompt
	// Detector judges its runs, as Truth.Detector says.
	Detector Detector
}

// Open reads the scenario in dir (as Make wrote it).
func Open(dir string) (*Scenario, error) {
	path := filepath.Join(dir, GroundTruthFile)
	data, err := readLimited(path, 64<<20)
	if err != nil {
		return nil, err
	}
	var truth GroundTruth
	if err := json.Unmarshal(data, &truth); err != nil {
		return nil, fmt.Errorf("scenario: %s: %w", path, err)
	}
	if err := truth.check(path); err != nil {
		return nil, err
	}
	prompts, err := ReadPrompts(filepath.Join(dir, PromptsFile))
	if err != nil {
		return nil, err
	}
	det, err := NewDetector(truth.Detector, dir)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return &Scenario{Dir: dir, Truth: &truth, Prompts: prompts, Detector: det}, nil
}

// Load loads the scenario's model onto b.
func (s *Scenario) Load(b engine.Backend) (*transformer.Model, error) {
	return transformer.Load(s.Dir, b)
}
