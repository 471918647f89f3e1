package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights/npy"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runOutput is fx run's --json output.
type runOutput struct {
	Model         string             `json:"model"`
	InputIDs      []int              `json:"input_ids"`
	OutputIDs     []int              `json:"output_ids,omitempty"`
	Text          string             `json:"text,omitempty"`
	OutputText    string             `json:"output_text,omitempty"`
	Label         string             `json:"label,omitempty"`
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
	Dumps         map[string][]int   `json:"dumps,omitempty"`
}

func cmdRun(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	prompt := fs.String("prompt", "", "input text")
	tokens := fs.String("tokens", "", "input token ids, comma-separated (instead of --prompt)")
	maxNew := fs.Int("max-new-tokens", 20, "tokens to generate (GPT-2); 0 shows the next-token distribution")
	temperature := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 0, "sample from the K most likely tokens (0: all)")
	topP := fs.Float64("top-p", 0, "sample from the smallest set reaching probability P (0: all)")
	seed := fs.Uint64("seed", 0, "sampler seed")
	stopEOS := fs.Bool("stop-at-eos", false, "stop generating after <|endoftext|>")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	asJSON := fs.Bool("json", false, "print JSON")
	var dumps, intervene listFlag
	fs.Var(&dumps, "dump", "HOOK=FILE.npy: write a hook's activation over the input as float32 .npy (repeatable)")
	fs.Var(&intervene, "intervene", "SITE=MODE[:ARG]: zero, mean:PROMPTS, patch:FILE.npz, set:V|FILE.npy, add:V|FILE.npy, scale:V (repeatable)")
	cacheFile := fs.String("cache", "", "write the activations of --cache-hooks over the input to this .npz (a patch source)")
	cacheHooks := fs.String("cache-hooks", "*", "hook glob for --cache")
	rec := addRecordFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx run [MODEL] (--prompt TEXT | --tokens IDS) [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	name, err := oneModelArg(pos, false)
	if err != nil {
		return err
	}
	if (*prompt == "") == (*tokens == "") {
		return usagef("give exactly one of --prompt and --tokens")
	}
	b, err := backend(*device)
	if err != nil {
		return err
	}
	m, err := loadModel(name, b)
	if err != nil {
		return err
	}
	defer m.Close()

	var ids []int
	if *tokens != "" {
		if ids, err = parseIDs(*tokens); err != nil {
			return err
		}
	} else {
		ids = m.Encode(*prompt)
	}
	in, err := transformer.NewBatch([][]int{ids}, nil)
	if err != nil {
		return inputError(err)
	}
	out := runOutput{Model: m.Name, InputIDs: ids}
	ctx := context.Background()
	var ivs []transformer.Intervention
	for _, text := range intervene {
		parsed, err := parseIntervention(ctx, m, text)
		if err != nil {
			return err
		}
		ivs = append(ivs, parsed...)
	}
	ivHooks, err := m.InterventionHooks(ivs)
	if err != nil {
		return inputError(err)
	}
	if rec.requested() {
		return rec.run(ctx, stdout, stderr, recordRun{modelArg: name, model: m, text: *prompt, ids: ids, maxNew: *maxNew,
			stopEOS: *stopEOS, sampler: transformer.Sampler{Temperature: *temperature, TopK: *topK, TopP: *topP, Seed: *seed},
			unrecordable: len(intervene) > 0 || len(dumps) > 0 || *cacheFile != "", asJSON: *asJSON})
	}
	logits, err := forwardWithDumps(ctx, m, in, ivHooks, dumps, *cacheFile, *cacheHooks, &out)
	if err != nil {
		return err
	}
	if m.GPT2 != nil && *maxNew > 0 {
		opts := transformer.GenerateOptions{
			MaxNewTokens: *maxNew, StopAtEOS: *stopEOS, EOS: gpt2EOS(m),
			Sampler: transformer.Sampler{Temperature: *temperature, TopK: *topK, TopP: *topP, Seed: *seed},
		}
		hs, err := m.NewHooks(ivHooks...)
		if err != nil {
			return inputError(err)
		}
		gen, err := m.Generate(ctx, ids, opts, hs)
		if err != nil {
			return inputError(err)
		}
		out.OutputIDs = gen.Tokens
		if out.OutputText, err = m.Tokenizer.Decode(gen.Tokens); err != nil {
			return err
		}
		if out.Text, err = m.Tokenizer.Decode(append(append([]int(nil), ids...), gen.Tokens...)); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, out)
		}
		fmt.Fprintln(stdout, out.Text)
		return nil
	}
	return printPrediction(stdout, m, logits, out, *asJSON)
}

