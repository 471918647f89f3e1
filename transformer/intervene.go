package transformer

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine"
)

// Mode is what an intervention does to the activations of its site.
type Mode string

// The intervention modes of DESIGN.md.
const (
	// Zero sets the site's activations to 0.
	Zero Mode = "zero"
	// Mean sets them to their mean over a baseline corpus (Source).
	Mean Mode = "mean"
	// Patch copies them from another run (Source, same positions).
	Patch Mode = "patch"
	// Set sets them to Value, or to the vector Source.
	Set Mode = "set"
	// Add adds Value, or the steering vector Source.
	Add Mode = "add"
	// Scale multiplies them by Value.
	Scale Mode = "scale"
)

// Intervention changes the activations of one site during a forward pass.
type Intervention struct {
	Site Site
	Mode Mode
	// Value is the scalar of Set, Add and Scale when Source is nil.
	Value float32
	// Source holds the values Patch copies from (the same hook's activation
	// in another run: [T', ...] or [1, T', ...], T' covering the site's
	// positions), Mean's per-position mean (the activation's shape without
	// batch and position axes), or the vector of Set and Add (the last
	// axis's length). Host memory.
	Source *engine.Tensor
	// Row restricts the intervention to one sequence of a batch; -1 means
	// every sequence.
	Row int
}

// String formats the intervention as the CLI takes it (SITE=MODE[:VALUE]).
func (iv Intervention) String() string {
	s := iv.Site.String() + "=" + string(iv.Mode)
	switch {
	case iv.Source != nil && (iv.Mode == Patch || iv.Mode == Mean || iv.Mode == Set || iv.Mode == Add):
		s += ":<tensor " + engine.ShapeString(iv.Source.Shape()) + ">"
	case iv.Mode == Set || iv.Mode == Add || iv.Mode == Scale:
		s += ":" + strconv.FormatFloat(float64(iv.Value), 'g', -1, 32)
	}
	return s
}

// hookAxes returns the axis names of a hook point's activation (after the
// batch axis) and their lengths, -1 for the sequence axes whose length is
// the input's.
func (m *Model) hookAxes(hook string) ([]string, []int) {
	c := m.Config
	names := axisNames(hook)
	dims := make([]int, len(names))
	for i, a := range names {
		switch a {
		case "pos", "src":
			dims[i] = -1
		case "head":
			dims[i] = c.Heads
		}
	}
	last := len(names) - 1
	if names[last] != "i" {
		return names, dims
	}
	switch {
	case strings.HasSuffix(hook, "hook_scale"):
		dims[last] = 1
	case strings.HasSuffix(hook, "mlp.hook_pre"), strings.HasSuffix(hook, "mlp.hook_post"):
		dims[last] = c.Inner
	case strings.HasSuffix(hook, "attn.hook_result"):
		dims[last] = c.Hidden
	case len(names) == 3: // q, k, v, z
		dims[last] = c.Hidden / c.Heads
	case hook == "unembed.hook_out":
		dims[last] = c.VocabSize
	case hook == "classifier.hook_out":
		dims[last] = c.NumLabels
	default:
		dims[last] = c.Hidden
	}
	return names, dims
}

// Sites expands a site pattern (its hook may be a glob) into one site per
// matching hook point, checking the selectors against each hook: a head on
// a hook without heads, a head or neuron index out of range. Positions are
// checked when the site meets an input.
func (m *Model) Sites(pattern Site) ([]Site, error) {
	hooks, err := m.MatchHooks(pattern.Hook)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrBadSite, pattern, err)
	}
	var sites []Site
	for _, h := range hooks {
		s := pattern
		s.Hook = h
		names, dims := m.hookAxes(h)
		for _, sel := range []string{"pos", "head", "src", "i"} {
			sp := s.span(sel)
			ax := indexOf(names, sel)
			if ax < 0 {
				if !sp.All {
					return nil, fmt.Errorf("%w %s: hook %s has no %s axis (its axes: %s)",
						ErrBadSite, pattern, h, sel, strings.Join(names, ", "))
				}
				continue
			}
			if dims[ax] < 0 {
				continue
			}
			if _, _, ok := sp.resolve(dims[ax]); !ok {
				return nil, fmt.Errorf("%w %s: %s=%s is out of range for hook %s (%d %ss)",
					ErrBadSite, pattern, sel, sp, h, dims[ax], axisNoun(sel))
			}
		}
		sites = append(sites, s)
	}
	return sites, nil
}

// ParseSites parses a site and expands it against the model.
func (m *Model) ParseSites(text string) ([]Site, error) {
	s, err := ParseSite(text)
	if err != nil {
		return nil, err
	}
	return m.Sites(s)
}

