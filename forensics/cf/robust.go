package cf

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
)

var nan = math.NaN()

// MADScale is the factor that makes the median absolute deviation a
// consistent estimator of the standard deviation of a normal distribution:
// 1/Φ⁻¹(3/4).
const MADScale = 1.482602218505602

// MeanADScale makes the mean absolute deviation around the median a
// consistent estimator of a normal standard deviation: √(π/2).
const MeanADScale = 1.2533141373155001

// Dist is the robust summary of a feature's distribution over a baseline:
// its median and the scale robust z-scores divide by.
type Dist struct {
	// N is the number of finite samples.
	N int `json:"n"`
	// Median is the samples' median (the mean of the two middle samples
	// when N is even).
	Median float64 `json:"median"`
	// MAD is the median of |x - Median|, unscaled.
	MAD float64 `json:"mad"`
	// MeanAD is the mean of |x - Median|, unscaled.
	MeanAD float64 `json:"mean_ad"`
}

// Median returns the median of the finite values of xs (NaN when there
// are none), computed with gonum's stat.Quantile on a sorted copy: the
// middle value, or the mean of the two middle values.
func Median(xs []float64) float64 {
	s := finiteSorted(xs)
	return sortedMedian(s)
}

// sortedMedian is Median of sorted finite values.
func sortedMedian(s []float64) float64 {
	n := len(s)
	if n == 0 {
		return nan
	}
	lo := stat.Quantile(0.5, stat.Empirical, s, nil) // s[(n-1)/2]
	if n%2 == 1 {
		return lo
	}
	return (lo + s[n/2]) / 2
}

// finiteSorted returns the finite values of xs, sorted.
func finiteSorted(xs []float64) []float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return s
}

// Summarize returns the robust summary of the finite values of xs.
func Summarize(xs []float64) Dist {
	s := finiteSorted(xs)
	d := Dist{N: len(s), Median: nan, MAD: nan, MeanAD: nan}
	if len(s) == 0 {
		return d
	}
	d.Median = sortedMedian(s)
	dev := make([]float64, len(s))
	for i, x := range s {
		dev[i] = math.Abs(x - d.Median)
	}
	slices.Sort(dev)
	d.MAD = sortedMedian(dev)
	d.MeanAD = stat.Mean(dev, nil)
	return d
}

// Scale returns the robust standard deviation z-scores divide by:
// MADScale·MAD; when the MAD is 0 (more than half the samples equal the
// median), MeanADScale·MeanAD; when that is 0 too (all samples equal),
// floor. It is never below floor, so that a feature constant over the
// baseline does not make every deviation infinite.
func (d Dist) Scale(floor float64) float64 {
	s := MADScale * d.MAD
	if !(s > 0) {
		s = MeanADScale * d.MeanAD
	}
	if !(s > floor) {
		s = floor
	}
	return s
}

// Z returns the robust z-score of x: (x - Median)/Scale(floor). It is NaN
// when x or the median is not finite.
func (d Dist) Z(x, floor float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(d.Median) {
		return nan
	}
	return (x - d.Median) / d.Scale(floor)
}
