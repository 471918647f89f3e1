package cca

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

// evaluator runs intervention sets on the metric's token sequences (the
// problem's, then each generation path's) as batched forwards that resume
// from the lowest patched block's cached resid_pre.
type evaluator struct {
	ctx    context.Context
	p      *Problem
	metric *MetricSpec
	cfg    Config
	cost   *Cost
	// seqs are the sequences the metric reads, with each one's resid_pre
	// per block ([1, T, D] host).
	seqs []evalSeq
	// shared holds, per hook, one per-position vector that every Mean
	// member on the hook reads its own slice of (a member's intervention
	// would otherwise carry a whole vector of its own: 12 KB per neuron).
	shared map[string]*engine.Tensor
}

// evalSeq is one token sequence of the metric and its cached resid_pre.
type evalSeq struct {
	tokens   []int
	residPre []*engine.Tensor
}

func newEvaluator(ctx context.Context, p *Problem, metric *MetricSpec, cfg Config, cost *Cost) (*evaluator, error) {
	ev := &evaluator{ctx: ctx, p: p, metric: metric, cfg: cfg, cost: cost, shared: map[string]*engine.Tensor{}}
	for _, toks := range metric.Sequences(p.Tokens) {
		if err := ev.addSequence(toks); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// addSequence caches the resid_pre of one more sequence of the metric (a
// generation path appended to metric.Paths).
func (ev *evaluator) addSequence(tokens []int) error {
	m := ev.p.Model
	_, cache, err := m.RunWithCache(ev.ctx, tokens, transformer.Names("blocks.*.hook_resid_pre"))
	if err != nil {
		return fmt.Errorf("cca: caching resid_pre: %w", err)
	}
	ev.cost.Forwards++
	ev.cost.Rows++
	sq := evalSeq{tokens: tokens, residPre: make([]*engine.Tensor, m.Config.Layers)}
	for l := range m.Config.Layers {
		t := cache[fmt.Sprintf("blocks.%d.hook_resid_pre", l)]
		if t == nil {
			return fmt.Errorf("cca: the model has no blocks.%d.hook_resid_pre", l)
		}
		sq.residPre[l] = t
	}
	ev.seqs = append(ev.seqs, sq)
	return nil
}

// eval returns the metric of each set (indices into members), cfg.Batch
// sets per forward and one forward per sequence of the metric: the
// largest over the sequences.
func (ev *evaluator) eval(members []Member, sets [][]int) ([]float64, error) {
	var out []float64
	for start := 0; start < len(sets); start += ev.cfg.Batch {
		batch := sets[start:min(start+ev.cfg.Batch, len(sets))]
		var vals []float64
		for i := range ev.seqs {
			v, err := ev.evalOn(i, members, batch)
			if err != nil {
				return out, err
			}
			if i == 0 {
				vals = v
				continue
			}
			for j := range vals {
				vals[j] = max(vals[j], v[j])
			}
		}
		out = append(out, vals...)
	}
	return out, nil
}

// evalOn returns the metric of each set of one batch on sequence i.
func (ev *evaluator) evalOn(i int, members []Member, batch [][]int) ([]float64, error) {
	m := ev.p.Model
	sq := ev.seqs[i]
	if ev.cfg.MaxForwards > 0 && ev.cost.Forwards >= ev.cfg.MaxForwards {
		return nil, fmt.Errorf("%w: %d forwards (cca.max_forwards, --max-forwards)", ErrBudget, ev.cost.Forwards)
	}
	if err := ev.ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w (cca.timeout, --timeout)", ErrBudget, err)
	}
	low := m.Config.Layers - 1
	var ivs []transformer.Intervention
	seqs := make([][]int, len(batch))
	for row, set := range batch {
		seqs[row] = sq.tokens
		for _, iv := range ev.interventions(members, set) {
			iv.Row = row
			ivs = append(ivs, iv)
		}
		for _, i := range set {
			low = min(low, members[i].Layer)
		}
	}
	in, err := transformer.NewBatch(seqs, nil)
	if err != nil {
		return nil, fmt.Errorf("cca: %w", err)
	}
	in.LogitPositions = ev.metric.PathPositions(i) // the logits the metric reads, not every position's
	hooks, err := m.InterventionHooks(ivs)
	if err != nil {
		return nil, fmt.Errorf("cca: %w", err)
	}
	hs, err := m.NewHooks(groupHooks(hooks)...)
	if err != nil {
		return nil, fmt.Errorf("cca: %w", err)
	}
	rp := sq.residPre[low].Host()
	tiled := make([]float32, 0, len(rp)*len(batch))
	for range batch {
		tiled = append(tiled, rp...)
	}
	shape := sq.residPre[low].Shape()
	res, err := m.ForwardFrom(ev.ctx, in, low, engine.NewHost(tiled, len(batch), shape[1], shape[2]), hs)
	if err != nil {
		if ev.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w (cca.timeout, --timeout)", ErrBudget, err)
		}
		return nil, fmt.Errorf("cca: batched forward: %w", err)
	}
	ev.cost.Forwards++
	ev.cost.Rows += len(batch)
	ev.cost.ResumedBlocks += low
	host := m.Backend.ToHost(res)
	out := make([]float64, len(batch))
	metric := ev.metric.PathAt(i)
	for row := range batch {
		out[row] = metric.Of(host, res.Shape(), row)
	}
	return out, nil
}

