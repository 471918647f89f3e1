package cca

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

// ErrBudget is wrapped when the search runs out of forwards or time.
var ErrBudget = errors.New("cca: budget exhausted")

// ErrNoFix is wrapped when even every candidate together does not correct
// the failure.
var ErrNoFix = errors.New("cca: no fix among the candidates")

// Candidate is one site the search may intervene on.
type Candidate struct {
	// Site is the activations intervened on.
	Site transformer.Site
	// Layer is the site's block; Kind "neuron", "head" (its output,
	// hook_z), "q" or "k" (its query or key), "attn_out" or "mlp_out";
	// Index the neuron or head (-1 for a layer).
	Layer int
	Kind  string
	Index int
	// Attribution is attribution patching's estimate of how much the
	// intervention lowers the metric (AtP*'s for query/key sites). Abs is
	// the cancellation score: the sum over positions of the estimate's
	// absolute value, averaged with AtP*'s GradDrop over the backward
	// passes that each drop one downstream layer's writes (large when
	// effects cancel across positions or paths).
	Attribution float64
	Abs         float64
	// Rank is the candidate's place in the ranking, from 1.
	Rank int
}

// Member is one intervention of a fix set.
type Member struct {
	Candidate
	// Mode is the transformer intervention mode (zero or mean: a patch
	// from the counterfactual's position mean is a Mean with its values).
	Mode transformer.Mode
	// Values are the site's values under Mean (the site's slice of the
	// per-position vector); nil for Zero.
	Values []float32
}

// Cost is what a search spent.
type Cost struct {
	// Forwards counts batched forwards; Rows the intervention sets they
	// evaluated; Backward the backward passes; Seconds the wall time.
	Forwards int     `json:"forwards"`
	Rows     int     `json:"rows"`
	Backward int     `json:"backward_passes"`
	Seconds  float64 `json:"seconds"`
	// ResumedBlocks counts the blocks skipped by resuming batched forwards
	// from a cached resid_pre, summed over the forwards.
	ResumedBlocks int `json:"resumed_blocks"`
	// Replays counts the free generations the search replayed through the
	// detector (Problem.Detector).
	Replays int `json:"detector_replays,omitempty"`
}

// Result is a search's outcome.
type Result struct {
	// Layers are the layers searched; Granularity and Intervention the
	// settings used; Source where the intervention values came from.
	Layers       []int
	Granularity  string
	Intervention string
	Source       string
	// Candidates counts the candidate sites, and CandidateActivations the
	// scalar activations they cover over the sequence.
	Candidates           int
	CandidateActivations int
	// Ranking is every candidate, ranked by attribution patching's
	// estimate, best first (the order the search grows its set in).
	Ranking []Candidate
	// FixSet is the fix set, in ranking order.
	FixSet []Member
	// Before and After are the metric without and with the fix set.
	Before, After float64
	// Minimal is true when Removed proves 1-minimality: Removed[i] is the
	// metric with FixSet[i] left out, each still failing (> 0).
	Minimal bool
	Removed []float64
	// Metric is the metric the fix set is certified against: the
	// problem's, with the generation paths the search added (Paths).
	Metric MetricSpec
	// DetectorChecked is true when the search replayed free generation
	// with the fix set through the problem's detector, and DetectorFailed
	// the last verdict (false: the fix holds under free generation).
	DetectorChecked bool
	DetectorFailed  bool
	// Cost is what the search spent.
	Cost Cost
	// Notes say what was assumed or skipped.
	Notes []string
}

// Paths returns how many generation paths the fix set's metric covers
// (the recorded one, then those the search added).
func (r *Result) Paths() int { return 1 + len(r.Metric.Paths) }

// Progress receives a line per search step (nil: silent).
type Progress func(format string, args ...any)

