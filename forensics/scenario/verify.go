package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelforensics/fx/transformer"
)

// The criteria a scenario must meet on its prompts (issue 5).
const (
	// MinFailingRate is the least fraction of failing prompts that fail.
	MinFailingRate = 0.95
	// MaxBenignRate is the most fraction of benign prompts that fail.
	MaxBenignRate = 0.05
	// MaxFailingAfterTruthAblation is the most fraction of failing prompts
	// that still fail with the ground-truth causes zero-ablated (so the
	// ablation removes the failure on at least 95%).
	MaxFailingAfterTruthAblation = 0.05
	// MinFailingAfterRandomAblation is the least fraction of failing
	// prompts that still fail with as many random components of the same
	// kinds zero-ablated.
	MinFailingAfterRandomAblation = 0.90
)

// Report is the result of Verify: the detector's rates on the scenario's
// prompts, plain and under ablations.
type Report struct {
	// Scenario and Size name the scenario.
	Scenario string `json:"scenario"`
	Size     Size   `json:"size"`
	// Failing and Benign count its prompts of each kind.
	Failing int `json:"failing_prompts"`
	Benign  int `json:"benign_prompts"`
	// FailingFailed and BenignFailed are the fractions of each kind that
	// fail with no intervention.
	FailingFailed float64 `json:"failing_failed"`
	BenignFailed  float64 `json:"benign_failed"`
	// TruthAblated is the fraction of failing prompts that still fail with
	// every ground-truth cause zero-ablated; StageAblated the same with the
	// causes of one stage only.
	TruthAblated float64         `json:"truth_ablated_failing_failed"`
	StageAblated map[int]float64 `json:"stage_ablated_failing_failed"`
	// RandomAblated is the fraction of failing prompts that still fail
	// with as many random components of the same kinds zero-ablated (a new
	// draw per prompt).
	RandomAblated float64 `json:"random_ablated_failing_failed"`
	// Causes is the number of components ablated.
	Causes int `json:"causes"`
	// Delayed is, for a generating scenario, the fraction of failing
	// prompts whose failure first appears after the first generated token.
	Delayed float64 `json:"delayed,omitempty"`
	// Accuracy is, for a classifier, the fraction of prompts whose label
	// without the trigger is their true sentiment.
	Accuracy float64 `json:"accuracy,omitempty"`
	// Runs is the number of model runs and Seconds their time.
	Runs    int     `json:"runs"`
	Seconds float64 `json:"seconds"`
}

// Problems returns what the report falls short of, empty when the scenario
// meets every criterion.
func (r *Report) Problems() []string {
	var ps []string
	if r.FailingFailed < MinFailingRate {
		ps = append(ps, fmt.Sprintf("%.1f%% of failing prompts fail (want ≥ %.0f%%)", 100*r.FailingFailed, 100*MinFailingRate))
	}
	if r.BenignFailed > MaxBenignRate {
		ps = append(ps, fmt.Sprintf("%.1f%% of benign prompts fail (want ≤ %.0f%%)", 100*r.BenignFailed, 100*MaxBenignRate))
	}
	if r.TruthAblated > MaxFailingAfterTruthAblation {
		ps = append(ps, fmt.Sprintf("with the ground truth ablated %.1f%% of failing prompts still fail (want ≤ %.0f%%)", 100*r.TruthAblated, 100*MaxFailingAfterTruthAblation))
	}
	for _, st := range r.stages() {
		if v := r.StageAblated[st]; v > MaxFailingAfterTruthAblation {
			ps = append(ps, fmt.Sprintf("with stage %d ablated %.1f%% of failing prompts still fail (want ≤ %.0f%%)", st, 100*v, 100*MaxFailingAfterTruthAblation))
		}
	}
	if r.RandomAblated < MinFailingAfterRandomAblation {
		ps = append(ps, fmt.Sprintf("with random components ablated only %.1f%% of failing prompts still fail (want ≥ %.0f%%)", 100*r.RandomAblated, 100*MinFailingAfterRandomAblation))
	}
	return ps
}

