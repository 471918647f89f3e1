package transformer_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights/npy"
)

// interventionCase is one entry of testdata/golden/interventions.json,
// computed by testdata/gen/make_interventions.py with PyTorch.
type interventionCase struct {
	Model         string `json:"model"`
	Case          string `json:"case"`
	Description   string `json:"description"`
	InputKey      string `json:"input_key"`
	OutputKey     string `json:"output_key"`
	ChangesOutput bool   `json:"changes_output"`
	Interventions []struct {
		Site     string   `json:"site"`
		Mode     string   `json:"mode"`
		Value    *float64 `json:"value"`
		Source   *string  `json:"source"`
		Baseline []string `json:"baseline"`
	} `json:"interventions"`
}

func ids(t *testing.T, a npy.Array) []int {
	t.Helper()
	v, err := a.Int64()
	require.NoError(t, err)
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func relDiff(got, want []float32) (diff, scale float64) {
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	return diff, scale
}

// TestInterventionsMatchTorch runs every intervention case of the PyTorch
// golden file through the Go API (patch sources and baseline means are
// computed by fx from the stored prompts, as a user would) and compares the
// output.
func TestInterventionsMatchTorch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "interventions.json"))
	require.NoError(t, err)
	var cases []interventionCase
	require.NoError(t, json.Unmarshal(raw, &cases))
	arrays, err := npy.ReadNPZ(filepath.Join("..", "testdata", "golden", "interventions.npz"))
	require.NoError(t, err)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.Model+"/"+tc.Case, func(t *testing.T) {
			m := loadTiny(t, tc.Model)
			var ivs []transformer.Intervention
			for _, spec := range tc.Interventions {
				iv := transformer.Intervention{Site: site(t, spec.Site), Mode: transformer.Mode(spec.Mode), Row: -1}
				if spec.Value != nil {
					iv.Value = float32(*spec.Value)
				}
				switch iv.Mode {
				case transformer.Add:
					vec, err := arrays[*spec.Source].Float32()
					require.NoError(t, err)
					iv.Source = engine.NewHost(vec, len(vec))
				case transformer.Patch:
					_, cache, err := m.RunWithCache(ctx, ids(t, arrays[*spec.Source]), transformer.Names(iv.Site.Hook))
					require.NoError(t, err)
					iv.Source = cache[iv.Site.Hook]
				case transformer.Mean:
					var corpus [][]int
					for _, k := range spec.Baseline {
						corpus = append(corpus, ids(t, arrays[k]))
					}
					means, err := m.MeanActivations(ctx, corpus, transformer.Names(iv.Site.Hook))
					require.NoError(t, err)
					iv.Source = means[iv.Site.Hook]
				}
				ivs = append(ivs, iv)
			}
			out, err := m.RunWithInterventions(ctx, ids(t, arrays[tc.InputKey]), ivs)
			require.NoError(t, err)
			want, err := arrays[tc.OutputKey].Float32()
			require.NoError(t, err)
			got := m.Backend.ToHost(out)
			require.Len(t, got, len(want))
			diff, scale := relDiff(got, want)
			assert.LessOrEqual(t, diff, 1e-4*scale, "%s: max|fx-torch| %.3g of %.3g", tc.Description, diff, scale)
			if tc.ChangesOutput {
				clean, err := arrays[strings.Split(tc.OutputKey, ":")[0]+":clean:logits"].Float32()
				require.NoError(t, err)
				d, _ := relDiff(got, clean)
				assert.Greater(t, d, 1e-3, "the intervention changes the output")
			}
		})
	}
}

// TestGradientsMatchTorch compares the gradient of the metric with respect
// to every hook activation with PyTorch autograd
// (testdata/gen/make_interventions.py).
func TestGradientsMatchTorch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "grads.json"))
	require.NoError(t, err)
	var meta map[string]struct {
		File         string `json:"file"`
		MetricTokens []int  `json:"metric_tokens"`
	}
	require.NoError(t, json.Unmarshal(raw, &meta))
	for _, model := range []string{"gpt2-tiny", "bert-tiny-cls"} {
		t.Run(model, func(t *testing.T) {
			m := loadTiny(t, model)
			arrays, err := npy.ReadNPZ(filepath.Join("..", "testdata", "golden", meta[model].File))
			require.NoError(t, err)
			var types [][]int
			if a, ok := arrays["token_type_ids"]; ok {
				types = [][]int{ids(t, a)}
			}
			in, err := transformer.NewBatch([][]int{ids(t, arrays["input_ids"])}, types)
			require.NoError(t, err)
			metric := transformer.ClassMargin(1, 0)
			if tok := meta[model].MetricTokens; tok != nil {
				metric = transformer.LogitDiff(tok[0], tok[1])
			}
			res, err := m.Gradients(context.Background(), in, metric, transformer.Names("*"))
			require.NoError(t, err)
			wantMetric, err := arrays["metric"].Float32()
			require.NoError(t, err)
			assert.InDelta(t, float64(wantMetric[0]), res.Metric[0], 1e-4*math.Max(1, math.Abs(float64(wantMetric[0]))))
			n := 0
			for key, a := range arrays {
				name, ok := strings.CutPrefix(key, "grad:")
				if !ok {
					continue
				}
				n++
				want, err := a.Float32()
				require.NoError(t, err)
				got, ok := res.Grads[name]
				if !assert.True(t, ok, "no gradient for %s", name) {
					continue
				}
				require.Equal(t, a.Shape, got.Shape(), name)
				diff, scale := relDiff(m.Backend.ToHost(got), want)
				assert.LessOrEqual(t, diff, 1e-4*scale, "%s: max|fx-torch| %.3g of %.3g", name, diff, scale)
			}
			assert.Greater(t, n, 30)
		})
	}
}
