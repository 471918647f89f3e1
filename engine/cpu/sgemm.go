package cpu

// The SIMD matmul: packing, cache blocking and register tiling around the
// assembly micro-kernels, as in BLIS and llamafile's tinyBLAS.
//
// First x is packed, in parallel, into row tiles: for each block of k (see
// kc), six rows at a time, stored k-major ([k][6]) so that a kernel
// broadcasts from consecutive addresses. Then the product is split into
// tasks of up to maxTaskPanels panels of 16 output columns, run in
// parallel. A task walks k in blocks of simdKC; for each block it packs its
// columns of w into panels (kc rows of 16 contiguous columns; for w [N, K]
// this is a transpose), then walks its rows in blocks of simdMC and, for
// each panel, runs the 6-row kernel down the block so that the panel stays
// in L1 while the packed rows of x stream from L2 (with AVX-512, two
// panels at a time: the 6×32 tile); the last rows (fewer than six) use
// narrower-row, wider-column kernels. Between kernel calls
// the task prefetches the part of w its next block will pack, so that the
// packing finds it in cache rather than in memory.
//
// Products of few rows do less arithmetic per value of w and are bound by
// reading w, so they read it as it streams best. With w [K, N]: 1–3 rows
// stream whole rows of w through a gemv kernel; up to packMinRows rows read
// w in place, unpacked (but packed when w's row stride is a multiple of
// 4 KiB and the rows need two kernels; see pack). With w [N, K]: 1–3 rows
// (k a multiple of 8) stream sixteen rows of w at a time through a gemvT
// kernel, which transposes 8×8 blocks in registers instead of packing
// them; other narrow tasks transpose all of k of their rows of w at once
// (streamW).
//
// Every kernel computes an element of the output as one lane of one
// register: starting from the value in the output (zero), one fused
// multiply-add per k in increasing k, then the bias. So the bits of an
// element depend only on its row of x, its column of w and k: not on the
// kernel, tile, task, block, packing, number of rows or worker count.
// Scratch buffers come from the Backend's pools and are overwritten before
// they are read.

// tileKernel computes c = c·load + a·b for one tile: rows rows of a,
// packed as a[p·rows+i] for row i and step p < k, times the k×16·panels
// block of b whose row p, panel q starts at b[p·ldb+q·pstride], into c
// (row i at c[i·ldc]), and then adds bias[0:16·panels] when bias is not
// nil. With load 0 the tile starts from zero and c is not read. Each
// element of c is one chain of fused multiply-adds over k in order. Strides
// are in elements. Before it computes, the kernel asks for pfBytes bytes
// from pf to be brought into L2 (none when pfBytes is 0): the driver's
// next block of w, one row per call.
type tileKernel func(k int, a, b *float32, ldb, pstride int, c *float32, ldc, load int, bias, pf *float32, pfBytes int)

// gemvKernel computes c += a·b for rows rows (the kernel's own number) of
// a packed as a[p·rows+i], and the k×n block of b with row p at b[p·ldb],
// into c (row i at c[i·ldc]), n a multiple of 8, and then adds bias[0:n]
// when bias is not nil. c holds the starting values (zero). Each element of
// c is one chain of fused multiply-adds over k in order, as in tileKernel.
type gemvKernel func(k int, a, b *float32, ldb int, c *float32, ldc, n int, bias *float32)

