package cf

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chartColors are the bar colours: the combined score, then each signal.
var chartColors = []color.RGBA{
	{R: 0x22, G: 0x22, B: 0x22, A: 0xff}, // combined
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // compression
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // norm
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // projection
}

// Chart returns a plot of the report's scores by layer: for each layer a
// group of bars, the combined score then each signal's score alone, the
// layer's anomaly as a point and the flagging threshold as a dashed line.
// Scores are drawn as log10(1 + score), since they span orders of
// magnitude.
func (r *Report) Chart() (*plot.Plot, error) {
	p := plot.New()
	title := "CF anomaly score by layer"
	if r.Bundle != "" {
		title += ": " + filepath.Base(r.Bundle)
	}
	p.Title.Text = title
	p.X.Label.Text = "layer"
	p.Y.Label.Text = "log10(1 + score)"
	L := r.NumLayers
	combined := make(plotter.Values, L)
	for _, l := range r.Ranking {
		combined[l.Layer] = log1p10(l.Score)
	}
	series := []struct {
		name string
		vals plotter.Values
	}{{"combined (" + SetName(r.Signals) + ")", combined}}
	for _, s := range r.BySignal {
		vals := make(plotter.Values, L)
		for l := range min(L, len(s.Layers)) {
			vals[l] = log1p10(s.Layers[l])
		}
		series = append(series, struct {
			name string
			vals plotter.Values
		}{string(s.Signal) + " alone", vals})
	}
	w := vg.Points(min(16, 240/float64(max(L, 1))))
	for i, s := range series {
		bars, err := plotter.NewBarChart(s.vals, w)
		if err != nil {
			return nil, fmt.Errorf("cf: chart: %w", err)
		}
		bars.LineStyle.Width = 0
		bars.Color = chartColors[i%len(chartColors)]
		bars.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	// The anomaly (a layer against its own benign runs) flags a layer at
	// the threshold: points and a dashed line.
	anomaly := make(plotter.XYs, L)
	top := 0.0
	for _, l := range r.Ranking {
		anomaly[l.Layer] = plotter.XY{X: float64(l.Layer), Y: log1p10(l.Anomaly)}
	}
	for _, s := range series {
		for _, v := range s.vals {
			top = max(top, v)
		}
	}
	for _, a := range anomaly {
		top = max(top, a.Y)
	}
	pts, err := plotter.NewScatter(anomaly)
	if err != nil {
		return nil, fmt.Errorf("cf: chart: %w", err)
	}
	pts.Color = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	pts.Radius = vg.Points(3.5)
	p.Add(pts)
	p.Legend.Add("anomaly (vs the layer's own benign runs)", pts)
	thr := plotter.NewFunction(func(float64) float64 { return log1p10(r.Threshold) })
	thr.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	thr.Color = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	p.Add(thr)
	p.Legend.Add(fmt.Sprintf("flagging threshold %.3g (anomaly)", r.Threshold), thr)
	p.Legend.Top = true
	p.X.Min, p.X.Max = -0.6, float64(L)-0.4
	p.Y.Min = 0
	// Head room for the legend above the bars.
	p.Y.Max = 1.6 * max(top, log1p10(r.Threshold), 0.1)
	names := make([]string, L)
	for l := range L {
		names[l] = strconv.Itoa(l)
	}
	p.NominalX(names...)
	return p, nil
}

// WriteChart saves the report's chart to path; the extension (.png, .svg,
// .pdf) picks the format.
func (r *Report) WriteChart(path string) error {
	p, err := r.Chart()
	if err != nil {
		return err
	}
	width := vg.Length(max(6, 0.5*float64(r.NumLayers)+3)) * vg.Inch
	if err := p.Save(width, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("cf: chart %s: %w", path, err)
	}
	return nil
}

func log1p10(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return math.Log10(1 + x)
}
