package recorder

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/weights"
)

// posKind says where a hook's activation keeps its positions.
type posKind int

const (
	// seqKind: [1, T, ...], positions on axis 1.
	seqKind posKind = iota
	// attnKind: [1, H, Tq, Tk] scores or pattern, query positions on axis 2.
	attnKind
	// wholeKind: [1, ...] with no position axis (pooler.hook_out).
	wholeKind
)

// isAttention reports whether hook is an attention score or pattern,
// [batch, head, dest, src].
func isAttention(hook string) bool {
	return strings.HasSuffix(hook, "attn.hook_attn_scores") || strings.HasSuffix(hook, "attn.hook_pattern")
}

// track accumulates one hook's sketches and, when stored, its values, as
// positions arrive (the whole prompt at once, then one position per
// generation step).
type track struct {
	name      string
	kind      posKind
	store     bool
	dtype     string
	started   bool
	inner     []int // per-position shape; [H] for attention; whole shape
	positions int
	sk        sketches
	raw16     []uint16
	raw32     []float32
	rows16    [][]uint16  // attention: per position, [H, L] of its valid keys
	rows32    [][]float32 // likewise
	fill      float32     // attention: the value of masked entries
}

func newTrack(name string, store bool, dtype string) *track {
	t := &track{name: name, store: store, dtype: dtype}
	if strings.HasSuffix(name, "attn.hook_attn_scores") {
		t.fill = float32(math.Inf(-1))
	}
	return t
}

// keep appends values to the stored activation in the storage dtype.
func (t *track) keep(xs []float32) {
	if t.dtype == bundle.Float16 {
		for _, x := range xs {
			t.raw16 = append(t.raw16, weights.Float32ToF16(x))
		}
		return
	}
	t.raw32 = append(t.raw32, xs...)
}

// kindOf returns where hook's activation of shape keeps its positions, and
// the shape of one position's values.
func kindOf(hook string, shape []int) (posKind, []int) {
	switch {
	case isAttention(hook) && len(shape) == 4:
		return attnKind, shape[1:2]
	case len(shape) == 2:
		return wholeKind, shape[1:]
	}
	return seqKind, shape[2:]
}

// begin checks that an activation of shape, starting at sequence position
// offset, follows on from the recorded ones (the first fixes the track's
// kind and per-position shape) and returns its kind.
func (t *track) begin(shape []int, offset int) (posKind, error) {
	kind, inner := kindOf(t.name, shape)
	if !t.started {
		t.started, t.kind, t.inner = true, kind, slices.Clone(inner)
	} else if kind != t.kind || !slices.Equal(inner, t.inner) {
		return kind, fmt.Errorf("%w: hook %s changed shape to %v during the run", ErrState, t.name, shape)
	}
	if offset != t.positions || (kind == wholeKind && t.positions > 0) {
		return kind, fmt.Errorf("%w: hook %s: positions from %d arrive after %d recorded ones (a recorder records one run, in order)",
			ErrState, t.name, offset, t.positions)
	}
	return kind, nil
}

// add sketches (and stores) the activation of one hook call: act, whose
// values on the host are data, starting at sequence position offset.
func (t *track) add(act *engine.Tensor, data []float32, b engine.Backend, offset int, causal bool, p *projector, acc *sketchAcc) error {
	shape := act.Shape()
	kind, err := t.begin(shape, offset)
	if err != nil {
		return err
	}
	switch kind {
	case seqKind:
		t.addRows(act, data, b, p)
	case attnKind:
		H, Tq, Tk := shape[1], shape[2], shape[3]
		for i := range Tq {
			L := Tk
			if causal {
				L = offset + i + 1
			}
			if L > Tk {
				return fmt.Errorf("%w: hook %s: position %d has %d keys, fewer than a causal model's %d",
					ErrState, t.name, offset+i, Tk, L)
			}
			acc.reset(p.k)
			for h := range H {
				seg := data[(h*Tq+i)*Tk : (h*Tq+i)*Tk+L]
				acc.add(seg, p)
			}
			t.sk.appendAcc(acc, p)
			if t.store {
				row16, row32 := []uint16(nil), []float32(nil)
				for h := range H {
					seg := data[(h*Tq+i)*Tk : (h*Tq+i)*Tk+L]
					if t.dtype == bundle.Float16 {
						for _, x := range seg {
							row16 = append(row16, weights.Float32ToF16(x))
						}
					} else {
						row32 = append(row32, seg...)
					}
				}
				t.rows16 = append(t.rows16, row16)
				t.rows32 = append(t.rows32, row32)
			}
		}
		t.positions += Tq
	case wholeKind:
		acc.reset(p.k)
		acc.add(data, p)
		t.sk.appendAcc(acc, p)
		if t.store {
			t.keep(data)
		}
		t.positions = 1
	}
	return nil
}

