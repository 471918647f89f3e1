package cpu_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
)

// goldenTol is the largest max|got-want| / max|want| allowed against PyTorch.
const goldenTol = 1e-5

// requireClose checks got against want: -Inf and +Inf at the same places,
// and the finite values within goldenTol relative to the largest |want|.
func requireClose(t *testing.T, want *npyArray, got *engine.Tensor) {
	t.Helper()
	require.Equal(t, want.shape, got.Shape(), "shape")
	g := got.Host()
	var maxErr, maxRef float64
	for i, w := range want.f32 {
		a, b := float64(g[i]), float64(w)
		if math.IsInf(b, 0) || math.IsInf(a, 0) {
			require.Equal(t, b, a, "element %d", i)
			continue
		}
		require.False(t, math.IsNaN(a), "element %d is NaN", i)
		maxErr = max(maxErr, math.Abs(a-b))
		maxRef = max(maxRef, math.Abs(b))
	}
	if maxRef == 0 {
		require.Zero(t, maxErr)
		return
	}
	t.Logf("relative error %.3g", maxErr/maxRef)
	require.LessOrEqual(t, maxErr/maxRef, goldenTol, "relative error (max error %g, max |want| %g)", maxErr, maxRef)
}

// TestGolden compares every op with outputs PyTorch computed from the same
// inputs (testdata/gen/make_golden.py).
func TestGolden(t *testing.T) {
	for _, workers := range []int{1, 3} {
		be := cpu.New(cpu.WithWorkers(workers))
		tensor := func(t *testing.T, name string) *engine.Tensor {
			a := loadNPY(t, name)
			require.NotNil(t, a.f32, name)
			return be.FromHost(a.f32, a.shape...)
		}
		ints := func(t *testing.T, name string) []int32 {
			a := loadNPY(t, name)
			require.NotNil(t, a.i32, name)
			return a.i32
		}
		const (
			eps     = 1e-5
			dh      = 15
			offset  = 4
			headDim = 2
		)
		scale := float32(1 / math.Sqrt(dh))
		attnMask := func(t *testing.T) engine.AttnMask {
			return engine.AttnMask{Causal: true, KeyValid: ints(t, "attn_valid")}
		}
		tests := []struct {
			name string
			want string
			op   func(t *testing.T) *engine.Tensor
		}{
			{"MatMul/bias", "mm_nn_out", func(t *testing.T) *engine.Tensor {
				return be.MatMul(tensor(t, "mm_nn_x"), tensor(t, "mm_nn_w"), tensor(t, "mm_nn_bias"), false)
			}},
			{"MatMul/transW", "mm_tn_out", func(t *testing.T) *engine.Tensor {
				return be.MatMul(tensor(t, "mm_tn_x"), tensor(t, "mm_tn_w"), tensor(t, "mm_tn_bias"), true)
			}},
			{"MatMul/K768", "mm768_nn_out", func(t *testing.T) *engine.Tensor {
				return be.MatMul(tensor(t, "mm768_x"), tensor(t, "mm768_w"), nil, false)
			}},
			{"MatMul/K768/transW", "mm768_tn_out", func(t *testing.T) *engine.Tensor {
				return be.MatMul(tensor(t, "mm768_x"), tensor(t, "mm768_wt"), tensor(t, "mm768_bias"), true)
			}},
			{"LayerNorm", "ln_out", func(t *testing.T) *engine.Tensor {
				return be.LayerNorm(tensor(t, "ln_x"), tensor(t, "ln_gamma"), tensor(t, "ln_beta"), eps)
			}},
			{"LayerNorm/offset", "ln_offset_out", func(t *testing.T) *engine.Tensor {
				return be.LayerNorm(tensor(t, "ln_offset_x"), tensor(t, "ln_offset_gamma"), tensor(t, "ln_offset_beta"), eps)
			}},
			{"LayerNormScale", "ln_scale", func(t *testing.T) *engine.Tensor {
				return be.LayerNormScale(tensor(t, "ln_x"), eps)
			}},
			{"LayerNormScale/offset", "ln_offset_scale", func(t *testing.T) *engine.Tensor {
				return be.LayerNormScale(tensor(t, "ln_offset_x"), eps)
			}},
			// The fused ops against the same goldens: a sum whose float32
			// addition is exact (0 + x), and a product by the identity.
			{"AddLayerNorm/normed", "ln_out", func(t *testing.T) *engine.Tensor {
				x := tensor(t, "ln_x")
				_, normed := be.AddLayerNorm(be.Zeros(x.Shape()...), x, tensor(t, "ln_gamma"), tensor(t, "ln_beta"), eps)
				return normed
			}},
			{"AddLayerNorm/offset", "ln_offset_out", func(t *testing.T) *engine.Tensor {
				x := tensor(t, "ln_offset_x")
				_, normed := be.AddLayerNorm(x, be.Zeros(x.Shape()...), tensor(t, "ln_offset_gamma"), tensor(t, "ln_offset_beta"), eps)
				return normed
			}},
			{"AddLayerNorm/sum", "add_out2", func(t *testing.T) *engine.Tensor {
				a, b2 := tensor(t, "add_a"), tensor(t, "add_b2")
				b := be.Add(be.Zeros(a.Shape()...), b2) // add_b2 broadcast to add_a's shape
				sum, _ := be.AddLayerNorm(a, b, be.FromHost(make([]float32, 61), 61), be.FromHost(make([]float32, 61), 61), eps)
				return sum
			}},
			{"MatMulGELU/tanh", "act_gelu_tanh", func(t *testing.T) *engine.Tensor {
				return be.MatMulGELU(tensor(t, "act_x").Reshape(-1, 1), be.FromHost([]float32{1}, 1, 1), nil, false, engine.GELUTanh).Reshape(-1)
			}},
			{"MatMulGELU/erf", "act_gelu_erf", func(t *testing.T) *engine.Tensor {
				return be.MatMulGELU(tensor(t, "act_x").Reshape(-1, 1), be.FromHost([]float32{1}, 1, 1), nil, true, engine.GELUErf).Reshape(-1)
			}},
			{"GELU/tanh", "act_gelu_tanh", func(t *testing.T) *engine.Tensor {
				return be.GELU(tensor(t, "act_x"), engine.GELUTanh)
			}},
			{"GELU/erf", "act_gelu_erf", func(t *testing.T) *engine.Tensor {
				return be.GELU(tensor(t, "act_x"), engine.GELUErf)
			}},
			{"Tanh", "act_tanh", func(t *testing.T) *engine.Tensor {
				return be.Tanh(tensor(t, "act_x"))
			}},
			{"Add/row", "add_out1", func(t *testing.T) *engine.Tensor {
				return be.Add(tensor(t, "add_a"), tensor(t, "add_b1"))
			}},
			{"Add/matrix", "add_out2", func(t *testing.T) *engine.Tensor {
				return be.Add(tensor(t, "add_a"), tensor(t, "add_b2"))
			}},
			{"Embedding", "emb_out", func(t *testing.T) *engine.Tensor {
				return be.Embedding(tensor(t, "emb_table"), ints(t, "emb_ids"))
			}},
			{"Rows", "rows_out", func(t *testing.T) *engine.Tensor {
				var idx []int
				for _, i := range ints(t, "rows_idx") {
					idx = append(idx, int(i))
				}
				return be.Rows(tensor(t, "add_a"), idx)
			}},
			{"SliceLast", "slice_out", func(t *testing.T) *engine.Tensor {
				return be.SliceLast(tensor(t, "add_a"), 10, 37)
			}},
			{"Concat", "concat_out", func(t *testing.T) *engine.Tensor {
				return be.Concat(tensor(t, "attn_k"), tensor(t, "dec_q"))
			}},
			{"Softmax", "sm_out", func(t *testing.T) *engine.Tensor {
				return be.Softmax(tensor(t, "sm_x"))
			}},
			{"AttnScores", "attn_scores", func(t *testing.T) *engine.Tensor {
				return be.AttnScores(tensor(t, "attn_q"), tensor(t, "attn_k"), scale, attnMask(t))
			}},
			{"Softmax/attention", "attn_pattern", func(t *testing.T) *engine.Tensor {
				return be.Softmax(be.AttnScores(tensor(t, "attn_q"), tensor(t, "attn_k"), scale, attnMask(t)))
			}},
			{"AttnMix", "attn_z", func(t *testing.T) *engine.Tensor {
				return be.AttnMix(tensor(t, "attn_pattern"), tensor(t, "attn_v"))
			}},
			{"HeadResult", "attn_result", func(t *testing.T) *engine.Tensor {
				return be.HeadResult(tensor(t, "attn_z"), tensor(t, "attn_w"), false)
			}},
			{"HeadResult/transW", "attn_result", func(t *testing.T) *engine.Tensor {
				return be.HeadResult(tensor(t, "attn_z"), tensor(t, "attn_wt"), true)
			}},
			{"SumAxis", "attn_result_sum", func(t *testing.T) *engine.Tensor {
				return be.SumAxis(tensor(t, "attn_result"), headDim)
			}},
			{"Attention/end to end", "attn_z", func(t *testing.T) *engine.Tensor {
				s := be.AttnScores(tensor(t, "attn_q"), tensor(t, "attn_k"), scale, attnMask(t))
				return be.AttnMix(be.Softmax(s), tensor(t, "attn_v"))
			}},
			{"AttnScores/decode", "dec_scores", func(t *testing.T) *engine.Tensor {
				return be.AttnScores(tensor(t, "dec_q"), tensor(t, "attn_k"), scale, engine.AttnMask{Causal: true, QueryOffset: offset})
			}},
			{"Attention/decode", "dec_z", func(t *testing.T) *engine.Tensor {
				s := be.AttnScores(tensor(t, "dec_q"), tensor(t, "attn_k"), scale, engine.AttnMask{Causal: true, QueryOffset: offset})
				return be.AttnMix(be.Softmax(s), tensor(t, "attn_v"))
			}},
		}
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					requireClose(t, loadNPY(t, tc.want), tc.op(t))
				})
			}
		})
	}
}
