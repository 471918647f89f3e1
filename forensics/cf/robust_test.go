package cf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden is testdata/robust_golden.json, written by
// testdata/gen/robust.py with numpy.
type golden struct {
	Robust []struct {
		Name    string    `json:"name"`
		X       []float64 `json:"x"`
		Median  float64   `json:"median"`
		MAD     float64   `json:"mad"`
		MeanAD  float64   `json:"mean_ad"`
		Scale   float64   `json:"scale"`
		Queries []float64 `json:"queries"`
		Z       []float64 `json:"z"`
	} `json:"robust"`
	AUROC []struct {
		Name      string    `json:"name"`
		Positives []float64 `json:"positives"`
		Negatives []float64 `json:"negatives"`
		AUROC     float64   `json:"auroc"`
	} `json:"auroc"`
	Int8 []struct {
		Name  string    `json:"name"`
		Row   []float32 `json:"row"`
		Scale float32   `json:"scale"`
		Codes []int8    `json:"codes"`
	} `json:"int8"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "robust_golden.json"))
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(data, &g))
	require.NotEmpty(t, g.Robust)
	return g
}

func TestSummarizeHandComputed(t *testing.T) {
	cases := []struct {
		name                string
		xs                  []float64
		median, mad, meanAD float64
		n                   int
		x, z                float64
	}{
		// dev |x-3| = 2,1,0,1,97: MAD 1; z(10) = 7/1.4826.
		{"odd with an outlier", []float64{1, 2, 3, 4, 100}, 3, 1, 101.0 / 5, 5, 10, 7 / MADScale},
		// median (2+3)/2; dev 1.5,0.5,0.5,1.5: MAD (0.5+1.5)/2.
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 1, 4, 0.5, -2 / MADScale},
		// MAD 0: the mean absolute deviation 0.8 scales instead.
		{"mostly constant", []float64{5, 5, 5, 5, 9}, 5, 0, 0.8, 5, 6, 1 / (MeanADScale * 0.8)},
		// NaN and ±Inf are not samples.
		{"non-finite skipped", []float64{math.NaN(), 1, math.Inf(1), 3, math.Inf(-1)}, 2, 1, 1, 2, 2, 0},
		// All equal: the floor 1e-3|median| + 1e-6 keeps z finite.
		{"constant", []float64{2, 2, 2}, 2, 0, 0, 3, 2.004, 0.004 / (2e-3 + 1e-6)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Summarize(tc.xs)
			assert.Equal(t, tc.n, d.N)
			assert.InDelta(t, tc.median, d.Median, 1e-12)
			assert.InDelta(t, tc.median, Median(tc.xs), 1e-12)
			assert.InDelta(t, tc.mad, d.MAD, 1e-12)
			assert.InDelta(t, tc.meanAD, d.MeanAD, 1e-12)
			assert.InDelta(t, tc.z, d.Z(tc.x, scaleFloor(d.Median)), 1e-9)
		})
	}
	empty := Summarize(nil)
	assert.Equal(t, 0, empty.N)
	assert.True(t, math.IsNaN(empty.Median))
	assert.True(t, math.IsNaN(empty.Z(1, 1)))
	assert.True(t, math.IsNaN(Summarize([]float64{1}).Z(math.NaN(), 1)))
}

func TestSummarizeMatchesNumpy(t *testing.T) {
	for _, c := range readGolden(t).Robust {
		t.Run(c.Name, func(t *testing.T) {
			d := Summarize(c.X)
			assert.Equal(t, len(c.X), d.N)
			assert.InDelta(t, c.Median, d.Median, 1e-12)
			assert.InDelta(t, c.MAD, d.MAD, 1e-12)
			assert.InDelta(t, c.MeanAD, d.MeanAD, 1e-9)
			floor := scaleFloor(d.Median)
			assert.InDelta(t, c.Scale, d.Scale(floor), 1e-12)
			for i, q := range c.Queries {
				assert.InDelta(t, c.Z[i], d.Z(q, floor), 1e-9*max(1, math.Abs(c.Z[i])), "query %g", q)
			}
		})
	}
}

func TestAUROC(t *testing.T) {
	cases := []struct {
		name     string
		pos, neg []float64
		want     float64
	}{
		{"separated", []float64{3, 4}, []float64{1, 2}, 1},
		{"inverted", []float64{1, 2}, []float64{3, 4}, 0},
		{"all tied", []float64{1, 1}, []float64{1}, 0.5},
		// pairs (1,2): 0, (3,2): 1 → 1/2.
		{"interleaved", []float64{1, 3}, []float64{2}, 0.5},
		// (2,1) 1, (2,2) ½, (2,3) 0, (4,·) 1,1,1 → 4.5/6.
		{"a tie", []float64{2, 4}, []float64{1, 2, 3}, 4.5 / 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, AUROC(tc.pos, tc.neg), 1e-12)
		})
	}
	assert.True(t, math.IsNaN(AUROC(nil, []float64{1})))
	assert.True(t, math.IsNaN(AUROC([]float64{1}, nil)))
	for _, c := range readGolden(t).AUROC {
		t.Run("numpy "+c.Name, func(t *testing.T) {
			assert.InDelta(t, c.AUROC, AUROC(c.Positives, c.Negatives), 1e-12)
		})
	}
}