// simdKernels is one instruction set's kernels: the matmul's, and the
// SIMD parts of GELU, attention and softmax.
type simdKernels struct {
	name Kernels
	// tile[rows][panels] is the kernel for a tile of rows rows and
	// 16·panels columns, or nil. tile[r][1] for r ≤ 6 and
	// tile[6][mainPanels] exist.
	tile [7][5]tileKernel
	// mainPanels is the panels of the main tile, the one the driver runs
	// down the rows of a block: 1 (6×16) for AVX2, 2 (6×32) for AVX-512.
	mainPanels int
	// packT16 writes dst[k·16+j] = src[j·lds+k] for j < 16, k < n, n a
	// multiple of 8.
	packT16 func(dst, src *float32, lds, n int)
	// packN16 writes dst[q·dstride+p·16+j] = src[p·lds+q·16+j] for p < k,
	// q < panels, j < 16.
	packN16 func(dst, src *float32, lds, k, panels, dstride int)
	// gemv[rows] streams w [K, N] for products of 1–3 rows, or is nil.
	gemv [4]gemvKernel
	// gemvT[rows] streams w [N, K] for products of 1–3 rows, or is nil:
	// like gemv, but b's column j is its row j (b[j·ldb+p]), c starts from
	// zero and is not read, n is a multiple of 16 and k of 8.
	gemvT [4]gemvKernel
	// geluTanh writes GELU (engine.GELUTanh) of src[:n] to dst[:n], n a
	// multiple of 8, each element independently of the others; or is nil.
	geluTanh func(dst, src *float32, n int)
	// geluErf writes GELU (engine.GELUErf) of src[:n] to dst[:n] as
	// geluTanh does; or is nil.
	geluErf func(dst, src *float32, n int)
	// dots writes out[j] = dot(q[:dh], k[j·ldk:j·ldk+dh]) for j < n, dh a
	// multiple of 8, with the bits of the pure-Go dot; or is nil.
	dots func(q, k *float32, ldk, n, dh int, out *float32)
	// mix adds w[j]·v[off[j]:off[j]+dh] to z[:dh] for j < n in order, dh a
	// multiple of 32, with the bits of the pure-Go axpy; or is nil.
	mix func(z *float32, dh int, w *float32, off *int, n int, v *float32)
	// expDiff writes dst[i] = math.Exp(float64(src[i]-m)) for i < n, n a
	// multiple of 4, for arguments in [-708, 709] and -Inf (others are
	// left to math.Exp); or is nil.
	expDiff func(dst *float64, src *float32, m float32, n int)
	// divToF32 writes dst[i] = float32(e[i]/s) for i < n, n a multiple of
	// 4; or is nil.
	divToF32 func(dst *float32, e *float64, s float64, n int)
	// prefetchRows asks the CPU to bring rows rows of bytes bytes each,
	// lds floats apart from src, into cache; or is nil.
	prefetchRows func(src *float32, lds, rows, bytes int)
}

const (
	panelCols     = 16  // columns of a B panel: two AVX2 registers
	kernelRows    = 6   // rows of the main kernel
	simdKC        = 256 // k block: a 6×256 block of x and a 256×16 panel fit in L1
	simdMC        = 120 // row block (a multiple of kernelRows): 120×256 of x stays in L2
	maxTaskPanels = 8   // panels per task at most: a packed block of 128 KiB
	maxGemvPanels = 256 // panels per gemv task at most
	minGemvPanels = 8   // panels per gemv task at least, with several workers
	gemvTasks     = 4   // gemv and gemvT tasks per worker, for balance
	packMinRows   = 13  // w [K, N] is packed for products with at least this many rows
)

// widest returns the kernel for rows rows with the most panels, at most
// maxPanels, and its number of panels.
func (s *simdKernels) widest(rows, maxPanels int) (tileKernel, int) {
	for p := min(maxPanels, len(s.tile[rows])-1); p > 1; p-- {
		if f := s.tile[rows][p]; f != nil {
			return f, p
		}
	}
	return s.tile[rows][1], 1
}

// simdScratch is a worker's buffers.
type simdScratch struct {
	b    []float32 // the task's packed block of w
	tail []float32 // the last, partial panel of w, packed, when w is read in place
	c    [kernelRows * panelCols]float32
	bias [panelCols]float32
}

// grow returns (*buf)[:n], reallocating when it is too short.
func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}

