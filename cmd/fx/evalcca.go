package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/certificate"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// ccaEvalRow is the evaluation of one scenario at one granularity.
type ccaEvalRow struct {
	Scenario, Granularity string
	Prompts, Certified    int
	Flipped               int     // certified fixes whose detector verdict flipped on replay
	MeanSize              float64 // mean fix-set size
	MeanFrac              float64 // mean size / candidate sites
	MeanActFrac           float64 // mean covered activations / candidate activations
	Precision, Recall     float64 // against ground-truth causes (mean over certified)
	StageRecall           float64 // recall within the planted stages the fix set touches
	Forwards, Seconds     float64 // mean per prompt, all layers
	Paths                 float64 // generation paths the certified metric follows (summed)
	CFForwards, CFSeconds float64 // mean per prompt, CF's scope (CF time included; both searches when widened)
	SameSet               int     // prompts where CF→CCA found the same fix set
	CFRuns                int
	CFNone                int // prompts where CF flagged no layer (CF→CCA searched every layer)
	CFWidened             int // CF→CCA runs that found no fix in CF's layers and widened to every layer
	Errors                []string
}

// evalCCA is `fx eval cca SCENARIO_DIR...`: over each scenario's failing
// prompts, the flip rate of certified fixes on replay, fix-set size,
// ground-truth precision and recall, and CF→CCA against CCA over all
// layers.
func evalCCA(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval cca", stderr)
	limit := fs.Int("prompts", 0, "sample at most this many failing prompts per scenario, evenly spaced (0: all)")
	grans := fs.String("granularity", "neuron,head", "granularities to evaluate, comma-separated")
	noCF := fs.Bool("no-cf", false, "skip the CF→CCA comparison (it builds a CF baseline from the benign prompts)")
	config := fs.String("config", "", "YAML config file over configs/default.yaml (cf and cca sections)")
	asJSON := fs.Bool("json", false, "print JSON (a row per scenario and granularity, means per certified prompt)")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none unless standard error is a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx eval cca SCENARIO_DIR... [flags]")
		fmt.Fprintln(stderr, "Per scenario and granularity, over the failing prompts: the flip rate of certified fixes on replay,")
		fmt.Fprintln(stderr, "fix-set size, precision and recall against the planted causes, and CF→CCA against CCA over all layers.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want: fx eval cca SCENARIO_DIR... [--prompts N]")
	}
	ccfg, err := ccaConfig(*config)
	if err != nil {
		return usageError{err}
	}
	cfCfg, err := cf.LoadConfig(cf.NamedYAML{Name: "configs/default.yaml", Data: configs.DefaultYAML()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	bar := newProgress(stderr, *quiet)
	defer bar.done()
	var rows []ccaEvalRow
	for _, dir := range pos {
		sc, err := scenario.Open(dir)
		if err != nil {
			return usageError{err}
		}
		m, err := sc.Load(cpu.New())
		if err != nil {
			return err
		}
		var base *cf.Baseline
		if !*noCF {
			var prompts [][]int
			for _, p := range sc.PromptsOf(scenario.Benign) {
				prompts = append(prompts, m.Encode(p.Text))
			}
			base, err = cf.BuildBaseline(ctx, m, prompts, cf.BaselineOptions{Config: cfCfg, Model: bundle.Model{Name: dir, Type: m.Config.ModelType}})
			if err != nil {
				return fmt.Errorf("eval cca: %s: cf baseline: %w", dir, err)
			}
		}
		failing := sc.PromptsOf(scenario.Failing)
		if *limit > 0 && len(failing) > *limit {
			var pick []scenario.Prompt
			for i := range *limit {
				pick = append(pick, failing[i*len(failing) / *limit])
			}
			failing = pick
		}
		for _, g := range strings.Split(*grans, ",") {
			cfg := ccfg
			cfg.Granularity = strings.TrimSpace(g)
			row, err := evalScenario(ctx, sc, m, failing, cfg, base, cfCfg, bar)
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
		m.Close()
	}
	bar.done()
	if *asJSON {
		out := make([]ccaEvalJSON, len(rows))
		for i, r := range rows {
			out[i] = r.json()
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintln(stdout, "| scenario | granularity | prompts | certified | flip rate | mean fix set | of candidate sites | of candidate activations | precision | recall (all causes) | recall (stages hit) | CCA all layers: forwards, s | CF→CCA: forwards, s | same fix set |")
	fmt.Fprintln(stdout, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Fprintln(stdout, formatEvalRow(r))
	}
	for _, r := range rows {
		if r.CFNone > 0 || r.CFWidened > 0 {
			fmt.Fprintf(stdout, "- %s %s: CF→CCA: CF flagged no layer on %d prompts (every layer searched); no fix within CF's layers, widened to every layer, on %d of %d\n",
				r.Scenario, r.Granularity, r.CFNone, r.CFWidened, r.CFRuns)
		}
	}
	for _, r := range rows {
		for _, e := range r.Errors {
			fmt.Fprintf(stdout, "- %s %s: %s\n", r.Scenario, r.Granularity, e)
		}
	}
	return nil
}

// ccaEvalJSON is one row of fx eval cca --json: rates and means per
// certified prompt.
type ccaEvalJSON struct {
	Scenario    string  `json:"scenario"`
	Granularity string  `json:"granularity"`
	Prompts     int     `json:"prompts"`
	Certified   int     `json:"certified"`
	Flipped     int     `json:"flipped"`
	FlipRate    float64 `json:"flip_rate"`
	MeanSize    float64 `json:"mean_fix_set_size"`
	SiteFrac    float64 `json:"fraction_of_candidate_sites"`
	ActFrac     float64 `json:"fraction_of_candidate_activations"`
	Precision   float64 `json:"precision"`
	Recall      float64 `json:"recall"`
	StageRecall float64 `json:"recall_in_stages_hit"`
	Forwards    float64 `json:"forwards"`
	Seconds     float64 `json:"seconds"`
	// Paths is the mean number of generation paths a certified fix set's
	// metric follows (1: the recorded generation alone; more when free
	// generation with an earlier fix set still failed, cca.max_paths).
	Paths float64 `json:"generation_paths"`
	// CFRuns counts the prompts CF→CCA certified; its means are over them.
	CFRuns     int     `json:"cf_runs"`
	CFForwards float64 `json:"cf_forwards,omitempty"`
	CFSeconds  float64 `json:"cf_seconds,omitempty"`
	SameSet    int     `json:"cf_same_fix_set"`
	// CFNone counts the prompts where CF flagged no layer (CF→CCA then
	// searched every layer), and CFWidened the CF→CCA runs that found no
	// fix within CF's flagged layers and widened to every layer (their
	// forwards and seconds count both searches).
	CFNone    int      `json:"cf_flagged_none"`
	CFWidened int      `json:"cf_widened"`
	Errors    []string `json:"errors,omitempty"`
}

func (r ccaEvalRow) json() ccaEvalJSON {
	n := float64(max(r.Certified, 1))
	out := ccaEvalJSON{Scenario: r.Scenario, Granularity: r.Granularity, Prompts: r.Prompts, Certified: r.Certified,
		Flipped: r.Flipped, FlipRate: float64(r.Flipped) / n, MeanSize: r.MeanSize / n, SiteFrac: r.MeanFrac / n,
		ActFrac: r.MeanActFrac / n, Precision: r.Precision / n, Recall: r.Recall / n, StageRecall: r.StageRecall / n,
		Forwards: r.Forwards / n, Seconds: r.Seconds / n, Paths: r.Paths / n, CFRuns: r.CFRuns, SameSet: r.SameSet,
		CFNone: r.CFNone, CFWidened: r.CFWidened, Errors: r.Errors}
	if r.CFRuns > 0 {
		out.CFForwards, out.CFSeconds = r.CFForwards/float64(r.CFRuns), r.CFSeconds/float64(r.CFRuns)
	}
	return out
}

func formatEvalRow(r ccaEvalRow) string {
	n := float64(max(r.Certified, 1))
	cfCol, same := "—", "—"
	if r.CFRuns > 0 {
		cfCol = fmt.Sprintf("%.1f, %.2f", r.CFForwards/float64(r.CFRuns), r.CFSeconds/float64(r.CFRuns))
		same = fmt.Sprintf("%d/%d", r.SameSet, r.CFRuns)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d/%d (%.0f%%) | %.2f | %.3f%% | %.4f%% | %.2f | %.2f | %.2f | %.1f, %.2f | %s | %s |",
		r.Scenario, r.Granularity, r.Prompts, r.Certified, r.Flipped, r.Certified, 100*float64(r.Flipped)/n,
		r.MeanSize/n, 100*r.MeanFrac/n, 100*r.MeanActFrac/n, r.Precision/n, r.Recall/n, r.StageRecall/n,
		r.Forwards/n, r.Seconds/n, cfCol, same)
}

// evalScenario runs CCA on each failing prompt and scores the fix sets.
func evalScenario(ctx context.Context, sc *scenario.Scenario, m *transformer.Model, prompts []scenario.Prompt, cfg cca.Config, base *cf.Baseline, cfCfg cf.Config, bar *progress) (ccaEvalRow, error) {
	row := ccaEvalRow{Scenario: sc.Truth.Scenario + "/" + string(sc.Truth.Size), Granularity: cfg.Granularity, Prompts: len(prompts)}
	causes := sc.Truth.Causes()
	for i, pr := range prompts {
		bar.count(i, len(prompts), row.Scenario+" "+row.Granularity)
		oc, out, err := sc.Check(ctx, m, pr.Text, nil)
		if err != nil {
			return row, err
		}
		if !oc.Failed {
			row.Errors = append(row.Errors, fmt.Sprintf("%q does not fail", pr.Text))
			continue
		}
		inc := cca.Incident{Text: pr.Text, PromptIDs: m.Encode(pr.Text), OutputIDs: out.Tokens, Label: out.Label}
		p, err := cca.NewProblem(ctx, m, inc, "", sc)
		if err != nil {
			row.Errors = append(row.Errors, fmt.Sprintf("%q: %v", pr.Text, err))
			continue
		}
		start := time.Now()
		res, err := cca.Search(ctx, p, nil, cfg, nil)
		if err != nil {
			row.Errors = append(row.Errors, fmt.Sprintf("%q: %v", pr.Text, err))
			continue
		}
		secs := time.Since(start).Seconds()
		row.Certified++
		row.Forwards += float64(res.Cost.Forwards)
		row.Paths += float64(res.Paths())
		row.Seconds += secs
		fixed, _, err := sc.Check(ctx, m, pr.Text, cca.Interventions(m, res.FixSet))
		if err != nil {
			return row, err
		}
		if !fixed.Failed {
			row.Flipped++
		}
		row.MeanSize += float64(len(res.FixSet))
		row.MeanFrac += float64(len(res.FixSet)) / float64(res.Candidates)
		acts := 0
		var sites, raw []string
		for _, mb := range res.FixSet {
			acts += len(mb.Values)
			if mb.Values == nil {
				acts++
			}
			sites = append(sites, truthSite(mb))
			raw = append(raw, mb.Site.String())
		}
		row.MeanActFrac += float64(acts*len(p.Tokens)) / float64(res.CandidateActivations)
		hits, stages := 0, map[int]bool{}
		for _, c := range causes {
			if slices.Contains(sites, c.Site) {
				hits++
				stages[c.Stage] = true
			}
		}
		row.Precision += float64(hits) / float64(len(sites))
		row.Recall += float64(hits) / float64(len(causes))
		inStages := 0
		for _, c := range causes {
			if stages[c.Stage] {
				inStages++
			}
		}
		if inStages > 0 {
			row.StageRecall += float64(hits) / float64(inStages)
		}
		if base == nil {
			continue
		}
		// CF→CCA: CF's flagged layers (CF's own run and scoring included).
		cfStart := time.Now()
		maxNew := sc.Truth.Detector.MaxNewTokens
		run, _, err := cf.RecordPrompt(ctx, m, inc.PromptIDs, maxNew, cf.RecordOptions(m, cfCfg.Values, base.Sketch), cfCfg.Values)
		if err != nil {
			return row, err
		}
		rep, err := cf.Analyze(run, base, cfCfg)
		if err != nil {
			return row, err
		}
		// The scope fx analyze --baseline searches: CF's flagged layers,
		// widened to every layer when no fix lies within them; every layer
		// when CF flagged none.
		scope := certificate.CFScope(rep.Flagged, rep.Threshold)
		if len(rep.Flagged) == 0 {
			row.CFNone++
		}
		cfRes, searched, err := certificate.SearchWithin(ctx, p, scope, cfg, nil)
		if err != nil {
			row.Errors = append(row.Errors, fmt.Sprintf("%q: CF→CCA (layers %v): %v", pr.Text, rep.Flagged, err))
			continue
		}
		if searched.WidenedFrom != nil {
			row.CFWidened++
		}
		row.CFRuns++
		row.CFForwards += float64(cfRes.Cost.Forwards + 1) // + CF's recorded run
		row.CFSeconds += time.Since(cfStart).Seconds()
		var cfSites []string
		for _, mb := range cfRes.FixSet {
			cfSites = append(cfSites, mb.Site.String())
		}
		if slices.Equal(raw, cfSites) {
			row.SameSet++
		}
	}
	return row, nil
}

// truthSite names a fix-set member as ground_truth.json names components:
// a head's query or key (with cca.query_key) is its head, hook_z[head=H].
func truthSite(mb cca.Member) string {
	if mb.Kind == "q" || mb.Kind == "k" {
		return fmt.Sprintf("blocks.%d.attn.hook_z[head=%d]", mb.Layer, mb.Index)
	}
	return mb.Site.String()
}
