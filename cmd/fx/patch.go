package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/modelforensics/fx/transformer"
)

func cmdPatch(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("patch", stderr)
	clean := fs.String("clean", "", "the clean prompt")
	corrupt := fs.String("corrupt", "", "the corrupted prompt (same number of tokens)")
	metricText := fs.String("metric", "", `"logit-diff: A, B" (next token), "logprob: A", or "margin: LABEL, LABEL" (classifier)`)
	var sites listFlag
	fs.Var(&sites, "sites", `sites to sweep, e.g. 'blocks.*.attn.hook_z[head=*]' (repeatable; "*" selectors are swept one index at a time)`)
	outFile := fs.String("out", "", "write the sweep as JSON to this file (default: standard output)")
	pngFile := fs.String("png", "", "write a heatmap of the normalized metric (layer × site) to this PNG")
	batch := fs.Int("batch", 16, "intervention sets per batched forward")
	device := fs.String("device", "auto", "auto, cpu, cuda, cuda:N; -tf32 or -bf16 for TF32 or BF16 tensor-core matmuls (cuda-tf32, cuda-bf16)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx patch MODEL --clean TEXT --corrupt TEXT --metric METRIC --sites SITES [flags]")
		fmt.Fprintln(stderr, "Activation patching (denoising): each site of the corrupt run is patched from the clean run.")
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
	if *clean == "" || *corrupt == "" || *metricText == "" || len(sites) == 0 {
		return usagef("--clean, --corrupt, --metric and --sites are required")
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
	cleanIDs, corruptIDs := m.Encode(*clean), m.Encode(*corrupt)
	if len(cleanIDs) != len(corruptIDs) {
		return usagef("--clean has %d tokens and --corrupt %d; patching needs equal lengths", len(cleanIDs), len(corruptIDs))
	}
	metric, err := parseMetric(m, *metricText)
	if err != nil {
		return err
	}
	var all []transformer.Site
	for _, p := range sites {
		s, err := m.ExpandSweep(p, len(cleanIDs))
		if err != nil {
			return usagef("--sites %q: %w", p, err)
		}
		all = append(all, s...)
	}
	sweep, err := m.PatchSweep(context.Background(), cleanIDs, corruptIDs, all, metric, *batch)
	if err != nil {
		return inputError(err)
	}
	if *pngFile != "" {
		if err := heatmap(*pngFile, sweep); err != nil {
			return err
		}
	}
	w := stdout
	if *outFile != "" {
		f, err := os.Create(*outFile)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return writeJSON(w, sweep)
}

// parseMetric parses --metric. Token names are looked up with a leading
// space first (" Mary", as a next-token prediction needs), then as given;
// "#1234" names a token id.
func parseMetric(m *transformer.Model, text string) (transformer.Metric, error) {
	kind, rest, ok := strings.Cut(text, ":")
	if !ok {
		return transformer.Metric{}, usagef("--metric %q: want KIND: ARGS", text)
	}
	var args []string
	for _, a := range strings.Split(rest, ",") {
		if a = strings.TrimSpace(a); a != "" {
			args = append(args, a)
		}
	}
	want := map[string]int{"logit-diff": 2, "logprob": 1, "margin": 2}
	n, known := want[strings.TrimSpace(kind)]
	if !known {
		return transformer.Metric{}, usagef("--metric %q: unknown kind %q (logit-diff, logprob, margin)", text, kind)
	}
	if len(args) != n {
		return transformer.Metric{}, usagef("--metric %q: %s takes %d arguments", text, kind, n)
	}
	ids := make([]int, n)
	for i, a := range args {
		var err error
		if strings.TrimSpace(kind) == "margin" {
			ids[i], err = labelIndex(m, a)
		} else {
			ids[i], err = singleToken(m, a)
		}
		if err != nil {
			return transformer.Metric{}, usagef("--metric %q: %w", text, err)
		}
	}
	switch strings.TrimSpace(kind) {
	case "logit-diff":
		return transformer.LogitDiff(ids[0], ids[1]), nil
	case "logprob":
		return transformer.LogProb(ids[0]), nil
	}
	return transformer.ClassMargin(ids[0], ids[1]), nil
}

func singleToken(m *transformer.Model, word string) (int, error) {
	if id, ok := strings.CutPrefix(word, "#"); ok {
		v, err := strconv.Atoi(id)
		if err != nil || v < 0 || v >= m.Config.VocabSize {
			return 0, fmt.Errorf("token %q is not an id below %d", word, m.Config.VocabSize)
		}
		return v, nil
	}
	for _, w := range []string{" " + word, word} {
		if ids := m.Tokenizer.Encode(w); len(ids) == 1 {
			return ids[0], nil
		}
	}
	return 0, fmt.Errorf("%q is not a single token (use #ID)", word)
}

func labelIndex(m *transformer.Model, label string) (int, error) {
	if m.BERT == nil {
		return 0, fmt.Errorf("margin needs a classifier")
	}
	for i, l := range m.BERT.Labels() {
		if strings.EqualFold(l, label) || strconv.Itoa(i) == label {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no label %q (labels: %s)", label, strings.Join(m.BERT.Labels(), ", "))
}

// sweepGrid lays a sweep out as layers (rows) × sites within a layer
// (columns) for the heatmap.
type sweepGrid struct {
	z          [][]float64
	minZ, maxZ float64
}

var blockIndex = regexp.MustCompile(`^blocks\.(\d+)\.`)

func newSweepGrid(sw *transformer.Sweep) *sweepGrid {
	g := &sweepGrid{}
	for _, r := range sw.Results {
		layer := 0
		if mm := blockIndex.FindStringSubmatch(r.Site); mm != nil {
			layer, _ = strconv.Atoi(mm[1])
		}
		for len(g.z) <= layer {
			g.z = append(g.z, nil)
		}
		g.z[layer] = append(g.z[layer], r.Normalized)
		g.minZ, g.maxZ = min(g.minZ, r.Normalized), max(g.maxZ, r.Normalized)
	}
	return g
}

func (g *sweepGrid) Dims() (c, r int) {
	for _, row := range g.z {
		c = max(c, len(row))
	}
	return c, len(g.z)
}

func (g *sweepGrid) Z(c, r int) float64 {
	if c < len(g.z[r]) {
		return g.z[r][c]
	}
	return 0
}
func (g *sweepGrid) X(c int) float64 { return float64(c) }
func (g *sweepGrid) Y(r int) float64 { return float64(r) }

// heatmap writes the sweep's normalized metric as a layer × site PNG.
func heatmap(path string, sw *transformer.Sweep) error {
	g := newSweepGrid(sw)
	p := plot.New()
	p.Title.Text = "activation patching: " + sw.Metric + " (normalized)"
	p.X.Label.Text = "site within layer (head or position)"
	p.Y.Label.Text = "layer"
	pal := moreland.SmoothBlueRed()
	lim := max(-g.minZ, g.maxZ, 1e-9)
	pal.SetMin(-lim)
	pal.SetMax(lim)
	p.X.Tick.Marker = integerTicks{}
	p.Y.Tick.Marker = integerTicks{}
	hm := plotter.NewHeatMap(g, pal.Palette(255))
	hm.Min, hm.Max = -lim, lim
	p.Add(hm)
	if err := p.Save(8*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("--png %s: %w", path, err)
	}
	return nil
}

// integerTicks labels every integer of an axis: layers, heads, positions.
type integerTicks struct{}

// Ticks returns a tick at each integer in [lo, hi].
func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	step := max(1, int((hi-lo)/24))
	for v := int(math.Ceil(lo)); float64(v) <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: strconv.Itoa(v)})
	}
	return ticks
}
