package engine_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/modelforensics/fx/engine"
)

func TestSplitLastAndWithLast(t *testing.T) {
	tests := []struct {
		shape      []int
		rows, last int
		with7      []int
	}{
		{nil, 1, 1, []int{7}},
		{[]int{5}, 1, 5, []int{7}},
		{[]int{2, 3, 4}, 6, 4, []int{2, 3, 7}},
		{[]int{2, 0, 4}, 0, 4, []int{2, 0, 7}},
	}
	for _, tc := range tests {
		rows, last := engine.SplitLast(tc.shape)
		assert.Equal(t, tc.rows, rows, "%v", tc.shape)
		assert.Equal(t, tc.last, last, "%v", tc.shape)
		orig := append([]int(nil), tc.shape...)
		assert.Equal(t, tc.with7, engine.WithLast(tc.shape, 7))
		assert.Equal(t, orig, append([]int(nil), tc.shape...), "WithLast leaves its argument alone")
	}
}
