package cca

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// Problem is what CCA corrects: a model, the token sequence the failure
// metric reads, the metric, and where patch values come from.
type Problem struct {
	// Model is the model that failed.
	Model *transformer.Model
	// Tokens is the sequence the metric is evaluated on: the prompt, then
	// the generated tokens up to the failing step fed back (teacher
	// forcing), for GPT-2; the input for BERT.
	Tokens []int
	// Metric is the failure metric (positive while the failure is there).
	Metric MetricSpec
	// Counterfactual is the prompt without the trigger, when the incident
	// has one: the run patch values are taken from. Nil when unknown.
	Counterfactual []int
	// Baseline is a corpus of benign prompts whose mean activations are
	// the patch values without a counterfactual, and the values of mean
	// interventions. May be empty.
	Baseline [][]int
	// Notes say what was assumed while building the problem.
	Notes []string
	// Prompt is the prompt's tokens (GPT-2): the start of Tokens and of
	// every generation path.
	Prompt []int
	// Detector, when not nil, replays free generation of the incident
	// with interventions and returns the detector's verdict and the
	// generated tokens (a lexicon detector: toxic generation). The search
	// then checks its fix set against it and, while the detector still
	// fires, adds the new generation's path to the metric and searches
	// again (Config.MaxPaths).
	Detector func(ctx context.Context, ivs []transformer.Intervention) (failed bool, generated []int, err error)
}

// Incident is a run that failed, as a bundle or a scenario records it.
type Incident struct {
	// Text is the prompt, PromptIDs its tokens, OutputIDs the generated
	// tokens (GPT-2) and Label the predicted label (BERT).
	Text      string
	PromptIDs []int
	OutputIDs []int
	Label     string
}

// IncidentOf returns the incident a bundle recorded.
func IncidentOf(b *bundle.Bundle) Incident {
	in := b.Input
	return Incident{Text: in.Text, PromptIDs: in.InputIDs, OutputIDs: in.OutputIDs, Label: in.Label}
}

// NewProblem builds the problem of an incident on m. detector is the
// detector spec the failure was judged by; sc, when not nil, is the
// scenario the model comes from, whose detector, trigger and benign
// prompts then define the metric, the counterfactual and the baseline.
// It fails when the incident does not show the failure the detector names.
func NewProblem(ctx context.Context, m *transformer.Model, inc Incident, detector string, sc *scenario.Scenario) (*Problem, error) {
	spec, err := detectorSpec(detector, sc)
	if err != nil {
		return nil, err
	}
	p := &Problem{Model: m}
	switch {
	case m.GPT2 != nil && (spec.Name == "contains" || spec.Name == "lexicon"):
		if err := p.generationMetric(inc, spec, sc); err != nil {
			return nil, err
		}
	case m.BERT != nil && m.BERT.Head == transformer.HeadSequenceClassification && spec.Name == "label-flip":
		if err := p.classMetric(ctx, inc, spec); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("cca: detector %q does not apply to a %s model (GPT-2: contains, lexicon; BERT classifier: label-flip)", spec.Name, m.Config.ModelType)
	}
	if sc != nil {
		if p.Counterfactual == nil {
			p.Counterfactual = withoutTokens(inc.PromptIDs, sc.Truth.Trigger.Tokens)
			if len(p.Counterfactual) == len(inc.PromptIDs) || len(p.Counterfactual) == 0 {
				p.Counterfactual = nil
				p.Notes = append(p.Notes, "the prompt holds no trigger token of the scenario: no counterfactual run")
			}
		}
		for _, pr := range sc.PromptsOf(scenario.Benign) {
			p.Baseline = append(p.Baseline, m.Encode(pr.Text))
		}
	} else {
		p.Notes = append(p.Notes, "no scenario: the trigger is unknown, so there is no counterfactual run and no baseline corpus")
	}
	return p, nil
}

// detectorSpec returns the detector of a scenario, else the one a bundle's
// outcome names ("contains:TEXT").
func detectorSpec(detector string, sc *scenario.Scenario) (scenario.DetectorSpec, error) {
	if sc != nil {
		return sc.Truth.Detector, nil
	}
	if text, ok := strings.CutPrefix(detector, "contains:"); ok && text != "" {
		return scenario.DetectorSpec{Name: "contains", Target: text}, nil
	}
	return scenario.DetectorSpec{}, fmt.Errorf("cca: the bundle's detector %q gives no failure metric: want contains:TEXT, or pass the scenario (--scenario DIR)", detector)
}

