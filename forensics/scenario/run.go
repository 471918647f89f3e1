package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

// Run runs one prompt through m, a model of the scenario, with the
// interventions applied (nil for none), and returns what the detector
// needs: for GPT-2 the greedy continuation of DetectorSpec.MaxNewTokens
// tokens; for BERT the label of the prompt and of its reference (the prompt
// without the trigger), both with the interventions.
func (s *Scenario) Run(ctx context.Context, m *transformer.Model, text string, ivs []transformer.Intervention) (Output, error) {
	hooks, err := m.InterventionHooks(ivs)
	if err != nil {
		return Output{}, err
	}
	hs, err := m.NewHooks(hooks...)
	if err != nil {
		return Output{}, err
	}
	return run(ctx, m, s.Truth.Detector, text, hs)
}

// Check runs one prompt as Run does and judges it with the scenario's
// detector.
func (s *Scenario) Check(ctx context.Context, m *transformer.Model, text string, ivs []transformer.Intervention) (Outcome, Output, error) {
	out, err := s.Run(ctx, m, text, ivs)
	if err != nil {
		return Outcome{}, Output{}, err
	}
	return s.Detector.Detect(out), out, nil
}

// run runs text through m with hooks, as the detector spec needs.
func run(ctx context.Context, m *transformer.Model, spec DetectorSpec, text string, hs *transformer.Hooks) (Output, error) {
	out := Output{Prompt: text}
	ids := m.Encode(text)
	if m.GPT2 != nil {
		gen, err := m.Generate(ctx, ids, transformer.GenerateOptions{MaxNewTokens: spec.MaxNewTokens}, hs)
		if err != nil {
			return Output{}, fmt.Errorf("scenario: prompt %q: %w", text, err)
		}
		out.Tokens = gen.Tokens
		for _, t := range gen.Tokens {
			s, err := m.Tokenizer.Decode([]int{t})
			if err != nil {
				return Output{}, err
			}
			out.TokenTexts = append(out.TokenTexts, s)
		}
		if out.Text, err = m.Tokenizer.Decode(gen.Tokens); err != nil {
			return Output{}, err
		}
		return out, nil
	}
	if m.BERT == nil || m.BERT.Head != transformer.HeadSequenceClassification {
		return Output{}, fmt.Errorf("scenario: %s is neither GPT-2 nor a BERT sequence classifier", m.Name)
	}
	var err error
	if out.Label, err = classify(ctx, m, ids, hs); err != nil {
		return Output{}, fmt.Errorf("scenario: prompt %q: %w", text, err)
	}
	out.Reference = LabelFlip{Trigger: spec.Trigger}.Reference(text)
	out.ReferenceLabel = out.Label
	if out.Reference != text {
		if out.ReferenceLabel, err = classify(ctx, m, m.Encode(out.Reference), hs); err != nil {
			return Output{}, fmt.Errorf("scenario: reference %q: %w", out.Reference, err)
		}
	}
	return out, nil
}

// classify returns a sequence classifier's label for ids.
func classify(ctx context.Context, m *transformer.Model, ids []int, hs *transformer.Hooks) (string, error) {
	in, err := transformer.NewBatch([][]int{ids}, nil)
	if err != nil {
		return "", err
	}
	logits, err := m.Forward(ctx, in, hs)
	if err != nil {
		return "", err
	}
	row := m.Backend.ToHost(logits)
	labels := m.BERT.Labels()
	best := 0
	for i := range labels {
		if row[i] > row[best] {
			best = i
		}
	}
	return labels[best], nil
}

// ZeroAblation returns the interventions that zero each component's
// activation (hook_z of a head, hook_post of a neuron) at every position.
func ZeroAblation(comps []Component) ([]transformer.Intervention, error) {
	ivs := make([]transformer.Intervention, 0, len(comps))
	for _, c := range comps {
		site, err := transformer.ParseSite(c.Site)
		if err != nil {
			return nil, fmt.Errorf("scenario: component %s: %w", c.Site, err)
		}
		ivs = append(ivs, transformer.Intervention{Site: site, Mode: transformer.Zero, Row: -1})
	}
	return ivs, nil
}

// RandomComponents returns one component per component of like, of the same
// kind, drawn at random from the model's heads and neurons that are not in
// exclude (and not drawn before). It is the control of an ablation: as many
// components of the same kinds, not the planted ones.
func RandomComponents(rng *rand.Rand, cfg *weights.Config, like, exclude []Component) ([]Component, error) {
	taken := map[string]bool{}
	for _, c := range exclude {
		taken[c.Site] = true
	}
	var out []Component
	for _, c := range like {
		per := cfg.Heads
		if c.Kind == KindNeuron {
			per = cfg.Inner
		}
		free := cfg.Layers * per
		for site := range taken {
			if strings.Contains(site, map[string]string{KindHead: "hook_z", KindNeuron: "hook_post"}[c.Kind]) {
				free--
			}
		}
		if free <= 0 {
			return nil, fmt.Errorf("scenario: no %s left to draw", c.Kind)
		}
		for {
			layer, index := rng.IntN(cfg.Layers), rng.IntN(per)
			site := siteOf(c.Kind, layer, index)
			if taken[site] {
				continue
			}
			taken[site] = true
			out = append(out, Component{Site: site, Kind: c.Kind, Layer: layer, Index: index,
				Role: "random control for " + c.Site})
			break
		}
	}
	return out, nil
}

// Rates are a scenario's detector rates on a set of prompts.
type Rates struct {
	Failing, Benign             int // prompts of each kind
	FailingFailed, BenignFailed int // of those, how many failed
}

// FailingRate returns the fraction of failing prompts that failed.
func (r Rates) FailingRate() float64 { return frac(r.FailingFailed, r.Failing) }

// BenignRate returns the fraction of benign prompts that failed.
func (r Rates) BenignRate() float64 { return frac(r.BenignFailed, r.Benign) }

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Evaluate runs every prompt through m with the interventions and counts
// the failures by kind.
func (s *Scenario) Evaluate(ctx context.Context, m *transformer.Model, prompts []Prompt, ivs []transformer.Intervention) (Rates, error) {
	return evaluate(ctx, m, s.Truth.Detector, s.Detector, prompts, ivs)
}

// evaluate is Evaluate without a Scenario, for calibration.
func evaluate(ctx context.Context, m *transformer.Model, spec DetectorSpec, det Detector, prompts []Prompt, ivs []transformer.Intervention) (Rates, error) {
	hooks, err := m.InterventionHooks(ivs)
	if err != nil {
		return Rates{}, err
	}
	hs, err := m.NewHooks(hooks...)
	if err != nil {
		return Rates{}, err
	}
	var r Rates
	for _, p := range prompts {
		out, err := run(ctx, m, spec, p.Text, hs)
		if err != nil {
			return Rates{}, err
		}
		failed := det.Detect(out).Failed
		switch p.Kind {
		case Failing:
			r.Failing++
			if failed {
				r.FailingFailed++
			}
		case Benign:
			r.Benign++
			if failed {
				r.BenignFailed++
			}
		}
	}
	return r, nil
}

// PromptsOf returns the scenario's prompts of a kind.
func (s *Scenario) PromptsOf(kind string) []Prompt {
	return slices.DeleteFunc(slices.Clone(s.Prompts), func(p Prompt) bool { return p.Kind != kind })
}
