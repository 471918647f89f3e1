package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights/npy"
)

// splitIntervention splits "SITE=MODE[:ARG]" at the '=' that follows the
// site's selectors.
func splitIntervention(text string) (site, mode, arg string, err error) {
	from := 0
	if i := strings.IndexByte(text, ']'); i >= 0 {
		from = i
	}
	eq := strings.IndexByte(text[from:], '=')
	if eq < 0 {
		return "", "", "", usagef("--intervene %q: want SITE=MODE[:ARG]", text)
	}
	site, rest := text[:from+eq], text[from+eq+1:]
	mode, arg, _ = strings.Cut(rest, ":")
	return site, mode, arg, nil
}

// parseIntervention turns one --intervene flag into interventions (one per
// hook point its site names), loading the files it refers to.
func parseIntervention(ctx context.Context, m *transformer.Model, text string) ([]transformer.Intervention, error) {
	siteText, mode, arg, err := splitIntervention(text)
	if err != nil {
		return nil, err
	}
	sites, err := m.ParseSites(siteText)
	if err != nil {
		return nil, usagef("--intervene %q: %w", text, err)
	}
	var out []transformer.Intervention
	for _, s := range sites {
		iv := transformer.Intervention{Site: s, Mode: transformer.Mode(mode), Row: -1}
		switch iv.Mode {
		case transformer.Zero:
			if arg != "" {
				return nil, usagef("--intervene %q: zero takes no argument", text)
			}
		case transformer.Scale:
			if iv.Value, err = parseValue(arg); err != nil {
				return nil, usagef("--intervene %q: scale:%s: %w", text, arg, err)
			}
		case transformer.Set, transformer.Add:
			if strings.HasSuffix(arg, ".npy") {
				iv.Source, err = loadNPY(arg)
			} else {
				iv.Value, err = parseValue(arg)
			}
			if err != nil {
				return nil, usagef("--intervene %q: %s:%s: %w", text, mode, arg, err)
			}
		case transformer.Patch:
			if iv.Source, err = loadPatchSource(arg, s.Hook); err != nil {
				return nil, usagef("--intervene %q: %w", text, err)
			}
		case transformer.Mean:
			corpus, err := readPrompts(m, arg)
			if err != nil {
				return nil, usagef("--intervene %q: %w", text, err)
			}
			means, err := m.MeanActivations(ctx, corpus, transformer.Names(s.Hook))
			if err != nil {
				return nil, fmt.Errorf("--intervene %q: baseline %s: %w", text, arg, inputError(err))
			}
			iv.Source = means[s.Hook]
		default:
			return nil, usagef("--intervene %q: unknown mode %q (zero, mean:PROMPTS, patch:FILE.npz, set:V|FILE.npy, add:V|FILE.npy, scale:V)", text, mode)
		}
		out = append(out, iv)
	}
	return out, nil
}

func parseValue(s string) (float32, error) {
	if s == "" {
		return 0, fmt.Errorf("missing value")
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return float32(v), nil
}

// loadNPY reads a float .npy file as a host tensor.
func loadNPY(path string) (*engine.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := npy.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := a.Float32()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return engine.NewHost(data, a.Shape...), nil
}

// loadPatchSource reads the activation to patch in: FILE.npy, or the entry
// named after the hook in FILE.npz (as fx run --dump and RunWithCache
// write them).
func loadPatchSource(arg, hook string) (*engine.Tensor, error) {
	switch filepath.Ext(arg) {
	case ".npy":
		return loadNPY(arg)
	case ".npz":
		arrays, err := npy.ReadNPZ(arg)
		if err != nil {
			return nil, err
		}
		a, ok := arrays[hook]
		if !ok {
			keys := make([]string, 0, len(arrays))
			for k := range arrays {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("%s has no entry %q (it has %s)", arg, hook, strings.Join(keys, ", "))
		}
		data, err := a.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", arg, hook, err)
		}
		return engine.NewHost(data, a.Shape...), nil
	}
	return nil, fmt.Errorf("patch:%s: want a .npz (entry named after the hook) or .npy file", arg)
}

// readPrompts reads a baseline corpus: .jsonl lines {"text": ...} or
// {"tokens": [...]}, or a text file with one prompt per line.
func readPrompts(m *transformer.Model, path string) ([][]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var corpus [][]int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		if strings.HasSuffix(path, ".jsonl") {
			var rec struct {
				Text   *string `json:"text"`
				Tokens []int   `json:"tokens"`
			}
			if err := json.Unmarshal([]byte(text), &rec); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			switch {
			case rec.Tokens != nil:
				corpus = append(corpus, rec.Tokens)
			case rec.Text != nil:
				corpus = append(corpus, m.Encode(*rec.Text))
			default:
				return nil, fmt.Errorf(`%s:%d: want {"text": ...} or {"tokens": [...]}`, path, line)
			}
			continue
		}
		corpus = append(corpus, m.Encode(text))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(corpus) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return corpus, nil
}
