package cf

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Report is CF's analysis of one run: layers and positions ranked by
// anomaly score, each signal's scores alone, and the features that
// deviate most from the baseline.
type Report struct {
	// Bundle is the bundle's directory (empty for a run not from a
	// bundle).
	Bundle string `json:"bundle,omitempty"`
	// Model names the model; ModelType is gpt2 or bert.
	Model     string `json:"model"`
	ModelType string `json:"model_type"`
	// Level is the bundle's record level.
	Level string `json:"level,omitempty"`
	// Source says where the activations came from.
	Source Source `json:"source"`
	// Tokens are the run's tokens at each position (prompt, then the
	// generated tokens fed back), when known.
	Tokens []int `json:"tokens,omitempty"`
	// NumPositions and NumLayers are the run's size.
	NumPositions int `json:"positions"`
	NumLayers    int `json:"layers"`
	// Signals are the signals the scores combine.
	Signals []Signal `json:"signals"`
	// Threshold flags layers and positions whose anomaly reaches it.
	Threshold float64 `json:"threshold"`
	// Score is the run's anomaly score: the highest layer anomaly (a layer
	// against its own benign variability; see CombineCalibrated).
	Score float64 `json:"score"`
	// Flagged lists the flagged layers (anomaly at or above the
	// threshold), by rank.
	Flagged []int `json:"flagged"`
	// Ranking ranks the layers, highest score first.
	Ranking []LayerScore `json:"ranking"`
	// Positions holds each position's score, in position order.
	Positions []PositionScore `json:"position_scores"`
	// Cells[l][p] is layer l's score at position p.
	Cells [][]float64 `json:"cells"`
	// BySignal holds the layer scores of each signal alone, so the report
	// shows what each contributes.
	BySignal []SignalScores `json:"by_signal"`
	// Top lists the largest deviations from the baseline in the blocks.
	Top []Deviation `json:"top_deviations"`
	// Features counts the features measured and scored.
	Features FeatureCounts `json:"features"`
	// Notes explain what was left out and why.
	Notes []string `json:"notes,omitempty"`
}

// LayerScore is one layer's anomaly score.
type LayerScore struct {
	// Layer is the block; Rank its place by Score, from 1.
	Layer int `json:"layer"`
	Rank  int `json:"rank"`
	// Score ranks and flags the layer; Anomaly is the layer against its
	// own benign variability (see CombineCalibrated).
	Score   float64 `json:"score"`
	Anomaly float64 `json:"anomaly"`
	// Position is where the layer scores highest.
	Position int `json:"position"`
	// Flagged is true when the layer's anomaly reaches the threshold.
	Flagged bool `json:"flagged"`
	// Signal is the signal of the layer's largest deviation there.
	Signal Signal `json:"signal"`
}

// PositionScore is one position's scores: its highest layer's.
type PositionScore struct {
	// Position is the sequence position; Token the token there, when
	// known.
	Position int `json:"position"`
	Token    int `json:"token,omitempty"`
	// Score is the position's highest cell, Layer that cell's layer;
	// Anomaly the highest cell against each layer's own benign
	// variability, which flags the position.
	Score   float64 `json:"score"`
	Anomaly float64 `json:"anomaly"`
	Layer   int     `json:"layer"`
	Flagged bool    `json:"flagged"`
}

// SignalScores are the scores of one signal alone.
type SignalScores struct {
	Signal Signal `json:"signal"`
	// Score is the run's anomaly from the signal alone; Layers each
	// layer's score from it alone.
	Score  float64   `json:"score"`
	Layers []float64 `json:"layers"`
	// Features is how many features of the signal were scored.
	Features int `json:"features"`
}

// Deviation is one feature's value at one position against the baseline.
type Deviation struct {
	// Hook, Stat, Signal and Layer identify the feature; Position where it
	// deviates; Value its value there, Median and Scale the baseline's,
	// and Z = (Value - Median)/Scale.
	Hook     string  `json:"hook"`
	Stat     string  `json:"stat"`
	Signal   Signal  `json:"signal"`
	Layer    int     `json:"layer"`
	Position int     `json:"position"`
	Value    float64 `json:"value"`
	Median   float64 `json:"median"`
	Scale    float64 `json:"scale"`
	Z        float64 `json:"z"`
}

// FeatureCounts counts the features of a run.
type FeatureCounts struct {
	// Measured counts the run's features; Scored those scored.
	Measured int `json:"measured"`
	Scored   int `json:"scored"`
	// BySignal counts the scored features of each signal.
	BySignal map[Signal]int `json:"by_signal"`
	// Excluded counts the features of hooks cf.exclude names.
	Excluded int `json:"excluded"`
	// Unknown are measured features the baseline lacks.
	Unknown int `json:"unknown"`
}

