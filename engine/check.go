package engine

import (
	"errors"
	"fmt"
	"slices"
)

// The Check functions validate the operands of one op each, as the
// backends' ops require them, so that every backend accepts and rejects
// the same shapes. An error names the op and the operands' shapes; a
// backend panics with it behind its own prefix ("cpu: ", "gpu: "), since
// a mismatch is a bug in the caller (see the package comment). The
// tensors passed must not be nil, except where a function says so; a
// backend that reports nil tensors itself does so first.

// AttnDims are the sizes of an attention: B sequences of Tq queries and
// Tk keys, H heads of Dh values each.
type AttnDims struct {
	B, Tq, Tk, H, Dh int
}

// CheckMatMul checks the operands of MatMul (x [..., K]; w [K, N], or
// [N, K] with transW; bias [N] or nil) and returns the product's rows m
// (x's leading dimensions), outputs n and inner dimension k.
func CheckMatMul(x, w, bias *Tensor, transW bool) (m, n, k int, err error) {
	if x.Rank() < 1 || w.Rank() != 2 {
		return 0, 0, 0, fmt.Errorf("MatMul: x %v, w %v", x, w)
	}
	m, k = SplitLast(x.Shape())
	n, wk := w.Dim(1), w.Dim(0)
	if transW {
		n, wk = wk, n
	}
	if wk != k {
		return 0, 0, 0, fmt.Errorf("MatMul: x %v, w %v (transW %v): inner dimensions differ", x, w, transW)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Len() != n) {
		return 0, 0, 0, fmt.Errorf("MatMul: bias %v for %d outputs", bias, n)
	}
	return m, n, k, nil
}

// CheckMatMulGELU checks the operands of MatMulGELU: kind, then the
// operands of the product as CheckMatMul does (whose errors name MatMul).
func CheckMatMulGELU(x, w, bias *Tensor, transW bool, kind Activation) (m, n, k int, err error) {
	if err := checkActivation("MatMulGELU", kind); err != nil {
		return 0, 0, 0, err
	}
	return CheckMatMul(x, w, bias, transW)
}

// CheckHeadResult checks the operands of HeadResult (z [B, T, H, Dh]; w
// [H·Dh, D], or [D, H·Dh] with transW) and returns D.
func CheckHeadResult(z, w *Tensor, transW bool) (d int, err error) {
	if z.Rank() != 4 || w.Rank() != 2 {
		return 0, fmt.Errorf("HeadResult: z %v, w %v", z, w)
	}
	h, dh := z.Dim(2), z.Dim(3)
	d, hd := w.Dim(1), w.Dim(0)
	if transW {
		d, hd = hd, d
	}
	if hd != h*dh {
		return 0, fmt.Errorf("HeadResult: z %v, w %v (transW %v): w has %d rows of heads, want %d", z, w, transW, hd, h*dh)
	}
	return d, nil
}

// CheckLayerNorm checks the operands of LayerNorm: x has at least one
// dimension, and gamma and beta as many values as its last.
func CheckLayerNorm(x, gamma, beta *Tensor) error {
	_, d := SplitLast(x.Shape())
	if x.Rank() == 0 || gamma.Len() != d || beta.Len() != d {
		return fmt.Errorf("LayerNorm: x %v, gamma %v, beta %v", x, gamma, beta)
	}
	return nil
}

// CheckLayerNormScale checks the operand of LayerNormScale: x has at
// least one dimension.
func CheckLayerNormScale(x *Tensor) error {
	if x.Rank() == 0 {
		return fmt.Errorf("LayerNormScale: x %v", x)
	}
	return nil
}

// CheckAddLayerNorm checks the operands of AddLayerNorm: x has at least
// one dimension, delta x's shape, and gamma and beta as many values as x's
// last dimension.
func CheckAddLayerNorm(x, delta, gamma, beta *Tensor) error {
	_, d := SplitLast(x.Shape())
	if x.Rank() == 0 || !slices.Equal(x.Shape(), delta.Shape()) || gamma.Len() != d || beta.Len() != d {
		return fmt.Errorf("AddLayerNorm: x %v, delta %v, gamma %v, beta %v", x, delta, gamma, beta)
	}
	return nil
}

