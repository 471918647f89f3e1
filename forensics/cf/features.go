package cf

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/weights"
)

// Signal names a family of features; each can be scored alone, so that a
// report shows what each contributes.
type Signal string

// Signals.
const (
	// Compression is the compressed/raw ratio of each position's quantised
	// activation (needs the values: a stored activation, or a replay).
	Compression Signal = "compression"
	// Norm is each position's RMS, largest magnitude, mean and crest
	// factor (largest magnitude over RMS), from the bundle's sketch.
	Norm Signal = "norm"
	// Projection is each position's random projection to k dimensions,
	// from the bundle's sketch.
	Projection Signal = "projection"
)

// AllSignals returns every signal, in report order.
func AllSignals() []Signal { return []Signal{Compression, Norm, Projection} }

// ParseSignal parses a signal name.
func ParseSignal(s string) (Signal, error) {
	for _, sig := range AllSignals() {
		if string(sig) == s {
			return sig, nil
		}
	}
	return "", fmt.Errorf("signal %q: want compression, norm or projection", s)
}

// Statistics measured per hook and position.
const (
	// StatRatio is the compressed/raw ratio of the quantised activation.
	StatRatio = "ratio"
	// StatRMS is the root mean square, L2/√count.
	StatRMS = "rms"
	// StatMaxAbs is the largest magnitude, max(|min|, |max|).
	StatMaxAbs = "maxabs"
	// StatMean is the mean.
	StatMean = "mean"
	// StatCrest is the crest factor, maxabs/rms.
	StatCrest = "crest"
	// statProj prefixes the projection components: proj0, proj1, ...
	statProj = "proj"
)

// SignalOf returns the signal a statistic belongs to.
func SignalOf(stat string) Signal {
	switch {
	case stat == StatRatio:
		return Compression
	case strings.HasPrefix(stat, statProj):
		return Projection
	}
	return Norm
}

// Derived hooks: what a block wrote into the residual stream, computed from
// the stored (or replayed) residual stream.
const (
	// DeltaAttn names blocks.N.delta_attn: hook_resid_mid - hook_resid_pre
	// (for GPT-2, the attention output hook_attn_out).
	DeltaAttn = "delta_attn"
	// DeltaMLP names blocks.N.delta_mlp: hook_resid_post - hook_resid_mid
	// (for GPT-2, the MLP output hook_mlp_out).
	DeltaMLP = "delta_mlp"
)

// Series is one feature of a run: a statistic of a hook at every
// position.
type Series struct {
	// Hook is the hook point, or a derived hook (blocks.N.delta_attn).
	Hook string `json:"hook"`
	// Stat is the statistic (ratio, rms, maxabs, mean, crest, projN).
	Stat string `json:"stat"`
	// Layer is the block the hook belongs to, -1 outside the blocks.
	Layer int `json:"layer"`
	// Values holds one value per position (one in all for a hook without
	// positions); NaN where undefined.
	Values []float64 `json:"values"`
}

// Key returns "HOOK/STAT", the feature's name in baselines and reports.
func (s *Series) Key() string { return s.Hook + "/" + s.Stat }

// Features is what CF measures of one run.
type Features struct {
	// ModelType is "gpt2" or "bert".
	ModelType string
	// Positions is the run's number of positions.
	Positions int
	// Layers is the number of blocks.
	Layers int
	// SketchK and SketchSeed are the sketch settings of the projections.
	SketchK    int
	SketchSeed uint64
	// Series holds every feature, hooks in forward order.
	Series []Series
}

// Run is the input of feature extraction: a run's recorded hooks (sketches
// and, where stored, activations) with its record settings.
type Run struct {
	// ModelType is "gpt2" (causal attention) or "bert".
	ModelType string
	// Record is the record section of the bundle (positions, sketch
	// settings, hooks).
	Record bundle.Record
	// Hooks are the recorded hooks in forward order.
	Hooks []bundle.HookRecord
	// Tokens are the tokens at each position, when known (for reports).
	Tokens []int
}

