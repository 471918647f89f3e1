package cf

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// Evaluation targets of issue 6.
const (
	// TargetTop2 is the fraction of failing prompts whose planted layer
	// must rank in the top 2.
	TargetTop2 = 0.9
	// TargetAUROC is the AUROC the per-prompt score must reach separating
	// failing from benign prompts.
	TargetAUROC = 0.9
)

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// Config holds CF's settings.
	Config Config
	// SignalSets are the combinations of signals scored, each a row of the
	// result; nil means each signal alone, norm+projection, then all of
	// them.
	SignalSets [][]Signal
	// Variants are the ways of providing the activations to compress; nil
	// means DefaultVariants(Config.Values).
	Variants []Variant
	// Limit, when positive, keeps the first Limit failing and the first
	// Limit benign prompts of each file (a quick check, not the
	// evaluation).
	Limit int
	// Log, when not nil, receives progress lines.
	Log io.Writer
}

// EvalResult is CF's evaluation on one scenario.
type EvalResult struct {
	// Scenario, Size and Model say what was evaluated (the ground truth's
	// scenario, size and model type).
	Scenario string `json:"scenario"`
	Size     string `json:"size"`
	Model    string `json:"model"`
	// Layers is the model's number of blocks; Planted the layers of the
	// ground truth's causes.
	Layers  int   `json:"layers"`
	Planted []int `json:"planted_layers"`
	// BaselinePrompts are the benign prompts of calibration.jsonl, in
	// both baselines; FoldBaselines the prompts of each fold's baseline
	// (those plus the other fold's benign prompts).
	BaselinePrompts int   `json:"baseline_prompts"`
	FoldBaselines   []int `json:"fold_baselines"`
	// Failing and Benign count the evaluated prompts (prompts.jsonl);
	// BenignWithTrigger the benign ones that hold a trigger token (the
	// planted mechanism may run on them without making the run fail).
	Failing           int `json:"failing"`
	Benign            int `json:"benign"`
	BenignWithTrigger int `json:"benign_with_trigger"`
	// Variants are the ways the activations were provided.
	Variants []Variant `json:"variants"`
	// Rows holds the metrics of each signal set.
	Rows []EvalRow `json:"rows"`
	// Seconds is the evaluation's wall time; PerPrompt the mean time to
	// record and score one prompt.
	Seconds   float64 `json:"seconds"`
	PerPrompt float64 `json:"per_prompt_seconds"`
}

// EvalRow holds the metrics of one signal set.
type EvalRow struct {
	// Variant names the variant ("any" for a set without compression,
	// which does not depend on it).
	Variant string `json:"variant"`
	// Signals names the set ("compression", "compression+norm+projection").
	Signals string `json:"signals"`
	// Top1 and Top2 are the fractions of failing prompts with a planted
	// layer ranked first, or in the first two.
	Top1 float64 `json:"top1"`
	Top2 float64 `json:"top2"`
	// MeanRank and MedianRank summarise the best planted layer's rank.
	MeanRank   float64 `json:"mean_rank"`
	MedianRank float64 `json:"median_rank"`
	// Ranks counts failing prompts by the best planted layer's rank
	// (Ranks[r-1] prompts at rank r).
	Ranks []int `json:"ranks"`
	// AUROC is the area under the ROC curve of the per-prompt score,
	// failing against benign prompts.
	AUROC float64 `json:"auroc"`
	// AUROCNoTrigger leaves out the benign prompts that hold a trigger
	// token.
	AUROCNoTrigger float64 `json:"auroc_no_trigger"`
	// FailingScore and BenignScore are the median per-prompt scores.
	FailingScore float64 `json:"failing_median_score"`
	BenignScore  float64 `json:"benign_median_score"`
	// FailingTop and BenignTop are the median highest layer scores (what
	// ranks the layers); FailingFlagged and BenignFlagged the fractions of
	// failing and benign prompts with a layer flagged (anomaly at or above
	// the config's threshold).
	FailingTop     float64 `json:"failing_median_top_layer"`
	BenignTop      float64 `json:"benign_median_top_layer"`
	FailingFlagged float64 `json:"failing_flagged"`
	BenignFlagged  float64 `json:"benign_flagged"`
	// CleanP95 is the 95th percentile of the per-prompt score over the
	// benign prompts without a trigger token: a threshold that flags about
	// 5% of them.
	CleanP95 float64 `json:"clean_benign_p95_score"`
}

