package cca

import (
	"fmt"
	"math"
	"slices"

	"github.com/modelforensics/fx/transformer"
)

// Metric kinds. Every failure metric is positive while the failure is
// present and at most 0 once it is corrected, so "the failure flips" is
// "the metric drops to 0 or below" whatever the detector.
const (
	// KindTokenMargin is the smallest, over the failing generation steps,
	// of the failing token's logit minus the best other token's (GPT-2,
	// "contains" detectors: prompt injection). The failure needs every one
	// of its tokens, so breaking any step corrects it.
	KindTokenMargin = "token-margin"
	// KindLexiconMargin is the largest, over the generation steps up to
	// the failing one, of the best lexicon token's log-probability minus
	// the best other token's (GPT-2, "lexicon" detectors: toxic
	// generation); log-probabilities at one step differ as logits do.
	KindLexiconMargin = "lexicon-margin"
	// KindLexiconPath is the margin of greedy decoding reaching a lexicon
	// token along the recorded generation (GPT-2, "lexicon" detectors:
	// toxic generation): the largest, over the steps up to the first
	// lexicon token, of that step's lexicon margin (as KindLexiconMargin)
	// capped by the smallest margin of the recorded tokens before it
	// (the recorded token's logit minus the best other's). Generation
	// reaches a step only while every earlier recorded token stays the
	// greedy choice, so a fix may break the path early (the tokens that
	// lead to the lexicon word) instead of the last step. Teacher forcing
	// feeds the recorded tokens back whatever the fix, so
	// KindLexiconMargin alone cannot see such a fix.
	KindLexiconPath = "lexicon-path-margin"
	// KindClassMargin is the classifier's logit of the failing label
	// minus that of the expected one (BERT, "label-flip": sentiment).
	KindClassMargin = "class-margin"
)

// MetricSpec defines a failure metric over the model's output on Tokens,
// completely enough to recompute it from a certificate.
type MetricSpec struct {
	// Kind is KindTokenMargin, KindLexiconMargin or KindClassMargin.
	Kind string `json:"kind"`
	// Detector is the detector the metric stands for ("contains:HACKED",
	// "lexicon:lexicon.txt", "label-flip:TRIGGER").
	Detector string `json:"detector"`
	// Description says what the metric measures, in words.
	Description string `json:"description"`
	// Positions are the output positions read (the logits that predict
	// each failing step), for the GPT-2 kinds.
	Positions []int `json:"positions,omitempty"`
	// Targets are the failing tokens at Positions (KindTokenMargin), or
	// the recorded tokens at Positions (KindLexiconPath).
	Targets []int `json:"targets,omitempty"`
	// Lexicon holds the token ids of the lexicon (KindLexiconMargin,
	// KindLexiconPath).
	Lexicon []int `json:"lexicon,omitempty"`
	// Positive and Negative are the failing and the expected label's
	// indices (KindClassMargin).
	Positive int `json:"positive,omitempty"`
	Negative int `json:"negative,omitempty"`
	// Paths are more generation paths a KindLexiconPath metric follows
	// besides the recorded one: free generations, replayed with an
	// earlier fix set, on which the detector still fired. The metric is
	// the largest of the path margins, each computed as the recorded one
	// on its own tokens, so a fix must break every path. Empty for a
	// metric of the recorded generation alone.
	Paths []Path `json:"paths,omitempty"`
}

// Path is one more generation path of a KindLexiconPath metric: its
// tokens (the prompt, then the generated tokens before its first lexicon
// token), the output positions read, and the generated tokens at them
// (the last one a lexicon token).
type Path struct {
	Tokens    []int `json:"tokens"`
	Positions []int `json:"positions"`
	Targets   []int `json:"targets"`
}

// pathSpec returns the metric of one generation path: the recorded one
// for i < 0, else Paths[i].
func (s *MetricSpec) pathSpec(i int) MetricSpec {
	out := *s
	out.Paths = nil
	if i >= 0 {
		out.Positions, out.Targets = s.Paths[i].Positions, s.Paths[i].Targets
	}
	return out
}

// Sequences returns the token sequences the metric reads, the recorded
// one (tokens) first, then each path's.
func (s *MetricSpec) Sequences(tokens []int) [][]int {
	out := [][]int{tokens}
	for _, p := range s.Paths {
		out = append(out, p.Tokens)
	}
	return out
}

// OfPath computes the metric of one batch row of the output on
// Sequences(tokens)[i]; the metric is the largest over i.
func (s *MetricSpec) OfPath(i int, out []float32, shape []int, row int) float64 {
	ps := s.pathSpec(i - 1)
	return ps.Of(out, shape, row)
}