// CheckGELU checks GELU's activation: GELUTanh or GELUErf.
func CheckGELU(kind Activation) error { return checkActivation("GELU", kind) }

// checkActivation reports a kind that is neither GELUTanh nor GELUErf.
func checkActivation(op string, kind Activation) error {
	if kind != GELUTanh && kind != GELUErf {
		return fmt.Errorf("%s: unknown activation %d", op, kind)
	}
	return nil
}

// CheckAdd checks the operands of Add: b's shape is a's or a suffix of it.
func CheckAdd(a, b *Tensor) error {
	as, bs := a.Shape(), b.Shape()
	if len(bs) > len(as) || !slices.Equal(as[len(as)-len(bs):], bs) {
		return fmt.Errorf("Add: %v is not a suffix of %v", ShapeString(bs), ShapeString(as))
	}
	return nil
}

// CheckEmbedding checks the operands of Embedding: table is [V, D] and
// every id is in [0, V).
func CheckEmbedding(table *Tensor, ids []int32) error {
	if table.Rank() != 2 {
		return fmt.Errorf("Embedding: table %v is not [V, D]", table)
	}
	v := table.Dim(0)
	for _, id := range ids {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("Embedding: id %d of %d rows", id, v)
		}
	}
	return nil
}

// CheckGather checks the operands of Gather: table is [V, D] and idx is a
// vector. The indices' values are the op's to check when it runs.
func CheckGather(table, idx *Tensor) error {
	if table.Rank() != 2 || idx.Rank() != 1 {
		return fmt.Errorf("Gather: table %v is not [V, D] or idx %v is not a vector", table, idx)
	}
	return nil
}

// CheckRows checks the operands of Rows: every index is a row of x viewed
// as [R, D] (D its last dimension).
func CheckRows(x *Tensor, idx []int) error {
	r, _ := SplitLast(x.Shape())
	for _, j := range idx {
		if j < 0 || j >= r {
			return fmt.Errorf("Rows: row %d of %d", j, r)
		}
	}
	return nil
}

// CheckSliceLast checks the operands of SliceLast: x has at least one
// dimension and 0 <= from <= to <= its last.
func CheckSliceLast(x *Tensor, from, to int) error {
	_, d := SplitLast(x.Shape())
	if x.Rank() == 0 || from < 0 || to < from || to > d {
		return fmt.Errorf("SliceLast: [%d, %d) of %v", from, to, x)
	}
	return nil
}

// CheckView checks the operands of View: shape's dimensions are not
// negative and need at most t's values.
func CheckView(t *Tensor, shape []int) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("View: shape %v of %v", shape, t)
		}
	}
	if n := NumElements(shape); n > t.Len() {
		return fmt.Errorf("View: shape %v needs %d values, %v has %d", shape, n, t, t.Len())
	}
	return nil
}

// CheckConcat checks the operands of Concat: a [B, Ta, ...] and b
// [B, Tb, ...] of one rank, at least 2, that agree but in dimension 1.
func CheckConcat(a, b *Tensor) error {
	as, bs := a.Shape(), b.Shape()
	if len(as) < 2 || len(as) != len(bs) || as[0] != bs[0] || !slices.Equal(as[2:], bs[2:]) {
		return fmt.Errorf("Concat: %v and %v", a, b)
	}
	return nil
}

// CheckAttnScores checks the operands of AttnScores (q [B, Tq, H, Dh], k
// [B, Tk, H, Dh], mask.KeyValid nil or B·Tk entries) and returns the sizes.
func CheckAttnScores(q, k *Tensor, mask AttnMask) (AttnDims, error) {
	return attnDims("AttnScores", q, k, nil, mask)
}

// CheckAttention checks the operands of Attention: q [B, Tq, H, Dh], k and
// v [B, Tk, H, Dh], mask.KeyValid nil or B·Tk entries; it returns the
// sizes.
func CheckAttention(q, k, v *Tensor, mask AttnMask) (AttnDims, error) {
	return attnDims("Attention", q, k, v, mask)
}

