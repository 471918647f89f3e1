package certificate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/replay"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// Judge runs the incident again with interventions and returns the
// detector's verdict.
type Judge func(ctx context.Context, ivs []transformer.Intervention) (*FixedOutcome, error)

// ReplayJudge judges by replaying the bundle on m (whose identity is id):
// the replay must reproduce the recording, then the intervened run is
// judged by the bundle's own detector.
func ReplayJudge(b *bundle.Bundle, m *transformer.Model, id bundle.Model) Judge {
	return func(ctx context.Context, ivs []transformer.Intervention) (*FixedOutcome, error) {
		rep, err := replay.Replay(ctx, b, m, replay.Options{Model: id, Interventions: ivs})
		if err != nil {
			return nil, err
		}
		if !rep.Match {
			return nil, fmt.Errorf("certificate: the replay of %s does not reproduce the recording", b.Dir)
		}
		iv := rep.Intervened
		return &FixedOutcome{Failed: iv.Outcome.Failed, Detail: iv.Outcome.Detail, Text: iv.OutputText, Flipped: iv.Flipped}, nil
	}
}

// ScenarioJudge judges by running text through the scenario's model with
// its own detector (lexicon and label-flip detectors, which bundles do not
// record). recordedFailed is the recorded verdict.
func ScenarioJudge(sc *scenario.Scenario, m *transformer.Model, text string, recordedFailed bool) Judge {
	return func(ctx context.Context, ivs []transformer.Intervention) (*FixedOutcome, error) {
		oc, out, err := sc.Check(ctx, m, text, ivs)
		if err != nil {
			return nil, err
		}
		t := out.Text
		if out.Label != "" {
			t = out.Label
		}
		return &FixedOutcome{Failed: oc.Failed, Detail: oc.Detail, Text: t, Flipped: oc.Failed != recordedFailed}, nil
	}
}

// Check is one claim of a certificate and whether replay confirmed it.
type Check struct {
	Claim string `json:"claim"`
	OK    bool   `json:"ok"`
	// Detail gives the claimed and the replayed values.
	Detail string `json:"detail"`
}

// Report is the result of Verify.
type Report struct {
	Certificate string  `json:"certificate,omitempty"`
	Checks      []Check `json:"checks"`
	// Forwards counts the forward passes the verification ran.
	Forwards int `json:"forwards"`
}

// OK reports whether every claim was confirmed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Failed returns the claims replay did not confirm.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Options configure Verify.
type Options struct {
	// Tolerance is the relative tolerance of replayed metrics and values
	// (0: bit for bit, as the CPU backend replays).
	Tolerance float64
	// Judge replays the incident with the fix set; without one, a
	// certificate that claims an outcome fails that check.
	Judge Judge
}

