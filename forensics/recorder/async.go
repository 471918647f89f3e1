package recorder

import (
	"time"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
)

// deviceBackend is what the recorder's device path needs of a backend
// (engine/gpu offers it): sketches computed where the activation lives and
// copies to the host that do not stop the device.
type deviceBackend interface {
	engine.Backend
	engine.HostCopier
	engine.RowSketcher
}

// maxPendingBytes bounds the host memory that queued copies may hold
// before the recorder waits for the oldest.
const maxPendingBytes = 256 << 20

// pendingHook is one hook call whose results are on their way to the
// host: finish waits for them and records them.
type pendingHook struct {
	finish func() error
	bytes  int
}

// observeDevice is the hook's work on a deviceBackend. It queues, behind
// the forward pass's own work, only what the record level asks to cross
// to the host: for a [1, T, ...] activation the per-position statistics
// and hash (engine.RowSketcher, 32 bytes a position), the projections (a
// MatMul, 4k bytes a position) and, when stored, the values as float16 (2
// bytes each) or float32; the whole activation for attention patterns and
// scores and [1, D] heads (sketched per position on the host), and for
// the KV sketcher's keys and values (a running XXH64 across steps: serial
// in 4 lanes, so faster on the host than in one warp). Nothing waits: the results are
// recorded in order by drain, as the host path would have recorded them
// (a bundle is byte for byte the host path's).
func (r *Recorder) observeDevice(db deviceBackend, t *track, layer int, isK bool, a *engine.Tensor, h *transformer.HookCtx) {
	shape, offset := a.Shape(), h.Offset
	var (
		data  engine.Pending[[]float32]
		sk    engine.Pending[*engine.RowSketch]
		proj  engine.Pending[[]float32]
		bytes int
	)
	rows := false
	if t != nil {
		kind, _ := kindOf(t.name, shape)
		rows = kind == seqKind && shape[1] > 0 && a.Len() >= shape[1] // else t.add, as on the host
	}
	if rows {
		T := shape[1]
		n := a.Len() / T
		f16 := t.store && t.dtype == bundle.Float16
		sk = db.SketchRows(a, T, f16)
		proj = db.ToHostAsync(db.MatMul(a.Reshape(T, n), r.proj.matrix(db, n), nil, false))
		bytes += T * (32 + 4*r.proj.k)
		if f16 {
			bytes += 2 * a.Len()
		}
	}
	if layer >= 0 || (t != nil && (!rows || (t.store && t.dtype == bundle.Float32))) {
		data = db.ToHostAsync(a)
		bytes += 4 * a.Len()
	}
	finish := func() error {
		// Every copy is waited for, so that its buffer is released, before
		// an error returns.
		var (
			values, p []float32
			s         *engine.RowSketch
			errs      [3]error
		)
		if data != nil {
			values, errs[0] = data.Wait()
		}
		if rows {
			s, errs[1] = sk.Wait()
			p, errs[2] = proj.Wait()
		}
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		if rows {
			if err := t.addSketched(shape, offset, s, p, values, r.proj); err != nil {
				return err
			}
		} else if t != nil {
			// Attention and [1, D] activations: t.add needs a only for its
			// shape, and the backend not at all.
			if err := t.add(a, values, db, offset, r.causal, r.proj, &r.acc); err != nil {
				return err
			}
		}
		if layer >= 0 {
			return r.kv.add(layer, isK, values, offset, shape[1])
		}
		return nil
	}
	r.pending = append(r.pending, pendingHook{finish: finish, bytes: bytes})
	r.pendingBytes += bytes
	for r.pendingBytes > maxPendingBytes && len(r.pending) > 1 {
		if err := r.drainOne(); err != nil && r.pendingErr == nil {
			r.pendingErr = err
		}
	}
}

// drainOne records the oldest pending hook call.
func (r *Recorder) drainOne() error {
	p := r.pending[0]
	r.pending[0] = pendingHook{}
	r.pending = r.pending[1:]
	r.pendingBytes -= p.bytes
	return p.finish()
}

// drain records every pending hook call, in order, and returns the first
// error met since the last drain (later calls are still waited for, so
// that their buffers are released).
func (r *Recorder) drain() error {
	if len(r.pending) == 0 && r.pendingErr == nil {
		return nil
	}
	start := time.Now()
	defer func() { r.hookTime += time.Since(start) }()
	err := r.pendingErr
	r.pendingErr = nil
	for len(r.pending) > 0 {
		if e := r.drainOne(); e != nil && err == nil {
			err = e
		}
	}
	r.pending = nil
	return err
}