// gemmSIMD runs the products in jobs with s's kernels, in parallel over
// tasks of output columns.
func (b *Backend) gemmSIMD(s *simdKernels, jobs []gemm) {
	workers := b.numWorkers()
	// Pack x, six rows at a time.
	type rowTile struct{ job, m0 int }
	var rowTiles []rowTile
	packed := make([][]float32, len(jobs))
	total, maxK := 0, 0
	for j := range jobs {
		if g := &jobs[j]; g.m > 0 && g.n > 0 {
			total += g.m * g.k
		}
	}
	all := b.packedX.get(total)
	defer b.packedX.put(all)
	for j := range jobs {
		g := &jobs[j]
		if g.m == 0 || g.n == 0 || g.k == 0 {
			continue
		}
		packed[j], all = all[:g.m*g.k:g.m*g.k], all[g.m*g.k:]
		maxK = max(maxK, g.k)
		for m0 := 0; m0 < g.m; m0 += kernelRows {
			rowTiles = append(rowTiles, rowTile{j, m0})
		}
	}
	b.parallel(len(rowTiles), kernelRows*maxK, func(lo, hi int) {
		for _, t := range rowTiles[lo:hi] {
			jobs[t.job].packRows(packed[t.job], t.m0)
		}
	})

	type task struct{ job, p0, p1 int }
	var tasks []task
	cost := 0
	for j := range jobs {
		g := &jobs[j]
		if g.m == 0 || g.n == 0 {
			continue
		}
		if g.k == 0 {
			g.biasOnly()
			continue
		}
		panels := (g.n + panelCols - 1) / panelCols
		var tp int
		if g.useGemv(s) {
			// Long rows stream best: one task on one worker; with more
			// workers, a few tasks each (rows of at least 512 bytes), so
			// that a worker the machine holds back delays only a small
			// share.
			tp = panels
			if workers > 1 {
				tp = max((panels+gemvTasks*workers-1)/(gemvTasks*workers), minGemvPanels)
			}
			tp = min(tp, maxGemvPanels)
		} else if g.useGemvT(s) {
			tp = max((panels+gemvTasks*workers-1)/(gemvTasks*workers), 1)
		} else if g.streamW() {
			tp = min(4, panels) // one 64-column kernel for few rows
		} else {
			tp = min(max((panels+4*workers-1)/(4*workers), 1), maxTaskPanels)
			tp = min((tp+s.mainPanels-1)/s.mainPanels*s.mainPanels, panels) // whole main tiles
			if g.m < 4 && tp < panels {
				tp = min((tp+3)&^3, panels) // whole 64-column kernels for few rows
			}
		}
		for p := 0; p < panels; p += tp {
			tasks = append(tasks, task{j, p, min(p+tp, panels)})
		}
		cost = max(cost, g.m*tp*panelCols*g.k)
	}
	b.parallel(len(tasks), cost, func(lo, hi int) {
		sc := simdScratch{b: b.packedW.get(0)}
		defer func() { b.packedW.put(sc.b) }()
		for i, t := range tasks[lo:hi] {
			next := blockRef{job: -1}
			if lo+i+1 < hi {
				n := tasks[lo+i+1]
				next = blockRef{n.job, n.p0, n.p1}
			}
			jobs[t.job].simdTask(s, packed[t.job], t.p0, t.p1, &sc, jobs, next)
		}
	})
}

// biasOnly writes the result of a product with k = 0: the bias, or zeros.
func (g *gemm) biasOnly() {
	if g.bias == nil {
		return
	}
	for i := range g.m {
		copy(g.out[i*g.ldo:i*g.ldo+g.n], g.bias[:g.n])
	}
}

// packRows packs rows [m0, m0+6) of x (fewer at the end) into ap: for
// each block of k (see kc) from pc, of kb values, the tile is at
// ap[pc·m+m0·kb] and holds row m0+i, step p at [p·rows+i].
func (g *gemm) packRows(ap []float32, m0 int) {
	rows := min(kernelRows, g.m-m0)
	kc := g.kc()
	for pc := 0; pc < g.k; pc += kc {
		kb := min(kc, g.k-pc)
		dst := ap[pc*g.m+m0*kb : pc*g.m+(m0+rows)*kb]
		if rows == kernelRows {
			row := func(i int) []float32 { return g.x[(m0+i)*g.ldx+pc : (m0+i)*g.ldx+pc+kb] }
			r0, r1, r2, r3, r4, r5 := row(0), row(1), row(2), row(3), row(4), row(5)
			r1, r2, r3, r4, r5 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)], r4[:len(r0)], r5[:len(r0)]
			for p, v := range r0 {
				o := dst[6*p : 6*p+6 : 6*p+6]
				o[0], o[1], o[2], o[3], o[4], o[5] = v, r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		for i := range rows {
			src := g.x[(m0+i)*g.ldx+pc : (m0+i)*g.ldx+pc+kb]
			for p, v := range src {
				dst[p*rows+i] = v
			}
		}
	}
}