// attnDims checks q [B, Tq, H, Dh], k [B, Tk, H, Dh], v (when not nil)
// of k's shape and mask.KeyValid for op, and returns the sizes.
func attnDims(op string, q, k, v *Tensor, mask AttnMask) (AttnDims, error) {
	if q.Rank() != 4 || k.Rank() != 4 || q.Dim(0) != k.Dim(0) || q.Dim(2) != k.Dim(2) || q.Dim(3) != k.Dim(3) ||
		(v != nil && !slices.Equal(k.Shape(), v.Shape())) {
		if v != nil {
			return AttnDims{}, fmt.Errorf("%s: q %v, k %v, v %v", op, q, k, v)
		}
		return AttnDims{}, fmt.Errorf("%s: q %v, k %v", op, q, k)
	}
	a := AttnDims{B: q.Dim(0), Tq: q.Dim(1), Tk: k.Dim(1), H: q.Dim(2), Dh: q.Dim(3)}
	if mask.KeyValid != nil && len(mask.KeyValid) != a.B*a.Tk {
		return AttnDims{}, fmt.Errorf("%s: KeyValid has %d entries for %d×%d keys", op, len(mask.KeyValid), a.B, a.Tk)
	}
	if at := mask.QueryOffsetAt; at != nil && at.Len() != 1 {
		return AttnDims{}, fmt.Errorf("%s: QueryOffsetAt %v is not one value", op, at)
	}
	return a, nil
}

// CheckAttnMix checks the operands of AttnMix (pattern [B, H, Tq, Tk], v
// [B, Tk, H, Dh]) and returns the sizes.
func CheckAttnMix(pattern, v *Tensor) (AttnDims, error) {
	return mixDims("AttnMix", pattern, v)
}

// mixDims checks pattern [B, H, Tq, Tk] and v [B, Tk, H, Dh] for op and
// returns the sizes.
func mixDims(op string, pattern, v *Tensor) (AttnDims, error) {
	if pattern.Rank() != 4 || v.Rank() != 4 || pattern.Dim(0) != v.Dim(0) ||
		pattern.Dim(1) != v.Dim(2) || pattern.Dim(3) != v.Dim(1) {
		return AttnDims{}, fmt.Errorf("%s: pattern %v, v %v", op, pattern, v)
	}
	return AttnDims{B: pattern.Dim(0), H: pattern.Dim(1), Tq: pattern.Dim(2), Tk: pattern.Dim(3), Dh: v.Dim(3)}, nil
}

// CheckSumAxis checks SumAxis's axis against x's rank and returns it
// counted from the front (a negative axis counts from the end).
func CheckSumAxis(x *Tensor, axis int) (int, error) {
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() {
		return 0, fmt.Errorf("SumAxis: axis %d of %v", axis, x)
	}
	return axis, nil
}

// CheckEdit checks that e stays inside t and its source (Edit.Check),
// wrapping Edit.Check's error.
func CheckEdit(t *Tensor, e Edit) error {
	if err := e.Check(t); err != nil {
		return fmt.Errorf("Edit of %v: %w", t, err)
	}
	return nil
}

// CheckSetRowsAt checks the operands of SetRowsAt: dst [B, R, ...] and
// src [B, T, ...] have the same dimension 0 and the same size past
// dimension 1, and at is one value. The position's value is the op's to
// check when it runs.
func CheckSetRowsAt(dst, src, at *Tensor) error {
	if dst.Rank() < 2 || src.Rank() < 2 || dst.Dim(0) != src.Dim(0) ||
		NumElements(dst.Shape()[2:]) != NumElements(src.Shape()[2:]) || at.Len() != 1 {
		return fmt.Errorf("SetRowsAt: dst %v, src %v, at %v", dst, src, at)
	}
	return nil
}

// CheckLayerNormBackward checks the operands of LayerNormBackward: x has
// at least one dimension (as LayerNorm's), gamma as many values as its
// last and dy has x's shape.
func CheckLayerNormBackward(x, gamma, dy *Tensor) error {
	if _, d := SplitLast(x.Shape()); x.Rank() == 0 || gamma.Len() != d {
		return fmt.Errorf("LayerNormBackward: x %v, gamma %v", x, gamma)
	}
	return sameShape("LayerNormBackward", x, dy, "x", "dy")
}

