// Package engine defines fx's tensors and the Backend seam: the op set that
// GPT-2 and BERT need, defined once (shapes and semantics here), implemented by
// each backend (engine/cpu, cuda).
//
// All compute is float32. Shapes are row-major and the batch dimension leads.
// Ops panic on a shape mismatch: callers validate inputs (model files, token
// ids, hook edits) before they reach an op, so a mismatch is a bug in the
// caller, as an out-of-range slice index is. The Check functions (CheckMatMul,
// CheckLayerNorm, …) are the one statement of what each op accepts; every
// backend panics with their errors.
package engine

import (
	"fmt"
	"strings"
)

// Tensor is a dense, row-major float32 array owned by a Backend.
// Host backends keep the values in a Go slice (Host); device backends keep
// them in Device memory and return nil from Host.
type Tensor struct {
	shape  []int
	host   []float32
	device any
}

// NewHost wraps data (not copied) as a tensor of the given shape.
// It panics if len(data) is not the product of shape.
func NewHost(data []float32, shape ...int) *Tensor {
	if n := NumElements(shape); n != len(data) {
		panic(fmt.Sprintf("engine: NewHost: %d values for shape %v (%d elements)", len(data), shape, n))
	}
	return &Tensor{shape: append([]int(nil), shape...), host: data}
}

// NewDevice wraps backend-specific device memory as a tensor of the given shape.
func NewDevice(mem any, shape ...int) *Tensor {
	return &Tensor{shape: append([]int(nil), shape...), device: mem}
}

// Shape returns the tensor's dimensions. The caller must not modify it.
func (t *Tensor) Shape() []int { return t.shape }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Len returns the number of elements.
func (t *Tensor) Len() int { return NumElements(t.shape) }

// Host returns the values of a host tensor in place (no copy), or nil for a
// device tensor. Writes through the slice change the tensor.
func (t *Tensor) Host() []float32 { return t.host }

// Device returns the backend-specific memory of a device tensor, or nil.
func (t *Tensor) Device() any { return t.device }

// Reshape returns a view of t with a new shape and the same storage.
// One dimension may be -1 and is then inferred.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	shape = append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range shape {
		if d == -1 {
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 && known > 0 {
		shape[infer] = t.Len() / known
	}
	if NumElements(shape) != t.Len() {
		panic(fmt.Sprintf("engine: Reshape %v to %v", t.shape, shape))
	}
	return &Tensor{shape: shape, host: t.host, device: t.device}
}

// String describes the tensor's shape and storage, not its values.
func (t *Tensor) String() string {
	where := "host"
	if t.host == nil {
		where = "device"
	}
	return fmt.Sprintf("Tensor%v(%s)", t.shape, where)
}

// NumElements returns the product of shape (1 for a scalar).
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// ShapeString formats a shape as "[2 3 4]".
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Activation selects the GELU variant of a model.
type Activation int

const (
	// GELUTanh is GPT-2's "gelu_new": 0.5x(1+tanh(√(2/π)(x+0.044715x³))).
	GELUTanh Activation = iota
	// GELUErf is BERT's exact "gelu": 0.5x(1+erf(x/√2)).
	GELUErf
)

// AttnMask says which keys each query may attend to.
type AttnMask struct {
	// Causal restricts query i to keys j <= i + QueryOffset.
	Causal bool
	// QueryOffset is the absolute position of the first query among the keys:
	// the number of cached keys that precede this step's queries.
	QueryOffset int
	// QueryOffsetAt, when not nil, is a one-element tensor of the backend
	// whose value (an integer, as float32) is added to QueryOffset when the
	// op runs, not when it is queued: the position of a decode step that a
	// captured graph replays (Capturer) at each new position.
	QueryOffsetAt *Tensor
	// KeyValid, when not nil, is [batch, keys] with 1 for a real key and 0 for
	// padding; padded keys are never attended to.
	KeyValid []int32
}

// EditMode says what an Edit does to each element of its box.
type EditMode int

const (
	// EditZero sets each element to 0.
	EditZero EditMode = iota
	// EditSet sets each element to its source value (Edit.Source), or to
	// Edit.Value when there is no source.
	EditSet
	// EditAdd adds the source value, or Edit.Value, to each element.
	EditAdd
	// EditScale multiplies each element by Edit.Value.
	EditScale
)

// MaxEditDims is the rank of an Edit's box.
const MaxEditDims = 5

// Edit is an in-place change to a box of a tensor's elements: the
// intervention of a hook, as one op, so that a device backend applies it
// where the activation lives. The box has Dims[0]·…·Dims[4] elements;
// element (i0, …, i4) is at Offset + Σ i_k·Strides[k] of the tensor's
// flat values and, when Source is set, reads Source's flat value at
// SourceOffset + Σ i_k·SourceStrides[k]. Unused dimensions have Dims 1.
type Edit struct {
	Mode  EditMode
	Value float32

	Dims    [MaxEditDims]int
	Strides [MaxEditDims]int
	Offset  int

	Source        *Tensor
	SourceStrides [MaxEditDims]int
	SourceOffset  int
}

