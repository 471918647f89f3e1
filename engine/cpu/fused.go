package cpu

import "github.com/modelforensics/fx/engine"

// AddLayerNorm returns sum = x + delta and normed = LayerNorm(sum), in one
// pass less over each row than Add then LayerNorm: the mean's sums are
// taken as the row is added, then the variance and the normalisation
// follow while the row is in cache. The bits are those of Add then
// LayerNorm (the same float32 additions, the same float64 sums in the same
// order, the same rounding).
func (b *Backend) AddLayerNorm(x, delta, gamma, beta *engine.Tensor, eps float32) (sum, normed *engine.Tensor) {
	xd, dd := host("AddLayerNorm", x), host("AddLayerNorm", delta)
	gd, bd := host("AddLayerNorm", gamma), host("AddLayerNorm", beta)
	must(engine.CheckAddLayerNorm(x, delta, gamma, beta))
	rows, d := engine.SplitLast(x.Shape())
	sum, normed = output(x.Shape()...), output(x.Shape()...)
	sd, nd := sum.Host(), normed.Host()
	b.parallel(rows, 4*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s := sd[r*d : r*d+d]
			normalizeRow(nd[r*d:r*d+d], s, gd, bd, eps, addRowMean(s, xd[r*d:r*d+d], dd[r*d:r*d+d]))
		}
	})
	return sum, normed
}

// addRowMean writes s = a + c (len(s) values each) and returns the mean of
// s with exactly rowMean's sums.
func addRowMean(s, a, c []float32) float64 {
	if len(s) == 0 {
		return 0
	}
	a, c = a[:len(s)], c[:len(s)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		v, x, y := s[i:i+4:i+4], a[i:i+4:i+4], c[i:i+4:i+4]
		v[0], v[1], v[2], v[3] = x[0]+y[0], x[1]+y[1], x[2]+y[2], x[3]+y[3]
		s0 += float64(v[0])
		s1 += float64(v[1])
		s2 += float64(v[2])
		s3 += float64(v[3])
	}
	m := (s0 + s1) + (s2 + s3)
	for ; i < len(s); i++ {
		s[i] = a[i] + c[i]
		m += float64(s[i])
	}
	return m / float64(len(s))
}

// MatMulGELU returns GELU(MatMul(x, w, bias, transW), kind): the product,
// then the activation applied to it in place, in parallel over ranges of
// its values, with no second tensor. The bits are those of MatMul then
// GELU (GELU's arithmetic does not depend on how the values are split).
func (b *Backend) MatMulGELU(x, w, bias *engine.Tensor, transW bool, kind engine.Activation) *engine.Tensor {
	xd, wd, bd := hostMatMul("MatMulGELU", x, w, bias)
	m, n, k, err := engine.CheckMatMulGELU(x, w, bias, transW, kind)
	must(err)
	f, cost := b.gelu(kind)
	out := b.matmul(xd, wd, bd, x.Shape(), m, n, k, transW)
	od := out.Host()
	b.mapRanges(od, od, cost, f)
	return out
}
