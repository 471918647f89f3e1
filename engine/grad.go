package engine

// GradBackend is a Backend that also runs the backward ops: given the
// gradient dy of an op's output, each returns the gradient of the op's
// input(s). Gradients flow to activations only (never to weights), which
// is what attribution patching needs. The matmul's backward is MatMul
// itself with the weight layout flipped: for y = x·w (transW false),
// dx = MatMul(dy, w, nil, true); for y = x·wᵀ, dx = MatMul(dy, w, nil, false).
type GradBackend interface {
	Backend

	// LayerNormBackward returns dx for y = LayerNorm(x, gamma, beta, eps)
	// over the last dimension, given dy.
	LayerNormBackward(x, gamma, dy *Tensor, eps float32) *Tensor
	// GELUBackward returns dx for y = GELU(x), given dy.
	GELUBackward(x, dy *Tensor, kind Activation) *Tensor
	// TanhBackward returns dx = dy·(1-y²) for y = tanh(x), given y and dy.
	TanhBackward(y, dy *Tensor) *Tensor
	// SoftmaxBackward returns dx = y·(dy - Σ y·dy) over the last dimension
	// for y = Softmax(x), given y and dy. Where y is 0 (masked) dx is +0 and
	// dy is not read, so non-finite values there cannot spread.
	SoftmaxBackward(y, dy *Tensor) *Tensor
	// AttnScoresBackward returns dq [B, Tq, H, Dh] and dk [B, Tk, H, Dh] for
	// scores = q·kᵀ·scale (AttnScores), given dscores [B, H, Tq, Tk].
	// Masked entries of dscores must be 0; entries exactly 0 are skipped.
	// Callers zero dscores at padded query rows, or those queries would
	// feed the gradients of real keys.
	AttnScoresBackward(dscores, q, k *Tensor, scale float32) (dq, dk *Tensor)
	// AttnMixBackward returns dpattern [B, H, Tq, Tk] and dv [B, Tk, H, Dh]
	// for z = AttnMix(pattern, v), given dz [B, Tq, H, Dh].
	AttnMixBackward(dz, pattern, v *Tensor) (dpattern, dv *Tensor)
	// ConcatLast joins one or more tensors of equal leading dimensions
	// along the last dimension (the backward of SliceLast).
	ConcatLast(parts ...*Tensor) *Tensor
	// ScatterRows returns a zero [rows, D] tensor with row i of x (viewed
	// as [len(idx), D], D its last dimension) added at row idx[i] (the
	// backward of Rows; repeated indices accumulate).
	ScatterRows(x *Tensor, idx []int, rows int) *Tensor
}
