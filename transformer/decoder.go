package transformer

import (
	"context"
	"fmt"
	"runtime"

	"github.com/modelforensics/fx/engine"
)

// Decoder runs GPT-2 on one sequence a token at a time through a KV cache
// of fixed capacity, as Generate does when no hook is attached. Each
// step's token and position live in the backend's memory (Gather,
// SetRowsAt, AttnMask.QueryOffsetAt), so every step queues the same ops
// on the same tensors; on a backend that captures graphs
// (engine.Capturer: the GPU) the second step is captured once and every
// later step replays it, one launch instead of one per op. On the CPU each
// step runs its ops as they come, with the bits of the uncaptured KV-cache
// path.
type Decoder struct {
	m        *Model
	cache    *KVCache
	capacity int
	// token and position are the step's token id and position, [1] each
	// (integers as float32); the step advances position itself.
	token, position *engine.Tensor
	// logits is the last step's [1, 1, vocab] (the graph's, once captured).
	logits *engine.Tensor
	steps  int
	graph  engine.Graph
	// graphErr is why the step could not be captured (it then runs
	// uncaptured); nil when it was, or when the backend cannot capture.
	graphErr error
}

// minReplays is the fewest steps that must fit in the cache after a step
// for the decoder to capture it: a capture costs about what an uncaptured
// step does (the ops are queued once either way) plus the graph's
// instantiation, which the replays then repay.
const minReplays = 2

// NewDecoder returns a decoder whose cache holds capacity positions, at
// most the model's.
func (m *Model) NewDecoder(capacity int) (*Decoder, error) {
	if m.GPT2 == nil {
		return nil, fmt.Errorf("decoder: %s is a %s model; only GPT-2 generates", m.Name, m.Config.ModelType)
	}
	if capacity < 1 || capacity > m.Config.MaxPositions {
		return nil, fmt.Errorf("%w: decoder capacity %d outside [1, %d], the model's positions",
			ErrBadInput, capacity, m.Config.MaxPositions)
	}
	b := m.Backend
	cache := m.GPT2.NewKVCache()
	hd := m.Config.Hidden
	for i := range cache.layers {
		l := &cache.layers[i]
		l.capK, l.capV = b.Zeros(1, capacity, hd), b.Zeros(1, capacity, hd)
	}
	return &Decoder{m: m, cache: cache, capacity: capacity, token: b.Zeros(1), position: b.Zeros(1)}, nil
}

// Len returns the number of positions in the cache.
func (d *Decoder) Len() int { return d.cache.Len }

// Captured reports whether the steps replay a captured graph, and, when
// the backend can capture but the capture failed, why.
func (d *Decoder) Captured() (bool, error) { return d.graph != nil, d.graphErr }

// Prefill runs tokens (at least one) through the model after the cached
// positions and returns the logits [vocab] of the last.
func (d *Decoder) Prefill(ctx context.Context, tokens []int) ([]float32, error) {
	in, err := d.input(ctx, tokens)
	if err != nil {
		return nil, err
	}
	b := d.m.Backend
	H := d.m.Config.Heads
	for i := range d.cache.layers { // the steps wrote rows past the views
		l := &d.cache.layers[i]
		if n := d.cache.Len; n > 0 {
			l.K, l.V = b.View(l.capK, 1, n, H, l.capK.Dim(2)/H), b.View(l.capV, 1, n, H, l.capV.Dim(2)/H)
		}
	}
	r := &run{b: b}
	logits := d.m.GPT2.forward(r, in, d.cache, true)
	setScalar(b, d.position, d.cache.Len)
	return d.m.lastLogits(logits)
}

// Step runs one token after the cached positions and returns its logits
// [vocab].
func (d *Decoder) Step(ctx context.Context, token int) ([]float32, error) {
	if _, err := d.input(ctx, []int{token}); err != nil {
		return nil, err
	}
	b := d.m.Backend
	setScalar(b, d.token, token)
	capturer, canCapture := b.(engine.Capturer)
	switch {
	case d.graph != nil:
		d.graph.Replay()
	case canCapture && d.steps > 0 && d.graphErr == nil && d.capacity-d.cache.Len > minReplays:
		// The first step ran uncaptured and made what lasts (a split-K
		// workspace, converted weights); capture the second, unless too
		// few steps fit after it to repay the capture.
		var logits *engine.Tensor
		g, err := capturer.Capture(func() { logits = d.record() })
		if err != nil {
			d.graphErr = err
			d.logits = d.record()
			break
		}
		d.graph, d.logits = g, logits
		// A decoder dropped without Close releases its graph when collected.
		runtime.AddCleanup(d, func(g engine.Graph) { g.Close() }, g)
		d.graph.Replay()
	default:
		d.logits = d.record()
	}
	d.steps++
	d.cache.Len++
	return d.m.lastLogits(d.logits)
}

// Close releases the captured graph, if any (a decoder dropped without
// Close releases it when collected). The decoder must not be used
// afterwards.
func (d *Decoder) Close() error {
	if d.graph == nil {
		return nil
	}
	err := d.graph.Close()
	d.graph, d.logits = nil, nil
	return err
}

// record queues one step's ops: the token at d.token, the position at
// d.position, which it advances by one. It changes no host state, so
// Capture may call it twice.
func (d *Decoder) record() *engine.Tensor {
	b, g := d.m.Backend, d.m.GPT2
	D := d.m.Config.Hidden
	tok := b.Gather(g.Wte, d.token).Reshape(1, 1, D)
	pos := b.Gather(g.Wpe, d.position).Reshape(1, 1, D)
	in := Batch{B: 1, T: 1}
	n := d.cache.Len
	d.cache.at = d.position
	logits := g.blocksAndHead(&run{b: b}, in, 0, tok, pos, d.cache, true)
	d.cache.at, d.cache.Len = nil, n
	b.Edit(d.position, engine.Edit{Mode: engine.EditAdd, Value: 1, Dims: [engine.MaxEditDims]int{1, 1, 1, 1, 1}})
	return logits
}

// input returns tokens as a batch of one sequence, checked: token ids in
// the vocabulary, room in the cache, ctx not done.
func (d *Decoder) input(ctx context.Context, tokens []int) (Batch, error) {
	in, err := NewBatch([][]int{tokens}, nil)
	if err != nil {
		return Batch{}, err
	}
	if err := d.m.check(in, d.cache.Len); err != nil {
		return Batch{}, err
	}
	if d.cache.Len+in.T > d.capacity {
		return Batch{}, fmt.Errorf("%w: %d cached + %d new positions exceed the decoder's capacity of %d",
			ErrBadInput, d.cache.Len, in.T, d.capacity)
	}
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	return in, nil
}

// setScalar writes v into the one-element tensor t.
func setScalar(b engine.Backend, t *engine.Tensor, v int) {
	b.Edit(t, engine.Edit{Mode: engine.EditSet, Value: float32(v), Dims: [engine.MaxEditDims]int{1, 1, 1, 1, 1}})
}
