package engine

// SplitLast returns the product of shape's leading dimensions (the rows an
// op over the last dimension walks) and the last dimension; a scalar is one
// row of one element.
func SplitLast(shape []int) (rows, last int) {
	if len(shape) == 0 {
		return 1, 1
	}
	last = shape[len(shape)-1]
	return NumElements(shape[:len(shape)-1]), last
}

// WithLast returns a copy of shape with its last dimension replaced by d
// ([d] for a scalar).
func WithLast(shape []int, d int) []int {
	s := append([]int(nil), shape...)
	if len(s) == 0 {
		return []int{d}
	}
	s[len(s)-1] = d
	return s
}
