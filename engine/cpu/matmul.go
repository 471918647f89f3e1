package cpu

import "github.com/modelforensics/fx/engine"

// MatMul returns x·w + bias for x [..., K] and w [K, N], or w [N, K] with
// transW. bias is [N] or nil. The result is [..., N].
func (b *Backend) MatMul(x, w, bias *engine.Tensor, transW bool) *engine.Tensor {
	xd, wd, bd := hostMatMul("MatMul", x, w, bias)
	m, n, k, err := engine.CheckMatMul(x, w, bias, transW)
	must(err)
	return b.matmul(xd, wd, bd, x.Shape(), m, n, k, transW)
}

// hostMatMul returns the values of a matmul's operands (nil for a nil
// bias), for op.
func hostMatMul(op string, x, w, bias *engine.Tensor) (xd, wd, bd []float32) {
	xd, wd = host(op, x), host(op, w)
	if bias != nil {
		bd = host(op, bias)
	}
	return xd, wd, bd
}

// matmul returns x·w + bias, of x's shape with the last dimension n, for
// operands that engine.CheckMatMul accepted with m, n and k.
func (b *Backend) matmul(xd, wd, bd []float32, xShape []int, m, n, k int, transW bool) *engine.Tensor {
	out := output(engine.WithLast(xShape, n)...)
	ldw := n
	if transW {
		ldw = k
	}
	b.gemm(gemm{
		x:      xd,
		ldx:    k,
		w:      wd,
		ldw:    ldw,
		out:    out.Host(),
		ldo:    n,
		bias:   bd,
		m:      m,
		n:      n,
		k:      k,
		transW: transW,
	})
	return out
}

// HeadResult returns z[b,t,h,:]·w[h·Dh:(h+1)·Dh, :] as [B, T, H, D] for z
// [B, T, H, Dh] and w [H·Dh, D], or w [D, H·Dh] with transW.
func (b *Backend) HeadResult(z, w *engine.Tensor, transW bool) *engine.Tensor {
	zd, wd := host("HeadResult", z), host("HeadResult", w)
	d, err := engine.CheckHeadResult(z, w, transW)
	must(err)
	bt := z.Dim(0) * z.Dim(1)
	h, dh := z.Dim(2), z.Dim(3)
	out := output(z.Dim(0), z.Dim(1), h, d)
	od := out.Host()
	if out.Len() == 0 {
		return out
	}
	jobs := make([]gemm, h)
	for i := range jobs {
		g := gemm{
			x: zd[i*dh:], ldx: h * dh,
			out: od[i*d:], ldo: h * d,
			m: bt, n: d, k: dh,
			transW: transW,
		}
		if transW {
			g.w, g.ldw = wd[i*dh:], h*dh
		} else {
			g.w, g.ldw = wd[i*dh*d:], d
		}
		jobs[i] = g
	}
	b.gemm(jobs...)
	return out
}

// gemm is one matrix product out = x·w (+ bias) on strided row-major
// storage: x row i starts at x[i*ldx], out row i at out[i*ldo], and w row r
// at w[r*ldw], where w is [k, n], or [n, k] when transW is set. out must be
// zero on entry.
type gemm struct {
	x, w, out     []float32
	ldx, ldw, ldo int
	bias          []float32 // [n] or nil
	m, n, k       int
	transW        bool
}

// Cache blocking. Tile shapes never change results: every output element is
// reduced by one goroutine in a fixed order.
const (
	tileRows = 64  // output rows per tile
	tileCols = 256 // output columns per tile, at most
	blockK   = 256 // reduction block for w [K, N]
	minCols  = 32  // output columns per tile, at least
)

// tiling returns the tile sizes for g.
func (g *gemm) tiling(workers int) (mc, nc int) {
	mc = min(tileRows, max(g.m, 1))
	nc = tileCols
	// Few rows (decode): cut the columns finer so every worker has tiles.
	mTiles := (g.m + mc - 1) / mc
	if want := 4 * workers; mTiles*((g.n+nc-1)/nc) < want {
		per := (want + mTiles - 1) / mTiles
		nc = max(minCols, (g.n+per-1)/per)
		nc = (nc + 15) &^ 15
	}
	if g.transW {
		// Keep a tile's rows of w within about 128 KiB of cache.
		nc = min(nc, max(8, (32<<10)/max(g.k, 1)&^7))
	}
	nc = min(nc, max(g.n, 1))
	return mc, nc
}