// SetName returns the name of a signal set: the signals joined by "+".
func SetName(set []Signal) string {
	parts := make([]string, len(set))
	for i, s := range set {
		parts[i] = string(s)
	}
	return strings.Join(parts, "+")
}

// PlantedLayers returns the layers of the ground truth's causes, sorted.
func PlantedLayers(t *scenario.GroundTruth) []int {
	var out []int
	for _, c := range t.Causes() {
		if !slices.Contains(out, c.Layer) {
			out = append(out, c.Layer)
		}
	}
	slices.Sort(out)
	return out
}

// Variant is a way of getting the activations CF compresses: the hooks
// whose values it has, as a bundle of some level provides them.
type Variant struct {
	// Name names the variant in the results ("full", "layer").
	Name string `json:"name"`
	// Values are the hooks whose activations are compressed.
	Values []string `json:"values"`
}

// DefaultVariants returns the variants Evaluate reports by default:
// "full", the activations of values (as a full bundle, or a minimal one
// replayed, provides them), and "layer", the residual stream alone (as a
// layer bundle provides it without the model).
func DefaultVariants(values []string) []Variant {
	return []Variant{{Name: "full", Values: values}, {Name: "layer", Values: ResidualHooks()}}
}

// ResidualHooks returns the patterns of the residual stream, what a layer
// bundle stores.
func ResidualHooks() []string {
	return []string{"blocks.*.hook_resid_pre", "blocks.*.hook_resid_mid", "blocks.*.hook_resid_post"}
}

// withValues returns run with only the activations of the values patterns.
func withValues(run Run, values []string) Run {
	out := run
	out.Record.Hooks = slices.Clone(run.Record.Hooks)
	out.Hooks = slices.Clone(run.Hooks)
	for i, h := range out.Record.Hooks {
		if h.Stored && !matchAny(values, h.Name) {
			out.Record.Hooks[i].Stored = false
			out.Hooks[i].Raw = nil
		}
	}
	return out
}

// hasCompression reports whether a signal set holds the compression
// signal, the only one that depends on the variant.
func hasCompression(set []Signal) bool { return slices.Contains(set, Compression) }