// Verify re-checks every claim of the certificate by replay on m, the
// recorded model, against the bundle: the bundle's identity, the tokens,
// the intervention values (recomputed from their corpus), the metric
// before and after, each member's necessity, and the detector's verdict
// with the fix set. Every claim gets a Check; errors are for what stops
// the verification itself.
func Verify(ctx context.Context, c *Certificate, b *bundle.Bundle, m *transformer.Model, o Options) (*Report, error) {
	rep := &Report{}
	add := func(claim string, ok bool, format string, args ...any) {
		rep.Checks = append(rep.Checks, Check{Claim: claim, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	sum, err := BundleSHA256(b.Dir)
	if err != nil {
		return nil, err
	}
	add("bundle sha256", sum == c.Bundle.SHA256, "certificate %s, bundle %s", c.Bundle.SHA256, sum)
	man := b.Manifest.Model
	add("model", man.ConfigSHA256 == c.Model.ConfigSHA256 && man.WeightsSHA256 == c.Model.WeightsSHA256,
		"certificate config %s weights %s, bundle config %s weights %s", short(c.Model.ConfigSHA256), short(c.Model.WeightsSHA256), short(man.ConfigSHA256), short(man.WeightsSHA256))
	in := b.Input
	tokOK := len(c.Tokens) >= len(in.InputIDs) && slices.Equal(c.Tokens[:len(in.InputIDs)], in.InputIDs)
	if tokOK {
		rest := c.Tokens[len(in.InputIDs):]
		tokOK = len(rest) <= len(in.OutputIDs) && slices.Equal(rest, in.OutputIDs[:len(rest)])
	}
	add("tokens", tokOK, "%d tokens: the bundle's prompt (%d) and a prefix of its output (%d)", len(c.Tokens), len(in.InputIDs), len(in.OutputIDs))
	for i, pt := range c.Metric.Paths {
		ok := len(pt.Tokens) >= len(in.InputIDs) && slices.Equal(pt.Tokens[:len(in.InputIDs)], in.InputIDs)
		add(fmt.Sprintf("metric.paths[%d] tokens", i), ok, "%d tokens: the bundle's prompt (%d), then a generation", len(pt.Tokens), len(in.InputIDs))
	}
	if c.Search.DetectorPaths != 0 {
		add("search.detector_paths", c.Search.DetectorPaths == 1+len(c.Metric.Paths) && c.Outcome != nil,
			"claimed %d generation paths checked against the detector; the metric follows %d (the recorded one and metric.paths), and the outcome with the fix set is replayed below", c.Search.DetectorPaths, 1+len(c.Metric.Paths))
	}
	if len(c.Search.WidenedFrom) > 0 {
		add("search.widened_from", widenedOK(c.Search.WidenedFrom, c.Search.Layers, m.Config.Layers),
			"claimed no fix within layers %v, then a search of layers %v: want every layer of the %d-layer model, and the first layers among them but not all", c.Search.WidenedFrom, c.Search.Layers, m.Config.Layers)
	}
	outN := m.Config.VocabSize
	if m.BERT != nil {
		outN = len(m.BERT.Labels())
	}
	if err := c.Metric.Validate(len(c.Tokens), outN); err != nil {
		add("metric", false, "%v", err)
		return rep, nil
	}
	members, err := c.Members(m)
	if err != nil {
		add("fix set", false, "%v", err)
		return rep, nil
	}

	// Intervention values, recomputed from their corpus.
	var hooks []string
	for _, mb := range members {
		if mb.Mode == transformer.Mean && !slices.Contains(hooks, mb.Site.Hook) {
			hooks = append(hooks, mb.Site.Hook)
		}
	}
	if len(hooks) > 0 {
		src, err := cca.SourceValues(ctx, m, c.Intervention.Corpus, hooks)
		if err != nil {
			return nil, fmt.Errorf("certificate: intervention values: %w", err)
		}
		rep.Forwards += len(c.Intervention.Corpus)
		for i, mb := range members {
			if mb.Mode != transformer.Mean {
				continue
			}
			got := cca.SiteValues(m, mb, src[mb.Site.Hook])
			ok := len(got) == len(mb.Values)
			worst := 0.0
			for j := range got {
				if ok && !closeTo(float64(got[j]), float64(mb.Values[j]), o.Tolerance) {
					ok = false
					worst = float64(got[j] - mb.Values[j])
				}
			}
			add(fmt.Sprintf("fix_set[%d] %s values", i, c.FixSet[i].Site), ok, "%d values recomputed over %d corpus sequences (first difference %g)", len(got), len(c.Intervention.Corpus), worst)
		}
	}

	// The metric is the largest over its sequences: the certificate's
	// tokens, then each generation path's.
	metric := func(ivs []transformer.Intervention) (float64, error) {
		best := math.Inf(-1)
		for i, toks := range c.Metric.Sequences(c.Tokens) {
			out, err := m.RunWithInterventions(ctx, toks, ivs)
			if err != nil {
				return 0, fmt.Errorf("certificate: %w", err)
			}
			rep.Forwards++
			best = max(best, c.Metric.OfPath(i, m.Backend.ToHost(out), out.Shape(), 0))
		}
		return best, nil
	}
	ivs := cca.Interventions(m, members)
	before, err := metric(nil)
	if err != nil {
		return nil, err
	}
	add("metric before", before > 0 && closeTo(before, c.MetricBefore, o.Tolerance), "claimed %.6g, replayed %.6g (must be > 0: failing)", c.MetricBefore, before)
	after, err := metric(ivs)
	if err != nil {
		return nil, err
	}
	add("metric after", after <= 0 && closeTo(after, c.MetricAfter, o.Tolerance), "claimed %.6g, replayed %.6g (must be ≤ 0: corrected)", c.MetricAfter, after)
	if c.Minimal {
		for i := range ivs {
			v, err := metric(append(slices.Clone(ivs[:i]), ivs[i+1:]...))
			if err != nil {
				return nil, err
			}
			add(fmt.Sprintf("1-minimal: without fix_set[%d] %s", i, c.FixSet[i].Site), v > 0 && closeTo(v, c.FixSet[i].MetricWithout, o.Tolerance),
				"claimed %.6g, replayed %.6g (must be > 0: failing again)", c.FixSet[i].MetricWithout, v)
		}
	}
	if c.Outcome != nil {
		if o.Judge == nil {
			add("outcome with the fix set", false, "no way to replay the detector (a lexicon or label-flip detector needs the scenario: --scenario DIR)")
		} else {
			got, err := o.Judge(ctx, ivs)
			if err != nil {
				add("outcome with the fix set", false, "replay failed: %v", err)
			} else {
				add("outcome with the fix set", got.Failed == c.Outcome.Failed && got.Flipped == c.Outcome.Flipped && got.Text == c.Outcome.Text,
					"claimed failed=%v flipped=%v %q, replayed failed=%v flipped=%v %q", c.Outcome.Failed, c.Outcome.Flipped, c.Outcome.Text, got.Failed, got.Flipped, got.Text)
			}
		}
	}
	return rep, nil
}

// widenedOK reports whether a widened search is consistent: the layers
// finally searched are every layer of an n-layer model, and the layers
// first searched are valid, distinct and fewer.
func widenedOK(first, layers []int, n int) bool {
	if len(layers) != n || len(first) >= n {
		return false
	}
	for i, l := range layers {
		if l != i {
			return false
		}
	}
	seen := map[int]bool{}
	for _, l := range first {
		if l < 0 || l >= n || seen[l] {
			return false
		}
		seen[l] = true
	}
	return true
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Summary formats the certificate for a terminal: the fix set, the metric
// before and after, the output before and after.
func (c *Certificate) Summary() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "certificate %s for bundle %s (sha256 %s)\n", c.Format, c.Bundle.Path, short(c.Bundle.SHA256))
	fmt.Fprintf(&sb, "detector %s; metric %s: %s\n", c.Detector, c.Metric.Kind, c.Metric.Description)
	fmt.Fprintf(&sb, "searched %d candidates (%s) in layers %v (%s); intervention: %s\n", c.Search.Candidates, c.Search.Granularity, c.Search.Layers, c.Search.LayersFrom, c.Intervention.Source)
	fmt.Fprintf(&sb, "fix set (%d, 1-minimal: %v):\n", len(c.FixSet), c.Minimal)
	for _, f := range c.FixSet {
		fmt.Fprintf(&sb, "  %-40s %-5s rank %-5d metric without it %.4g\n", f.Site, f.Mode, f.Rank, f.MetricWithout)
	}
	fmt.Fprintf(&sb, "metric before %.4g, after %.4g\n", c.MetricBefore, c.MetricAfter)
	if c.Search.DetectorPaths > 0 {
		fmt.Fprintf(&sb, "checked against the detector on free generation: the metric follows %d generation path(s)\n", c.Search.DetectorPaths)
	}
	fmt.Fprintf(&sb, "output before: %q (%s: %s)\n", c.RecordedText, verdict(c.Recorded.Failed), c.Recorded.Detail)
	if c.Outcome != nil {
		fmt.Fprintf(&sb, "output after:  %q (%s: %s)\n", c.Outcome.Text, verdict(c.Outcome.Failed), c.Outcome.Detail)
	}
	fmt.Fprintf(&sb, "cost: %d batched forwards (%d rows), %d backward, %.2fs\n", c.Cost.Forwards, c.Cost.Rows, c.Cost.Backward, c.Cost.Seconds)
	return sb.String()
}

func verdict(failed bool) string {
	if failed {
		return "failed"
	}
	return "ok"
}