// gemm runs the products in jobs, in parallel over their output tiles.
func (b *Backend) gemm(jobs ...gemm) {
	if b.simd != nil {
		b.gemmSIMD(b.simd, jobs)
		return
	}
	workers := b.numWorkers()
	type tiles struct{ mc, nc, mt, nt, first int }
	ts := make([]tiles, len(jobs))
	total := 0
	for i := range jobs {
		g := &jobs[i]
		if g.m == 0 || g.n == 0 {
			ts[i].first = total
			continue
		}
		mc, nc := g.tiling(workers)
		mt, nt := (g.m+mc-1)/mc, (g.n+nc-1)/nc
		ts[i] = tiles{mc, nc, mt, nt, total}
		total += mt * nt
	}
	if total == 0 {
		return
	}
	// Cost per tile, for the decision to go parallel.
	cost := 0
	for i := range jobs {
		if ts[i].mt > 0 {
			cost = max(cost, ts[i].mc*ts[i].nc*max(jobs[i].k, 1))
		}
	}
	b.parallel(total, cost, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			jj := 0
			for t >= ts[jj].first+ts[jj].mt*ts[jj].nt {
				jj++
			}
			g, tl := &jobs[jj], ts[jj]
			r := t - tl.first
			mi, ni := r/tl.nt, r%tl.nt
			m0, n0 := mi*tl.mc, ni*tl.nc
			g.tile(m0, min(m0+tl.mc, g.m), n0, min(n0+tl.nc, g.n))
		}
	})
}

// tile computes out[m0:m1, n0:n1].
func (g *gemm) tile(m0, m1, n0, n1 int) {
	if g.transW {
		g.tileTN(m0, m1, n0, n1)
	} else {
		g.tileNN(m0, m1, n0, n1)
	}
	if g.bias != nil {
		bias := g.bias[n0:n1]
		for m := m0; m < m1; m++ {
			o := g.out[m*g.ldo+n0 : m*g.ldo+n1]
			o = o[:len(bias)]
			for j, v := range bias {
				o[j] += v
			}
		}
	}
}

// tileNN computes a tile for w [k, n]: axpy-style, the inner loops run over
// contiguous output columns and each element sums k = 0, 1, … in order.
func (g *gemm) tileNN(m0, m1, n0, n1 int) {
	k, ldx, ldw, ldo := g.k, g.ldx, g.ldw, g.ldo
	wrow := func(r int) []float32 { return g.w[r*ldw+n0 : r*ldw+n1] }
	for k0 := 0; k0 < k; k0 += blockK {
		k1 := min(k0+blockK, k)
		m := m0
		for ; m+2 <= m1; m += 2 {
			o0 := g.out[m*ldo+n0 : m*ldo+n1]
			o1 := g.out[(m+1)*ldo+n0 : (m+1)*ldo+n1]
			x0 := g.x[m*ldx : m*ldx+k]
			x1 := g.x[(m+1)*ldx : (m+1)*ldx+k]
			p := k0
			for ; p+4 <= k1; p += 4 {
				a, c := x0[p:p+4:p+4], x1[p:p+4:p+4]
				axpy2x4(o0, o1, a[0], a[1], a[2], a[3], c[0], c[1], c[2], c[3],
					wrow(p), wrow(p+1), wrow(p+2), wrow(p+3))
			}
			for ; p < k1; p++ {
				axpy2x1(o0, o1, x0[p], x1[p], wrow(p))
			}
		}
		if m < m1 {
			o0 := g.out[m*ldo+n0 : m*ldo+n1]
			x0 := g.x[m*ldx : m*ldx+k]
			p := k0
			for ; p+4 <= k1; p += 4 {
				a := x0[p : p+4 : p+4]
				axpy1x4(o0, a[0], a[1], a[2], a[3], wrow(p), wrow(p+1), wrow(p+2), wrow(p+3))
			}
			for ; p < k1; p++ {
				axpy1x1(o0, x0[p], wrow(p))
			}
		}
	}
}

// The axpy kernels add products to output rows one k at a time, in order;
// they differ only in how many rows and k they take per pass over the
// columns, so every output element sees the same sequence of roundings.
// Products are converted to float32 explicitly so the compiler cannot fuse
// them with the addition.

func axpy2x4(o0, o1 []float32, a0, a1, a2, a3, c0, c1, c2, c3 float32, w0, w1, w2, w3 []float32) {
	o1 = o1[:len(o0)]
	w0, w1, w2, w3 = w0[:len(o0)], w1[:len(o0)], w2[:len(o0)], w3[:len(o0)]
	for j := range o0 {
		v0, v1, v2, v3 := w0[j], w1[j], w2[j], w3[j]
		s := o0[j]
		s += float32(a0 * v0)
		s += float32(a1 * v1)
		s += float32(a2 * v2)
		s += float32(a3 * v3)
		o0[j] = s
		t := o1[j]
		t += float32(c0 * v0)
		t += float32(c1 * v1)
		t += float32(c2 * v2)
		t += float32(c3 * v3)
		o1[j] = t
	}
}