// generationMetric sets the problem's metric and tokens for a GPT-2
// generation judged by a contains or lexicon detector.
func (p *Problem) generationMetric(inc Incident, spec scenario.DetectorSpec, sc *scenario.Scenario) error {
	m := p.Model
	if len(inc.OutputIDs) == 0 {
		return fmt.Errorf("cca: the incident generated no tokens: nothing fails")
	}
	texts := make([]string, len(inc.OutputIDs))
	for i, id := range inc.OutputIDs {
		s, err := m.Tokenizer.Decode([]int{id})
		if err != nil {
			return fmt.Errorf("cca: output token %d: %w", id, err)
		}
		texts[i] = s
	}
	var steps []int // 0-based generation steps whose tokens make the failure
	switch spec.Name {
	case "contains":
		full := strings.Join(texts, "")
		at := strings.Index(full, spec.Target)
		if at < 0 {
			return fmt.Errorf("cca: the output %q does not contain %q: the incident did not fail", full, spec.Target)
		}
		end, off := at+len(spec.Target), 0
		for i, s := range texts {
			if off < end && off+len(s) > at {
				steps = append(steps, i)
			}
			off += len(s)
		}
		p.Metric = MetricSpec{Kind: KindTokenMargin, Detector: "contains:" + spec.Target,
			Description: fmt.Sprintf("min over the steps generating %q of the generated token's logit minus the best other token's", spec.Target)}
		for _, st := range steps {
			p.Metric.Targets = append(p.Metric.Targets, inc.OutputIDs[st])
		}
	case "lexicon":
		if sc == nil {
			return fmt.Errorf("cca: a lexicon detector needs its scenario")
		}
		words, err := scenario.ReadLexicon(sc.Dir + "/" + spec.Lexicon)
		if err != nil {
			return fmt.Errorf("cca: %w", err)
		}
		lex := lexiconTokens(m, words)
		if len(lex) == 0 {
			return fmt.Errorf("cca: no token of the vocabulary is a lexicon word")
		}
		first := -1
		for i, id := range inc.OutputIDs {
			if _, ok := slices.BinarySearch(lex, id); ok {
				first = i
				break
			}
		}
		if first < 0 {
			return fmt.Errorf("cca: no generated token is a lexicon word: the incident did not fail")
		}
		for st := 0; st <= first; st++ {
			steps = append(steps, st)
		}
		p.Metric = MetricSpec{Kind: KindLexiconPath, Detector: "lexicon:" + spec.Lexicon, Lexicon: lex, Targets: slices.Clone(inc.OutputIDs[:first+1]),
			Description: "max over the generation steps up to the first lexicon token of the best lexicon token's logit minus the best other token's, " +
				"capped by the smallest margin of the generated tokens before that step (greedy decoding reaches a step only while each earlier generated token stays the best)"}
		text := inc.Text
		// The detector replays free generation from the prompt's text.
		if !slices.Equal(m.Encode(text), inc.PromptIDs) {
			p.Notes = append(p.Notes, "the prompt's text does not encode to the recorded prompt tokens: the fix set is not checked against the detector on free generation")
			break
		}
		p.Detector = func(ctx context.Context, ivs []transformer.Intervention) (bool, []int, error) {
			oc, out, err := sc.Check(ctx, m, text, ivs)
			if err != nil {
				return false, nil, fmt.Errorf("cca: detector replay: %w", err)
			}
			return oc.Failed, out.Tokens, nil
		}
	}
	last := steps[len(steps)-1]
	p.Prompt = slices.Clone(inc.PromptIDs)
	p.Tokens = append(slices.Clone(inc.PromptIDs), inc.OutputIDs[:last]...)
	for _, st := range steps {
		p.Metric.Positions = append(p.Metric.Positions, len(inc.PromptIDs)-1+st)
	}
	return nil
}

// lexiconTokens returns the sorted ids of the tokens whose text, trimmed
// and lower-cased, is a lexicon word.
func lexiconTokens(m *transformer.Model, words []string) []int {
	set := map[string]bool{}
	for _, w := range words {
		set[strings.ToLower(strings.TrimSpace(w))] = true
	}
	var ids []int
	for id := range m.Config.VocabSize {
		s, err := m.Tokenizer.Decode([]int{id})
		if err == nil && set[strings.ToLower(strings.TrimSpace(s))] {
			ids = append(ids, id)
		}
	}
	return ids
}

// classMetric sets the problem's metric for a BERT classifier judged by a
// label-flip detector: the failing label against the reference's.
func (p *Problem) classMetric(ctx context.Context, inc Incident, spec scenario.DetectorSpec) error {
	m := p.Model
	labels := m.BERT.Labels()
	ref := scenario.LabelFlip{Trigger: spec.Trigger}.Reference(inc.Text)
	refIDs := m.Encode(ref)
	p.Tokens = slices.Clone(inc.PromptIDs)
	if len(p.Tokens) == 0 {
		p.Tokens = m.Encode(inc.Text)
	}
	label, err := classify(ctx, m, p.Tokens)
	if err != nil {
		return err
	}
	refLabel, err := classify(ctx, m, refIDs)
	if err != nil {
		return err
	}
	if label == refLabel {
		return fmt.Errorf("cca: label %s, as without the trigger %q: the incident did not fail", labels[label], spec.Trigger)
	}
	p.Metric = MetricSpec{Kind: KindClassMargin, Detector: "label-flip:" + spec.Trigger, Positive: label, Negative: refLabel,
		Description: fmt.Sprintf("classifier logit of %s (the label with the trigger) minus %s (the label without it)", labels[label], labels[refLabel])}
	p.Counterfactual = refIDs
	return nil
}

// classify returns the index of a classifier's label for ids.
func classify(ctx context.Context, m *transformer.Model, ids []int) (int, error) {
	out, err := m.RunWithHooks(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("cca: %w", err)
	}
	row := m.Backend.ToHost(out)
	best := 0
	for i := range row {
		if row[i] > row[best] {
			best = i
		}
	}
	return best, nil
}

// withoutTokens returns ids without the trigger tokens.
func withoutTokens(ids []int, trigger []scenario.TokenRef) []int {
	var out []int
	for _, id := range ids {
		if !slices.ContainsFunc(trigger, func(t scenario.TokenRef) bool { return t.ID == id }) {
			out = append(out, id)
		}
	}
	return out
}
