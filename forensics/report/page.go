// Package report makes the incident report a researcher reads in a
// browser: one self-contained HTML page (inline CSS and SVG charts, no
// script, no URL) that shows an analysed incident, where CF found it,
// the attribution ranking, the certified fix set with the metric and the
// output before and after, and whether the certificate was verified.
//
// A report directory, as fx analyze writes it, holds certificate.json,
// cf.json (with a CF baseline) and analysis.json (the incident and the
// attribution ranking); Load reads it and Page.Render writes the page.
package report

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelforensics/fx/forensics/certificate"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

//go:embed page.html.tmpl
var pageTemplate string

// Page is everything an incident report shows.
type Page struct {
	// Dir is the report directory the page comes from.
	Dir string
	// Certificate is the certificate (required).
	Certificate *certificate.Certificate
	// CF is CF's report; nil when the analysis ran without a baseline.
	CF *cf.Report
	// Analysis holds the incident and the attribution ranking; nil for a
	// report directory without analysis.json.
	Analysis *Analysis
	// Verification is the certificate's verification when the page's
	// maker ran it; nil when it did not ("not verified here").
	Verification *Verification
	// Generated is when the page was made, and Generator the program
	// that made it.
	Generated time.Time
	Generator string
}

// Verification is a verification of the certificate by replay, run by
// the page's maker.
type Verification struct {
	// Report is certificate.Verify's report.
	Report *certificate.Report
	// Bundle is the bundle replayed, and Backend the backend it ran on.
	Bundle  string
	Backend string
	// Time is when it ran.
	Time time.Time
}

