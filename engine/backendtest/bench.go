package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/modelforensics/fx/engine"
)

// OpBench is one op at one shape, for a backend's per-op benchmark: Run
// queues the op once on inputs made beforehand, and Bytes is the least
// memory traffic the op can have (each input read and each output written
// once), so that bytes over time is its effective bandwidth, to hold
// against the device's.
type OpBench struct {
	Name  string
	Bytes int64
	Run   func()
}

// OpBenches returns every op of the forward pass, of the interventions and
// (when b is an engine.GradBackend) of the backward pass, at the shapes of
// GPT-2 small (768 wide, 12 heads of 64, an MLP of 3072) over seqs
// sequences of t tokens, with inputs made on b. MatMul is not among them:
// the backends benchmark it by itself, in FLOP/s. The decode-step
// attention reads a cache of t keys with one query a sequence.
func OpBenches(b engine.Backend, seqs, t int) []OpBench {
	const d, heads, dh, inner, vocab = 768, 12, 64, 3072, 50257
	r := rand.New(rand.NewPCG(uint64(seqs), uint64(t)))
	rows := seqs * t
	randT := func(shape ...int) *engine.Tensor { return b.FromHost(randn(r, engine.NumElements(shape)), shape...) }
	x, delta := randT(seqs, t, d), randT(seqs, t, d)
	gamma, beta := randT(d), randT(d)
	hidden := randT(seqs, t, inner)
	qkv := randT(seqs, t, 3*d)
	q, k, v := randT(seqs, t, heads, dh), randT(seqs, t, heads, dh), randT(seqs, t, heads, dh)
	q1 := randT(seqs, 1, heads, dh)
	scale := float32(1 / math.Sqrt(dh))
	causal := engine.AttnMask{Causal: true}
	decode := engine.AttnMask{Causal: true, QueryOffset: t - 1}
	scores := b.AttnScores(q, k, scale, causal)
	pattern := b.Softmax(scores)
	wte := randT(vocab, d)
	wo := randT(d, d)
	z := randT(seqs, t, heads, dh)
	perHead := randT(seqs, t, heads, d)
	ids := make([]int32, rows)
	for i := range ids {
		ids[i] = int32((i * 7919) % vocab)
	}
	idsT := b.FromHost(idFloats(ids), rows)
	last := make([]int, seqs)
	for i := range last {
		last[i] = i*t + t - 1
	}
	position := b.FromHost([]float32{float32(t - 1)}, 1)
	cache := b.Zeros(seqs, t, d)
	step := randT(seqs, 1, d)

	const f32 = 4
	n, nh, ns := int64(rows*d), int64(rows*inner), int64(seqs*heads*t*t)
	// An intervention on half of mlp.hook_post's neurons at every
	// position, scaling by 1 so that repeated runs keep the values.
	edited := randT(seqs, t, inner)
	halfNeurons := engine.Edit{Mode: engine.EditScale, Value: 1, Dims: [engine.MaxEditDims]int{1, 1, 1, rows, inner / 2},
		Strides: [engine.MaxEditDims]int{0, 0, 0, inner, 1}}
	ops := []OpBench{
		{"LayerNorm", f32 * (2*n + 2*d), func() { b.LayerNorm(x, gamma, beta, 1e-5) }},
		{"AddLayerNorm", f32 * (4*n + 2*d), func() { b.AddLayerNorm(x, delta, gamma, beta, 1e-5) }},
		{"LayerNormScale", f32 * (n + int64(rows)), func() { b.LayerNormScale(x, 1e-5) }},
		{"Add", f32 * 3 * n, func() { b.Add(x, delta) }},
		{"GELU/tanh", f32 * 2 * nh, func() { b.GELU(hidden, engine.GELUTanh) }},
		{"GELU/erf", f32 * 2 * nh, func() { b.GELU(hidden, engine.GELUErf) }},
		{"Tanh", f32 * 2 * n, func() { b.Tanh(x) }},
		{"SliceLast", f32 * 2 * n, func() { b.SliceLast(qkv, d, 2*d) }},
		{"Embedding", f32*2*n + 4*int64(rows), func() { b.Embedding(wte, ids) }},
		{"Gather", f32 * (2*n + int64(rows)), func() { b.Gather(wte, idsT) }},
		{"Rows", f32 * 2 * int64(seqs*d), func() { b.Rows(x, last) }},
		{"Concat", f32 * 2 * (n + int64(seqs*d)), func() { b.Concat(x, step) }},
		{"SetRowsAt", f32 * (2*int64(seqs*d) + 1), func() { b.SetRowsAt(cache, step, position) }},
		{"Edit/scale", f32 * nh, func() { b.Edit(edited, halfNeurons) }},
		{"AttnScores", f32 * (2*n + ns), func() { b.AttnScores(q, k, scale, causal) }},
		{"Softmax", f32 * 2 * ns, func() { b.Softmax(scores) }},
		{"AttnMix", f32 * (ns + 2*n), func() { b.AttnMix(pattern, v) }},
		{"Attention", f32 * 4 * n, func() { b.Attention(q, k, v, scale, causal) }},
		{"Attention/decode", f32 * (2*n + 2*int64(seqs*d)), func() { b.Attention(q1, k, v, scale, decode) }},
		{"HeadResult", f32 * (n + d*d + int64(rows*heads*d)), func() { b.HeadResult(z, wo, false) }},
		{"SumAxis/heads", f32 * (int64(rows*heads*d) + n), func() { b.SumAxis(perHead, 2) }},
	}
	g, ok := b.(engine.GradBackend)
	if !ok {
		return ops
	}
	dz := randT(seqs, t, heads, dh)
	dscores := pattern // a gradient of the scores' shape: finite where the mask allows, 0 elsewhere
	return append(ops,
		OpBench{"LayerNormBackward", f32 * (3*n + d), func() { g.LayerNormBackward(x, gamma, delta, 1e-5) }},
		OpBench{"GELUBackward/tanh", f32 * 3 * nh, func() { g.GELUBackward(hidden, hidden, engine.GELUTanh) }},
		OpBench{"SoftmaxBackward", f32 * 3 * ns, func() { g.SoftmaxBackward(pattern, dscores) }},
		OpBench{"AttnScoresBackward", f32 * (ns + 4*n), func() { g.AttnScoresBackward(dscores, q, k, scale) }},
		OpBench{"AttnMixBackward", f32 * (2*ns + 4*n), func() { g.AttnMixBackward(dz, pattern, v) }},
		OpBench{"ConcatLast", f32 * 2 * 3 * n, func() { g.ConcatLast(x, delta, x) }},
		OpBench{"ScatterRows", f32 * (2*n + vocab*d), func() { g.ScatterRows(x.Reshape(rows, d), idxInts(ids), vocab) }},
	)
}

// idFloats returns ids as the float32 values Gather takes.
func idFloats(ids []int32) []float32 {
	out := make([]float32, len(ids))
	for i, id := range ids {
		out[i] = float32(id)
	}
	return out
}

// idxInts returns ids as the row indices ScatterRows takes.
func idxInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// OpBenchName is the sub-benchmark name of op over seqs sequences of t
// tokens: "LayerNorm/B=8,T=512".
func OpBenchName(op OpBench, seqs, t int) string {
	return fmt.Sprintf("%s/B=%d,T=%d", op.Name, seqs, t)
}