// forwardWithDumps runs one forward over in with the intervention hooks,
// writing each --dump hook's activation to its .npy file and the --cache
// hooks to an .npz.
func forwardWithDumps(ctx context.Context, m *transformer.Model, in transformer.Batch, ivHooks []transformer.HookSpec,
	dumps []string, cacheFile, cacheHooks string, out *runOutput) (*engine.Tensor, error) {
	type dump struct{ hook, file string }
	var todo []dump
	for _, d := range dumps {
		hook, file, ok := strings.Cut(d, "=")
		if !ok || hook == "" || file == "" {
			return nil, usagef("--dump %q: want HOOK=FILE.npy", d)
		}
		names, err := m.MatchHooks(hook)
		if err != nil {
			return nil, usagef("--dump %q: %w", d, err)
		}
		if len(names) != 1 || names[0] != hook {
			return nil, usagef("--dump %q: name one hook point, not a pattern", d)
		}
		todo = append(todo, dump{hook, file})
	}
	names := transformer.Names()
	for _, d := range todo {
		names = append(names, d.hook)
	}
	if cacheFile != "" {
		names = append(names, cacheHooks)
	}
	logits, captured, err := m.ForwardWithCache(ctx, in, names, ivHooks...)
	if err != nil {
		return nil, inputError(err)
	}
	if cacheFile != "" {
		if err := writeCache(cacheFile, captured, transformer.Names(cacheHooks), m.HookNames()); err != nil {
			return nil, err
		}
	}
	for _, d := range todo {
		t := captured[d.hook]
		shape := t.Shape()
		if in.B == 1 {
			shape = shape[1:]
		}
		if err := npy.SaveFloat32(d.file, t.Host(), shape); err != nil {
			return nil, fmt.Errorf("--dump %s: %w", d.hook, err)
		}
		if out.Dumps == nil {
			out.Dumps = map[string][]int{}
		}
		out.Dumps[d.file] = shape
	}
	return logits, nil
}

// writeCache writes the cached activations the filter names to an .npz,
// batch dimension dropped, entries named after their hooks.
func writeCache(path string, cache transformer.Cache, filter transformer.Filter, order []string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".fx-cache-*")
	if err != nil {
		return fmt.Errorf("--cache: %w", err)
	}
	defer os.Remove(f.Name())
	z := npy.NewNPZWriter(f, true)
	for _, name := range order {
		t, ok := cache[name]
		if !ok || !filter.Match(name) {
			continue
		}
		if err := z.AddFloat32(name, t.Host(), t.Shape()[1:]); err != nil {
			f.Close()
			return fmt.Errorf("--cache %s: %s: %w", path, name, err)
		}
	}
	if err := z.Close(); err != nil {
		f.Close()
		return fmt.Errorf("--cache %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--cache %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// printPrediction prints what a single forward predicts: the next-token
// distribution (GPT-2), the label (BERT classification), the masked tokens
// (BERT MLM) or the hidden state's shape (BertModel).
func printPrediction(w io.Writer, m *transformer.Model, logits *engine.Tensor, out runOutput, asJSON bool) error {
	host := m.Backend.ToHost(logits)
	switch {
	case m.BERT != nil && m.BERT.Head == transformer.HeadSequenceClassification:
		labels := m.BERT.Labels()
		probs := transformer.Probabilities(host[:len(labels)])
		out.Probabilities = map[string]float64{}
		best := 0
		for i, p := range probs {
			out.Probabilities[labels[i]] = p
			if p > probs[best] {
				best = i
			}
		}
		out.Label = labels[best]
		if asJSON {
			return writeJSON(w, out)
		}
		fmt.Fprintln(w, out.Label)
		for i, l := range labels {
			fmt.Fprintf(w, "  %-12s %s\n", l, fmtProb(probs[i]))
		}
		return nil
	case m.BERT != nil && m.BERT.Head == transformer.HeadNone:
		if asJSON {
			return writeJSON(w, out)
		}
		fmt.Fprintf(w, "hidden state %s (use --dump blocks.N.hook_resid_post=FILE.npy)\n", engine.ShapeString(logits.Shape()))
		return nil
	}
	// Token logits [1, T, V]: GPT-2's next token, or BERT's [MASK] positions.
	V := logits.Dim(-1)
	T := len(host) / V
	positions := []int{T - 1}
	if m.BERT != nil {
		positions = m.MaskPositions(out.InputIDs)
	}
	if asJSON {
		return writeJSON(w, out)
	}
	for _, p := range positions {
		probs := transformer.Probabilities(host[p*V : (p+1)*V])
		order := make([]int, V)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(i, j int) bool { return probs[order[i]] > probs[order[j]] })
		fmt.Fprintf(w, "position %d:\n", p)
		for _, id := range order[:min(5, V)] {
			s, _ := m.Tokenizer.Decode([]int{id})
			fmt.Fprintf(w, "  %6d %-16q %s\n", id, s, fmtProb(probs[id]))
		}
	}
	return nil
}

// gpt2EOS returns the tokenizer's end-of-text id, or -1.
func gpt2EOS(m *transformer.Model) int {
	if g, ok := m.Tokenizer.(*tokenizer.GPT2); ok {
		return g.EOT()
	}
	return -1
}

// parseIDs parses "464,3290".
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--tokens %q: %q is not a token id", s, f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// writeJSON writes v indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