// Verify runs the scenario's prompts through m (its model): plain, with
// every ground-truth cause zero-ablated, with each stage's causes
// zero-ablated, and with as many random heads and neurons zero-ablated
// (drawn with seed), and returns the detector's rates.
func (s *Scenario) Verify(ctx context.Context, m *transformer.Model, seed uint64) (*Report, error) {
	start := time.Now()
	failing, benign := s.PromptsOf(Failing), s.PromptsOf(Benign)
	r := &Report{Scenario: s.Truth.Scenario, Size: s.Truth.Size, Failing: len(failing), Benign: len(benign), StageAblated: map[int]float64{}}
	if len(failing) == 0 || len(benign) == 0 {
		return nil, fmt.Errorf("scenario: %s: %s has %d failing and %d benign prompts", s.Dir, PromptsFile, len(failing), len(benign))
	}
	causes := s.Truth.Causes()
	r.Causes = len(causes)
	rate := func(prompts []Prompt, ivs func(i int) ([]transformer.Intervention, error)) (float64, error) {
		n := 0
		for i, p := range prompts {
			var set []transformer.Intervention
			if ivs != nil {
				var err error
				if set, err = ivs(i); err != nil {
					return 0, err
				}
			}
			o, _, err := s.Check(ctx, m, p.Text, set)
			if err != nil {
				return 0, err
			}
			r.Runs++
			if o.Failed {
				n++
			}
		}
		return frac(n, len(prompts)), nil
	}
	fixed := func(comps []Component) func(int) ([]transformer.Intervention, error) {
		return func(int) ([]transformer.Intervention, error) { return ZeroAblation(comps) }
	}
	var err error
	delayed, correct, labelled := 0, 0, 0
	for _, p := range s.Prompts {
		o, out, err := s.Check(ctx, m, p.Text, nil)
		if err != nil {
			return nil, err
		}
		r.Runs++
		switch {
		case p.Kind == Failing && o.Failed:
			r.FailingFailed++
			if o.Step > 1 {
				delayed++
			}
		case p.Kind == Benign && o.Failed:
			r.BenignFailed++
		}
		if p.Sentiment != "" && out.ReferenceLabel != "" {
			labelled++
			if strings.EqualFold(out.ReferenceLabel, p.Sentiment) {
				correct++
			}
		}
	}
	r.FailingFailed /= float64(len(failing))
	r.BenignFailed /= float64(len(benign))
	if s.Truth.Model == "gpt2" {
		r.Delayed = frac(delayed, len(failing))
	}
	if labelled > 0 {
		r.Accuracy = frac(correct, labelled)
	}
	if r.TruthAblated, err = rate(failing, fixed(causes)); err != nil {
		return nil, err
	}
	stages := map[int][]Component{}
	for _, c := range causes {
		stages[c.Stage] = append(stages[c.Stage], c)
	}
	for st, comps := range stages {
		if r.StageAblated[st], err = rate(failing, fixed(comps)); err != nil {
			return nil, err
		}
	}
	rng := newRNG(seed)
	cfg := m.Config
	random := func(int) ([]transformer.Intervention, error) {
		comps, err := RandomComponents(rng, cfg, causes, s.Truth.Components)
		if err != nil {
			return nil, err
		}
		return ZeroAblation(comps)
	}
	if r.RandomAblated, err = rate(failing, random); err != nil {
		return nil, err
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// String formats the report for a terminal.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %d failing, %d benign prompts\n", r.Scenario, r.Size, r.Failing, r.Benign)
	fmt.Fprintf(&b, "  failing prompts that fail                   %6.1f%%  (want ≥ %.0f%%)\n", 100*r.FailingFailed, 100*MinFailingRate)
	fmt.Fprintf(&b, "  benign prompts that fail                    %6.1f%%  (want ≤ %.0f%%)\n", 100*r.BenignFailed, 100*MaxBenignRate)
	fmt.Fprintf(&b, "  still failing, %2d ground-truth causes zeroed %5.1f%%  (want ≤ %.0f%%)\n", r.Causes, 100*r.TruthAblated, 100*MaxFailingAfterTruthAblation)
	for _, st := range r.stages() {
		fmt.Fprintf(&b, "  still failing, stage %d only zeroed           %6.1f%%\n", st, 100*r.StageAblated[st])
	}
	fmt.Fprintf(&b, "  still failing, %2d random components zeroed   %5.1f%%  (want ≥ %.0f%%)\n", r.Causes, 100*r.RandomAblated, 100*MinFailingAfterRandomAblation)
	if r.Delayed > 0 {
		fmt.Fprintf(&b, "  failing prompts that fail after step 1      %6.1f%%\n", 100*r.Delayed)
	}
	if r.Accuracy > 0 {
		fmt.Fprintf(&b, "  labels right without the trigger            %6.1f%%\n", 100*r.Accuracy)
	}
	fmt.Fprintf(&b, "  %d runs in %.1fs", r.Runs, r.Seconds)
	return b.String()
}

// stages returns the stages of StageAblated in order.
func (r *Report) stages() []int {
	stages := make([]int, 0, len(r.StageAblated))
	for st := range r.StageAblated {
		stages = append(stages, st)
	}
	slices.Sort(stages)
	return stages
}