// LayerOf returns the block index of a hook name, or -1 for hooks outside
// the blocks.
func LayerOf(hook string) int {
	rest, ok := strings.CutPrefix(hook, "blocks.")
	if !ok {
		return -1
	}
	num, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// isAttention reports whether hook is an attention score or pattern
// [head, dest, src].
func isAttention(hook string) bool {
	return strings.HasSuffix(hook, "attn.hook_attn_scores") || strings.HasSuffix(hook, "attn.hook_pattern")
}

// Extract measures every feature of a run: the sketch statistics of every
// recorded hook, the compression ratio of every stored activation in the
// blocks whose rows have at least minRowBytes quantised bytes, and the derived
// delta_attn and delta_mlp of every block whose residual stream is
// stored. Values are rounded to float16 first (as bundles store them), so
// a float32 replay and a float16 bundle measure alike.
func Extract(run Run, c *Compressor, minRowBytes int) (*Features, error) {
	return extract(run, c, minRowBytes, nil)
}

// extract is Extract measuring no compression ratio of the hooks that
// match a skip pattern (hooks whose features are not scored); derived
// hooks are measured whatever their sources.
func extract(run Run, c *Compressor, minRowBytes int, skip []string) (*Features, error) {
	rec := run.Record
	if run.ModelType != "gpt2" && run.ModelType != "bert" {
		return nil, fmt.Errorf("cf: model type %q: want gpt2 or bert", run.ModelType)
	}
	if len(run.Hooks) != len(rec.Hooks) {
		return nil, fmt.Errorf("cf: %d hook records for %d recorded hooks", len(run.Hooks), len(rec.Hooks))
	}
	f := &Features{ModelType: run.ModelType, Positions: rec.Positions, SketchK: rec.Sketch.K, SketchSeed: rec.Sketch.Seed}
	infos := map[string]bundle.HookInfo{}
	byName := map[string]*bundle.HookRecord{}
	for i, h := range rec.Hooks {
		if run.Hooks[i].Hook != h.Name {
			return nil, fmt.Errorf("cf: hook record %d is %s, the record lists %s", i, run.Hooks[i].Hook, h.Name)
		}
		if err := checkRecord(&run.Hooks[i], h, rec.Sketch.K); err != nil {
			return nil, err
		}
		infos[h.Name] = h
		byName[h.Name] = &run.Hooks[i]
		f.Layers = max(f.Layers, LayerOf(h.Name)+1)
	}
	causal := run.ModelType == "gpt2"

	// One job per hook (and per derived hook), run on GOMAXPROCS workers;
	// each job fills its own series, so the result does not depend on the
	// schedule.
	type job struct {
		out []Series
		fn  func(s *Scratch) ([]Series, error)
	}
	var jobs []*job
	for _, h := range rec.Hooks {
		r := byName[h.Name]
		info := h
		hc := c
		if matchAny(skip, h.Name) {
			hc = nil
		}
		jobs = append(jobs, &job{fn: func(s *Scratch) ([]Series, error) {
			return hookSeries(r, info, hc, minRowBytes, causal, s), nil
		}})
		if strings.HasSuffix(h.Name, ".hook_resid_post") {
			l := LayerOf(h.Name)
			p := fmt.Sprintf("blocks.%d.", l)
			pre, mid, post := byName[p+"hook_resid_pre"], byName[p+"hook_resid_mid"], r
			if pre == nil || mid == nil {
				continue
			}
			jobs = append(jobs, &job{fn: func(s *Scratch) ([]Series, error) {
				a, err := deltaSeries(p+DeltaAttn, l, pre, mid, infos[pre.Hook], c, minRowBytes, s)
				if err != nil {
					return nil, err
				}
				b, err := deltaSeries(p+DeltaMLP, l, mid, post, infos[mid.Hook], c, minRowBytes, s)
				return append(a, b...), err
			}})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &Scratch{}
			for i := range next {
				jobs[i].out, errs[i] = jobs[i].fn(s)
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		f.Series = append(f.Series, j.out...)
	}
	return f, nil
}

// checkRecord checks a hook record's arrays against its manifest entry, so
// that extraction cannot index out of range.
func checkRecord(r *bundle.HookRecord, info bundle.HookInfo, k int) error {
	p := info.Positions
	if len(r.Count) != p || len(r.Mean) != p || len(r.L2) != p || len(r.Min) != p || len(r.Max) != p || len(r.Proj) != p*k {
		return fmt.Errorf("cf: hook %s: sketch arrays do not hold %d positions of k = %d", r.Hook, p, k)
	}
	if r.Raw != nil {
		n := 1
		for _, d := range info.Shape {
			n *= d
		}
		if r.Raw.Len() != n || len(info.Shape) == 0 {
			return fmt.Errorf("cf: hook %s: %d stored values for shape %v", r.Hook, r.Raw.Len(), info.Shape)
		}
		if p > 1 && !(info.Shape[0] == p || (isAttention(info.Name) && len(info.Shape) == 3 && info.Shape[1] == p && info.Shape[2] == p)) {
			return fmt.Errorf("cf: hook %s: shape %v has no axis of %d positions", r.Hook, info.Shape, p)
		}
	}
	return nil
}

// hookSeries returns the sketch features of a hook and, when its
// activation is stored, its compression ratio.
func hookSeries(r *bundle.HookRecord, info bundle.HookInfo, c *Compressor, minRowBytes int, causal bool, s *Scratch) []Series {
	l := LayerOf(r.Hook)
	P := info.Positions
	k := len(r.Proj) / max(P, 1)
	out := sketchSeries(r.Hook, l, P, k, func(p int) (count int64, mean, l2, mn, mx float32) {
		return r.Count[p], r.Mean[p], r.L2[p], r.Min[p], r.Max[p]
	}, func(p, j int) float64 { return float64(r.Proj[p*k+j]) })
	if strings.HasSuffix(r.Hook, "attn.hook_pattern") {
		// Every row of an attention pattern sums to 1: its mean is 1 over
		// the number of keys, a function of the length and nothing else.
		out = slices.DeleteFunc(out, func(s Series) bool { return s.Stat == StatMean })
	}
	if r.Raw == nil || c == nil || l < 0 {
		return out
	}
	ratio := Series{Hook: r.Hook, Stat: StatRatio, Layer: l, Values: make([]float64, P)}
	for p := range P {
		s.row = rowOf(s.row[:0], r.Raw, info, p, causal)
		if bytesPer(c.quant)*len(s.row) < minRowBytes {
			ratio.Values[p] = nan
			continue
		}
		ratio.Values[p] = c.Ratio(s.row, s)
	}
	if allNaN(ratio.Values) {
		return out
	}
	return append([]Series{ratio}, out...)
}

func allNaN(xs []float64) bool {
	for _, x := range xs {
		if !math.IsNaN(x) {
			return false
		}
	}
	return true
}

func bytesPer(quant string) int {
	if quant == FP16 {
		return 2
	}
	return 1
}

// sketchSeries returns the norm and projection features of P positions.
func sketchSeries(hook string, layer, P, k int, at func(p int) (int64, float32, float32, float32, float32), proj func(p, j int) float64) []Series {
	mk := func(stat string) Series {
		return Series{Hook: hook, Stat: stat, Layer: layer, Values: make([]float64, P)}
	}
	rms, maxabs, mean, crest := mk(StatRMS), mk(StatMaxAbs), mk(StatMean), mk(StatCrest)
	projs := make([]Series, k)
	for j := range k {
		projs[j] = mk(statProj + strconv.Itoa(j))
	}
	for p := range P {
		n, mu, l2, mn, mx := at(p)
		r, a := nan, nan
		if n > 0 {
			r = float64(l2) / math.Sqrt(float64(n))
			a = math.Max(math.Abs(float64(mn)), math.Abs(float64(mx)))
		}
		rms.Values[p], maxabs.Values[p], mean.Values[p] = r, a, float64(mu)
		crest.Values[p] = nan
		if r > 0 {
			crest.Values[p] = a / r
		}
		for j := range k {
			projs[j].Values[p] = proj(p, j)
		}
	}
	return append([]Series{rms, maxabs, mean, crest}, projs...)
}

// deltaSeries returns the features of b - a, two stored residual-stream
// hooks of block layer: ratio, norm statistics from the values, and the
// difference of the projections (projections are linear).
func deltaSeries(name string, layer int, a, b *bundle.HookRecord, info bundle.HookInfo, c *Compressor, minRowBytes int, s *Scratch) ([]Series, error) {
	if a.Raw == nil || b.Raw == nil {
		return nil, nil
	}
	if a.Raw.Len() != b.Raw.Len() || len(a.Proj) != len(b.Proj) {
		return nil, fmt.Errorf("cf: %s: %s and %s differ in size", name, a.Hook, b.Hook)
	}
	P := info.Positions
	n := a.Raw.Len() / max(P, 1)
	k := len(a.Proj) / max(P, 1)
	type st struct {
		n                int64
		mean, l2, mn, mx float32
	}
	stats := make([]st, P)
	var ratio *Series
	if c != nil && bytesPer(c.quant)*n >= minRowBytes {
		ratio = &Series{Hook: name, Stat: StatRatio, Layer: layer, Values: make([]float64, P)}
	}
	for p := range P {
		row := s.row[:0]
		sum, sumsq := 0.0, 0.0
		mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
		s.a = rowOf(s.a[:0], a.Raw, info, p, false)
		s.b = rowOf(s.b[:0], b.Raw, info, p, false)
		for i := range s.a {
			d := s.b[i] - s.a[i]
			row = append(row, d)
			sum += float64(d)
			sumsq += float64(d) * float64(d)
			mn, mx = min(mn, d), max(mx, d)
		}
		s.row = row
		stats[p] = st{n: int64(n), mean: float32(sum / float64(max(n, 1))), l2: float32(math.Sqrt(sumsq)), mn: mn, mx: mx}
		if ratio != nil {
			ratio.Values[p] = c.Ratio(row, s)
		}
	}
	out := sketchSeries(name, layer, P, k, func(p int) (int64, float32, float32, float32, float32) {
		x := stats[p]
		return x.n, x.mean, x.l2, x.mn, x.mx
	}, func(p, j int) float64 { return float64(b.Proj[p*k+j]) - float64(a.Proj[p*k+j]) })
	if ratio != nil {
		out = append([]Series{*ratio}, out...)
	}
	return out, nil
}

// f16round rounds x to the nearest float16 value.
func f16round(x float32) float32 { return weights.F16ToFloat32(weights.Float32ToF16(x)) }

// rowOf appends position p's values of a stored activation to dst, rounded
// to float16: a row of [T, ...]; for an attention score or pattern
// [H, T, T], the rows [h, p, :] of every head over the keys position p
// sees (the first p+1 in a causal model, all T otherwise); everything for
// a hook with one position.
func rowOf(dst []float32, raw *bundle.Raw, info bundle.HookInfo, p int, causal bool) []float32 {
	shape := raw.Shape
	add := func(from, to int) {
		if raw.DType == bundle.Float16 {
			for _, h := range raw.F16[from:to] {
				dst = append(dst, weights.F16ToFloat32(h))
			}
			return
		}
		for _, x := range raw.F32[from:to] {
			dst = append(dst, f16round(x))
		}
	}
	switch {
	case info.Positions == 1:
		add(0, raw.Len())
	case isAttention(info.Name) && len(shape) == 3:
		H, T := shape[0], shape[1]
		L := T
		if causal {
			L = p + 1
		}
		for h := range H {
			add((h*T+p)*T, (h*T+p)*T+L)
		}
	default:
		n := raw.Len() / shape[0]
		add(p*n, (p+1)*n)
	}
	return dst
}
