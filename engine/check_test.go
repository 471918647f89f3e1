package engine_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
)

// tn returns a zero host tensor of shape.
func tn(shape ...int) *engine.Tensor {
	return engine.NewHost(make([]float32, engine.NumElements(shape)), shape...)
}

// ignore drops the values a validator returns beside its error.
func ignore[T any](_ T, err error) error { return err }

// ignore3 drops the three values a validator returns beside its error.
func ignore3(_, _, _ int, err error) error { return err }

// TestChecks runs each validator on operands it accepts (want "") and on
// each kind of operand it rejects, whose error must name the op and the
// operands' shapes exactly as the backends' panics do, less their prefix.
func TestChecks(t *testing.T) {
	x := tn(2, 5)
	ones := [engine.MaxEditDims]int{1, 1, 1, 1, 1}
	tests := []struct {
		name  string
		check func() error
		want  string
	}{
		{"MatMul", func() error { return ignore3(engine.CheckMatMul(x, tn(5, 3), tn(3), false)) }, ""},
		{"MatMul transW", func() error { return ignore3(engine.CheckMatMul(x, tn(3, 5), nil, true)) }, ""},
		{"MatMul scalar x", func() error { return ignore3(engine.CheckMatMul(tn(), tn(5, 3), nil, false)) },
			"MatMul: x Tensor[](host), w Tensor[5 3](host)"},
		{"MatMul w rank", func() error { return ignore3(engine.CheckMatMul(x, tn(5), nil, false)) },
			"MatMul: x Tensor[2 5](host), w Tensor[5](host)"},
		{"MatMul inner", func() error { return ignore3(engine.CheckMatMul(x, tn(4, 3), nil, false)) },
			"MatMul: x Tensor[2 5](host), w Tensor[4 3](host) (transW false): inner dimensions differ"},
		{"MatMul inner transW", func() error { return ignore3(engine.CheckMatMul(x, tn(5, 3), nil, true)) },
			"MatMul: x Tensor[2 5](host), w Tensor[5 3](host) (transW true): inner dimensions differ"},
		{"MatMul bias length", func() error { return ignore3(engine.CheckMatMul(x, tn(5, 3), tn(4), false)) },
			"MatMul: bias Tensor[4](host) for 3 outputs"},
		{"MatMul bias rank", func() error { return ignore3(engine.CheckMatMul(x, tn(5, 3), tn(1, 3), false)) },
			"MatMul: bias Tensor[1 3](host) for 3 outputs"},

		{"MatMulGELU", func() error {
			return ignore3(engine.CheckMatMulGELU(x, tn(5, 3), nil, false, engine.GELUErf))
		}, ""},
		{"MatMulGELU activation", func() error {
			return ignore3(engine.CheckMatMulGELU(x, tn(5, 3), nil, false, engine.Activation(7)))
		}, "MatMulGELU: unknown activation 7"},
		{"MatMulGELU inner", func() error {
			return ignore3(engine.CheckMatMulGELU(x, tn(4, 3), nil, false, engine.GELUTanh))
		}, "MatMul: x Tensor[2 5](host), w Tensor[4 3](host) (transW false): inner dimensions differ"},

		{"HeadResult", func() error { return ignore(engine.CheckHeadResult(tn(1, 2, 3, 4), tn(12, 5), false)) }, ""},
		{"HeadResult transW", func() error { return ignore(engine.CheckHeadResult(tn(1, 2, 3, 4), tn(5, 12), true)) }, ""},
		{"HeadResult z rank", func() error { return ignore(engine.CheckHeadResult(tn(2, 12), tn(12, 5), false)) },
			"HeadResult: z Tensor[2 12](host), w Tensor[12 5](host)"},
		{"HeadResult rows", func() error { return ignore(engine.CheckHeadResult(tn(1, 2, 3, 4), tn(11, 5), false)) },
			"HeadResult: z Tensor[1 2 3 4](host), w Tensor[11 5](host) (transW false): w has 11 rows of heads, want 12"},
		{"HeadResult rows transW", func() error { return ignore(engine.CheckHeadResult(tn(1, 2, 3, 4), tn(12, 5), true)) },
			"HeadResult: z Tensor[1 2 3 4](host), w Tensor[12 5](host) (transW true): w has 5 rows of heads, want 12"},

		{"LayerNorm", func() error { return engine.CheckLayerNorm(x, tn(5), tn(5)) }, ""},
		{"LayerNorm gamma", func() error { return engine.CheckLayerNorm(x, tn(4), tn(5)) },
			"LayerNorm: x Tensor[2 5](host), gamma Tensor[4](host), beta Tensor[5](host)"},
		{"LayerNorm beta", func() error { return engine.CheckLayerNorm(x, tn(5), tn(6)) },
			"LayerNorm: x Tensor[2 5](host), gamma Tensor[5](host), beta Tensor[6](host)"},
		{"LayerNorm scalar", func() error { return engine.CheckLayerNorm(tn(), tn(1), tn(1)) },
			"LayerNorm: x Tensor[](host), gamma Tensor[1](host), beta Tensor[1](host)"},

		{"LayerNormScale", func() error { return engine.CheckLayerNormScale(x) }, ""},
		{"LayerNormScale scalar", func() error { return engine.CheckLayerNormScale(tn()) },
			"LayerNormScale: x Tensor[](host)"},

		{"AddLayerNorm", func() error { return engine.CheckAddLayerNorm(x, tn(2, 5), tn(5), tn(5)) }, ""},
		{"AddLayerNorm delta", func() error { return engine.CheckAddLayerNorm(x, tn(5), tn(5), tn(5)) },
			"AddLayerNorm: x Tensor[2 5](host), delta Tensor[5](host), gamma Tensor[5](host), beta Tensor[5](host)"},
		{"AddLayerNorm gamma", func() error { return engine.CheckAddLayerNorm(x, tn(2, 5), tn(4), tn(5)) },
			"AddLayerNorm: x Tensor[2 5](host), delta Tensor[2 5](host), gamma Tensor[4](host), beta Tensor[5](host)"},
		{"AddLayerNorm beta", func() error { return engine.CheckAddLayerNorm(x, tn(2, 5), tn(5), tn(4)) },
			"AddLayerNorm: x Tensor[2 5](host), delta Tensor[2 5](host), gamma Tensor[5](host), beta Tensor[4](host)"},
		{"AddLayerNorm scalar", func() error { return engine.CheckAddLayerNorm(tn(), tn(), tn(1), tn(1)) },
			"AddLayerNorm: x Tensor[](host), delta Tensor[](host), gamma Tensor[1](host), beta Tensor[1](host)"},

		{"GELU tanh", func() error { return engine.CheckGELU(engine.GELUTanh) }, ""},
		{"GELU erf", func() error { return engine.CheckGELU(engine.GELUErf) }, ""},
		{"GELU activation", func() error { return engine.CheckGELU(engine.Activation(-1)) }, "GELU: unknown activation -1"},

		{"Add same shape", func() error { return engine.CheckAdd(x, tn(2, 5)) }, ""},
		{"Add suffix", func() error { return engine.CheckAdd(x, tn(5)) }, ""},
		{"Add scalar", func() error { return engine.CheckAdd(x, tn()) }, ""},
		{"Add not a suffix", func() error { return engine.CheckAdd(x, tn(2)) }, "Add: [2] is not a suffix of [2 5]"},
		{"Add longer", func() error { return engine.CheckAdd(tn(5), x) }, "Add: [2 5] is not a suffix of [5]"},

		{"Embedding", func() error { return engine.CheckEmbedding(x, []int32{0, 1, 1}) }, ""},
		{"Embedding no ids", func() error { return engine.CheckEmbedding(x, nil) }, ""},
		{"Embedding table", func() error { return engine.CheckEmbedding(tn(2, 5, 1), []int32{0}) },
			"Embedding: table Tensor[2 5 1](host) is not [V, D]"},
		{"Embedding id", func() error { return engine.CheckEmbedding(x, []int32{0, 2}) }, "Embedding: id 2 of 2 rows"},
		{"Embedding negative id", func() error { return engine.CheckEmbedding(x, []int32{-1}) }, "Embedding: id -1 of 2 rows"},

		{"Rows", func() error { return engine.CheckRows(tn(2, 3, 4), []int{5, 0}) }, ""},
		{"Rows index", func() error { return engine.CheckRows(x, []int{0, 2}) }, "Rows: row 2 of 2"},
		{"Rows negative index", func() error { return engine.CheckRows(x, []int{-1}) }, "Rows: row -1 of 2"},

		{"SliceLast", func() error { return engine.CheckSliceLast(x, 1, 5) }, ""},
		{"SliceLast empty", func() error { return engine.CheckSliceLast(x, 5, 5) }, ""},
		{"SliceLast past the end", func() error { return engine.CheckSliceLast(x, 3, 6) }, "SliceLast: [3, 6) of Tensor[2 5](host)"},
		{"SliceLast reversed", func() error { return engine.CheckSliceLast(x, 3, 2) }, "SliceLast: [3, 2) of Tensor[2 5](host)"},
		{"SliceLast negative", func() error { return engine.CheckSliceLast(x, -1, 2) }, "SliceLast: [-1, 2) of Tensor[2 5](host)"},
		{"View", func() error { return engine.CheckView(x, []int{3, 3}) }, ""},
		{"View whole", func() error { return engine.CheckView(x, []int{10}) }, ""},
		{"View too long", func() error { return engine.CheckView(x, []int{11}) }, "View: shape [11] needs 11 values, Tensor[2 5](host) has 10"},
		{"View negative", func() error { return engine.CheckView(x, []int{-1, 2}) }, "View: shape [-1 2] of Tensor[2 5](host)"},
		{"SliceLast scalar", func() error { return engine.CheckSliceLast(tn(), 0, 1) }, "SliceLast: [0, 1) of Tensor[](host)"},

		{"Concat", func() error { return engine.CheckConcat(tn(1, 2, 3), tn(1, 4, 3)) }, ""},
		{"Concat trailing", func() error { return engine.CheckConcat(tn(1, 2, 3), tn(1, 2, 4)) },
			"Concat: Tensor[1 2 3](host) and Tensor[1 2 4](host)"},
		{"Concat batch", func() error { return engine.CheckConcat(tn(1, 2, 3), tn(2, 2, 3)) },
			"Concat: Tensor[1 2 3](host) and Tensor[2 2 3](host)"},
		{"Concat rank", func() error { return engine.CheckConcat(tn(1, 2, 3), tn(1, 2)) },
			"Concat: Tensor[1 2 3](host) and Tensor[1 2](host)"},
		{"Concat rank 1", func() error { return engine.CheckConcat(tn(2), tn(2)) }, "Concat: Tensor[2](host) and Tensor[2](host)"},

		{"AttnScores", func() error {
			return ignore(engine.CheckAttnScores(tn(2, 3, 4, 5), tn(2, 6, 4, 5), engine.AttnMask{KeyValid: make([]int32, 12)}))
		}, ""},
		{"AttnScores heads", func() error {
			return ignore(engine.CheckAttnScores(tn(1, 2, 3, 4), tn(1, 2, 2, 4), engine.AttnMask{}))
		}, "AttnScores: q Tensor[1 2 3 4](host), k Tensor[1 2 2 4](host)"},
		{"AttnScores batch", func() error {
			return ignore(engine.CheckAttnScores(tn(1, 2, 3, 4), tn(2, 2, 3, 4), engine.AttnMask{}))
		}, "AttnScores: q Tensor[1 2 3 4](host), k Tensor[2 2 3 4](host)"},
		{"AttnScores head size", func() error {
			return ignore(engine.CheckAttnScores(tn(1, 2, 3, 4), tn(1, 2, 3, 5), engine.AttnMask{}))
		}, "AttnScores: q Tensor[1 2 3 4](host), k Tensor[1 2 3 5](host)"},
		{"AttnScores rank", func() error {
			return ignore(engine.CheckAttnScores(tn(2, 12), tn(2, 12), engine.AttnMask{}))
		}, "AttnScores: q Tensor[2 12](host), k Tensor[2 12](host)"},
		{"AttnScores KeyValid", func() error {
			return ignore(engine.CheckAttnScores(tn(2, 3, 4, 5), tn(2, 6, 4, 5), engine.AttnMask{KeyValid: make([]int32, 6)}))
		}, "AttnScores: KeyValid has 6 entries for 2×6 keys"},

		{"Attention", func() error {
			return ignore(engine.CheckAttention(tn(2, 3, 4, 5), tn(2, 6, 4, 5), tn(2, 6, 4, 5), engine.AttnMask{}))
		}, ""},
		{"Attention heads", func() error {
			return ignore(engine.CheckAttention(tn(1, 2, 3, 4), tn(1, 5, 2, 4), tn(1, 5, 2, 4), engine.AttnMask{}))
		}, "Attention: q Tensor[1 2 3 4](host), k Tensor[1 5 2 4](host), v Tensor[1 5 2 4](host)"},
		{"Attention v keys", func() error {
			return ignore(engine.CheckAttention(tn(1, 2, 3, 4), tn(1, 5, 3, 4), tn(1, 4, 3, 4), engine.AttnMask{}))
		}, "Attention: q Tensor[1 2 3 4](host), k Tensor[1 5 3 4](host), v Tensor[1 4 3 4](host)"},
		{"Attention KeyValid", func() error {
			return ignore(engine.CheckAttention(tn(1, 2, 3, 4), tn(1, 5, 3, 4), tn(1, 5, 3, 4), engine.AttnMask{KeyValid: make([]int32, 4)}))
		}, "Attention: KeyValid has 4 entries for 1×5 keys"},

		{"AttnMix", func() error { return ignore(engine.CheckAttnMix(tn(2, 4, 3, 6), tn(2, 6, 4, 5))) }, ""},
		{"AttnMix keys", func() error { return ignore(engine.CheckAttnMix(tn(1, 2, 3, 4), tn(1, 5, 2, 4))) },
			"AttnMix: pattern Tensor[1 2 3 4](host), v Tensor[1 5 2 4](host)"},
		{"AttnMix heads", func() error { return ignore(engine.CheckAttnMix(tn(1, 2, 3, 4), tn(1, 4, 3, 4))) },
			"AttnMix: pattern Tensor[1 2 3 4](host), v Tensor[1 4 3 4](host)"},
		{"AttnMix batch", func() error { return ignore(engine.CheckAttnMix(tn(1, 2, 3, 4), tn(2, 4, 2, 4))) },
			"AttnMix: pattern Tensor[1 2 3 4](host), v Tensor[2 4 2 4](host)"},
		{"AttnMix rank", func() error { return ignore(engine.CheckAttnMix(tn(2, 3, 4), tn(1, 4, 2, 4))) },
			"AttnMix: pattern Tensor[2 3 4](host), v Tensor[1 4 2 4](host)"},

		{"SumAxis", func() error { return ignore(engine.CheckSumAxis(x, 1)) }, ""},
		{"SumAxis negative", func() error { return ignore(engine.CheckSumAxis(x, -2)) }, ""},
		{"SumAxis axis", func() error { return ignore(engine.CheckSumAxis(x, 2)) }, "SumAxis: axis 2 of Tensor[2 5](host)"},
		{"SumAxis negative axis", func() error { return ignore(engine.CheckSumAxis(x, -3)) }, "SumAxis: axis -1 of Tensor[2 5](host)"},
		{"SumAxis scalar", func() error { return ignore(engine.CheckSumAxis(tn(), 0)) }, "SumAxis: axis 0 of Tensor[](host)"},

		{"Edit", func() error {
			return engine.CheckEdit(x, engine.Edit{Dims: [engine.MaxEditDims]int{2, 1, 1, 1, 5}, Strides: [engine.MaxEditDims]int{5, 0, 0, 0, 1}})
		}, ""},
		{"Edit outside", func() error {
			return engine.CheckEdit(x, engine.Edit{Dims: [engine.MaxEditDims]int{3, 1, 1, 1, 5}, Strides: [engine.MaxEditDims]int{5, 0, 0, 0, 1}})
		}, "Edit of Tensor[2 5](host): engine: edit reaches elements 0..14 of a tensor of 10"},
		{"Edit source outside", func() error {
			return engine.CheckEdit(x, engine.Edit{Mode: engine.EditSet, Dims: ones, Offset: 3, Source: tn(2), SourceOffset: 2})
		}, "Edit of Tensor[2 5](host): engine: edit reads source elements 2..2 of 2"},

		{"LayerNormBackward", func() error { return engine.CheckLayerNormBackward(x, tn(5), tn(2, 5)) }, ""},
		{"LayerNormBackward gamma", func() error { return engine.CheckLayerNormBackward(x, tn(4), tn(2, 5)) },
			"LayerNormBackward: x Tensor[2 5](host), gamma Tensor[4](host)"},
		{"LayerNormBackward dy", func() error { return engine.CheckLayerNormBackward(x, tn(5), tn(5, 2)) },
			"LayerNormBackward: x Tensor[2 5](host) and dy Tensor[5 2](host) differ in shape"},

		{"GELUBackward", func() error { return engine.CheckGELUBackward(x, tn(2, 5), engine.GELUErf) }, ""},
		{"GELUBackward activation", func() error { return engine.CheckGELUBackward(x, tn(2, 5), engine.Activation(2)) },
			"GELUBackward: unknown activation 2"},
		{"GELUBackward dy", func() error { return engine.CheckGELUBackward(x, tn(10), engine.GELUTanh) },
			"GELUBackward: x Tensor[2 5](host) and dy Tensor[10](host) differ in shape"},

		{"TanhBackward", func() error { return engine.CheckTanhBackward(x, tn(2, 5)) }, ""},
		{"TanhBackward dy", func() error { return engine.CheckTanhBackward(x, tn(3, 5)) },
			"TanhBackward: y Tensor[2 5](host) and dy Tensor[3 5](host) differ in shape"},

		{"SoftmaxBackward", func() error { return engine.CheckSoftmaxBackward(x, tn(2, 5)) }, ""},
		{"SoftmaxBackward dy", func() error { return engine.CheckSoftmaxBackward(x, tn(2, 6)) },
			"SoftmaxBackward: y Tensor[2 5](host) and dy Tensor[2 6](host) differ in shape"},

		{"AttnScoresBackward", func() error {
			return ignore(engine.CheckAttnScoresBackward(tn(1, 2, 3, 5), tn(1, 3, 2, 4), tn(1, 5, 2, 4)))
		}, ""},
		{"AttnScoresBackward heads", func() error {
			return ignore(engine.CheckAttnScoresBackward(tn(1, 2, 3, 3), tn(1, 3, 2, 4), tn(1, 3, 3, 4)))
		}, "AttnScoresBackward: q Tensor[1 3 2 4](host), k Tensor[1 3 3 4](host)"},
		{"AttnScoresBackward dscores", func() error {
			return ignore(engine.CheckAttnScoresBackward(tn(1, 2, 3, 4), tn(1, 3, 2, 4), tn(1, 3, 2, 4)))
		}, "AttnScoresBackward: dscores Tensor[1 2 3 4](host) for q Tensor[1 3 2 4](host) and k Tensor[1 3 2 4](host), want [1 2 3 3]"},

		{"AttnMixBackward", func() error {
			return ignore(engine.CheckAttnMixBackward(tn(1, 3, 2, 4), tn(1, 2, 3, 5), tn(1, 5, 2, 4)))
		}, ""},
		{"AttnMixBackward keys", func() error {
			return ignore(engine.CheckAttnMixBackward(tn(1, 3, 2, 4), tn(1, 2, 3, 4), tn(1, 5, 2, 4)))
		}, "AttnMixBackward: pattern Tensor[1 2 3 4](host), v Tensor[1 5 2 4](host)"},
		{"AttnMixBackward dz", func() error {
			return ignore(engine.CheckAttnMixBackward(tn(1, 3, 2, 5), tn(1, 2, 3, 4), tn(1, 4, 2, 4)))
		}, "AttnMixBackward: dz Tensor[1 3 2 5](host) for pattern Tensor[1 2 3 4](host) and v Tensor[1 4 2 4](host), want [1 3 2 4]"},

		{"ConcatLast", func() error { return ignore(engine.CheckConcatLast(tn(2, 3, 4), tn(2, 3, 1))) }, ""},
		{"ConcatLast no parts", func() error { return ignore(engine.CheckConcatLast()) }, "ConcatLast: no parts"},
		{"ConcatLast leading", func() error { return ignore(engine.CheckConcatLast(tn(2, 3, 4), tn(2, 2, 4))) },
			"ConcatLast: part 1 Tensor[2 2 4](host) does not match part 0 Tensor[2 3 4](host) in its leading dimensions"},
		{"ConcatLast rank", func() error { return ignore(engine.CheckConcatLast(tn(2, 3), tn(2, 1, 3))) },
			"ConcatLast: part 1 Tensor[2 1 3](host) does not match part 0 Tensor[2 3](host) in its leading dimensions"},
		{"ConcatLast scalar", func() error { return ignore(engine.CheckConcatLast(tn())) },
			"ConcatLast: part 0 Tensor[](host) does not match part 0 Tensor[](host) in its leading dimensions"},

		{"ScatterRows", func() error { return engine.CheckScatterRows(x, []int{2, 2}, 3) }, ""},
		{"ScatterRows empty", func() error { return engine.CheckScatterRows(tn(0, 4), nil, 0) }, ""},
		{"ScatterRows scalar", func() error { return engine.CheckScatterRows(tn(), []int{0}, 1) },
			"ScatterRows: x Tensor[](host) has no rows"},
		{"ScatterRows count", func() error { return engine.CheckScatterRows(x, []int{0}, 3) },
			"ScatterRows: x Tensor[2 5](host) has 2 rows for 1 indices"},
		{"ScatterRows negative rows", func() error { return engine.CheckScatterRows(x, []int{0, 1}, -1) },
			"ScatterRows: -1 rows"},
		{"ScatterRows index", func() error { return engine.CheckScatterRows(x, []int{0, 3}, 3) }, "ScatterRows: row 3 of 3"},
		{"ScatterRows negative index", func() error { return engine.CheckScatterRows(x, []int{-1, 0}, 3) },
			"ScatterRows: row -1 of 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tc.want)
		})
	}
}

