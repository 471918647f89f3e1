package cf

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTopMean(t *testing.T) {
	cases := []struct {
		name string
		xs   []float64
		n    int
		want float64
	}{
		{"top 3 of 5", []float64{1, 9, 3, 7, 5}, 3, 7},
		{"fewer than n", []float64{2, 4}, 3, 3},
		{"top 1", []float64{2, 4, 1}, 1, 4},
		{"ties", []float64{5, 5, 5, 1}, 2, 5},
		{"none", nil, 3, 0},
		{"n 0", []float64{1}, 0, 0},
		{"n beyond the buffer", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 9, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, topMean(tc.xs, tc.n), 1e-12)
		})
	}
}

// handScored is a run of 3 layers and 2 positions with known z-scores.
func handScored() *Scored {
	f := func(hook, stat string, layer int, z ...float64) ScoredFeature {
		return ScoredFeature{Hook: hook, Stat: stat, Layer: layer, Signal: SignalOf(stat), Z: z,
			Values: make([]float64, len(z)), Median: make([]float64, len(z)), Scale: make([]float64, len(z))}
	}
	return &Scored{Positions: 2, Layers: 3, Features: []ScoredFeature{
		f("blocks.0.mlp.hook_post", "ratio", 0, 1, -2),
		f("blocks.0.mlp.hook_post", "rms", 0, 3, 0),
		f("blocks.1.mlp.hook_post", "ratio", 1, -8, 1),
		f("blocks.1.mlp.hook_post", "rms", 1, 2, math.NaN()),
		f("blocks.1.mlp.hook_post", "maxabs", 1, 4, 1),
		f("blocks.2.mlp.hook_post", "proj0", 2, 0.5, 2000),
		f("hook_embed", "rms", -1, 99, 99), // outside the blocks: never counts
	}}
}

func TestAggregate(t *testing.T) {
	s := handScored()
	// Pooled, top 2: layer 0 at position 0 averages |3| and |1|; layer 1 at
	// position 0 |-8| and |4|; layer 2 at position 1 is clipped at 100.
	p := s.Aggregate([]Signal{Compression, Norm, Projection}, 2, 100, CombinePooled)
	assert.Equal(t, [][]float64{{2, 1}, {6, 1}, {0.5, 100}}, p.Cells)
	assert.Equal(t, []float64{2, 6, 100}, p.Layers)
	assert.Equal(t, []int{0, 0, 1}, p.LayerPos)
	assert.Equal(t, []float64{6, 100}, p.Positions)
	assert.Equal(t, 100.0, p.Score)
	assert.Equal(t, p.Layers, p.Anomaly, "uncalibrated: the anomaly is the layer score")
	assert.Equal(t, []int{2, 1, 0}, p.Ranking())
	assert.False(t, p.Calibrated)

	// One signal alone.
	c := s.Aggregate([]Signal{Compression}, 2, 100, CombineGeometric)
	assert.Equal(t, [][]float64{{1, 2}, {8, 1}, {0, 0}}, c.Cells)

	// Geometric: exp(mean log(1+s)) - 1 over the signals with features;
	// layer 1 position 0: compression 8, norm (4+2)/2 = 3, projection 0 →
	// (9·4·1)^(1/3) - 1.
	g := s.Aggregate([]Signal{Compression, Norm, Projection}, 2, 100, CombineGeometric)
	assert.InDelta(t, math.Cbrt(36)-1, g.Cells[1][0], 1e-12)
	// Calibrated without a calibration falls back to geometric.
	cal := s.Aggregate([]Signal{Compression, Norm, Projection}, 2, 100, CombineCalibrated)
	assert.Equal(t, g.Cells, cal.Cells)
	assert.False(t, cal.Calibrated)

	// With a calibration: each signal's cell becomes max(0, robust z of
	// log(1+cell)) against the signal's pooled distribution, the largest
	// signal wins; the run's score uses each layer's own distribution.
	s.calTop, s.calClip = 2, 100
	pooled := Dist{N: 30, Median: math.Log1p(1), MAD: 0.5 / MADScale}
	own := Dist{N: 10, Median: math.Log1p(1), MAD: 1 / MADScale}
	one := Calibration{Layers: []Dist{own, own, {N: 10, Median: math.Log1p(1000), MAD: 1 / MADScale}}, All: pooled}
	s.calib = map[Signal]Calibration{Compression: one, Norm: one, Projection: one}
	cal = s.Aggregate([]Signal{Compression, Norm, Projection}, 2, 100, CombineCalibrated)
	assert.True(t, cal.Calibrated)
	z := func(x, mad float64) float64 { return max(0, (math.Log1p(x)-math.Log1p(1))/mad) }
	assert.InDelta(t, z(8, 0.5), cal.Cells[1][0], 1e-12)
	assert.InDelta(t, z(100, 0.5), cal.Cells[2][1], 1e-12)
	assert.InDelta(t, 0, cal.Cells[2][0], 1e-12, "z below 0 counts 0")
	assert.InDelta(t, z(2, 0.5), cal.Cells[0][1], 1e-12)
	assert.Equal(t, []int{2, 1, 0}, cal.Ranking())
	// Layer 2 is that noisy on benign runs: against its own distribution
	// (median log 1001) its 100 is no anomaly; layer 1's 8 is the run's.
	assert.InDelta(t, 0, cal.Anomaly[2], 1e-12)
	assert.InDelta(t, z(8, 1), cal.Anomaly[1], 1e-12)
	assert.InDelta(t, z(8, 1), cal.Score, 1e-12)
	// Other top or clip than the calibration's: not calibrated.
	assert.False(t, s.Aggregate([]Signal{Norm}, 3, 100, CombineCalibrated).Calibrated)
}

func TestRank(t *testing.T) {
	s := &Scores{Layers: []float64{5, 9, 5, 1}}
	cases := []struct {
		name   string
		layers []int
		want   int
	}{
		{"top", []int{1}, 1},
		{"tie with a layer not given counts against", []int{0}, 3},
		{"tie between given layers does not", []int{0, 2}, 2},
		{"best of several", []int{3, 1}, 1},
		{"last", []int{3}, 4},
		{"none", nil, 0},
		{"out of range ignored", []int{7}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, s.Rank(tc.layers)) })
	}
}
