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
	// Hook, Stat and Layer identify the feature (see Series); Signal is
	// the signal its statistic belongs to.
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
	// Positions and Layers are the run's size.
	Positions int
	Layers    int
	// Features holds the scored features.
	Features []ScoredFeature
	// Excluded counts features excluded by the config; Unknown those the
	// baseline has no distribution for; Outside those of hooks outside
	// the blocks, which no score counts.
	Excluded, Unknown, Outside int
	// Calibrated is true when the baseline's calibration applies (it was
	// made with the same exclude patterns).
	Calibrated bool

	calib   map[Signal]Calibration
	calTop  int
	calClip float64
}

// scaleFloor is the smallest scale a z-score divides by: a feature that is
// constant over the baseline still gets finite z-scores.
func scaleFloor(median float64) float64 { return 1e-3*math.Abs(median) + 1e-6 }

// Score computes the robust z-score of every feature of the blocks against
// the baseline; features whose hook matches an exclude pattern, that the
// baseline lacks, or outside the blocks are counted and left out.
func Score(f *Features, base *Baseline, exclude []string) *Scored {
	s := &Scored{Positions: f.Positions, Layers: max(f.Layers, base.Layers)}
	excluded := map[string]bool{}
	for i := range f.Series {
		sr := &f.Series[i]
		if sr.Layer < 0 {
			// Hooks outside the blocks never count towards a score.
			s.Outside++
			continue
		}
		ex, ok := excluded[sr.Hook]
		if !ok {
			ex = matchAny(exclude, sr.Hook)
			excluded[sr.Hook] = ex
		}
		if ex {
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
	if len(base.Calibration) > 0 && slices.Equal(base.Scoring.Exclude, exclude) {
		s.Calibrated = true
		s.calib = map[Signal]Calibration{}
		for _, c := range base.Calibration {
			s.calib[c.Signal] = c
		}
		s.calTop, s.calClip = base.Scoring.Top, base.Scoring.ZClip
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
	// Signals are the signals combined.
	Signals []Signal
	// Cells[l][p] is layer l's score at position p (see Aggregate).
	Cells [][]float64
	// Layers[l] is layer l's score: its largest cell; LayerPos[l] the
	// position of that cell.
	Layers   []float64
	LayerPos []int
	// Positions[p] is position p's score: its largest cell over layers.
	Positions []float64
	// Anomaly[l] is layer l's score against its own benign variability
	// (CombineCalibrated; otherwise Layers[l]); PositionAnomaly[p] the
	// largest of position p's cells so calibrated (otherwise
	// Positions[p]). They flag layers and positions.
	Anomaly, PositionAnomaly []float64
	// Score is the run's anomaly score: its largest Anomaly.
	Score float64
	// Calibrated is true when the scores are calibrated against the
	// baseline's runs (see CombineCalibrated).
	Calibrated bool
}

// Ways of combining signals.
const (
	// CombineCalibrated scores each signal's cell alone (the mean of its
	// top |z|) and calibrates it against the same signal's layer scores
	// over the baseline's own runs, as a robust z of log(1 + score) (below
	// 0 counts 0); a cell takes its most unusual signal. Cells, layer and
	// position scores (what ranks and flags layers) are calibrated against
	// every layer's benign scores pooled, which puts the signals on one
	// scale without discounting a layer; the run's score is the largest
	// layer score calibrated against that layer's own benign scores, so
	// that a layer noisy on benign runs raises no alarm. Without a
	// calibration (a baseline made with other exclude patterns, top or
	// z_clip) it falls back to CombineGeometric.
	CombineCalibrated = "calibrated"
	// CombineGeometric scores each signal's cell alone and combines the
	// signals by the geometric mean of 1 + score, minus 1.
	CombineGeometric = "geometric"
	// CombinePooled averages the top |z| of all the signals' features
	// together: the signal with the heaviest tails dominates.
	CombinePooled = "pooled"
)

// signalCells returns, per layer and position, the mean of the top largest
// |z| (each clipped at clip) of the group's features of the layer at the
// position; nil when the group has no scored feature in the blocks.
func (s *Scored) signalCells(group []Signal, top int, clip float64) [][]float64 {
	L, P := s.Layers, s.Positions
	byLayer := make([][]*ScoredFeature, L)
	n := 0
	for i := range s.Features {
		f := &s.Features[i]
		if f.Layer < 0 || f.Layer >= L || !slices.Contains(group, f.Signal) {
			continue
		}
		byLayer[f.Layer] = append(byLayer[f.Layer], f)
		n++
	}
	if n == 0 {
		return nil
	}
	zs := make([]float64, 0, 64)
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
	return c
}

// Aggregate combines the z-scores of the features of the given signals
// into cell, layer, position and run scores as combine says
// (CombineCalibrated, CombineGeometric or CombinePooled). A signal's cell
// is the mean of the top largest |z| (each clipped at clip) of its
// features of the layer at the position. Signals with no scored feature
// are left out; features outside the blocks do not count.
func (s *Scored) Aggregate(signals []Signal, top int, clip float64, combine string) *Scores {
	L, P := s.Layers, s.Positions
	out := &Scores{Signals: slices.Clone(signals), Cells: make([][]float64, L), Layers: make([]float64, L),
		LayerPos: make([]int, L), Positions: make([]float64, P), Anomaly: make([]float64, L), PositionAnomaly: make([]float64, P)}
	calibrated := combine == CombineCalibrated && s.calib != nil && top == s.calTop && clip == s.calClip
	if combine == CombineCalibrated && !calibrated {
		combine = CombineGeometric
	}
	out.Calibrated = calibrated
	type signalCells struct {
		raw [][]float64
		cal Calibration
	}
	var cells []signalCells
	if combine == CombinePooled {
		if c := s.signalCells(signals, top, clip); c != nil {
			cells = append(cells, signalCells{raw: c})
		}
	} else {
		for _, sig := range signals {
			c := s.signalCells([]Signal{sig}, top, clip)
			if c == nil {
				continue
			}
			cal, ok := s.calib[sig]
			if calibrated && (!ok || len(cal.Layers) != L) {
				continue
			}
			cells = append(cells, signalCells{raw: c, cal: cal})
		}
	}
	calZ := func(d Dist, x float64) float64 { return max(0, d.Z(math.Log1p(x), scaleFloor(d.Median))) }
	for l := range L {
		out.Cells[l] = make([]float64, P)
		for p := range P {
			switch {
			case len(cells) == 0:
			case calibrated:
				var cell, anom float64
				for _, c := range cells {
					cell = max(cell, calZ(c.cal.All, c.raw[l][p]))
					anom = max(anom, calZ(c.cal.Layers[l], c.raw[l][p]))
				}
				out.Cells[l][p] = cell
				out.Anomaly[l] = max(out.Anomaly[l], anom)
				out.PositionAnomaly[p] = max(out.PositionAnomaly[p], anom)
			case len(cells) == 1:
				out.Cells[l][p] = cells[0].raw[l][p]
			default:
				logSum := 0.0
				for _, c := range cells {
					logSum += math.Log1p(c.raw[l][p])
				}
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
		if !calibrated {
			out.Anomaly[l] = out.Layers[l]
		}
		out.Score = max(out.Score, out.Anomaly[l])
	}
	for p := range P {
		for l := range L {
			out.Positions[p] = max(out.Positions[p], out.Cells[l][p])
		}
		if !calibrated {
			out.PositionAnomaly[p] = out.Positions[p]
		}
	}
	return out
}

// topMean returns the mean of the n largest values of xs (all of them when
// fewer), 0 for none.
func topMean(xs []float64, n int) float64 {
	if len(xs) == 0 || n < 1 {
		return 0
	}
	n = min(n, len(xs))
	var buf [8]float64
	top := buf[:0]
	if n > len(buf) {
		top = make([]float64, 0, n)
	}
	for _, x := range xs {
		if len(top) == n && x <= top[n-1] {
			continue
		}
		i := len(top)
		if i < n {
			top = append(top, x)
		} else {
			i = n - 1
		}
		for i > 0 && top[i-1] < x {
			top[i] = top[i-1]
			i--
		}
		top[i] = x
	}
	sum := 0.0
	for _, x := range top {
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
