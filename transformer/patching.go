package transformer

import (
	"context"
	"fmt"
	"math"
)

// Metric turns one sequence's model output into the scalar an experiment
// tracks (a logit difference, a log-probability, a classifier margin).
type Metric struct {
	// Name describes the metric ("logit-diff 1448 - 1757").
	Name string
	// Of computes the metric of batch row row of out.
	Of func(out []float32, shape []int, row int) float64
	// Grad adds the gradient of Of(out, shape, row) with respect to out
	// into dout (shaped like out).
	Grad func(out []float32, shape []int, row int, dout []float32)
}

// LogitDiff is logits[a] - logits[b] at the last position of a [B, T, V]
// output (the next-token prediction).
func LogitDiff(a, b int) Metric {
	return Metric{
		Name: fmt.Sprintf("logit-diff %d - %d", a, b),
		Of: func(out []float32, shape []int, row int) float64 {
			last := lastRow(out, shape, row)
			return float64(last[a]) - float64(last[b])
		},
		Grad: func(out []float32, shape []int, row int, dout []float32) {
			d := lastRow(dout, shape, row)
			d[a]++
			d[b]--
		},
	}
}

// LogProb is the log-probability of token at the last position of a
// [B, T, V] output.
func LogProb(token int) Metric {
	return Metric{
		Name: fmt.Sprintf("logprob %d", token),
		Of: func(out []float32, shape []int, row int) float64 {
			last := lastRow(out, shape, row)
			return float64(last[token]) - logSumExp(last)
		},
		Grad: func(out []float32, shape []int, row int, dout []float32) {
			last, d := lastRow(out, shape, row), lastRow(dout, shape, row)
			lse := logSumExp(last)
			for i, l := range last {
				d[i] -= float32(math.Exp(float64(l) - lse))
			}
			d[token]++
		},
	}
}

// ClassMargin is logits[pos] - logits[neg] of a [B, labels] classifier
// output.
func ClassMargin(pos, neg int) Metric {
	return Metric{
		Name: fmt.Sprintf("class-margin %d - %d", pos, neg),
		Of: func(out []float32, shape []int, row int) float64 {
			n := shape[len(shape)-1]
			return float64(out[row*n+pos]) - float64(out[row*n+neg])
		},
		Grad: func(out []float32, shape []int, row int, dout []float32) {
			n := shape[len(shape)-1]
			dout[row*n+pos]++
			dout[row*n+neg]--
		},
	}
}

// lastRow returns the last position's logits of batch row row.
func lastRow(out []float32, shape []int, row int) []float32 {
	V := shape[len(shape)-1]
	per := len(out) / shape[0]
	return out[row*per+per-V : row*per+per]
}

func logSumExp(xs []float32) float64 {
	mx := math.Inf(-1)
	for _, x := range xs {
		mx = math.Max(mx, float64(x))
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(s)
}

// ExpandSweep expands a sweep pattern into single sites: the hook glob into
// hook points, and every selector written "*" into its indices
// ("blocks.*.attn.hook_z[head=*]" → one site per layer and head). T is the
// input length, for position selectors.
func (m *Model) ExpandSweep(pattern string, T int) ([]Site, error) {
	sites, err := m.ParseSites(pattern)
	if err != nil {
		return nil, err
	}
	var out []Site
	for _, s := range sites {
		names, dims := m.hookAxes(s.Hook)
		expanded := []Site{s}
		for ax, name := range names {
			if !s.span(name).Each {
				continue
			}
			n := dims[ax]
			if n < 0 {
				n = T
			}
			var next []Site
			for _, e := range expanded {
				for i := range n {
					c := e
					c.setSpan(name, Index(i))
					next = append(next, c)
				}
			}
			expanded = next
		}
		out = append(out, expanded...)
	}
	return out, nil
}

// setSpan sets the span of the named axis.
func (s *Site) setSpan(axis string, sp Span) {
	switch axis {
	case "pos":
		s.Pos = sp
	case "head":
		s.Head = sp
	case "src":
		s.Src = sp
	default:
		s.I = sp
	}
}

// PatchResult is one site's outcome in a patching sweep.
type PatchResult struct {
	Site string `json:"site"`
	// Metric is the metric of the corrupt run with the site patched from
	// the clean run.
	Metric float64 `json:"metric"`
	// Normalized is (Metric - corrupt) / (clean - corrupt): 1 when the
	// patch restores the clean behaviour, 0 when it changes nothing.
	Normalized float64 `json:"normalized"`
}

// Sweep is the result of PatchSweep.
type Sweep struct {
	Metric  string        `json:"metric"`
	Clean   float64       `json:"clean"`
	Corrupt float64       `json:"corrupt"`
	Results []PatchResult `json:"results"`
	// Forwards counts the forward passes, batched ones once.
	Forwards int `json:"forwards"`
}

// PatchSweep is activation patching (denoising): for each site, run the
// corrupt input with that site's activations copied from the clean run, and
// measure the metric. Sites are evaluated batchSize at a time in one batched
// forward. clean and corrupt must have the same length.
func (m *Model) PatchSweep(ctx context.Context, clean, corrupt []int, sites []Site, metric Metric, batchSize int) (*Sweep, error) {
	if len(clean) != len(corrupt) {
		return nil, fmt.Errorf("%w: clean has %d tokens, corrupt %d; patching needs equal lengths", ErrBadInput, len(clean), len(corrupt))
	}
	batchSize = max(batchSize, 1)
	hooks := map[string]bool{}
	var names Filter
	for _, s := range sites {
		if !hooks[s.Hook] {
			hooks[s.Hook] = true
			names = append(names, s.Hook)
		}
	}
	cleanOut, cache, err := m.RunWithCache(ctx, clean, names)
	if err != nil {
		return nil, err
	}
	corruptOut, err := m.RunWithHooks(ctx, corrupt)
	if err != nil {
		return nil, err
	}
	sw := &Sweep{
		Metric:   metric.Name,
		Clean:    metric.Of(m.Backend.ToHost(cleanOut), cleanOut.Shape(), 0),
		Corrupt:  metric.Of(m.Backend.ToHost(corruptOut), corruptOut.Shape(), 0),
		Forwards: 2,
	}
	for start := 0; start < len(sites); start += batchSize {
		chunk := sites[start:min(start+batchSize, len(sites))]
		sets := make([][]Intervention, len(chunk))
		for i, s := range chunk {
			sets[i] = []Intervention{{Site: s, Mode: Patch, Source: cache[s.Hook], Row: -1}}
		}
		out, err := m.RunBatchedInterventions(ctx, corrupt, sets)
		if err != nil {
			return nil, err
		}
		sw.Forwards++
		host := m.Backend.ToHost(out)
		for i, s := range chunk {
			v := metric.Of(host, out.Shape(), i)
			sw.Results = append(sw.Results, PatchResult{Site: s.String(), Metric: v, Normalized: normalize(v, sw.Clean, sw.Corrupt)})
		}
	}
	return sw, nil
}

func normalize(v, clean, corrupt float64) float64 {
	if clean == corrupt {
		return 0
	}
	return (v - corrupt) / (clean - corrupt)
}

// Probabilities returns the softmax of logits in float64: a classifier's
// label probabilities, or a next-token distribution.
func Probabilities(logits []float32) []float64 {
	lse := logSumExp(logits)
	p := make([]float64, len(logits))
	for i, l := range logits {
		p[i] = math.Exp(float64(l) - lse)
	}
	return p
}