// Load reads a report directory: certificate.json, and cf.json and
// analysis.json when present.
func Load(dir string) (*Page, error) {
	cert, err := certificate.Read(filepath.Join(dir, CertificateFile))
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	p := &Page{Dir: dir, Certificate: cert}
	var rep cf.Report
	switch err := readJSON(filepath.Join(dir, CFFile), &rep); {
	case err == nil:
		p.CF = &rep
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	switch a, err := ReadAnalysis(filepath.Join(dir, AnalysisFile)); {
	case err == nil:
		p.Analysis = a
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return p, nil
}

// Verified says what the page says about verification: "verified" (every
// claim confirmed by replay), "failed" (some claim not confirmed) or
// "not verified here".
func (p *Page) Verified() string {
	switch {
	case p.Verification == nil || p.Verification.Report == nil:
		return "not verified here"
	case p.Verification.Report.OK():
		return "verified"
	}
	return "failed"
}

// Render writes the page as one self-contained HTML document.
func (p *Page) Render(w io.Writer) error {
	if p.Certificate == nil {
		return fmt.Errorf("report: no certificate")
	}
	v, err := p.view()
	if err != nil {
		return err
	}
	t, err := template.New("page").Funcs(templateFuncs()).Parse(pageTemplate)
	if err != nil {
		return fmt.Errorf("report: template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	// Model text may hold URLs ("visit https://…" in a prompt). Escaped,
	// they are text, not requests; writing their slashes as character
	// references keeps even the text of a URL out of the page's source,
	// which reads the same in a browser.
	page := strings.ReplaceAll(buf.String(), "://", ":&#47;&#47;")
	if containsURL(page) {
		return fmt.Errorf("report: the page would hold a URL; a report must load nothing from a network")
	}
	_, err = io.WriteString(w, page)
	return err
}

// WriteFile renders the page to path.
func (p *Page) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// view is the page's data as the template reads it.
type view struct {
	P   *Page
	C   *certificate.Certificate
	Inc *Incident
	// Title names the incident.
	Title string
	// FailText says what failed and who judged it.
	FailText string
	// Output is the recorded output (or label), Fixed the output with the
	// fix set, when replayed.
	Output, FixedOutput string
	Fixed               bool
	// Classifier is true for a classifier's incident: the output is a
	// label, not a continuation of the prompt.
	Classifier bool
	// Status is Page.Verified; Checks the verification's checks.
	Status string
	Checks []certificate.Check
	// Where summarises CF's finding in a sentence.
	Where string
	// Charts.
	CFLayers, CFHeat, Metric template.HTML
	// CF tables.
	CFPositions []positionRow
	CFTop       []cf.Deviation
	// Attribution and fix set rows.
	Attribution []attributionRow
	FixSet      []fixRow
	// Causes are the scenario's planted causes; CausesFound how many the
	// fix set holds.
	Causes      []scenario.Component
	CausesFound int
	// Notes gathers the certificate's and CF's notes.
	Notes []string
	// Replay is the fx replay command that applies the fix set by hand,
	// when every member is a zero or a single value; empty otherwise.
	Replay string
}

type positionRow struct {
	cf.PositionScore
	Text string
}

type attributionRow struct {
	Candidate
	// Width is the bar's width in percent of the largest attribution.
	Width   float64
	Planted *scenario.Component
}

type fixRow struct {
	certificate.Member
	Planted *scenario.Component
}

// attributionRows is how many ranked candidates the page lists.
const attributionRows = 20

func (p *Page) view() (*view, error) {
	c := p.Certificate
	v := &view{P: p, C: c, Status: p.Verified(), Output: c.RecordedText, Notes: slices.Clone(c.Notes)}
	if p.Analysis != nil {
		v.Inc = &p.Analysis.Incident
	}
	v.Title = filepath.Base(c.Bundle.Path)
	v.Classifier = c.Model.Type == "bert"
	v.FailText = fmt.Sprintf("detector %s: %s.", c.Detector, c.Recorded.Detail)
	if !c.Recorded.Failed {
		v.FailText = fmt.Sprintf("the scenario's detector %s judges the recorded run failing (the recording ran %s): the failure metric is %.4g, above 0.",
			c.Detector, c.Recorded.Detector, c.MetricBefore)
		if c.Recorded.Detector == "none" || c.Recorded.Detector == "" {
			v.FailText = fmt.Sprintf("the scenario's detector %s judges the recorded run failing (the recording ran no detector): the failure metric is %.4g, above 0.",
				c.Detector, c.MetricBefore)
		}
	}
	if c.Outcome != nil {
		v.FixedOutput, v.Fixed = c.Outcome.Text, !c.Outcome.Failed
	}
	if p.Verification != nil && p.Verification.Report != nil {
		v.Checks = p.Verification.Report.Checks
	}
	truth := map[string]*scenario.Component{}
	if p.Analysis != nil {
		for i := range p.Analysis.GroundTruth {
			comp := &p.Analysis.GroundTruth[i]
			truth[comp.Site] = comp
			if comp.Cause {
				v.Causes = append(v.Causes, *comp)
			}
		}
	}
	for _, m := range c.FixSet {
		row := fixRow{Member: m, Planted: truth[m.Site]}
		if row.Planted != nil && row.Planted.Cause {
			v.CausesFound++
		}
		v.FixSet = append(v.FixSet, row)
	}
	v.Replay = replayCommand(c)
	bars := []metricBar{{"recorded run (no intervention)", c.MetricBefore}, {"with the fix set", c.MetricAfter}}
	for _, m := range c.FixSet {
		bars = append(bars, metricBar{"fix set without " + m.Site, m.MetricWithout})
	}
	var err error
	if v.Metric, err = metricChart(bars); err != nil {
		return nil, err
	}
	if p.Analysis != nil {
		top := 0.0
		for _, a := range p.Analysis.Attribution.Top {
			top = max(top, abs(a.Attribution))
		}
		for _, a := range p.Analysis.Attribution.Top[:min(attributionRows, len(p.Analysis.Attribution.Top))] {
			row := attributionRow{Candidate: a, Planted: truth[a.Site]}
			if top > 0 {
				row.Width = 100 * abs(a.Attribution) / top
			}
			v.Attribution = append(v.Attribution, row)
		}
	}
	if r := p.CF; r != nil {
		v.Notes = append(v.Notes, r.Notes...)
		if v.CFLayers, err = cfLayerChart(r); err != nil {
			return nil, err
		}
		var tokens []Token
		prompt := 0
		if v.Inc != nil {
			tokens, prompt = v.Inc.Tokens, v.Inc.PromptTokens
		}
		if v.CFHeat, err = cfHeatmap(r, tokens, prompt); err != nil {
			return nil, err
		}
		pos := slices.Clone(r.Positions)
		sort.SliceStable(pos, func(a, b int) bool { return pos[a].Score > pos[b].Score })
		for _, ps := range pos[:min(5, len(pos))] {
			row := positionRow{PositionScore: ps, Text: "?"}
			if ps.Position < len(tokens) {
				row.Text = TokenText(tokens[ps.Position].Text)
			}
			v.CFPositions = append(v.CFPositions, row)
		}
		v.CFTop = r.Top[:min(10, len(r.Top))]
		v.Where = whereText(r, v.CFPositions, c.Search.WidenedFrom)
	}
	return v, nil
}

// replayCommand returns the fx replay command that runs the incident with
// the fix set, or "" when a member's values do not fit on a command line
// (more than one value: a head).
func replayCommand(c *certificate.Certificate) string {
	parts := []string{"fx", "replay", shellQuote(c.Bundle.Path)}
	for _, m := range c.FixSet {
		var mode string
		switch {
		case m.Mode == transformer.Zero:
			mode = "zero"
		case m.Mode == transformer.Mean && len(m.Values) == 1:
			mode = "set:" + strconv.FormatFloat(float64(m.Values[0]), 'g', -1, 32)
		default:
			return ""
		}
		parts = append(parts, "--intervene", shellQuote(m.Site+"="+mode))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,=+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// whereText says in a sentence where CF found the incident, and, when the
// search found no fix within CF's layers (widenedFrom, the certificate's
// search.widened_from), that it went on over every layer.
func whereText(r *cf.Report, top []positionRow, widenedFrom []int) string {
	if len(r.Ranking) == 0 {
		return "CF scored no layer."
	}
	l := r.Ranking[0]
	s := fmt.Sprintf("CF flagged %s (anomaly ≥ %.3g against benign runs); the most anomalous is layer %d, at position %d",
		layersText(r.Flagged), r.Threshold, l.Layer, l.Position)
	if len(r.Flagged) == 0 {
		s = fmt.Sprintf("CF flagged no layer (anomaly ≥ %.3g against benign runs), so CCA searched every layer; the highest score is layer %d's, at position %d",
			r.Threshold, l.Layer, l.Position)
	}
	for _, t := range top {
		if t.Position == l.Position {
			s += fmt.Sprintf(" (token %s)", t.Text)
			break
		}
	}
	s += "."
	if len(widenedFrom) > 0 {
		s += fmt.Sprintf(" No fix lay within %s, so CCA searched every layer.", layersText(widenedFrom))
	}
	return s
}

func layersText(layers []int) string {
	switch len(layers) {
	case 0:
		return "no layer"
	case 1:
		return fmt.Sprintf("layer %d", layers[0])
	}
	parts := make([]string, len(layers))
	for i, l := range layers {
		parts[i] = fmt.Sprint(l)
	}
	return "layers " + strings.Join(parts, ", ")
}

func abs(x float64) float64 { return max(x, -x) }

// templateFuncs returns the template's helpers.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"num": func(x any) string { return fmt.Sprintf("%.4g", x) },
		"short": func(s string) string {
			if len(s) > 12 {
				return s[:12] + "…"
			}
			return s
		},
		"ints": func(xs []int) string {
			parts := make([]string, len(xs))
			for i, x := range xs {
				parts[i] = fmt.Sprint(x)
			}
			return strings.Join(parts, ", ")
		},
		"tok":  TokenText,
		"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"pct":  func(x float64) string { return fmt.Sprintf("%.1f%%", x) },
		"sub":  func(a, b int) int { return a - b },
		"len1": func(n int) bool { return n == 1 },
	}
}