// Len returns the number of elements in the box.
func (e *Edit) Len() int {
	n := 1
	for _, d := range e.Dims {
		n *= d
	}
	return n
}

// Check reports an edit that would reach outside t or outside its source.
func (e *Edit) Check(t *Tensor) error {
	if e.Len() == 0 {
		return nil
	}
	last := func(off int, strides [MaxEditDims]int) (lo, hi int) {
		lo, hi = off, off
		for k, d := range e.Dims {
			if s := (d - 1) * strides[k]; s < 0 {
				lo += s
			} else {
				hi += s
			}
		}
		return lo, hi
	}
	if lo, hi := last(e.Offset, e.Strides); lo < 0 || hi >= t.Len() {
		return fmt.Errorf("engine: edit reaches elements %d..%d of a tensor of %d", lo, hi, t.Len())
	}
	if e.Source != nil {
		if lo, hi := last(e.SourceOffset, e.SourceStrides); lo < 0 || hi >= e.Source.Len() {
			return fmt.Errorf("engine: edit reads source elements %d..%d of %d", lo, hi, e.Source.Len())
		}
	}
	return nil
}

// Backend computes the op set on tensors it owns. Every op returns a new
// tensor and leaves its inputs unchanged unless it says otherwise.
//
// A CPU backend's results are bit-identical from run to run and for any
// GOMAXPROCS, and each output row depends only on its own input row (so a
// batch of N sequences gives the same bits as N separate runs). Bits are
// promised within one implementation only: another backend, or another
// kernel of the same backend (fused multiply-add, a different partial-sum
// layout), agrees within the tolerances of DESIGN.md, not bit for bit.
//
// A device backend frees a tensor's memory once the tensor is unreachable
// (host tensors are garbage-collected).
type Backend interface {
	// Name identifies the backend and device ("cpu", "cuda:0 NVIDIA H100").
	Name() string

	// FromHost returns a tensor holding data. Host backends may alias data
	// (no copy); device backends copy it to the device.
	FromHost(data []float32, shape ...int) *Tensor
	// ToHost returns t's values in host memory: t.Host() itself on a host
	// backend (no copy), a fresh copy from a device backend.
	ToHost(t *Tensor) []float32
	// Zeros returns a zero-filled tensor.
	Zeros(shape ...int) *Tensor
	// View returns a tensor of shape over t's first NumElements(shape)
	// values, sharing t's memory: writes through either (Edit) show in
	// both, and t's memory lives while the view does. A KV cache written
	// in place through Edit reads its filled rows through a view.
	View(t *Tensor, shape ...int) *Tensor
	// Sync waits for queued work and reports the first error a device met.
	Sync() error

	// MatMul returns x·w + bias. x is [..., K]. With transW false, w is
	// [K, N] (GPT-2's Conv1D layout); with transW true, w is [N, K]
	// (nn.Linear's layout). bias is [N] or nil. The result is [..., N].
	MatMul(x, w, bias *Tensor, transW bool) *Tensor
	// LayerNorm normalises over the last dimension:
	// (x-mean)/sqrt(var+eps)·gamma + beta, with the biased variance.
	LayerNorm(x, gamma, beta *Tensor, eps float32) *Tensor
	// LayerNormScale returns, for each row of x (last dimension), the scale
	// sqrt(var+eps) that LayerNorm divides by; the shape is x's with the last
	// dimension 1 (TransformerLens's hook_scale).
	LayerNormScale(x *Tensor, eps float32) *Tensor
	// AddLayerNorm returns sum = x + delta (delta has x's shape) and
	// normed = LayerNorm(sum, gamma, beta, eps): the residual add and the
	// LayerNorm that follows it, fused (no pass over memory of its own for
	// the add). It
	// agrees with Add then LayerNorm within the tolerances of DESIGN.md; a
	// backend may promise their bits (the CPU backend does).
	AddLayerNorm(x, delta, gamma, beta *Tensor, eps float32) (sum, normed *Tensor)
	// GELU applies the activation elementwise.
	GELU(x *Tensor, kind Activation) *Tensor
	// MatMulGELU returns GELU(MatMul(x, w, bias, transW), kind): the
	// activation applied in the matmul's epilogue, without the product in
	// memory. It agrees with the two ops within the tolerances of
	// DESIGN.md; a backend may promise their bits (the CPU backend does).
	MatMulGELU(x, w, bias *Tensor, transW bool, kind Activation) *Tensor
	// Tanh applies tanh elementwise.
	Tanh(x *Tensor) *Tensor
	// Add returns a+b. b has a's shape or a suffix of it and is broadcast
	// over a's leading dimensions.
	Add(a, b *Tensor) *Tensor
	// Embedding gathers rows of table [V, D] for ids (each < V) and returns
	// [len(ids), D].
	Embedding(table *Tensor, ids []int32) *Tensor
	// Gather is Embedding with the ids in the backend's memory: it returns
	// [len, D] of the rows of table [V, D] at the values of idx (integers
	// as float32, exact below 2^24), read when the op runs, so that a
	// captured graph gathers a new token at each replay. An index outside
	// [0, V) gives a row of NaN: the op cannot report it.
	Gather(table, idx *Tensor) *Tensor
	// Rows gathers rows of x viewed as [R, D] (D the last dimension) and
	// returns [len(idx), D].
	Rows(x *Tensor, idx []int) *Tensor
	// SliceLast returns the columns [from, to) of the last dimension.
	SliceLast(x *Tensor, from, to int) *Tensor
	// Concat joins a [B, Ta, ...] and b [B, Tb, ...] along dimension 1.
	Concat(a, b *Tensor) *Tensor

	// AttnScores returns q·kᵀ·scale for q [B, Tq, H, Dh] and k [B, Tk, H, Dh]
	// as [B, H, Tq, Tk], with -Inf where mask forbids attention.
	AttnScores(q, k *Tensor, scale float32, mask AttnMask) *Tensor
	// Softmax normalises the last dimension; a row that is all -Inf becomes
	// all zeros.
	Softmax(x *Tensor) *Tensor
	// AttnMix returns pattern·v for pattern [B, H, Tq, Tk] and v
	// [B, Tk, H, Dh] as z [B, Tq, H, Dh]. Keys whose weight is exactly 0
	// (masked) contribute nothing, even where v is not finite.
	AttnMix(pattern, v *Tensor) *Tensor
	// Attention returns AttnMix(Softmax(AttnScores(q, k, scale, mask)), v)
	// for q [B, Tq, H, Dh] and k, v [B, Tk, H, Dh], as z [B, Tq, H, Dh]:
	// scaled dot-product attention, fused, without materialising the
	// [B, H, Tq, Tk] scores or pattern. A query whose keys are all masked
	// gets zeros; masked keys contribute nothing, even where v is not
	// finite. It agrees with the three ops within the tolerances of
	// DESIGN.md; a backend may promise their bits (the CPU backend does).
	Attention(q, k, v *Tensor, scale float32, mask AttnMask) *Tensor
	// HeadResult returns each head's contribution to the attention output,
	// z[b,t,h,:]·w[h·Dh:(h+1)·Dh, :], for z [B, T, H, Dh] and w [H·Dh, D]
	// (w in GPT-2's Conv1D layout; with transW, w is [D, H·Dh]), as
	// [B, T, H, D].
	HeadResult(z, w *Tensor, transW bool) *Tensor
	// SumAxis sums over dimension axis (negative counts from the end) and
	// removes it.
	SumAxis(x *Tensor, axis int) *Tensor

	// Edit changes t in place as e says: one of the two ops that write
	// into their input. e.Source may be a host tensor or one of this
	// backend's. It panics when the box reaches outside t or its source
	// (Edit.Check).
	Edit(t *Tensor, e Edit)
	// SetRowsAt writes src [B, T, ...] into dst [B, R, ...] in place, at
	// rows at..at+T-1 of dimension 1, where at is the value of the
	// one-element tensor at (an integer, as float32), read when the op
	// runs: a KV cache's write at a decode step's position. Rows outside
	// [0, R) are not written.
	SetRowsAt(dst, src, at *Tensor)
}

// Graph is a sequence of a backend's ops recorded once (Capturer) and run
// again as a whole, each time on the values its tensors hold then.
type Graph interface {
	// Replay runs the recorded ops. Like any op, it reports errors
	// through the backend's Sync.
	Replay()
	// Close releases the graph and the memory of the tensors that its
	// recorded ops returned; those tensors must not be used afterwards.
	Close() error
}

// Capturer is a Backend that records ops as a Graph: engine/gpu captures
// them as a CUDA graph, so that a replay is one launch for the device
// instead of one per op. A step that a graph replays reads whatever
// varies between replays (a token, a position) from tensors written
// before each Replay (Gather, SetRowsAt, AttnMask.QueryOffsetAt).
type Capturer interface {
	Backend
	// Capture calls record, whose ops are recorded, not run, and returns
	// them as a graph. The tensors the ops return keep the memory the
	// graph writes and hold each Replay's results. record must not read
	// values back (ToHost, Sync), copy host data in (FromHost, an Edit
	// with a host source) or allocate what outlives the graph, and no
	// other goroutine may use the backend until Capture returns. Capture
	// may call record more than once (the first call finding the memory
	// the ops need), so record must change nothing but the backend's ops.
	Capture(record func()) (Graph, error)
}
