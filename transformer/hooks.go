package transformer

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/modelforensics/fx/engine"
)

// ErrUnknownHook is returned when a hook name or pattern matches no hook
// point of the model.
var ErrUnknownHook = errors.New("unknown hook")

// HookFunc is called at a hook point with the activation in place (no copy).
// It may read the tensor or change its values; it must not keep the tensor
// past the forward pass unless it copies it. An error stops the forward pass.
type HookFunc func(act *engine.Tensor, h *HookCtx) error

// HookCtx tells a hook where it is.
type HookCtx struct {
	// Name is the hook point's full name, e.g. "blocks.3.mlp.hook_post".
	Name string
	// Backend owns the activation.
	Backend engine.Backend
	// Offset is the position of the activation's first token in the
	// sequence: 0 for a full forward, the KV-cache length during generation.
	Offset int
}

// HookSpec pairs a hook point name (or a path.Match pattern such as
// "blocks.*.mlp.hook_post") with the function to call there.
type HookSpec struct {
	Pattern string
	Fn      HookFunc
}

// Hook returns the HookSpec that calls fn at every hook point pattern
// names.
func Hook(pattern string, fn HookFunc) HookSpec { return HookSpec{Pattern: pattern, Fn: fn} }

// Hooks is a resolved set of hooks for one model: hook point name to the
// functions called there, in registration order. The zero value and nil have
// no hooks.
type Hooks struct {
	byName map[string][]HookFunc
}

// empty reports whether h has no hook.
func (h *Hooks) empty() bool { return h == nil || len(h.byName) == 0 }

// NewHooks resolves hooks against the model's hook points. A pattern that
// matches no hook point is an error wrapping ErrUnknownHook.
func (m *Model) NewHooks(hooks ...HookSpec) (*Hooks, error) {
	hs := &Hooks{byName: map[string][]HookFunc{}}
	for _, h := range hooks {
		names, err := m.MatchHooks(h.Pattern)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			hs.byName[n] = append(hs.byName[n], h.Fn)
		}
	}
	return hs, nil
}

// MatchHooks returns the model's hook point names that pattern names,
// in forward order. A pattern is an exact name or a path.Match glob
// ("blocks.*.hook_resid_post").
func (m *Model) MatchHooks(pattern string) ([]string, error) {
	var names []string
	for _, n := range m.hookNames {
		ok, err := path.Match(pattern, n)
		if err != nil {
			return nil, fmt.Errorf("hook pattern %q: %w", pattern, err)
		}
		if ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w %q (this %s model has %s … %s; see fx inspect)",
			ErrUnknownHook, pattern, m.Config.ModelType, m.hookNames[0], m.hookNames[len(m.hookNames)-1])
	}
	return names, nil
}

// HookNames returns every hook point of the model in forward order.
func (m *Model) HookNames() []string { return slices.Clone(m.hookNames) }

// run carries one forward pass's backend, hooks and first error.
type run struct {
	b      engine.Backend
	hooks  *Hooks
	offset int
	err    error
}

// active reports whether any hook is registered at name.
func (r *run) active(name string) bool {
	return r.hooks != nil && len(r.hooks.byName[name]) > 0
}

// point calls the hooks registered at name on x and returns x. After the
// first hook error, later hooks are skipped and the error is kept.
func (r *run) point(name string, x *engine.Tensor) *engine.Tensor {
	if r.hooks == nil || r.err != nil {
		return x
	}
	fns := r.hooks.byName[name]
	if len(fns) == 0 {
		return x
	}
	ctx := &HookCtx{Name: name, Backend: r.b, Offset: r.offset}
	for _, fn := range fns {
		if err := fn(x, ctx); err != nil {
			r.err = fmt.Errorf("hook %s: %w", name, err)
			return x
		}
	}
	return x
}
