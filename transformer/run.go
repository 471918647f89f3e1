package transformer

import (
	"context"
	"fmt"
	"path"

	"github.com/modelforensics/fx/engine"
)

// Filter selects hook points by name: the names and path.Match globs it
// was built from.
type Filter []string

// Names returns the Filter of the given hook names and globs
// ("blocks.*.mlp.hook_post").
func Names(patterns ...string) Filter { return Filter(patterns) }

// Cache holds copies of hook activations from a forward pass, keyed by
// hook name, in host memory (batch dimension first).
type Cache map[string]*engine.Tensor

// RunWithHooks runs the model on one token sequence with hooks and returns
// its output (see Forward).
func (m *Model) RunWithHooks(ctx context.Context, toks []int, hooks ...HookSpec) (*engine.Tensor, error) {
	in, err := NewBatch([][]int{toks}, nil)
	if err != nil {
		return nil, err
	}
	hs, err := m.NewHooks(hooks...)
	if err != nil {
		return nil, err
	}
	return m.Forward(ctx, in, hs)
}

// RunWithCache runs the model on one token sequence and returns its output
// with a copy of every activation the filter names.
func (m *Model) RunWithCache(ctx context.Context, toks []int, names Filter, hooks ...HookSpec) (*engine.Tensor, Cache, error) {
	in, err := NewBatch([][]int{toks}, nil)
	if err != nil {
		return nil, nil, err
	}
	return m.ForwardWithCache(ctx, in, names, hooks...)
}

// ForwardWithCache runs Forward on a batch with hooks, and caches a copy of
// every activation the filter names (after the hooks ran).
func (m *Model) ForwardWithCache(ctx context.Context, in Batch, names Filter, hooks ...HookSpec) (*engine.Tensor, Cache, error) {
	cache := Cache{}
	all := append([]HookSpec(nil), hooks...)
	for _, p := range names {
		all = append(all, Hook(p, cache.store))
	}
	hs, err := m.NewHooks(all...)
	if err != nil {
		return nil, nil, err
	}
	out, err := m.Forward(ctx, in, hs)
	if err != nil {
		return nil, nil, err
	}
	return out, cache, nil
}

// store is a HookFunc that copies the activation into the cache.
func (c Cache) store(a *engine.Tensor, h *HookCtx) error {
	data := append([]float32(nil), h.Backend.ToHost(a)...)
	c[h.Name] = engine.NewHost(data, a.Shape()...)
	return nil
}

// Match reports whether name is selected by the filter.
func (f Filter) Match(name string) bool {
	for _, p := range f {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ForwardFrom resumes a forward pass at block layer from residPre, the
// cached blocks.<layer>.hook_resid_pre [B, T, D] of the same input: it runs
// blocks layer.. and the head only, and returns what Forward returns.
// Hooks at and above the block are called; those below are not.
func (m *Model) ForwardFrom(ctx context.Context, in Batch, layer int, residPre *engine.Tensor, hooks *Hooks) (*engine.Tensor, error) {
	if err := m.check(in, 0); err != nil {
		return nil, err
	}
	if layer < 0 || layer >= m.Config.Layers {
		return nil, fmt.Errorf("%w: resume at block %d of a %d-block model", ErrBadInput, layer, m.Config.Layers)
	}
	if want := []int{in.B, in.T, m.Config.Hidden}; !equalShape(residPre.Shape(), want) {
		return nil, fmt.Errorf("%w: resume at block %d: resid_pre has shape %s, the input needs %s",
			ErrBadInput, layer, engine.ShapeString(residPre.Shape()), engine.ShapeString(want))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &run{b: m.Backend, hooks: hooks}
	// The blocks may change their input in place through hooks; resume
	// from a copy so the caller's cached tensor stays as it was.
	x := m.Backend.FromHost(append([]float32(nil), m.Backend.ToHost(residPre)...), residPre.Shape()...)
	var out *engine.Tensor
	if m.GPT2 != nil {
		out = m.GPT2.forwardFrom(r, in, layer, x, false)
	} else {
		out = m.BERT.forwardFrom(r, in, layer, x)
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := m.Backend.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Backend.Name(), err)
	}
	return out, nil
}
