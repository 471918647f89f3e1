package cca

import (
	"context"
	"fmt"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

// evaluator runs intervention sets on the problem's tokens as batched
// forwards that resume from the lowest patched block's cached resid_pre.
type evaluator struct {
	ctx      context.Context
	p        *Problem
	cfg      Config
	cost     *Cost
	residPre []*engine.Tensor // per block, [1, T, D] host
}

func newEvaluator(ctx context.Context, p *Problem, cfg Config, cost *Cost) (*evaluator, error) {
	m := p.Model
	_, cache, err := m.RunWithCache(ctx, p.Tokens, transformer.Names("blocks.*.hook_resid_pre"))
	if err != nil {
		return nil, fmt.Errorf("cca: caching resid_pre: %w", err)
	}
	cost.Forwards++
	cost.Rows++
	ev := &evaluator{ctx: ctx, p: p, cfg: cfg, cost: cost, residPre: make([]*engine.Tensor, m.Config.Layers)}
	for l := range m.Config.Layers {
		t := cache[fmt.Sprintf("blocks.%d.hook_resid_pre", l)]
		if t == nil {
			return nil, fmt.Errorf("cca: the model has no blocks.%d.hook_resid_pre", l)
		}
		ev.residPre[l] = t
	}
	return ev, nil
}

// eval returns the metric of each set (indices into members), cfg.Batch
// sets per forward.
func (ev *evaluator) eval(members []Member, sets [][]int) ([]float64, error) {
	m := ev.p.Model
	var out []float64
	for start := 0; start < len(sets); start += ev.cfg.Batch {
		if ev.cfg.MaxForwards > 0 && ev.cost.Forwards >= ev.cfg.MaxForwards {
			return out, fmt.Errorf("%w: %d forwards (cca.max_forwards, --max-forwards)", ErrBudget, ev.cost.Forwards)
		}
		if err := ev.ctx.Err(); err != nil {
			return out, fmt.Errorf("%w: %w (cca.timeout, --timeout)", ErrBudget, err)
		}
		batch := sets[start:min(start+ev.cfg.Batch, len(sets))]
		low := m.Config.Layers - 1
		var ivs []transformer.Intervention
		seqs := make([][]int, len(batch))
		for row, set := range batch {
			seqs[row] = ev.p.Tokens
			for _, i := range set {
				iv := members[i].Intervention(m)
				iv.Row = row
				ivs = append(ivs, iv)
				low = min(low, members[i].Layer)
			}
		}
		in, err := transformer.NewBatch(seqs, nil)
		if err != nil {
			return out, fmt.Errorf("cca: %w", err)
		}
		hooks, err := m.InterventionHooks(ivs)
		if err != nil {
			return out, fmt.Errorf("cca: %w", err)
		}
		hs, err := m.NewHooks(hooks...)
		if err != nil {
			return out, fmt.Errorf("cca: %w", err)
		}
		rp := ev.residPre[low].Host()
		tiled := make([]float32, 0, len(rp)*len(batch))
		for range batch {
			tiled = append(tiled, rp...)
		}
		shape := ev.residPre[low].Shape()
		res, err := m.ForwardFrom(ev.ctx, in, low, engine.NewHost(tiled, len(batch), shape[1], shape[2]), hs)
		if err != nil {
			if ev.ctx.Err() != nil {
				return out, fmt.Errorf("%w: %w (cca.timeout, --timeout)", ErrBudget, err)
			}
			return out, fmt.Errorf("cca: batched forward: %w", err)
		}
		ev.cost.Forwards++
		ev.cost.Rows += len(batch)
		ev.cost.ResumedBlocks += low
		host := m.Backend.ToHost(res)
		for row := range batch {
			out = append(out, ev.p.Metric.Of(host, res.Shape(), row))
		}
	}
	return out, nil
}