// TestCheckDims checks the sizes that the validators return beside their
// error.
func TestCheckDims(t *testing.T) {
	t.Run("MatMul", func(t *testing.T) {
		tests := []struct {
			x, w    *engine.Tensor
			transW  bool
			m, n, k int
		}{
			{tn(2, 3, 5), tn(5, 7), false, 6, 7, 5},
			{tn(2, 3, 5), tn(7, 5), true, 6, 7, 5},
			{tn(5), tn(5, 7), false, 1, 7, 5},
			{tn(0, 5), tn(5, 7), false, 0, 7, 5},
		}
		for _, tc := range tests {
			m, n, k, err := engine.CheckMatMul(tc.x, tc.w, nil, tc.transW)
			require.NoError(t, err)
			assert.Equal(t, []int{tc.m, tc.n, tc.k}, []int{m, n, k}, "x %v, w %v, transW %v", tc.x, tc.w, tc.transW)
			m, n, k, err = engine.CheckMatMulGELU(tc.x, tc.w, nil, tc.transW, engine.GELUTanh)
			require.NoError(t, err)
			assert.Equal(t, []int{tc.m, tc.n, tc.k}, []int{m, n, k}, "MatMulGELU: x %v, w %v, transW %v", tc.x, tc.w, tc.transW)
		}
	})
	t.Run("HeadResult", func(t *testing.T) {
		for _, transW := range []bool{false, true} {
			w := tn(12, 7)
			if transW {
				w = tn(7, 12)
			}
			d, err := engine.CheckHeadResult(tn(1, 2, 3, 4), w, transW)
			require.NoError(t, err)
			assert.Equal(t, 7, d, "transW %v", transW)
		}
	})
	t.Run("Attention", func(t *testing.T) {
		want := engine.AttnDims{B: 2, Tq: 3, Tk: 6, H: 4, Dh: 5}
		q, k := tn(2, 3, 4, 5), tn(2, 6, 4, 5)
		tests := []struct {
			name  string
			check func() (engine.AttnDims, error)
		}{
			{"AttnScores", func() (engine.AttnDims, error) { return engine.CheckAttnScores(q, k, engine.AttnMask{}) }},
			{"Attention", func() (engine.AttnDims, error) { return engine.CheckAttention(q, k, k, engine.AttnMask{}) }},
			{"AttnMix", func() (engine.AttnDims, error) { return engine.CheckAttnMix(tn(2, 4, 3, 6), k) }},
			{"AttnScoresBackward", func() (engine.AttnDims, error) {
				return engine.CheckAttnScoresBackward(tn(2, 4, 3, 6), q, k)
			}},
			{"AttnMixBackward", func() (engine.AttnDims, error) {
				return engine.CheckAttnMixBackward(q, tn(2, 4, 3, 6), k)
			}},
		}
		for _, tc := range tests {
			got, err := tc.check()
			require.NoError(t, err, tc.name)
			assert.Equal(t, want, got, tc.name)
		}
	})
	t.Run("SumAxis", func(t *testing.T) {
		tests := []struct{ axis, want int }{{0, 0}, {2, 2}, {-1, 2}, {-3, 0}}
		for _, tc := range tests {
			got, err := engine.CheckSumAxis(tn(2, 3, 4), tc.axis)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "axis %d", tc.axis)
		}
	})
	t.Run("ConcatLast", func(t *testing.T) {
		tests := []struct {
			parts []*engine.Tensor
			want  []int
		}{
			{[]*engine.Tensor{tn(2, 3, 4), tn(2, 3, 1)}, []int{2, 3, 5}},
			{[]*engine.Tensor{tn(4)}, []int{4}},
			{[]*engine.Tensor{tn(0, 2), tn(0, 0), tn(0, 3)}, []int{0, 5}},
		}
		for _, tc := range tests {
			got, err := engine.CheckConcatLast(tc.parts...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		}
	})
	t.Run("Edit wraps", func(t *testing.T) {
		x := tn(2, 5)
		e := engine.Edit{Dims: [engine.MaxEditDims]int{3, 1, 1, 1, 5}, Strides: [engine.MaxEditDims]int{5, 0, 0, 0, 1}}
		err := engine.CheckEdit(x, e)
		require.Error(t, err)
		assert.Equal(t, e.Check(x), errors.Unwrap(err))
	})
}