// intervention returns a member's intervention on every row; Mean members
// of one hook share a source vector, filled with each member's values as
// it is first seen (members of one search take their values from one
// per-position vector per hook, so the slices never conflict).
func (ev *evaluator) intervention(mb Member) transformer.Intervention {
	iv := transformer.Intervention{Site: mb.Site, Mode: mb.Mode, Row: -1}
	if mb.Mode != transformer.Mean {
		return iv
	}
	m := ev.p.Model
	src := ev.shared[mb.Site.Hook]
	if src == nil {
		per := perPosition(m, mb.Candidate)
		shape := []int{per}
		if isHead(mb.Kind) {
			shape = []int{m.Config.Heads, m.Config.Hidden / m.Config.Heads}
		}
		src = engine.NewHost(make([]float32, per), shape...)
		ev.shared[mb.Site.Hook] = src
	}
	off, _ := siteRange(m, mb.Candidate)
	copy(src.Host()[off:], mb.Values)
	iv.Source = src
	return iv
}

// groupHooks merges the hooks of one hook point into one, so that resolving
// thousands of interventions matches each hook point once.
func groupHooks(hooks []transformer.HookSpec) []transformer.HookSpec {
	var order []string
	fns := map[string][]transformer.HookFunc{}
	for _, h := range hooks {
		if _, ok := fns[h.Pattern]; !ok {
			order = append(order, h.Pattern)
		}
		fns[h.Pattern] = append(fns[h.Pattern], h.Fn)
	}
	out := make([]transformer.HookSpec, len(order))
	for i, pat := range order {
		list := fns[pat]
		out[i] = transformer.Hook(pat, func(a *engine.Tensor, h *transformer.HookCtx) error {
			for _, fn := range list {
				if err := fn(a, h); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return out
}

// interventions returns the interventions of a set of members: the neurons
// (or heads) of one hook that the set holds at consecutive indices become
// one intervention on the range, so a set of thousands of neurons is a few
// hundred edits. Interventions on disjoint indices commute, so the result
// equals the members' interventions one by one.
func (ev *evaluator) interventions(members []Member, set []int) []transformer.Intervention {
	type key struct {
		hook string
		mode transformer.Mode
	}
	byHook := map[key][]int{}
	var order []key
	var out []transformer.Intervention
	for _, i := range set {
		mb := members[i]
		iv := ev.intervention(mb)
		if mb.Index < 0 || (mb.Kind != "neuron" && !isHead(mb.Kind)) {
			out = append(out, iv)
			continue
		}
		k := key{mb.Site.Hook, mb.Mode}
		if _, ok := byHook[k]; !ok {
			order = append(order, k)
		}
		byHook[k] = append(byHook[k], mb.Index)
	}
	for _, k := range order {
		idx := slices.Sorted(slices.Values(byHook[k]))
		idx = slices.Compact(idx)
		for lo := 0; lo < len(idx); {
			hi := lo + 1
			for hi < len(idx) && idx[hi] == idx[hi-1]+1 {
				hi++
			}
			all := transformer.Span{All: true}
			site := transformer.Site{Hook: k.hook, Pos: all, Head: all, Src: all, I: all}
			span := transformer.Range(idx[lo], idx[hi-1]+1)
			if hi-lo == 1 {
				span = transformer.Index(idx[lo])
			}
			if strings.HasSuffix(k.hook, "mlp.hook_post") {
				site.I = span
			} else {
				site.Head = span
			}
			out = append(out, transformer.Intervention{Site: site, Mode: k.mode, Source: ev.shared[k.hook], Row: -1})
			lo = hi
		}
	}
	return out
}