// topDeviations is how many deviations a report lists.
const topDeviations = 20

// Analyze measures a run's features and scores them against the baseline
// with the config's settings. The baseline must be of the run's model
// type and sketch settings; the compression settings are the baseline's
// (a config that differs is noted).
func Analyze(run Run, base *Baseline, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	signals, err := cfg.SignalList()
	if err != nil {
		return nil, err
	}
	if run.ModelType != base.Model.Type {
		return nil, fmt.Errorf("cf: the baseline is of a %s model, the run of a %s model", base.Model.Type, run.ModelType)
	}
	rep := &Report{ModelType: run.ModelType, Model: base.Model.Name, Signals: signals, Threshold: cfg.Threshold, Tokens: run.Tokens}
	if k, seed := run.Record.Sketch.K, run.Record.Sketch.Seed; k != base.Sketch.K || seed != base.Sketch.Seed {
		return nil, fmt.Errorf("cf: the run's sketches have k=%d seed=%d, the baseline's k=%d seed=%d: make the baseline with the recording's sketch settings",
			k, seed, base.Sketch.K, base.Sketch.Seed)
	}
	if cfg.Quantize != base.Quantize || cfg.ZstdLevel != base.ZstdLevel || cfg.MinRowBytes != base.MinRowBytes {
		rep.Notes = append(rep.Notes, fmt.Sprintf("compression settings are the baseline's (quantize %s, zstd level %d, min row bytes %d), not the config's",
			base.Quantize, base.ZstdLevel, base.MinRowBytes))
	}
	c, err := NewCompressor(base.Quantize, base.ZstdLevel, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	f, err := extract(run, c, base.MinRowBytes, cfg.Exclude)
	if err != nil {
		return nil, err
	}
	if f.Layers != base.Layers {
		return nil, fmt.Errorf("cf: the run has %d blocks, the baseline's model %d", f.Layers, base.Layers)
	}
	scored := Score(f, base, cfg.Exclude)
	fillReport(rep, f, scored, signals, cfg)
	return rep, nil
}

// fillReport aggregates the scored features into the report.
func fillReport(rep *Report, f *Features, scored *Scored, signals []Signal, cfg Config) {
	rep.NumPositions, rep.NumLayers = f.Positions, scored.Layers
	rep.Features = FeatureCounts{Measured: len(f.Series), Scored: len(scored.Features), Excluded: scored.Excluded,
		Unknown: scored.Unknown, BySignal: map[Signal]int{}}
	for _, sf := range scored.Features {
		rep.Features.BySignal[sf.Signal]++
	}
	for _, sig := range signals {
		if rep.Features.BySignal[sig] == 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("signal %s: no feature to score (%s)", sig, missingWhy(sig)))
		}
	}
	if scored.Unknown > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d measured features have no baseline distribution and are not scored", scored.Unknown))
	}
	all := scored.Aggregate(signals, cfg.Top, cfg.ZClip, cfg.Combine)
	rep.Score = all.Score
	rep.Cells = all.Cells
	for rank, l := range all.Ranking() {
		ls := LayerScore{Layer: l, Rank: rank + 1, Score: all.Layers[l], Anomaly: all.Anomaly[l], Position: all.LayerPos[l],
			Flagged: all.Anomaly[l] >= cfg.Threshold}
		if d := topAt(scored, signals, l, ls.Position, 1); len(d) > 0 {
			ls.Signal = d[0].Signal
		}
		rep.Ranking = append(rep.Ranking, ls)
		if ls.Flagged {
			rep.Flagged = append(rep.Flagged, l)
		}
	}
	if rep.Flagged == nil {
		rep.Flagged = []int{}
	}
	for p, s := range all.Positions {
		ps := PositionScore{Position: p, Score: s, Anomaly: all.PositionAnomaly[p], Flagged: all.PositionAnomaly[p] >= cfg.Threshold}
		for l := range all.Cells {
			if all.Cells[l][p] > all.Cells[ps.Layer][p] {
				ps.Layer = l
			}
		}
		if p < len(rep.Tokens) {
			ps.Token = rep.Tokens[p]
		}
		rep.Positions = append(rep.Positions, ps)
	}
	for _, sig := range AllSignals() {
		one := scored.Aggregate([]Signal{sig}, cfg.Top, cfg.ZClip, cfg.Combine)
		rep.BySignal = append(rep.BySignal, SignalScores{Signal: sig, Score: one.Score, Layers: one.Layers, Features: rep.Features.BySignal[sig]})
	}
	rep.Top = topAt(scored, signals, -1, -1, topDeviations)
}

