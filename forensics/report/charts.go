package report

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/modelforensics/fx/forensics/cf"
)

// Chart colours: failing (metric > 0) and corrected (≤ 0).
var (
	failColor = color.RGBA{R: 0xc6, G: 0x28, B: 0x28, A: 0xff}
	fixColor  = color.RGBA{R: 0x2e, G: 0x7d, B: 0x32, A: 0xff}
)

// svgScale is the charts' size on the page in CSS pixels per point: a
// fifth larger than print size (4/3), to match the page's text.
const svgScale = 1.6

// svgOpen matches the opening tag vgsvg writes.
var svgOpen = regexp.MustCompile(`(?s)<svg width="([0-9.e+-]+)pt" height="([0-9.e+-]+)pt" viewBox="([^"]*)".*?>`)

// inlineSVG draws a canvas-filling function on a w × h SVG canvas and
// returns the SVG for inlining in HTML5: no XML prolog, no namespace
// declarations (the HTML parser puts <svg> in the SVG namespace), so the
// page holds no URL at all; label is its accessible name.
func inlineSVG(w, h vg.Length, label string, drawOn func(draw.Canvas) error) (template.HTML, error) {
	c := vgsvg.New(w, h)
	if err := drawOn(draw.New(c)); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("report: svg: %w", err)
	}
	s := buf.String()
	m := svgOpen.FindStringSubmatchIndex(s)
	if m == nil {
		return "", fmt.Errorf("report: svg: unexpected header from vgsvg")
	}
	viewBox := s[m[6]:m[7]]
	open := fmt.Sprintf(`<svg class="chart" width="%.0f" height="%.0f" viewBox="%s" role="img" aria-label="%s">`,
		svgScale*w.Points(), svgScale*h.Points(), viewBox, template.HTMLEscapeString(label))
	// The document is trusted: vgsvg escapes every text it draws
	// (html.EscapeString) and writes numbers and style attributes only.
	return template.HTML(open + s[m[1]:]), nil // #nosec G203 -- vgsvg output, text escaped
}

// plotSVG renders a plot as inline SVG.
func plotSVG(p *plot.Plot, w, h vg.Length, label string) (template.HTML, error) {
	return inlineSVG(w, h, label, func(dc draw.Canvas) error {
		p.Draw(dc)
		return nil
	})
}

// cfLayerChart is CF's chart of the layer scores.
func cfLayerChart(r *cf.Report) (template.HTML, error) {
	p, err := r.Chart()
	if err != nil {
		return "", err
	}
	p.Title.Text = "CF anomaly score by layer"
	w := vg.Length(max(6.5, 0.5*float64(r.NumLayers)+3)) * vg.Inch
	return plotSVG(p, w, 3.6*vg.Inch, "CF anomaly score by layer")
}

// cellGrid is CF's layer × position scores as a heat map grid: columns
// are layers, rows positions; values log10(1 + score).
type cellGrid struct{ cells [][]float64 }

func (g cellGrid) Dims() (c, r int) {
	if len(g.cells) == 0 {
		return 0, 0
	}
	return len(g.cells), len(g.cells[0])
}
func (g cellGrid) Z(c, r int) float64 { return log1p10(g.cells[c][r]) }
func (g cellGrid) X(c int) float64    { return float64(c) }
func (g cellGrid) Y(r int) float64    { return float64(r) }

// rowTicks labels positions with their tokens, every step-th row.
type rowTicks struct {
	labels []string
	step   int
}

// Ticks returns a tick per labelled row in [lo, hi].
func (t rowTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for i := range t.labels {
		v := float64(i)
		if v < lo || v > hi {
			continue
		}
		tk := plot.Tick{Value: v}
		if i%t.step == 0 {
			tk.Label = t.labels[i]
		}
		ticks = append(ticks, tk)
	}
	return ticks
}

// layerTicks labels every layer, starring the flagged ones.
type layerTicks struct {
	n       int
	flagged map[int]bool
}

