package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/scenario"
)

// AnalysisFormat is the format tag of analysis.json.
const AnalysisFormat = "fx-analysis/1"

// The files of a report directory, as fx analyze writes them.
const (
	// CertificateFile is the certificate (fx-certificate/1).
	CertificateFile = "certificate.json"
	// CFFile is CF's report (a cf.Report as JSON); absent when fx analyze
	// ran without a baseline.
	CFFile = "cf.json"
	// AnalysisFile is the incident and the attribution ranking (Analysis).
	AnalysisFile = "analysis.json"
	// SummaryFile is the certificate's summary for a terminal.
	SummaryFile = "summary.txt"
)

// maxFileBytes bounds the JSON files of a report directory.
const maxFileBytes = 64 << 20

// Analysis is analysis.json: what fx analyze knew besides the certificate
// and CF's report, so that a report directory alone makes the incident
// report: the incident as recorded, the attribution ranking of the
// candidate sites, and the scenario's planted components when the model
// is a scenario.
type Analysis struct {
	// Format is AnalysisFormat.
	Format string `json:"format"`
	// Created is when the analysis ran (UTC).
	Created time.Time `json:"created"`
	// Incident is the recorded incident.
	Incident Incident `json:"incident"`
	// Attribution is the ranking CCA grew its fix set along.
	Attribution Attribution `json:"attribution"`
	// GroundTruth lists the planted components of the scenario the model
	// comes from; empty for a model that is not a scenario.
	GroundTruth []scenario.Component `json:"ground_truth,omitempty"`
}

// Incident is an incident as its bundle recorded it.
type Incident struct {
	// Bundle is the bundle's directory and BundleSHA256 the sha256 of its
	// manifest (which holds every other file's sha256).
	Bundle       string `json:"bundle"`
	BundleSHA256 string `json:"bundle_sha256"`
	// Recorded is when the recording finished (UTC).
	Recorded time.Time `json:"recorded"`
	// Prompt is the prompt text (empty when the run was given token ids).
	Prompt string `json:"prompt"`
	// Tokens are the run's tokens: the prompt's (the first PromptTokens),
	// then the generated ones.
	Tokens       []Token `json:"tokens"`
	PromptTokens int     `json:"prompt_tokens"`
	// Output is the decoded output, or a classifier's label; Probabilities
	// a classifier's.
	Output        string             `json:"output"`
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
	// Generate holds the generation settings (nil for a classifier).
	Generate *bundle.Generate `json:"generate,omitempty"`
	// Outcome is the detector's verdict on the recorded run.
	Outcome bundle.Outcome `json:"outcome"`
	// Model and Runtime are the recording's provenance; RecordLevel its
	// level (minimal, layer, full).
	Model       bundle.Model   `json:"model"`
	Runtime     bundle.Runtime `json:"runtime"`
	RecordLevel string         `json:"record_level"`
}

// Token is one token: its id and its text alone.
type Token struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
}

// Attribution is attribution patching's ranking of the candidate sites.
type Attribution struct {
	// Layers are the layers searched and Granularity the candidates'
	// granularity; Candidates counts them all.
	Layers      []int  `json:"layers"`
	Granularity string `json:"granularity"`
	Candidates  int    `json:"candidates"`
	// Top are the best-ranked candidates, best first.
	Top []Candidate `json:"top"`
}

// Candidate is one ranked candidate site.
type Candidate struct {
	// Rank is the candidate's place, from 1; Site the activations.
	Rank int    `json:"rank"`
	Site string `json:"site"`
	// Layer is the site's block, Kind "neuron", "head", "attn_out" or
	// "mlp_out", Index the neuron or head (-1 for a layer).
	Layer int    `json:"layer"`
	Kind  string `json:"kind"`
	Index int    `json:"index"`
	// Attribution estimates how much intervening lowers the failure
	// metric; Abs sums the per-position estimates' absolute values.
	Attribution float64 `json:"attribution"`
	Abs         float64 `json:"abs"`
	// InFixSet is true when the certified fix set holds the site.
	InFixSet bool `json:"in_fix_set"`
}

// IncidentOf returns the incident b recorded. decode gives a token's
// text (a model's tokenizer; nil leaves the texts empty).
func IncidentOf(b *bundle.Bundle, sha256 string, decode func(id int) string) Incident {
	in, man := b.Input, b.Manifest
	inc := Incident{Bundle: b.Dir, BundleSHA256: sha256, Recorded: man.Created, Prompt: in.Text, PromptTokens: len(in.InputIDs),
		Output: in.OutputText, Probabilities: in.Probabilities, Generate: in.Generate, Outcome: man.Outcome,
		Model: man.Model, Runtime: man.Runtime, RecordLevel: man.Record.Level}
	if in.Label != "" {
		inc.Output = in.Label
	}
	ids := slices.Clone(in.InputIDs)
	if in.Generate != nil {
		ids = append(ids, in.OutputIDs...)
	}
	for _, id := range ids {
		t := Token{ID: id}
		if decode != nil {
			t.Text = decode(id)
		}
		inc.Tokens = append(inc.Tokens, t)
	}
	return inc
}

// AttributionOf returns the top n candidates of a search's ranking,
// marking those of its fix set.
func AttributionOf(res *cca.Result, n int) Attribution {
	a := Attribution{Layers: res.Layers, Granularity: res.Granularity, Candidates: res.Candidates, Top: []Candidate{}}
	fix := map[string]bool{}
	for _, m := range res.FixSet {
		fix[m.Site.String()] = true
	}
	for _, c := range res.Ranking[:min(n, len(res.Ranking))] {
		site := c.Site.String()
		a.Top = append(a.Top, Candidate{Rank: c.Rank, Site: site, Layer: c.Layer, Kind: c.Kind, Index: c.Index,
			Attribution: c.Attribution, Abs: c.Abs, InFixSet: fix[site]})
	}
	return a
}

// Write writes the analysis as indented JSON.
func (a *Analysis) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(a)
}

// WriteFile writes the analysis to path.
func (a *Analysis) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := a.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return f.Close()
}

// ReadAnalysis reads and checks an analysis.json file.
func ReadAnalysis(path string) (*Analysis, error) {
	var a Analysis
	if err := readJSON(path, &a); err != nil {
		return nil, err
	}
	if a.Format != AnalysisFormat {
		return nil, fmt.Errorf("report: %s: format %q, want %q", path, a.Format, AnalysisFormat)
	}
	return &a, nil
}

// readJSON decodes a bounded JSON file into v.
func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return fmt.Errorf("report: %s: larger than %d bytes", path, maxFileBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return nil
}

// TokenText returns a token's text for display: quoted when it has
// leading or trailing spaces or is empty, control characters and invalid
// UTF-8 escaped.
func TokenText(s string) string {
	if s == "" || strings.TrimSpace(s) != s || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}
