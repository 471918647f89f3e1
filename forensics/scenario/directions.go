package scenario

import (
	"math"
	"math/rand/v2"
	"slices"
)

// directions are the planted features' directions in the residual stream:
// orthonormal, random, and orthogonal to the all-ones vector, so that
// LayerNorm's centring leaves them alone and its scaling is the only thing it
// does to them (a readout of direction u after LayerNorm with weight 1 and
// bias 0 is x·u / σ(x)).
type directions struct {
	names []string
	vecs  [][]float64
}

// newDirections draws len(names) such directions in R^d.
func newDirections(rng *rand.Rand, d int, names ...string) *directions {
	ds := &directions{names: slices.Clone(names)}
	basis := [][]float64{constant(d, 1/math.Sqrt(float64(d)))}
	for range names {
		v := make([]float64, d)
		for {
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			for _, b := range basis {
				axpy(-dot(v, b), b, v)
			}
			if n := norm(v); n > 1e-6 {
				scale(1/n, v)
				break
			}
		}
		basis = append(basis, v)
		ds.vecs = append(ds.vecs, v)
	}
	return ds
}

// get returns the named direction; it panics on a name the maker did not
// draw, a bug in this package.
func (ds *directions) get(name string) []float64 {
	i := slices.Index(ds.names, name)
	if i < 0 {
		panic("scenario: no direction " + name)
	}
	return ds.vecs[i]
}

// projectRows removes the span of the directions from every row of p, whose
// last dimension is the residual width.
func (ds *directions) projectRows(p *param) {
	d := len(ds.vecs[0])
	for off := 0; off < len(p.data); off += d {
		row := p.data[off : off+d]
		for _, u := range ds.vecs {
			c := dot32(row, u)
			for i := range row {
				row[i] -= float32(c * u[i])
			}
		}
	}
}

// projectColumns removes the span of the directions from every column of p,
// a [d, n] matrix in nn.Linear's layout (its columns are residual vectors).
func (ds *directions) projectColumns(p *param) {
	d, n := p.shape[0], p.shape[1]
	col := make([]float64, d)
	for j := range n {
		for i := range d {
			col[i] = float64(p.data[i*n+j])
		}
		for _, u := range ds.vecs {
			axpy(-dot(col, u), u, col)
		}
		for i := range d {
			p.data[i*n+j] = float32(col[i])
		}
	}
}

// addRow adds c·u to row r of p ([rows, d]).
func addRow(p *param, r int, c float64, u []float64) {
	d := len(u)
	row := p.data[r*d : (r+1)*d]
	for i := range row {
		row[i] += float32(c * u[i])
	}
}

// setRow sets row r of p ([rows, d]) to c·u.
func setRow(p *param, r int, c float64, u []float64) {
	d := len(u)
	row := p.data[r*d : (r+1)*d]
	for i := range row {
		row[i] = float32(c * u[i])
	}
}

// addColumn adds c·u to column j of p ([len(u), n]).
func addColumn(p *param, j int, c float64, u []float64) {
	n := p.shape[1]
	for i, x := range u {
		p.data[i*n+j] += float32(c * x)
	}
}

// setColumn sets column j of p ([len(u), n]) to c·u.
func setColumn(p *param, j int, c float64, u []float64) {
	n := p.shape[1]
	for i, x := range u {
		p.data[i*n+j] = float32(c * x)
	}
}

// column returns column j of p ([rows, n]).
func column(p *param, j int) []float64 {
	rows, n := p.shape[0], p.shape[1]
	out := make([]float64, rows)
	for i := range out {
		out[i] = float64(p.data[i*n+j])
	}
	return out
}

// row returns row r of p ([rows, n]).
func row(p *param, r int) []float64 {
	n := p.shape[1]
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(p.data[r*n+i])
	}
	return out
}

func constant(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func dot32(a []float32, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

func axpy(alpha float64, x, y []float64) {
	for i := range y {
		y[i] += alpha * x[i]
	}
}

func scale(alpha float64, x []float64) {
	for i := range x {
		x[i] *= alpha
	}
}

// centredNorm returns |x - mean(x)|.
func centredNorm(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m += float64(v)
	}
	m /= float64(len(x))
	s := 0.0
	for _, v := range x {
		s += (float64(v) - m) * (float64(v) - m)
	}
	return math.Sqrt(s)
}

// gelu is GELU as GPT-2 ("gelu_new") computes it.
func geluTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// geluErf is BERT's exact GELU.
func geluErf(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// median returns the median of xs (0 for none); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