func axpy2x1(o0, o1 []float32, a, c float32, w []float32) {
	o1 = o1[:len(o0)]
	w = w[:len(o0)]
	for j, v := range w {
		o0[j] += float32(a * v)
		o1[j] += float32(c * v)
	}
}

func axpy1x4(o []float32, a0, a1, a2, a3 float32, w0, w1, w2, w3 []float32) {
	w0, w1, w2, w3 = w0[:len(o)], w1[:len(o)], w2[:len(o)], w3[:len(o)]
	for j := range o {
		s := o[j]
		s += float32(a0 * w0[j])
		s += float32(a1 * w1[j])
		s += float32(a2 * w2[j])
		s += float32(a3 * w3[j])
		o[j] = s
	}
}

func axpy1x1(o []float32, a float32, w []float32) {
	w = w[:len(o)]
	for j, v := range w {
		o[j] += float32(a * v)
	}
}

// tileTN computes a tile for w [n, k]: each element is a dot product of
// contiguous rows (see dot).
func (g *gemm) tileTN(m0, m1, n0, n1 int) {
	k, ldx, ldw, ldo := g.k, g.ldx, g.ldw, g.ldo
	m := m0
	for ; m+2 <= m1; m += 2 {
		x0 := g.x[m*ldx : m*ldx+k]
		x1 := g.x[(m+1)*ldx : (m+1)*ldx+k]
		o0 := g.out[m*ldo+n0 : m*ldo+n1]
		o1 := g.out[(m+1)*ldo+n0 : (m+1)*ldo+n1]
		o1 = o1[:len(o0)]
		for j := range o0 {
			r := (n0 + j) * ldw
			o0[j], o1[j] = dot2(x0, x1, g.w[r:r+k])
		}
	}
	if m < m1 {
		x := g.x[m*ldx : m*ldx+k]
		o := g.out[m*ldo+n0 : m*ldo+n1]
		for j := range o {
			r := (n0 + j) * ldw
			o[j] = dot(x, g.w[r:r+k])
		}
	}
}

// dot2 returns dot(x0, w) and dot(x1, w), sharing the loads of w.
func dot2(x0, x1, w []float32) (float32, float32) {
	x1, w = x1[:len(x0)], w[:len(x0)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	var t0, t1, t2, t3, t4, t5, t6, t7 float32
	i := 0
	for ; i+8 <= len(x0); i += 8 {
		a, c, e := x0[i:i+8:i+8], x1[i:i+8:i+8], w[i:i+8:i+8]
		s0 += float32(a[0] * e[0])
		t0 += float32(c[0] * e[0])
		s1 += float32(a[1] * e[1])
		t1 += float32(c[1] * e[1])
		s2 += float32(a[2] * e[2])
		t2 += float32(c[2] * e[2])
		s3 += float32(a[3] * e[3])
		t3 += float32(c[3] * e[3])
		s4 += float32(a[4] * e[4])
		t4 += float32(c[4] * e[4])
		s5 += float32(a[5] * e[5])
		t5 += float32(c[5] * e[5])
		s6 += float32(a[6] * e[6])
		t6 += float32(c[6] * e[6])
		s7 += float32(a[7] * e[7])
		t7 += float32(c[7] * e[7])
	}
	s := ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
	t := ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7))
	for ; i < len(x0); i++ {
		s += float32(x0[i] * w[i])
		t += float32(x1[i] * w[i])
	}
	return s, t
}

// dot returns Σ x[i]·w[i] with eight float32 partial sums: sum j takes
// i ≡ j (mod 8) below len(x)&^7; the sums are combined as
// ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) and the tail is added in order.
func dot(x, w []float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		a, c := x[i:i+8:i+8], w[i:i+8:i+8]
		s0 += float32(a[0] * c[0])
		s1 += float32(a[1] * c[1])
		s2 += float32(a[2] * c[2])
		s3 += float32(a[3] * c[3])
		s4 += float32(a[4] * c[4])
		s5 += float32(a[5] * c[5])
		s6 += float32(a[6] * c[6])
		s7 += float32(a[7] * c[7])
	}
	s := ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
	for ; i < len(x); i++ {
		s += float32(x[i] * w[i])
	}
	return s
}
