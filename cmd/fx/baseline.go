package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/modelforensics/fx"
	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

// cmdBaseline is "fx baseline MODEL --prompts benign.jsonl --out F.fxbase":
// CF's per-hook distributions over a corpus of benign prompts.
func cmdBaseline(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("baseline", stderr)
	promptsPath := fs.String("prompts", "", "benign prompts: .jsonl lines {\"text\": ...} or {\"tokens\": [...]} (lines of kind \"failing\" are skipped), or one prompt per line")
	out := fs.String("out", "", "baseline file to write (.fxbase)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cf section; recording.sketch must match the bundles to score)")
	maxNew := fs.Int("max-new-tokens", -1, "tokens each GPT-2 prompt generates, as the incidents did (default: the config's cf.baseline.max_new_tokens, 8)")
	quantize := fs.String("quantize", "", "int8 or fp16 (default: the config's cf.quantize, int8)")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx baseline MODEL --prompts benign.jsonl --out baseline.fxbase [flags]")
		fmt.Fprintln(stderr, "Runs every benign prompt as an incident is recorded and writes CF's distribution of every feature.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	name, err := oneModelArg(pos, true)
	if err != nil {
		return err
	}
	if *promptsPath == "" {
		return usagef("--prompts FILE is required (benign prompts, .jsonl or one per line)")
	}
	if *out == "" {
		return usagef("--out FILE is required (the .fxbase to write)")
	}
	cfg, rc, err := loadCFConfig(*config)
	if err != nil {
		return err
	}
	if *maxNew >= 0 {
		cfg.Baseline.MaxNewTokens = *maxNew
	}
	if *quantize != "" {
		cfg.Quantize = *quantize
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%w (flags --quantize, --max-new-tokens)", err)
	}
	b, err := backend(*device)
	if err != nil {
		return err
	}
	if name == fx.DefaultModelName {
		name = ""
	}
	m, err := loadModel(name, b)
	if err != nil {
		return err
	}
	defer m.Close()
	prompts, skipped, err := readBaselinePrompts(m, *promptsPath)
	if err != nil {
		return usageError{err}
	}
	id, err := identifyModel(name, m)
	if err != nil {
		return err
	}
	o := cf.BaselineOptions{Config: cfg, Model: id, FxVersion: recorderVersion(m),
		Sketch: bundle.Sketch{K: rc.Recording.Sketch.K, Seed: rc.Recording.Sketch.Seed, Hash: bundle.HashXXH64}}
	bar := newProgress(stderr, *quiet)
	defer bar.done()
	o.Log = bar.log()
	base, err := cf.BuildBaseline(context.Background(), m, prompts, o)
	bar.done()
	if err != nil {
		return inputError(err)
	}
	if err := base.WriteFile(*out); err != nil {
		return err
	}
	summary := baselineSummary{Out: *out, Model: id.Name, Prompts: base.Prompts, Skipped: skipped, Positions: base.Positions,
		Features: len(base.Features), Cutoff: base.Cutoff, Quantize: base.Quantize, ZstdLevel: base.ZstdLevel}
	if *asJSON {
		return writeJSON(stdout, summary)
	}
	classes := "every position shares one distribution (fewer prompts than cf.baseline.min_samples)"
	if summary.Cutoff > 0 {
		classes = fmt.Sprintf("positions 0-%d each with their own distribution, later ones sharing one", summary.Cutoff-1)
	}
	fmt.Fprintf(stdout, "wrote %s: %d benign prompts (%d positions), %d features; %s\n",
		*out, summary.Prompts, summary.Positions, summary.Features, classes)
	if skipped > 0 {
		fmt.Fprintf(stdout, "skipped %d prompts of kind \"failing\"\n", skipped)
	}
	return nil
}

// baselineSummary is fx baseline --json's output.
type baselineSummary struct {
	Out       string `json:"out"`
	Model     string `json:"model"`
	Prompts   int    `json:"prompts"`
	Skipped   int    `json:"skipped_failing"`
	Positions int    `json:"positions"`
	Features  int    `json:"features"`
	Cutoff    int    `json:"cutoff"`
	Quantize  string `json:"quantize"`
	ZstdLevel int    `json:"zstd_level"`
}

// recorderVersion returns the fx version stamped into bundles.
func recorderVersion(m *transformer.Model) string {
	return recorder.RuntimeInfo(m.Backend).FxVersion
}

// readBaselinePrompts reads a benign corpus: .jsonl lines {"text": ...} or
// {"tokens": [...]}, with an optional "kind" (lines of kind "failing" are
// skipped and counted), or a text file with one prompt per line.
func readBaselinePrompts(m *transformer.Model, path string) ([][]int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--prompts: %w", err)
	}
	defer f.Close()
	var corpus [][]int
	skipped := 0
	jsonl := strings.HasSuffix(path, ".jsonl") || strings.HasSuffix(path, ".json")
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if !jsonl {
			corpus = append(corpus, m.Encode(string(text)))
			continue
		}
		var rec struct {
			Text   *string `json:"text"`
			Tokens []int   `json:"tokens"`
			Kind   string  `json:"kind"`
		}
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		switch {
		case rec.Kind == "failing":
			skipped++
		case rec.Kind != "" && rec.Kind != "benign":
			return nil, 0, fmt.Errorf("%s:%d: kind %q, want benign or failing", path, line, rec.Kind)
		case rec.Tokens != nil:
			corpus = append(corpus, rec.Tokens)
		case rec.Text != nil:
			corpus = append(corpus, m.Encode(*rec.Text))
		default:
			return nil, 0, fmt.Errorf(`%s:%d: want {"text": ...} or {"tokens": [...]}`, path, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if len(corpus) == 0 {
		return nil, 0, fmt.Errorf("%s: no benign prompts", path)
	}
	for i, ids := range corpus {
		if len(ids) == 0 {
			return nil, 0, fmt.Errorf("%s: prompt %d is empty", path, i+1)
		}
	}
	return corpus, skipped, nil
}

// loadCFConfig returns CF's settings (the cf section of
// configs/default.yaml, then of the --config file, over cf's defaults) and
// the other sections (recording, bundle).
func loadCFConfig(path string) (cf.Config, *configs.Config, error) {
	docs := []cf.NamedYAML{{Name: "configs/default.yaml", Data: configs.DefaultYAML()}}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cf.Config{}, nil, usagef("--config: %w", err)
		}
		docs = append(docs, cf.NamedYAML{Name: path, Data: data})
	}
	cfg, err := cf.LoadConfig(docs...)
	if err != nil {
		return cf.Config{}, nil, usageError{err}
	}
	rc, err := configs.Load(path)
	if err != nil {
		return cf.Config{}, nil, usageError{err}
	}
	return cfg, rc, nil
}

// errNoBaseline is returned when fx analyze cf gets no --baseline.
var errNoBaseline = errors.New("--baseline FILE is required (make one with fx baseline MODEL --prompts benign.jsonl --out F.fxbase)")