// pack reports whether the product packs w: always for w [N, K], and for
// w [K, N] with enough rows to reuse each panel many times, or with more
// rows than one kernel covers when w's row stride is a multiple of 4 KiB:
// read in place, every row of a panel then maps to the same L1 set and
// lies in another page, and the second kernel down the panel finds none
// of it in L1.
func (g *gemm) pack() bool {
	return g.transW || g.m >= packMinRows || g.m > kernelRows && g.ldw%1024 == 0
}

// useGemv reports whether the product streams w [K, N] through a gemv
// kernel.
func (g *gemm) useGemv(s *simdKernels) bool {
	return !g.pack() && g.m < len(s.gemv) && s.gemv[g.m] != nil
}

// useGemvT reports whether the product streams w [N, K] in place through
// a gemvT kernel.
func (g *gemm) useGemvT(s *simdKernels) bool {
	return g.transW && g.m < len(s.gemvT) && s.gemvT[g.m] != nil && g.k%8 == 0
}

// streamW reports whether the product packs w [N, K] in narrow tasks over
// all of k at once: with few rows, each packed value is used once or twice,
// so the packing should read w as it streams best, whole rows of it, and
// the kernels should find it in cache right after.
func (g *gemm) streamW() bool { return g.transW && g.m < packMinRows }

// kc returns the product's k block: simdKC, or all of k for streamW.
func (g *gemm) kc() int {
	if g.streamW() {
		return g.k
	}
	return simdKC
}

// blockRef names a task, by its job and panels, whose first block of w a
// task prefetches while it computes its last; job -1 is none.
type blockRef struct{ job, p0, p1 int }

// wRegion returns the part of w that the block of k at pc (kb values) of
// panels [p0, p1) packs: rows rows of bytes bytes, the first at w[off],
// g.ldw apart.
func (g *gemm) wRegion(pc, kb, p0, p1 int) (off, rows, bytes int) {
	n0, n1 := p0*panelCols, min(p1*panelCols, g.n)
	if g.transW {
		return n0*g.ldw + pc, n1 - n0, 4 * kb
	}
	return pc*g.ldw + n0, kb, 4 * (n1 - n0)
}

