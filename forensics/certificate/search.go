package certificate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/modelforensics/fx/forensics/cca"
)

// Widened is what Scope.From gains when the search within the scope's
// layers found no fix and widened to every layer.
const Widened = "no fix within them, widened to all layers"

// Scope is where a search looks: the layers and where they came from.
type Scope struct {
	// Layers are the layers to search (nil: all).
	Layers []int
	// From says where the layers came from, as the certificate's
	// search.layers_from ("cf: flagged layers (threshold 10)", "--layers",
	// "all layers").
	From string
	// Widen searches every layer again when no fix lies within Layers
	// (cca.ErrNoFix): for layers a heuristic chose (CF's flagging), which
	// should narrow the search but never turn a fixable incident into "no
	// fix"; not for layers a user asked for.
	Widen bool
}

// CFScope is the scope of the layers CF flagged at its threshold: every
// layer when it flagged none, else the flagged layers, widened to every
// layer when no fix lies within them. fx analyze --baseline and fx eval
// cca's CF→CCA rows both search it.
func CFScope(flagged []int, threshold float64) Scope {
	if len(flagged) == 0 {
		return Scope{From: "all layers: cf flagged none"}
	}
	return Scope{Layers: slices.Clone(flagged), From: fmt.Sprintf("cf: flagged layers (threshold %g)", threshold), Widen: true}
}

// Searched says where a search ended up looking, as the certificate's
// search section records it.
type Searched struct {
	// From is search.layers_from: the scope's From, with "; " and Widened
	// appended when the search widened.
	From string
	// WidenedFrom are the layers searched first, without a fix, when the
	// search widened (nil otherwise); the result's Layers are then every
	// layer.
	WidenedFrom []int
}

// SearchWithin runs cca.Search on p within the scope's layers. When the scope
// may widen and no fix lies within its layers (cca.ErrNoFix), it searches
// every layer again, within what the first search left of cfg's budgets
// (cca.max_forwards and cca.timeout cover both searches). The result is
// the last search's, with its cost the sum of both searches' and a note
// saying why it widened. A search that does not widen returns exactly what
// cca.Search returns.
func SearchWithin(ctx context.Context, p *cca.Problem, scope Scope, cfg cca.Config, progress cca.Progress) (*cca.Result, Searched, error) {
	out := Searched{From: scope.From}
	start := time.Now()
	res, err := cca.Search(ctx, p, scope.Layers, cfg, progress)
	if err == nil || !scope.Widen || !errors.Is(err, cca.ErrNoFix) || res == nil {
		return res, out, err
	}
	n := p.Model.Config.Layers
	narrow := slices.Compact(slices.Sorted(slices.Values(scope.Layers)))
	if len(narrow) == 0 || len(narrow) >= n {
		return res, out, err // already every layer: nothing to widen to
	}
	first := res.Cost
	if first.Seconds == 0 { // cca.Search sets it only on success
		first.Seconds = time.Since(start).Seconds()
	}
	wide := cfg
	if cfg.MaxForwards > 0 {
		wide.MaxForwards = cfg.MaxForwards - first.Forwards
	}
	if cfg.Timeout > 0 {
		wide.Timeout = cfg.Timeout - time.Since(start)
	}
	if (cfg.MaxForwards > 0 && wide.MaxForwards <= 0) || (cfg.Timeout > 0 && wide.Timeout <= 0) {
		return res, out, fmt.Errorf("certificate: %w: no budget left to widen the search to all layers (cca.max_forwards, cca.timeout) after no fix within layers %v: %w", cca.ErrBudget, narrow, err)
	}
	if progress != nil {
		progress("cca: no fix within layers %v (%s): widening to all %d layers", narrow, scope.From, n)
	}
	wideStart := time.Now()
	res2, err2 := cca.Search(ctx, p, nil, wide, progress)
	if res2 == nil {
		return res, out, fmt.Errorf("certificate: widening the search to all layers after no fix within layers %v (%w): %w", narrow, err, err2)
	}
	second := res2.Cost
	if err2 != nil {
		second.Seconds = time.Since(wideStart).Seconds()
	}
	res2.Cost = addCost(first, second)
	res2.Notes = append(res2.Notes, fmt.Sprintf("no fix within layers %v (%s): %v; the search widened to all %d layers, and the cost counts both searches", narrow, scope.From, err, n))
	out = Searched{From: scope.From + "; " + Widened, WidenedFrom: narrow}
	if err2 != nil {
		return res2, out, fmt.Errorf("certificate: no fix within layers %v, then widened to all layers: %w", narrow, err2)
	}
	return res2, out, nil
}

// addCost returns the sum of two searches' costs.
func addCost(a, b cca.Cost) cca.Cost {
	return cca.Cost{Forwards: a.Forwards + b.Forwards, Rows: a.Rows + b.Rows, Backward: a.Backward + b.Backward,
		Seconds: a.Seconds + b.Seconds, ResumedBlocks: a.ResumedBlocks + b.ResumedBlocks, Replays: a.Replays + b.Replays}
}
