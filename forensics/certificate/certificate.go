// Package certificate writes and verifies fx-certificate/1: the claim that
// a fix set of activation interventions corrects a recorded failure and is
// 1-minimal, with every number needed to re-check it by replay.
package certificate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/transformer"
)

// Format is the format tag of the certificates this package writes.
const Format = "fx-certificate/1"

// maxBytes bounds a certificate file.
const maxBytes = 64 << 20

// Certificate is fx-certificate/1.
type Certificate struct {
	// Format is Format.
	Format string `json:"format"`
	// Created is when the certificate was made (UTC).
	Created time.Time `json:"created"`
	// Bundle identifies the incident.
	Bundle BundleRef `json:"bundle"`
	// Model is the recorded model's identity (from the bundle).
	Model bundle.Model `json:"model"`
	// Detector is the detector that judged the incident, and Recorded
	// its verdict on the recording.
	Detector string         `json:"detector"`
	Recorded bundle.Outcome `json:"recorded_outcome"`
	// RecordedText is the recorded output text (a classifier's label).
	RecordedText string `json:"recorded_text"`
	// Metric is the failure metric (positive: failing; ≤ 0: corrected).
	Metric cca.MetricSpec `json:"metric"`
	// Tokens are the tokens the metric is computed on: the bundle's prompt,
	// then its generated tokens up to the failing step.
	Tokens []int `json:"tokens"`
	// Intervention says what the fix set's values are.
	Intervention Intervention `json:"intervention"`
	// Search says where the fix set was searched.
	Search Search `json:"search"`
	// FixSet are the interventions.
	FixSet []Member `json:"fix_set"`
	// MetricBefore and MetricAfter are the metric without and with the
	// fix set.
	MetricBefore float64 `json:"metric_before"`
	MetricAfter  float64 `json:"metric_after"`
	// Minimal claims 1-minimality; each member's MetricWithout proves it.
	Minimal bool `json:"minimal"`
	// Outcome is the detector's verdict on the run with the fix set
	// (replayed from the bundle), when it was replayed.
	Outcome *FixedOutcome `json:"outcome,omitempty"`
	// Cost is what finding the fix set cost.
	Cost cca.Cost `json:"cost"`
	// Notes say what was assumed.
	Notes []string `json:"notes,omitempty"`
}

// BundleRef identifies a bundle: its manifest's sha256 (the manifest
// holds every other file's sha256, so it stands for the whole bundle).
type BundleRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Intervention says how the fix set's values were made.
type Intervention struct {
	// Kind is cca.Patch, cca.MeanAbl or cca.ZeroAbl; Source says where the
	// values came from in words.
	Kind   string `json:"kind"`
	Source string `json:"source"`
	// Corpus are the token sequences whose mean activation over every
	// position gives the values (the counterfactual prompt alone, or the
	// baseline corpus); empty for zero.
	Corpus [][]int `json:"corpus,omitempty"`
}

// Search describes the candidate space.
type Search struct {
	Layers               []int  `json:"layers"`
	Granularity          string `json:"granularity"`
	Candidates           int    `json:"candidates"`
	CandidateActivations int    `json:"candidate_activations"`
	// LayersFrom says where the layers came from ("cf: flagged layers
	// (threshold 10)", "all layers", "--layers"), with "; " and Widened
	// appended when the search widened.
	LayersFrom string `json:"layers_from"`
	// WidenedFrom, when present, are the layers searched first (CF's
	// flagged layers), where no fix was found: the search then widened to
	// every layer, and Layers are those. Absent in certificates of
	// searches that did not widen (and in those written before it
	// existed).
	WidenedFrom []int `json:"widened_from,omitempty"`
	// DetectorPaths, when not 0, says that the search checked its fix set
	// against the detector on free generation, and how many generation
	// paths the metric then covers: the recorded one and metric.paths
	// (those free generations took with earlier fix sets).
	DetectorPaths int `json:"detector_paths,omitempty"`
}

// Member is one intervention of the fix set.
type Member struct {
	// Site and Mode (zero, or mean with Values) as fx run --intervene
	// takes them.
	Site   string           `json:"site"`
	Mode   transformer.Mode `json:"mode"`
	Values []float32        `json:"values,omitempty"`
	// Rank and Attribution are the member's attribution-patching rank and
	// estimate.
	Rank        int     `json:"rank"`
	Attribution float64 `json:"attribution"`
	// MetricWithout is the metric with every member but this one: still
	// failing (> 0) when the set is 1-minimal.
	MetricWithout float64 `json:"metric_without"`
}