// simdTask computes the output columns of panels [p0, p1), with x packed
// in ap by packRows. While it computes a block it prefetches the next one
// of w, or the first block of task next of jobs: a row of it per call of
// the 6-row kernel, which issues the prefetches itself.
func (g *gemm) simdTask(s *simdKernels, ap []float32, p0, p1 int, sc *simdScratch, jobs []gemm, next blockRef) {
	n0, n1 := p0*panelCols, min(p1*panelCols, g.n)
	full := (n1 - n0) / panelCols       // panels of 16 columns
	partial := n1 - n0 - full*panelCols // columns of the last panel, if short
	pack := g.pack()                    // else w [K, N] is read in place
	if g.useGemv(s) {
		if full > 0 {
			var bias *float32
			if g.bias != nil {
				bias = &g.bias[n0]
			}
			g.check(0, g.m, n0, full*panelCols)
			_ = g.w[n0 : (g.k-1)*g.ldw+n0+full*panelCols]
			s.gemv[g.m](g.k, &ap[0], &g.w[n0], g.ldw, &g.out[n0], g.ldo, full*panelCols, bias)
		}
		if partial == 0 {
			return
		}
		// The last panel below, alone.
		n0, full = n0+full*panelCols, 0
	} else if g.useGemvT(s) {
		if full > 0 {
			var bias *float32
			if g.bias != nil {
				bias = &g.bias[n0]
			}
			g.check(0, g.m, n0, full*panelCols)
			_ = g.w[n0*g.ldw : (n0+full*panelCols-1)*g.ldw+g.k]
			s.gemvT[g.m](g.k, &ap[0], &g.w[n0*g.ldw], g.ldw, &g.out[n0], g.ldo, full*panelCols, bias)
		}
		if partial == 0 {
			return
		}
		n0, full = n0+full*panelCols, 0
	}
	kc := g.kc()
	for pc := 0; pc < g.k; pc += kc {
		kb := min(kc, g.k-pc)
		last := pc+kb == g.k
		load := min(pc, 1) // the first block starts from zero
		// B: panel q of this k block starts at bq(q); rows ldb apart,
		// panels pstride apart.
		var bp []float32
		ldb, pstride := g.ldw, panelCols
		if pack {
			bp = grow(&sc.b, (p1-p0)*kb*panelCols)
			g.packPanels(s, bp, pc, kb, n0, n1)
			ldb, pstride = panelCols, kb*panelCols
		}
		bq := func(q int) *float32 {
			if pack {
				return &bp[q*kb*panelCols]
			}
			return &g.w[pc*g.ldw+n0+q*panelCols]
		}
		bias := func(q int) *float32 {
			if !last || g.bias == nil {
				return nil
			}
			return &g.bias[n0+q*panelCols]
		}
		// The partial panel is always packed, zero-padded to 16 columns.
		var tailB *float32
		if partial > 0 {
			if pack {
				tailB = bq(full)
			} else {
				t := grow(&sc.tail, kb*panelCols)
				g.packPanel(t, pc, kb, n0+full*panelCols, partial)
				tailB = &t[0]
			}
			if last && g.bias != nil {
				copy(sc.bias[:], g.bias[n0+full*panelCols:n1])
				clear(sc.bias[partial:])
			}
		}
		// The next block of w to prefetch, a row per kernel call: rows of
		// pfW from pfOff, pfLd apart.
		var pfW []float32
		pfOff, pfRows, pfBytes, pfLd := 0, 0, 0, g.ldw
		if pack && s.prefetchRows != nil && !g.streamW() {
			if !last {
				pfW = g.w
				pfOff, pfRows, pfBytes = g.wRegion(pc+kb, min(kc, g.k-pc-kb), p0, p1)
			} else if next.job >= 0 {
				ng := &jobs[next.job]
				if ng.pack() && !ng.streamW() && ng.k > 0 {
					pfW, pfLd = ng.w, ng.ldw
					pfOff, pfRows, pfBytes = ng.wRegion(0, min(ng.kc(), ng.k), next.p0, next.p1)
				}
			}
		}
		prefetched := 0
		for m0 := 0; m0 < g.m; m0 += simdMC {
			m1 := min(m0+simdMC, g.m)
			mFull := m0 + (m1-m0)/kernelRows*kernelRows
			for q := 0; q < full; {
				k6, np := s.widest(kernelRows, min(s.mainPanels, full-q))
				b, bs := bq(q), bias(q)
				for m := m0; m < mFull; m += kernelRows {
					g.check(m, kernelRows, n0+q*panelCols, np*panelCols)
					var pf *float32
					pfb := 0
					if prefetched < pfRows {
						pf, pfb = &pfW[pfOff+prefetched*pfLd], pfBytes
						prefetched++
					}
					k6(kb, &ap[pc*g.m+m*kb], b, ldb, pstride, &g.out[m*g.ldo+n0+q*panelCols], g.ldo, load, bs, pf, pfb)
				}
				q += np
			}
			if r := m1 - mFull; r > 0 {
				for q := 0; q < full; {
					f, np := s.widest(r, full-q)
					g.check(mFull, r, n0+q*panelCols, np*panelCols)
					f(kb, &ap[pc*g.m+mFull*kb], bq(q), ldb, pstride, &g.out[mFull*g.ldo+n0+q*panelCols], g.ldo, load, bias(q), nil, 0)
					q += np
				}
			}
			if partial > 0 {
				var bs *float32
				if last && g.bias != nil {
					bs = &sc.bias[0]
				}
				c0 := n0 + full*panelCols
				for m := m0; m < m1; m += kernelRows {
					r := min(kernelRows, m1-m)
					g.check(m, r, c0, partial)
					for i := range r {
						copy(sc.c[i*panelCols:i*panelCols+partial], g.out[(m+i)*g.ldo+c0:])
					}
					s.tile[r][1](kb, &ap[pc*g.m+m*kb], tailB, panelCols, 0, &sc.c[0], panelCols, load, bs, nil, 0)
					for i := range r {
						copy(g.out[(m+i)*g.ldo+c0:(m+i)*g.ldo+c0+partial], sc.c[i*panelCols:])
					}
				}
			}
		}
		if prefetched < pfRows {
			s.prefetchRows(&pfW[pfOff+prefetched*pfLd], pfLd, pfRows-prefetched, pfBytes)
		}
	}
}

