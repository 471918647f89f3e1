package transformer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSite is wrapped by every error about a site: its syntax, an index
// out of range, a selector the hook does not have.
var ErrBadSite = errors.New("bad site")

// Span selects indices along one axis of an activation: the whole axis, one
// index, or a half-open range. Negative indices count from the end of the
// axis (-1 is the last).
type Span struct {
	// All selects the whole axis; the other fields are then unused.
	All bool
	// Each marks a whole axis written "*": a patching sweep visits its
	// indices one at a time.
	Each bool
	// Single selects the one index Start.
	Single bool
	// Start is the first index selected.
	Start int
	// Stop is one past the last index selected, when HasStop; without it
	// the range runs to the end of the axis.
	Stop    int
	HasStop bool
}

// Index returns the Span of the single index i.
func Index(i int) Span { return Span{Single: true, Start: i} }

// Range returns the Span of [start, stop).
func Range(start, stop int) Span { return Span{Start: start, Stop: stop, HasStop: true} }

// resolve returns the absolute [lo, hi) of the span on an axis of length n,
// and whether it is a non-empty range inside the axis.
func (s Span) resolve(n int) (lo, hi int, ok bool) {
	abs := func(i int) int {
		if i < 0 {
			return i + n
		}
		return i
	}
	switch {
	case s.All:
		lo, hi = 0, n
	case s.Single:
		lo = abs(s.Start)
		hi = lo + 1
	default:
		lo, hi = abs(s.Start), n
		if s.HasStop {
			hi = abs(s.Stop)
		}
	}
	return lo, hi, lo >= 0 && lo < hi && hi <= n
}

// String formats the span as the site syntax writes it.
func (s Span) String() string {
	switch {
	case s.All:
		return "*"
	case s.Single:
		return strconv.Itoa(s.Start)
	case !s.HasStop:
		return fmt.Sprintf("%d:", s.Start)
	}
	return fmt.Sprintf("%d:%d", s.Start, s.Stop)
}

// Site names activations at a hook point at any granularity:
// "blocks.3.mlp.hook_post[pos=5,i=1234]" (one neuron at one position),
// "blocks.1.attn.hook_z[head=4]" (one head, every position),
// "blocks.7.hook_resid_post" (the whole activation). Selectors not given
// select their whole axis.
type Site struct {
	// Hook is a hook point name, or a glob of them in a site pattern.
	Hook string
	// Pos selects sequence positions (the destination position of
	// attention scores and patterns).
	Pos Span
	// Head selects attention heads, on hooks that have a head axis.
	Head Span
	// Src selects source positions of attention scores and patterns.
	Src Span
	// I selects the last axis: neurons, residual dimensions, head
	// dimensions.
	I Span
}

// String formats the site in its syntax.
func (s Site) String() string {
	var sel []string
	for _, f := range []struct {
		key  string
		span Span
	}{{"pos", s.Pos}, {"head", s.Head}, {"src", s.Src}, {"i", s.I}} {
		if !f.span.All || f.span.Each {
			sel = append(sel, f.key+"="+f.span.String())
		}
	}
	if len(sel) == 0 {
		return s.Hook
	}
	return s.Hook + "[" + strings.Join(sel, ",") + "]"
}

// ParseSite parses the site syntax. It checks syntax only; Model.Sites
// checks the hook and the indices against a model.
func ParseSite(text string) (Site, error) {
	whole := Span{All: true}
	s := Site{Pos: whole, Head: whole, Src: whole, I: whole}
	hook, sel, hasSel := strings.Cut(strings.TrimSpace(text), "[")
	s.Hook = strings.TrimSpace(hook)
	if s.Hook == "" {
		return Site{}, fmt.Errorf("%w %q: no hook name", ErrBadSite, text)
	}
	if !hasSel {
		return s, nil
	}
	sel, ok := strings.CutSuffix(strings.TrimSpace(sel), "]")
	if !ok || strings.ContainsAny(sel, "[]") {
		return Site{}, fmt.Errorf("%w %q: want HOOK[key=value,...]", ErrBadSite, text)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(sel, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || val == "" {
			return Site{}, fmt.Errorf("%w %q: selector %q: want key=value", ErrBadSite, text, part)
		}
		if seen[key] {
			return Site{}, fmt.Errorf("%w %q: selector %q given twice", ErrBadSite, text, key)
		}
		seen[key] = true
		span, err := parseSpan(val)
		if err != nil {
			return Site{}, fmt.Errorf("%w %q: %s=%s: %v", ErrBadSite, text, key, val, err)
		}
		switch key {
		case "pos", "dest":
			s.Pos = span
		case "head":
			s.Head = span
		case "src":
			s.Src = span
		case "i", "neuron":
			s.I = span
		default:
			return Site{}, fmt.Errorf("%w %q: unknown selector %q (pos, head, src, i)", ErrBadSite, text, key)
		}
	}
	return s, nil
}

// parseSpan parses "*", "5", "-1" or a range "a:b" (either end may be
// omitted or negative).
func parseSpan(v string) (Span, error) {
	if v == "*" {
		return Span{All: true, Each: true}, nil
	}
	a, b, isRange := strings.Cut(v, ":")
	if !isRange {
		i, err := strconv.Atoi(v)
		if err != nil {
			return Span{}, fmt.Errorf("not an index, a range a:b or *")
		}
		return Index(i), nil
	}
	var sp Span
	var err error
	if a != "" {
		if sp.Start, err = strconv.Atoi(a); err != nil {
			return Span{}, fmt.Errorf("range start %q is not an integer", a)
		}
	}
	if b != "" {
		if sp.Stop, err = strconv.Atoi(b); err != nil {
			return Span{}, fmt.Errorf("range end %q is not an integer", b)
		}
		sp.HasStop = true
	}
	return sp, nil
}

// axisNames returns the names of the axes (after the batch axis) of a hook
// point's activation, in order.
func axisNames(hook string) []string {
	switch {
	case strings.HasSuffix(hook, "attn.hook_attn_scores"), strings.HasSuffix(hook, "attn.hook_pattern"):
		return []string{"head", "pos", "src"}
	case strings.HasSuffix(hook, "attn.hook_q"), strings.HasSuffix(hook, "attn.hook_k"),
		strings.HasSuffix(hook, "attn.hook_v"), strings.HasSuffix(hook, "attn.hook_z"),
		strings.HasSuffix(hook, "attn.hook_result"):
		return []string{"pos", "head", "i"}
	case hook == "pooler.hook_out", hook == "classifier.hook_out":
		return []string{"i"}
	}
	return []string{"pos", "i"}
}

// span returns the site's span for the named axis.
func (s Site) span(axis string) Span {
	switch axis {
	case "pos":
		return s.Pos
	case "head":
		return s.Head
	case "src":
		return s.Src
	}
	return s.I
}