// FixedOutcome is the detector's verdict on the run with the fix set.
type FixedOutcome struct {
	Failed bool   `json:"failed"`
	Detail string `json:"detail"`
	Text   string `json:"text"`
	// Flipped is true when the verdict differs from the recorded one.
	Flipped bool `json:"flipped"`
}

// BundleSHA256 returns the sha256 of a bundle's manifest.json.
func BundleSHA256(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, bundle.ManifestName))
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// New makes the certificate of a search's result on a bundle's incident.
// corpus is the sequences the intervention values were averaged over.
func New(b *bundle.Bundle, p *cca.Problem, res *cca.Result, corpus [][]int, layersFrom string) (*Certificate, error) {
	if !res.Minimal || len(res.Removed) != len(res.FixSet) {
		return nil, fmt.Errorf("certificate: the search did not prove its fix set 1-minimal")
	}
	sum, err := BundleSHA256(b.Dir)
	if err != nil {
		return nil, err
	}
	metric := res.Metric
	if metric.Kind == "" {
		metric = p.Metric
	}
	c := &Certificate{Format: Format, Created: time.Now().UTC(), Bundle: BundleRef{Path: b.Dir, SHA256: sum},
		Model: b.Manifest.Model, Detector: p.Metric.Detector, Recorded: b.Manifest.Outcome, RecordedText: recordedText(b.Input), Metric: metric,
		Tokens: p.Tokens, Intervention: Intervention{Kind: res.Intervention, Source: res.Source, Corpus: corpus},
		Search: Search{Layers: res.Layers, Granularity: res.Granularity, Candidates: res.Candidates,
			CandidateActivations: res.CandidateActivations, LayersFrom: layersFrom},
		MetricBefore: res.Before, MetricAfter: res.After, Minimal: true, Cost: res.Cost, Notes: res.Notes}
	if res.DetectorChecked {
		c.Search.DetectorPaths = res.Paths()
	}
	for i, mb := range res.FixSet {
		c.FixSet = append(c.FixSet, Member{Site: mb.Site.String(), Mode: mb.Mode, Values: mb.Values,
			Rank: mb.Rank, Attribution: mb.Attribution, MetricWithout: res.Removed[i]})
	}
	return c, nil
}

// Members returns the fix set as cca members of m.
func (c *Certificate) Members(m *transformer.Model) ([]cca.Member, error) {
	out := make([]cca.Member, len(c.FixSet))
	for i, f := range c.FixSet {
		mb, err := cca.ParseMember(m, f.Site, f.Mode, f.Values)
		if err != nil {
			return nil, fmt.Errorf("certificate: fix_set[%d]: %w", i, err)
		}
		out[i] = mb
	}
	return out, nil
}

// Write writes the certificate as indented JSON.
func (c *Certificate) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// WriteFile writes the certificate to path.
func (c *Certificate) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if err := c.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("certificate: %s: %w", path, err)
	}
	return f.Close()
}

// Read reads and checks a certificate file.
func Read(path string) (*Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("certificate: %s: %w", path, err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("certificate: %s: larger than %d bytes", path, maxBytes)
	}
	return Parse(path, data)
}

// Parse decodes a certificate and checks its structure (name is used in
// errors).
func Parse(name string, data []byte) (*Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("certificate: %s: %w", name, err)
	}
	switch {
	case c.Format != Format:
		return nil, fmt.Errorf("certificate: %s: format %q, want %q", name, c.Format, Format)
	case len(c.FixSet) == 0:
		return nil, fmt.Errorf("certificate: %s: fix_set is empty", name)
	case len(c.Tokens) == 0:
		return nil, fmt.Errorf("certificate: %s: tokens is empty", name)
	case c.Intervention.Kind != cca.ZeroAbl && len(c.Intervention.Corpus) == 0 && slices.ContainsFunc(c.FixSet, func(m Member) bool { return m.Mode == transformer.Mean }):
		return nil, fmt.Errorf("certificate: %s: intervention.corpus is empty but the fix set holds mean values", name)
	}
	return &c, nil
}

// close reports whether a replayed value matches a claimed one within a
// relative tolerance.
func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func recordedText(in bundle.Input) string {
	if in.Label != "" {
		return in.Label
	}
	return in.OutputText
}