// check panics unless rows [m, m+rows) × columns [c, c+cols) of out lie
// within its slice: the kernels write through raw pointers.
func (g *gemm) check(m, rows, c, cols int) {
	_ = g.out[m*g.ldo+c : (m+rows-1)*g.ldo+c+cols]
}

// packPanels packs columns [n0, n1) of rows [pc, pc+kb) of w ([k, n]; or
// [n, k] with transW) into dst as panels of kb rows × 16 columns, the last
// panel zero-padded.
func (g *gemm) packPanels(s *simdKernels, dst []float32, pc, kb, n0, n1 int) {
	q0 := 0
	if full := (n1 - n0) / panelCols; !g.transW && full > 0 {
		// Row by row: each row of the block is read once, contiguously.
		_ = g.w[pc*g.ldw+n0 : (pc+kb-1)*g.ldw+n0+full*panelCols]
		_ = dst[:full*kb*panelCols]
		s.packN16(&dst[0], &g.w[pc*g.ldw+n0], g.ldw, kb, full, kb*panelCols)
		q0 = full
	}
	for q, c := q0, n0+q0*panelCols; c < n1; q, c = q+1, c+panelCols {
		cols := min(panelCols, n1-c)
		d := dst[q*kb*panelCols : (q+1)*kb*panelCols]
		if g.transW && cols == panelCols {
			k8 := kb &^ 7
			if k8 > 0 {
				_ = g.w[c*g.ldw+pc : (c+panelCols-1)*g.ldw+pc+k8]
				s.packT16(&d[0], &g.w[c*g.ldw+pc], g.ldw, k8)
			}
			for k := k8; k < kb; k++ {
				row := d[k*panelCols : (k+1)*panelCols]
				for j := range row {
					row[j] = g.w[(c+j)*g.ldw+pc+k]
				}
			}
			continue
		}
		g.packPanel(d, pc, kb, c, cols)
	}
}

// packPanel packs columns [c, c+cols) of rows [pc, pc+kb) of w into one
// panel (kb rows of 16), zero-padding columns cols..15.
func (g *gemm) packPanel(dst []float32, pc, kb, c, cols int) {
	dst = dst[:kb*panelCols]
	if g.transW {
		for k := range kb {
			row := dst[k*panelCols : (k+1)*panelCols]
			for j := range cols {
				row[j] = g.w[(c+j)*g.ldw+pc+k]
			}
			clear(row[cols:])
		}
		return
	}
	if cols == panelCols {
		for k := range kb {
			o := (pc+k)*g.ldw + c
			*(*[panelCols]float32)(dst[k*panelCols : (k+1)*panelCols]) = *(*[panelCols]float32)(g.w[o : o+panelCols])
		}
		return
	}
	for k := range kb {
		row := dst[k*panelCols : (k+1)*panelCols]
		o := (pc+k)*g.ldw + c
		copy(row[:cols], g.w[o:o+cols])
		clear(row[cols:])
	}
}