// missingWhy says why a signal may have no features.
func missingWhy(sig Signal) string {
	if sig == Compression {
		return "no activation of cf.values is stored or replayed, or its rows are shorter than cf.min_row_bytes"
	}
	return "no recorded hook in the blocks outside cf.exclude"
}

// topAt returns the n largest |z| of the signals' features in the blocks,
// at layer l and position p (-1: any), largest first (ties in feature
// order).
func topAt(s *Scored, signals []Signal, l, p, n int) []Deviation {
	out := make([]Deviation, 0, n+1)
	for fi := range s.Features {
		f := &s.Features[fi]
		if f.Layer < 0 || (l >= 0 && f.Layer != l) || !slices.Contains(signals, f.Signal) {
			continue
		}
		for q, z := range f.Z {
			if math.IsNaN(z) || math.IsInf(z, 0) || (p >= 0 && q != p && len(f.Z) > 1) {
				continue
			}
			a := math.Abs(z)
			if len(out) == n && a <= math.Abs(out[n-1].Z) {
				continue
			}
			// Insert after every deviation at least as large.
			k := len(out)
			for k > 0 && math.Abs(out[k-1].Z) < a {
				k--
			}
			out = slices.Insert(out, k, Deviation{Hook: f.Hook, Stat: f.Stat, Signal: f.Signal, Layer: f.Layer, Position: q,
				Value: f.Values[q], Median: f.Median[q], Scale: f.Scale[q], Z: z})
			if len(out) > n {
				out = out[:n]
			}
		}
	}
	return out
}

// Text formats the report for a terminal: the ranked layers, the top
// positions, and the largest deviations.
func (r *Report) Text() string {
	var b strings.Builder
	sigs := make([]string, len(r.Signals))
	for i, s := range r.Signals {
		sigs[i] = string(s)
	}
	if r.Bundle != "" {
		fmt.Fprintf(&b, "bundle     %s (level %s)\n", r.Bundle, r.Level)
	}
	fmt.Fprintf(&b, "model      %s (%s), %d layers, %d positions\n", r.Model, r.ModelType, r.NumLayers, r.NumPositions)
	if len(r.Source.Replayed) > 0 {
		fmt.Fprintf(&b, "replayed   %d hooks on the model; %d sketch hashes match the recording\n", len(r.Source.Replayed), r.Source.Verified)
	}
	fmt.Fprintf(&b, "signals    %s (%d features scored)\n", strings.Join(sigs, "+"), r.Features.Scored)
	fmt.Fprintf(&b, "anomaly    %.2f; layers flagged (anomaly ≥ %.2f): %s\n\n", r.Score, r.Threshold, flaggedText(r.Flagged))
	fmt.Fprintf(&b, "%-5s %-6s %8s %8s %9s  %-12s", "RANK", "LAYER", "SCORE", "ANOMALY", "POSITION", "SIGNAL")
	for _, s := range r.BySignal {
		fmt.Fprintf(&b, " %11s", s.Signal)
	}
	b.WriteString("\n")
	for _, l := range r.Ranking {
		mark := " "
		if l.Flagged {
			mark = "*"
		}
		fmt.Fprintf(&b, "%-5d %-6s %8.2f %8.2f %9d  %-12s", l.Rank, fmt.Sprintf("%d%s", l.Layer, mark), l.Score, l.Anomaly, l.Position, l.Signal)
		for _, s := range r.BySignal {
			fmt.Fprintf(&b, " %11.2f", s.Layers[l.Layer])
		}
		b.WriteString("\n")
	}
	pos := slices.Clone(r.Positions)
	sort.SliceStable(pos, func(a, c int) bool { return pos[a].Score > pos[c].Score })
	if len(pos) > 5 {
		pos = pos[:5]
	}
	b.WriteString("\ntop positions:")
	for _, p := range pos {
		fmt.Fprintf(&b, "  %d (%.2f, layer %d)", p.Position, p.Score, p.Layer)
	}
	b.WriteString("\n\nlargest deviations from the baseline:\n")
	for i, d := range r.Top {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "  %-36s %-7s pos %-4d value %-11.4g median %-11.4g z %+.1f\n", d.Hook, d.Stat, d.Position, d.Value, d.Median, d.Z)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func flaggedText(layers []int) string {
	if len(layers) == 0 {
		return "none"
	}
	parts := make([]string, len(layers))
	for i, l := range layers {
		parts[i] = fmt.Sprint(l)
	}
	return strings.Join(parts, ", ")
}
