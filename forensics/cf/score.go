package cf

import (
	"math"
	"path"
	"slices"
	"sort"
)

// ScoredFeature is one feature of a run with its robust z-score at every
// position against the baseline.
type ScoredFeature struct {
	Hook   string
	Stat   string
	Layer  int
	Signal Signal
	// Values are the measured values; Median and Scale the baseline's at
	// each position's class; Z = (Value - Median)/Scale (NaN where the
	// value is undefined).
	Values, Median, Scale, Z []float64
}

// Scored is a run's features scored against a baseline.
type Scored struct {
	Positions int
	Layers    int
	Features  []ScoredFeature
	// Excluded counts features excluded by the config; Unknown those the
	// baseline has no distribution for.
	Excluded, Unknown int
}

// scaleFloor is the smallest scale a z-score divides by: a feature that is
// constant over the baseline still gets finite z-scores.
func scaleFloor(median float64) float64 { return 1e-3*math.Abs(median) + 1e-6 }

// Score computes every feature's robust z-score against the baseline;
// features whose hook matches an exclude pattern, or that the baseline
// lacks, are counted and left out.
func Score(f *Features, base *Baseline, exclude []string) *Scored {
	s := &Scored{Positions: f.Positions, Layers: max(f.Layers, base.Layers)}
	for i := range f.Series {
		sr := &f.Series[i]
		if matchAny(exclude, sr.Hook) {
			s.Excluded++
			continue
		}
		fd, ok := base.Feature(sr.Key())
		if !ok {
			s.Unknown++
			continue
		}
		n := len(sr.Values)
		sf := ScoredFeature{Hook: sr.Hook, Stat: sr.Stat, Layer: sr.Layer, Signal: SignalOf(sr.Stat), Values: sr.Values,
			Median: make([]float64, n), Scale: make([]float64, n), Z: make([]float64, n)}
		whole := n == 1 && f.Positions > 1
		for p, x := range sr.Values {
			d, ok := fd.Dist(base, p, f.Positions, whole)
			if !ok {
				sf.Median[p], sf.Scale[p], sf.Z[p] = nan, nan, nan
				continue
			}
			floor := scaleFloor(d.Median)
			sf.Median[p], sf.Scale[p], sf.Z[p] = d.Median, d.Scale(floor), d.Z(x, floor)
		}
		s.Features = append(s.Features, sf)
	}
	return s
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Scores are the anomaly scores of a run from some signals.
type Scores struct {
	Signals []Signal
	// Cells[l][p] is layer l's score at position p: the mean of the top
	// largest |z| (each clipped) of the layer's features there.
	Cells [][]float64
	// Layers[l] is layer l's score: its largest cell; LayerPos[l] the
	// position of that cell.
	Layers   []float64
	LayerPos []int
	// Positions[p] is position p's score: its largest cell over layers.
	Positions []float64
	// Score is the run's anomaly score: its largest layer score.
	Score float64
}

// Ways of combining signals.
const (
	// CombineGeometric scores each signal's cell alone (the mean of its top
	// |z|) and combines the signals by the geometric mean of 1 + score,
	// minus 1: every signal has an equal voice, whatever its tails.
	CombineGeometric = "geometric"
	// CombinePooled averages the top |z| of all the signals' features
	// together: the signal with the heaviest tails dominates.
	CombinePooled = "pooled"
)

// Aggregate combines the z-scores of the features of the given signals
// into cell, layer, position and run scores. A signal's cell is the mean
// of the top largest |z| (each clipped at clip) of the signal's features
// of the layer at the position; the signals' cells are combined as
// combine says (CombineGeometric or CombinePooled). Signals with no
// scored feature are left out; features outside the blocks do not count.
func (s *Scored) Aggregate(signals []Signal, top int, clip float64, combine string) *Scores {
	L, P := s.Layers, s.Positions
	out := &Scores{Signals: slices.Clone(signals), Cells: make([][]float64, L), Layers: make([]float64, L),
		LayerPos: make([]int, L), Positions: make([]float64, P)}
	groups := [][]Signal{}
	if combine == CombinePooled {
		groups = append(groups, signals)
	} else {
		for _, sig := range signals {
			groups = append(groups, []Signal{sig})
		}
	}
	var cells [][][]float64 // per group with features: [layer][position]
	zs := make([]float64, 0, 64)
	for _, g := range groups {
		byLayer := make([][]*ScoredFeature, L)
		n := 0
		for i := range s.Features {
			f := &s.Features[i]
			if f.Layer < 0 || f.Layer >= L || !slices.Contains(g, f.Signal) {
				continue
			}
			byLayer[f.Layer] = append(byLayer[f.Layer], f)
			n++
		}
		if n == 0 {
			continue
		}
		c := make([][]float64, L)
		for l := range L {
			c[l] = make([]float64, P)
			for p := range P {
				zs = zs[:0]
				for _, f := range byLayer[l] {
					q := p
					if len(f.Z) == 1 {
						q = 0
					}
					if q >= len(f.Z) || math.IsNaN(f.Z[q]) {
						continue
					}
					zs = append(zs, min(math.Abs(f.Z[q]), clip))
				}
				c[l][p] = topMean(zs, top)
			}
		}
		cells = append(cells, c)
	}
	for l := range L {
		out.Cells[l] = make([]float64, P)
		for p := range P {
			if len(cells) == 1 {
				out.Cells[l][p] = cells[0][l][p]
				continue
			}
			logSum := 0.0
			for _, c := range cells {
				logSum += math.Log1p(c[l][p])
			}
			if len(cells) > 0 {
				out.Cells[l][p] = math.Expm1(logSum / float64(len(cells)))
			}
		}
		best := 0
		for p := range P {
			if out.Cells[l][p] > out.Cells[l][best] {
				best = p
			}
		}
		if P > 0 {
			out.Layers[l], out.LayerPos[l] = out.Cells[l][best], best
		}
		out.Score = max(out.Score, out.Layers[l])
	}
	for p := range P {
		for l := range L {
			out.Positions[p] = max(out.Positions[p], out.Cells[l][p])
		}
	}
	return out
}

// topMean returns the mean of the n largest values of xs (all of them when
// fewer), 0 for none. It reorders xs.
func topMean(xs []float64, n int) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(xs)))
	n = min(n, len(xs))
	sum := 0.0
	for _, x := range xs[:n] {
		sum += x
	}
	return sum / float64(n)
}

// Ranking returns the layers ordered by score, highest first (ties by
// layer index).
func (s *Scores) Ranking() []int {
	order := make([]int, len(s.Layers))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return s.Layers[order[a]] > s.Layers[order[b]] })
	return order
}

// Rank returns the rank (1 = highest) of the best-ranked of the given
// layers, counting ties against them: 1 + the number of layers scoring
// higher + the number of layers not given that score the same. It is 0
// when no layer is given.
func (s *Scores) Rank(layers []int) int {
	best := 0
	for _, l := range layers {
		if l < 0 || l >= len(s.Layers) {
			continue
		}
		r := 1
		for m, v := range s.Layers {
			if m != l && (v > s.Layers[l] || (v == s.Layers[l] && !slices.Contains(layers, m))) {
				r++
			}
		}
		if best == 0 || r < best {
			best = r
		}
	}
	return best
}