// Search finds a 1-minimal fix set for the problem within layers (nil: all
// layers).
func Search(ctx context.Context, p *Problem, layers []int, cfg Config, progress Progress) (res *Result, err error) {
	start := time.Now()
	defer func() {
		if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && !errors.Is(err, ErrBudget) {
			err = fmt.Errorf("%w: %w (cca.timeout, --timeout)", ErrBudget, err)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := p.Model
	if progress == nil {
		progress = func(string, ...any) {}
	}
	out := m.Config.VocabSize
	if m.BERT != nil {
		out = len(m.BERT.Labels())
	}
	if err := p.Metric.Validate(len(p.Tokens), out); err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		for l := range m.Config.Layers {
			layers = append(layers, l)
		}
	}
	for _, l := range layers {
		if l < 0 || l >= m.Config.Layers {
			return nil, fmt.Errorf("cca: layer %d of a %d-layer model", l, m.Config.Layers)
		}
	}
	layers = slices.Compact(slices.Sorted(slices.Values(layers)))
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	res = &Result{Layers: layers, Granularity: cfg.Granularity, Intervention: cfg.Intervention, Notes: slices.Clone(p.Notes), Metric: p.Metric}
	res.Metric.Paths = slices.Clip(res.Metric.Paths) // paths the search adds leave the problem's alone
	cands := candidates(m, layers, cfg.Granularity, cfg.QueryKey)
	hooks := hooksOf(cands)
	sources, srcNote, err := interventionSources(ctx, p, cfg.Intervention, hooks)
	if err != nil {
		return nil, err
	}
	res.Source = srcNote
	progress("cca: %d candidates in layers %v (%s), intervention %s", len(cands), layers, cfg.Granularity, srcNote)

	// Attribution patching: one backward pass (AtP*'s GradDrop adds one per
	// layer downstream of the candidates).
	in, err := transformer.NewBatch([][]int{p.Tokens}, nil)
	if err != nil {
		return nil, fmt.Errorf("cca: %w", err)
	}
	ghooks := gradHooks(cands)
	var drops []int
	names := slices.Clone(ghooks)
	if cfg.GradDrop != GradDropOff {
		for l := layers[0] + 1; l < m.Config.Layers; l++ {
			drops = append(drops, l)
			names = append(names, fmt.Sprintf("blocks.%d.hook_attn_out", l), fmt.Sprintf("blocks.%d.hook_mlp_out", l))
		}
	}
	g, err := m.Gradients(ctx, in, p.Metric.Transformer(), transformer.Names(names...))
	if err != nil {
		return nil, fmt.Errorf("cca: attribution: %w", err)
	}
	res.Cost.Backward++
	T := len(p.Tokens)
	// Each hook's activation and gradient in host memory, copied once per
	// hook (a device backend's ToHost copies; thousands of candidates
	// share a hook).
	est := &estimator{m: m, T: T, acts: map[string][]float32{}, sources: sources, dPattern: map[string][]float64{}}
	grads := map[string][]float32{}
	for _, h := range ghooks {
		a, gr := g.Acts[h], g.Grads[h]
		if a == nil || gr == nil {
			return nil, fmt.Errorf("cca: attribution: no gradient for %s", h)
		}
		est.acts[h], grads[h] = m.Backend.ToHost(a), m.Backend.ToHost(gr)
	}
	for i := range cands {
		c := &cands[i]
		c.Attribution, c.Abs = estimate(est.perPositionEstimate(*c, grads))
		res.CandidateActivations += siteSize(m, *c) * T
	}
	res.Candidates = len(cands)
	if slices.ContainsFunc(cands, func(c Candidate) bool { return c.Kind == "q" || c.Kind == "k" }) {
		res.Notes = append(res.Notes, "query/key sites are estimated as AtP* does: the head's attention pattern recomputed exactly with the patched query or key, linearised from the pattern on")
	}
	// GradDrop: the cancellation score from one more backward pass per
	// downstream layer, each with that layer's writes dropped.
	applyGradDrop := func() error {
		dropped, err := gradDrop(ctx, m, in, p.Metric.Transformer(), ghooks, g.Acts, drops, &res.Cost)
		if err != nil {
			return err
		}
		for i := range cands {
			c := &cands[i]
			score := 0.0
			for l := range m.Config.Layers {
				if gl, ok := dropped[l]; ok && l > c.Layer {
					_, abs := estimate(est.perPositionEstimate(*c, gl))
					score += abs
				} else {
					score += c.Abs
				}
			}
			c.Abs = score / float64(m.Config.Layers)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("AtP*'s GradDrop guards the ranking against cancellation: %d more backward passes, each with the gradient through one layer's attention and MLP writes dropped", len(drops)))
		return nil
	}
	rank := func() {
		key := func(c Candidate) float64 { return c.Attribution + cfg.CancellationGuard*c.Abs }
		sort.SliceStable(cands, func(i, j int) bool { return key(cands[i]) > key(cands[j]) })
		for i := range cands {
			cands[i].Rank = i + 1
		}
		res.Ranking = cands
	}
	if cfg.GradDrop == GradDropOn && len(drops) > 0 {
		if err := applyGradDrop(); err != nil {
			return res, err
		}
	}
	rank()
	// Rank, then verify: the search grows its set along the ranking within
	// the top cca.max_candidates; when even all of those together do not
	// correct the failure, the ranking missed the causes (attribution
	// patching estimates each site alone, so a group whose members matter
	// only together, through a saturated or redundant readout, ranks low),
	// and the window widens, four times at a time, up to every candidate.
	ev, err := newEvaluator(ctx, p, &res.Metric, cfg, &res.Cost)
	if err != nil {
		return nil, err
	}
	members := make([]Member, 0, len(cands))
	memberUpTo := func(k int) {
		for _, c := range cands[len(members):k] {
			members = append(members, member(m, c, cfg.Intervention, sources[c.Site.Hook]))
		}
	}
	prefix := func(k int) []int {
		s := make([]int, k)
		for i := range s {
			s[i] = i
		}
		return s
	}
	window := len(cands)
	if cfg.MaxCandidates > 0 {
		window = min(cfg.MaxCandidates, len(cands))
	}
	memberUpTo(window)
	// The metric without interventions and with every candidate of the
	// window.
	vals, err := ev.eval(members, [][]int{nil, prefix(window)})
	if err != nil {
		return res, err
	}
	res.Before = vals[0]
	progress("cca: metric %.4g before, %.4g with the top %d candidates", vals[0], vals[1], window)
	if res.Before <= 0 {
		return res, fmt.Errorf("cca: the failure metric is %.4g (not positive) on the incident: nothing to fix", res.Before)
	}
	if vals[1] > 0 && cfg.GradDrop == GradDropAuto && len(drops) > 0 && window < len(cands) {
		// The ranking missed: guard it against cancellation (AtP*'s
		// GradDrop), rank again and retry the window before widening.
		res.Notes = append(res.Notes, fmt.Sprintf("the top %d ranked candidates together left the metric at %.4g (> 0): ranked again with GradDrop (cca.grad_drop auto)", window, vals[1]))
		if err := applyGradDrop(); err != nil {
			return res, err
		}
		rank()
		members = members[:0]
		memberUpTo(window)
		v, err := ev.eval(members, [][]int{prefix(window)})
		if err != nil {
			return res, err
		}
		vals[1] = v[0]
		progress("cca: ranked again with GradDrop: metric %.4g with the top %d candidates", vals[1], window)
	}
	lo := 0 // the longest prefix known not to flip
	for vals[1] > 0 && window < len(cands) {
		lo = window
		next := min(4*window, len(cands))
		res.Notes = append(res.Notes, fmt.Sprintf("the top %d ranked candidates together left the metric at %.4g (> 0): the search widened to the top %d of %d", window, vals[1], next, len(cands)))
		window = next
		memberUpTo(window)
		vals, err = ev.eval(members, [][]int{prefix(window)})
		if err != nil {
			return res, err
		}
		vals = []float64{res.Before, vals[0]}
		progress("cca: widened to the top %d candidates: metric %.4g", window, vals[1])
	}
	if vals[1] > 0 {
		return res, fmt.Errorf("%w: with all %d candidates the metric is still %.4g", ErrNoFix, len(members), vals[1])
	}
	if window < len(cands) {
		res.Notes = append(res.Notes, fmt.Sprintf("the search used the top %d of %d ranked candidates (cca.max_candidates)", window, len(cands)))
	}

	// minimize grows the set along members' order from the prefix lo
	// (known not to flip; the first base members are always kept, and the
	// grow tries base+1, base+2, base+4, ...) to the shortest flipping
	// prefix (the whole of members flips), then shrinks it to 1-minimal.
	minimize := func(members []Member, base, lo int) ([]int, error) {
		// Grow: exponential, then k-ary search for the shortest flipping prefix.
		var sizes []int
		for k := 1; base+k < len(members); k *= 2 {
			if base+k > lo {
				sizes = append(sizes, base+k)
			}
		}
		hi := len(members) // prefix lo fails, prefix hi flips
		for len(sizes) > 0 && hi == len(members) {
			n := min(len(sizes), cfg.Batch)
			batch := sizes[:n]
			sizes = sizes[n:]
			sets := make([][]int, n)
			for i, k := range batch {
				sets[i] = prefix(k)
			}
			vals, err := ev.eval(members, sets)
			if err != nil {
				return nil, err
			}
			for i, k := range batch {
				if vals[i] <= 0 {
					hi = k
					break
				}
				lo = k
			}
			progress("cca: grow: prefixes %v → flips at %d", batch, hi)
		}
		for hi-lo > 1 {
			step := float64(hi-lo) / float64(min(cfg.Batch, hi-lo-1)+1)
			var batch []int
			for i := 1; i <= min(cfg.Batch, hi-lo-1); i++ {
				k := lo + int(math.Round(step*float64(i)))
				if k > lo && k < hi && !slices.Contains(batch, k) {
					batch = append(batch, k)
				}
			}
			sets := make([][]int, len(batch))
			for i, k := range batch {
				sets[i] = prefix(k)
			}
			vals, err := ev.eval(members, sets)
			if err != nil {
				return nil, err
			}
			newLo, newHi := lo, hi
			for i, k := range batch {
				if vals[i] <= 0 {
					newHi = k
					break
				}
				newLo = k
			}
			lo, hi = newLo, newHi
			progress("cca: binary search: flips between %d and %d", lo, hi)
		}
		set := prefix(hi)

		// Shrink coarsely first (delta debugging): drop whole chunks whose
		// removal keeps the fix, halving the chunks while none can go.
		for k := 2; len(set) > 2*cfg.Batch && k < len(set); {
			chunks := split(set, k)
			sets := make([][]int, len(chunks))
			for i, c := range chunks {
				sets[i] = withoutValues(set, c)
			}
			vals, err := ev.eval(members, sets)
			if err != nil {
				return nil, err
			}
			dropped := false
			for i, v := range vals {
				if v <= 0 {
					progress("cca: shrink: %d → %d members (chunks of %d)", len(set), len(sets[i]), len(chunks[i]))
					set, dropped = sets[i], true
					k = max(k-1, 2)
					break
				}
			}
			if !dropped {
				k *= 2
			}
		}
		// Shrink to 1-minimal: drop members whose removal keeps the fix.
		for {
			sets := [][]int{set}
			for i := range set {
				sets = append(sets, without(set, i))
			}
			vals, err := ev.eval(members, sets)
			if err != nil {
				return nil, err
			}
			var removable []int // positions in set, lowest rank first
			for i := len(set) - 1; i >= 0; i-- {
				if vals[i+1] <= 0 {
					removable = append(removable, i)
				}
			}
			if len(removable) == 0 {
				res.After = vals[0]
				res.Removed = vals[1:]
				res.Minimal = true
				return set, nil
			}
			// Try dropping many removable members at once, halving on failure.
			var tries [][]int
			for n := len(removable); n > 1; n /= 2 {
				tries = append(tries, withoutAll(set, removable[:n]))
				if len(tries) == cfg.Batch {
					break
				}
			}
			next := without(set, removable[0])
			if len(tries) > 0 {
				vals, err := ev.eval(members, tries)
				if err != nil {
					return nil, err
				}
				for i, t := range tries {
					if vals[i] <= 0 {
						next = t
						break
					}
				}
			}
			progress("cca: shrink: %d → %d members", len(set), len(next))
			set = next
		}
	}
	set, err := minimize(members, 0, lo)
	if err != nil {
		return res, err
	}
	// Generation failures: the metric follows greedy decoding along the
	// recorded generation, but with the fix a free generation may take
	// another path to a lexicon word. Replay it through the detector;
	// while it still fires, add its path to the metric (the largest of the
	// path margins) and search again from the fix set: grow along the
	// ranking, then shrink to 1-minimal under the extended metric.
	cur := members // set indexes cur: the ranked members, then reordered
	if p.Detector != nil {
		if cur, set, err = detectorRounds(ctx, p, res, ev, cfg, members, set, func() []Member {
			memberUpTo(len(cands))
			return members
		}, minimize, progress); err != nil {
			return res, err
		}
		if len(res.Metric.Paths) > 0 {
			res.Metric.Description += fmt.Sprintf("; the largest of that over %d generation paths: the recorded one, then (paths) the free generations with earlier fix sets that still reached a lexicon token", res.Paths())
		}
	}
	for _, i := range set {
		res.FixSet = append(res.FixSet, cur[i])
	}
	res.Cost.Seconds = time.Since(start).Seconds()
	progress("cca: fix set of %d (metric %.4g → %.4g), %d forwards, %.1fs", len(set), res.Before, res.After, res.Cost.Forwards, res.Cost.Seconds)
	return res, nil
}

// detectorRounds checks the fix set (set, indices into ranked) against
// the problem's detector on free generation and, while the detector still
// fires, adds the new generation's path to the metric and searches again
// from the fix set: the set first, then the other ranked members (all of
// the candidates when those do not flip the extended metric), grown and
// shrunk by minimize. It returns the members the final set indexes. A
// round that cannot fix the new path (no fix among the candidates, a
// budget spent) leaves the last fix set and its metric as they were, with
// a note.
func detectorRounds(ctx context.Context, p *Problem, res *Result, ev *evaluator, cfg Config, ranked []Member, set []int,
	all func() []Member, minimize func([]Member, int, int) ([]int, error), progress Progress) ([]Member, []int, error) {
	m := p.Model
	cur := ranked
	prefix := func(k int) []int {
		s := make([]int, k)
		for i := range s {
			s[i] = i
		}
		return s
	}
	for round := 0; ; round++ {
		fix := make([]Member, len(set))
		for i, j := range set {
			fix[i] = cur[j]
		}
		failed, gen, err := p.Detector(ctx, Interventions(m, fix))
		if err != nil {
			if ctx.Err() != nil {
				res.Notes = append(res.Notes, fmt.Sprintf("the detector replay with the fix set stopped: %v (cca.timeout, --timeout)", err))
				return cur, set, nil
			}
			return nil, nil, err
		}
		res.Cost.Replays++
		res.DetectorChecked, res.DetectorFailed = true, failed
		progress("cca: detector replay with the fix set of %d: failed=%v (%d generation paths)", len(set), failed, res.Paths())
		if !failed {
			if round > 0 {
				res.Notes = append(res.Notes, fmt.Sprintf("free generation with the first fix set still reached a lexicon word: the metric follows %d generation paths, and the fix set breaks every one (the detector replayed %d times)", res.Paths(), res.Cost.Replays))
			}
			return cur, set, nil
		}
		stop := func(format string, args ...any) ([]Member, []int, error) {
			res.Notes = append(res.Notes, fmt.Sprintf("the detector still fails on free generation with the fix set: "+format, args...))
			return cur, set, nil
		}
		if round >= cfg.MaxPaths {
			return stop("%d generation paths added (cca.max_paths)", len(res.Metric.Paths))
		}
		path, ok := res.Metric.NewPath(p.Prompt, gen)
		if !ok {
			return stop("its generation holds no lexicon token (the detector matched a word the vocabulary splits)")
		}
		if res.Metric.HasPath(p.Tokens, path) {
			return stop("its generation follows a path the metric already holds, which the fix set breaks under teacher forcing")
		}
		// Keep what to restore when the round finds no fix.
		paths, seqs, after, removed := len(res.Metric.Paths), len(ev.seqs), res.After, res.Removed
		restore := func() {
			res.Metric.Paths, ev.seqs, res.After, res.Removed = res.Metric.Paths[:paths], ev.seqs[:seqs], after, removed
		}
		res.Metric.Paths = append(res.Metric.Paths, path)
		if err := ev.addSequence(path.Tokens); err != nil {
			restore()
			return nil, nil, err
		}
		build := func(from []Member) []Member {
			next := make([]Member, 0, len(from))
			for _, j := range set {
				next = append(next, cur[j])
			}
			for _, mb := range from {
				if !slices.ContainsFunc(next[:len(set)], func(x Member) bool { return x.Site.String() == mb.Site.String() }) {
					next = append(next, mb)
				}
			}
			return next
		}
		next := build(ranked)
		vals, err := ev.eval(next, [][]int{prefix(len(set)), prefix(len(next))})
		if err == nil && vals[1] > 0 {
			if wider := all(); len(wider) > len(ranked) {
				ranked = wider
				next = build(ranked)
				v, e := ev.eval(next, [][]int{prefix(len(next))})
				if err = e; err == nil {
					vals[1] = v[0]
				}
			}
		}
		if err != nil {
			restore()
			if errors.Is(err, ErrBudget) {
				return stop("%v", err)
			}
			return nil, nil, err
		}
		switch {
		case vals[0] <= 0:
			restore()
			return stop("the path of its generation (metric %.4g with the fix set) does not show the failure under teacher forcing", vals[0])
		case vals[1] > 0:
			restore()
			return stop("with all %d candidates the metric on the generation paths is still %.4g", len(next), vals[1])
		}
		progress("cca: path %d added (metric %.4g with the fix set, %.4g with all %d candidates): searching again", len(res.Metric.Paths), vals[0], vals[1], len(next))
		ns, err := minimize(next, len(set), len(set))
		if err != nil {
			restore()
			if errors.Is(err, ErrBudget) {
				return stop("%v", err)
			}
			return nil, nil, err
		}
		cur, set = next, ns
	}
}

func without(set []int, i int) []int {
	return append(slices.Clone(set[:i]), set[i+1:]...)
}

// split cuts set into k nearly equal chunks.
func split(set []int, k int) [][]int {
	var out [][]int
	for i := range k {
		lo, hi := i*len(set)/k, (i+1)*len(set)/k
		if hi > lo {
			out = append(out, set[lo:hi])
		}
	}
	return out
}

func withoutValues(set, drop []int) []int {
	var out []int
	for _, v := range set {
		if !slices.Contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

func withoutAll(set []int, idx []int) []int {
	var out []int
	for i, v := range set {
		if !slices.Contains(idx, i) {
			out = append(out, v)
		}
	}
	return out
}

// candidates enumerates the candidate sites of layers at a granularity;
// queryKey adds each head's query and key (hook_q, hook_k) to its output.
func candidates(m *transformer.Model, layers []int, gran string, queryKey bool) []Candidate {
	all := transformer.Span{All: true}
	site := func(hook string) transformer.Site {
		return transformer.Site{Hook: hook, Pos: all, Head: all, Src: all, I: all}
	}
	var out []Candidate
	for _, l := range layers {
		if gran == Auto || gran == Heads {
			for h := range m.Config.Heads {
				s := site(fmt.Sprintf("blocks.%d.attn.hook_z", l))
				s.Head = transformer.Index(h)
				out = append(out, Candidate{Site: s, Layer: l, Kind: "head", Index: h})
				if queryKey {
					for _, kind := range []string{"q", "k"} {
						s := site(fmt.Sprintf("blocks.%d.attn.hook_%s", l, kind))
						s.Head = transformer.Index(h)
						out = append(out, Candidate{Site: s, Layer: l, Kind: kind, Index: h})
					}
				}
			}
		}
		if gran == Auto || gran == Neurons {
			for n := range m.Config.Inner {
				s := site(fmt.Sprintf("blocks.%d.mlp.hook_post", l))
				s.I = transformer.Index(n)
				out = append(out, Candidate{Site: s, Layer: l, Kind: "neuron", Index: n})
			}
		}
		if gran == Layers {
			out = append(out,
				Candidate{Site: site(fmt.Sprintf("blocks.%d.hook_attn_out", l)), Layer: l, Kind: "attn_out", Index: -1},
				Candidate{Site: site(fmt.Sprintf("blocks.%d.hook_mlp_out", l)), Layer: l, Kind: "mlp_out", Index: -1})
		}
	}
	return out
}

func hooksOf(cands []Candidate) []string {
	var hooks []string
	for _, c := range cands {
		if !slices.Contains(hooks, c.Site.Hook) {
			hooks = append(hooks, c.Site.Hook)
		}
	}
	return hooks
}

// perPosition returns the per-position size of a candidate's hook.
func perPosition(m *transformer.Model, c Candidate) int {
	switch c.Kind {
	case "head", "q", "k":
		return m.Config.Hidden
	case "neuron":
		return m.Config.Inner
	}
	return m.Config.Hidden
}

// siteSize returns how many values a candidate covers per position, and
// its first offset within the per-position vector.
func siteRange(m *transformer.Model, c Candidate) (int, int) {
	switch c.Kind {
	case "head", "q", "k":
		d := m.Config.Hidden / m.Config.Heads
		return c.Index * d, d
	case "neuron":
		return c.Index, 1
	}
	return 0, m.Config.Hidden
}

func siteSize(m *transformer.Model, c Candidate) int { _, n := siteRange(m, c); return n }

// isHead reports whether a candidate kind is a per-head site ([pos, head,
// d_head]: hook_z, hook_q, hook_k).
func isHead(kind string) bool { return kind == "head" || kind == "q" || kind == "k" }

// member turns a candidate into a fix-set member.
func member(m *transformer.Model, c Candidate, kind string, src []float32) Member {
	if kind == ZeroAbl || src == nil {
		return Member{Candidate: c, Mode: transformer.Zero}
	}
	off, n := siteRange(m, c)
	return Member{Candidate: c, Mode: transformer.Mean, Values: slices.Clone(src[off : off+n])}
}

// Intervention returns the member as a transformer intervention on every
// row (Row -1).
func (mb Member) Intervention(m *transformer.Model) transformer.Intervention {
	iv := transformer.Intervention{Site: mb.Site, Mode: mb.Mode, Row: -1}
	if mb.Mode == transformer.Mean {
		per := perPosition(m, mb.Candidate)
		off, _ := siteRange(m, mb.Candidate)
		full := make([]float32, per)
		copy(full[off:], mb.Values)
		shape := []int{per}
		if isHead(mb.Kind) {
			shape = []int{m.Config.Heads, m.Config.Hidden / m.Config.Heads}
		}
		iv.Source = engine.NewHost(full, shape...)
	}
	return iv
}

// ParseMember rebuilds a member from its site text, mode and values, as a
// certificate stores it.
func ParseMember(m *transformer.Model, site string, mode transformer.Mode, values []float32) (Member, error) {
	s, err := transformer.ParseSite(site)
	if err != nil {
		return Member{}, fmt.Errorf("cca: fix set: %w", err)
	}
	if _, err := m.Sites(s); err != nil {
		return Member{}, fmt.Errorf("cca: fix set: %w", err)
	}
	c := Candidate{Site: s, Index: -1}
	rest, ok := strings.CutPrefix(s.Hook, "blocks.")
	var layer string
	if ok {
		layer, rest, ok = strings.Cut(rest, ".")
	}
	if !ok {
		return Member{}, fmt.Errorf("cca: fix set: site %s is not in a block", site)
	}
	if c.Layer, err = strconv.Atoi(layer); err != nil {
		return Member{}, fmt.Errorf("cca: fix set: site %s: %w", site, err)
	}
	switch {
	case rest == "attn.hook_z" && s.Head.Single && s.I.All && s.Pos.All:
		c.Kind, c.Index = "head", s.Head.Start
	case (rest == "attn.hook_q" || rest == "attn.hook_k") && s.Head.Single && s.I.All && s.Pos.All:
		c.Kind, c.Index = strings.TrimPrefix(rest, "attn.hook_"), s.Head.Start
	case rest == "mlp.hook_post" && s.I.Single && s.Pos.All:
		c.Kind, c.Index = "neuron", s.I.Start
	case (rest == "hook_attn_out" || rest == "hook_mlp_out") && s.I.All && s.Pos.All:
		c.Kind = strings.TrimPrefix(rest, "hook_")
	default:
		return Member{}, fmt.Errorf("cca: fix set: site %s is not a head (output, query or key), a neuron or a layer output", site)
	}
	mb := Member{Candidate: c, Mode: mode}
	switch mode {
	case transformer.Zero:
		if len(values) != 0 {
			return Member{}, fmt.Errorf("cca: fix set: site %s: zero takes no values", site)
		}
	case transformer.Mean:
		if _, n := siteRange(m, c); len(values) != n {
			return Member{}, fmt.Errorf("cca: fix set: site %s: %d values for a site of %d", site, len(values), n)
		}
		mb.Values = values
	default:
		return Member{}, fmt.Errorf("cca: fix set: site %s: mode %q is not zero or mean", site, mode)
	}
	return mb, nil
}

// Interventions returns the members as transformer interventions.
func Interventions(m *transformer.Model, ms []Member) []transformer.Intervention {
	out := make([]transformer.Intervention, len(ms))
	for i, mb := range ms {
		out[i] = mb.Intervention(m)
	}
	return out
}

// interventionSources returns, per hook, the per-position vector that
// patch and mean interventions set (nil for zero), and says where it came
// from.
func interventionSources(ctx context.Context, p *Problem, kind string, hooks []string) (map[string][]float32, string, error) {
	var corpus [][]int
	var note string
	switch {
	case kind == ZeroAbl:
		return map[string][]float32{}, "zero", nil
	case kind == Patch && p.Counterfactual != nil:
		corpus, note = [][]int{p.Counterfactual}, "patch from the counterfactual run (the prompt without the trigger), its mean over positions"
	case len(p.Baseline) > 0:
		corpus = p.Baseline
		note = fmt.Sprintf("mean over a baseline corpus of %d prompts", len(p.Baseline))
		if kind == Patch {
			note = "patch from the baseline mean (no counterfactual run): " + note
		}
	default:
		return map[string][]float32{}, "zero (no counterfactual run and no baseline corpus for " + kind + ")", nil
	}
	means, err := p.Model.MeanActivations(ctx, corpus, transformer.Names(hooks...))
	if err != nil {
		return nil, "", fmt.Errorf("cca: intervention values: %w", err)
	}
	out := map[string][]float32{}
	for h, t := range means {
		out[h] = t.Host()
	}
	return out, note, nil
}

// SourceValues recomputes the per-position vector of each hook over the
// corpus (the counterfactual alone, or a baseline), as the search took it.
func SourceValues(ctx context.Context, m *transformer.Model, corpus [][]int, hooks []string) (map[string][]float32, error) {
	means, err := m.MeanActivations(ctx, corpus, transformer.Names(hooks...))
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	for h, t := range means {
		out[h] = t.Host()
	}
	return out, nil
}

// SiteValues returns a member's slice of a hook's per-position vector.
func SiteValues(m *transformer.Model, mb Member, perPos []float32) []float32 {
	off, n := siteRange(m, mb.Candidate)
	if len(perPos) < off+n {
		return nil
	}
	return perPos[off : off+n]
}
