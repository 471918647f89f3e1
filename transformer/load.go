package transformer

import (
	"fmt"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/weights"
)

// tensorSource is what a loader reads tensors from: a weights.Set.
type tensorSource interface {
	Names() []string
	Info(name string) (weights.TensorInfo, bool)
	Float32(name string) ([]float32, error)
}

// loader resolves Hugging Face tensor names (with or without the
// "transformer." / "bert." prefix, LayerNorm gamma/beta or weight/bias) in one
// place, checks each tensor's shape and puts it on the backend.
type loader struct {
	src   tensorSource
	where string // file or directory, for errors
	b     engine.Backend
	// canonical name (no prefix, weight/bias) → name in the file
	names map[string]string
}

func newLoader(src tensorSource, where string, b engine.Backend, prefixes ...string) *loader {
	l := &loader{src: src, where: where, b: b, names: map[string]string{}}
	for _, n := range src.Names() {
		c := n
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				c = strings.TrimPrefix(c, p)
				break
			}
		}
		if strings.HasSuffix(c, ".gamma") {
			c = strings.TrimSuffix(c, ".gamma") + ".weight"
		} else if strings.HasSuffix(c, ".beta") {
			c = strings.TrimSuffix(c, ".beta") + ".bias"
		}
		l.names[c] = n
	}
	return l
}

// has reports whether the canonical name is present.
func (l *loader) has(name string) bool {
	_, ok := l.names[name]
	return ok
}

// tensor loads the canonical name and checks its shape.
func (l *loader) tensor(name string, shape ...int) (*engine.Tensor, error) {
	actual, ok := l.names[name]
	if !ok {
		return nil, fmt.Errorf("%s: missing tensor %q", l.where, name)
	}
	info, _ := l.src.Info(actual)
	if !equalShape(info.Shape, shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %s, the config implies %s",
			l.where, actual, engine.ShapeString(info.Shape), engine.ShapeString(shape))
	}
	data, err := l.src.Float32(actual)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", l.where, actual, err)
	}
	return l.b.FromHost(data, shape...), nil
}

// linear loads name.weight and name.bias.
func (l *loader) linear(name string, wShape []int, n int) (linear, error) {
	w, err := l.tensor(name+".weight", wShape...)
	if err != nil {
		return linear{}, err
	}
	bias, err := l.tensor(name+".bias", n)
	if err != nil {
		return linear{}, err
	}
	return linear{W: w, B: bias}, nil
}

// layerNorm loads name.weight and name.bias of a LayerNorm of width d whose
// hook points are hookPrefix.hook_scale and hookPrefix.hook_normalized.
func (l *loader) layerNorm(name string, d int, eps float32, hookPrefix string) (layerNorm, error) {
	g, err := l.tensor(name+".weight", d)
	if err != nil {
		return layerNorm{}, err
	}
	bias, err := l.tensor(name+".bias", d)
	if err != nil {
		return layerNorm{}, err
	}
	return layerNorm{Weight: g, Bias: bias, Eps: eps,
		hookScale: hookPrefix + ".hook_scale", hookNormalized: hookPrefix + ".hook_normalized"}, nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// linear is a weight matrix with a bias.
type linear struct {
	W, B *engine.Tensor
}

// layerNorm holds a LayerNorm's parameters and the names of its hook points.
type layerNorm struct {
	Weight, Bias              *engine.Tensor
	Eps                       float32
	hookScale, hookNormalized string
}

// forward applies the LayerNorm and calls its hook points. The scale is
// computed only when a hook reads it.
func (ln layerNorm) forward(r *run, x *engine.Tensor) *engine.Tensor {
	if r.active(ln.hookScale) {
		r.point(ln.hookScale, r.b.LayerNormScale(x, ln.Eps))
	}
	return r.point(ln.hookNormalized, r.b.LayerNorm(x, ln.Weight, ln.Bias, ln.Eps))
}

// addForward returns the residual sum x + delta (x itself when delta is
// nil), after calling the hook points resid (names on the sum, in order),
// and the LayerNorm of the sum, after calling its hook points. Unless a
// hook reads or edits the sum before the LayerNorm, the add and the
// LayerNorm run fused (AddLayerNorm); hooks see the same values either way
// (on the CPU backend, the same bits).
func (ln layerNorm) addForward(r *run, x, delta *engine.Tensor, resid ...string) (sum, normed *engine.Tensor) {
	fused := delta != nil
	for _, name := range resid {
		fused = fused && !r.active(name)
	}
	if !fused {
		if delta != nil {
			x = r.b.Add(x, delta)
		}
		for _, name := range resid {
			x = r.point(name, x)
		}
		return x, ln.forward(r, x)
	}
	sum, normed = r.b.AddLayerNorm(x, delta, ln.Weight, ln.Bias, ln.Eps)
	if r.active(ln.hookScale) {
		r.point(ln.hookScale, r.b.LayerNormScale(sum, ln.Eps))
	}
	return sum, r.point(ln.hookNormalized, normed)
}