func axisNoun(axis string) string {
	switch axis {
	case "pos", "src":
		return "position"
	case "head":
		return "head"
	}
	return "index"
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// InterventionHooks turns interventions into hooks. Each intervention's
// site must name one hook point (expand patterns with Sites first).
func (m *Model) InterventionHooks(ivs []Intervention) ([]HookSpec, error) {
	var hooks []HookSpec
	for _, iv := range ivs {
		sites, err := m.Sites(iv.Site)
		if err != nil {
			return nil, err
		}
		for _, s := range sites {
			iv := iv
			iv.Site = s
			if err := m.checkIntervention(iv); err != nil {
				return nil, err
			}
			hooks = append(hooks, Hook(s.Hook, iv.apply))
		}
	}
	return hooks, nil
}

// checkIntervention checks what can be checked before the forward pass.
func (m *Model) checkIntervention(iv Intervention) error {
	names, dims := m.hookAxes(iv.Site.Hook)
	where := fmt.Sprintf("intervention %s", iv)
	switch iv.Mode {
	case Zero, Scale:
	case Set, Add:
		if iv.Source != nil && iv.Source.Len() != dims[len(dims)-1] {
			return fmt.Errorf("%w: %s: a vector of %d values for an axis of %d",
				ErrBadSite, where, iv.Source.Len(), dims[len(dims)-1])
		}
	case Mean:
		if iv.Source == nil {
			return fmt.Errorf("%w: %s: mean needs the baseline mean activation", ErrBadSite, where)
		}
		if names[0] != "pos" {
			return fmt.Errorf("%w: %s: mean is defined for activations with a position axis first", ErrBadSite, where)
		}
		want := 1
		for _, d := range dims[1:] {
			want *= d
		}
		if iv.Source.Len() != want {
			return fmt.Errorf("%w: %s: baseline mean has %d values, the hook %d per position", ErrBadSite, where, iv.Source.Len(), want)
		}
	case Patch:
		if iv.Source == nil {
			return fmt.Errorf("%w: %s: patch needs a source activation", ErrBadSite, where)
		}
	default:
		return fmt.Errorf("%w: %s: unknown mode %q (zero, mean, patch, set, add, scale)", ErrBadSite, where, iv.Mode)
	}
	return nil
}

// apply is the HookFunc of an intervention.
func (iv Intervention) apply(a *engine.Tensor, h *HookCtx) error {
	shape := a.Shape()
	names := axisNames(h.Name)
	B := shape[0]
	// ranges per axis (after batch); sequence axes are absolute positions
	// offset.. offset+T of the whole sequence of offset+T tokens.
	lo, hi := make([]int, len(names)), make([]int, len(names))
	for ax, name := range names {
		n := shape[ax+1]
		sp := iv.Site.span(name)
		length, base := n, 0
		if name == "pos" { // during generation, this step's positions follow Offset cached ones
			length, base = h.Offset+n, h.Offset
		}
		l, u, ok := sp.resolve(length)
		if !ok {
			return fmt.Errorf("%w: intervention %s: %s=%s is out of range for %d %ss",
				ErrBadSite, iv, name, sp, length, axisNoun(name))
		}
		l, u = max(l, base)-base, min(u, base+n)-base
		if l >= u {
			return nil // the site's positions are not in this step
		}
		lo[ax], hi[ax] = l, u
	}
	if iv.Row >= B {
		return fmt.Errorf("intervention %s: row %d of a batch of %d", iv, iv.Row, B)
	}
	if len(names)+1 > engine.MaxEditDims {
		return fmt.Errorf("intervention %s: %d axes, edits have at most %d", iv, len(names), engine.MaxEditDims-1)
	}
	// The edit's box: dimension 0 is the batch row(s), 1… the hook's axes.
	e := engine.Edit{Value: iv.Value}
	for k := range e.Dims {
		e.Dims[k] = 1
	}
	st := 1
	for ax := len(names) - 1; ax >= 0; ax-- {
		e.Dims[ax+1] = hi[ax] - lo[ax]
		e.Strides[ax+1] = st
		e.Offset += lo[ax] * st
		st *= shape[ax+1]
	}
	e.Dims[0], e.Strides[0] = B, st
	if iv.Row >= 0 {
		e.Dims[0] = 1
		e.Offset += iv.Row * st
	}
	switch iv.Mode {
	case Zero:
		e.Mode = engine.EditZero
	case Scale:
		e.Mode = engine.EditScale
	case Set, Add:
		e.Mode = engine.EditSet
		if iv.Mode == Add {
			e.Mode = engine.EditAdd
		}
		if iv.Source != nil { // one value per index of the last axis
			last := len(names) - 1
			e.Source = iv.Source
			e.SourceStrides[last+1] = 1
			e.SourceOffset = lo[last]
		}
	case Mean: // the mean over positions: every axis but the position's
		e.Mode, e.Source = engine.EditSet, iv.Source
		for ax := 1; ax < len(names); ax++ {
			e.SourceStrides[ax+1] = e.Strides[ax+1]
			e.SourceOffset += lo[ax] * e.Strides[ax+1]
		}
	case Patch: // the same box of the source, positions offset by the cache
		srcStrides, err := patchStrides(iv, shape[1:], h.Offset, hi)
		if err != nil {
			return err
		}
		e.Mode, e.Source = engine.EditSet, iv.Source
		for ax, name := range names {
			i := lo[ax]
			if name == "pos" {
				i += h.Offset
			}
			e.SourceStrides[ax+1] = srcStrides[ax]
			e.SourceOffset += i * srcStrides[ax]
		}
	}
	if err := e.Check(a); err != nil {
		return fmt.Errorf("intervention %s: %w", iv, err)
	}
	h.Backend.Edit(a, e)
	return nil
}

// patchStrides checks a patch source against the activation (shape after
// the batch axis) and returns the source's strides. The source may have a
// leading batch axis of 1 and must cover the patched positions.
func patchStrides(iv Intervention, shape []int, offset int, hi []int) ([]int, error) {
	src := iv.Source.Shape()
	if len(src) == len(shape)+1 && src[0] == 1 {
		src = src[1:]
	}
	if len(src) != len(shape) {
		return nil, fmt.Errorf("%w: intervention %s: source shape %s, activation %s",
			ErrBadSite, iv, engine.ShapeString(iv.Source.Shape()), engine.ShapeString(shape))
	}
	names := axisNames(iv.Site.Hook)
	for ax, n := range shape {
		ok := src[ax] == n
		switch names[ax] {
		case "pos":
			ok = src[ax] >= offset+hi[ax]
		case "src":
			ok = src[ax] >= hi[ax]
		}
		if !ok {
			return nil, fmt.Errorf("%w: intervention %s: source shape %s does not cover activation %s",
				ErrBadSite, iv, engine.ShapeString(iv.Source.Shape()), engine.ShapeString(shape))
		}
	}
	strides := make([]int, len(src))
	st := 1
	for ax := len(src) - 1; ax >= 0; ax-- {
		strides[ax] = st
		st *= src[ax]
	}
	return strides, nil
}

// RunWithInterventions runs one token sequence with the interventions
// applied and returns the model's output.
func (m *Model) RunWithInterventions(ctx context.Context, toks []int, ivs []Intervention, hooks ...HookSpec) (*engine.Tensor, error) {
	ih, err := m.InterventionHooks(ivs)
	if err != nil {
		return nil, err
	}
	return m.RunWithHooks(ctx, toks, append(ih, hooks...)...)
}

// RunBatchedInterventions evaluates len(sets) intervention sets on one token
// sequence in a single forward of batch len(sets): row n of the output has
// sets[n] applied. On the CPU backend each row is bit-identical to a
// separate forward with that set.
func (m *Model) RunBatchedInterventions(ctx context.Context, toks []int, sets [][]Intervention) (*engine.Tensor, error) {
	seqs := make([][]int, len(sets))
	var all []Intervention
	for n, set := range sets {
		seqs[n] = toks
		for _, iv := range set {
			iv.Row = n
			all = append(all, iv)
		}
	}
	in, err := NewBatch(seqs, nil)
	if err != nil {
		return nil, err
	}
	hooks, err := m.InterventionHooks(all)
	if err != nil {
		return nil, err
	}
	hs, err := m.NewHooks(hooks...)
	if err != nil {
		return nil, err
	}
	return m.Forward(ctx, in, hs)
}

// MeanActivations runs the model over a baseline corpus and returns, for
// each hook the filter names that has a position axis first, the mean of its
// activation over every sequence and position (the activation's shape
// without batch and position axes): the Source of a Mean intervention.
func (m *Model) MeanActivations(ctx context.Context, corpus [][]int, names Filter) (Cache, error) {
	sums := map[string][]float64{}
	shapes := map[string][]int{}
	count := 0
	for _, toks := range corpus {
		_, cache, err := m.RunWithCache(ctx, toks, names)
		if err != nil {
			return nil, err
		}
		for name, t := range cache {
			if axisNames(name)[0] != "pos" {
				continue
			}
			shape := t.Shape()[2:]
			per := engine.NumElements(shape)
			if sums[name] == nil {
				sums[name] = make([]float64, per)
				shapes[name] = shape
			}
			s := sums[name]
			for i, v := range t.Host() {
				s[i%per] += float64(v)
			}
		}
		count += len(toks)
	}
	means := Cache{}
	for name, s := range sums {
		out := make([]float32, len(s))
		for i, v := range s {
			out[i] = float32(v / float64(count))
		}
		means[name] = engine.NewHost(out, shapes[name]...)
	}
	return means, nil
}