// Evaluate runs CF on a scenario. Every prompt of prompts.jsonl, and
// every benign prompt of calibration.jsonl, is recorded as an incident
// would be (GPT-2 generating the detector's max new tokens greedily) and
// measured, once per variant. The evaluation prompts are dealt into two
// folds (by a hash of their text); the prompts of a fold are scored
// against a baseline of the calibration prompts and the other fold's
// benign prompts (cross-fitting: no prompt is scored against a baseline
// that holds it, and both baselines see every kind of benign prompt). For
// each variant and signal set it reports, over the failing prompts, the
// rank of the best-ranked planted layer among all layers, and the AUROC of
// the per-prompt score separating failing from benign prompts. Signal sets
// without compression do not depend on the variant and are reported for
// the first one only.
func Evaluate(ctx context.Context, dir string, m *transformer.Model, o EvalOptions) (*EvalResult, error) {
	start := time.Now()
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := scenario.Open(dir)
	if err != nil {
		return nil, err
	}
	if m.Config.ModelType != s.Truth.Model {
		return nil, fmt.Errorf("cf: scenario %s: a %s scenario, the model is %s", dir, s.Truth.Model, m.Config.ModelType)
	}
	calib, err := scenario.ReadPrompts(filepath.Join(dir, scenario.CalibrationFile))
	if err != nil {
		return nil, err
	}
	maxNew := 0
	if m.GPT2 != nil {
		maxNew = s.Truth.Detector.MaxNewTokens
	}
	cfg.Baseline.MaxNewTokens = maxNew
	sets := o.SignalSets
	if sets == nil {
		for _, sig := range AllSignals() {
			sets = append(sets, []Signal{sig})
		}
		sets = append(sets, []Signal{Norm, Projection}, AllSignals())
	}
	variants := o.Variants
	if variants == nil {
		variants = DefaultVariants(cfg.Values)
	}
	var union []string
	for _, v := range variants {
		union = append(union, v.Values...)
	}
	res := &EvalResult{Scenario: s.Truth.Scenario, Size: string(s.Truth.Size), Model: s.Truth.Model, Layers: m.Config.Layers,
		Planted: PlantedLayers(s.Truth), Variants: variants}
	trigger := map[int]bool{}
	for _, t := range s.Truth.Trigger.Tokens {
		trigger[t.ID] = true
	}
	c, err := NewCompressor(cfg.Quantize, cfg.ZstdLevel, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sketch := bundle.Sketch{K: 8, Seed: 1, Hash: bundle.HashXXH64}
	opts := RecordOptions(m, union, sketch)
	type measured struct {
		f       []*Features // per variant
		failing bool
		trigger bool
		fold    int
		scores  [][]*Scores // per variant, per set
	}
	measure := func(text string) (*measured, error) {
		ids := m.Encode(text)
		run, _, err := RecordPrompt(ctx, m, ids, maxNew, opts, union)
		if err != nil {
			return nil, fmt.Errorf("cf: scenario %s: prompt %q: %w", dir, text, err)
		}
		e := &measured{trigger: slices.ContainsFunc(ids, func(id int) bool { return trigger[id] }), fold: fold(text)}
		for _, v := range variants {
			f, err := extract(withValues(run, v.Values), c, cfg.MinRowBytes, cfg.Exclude)
			if err != nil {
				return nil, err
			}
			e.f = append(e.f, f)
		}
		return e, nil
	}
	var calibM []*measured
	for _, p := range limitPrompts(calib, o.Limit) {
		if p.Kind != scenario.Benign {
			continue
		}
		e, err := measure(p.Text)
		if err != nil {
			return nil, err
		}
		calibM = append(calibM, e)
	}
	var evals []*measured
	prompts := limitPrompts(s.Prompts, o.Limit)
	for i, p := range prompts {
		e, err := measure(p.Text)
		if err != nil {
			return nil, err
		}
		e.failing = p.Kind == scenario.Failing
		if e.failing {
			res.Failing++
		} else {
			res.Benign++
			if e.trigger {
				res.BenignWithTrigger++
			}
		}
		evals = append(evals, e)
		if o.Log != nil && (i+1)%25 == 0 {
			fmt.Fprintf(o.Log, "%s %s: %d/%d prompts measured\n", res.Scenario, res.Size, i+1, len(prompts))
		}
	}
	res.BaselinePrompts = len(calibM)
	for vi := range variants {
		bases := make([]*Baseline, 2)
		for k := range bases {
			acc := NewAccumulator(bundle.Model{Name: dir, Type: m.Config.ModelType, WeightsSHA256: "scenario"}, m.Config.Layers, sketch, cfg)
			for _, e := range calibM {
				if err := acc.Add(e.f[vi]); err != nil {
					return nil, err
				}
			}
			for _, e := range evals {
				if !e.failing && e.fold != k {
					if err := acc.Add(e.f[vi]); err != nil {
						return nil, err
					}
				}
			}
			if bases[k], err = acc.Baseline(time.Now()); err != nil {
				return nil, err
			}
			if vi == 0 {
				res.FoldBaselines = append(res.FoldBaselines, bases[k].Prompts)
			}
		}
		for _, e := range evals {
			scored := Score(e.f[vi], bases[e.fold], cfg.Exclude)
			var sc []*Scores
			for _, set := range sets {
				sc = append(sc, scored.Aggregate(set, cfg.Top, cfg.ZClip, cfg.Combine))
			}
			e.scores = append(e.scores, sc)
		}
	}
	for vi, v := range variants {
		for k, set := range sets {
			if vi > 0 && !hasCompression(set) {
				continue
			}
			row := EvalRow{Variant: v.Name, Signals: SetName(set), Ranks: make([]int, res.Layers)}
			if !hasCompression(set) {
				row.Variant = "any"
			}
			var ranks, failScores, benignScores, cleanScores, failTop, benignTop []float64
			for _, e := range evals {
				sc := e.scores[vi][k]
				topLayer := slices.Max(sc.Layers)
				if !e.failing {
					benignTop = append(benignTop, topLayer)
					benignScores = append(benignScores, sc.Score)
					if !e.trigger {
						cleanScores = append(cleanScores, sc.Score)
					}
					continue
				}
				failScores = append(failScores, sc.Score)
				failTop = append(failTop, topLayer)
				r := sc.Rank(res.Planted)
				ranks = append(ranks, float64(r))
				if r >= 1 && r <= len(row.Ranks) {
					row.Ranks[r-1]++
				}
				if r == 1 {
					row.Top1++
				}
				if r >= 1 && r <= 2 {
					row.Top2++
				}
			}
			if n := float64(len(ranks)); n > 0 {
				row.Top1 /= n
				row.Top2 /= n
				row.MeanRank = mean(ranks)
				row.MedianRank = Median(ranks)
			}
			row.AUROC = AUROC(failScores, benignScores)
			row.AUROCNoTrigger = AUROC(failScores, cleanScores)
			row.FailingScore, row.BenignScore = Median(failScores), Median(benignScores)
			row.FailingFlagged, row.BenignFlagged = fractionAtLeast(failScores, cfg.Threshold), fractionAtLeast(benignScores, cfg.Threshold)
			row.FailingTop, row.BenignTop = Median(failTop), Median(benignTop)
			if sorted := finiteSorted(cleanScores); len(sorted) > 0 {
				row.CleanP95 = stat.Quantile(0.95, stat.Empirical, sorted, nil)
			}
			res.Rows = append(res.Rows, row)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.PerPrompt = res.Seconds / float64(len(evals)+len(calibM))
	return res, nil
}

// limitPrompts keeps the first n failing and the first n benign prompts
// (all of them when n is not positive).
func limitPrompts(prompts []scenario.Prompt, n int) []scenario.Prompt {
	if n <= 0 {
		return prompts
	}
	var out []scenario.Prompt
	count := map[string]int{}
	for _, p := range prompts {
		if count[p.Kind] < n {
			count[p.Kind]++
			out = append(out, p)
		}
	}
	return out
}

// fold deals a prompt into one of two folds by a hash of its text: the
// prompt files are generated from templates in a fixed order, so a fold
// by position in the file would follow the templates' period.
func fold(text string) int {
	h := fnv.New32a()
	h.Write([]byte(text))
	return int(h.Sum32() % 2)
}

// fractionAtLeast returns the fraction of xs at or above t.
func fractionAtLeast(xs []float64, t float64) float64 {
	n := 0
	for _, x := range xs {
		if x >= t {
			n++
		}
	}
	if len(xs) == 0 {
		return 0
	}
	return float64(n) / float64(len(xs))
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// AUROC returns the area under the ROC curve of scores separating
// positives from negatives: the probability that a random positive scores
// above a random negative, ties counting one half (the Mann-Whitney U
// statistic over the product of the counts). It is NaN when either set is
// empty.
func AUROC(positives, negatives []float64) float64 {
	if len(positives) == 0 || len(negatives) == 0 {
		return nan
	}
	type item struct {
		v   float64
		pos bool
	}
	items := make([]item, 0, len(positives)+len(negatives))
	for _, v := range positives {
		items = append(items, item{v, true})
	}
	for _, v := range negatives {
		items = append(items, item{v, false})
	}
	sort.Slice(items, func(a, b int) bool { return items[a].v < items[b].v })
	// Sum the (mid)ranks of the positives.
	rankSum := 0.0
	for i := 0; i < len(items); {
		j := i
		for j < len(items) && items[j].v == items[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1 .. j, averaged
		for k := i; k < j; k++ {
			if items[k].pos {
				rankSum += mid
			}
		}
		i = j
	}
	np, nn := float64(len(positives)), float64(len(negatives))
	u := rankSum - np*(np+1)/2
	return u / (np * nn)
}

// Table formats evaluation results as a Markdown table, one line per
// scenario and signal set.
func Table(results []*EvalResult) string {
	var b strings.Builder
	b.WriteString("| scenario | size | planted layers | activations | signals | top-1 | top-2 | mean rank | AUROC | AUROC, benign without trigger | failing / benign (with trigger) / calibration prompts |\n")
	b.WriteString("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		planted := make([]string, len(r.Planted))
		for i, l := range r.Planted {
			planted[i] = fmt.Sprint(l)
		}
		for _, row := range r.Rows {
			fmt.Fprintf(&b, "| %s | %s | %s of %d | %s | %s | %s | %s | %.2f | %s | %s | %d / %d (%d) / %d |\n", r.Scenario, r.Size,
				strings.Join(planted, ", "), r.Layers, row.Variant, row.Signals, pct(row.Top1), pct(row.Top2), row.MeanRank, num(row.AUROC),
				num(row.AUROCNoTrigger), r.Failing, r.Benign, r.BenignWithTrigger, r.BaselinePrompts)
		}
	}
	return b.String()
}

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

func num(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", x)
}