// CheckGELUBackward checks the operands of GELUBackward: kind, then that
// dy has x's shape.
func CheckGELUBackward(x, dy *Tensor, kind Activation) error {
	if err := checkActivation("GELUBackward", kind); err != nil {
		return err
	}
	return sameShape("GELUBackward", x, dy, "x", "dy")
}

// CheckTanhBackward checks that dy has y's shape.
func CheckTanhBackward(y, dy *Tensor) error {
	return sameShape("TanhBackward", y, dy, "y", "dy")
}

// CheckSoftmaxBackward checks that dy has y's shape.
func CheckSoftmaxBackward(y, dy *Tensor) error {
	return sameShape("SoftmaxBackward", y, dy, "y", "dy")
}

// sameShape reports, for op, a and b (named an and bn) of different
// shapes.
func sameShape(op string, a, b *Tensor, an, bn string) error {
	if !slices.Equal(a.Shape(), b.Shape()) {
		return fmt.Errorf("%s: %s %v and %s %v differ in shape", op, an, a, bn, b)
	}
	return nil
}

// CheckAttnScoresBackward checks the operands of AttnScoresBackward (q
// [B, Tq, H, Dh], k [B, Tk, H, Dh], dscores [B, H, Tq, Tk]) and returns
// the sizes.
func CheckAttnScoresBackward(dscores, q, k *Tensor) (AttnDims, error) {
	a, err := attnDims("AttnScoresBackward", q, k, nil, AttnMask{})
	if err != nil {
		return AttnDims{}, err
	}
	if want := []int{a.B, a.H, a.Tq, a.Tk}; !slices.Equal(dscores.Shape(), want) {
		return AttnDims{}, fmt.Errorf("AttnScoresBackward: dscores %v for q %v and k %v, want %v", dscores, q, k, ShapeString(want))
	}
	return a, nil
}

// CheckAttnMixBackward checks the operands of AttnMixBackward (pattern
// [B, H, Tq, Tk], v [B, Tk, H, Dh], dz [B, Tq, H, Dh]) and returns the
// sizes.
func CheckAttnMixBackward(dz, pattern, v *Tensor) (AttnDims, error) {
	a, err := mixDims("AttnMixBackward", pattern, v)
	if err != nil {
		return AttnDims{}, err
	}
	if want := []int{a.B, a.Tq, a.H, a.Dh}; !slices.Equal(dz.Shape(), want) {
		return AttnDims{}, fmt.Errorf("AttnMixBackward: dz %v for pattern %v and v %v, want %v", dz, pattern, v, ShapeString(want))
	}
	return a, nil
}

// CheckConcatLast checks the operands of ConcatLast: at least one part,
// each of at least one dimension, all of one rank and equal in their
// leading dimensions (with no parts, the result's leading dimensions would
// be unknown). It returns the result's shape.
func CheckConcatLast(parts ...*Tensor) (shape []int, err error) {
	if len(parts) == 0 {
		return nil, errors.New("ConcatLast: no parts")
	}
	lead := parts[0].Shape()
	if len(lead) > 0 {
		lead = lead[:len(lead)-1]
	}
	total := 0
	for i, p := range parts {
		s := p.Shape()
		if len(s) == 0 || !slices.Equal(s[:len(s)-1], lead) {
			return nil, fmt.Errorf("ConcatLast: part %d %v does not match part 0 %v in its leading dimensions", i, p, parts[0])
		}
		total += s[len(s)-1]
	}
	return append(slices.Clone(lead), total), nil
}

// CheckScatterRows checks the operands of ScatterRows: x has at least one
// dimension and, viewed as [N, D] (D its last), one row for each index;
// rows is not negative and every index is in [0, rows).
func CheckScatterRows(x *Tensor, idx []int, rows int) error {
	if x.Rank() == 0 {
		return fmt.Errorf("ScatterRows: x %v has no rows", x)
	}
	if n, _ := SplitLast(x.Shape()); n != len(idx) {
		return fmt.Errorf("ScatterRows: x %v has %d rows for %d indices", x, n, len(idx))
	}
	if rows < 0 {
		return fmt.Errorf("ScatterRows: %d rows", rows)
	}
	for _, r := range idx {
		if r < 0 || r >= rows {
			return fmt.Errorf("ScatterRows: row %d of %d", r, rows)
		}
	}
	return nil
}