// PathPositions returns the output positions whose logits OfPath reads
// on Sequences(tokens)[i], or nil for KindClassMargin (a classifier's
// output has no positions).
func (s *MetricSpec) PathPositions(i int) []int {
	if s.Kind == KindClassMargin {
		return nil
	}
	return s.pathSpec(i - 1).Positions
}

// PathAt returns the metric of Sequences(tokens)[i] on an output computed
// at PathPositions(i) only (transformer.Batch.LogitPositions: [B,
// len(PathPositions(i)), vocab]): its Of gives what OfPath gives on the
// whole output.
func (s *MetricSpec) PathAt(i int) MetricSpec {
	ps := s.pathSpec(i - 1)
	if ps.Kind != KindClassMargin {
		ps.Positions = make([]int, len(ps.Positions))
		for j := range ps.Positions {
			ps.Positions[j] = j
		}
	}
	return ps
}

// NewPath returns the path of a generation from prompt (the generated
// tokens gen) up to its first lexicon token, and false when gen holds
// none.
func (s *MetricSpec) NewPath(prompt, gen []int) (Path, bool) {
	first := slices.IndexFunc(gen, func(id int) bool { _, ok := slices.BinarySearch(s.Lexicon, id); return ok })
	if first < 0 {
		return Path{}, false
	}
	p := Path{Tokens: append(slices.Clone(prompt), gen[:first]...), Targets: slices.Clone(gen[:first+1])}
	for st := 0; st <= first; st++ {
		p.Positions = append(p.Positions, len(prompt)-1+st)
	}
	return p, true
}

// HasPath reports whether the metric already follows the path of tokens
// (the recorded one, tokens, or one of Paths).
func (s *MetricSpec) HasPath(tokens []int, p Path) bool {
	same := func(t []int, q []int) bool { return slices.Equal(t, p.Tokens) && slices.Equal(q, p.Targets) }
	if same(tokens, s.Targets) {
		return true
	}
	for _, q := range s.Paths {
		if same(q.Tokens, q.Targets) {
			return true
		}
	}
	return false
}

// Validate checks the spec against an output of vocab entries per
// position over T positions (vocab: the labels for KindClassMargin).
func (s *MetricSpec) Validate(T, vocab int) error {
	inRange := func(field string, xs []int, n int) error {
		for _, x := range xs {
			if x < 0 || x >= n {
				return fmt.Errorf("cca: metric: %s: %d is outside [0, %d)", field, x, n)
			}
		}
		return nil
	}
	switch s.Kind {
	case KindTokenMargin:
		if len(s.Positions) == 0 || len(s.Positions) != len(s.Targets) {
			return fmt.Errorf("cca: metric: %s needs as many targets as positions (got %d and %d)", s.Kind, len(s.Targets), len(s.Positions))
		}
		if err := inRange("targets", s.Targets, vocab); err != nil {
			return err
		}
	case KindLexiconMargin, KindLexiconPath:
		if s.Kind == KindLexiconPath {
			if len(s.Targets) != len(s.Positions) {
				return fmt.Errorf("cca: metric: %s needs as many targets as positions (got %d and %d)", s.Kind, len(s.Targets), len(s.Positions))
			}
			if err := inRange("targets", s.Targets, vocab); err != nil {
				return err
			}
		}
		if len(s.Positions) == 0 || len(s.Lexicon) == 0 {
			return fmt.Errorf("cca: metric: %s needs positions and lexicon tokens", s.Kind)
		}
		if err := inRange("lexicon", s.Lexicon, vocab); err != nil {
			return err
		}
		if !slices.IsSorted(s.Lexicon) {
			return fmt.Errorf("cca: metric: lexicon token ids must be sorted")
		}
	case KindClassMargin:
		if err := inRange("positive/negative", []int{s.Positive, s.Negative}, vocab); err != nil {
			return err
		}
		if s.Positive == s.Negative {
			return fmt.Errorf("cca: metric: positive and negative labels are both %d", s.Positive)
		}
		return nil
	default:
		return fmt.Errorf("cca: metric: kind %q is unknown (%s, %s, %s, %s)", s.Kind, KindTokenMargin, KindLexiconMargin, KindLexiconPath, KindClassMargin)
	}
	if len(s.Paths) > 0 && s.Kind != KindLexiconPath {
		return fmt.Errorf("cca: metric: %s follows no other generation paths (paths are for %s)", s.Kind, KindLexiconPath)
	}
	for i, p := range s.Paths {
		ps := s.pathSpec(i)
		if len(p.Tokens) == 0 {
			return fmt.Errorf("cca: metric: paths[%d]: no tokens", i)
		}
		if err := ps.Validate(len(p.Tokens), vocab); err != nil {
			return fmt.Errorf("cca: metric: paths[%d]: %w", i, err)
		}
	}
	return inRange("positions", s.Positions, T)
}