// Ticks returns a tick at each layer.
func (t layerTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for l := range t.n {
		if v := float64(l); v >= lo && v <= hi {
			label := strconv.Itoa(l)
			if t.flagged[l] {
				label += "*"
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	return ticks
}

// heatRowHeight is the height of one position in the heat map.
const heatRowHeight = 0.24 * vg.Inch

// maxCellLabels bounds the cells of a heat map that get their value
// written in (beyond, the numbers would not fit).
const maxCellLabels = 48 * 16

// heatColors returns the heat map's colour map, white (0) to dark red
// (top), linear in luminance.
func heatColors(top float64) (palette.ColorMap, error) {
	dark2light := []color.Color{
		color.RGBA{R: 0x7f, A: 0xff}, color.RGBA{R: 0xd7, G: 0x30, B: 0x1f, A: 0xff},
		color.RGBA{R: 0xfc, G: 0x8d, B: 0x59, A: 0xff}, color.RGBA{R: 0xfd, G: 0xd4, B: 0x9e, A: 0xff},
		color.RGBA{R: 0xff, G: 0xf7, B: 0xec, A: 0xff},
	}
	cm, err := moreland.NewLuminance(dark2light)
	if err != nil {
		return nil, fmt.Errorf("report: heat map colours: %w", err)
	}
	cm = palette.Reverse(cm)
	cm.SetMin(0)
	cm.SetMax(top)
	return cm, nil
}

// barGrid is a colour bar drawn as a one-column heat map (rectangles,
// not an image, so it scales with the page).
type barGrid struct {
	top float64
	n   int
}

func (g barGrid) Dims() (c, r int)   { return 1, g.n }
func (g barGrid) Z(_, r int) float64 { return g.Y(r) }
func (g barGrid) X(int) float64      { return 0 }
func (g barGrid) Y(r int) float64    { return g.top * (float64(r) + 0.5) / float64(g.n) }

// cfHeatmap is CF's token × layer heat map: a row per position (the
// prompt's tokens, then the generated ones), a column per layer (flagged
// layers starred), the colour log10(1 + score), the score written in each
// cell when they fit, and a colour bar.
func cfHeatmap(r *cf.Report, tokens []Token, promptTokens int) (template.HTML, error) {
	g := cellGrid{cells: r.Cells}
	L, T := g.Dims()
	if L == 0 || T == 0 {
		return "", nil
	}
	top := 0.0
	for _, col := range r.Cells {
		for _, v := range col {
			top = max(top, log1p10(v))
		}
	}
	top = max(top, 0.1)
	cm, err := heatColors(top)
	if err != nil {
		return "", err
	}
	labels := make([]string, T)
	for p := range T {
		tok := "?"
		if p < len(tokens) {
			tok = TokenText(tokens[p].Text)
		}
		mark := ""
		if p >= promptTokens && promptTokens > 0 {
			mark = " (gen)"
		}
		labels[p] = fmt.Sprintf("%d  %s%s", p, truncate(tok, 24), mark)
	}
	plotH := vg.Length(min(float64(T)*heatRowHeight.Points(), (22 * vg.Inch).Points()))
	step := max(1, int(math.Ceil(float64(T)*heatRowHeight.Points()/plotH.Points())))
	flagged := map[int]bool{}
	for _, l := range r.Flagged {
		flagged[l] = true
	}

	hp := plot.New()
	hp.Title.Text = "CF score by position and layer"
	hp.X.Label.Text = "layer (* flagged)"
	hp.Y.Label.Text = "position  token"
	hm := plotter.NewHeatMap(g, cm.Palette(255))
	hm.Min, hm.Max = 0, top
	hp.Add(hm)
	if L*T <= maxCellLabels {
		var xys plotter.XYs
		var texts []string
		var styles []text.Style
		for l := range L {
			for p := range T {
				xys = append(xys, plotter.XY{X: float64(l), Y: float64(p)})
				texts = append(texts, fmt.Sprintf("%.3g", r.Cells[l][p]))
				st := hp.X.Tick.Label
				st.Font.Size = vg.Points(8)
				st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
				if g.Z(l, p) > 0.55*top {
					st.Color = color.White
				}
				styles = append(styles, st)
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return "", fmt.Errorf("report: heat map: %w", err)
		}
		lb.TextStyle = styles
		hp.Add(lb)
	}
	hp.X.Tick.Marker = layerTicks{n: L, flagged: flagged}
	hp.Y.Tick.Marker = rowTicks{labels: labels, step: step}
	hp.Y.Scale = plot.InvertedScale{Normalizer: plot.LinearScale{}}
	hp.X.Min, hp.X.Max = -0.5, float64(L)-0.5
	hp.Y.Min, hp.Y.Max = -0.5, float64(T)-0.5
	hp.X.Padding, hp.Y.Padding = 0, 0

	bg := barGrid{top: top, n: 64}
	cb := plot.New()
	cb.Title.Text = "log10(1+score)"
	cb.Title.TextStyle.Font.Size = vg.Points(9)
	bar := plotter.NewHeatMap(bg, cm.Palette(255))
	bar.Min, bar.Max = 0, top
	cb.Add(bar)
	cb.HideX()
	cb.X.Min, cb.X.Max = -0.5, 0.5
	cb.Y.Min, cb.Y.Max = 0, top
	cb.Y.Padding = 0

	barW := 1.0 * vg.Inch
	w := vg.Length(max(7, 0.9*float64(L)+3.5)) * vg.Inch
	h := plotH + 1.3*vg.Inch
	return inlineSVG(w, h, "CF score by position and layer", func(dc draw.Canvas) error {
		hp.Draw(draw.Crop(dc, 0, -barW, 0, 0))
		// The colour bar spans the heat map's rows.
		cb.Draw(draw.Crop(dc, w-barW+0.2*vg.Inch, 0, 0.7*vg.Inch, -0.25*vg.Inch))
		return nil
	})
}

// metricBar is one bar of the metric chart.
type metricBar struct {
	label string
	value float64
}

// metricChart draws the failure metric of the recorded run, with the fix
// set, and with the fix set less each member, as horizontal bars: red
// where the metric is positive (failing), green where it is not.
func metricChart(bars []metricBar) (template.HTML, error) {
	p := plot.New()
	p.Title.Text = "failure metric (> 0: failing; ≤ 0: corrected)"
	p.X.Label.Text = "metric"
	n := len(bars)
	lo, hi := 0.0, 0.0
	names := make([]string, n)
	for i, b := range bars {
		// The first bar at the top: rows are drawn from the bottom.
		names[n-1-i] = truncate(b.label, 56)
		lo, hi = min(lo, b.value), max(hi, b.value)
		vals := make(plotter.Values, n)
		vals[n-1-i] = b.value
		bc, err := plotter.NewBarChart(vals, vg.Points(14))
		if err != nil {
			return "", fmt.Errorf("report: metric chart: %w", err)
		}
		bc.Horizontal = true
		bc.LineStyle.Width = 0
		bc.Color = failColor
		if b.value <= 0 {
			bc.Color = fixColor
		}
		p.Add(bc)
	}
	line, err := plotter.NewLine(plotter.XYs{{X: 0, Y: -0.6}, {X: 0, Y: float64(n) - 0.4}})
	if err != nil {
		return "", fmt.Errorf("report: metric chart: %w", err)
	}
	line.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
	p.Add(line)
	p.NominalY(names...)
	pad := 0.08 * max(hi-lo, 1)
	p.X.Min, p.X.Max = lo-pad, hi+pad
	p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4
	h := vg.Length(float64(n)*0.32+1.1) * vg.Inch
	return plotSVG(p, 7.5*vg.Inch, h, "failure metric before and after the fix")
}

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func log1p10(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return math.Log10(1 + x)
}

// containsURL reports whether s holds an http or https URL.
func containsURL(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "http://") || strings.Contains(l, "https://")
}