// addRows sketches (and stores) the T positions of a [1, T, ...]
// activation: the projections of all positions in one MatMul on the
// backend, the rest position by position, in parallel.
func (t *track) addRows(act *engine.Tensor, data []float32, b engine.Backend, p *projector) {
	T := act.Dim(1)
	n := len(data) / T
	k := p.k
	proj := b.ToHost(b.MatMul(act.Reshape(T, n), p.matrix(b, n), nil, false))
	first := t.sk.grow(T, k)
	base16 := len(t.raw16)
	if t.store {
		if t.dtype == bundle.Float16 {
			t.raw16 = append(t.raw16, make([]uint16, T*n)...)
		} else {
			t.raw32 = append(t.raw32, data...)
		}
	}
	parallel(T, T*n, func(lo, hi int) {
		var acc sketchAcc
		for i := lo; i < hi; i++ {
			x := data[i*n : (i+1)*n]
			acc.reset(0)
			acc.addStats(x)
			t.sk.set(first+i, &acc, proj[i*k:(i+1)*k], p.scale)
			if t.store && t.dtype == bundle.Float16 {
				dst := t.raw16[base16+i*n : base16+(i+1)*n]
				for j, v := range x {
					dst[j] = weights.Float32ToF16(v)
				}
			}
		}
	})
	t.positions += T
}

// addSketched is addRows for a [1, T, ...] activation of shape whose
// sketch statistics (and float16 values) a backend computed (sk,
// engine.RowSketcher) and whose projections are proj [T, k]; data holds
// its values when they are stored as float32 (else nil).
func (t *track) addSketched(shape []int, offset int, sk *engine.RowSketch, proj, data []float32, p *projector) error {
	kind, err := t.begin(shape, offset)
	if err != nil {
		return err
	}
	if kind != seqKind {
		return fmt.Errorf("%w: hook %s: a sketch by rows of an activation of shape %v", ErrState, t.name, shape)
	}
	T := shape[1]
	n := engine.NumElements(shape) / T
	k := p.k
	first := t.sk.grow(T, k)
	for i := range T {
		t.sk.setStats(first+i, int64(n), sk.Sum[i], sk.SumSq[i], sk.Min[i], sk.Max[i], sk.Hash[i], proj[i*k:(i+1)*k], p.scale)
	}
	if t.store {
		if t.dtype == bundle.Float16 {
			t.raw16 = append(t.raw16, sk.F16...)
		} else {
			t.raw32 = append(t.raw32, data...)
		}
	}
	t.positions += T
	return nil
}

// finish returns the hook's record and manifest entry for a run of T
// positions.
func (t *track) finish(T int) (bundle.HookRecord, bundle.HookInfo, error) {
	want := T
	if t.kind == wholeKind {
		want = 1
	}
	if !t.started || t.positions != want {
		return bundle.HookRecord{}, bundle.HookInfo{}, fmt.Errorf("%w: hook %s saw %d positions; the run has %d (did the run stop early?)",
			ErrState, t.name, t.positions, want)
	}
	var shape []int
	switch t.kind {
	case seqKind:
		shape = append([]int{T}, t.inner...)
	case attnKind:
		shape = []int{t.inner[0], T, T}
	case wholeKind:
		shape = slices.Clone(t.inner)
	}
	info := bundle.HookInfo{Name: t.name, Positions: t.positions, Shape: shape, Stored: t.store}
	hr := bundle.HookRecord{Hook: t.name, Count: t.sk.count, Mean: t.sk.mean, L2: t.sk.l2, Min: t.sk.min,
		Max: t.sk.max, Proj: t.sk.proj, Hash: t.sk.hash}
	if !t.store {
		return hr, info, nil
	}
	raw := &bundle.Raw{Shape: shape, DType: t.dtype, F16: t.raw16, F32: t.raw32}
	if t.kind == attnKind {
		H := t.inner[0]
		if t.dtype == bundle.Float16 {
			raw.F16 = assemble(t.rows16, H, T, weights.Float32ToF16(t.fill))
		} else {
			raw.F32 = assemble(t.rows32, H, T, t.fill)
		}
	}
	hr.Raw = raw
	return hr, info, nil
}

// assemble builds [H, T, T] from per-position rows [H, L_p], filling the
// keys a row does not hold (masked) with fill.
func assemble[E uint16 | float32](rows [][]E, H, T int, fill E) []E {
	out := make([]E, H*T*T)
	for i := range out {
		out[i] = fill
	}
	for p, row := range rows {
		L := len(row) / H
		for h := range H {
			copy(out[(h*T+p)*T:(h*T+p)*T+L], row[h*L:(h+1)*L])
		}
	}
	return out
}