// Transformer returns the metric as a transformer.Metric (Of and Grad of
// one batch row of a [B, T, V] or [B, labels] output). The gradient is the
// subgradient at the step and tokens that attain the min or max.
func (s *MetricSpec) Transformer() transformer.Metric {
	return transformer.Metric{
		Name: s.Kind,
		Of: func(out []float32, shape []int, row int) float64 {
			v, _, _, _ := s.eval(out, shape, row)
			return v
		},
		Grad: func(out []float32, shape []int, row int, dout []float32) {
			_, off, up, down := s.eval(out, shape, row)
			dout[off+up]++
			dout[off+down]--
		},
	}
}

// Of computes the metric of one batch row.
func (s *MetricSpec) Of(out []float32, shape []int, row int) float64 {
	v, _, _, _ := s.eval(out, shape, row)
	return v
}

// eval returns the metric of a row, the offset of the logits row it was
// read from, and the indices of the logit it increases with and the one it
// decreases with.
func (s *MetricSpec) eval(out []float32, shape []int, row int) (float64, int, int, int) {
	V := shape[len(shape)-1]
	per := len(out) / shape[0]
	if s.Kind == KindClassMargin {
		off := row * per
		return float64(out[off+s.Positive]) - float64(out[off+s.Negative]), off, s.Positive, s.Negative
	}
	if s.Kind == KindLexiconPath {
		return s.evalPath(out, V, row*per)
	}
	best, bestOff, bestUp, bestDown := math.NaN(), 0, 0, 0
	for j, p := range s.Positions {
		off := row*per + p*V
		logits := out[off : off+V]
		var v float64
		var up, down int
		if s.Kind == KindTokenMargin {
			up = s.Targets[j]
			down = argmaxExcept(logits, func(i int) bool { return i == up })
			v = float64(logits[up]) - float64(logits[down])
		} else {
			v, up, down = s.lexiconMargin(logits)
		}
		better := v < best // min over steps
		if s.Kind == KindLexiconMargin {
			better = v > best // max over steps
		}
		if math.IsNaN(best) || better {
			best, bestOff, bestUp, bestDown = v, off, up, down
		}
	}
	return best, bestOff, bestUp, bestDown
}

// lexiconMargin returns the best lexicon token's logit minus the best
// other token's, and the two tokens.
func (s *MetricSpec) lexiconMargin(logits []float32) (float64, int, int) {
	up := argmaxOf(logits, s.Lexicon)
	down := argmaxExcept(logits, func(i int) bool { _, ok := slices.BinarySearch(s.Lexicon, i); return ok })
	return float64(logits[up]) - float64(logits[down]), up, down
}

// term is one logit difference of a metric: its value, the offset of its
// logits row and the tokens it increases and decreases with.
type term struct {
	v             float64
	off, up, down int
}

// evalPath evaluates KindLexiconPath on the row starting at base.
func (s *MetricSpec) evalPath(out []float32, V, base int) (float64, int, int, int) {
	best := term{v: math.Inf(-1)}
	path := term{v: math.Inf(1)} // the smallest recorded-token margin so far
	for j, p := range s.Positions {
		off := base + p*V
		logits := out[off : off+V]
		v, up, down := s.lexiconMargin(logits)
		t := term{v, off, up, down}
		if path.v < t.v {
			t = path
		}
		if t.v > best.v {
			best = t
		}
		up = s.Targets[j]
		down = argmaxExcept(logits, func(i int) bool { return i == up })
		if v := float64(logits[up]) - float64(logits[down]); v < path.v {
			path = term{v, off, up, down}
		}
	}
	return best.v, best.off, best.up, best.down
}

func argmaxExcept(xs []float32, skip func(int) bool) int {
	best := -1
	for i, x := range xs {
		if skip(i) {
			continue
		}
		if best < 0 || x > xs[best] {
			best = i
		}
	}
	return max(best, 0)
}

func argmaxOf(xs []float32, ids []int) int {
	best := ids[0]
	for _, i := range ids[1:] {
		if xs[i] > xs[best] {
			best = i
		}
	}
	return best
}
