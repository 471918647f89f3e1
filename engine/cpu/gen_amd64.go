//go:build ignore

// gen_amd64.go writes simd_amd64.s, the AVX2+FMA kernels of the CPU
// backend (KernelsAVX2) and the AVX-512 matmul tiles of KernelsAVX512:
// `go generate ./engine/cpu`, or `go run gen_amd64.go` in this directory.
// The tile kernels of both come from one writer (kernel) and a table of
// shapes per instruction set (tiles); only registers and widths differ. The CPU reference of each is the
// backend's pure-Go code; the tests in this directory check each against
// it (bit for bit where the package doc promises bits).
//
// Matmul: every kernel computes a tile of C += A·B over k steps: A is
// packed as [k][rows] and broadcast one element at a time, B is read 16
// columns (one panel) per row, and each output element is one lane of one
// register, updated by one fused multiply-add per k in increasing k. So
// every kernel, whatever its tile shape, computes an element with the same
// arithmetic, and results never depend on the tiling (see the package doc).
// The tiles are those the driver (sgemm.go) asks for: 6×16 for full row
// tiles (12 accumulators, 2 B registers, 2 broadcast registers: Zen 3 and
// Haswell issue two FMAs a cycle with a latency of 4, so 12 independent
// chains keep both busy), 1–5 rows × 16 for the last rows, and 1×64, 2×32,
// 3×32 so that few-row products (decode) still have 6–12 chains; tiles
// whose B registers do not fit read B as a memory operand of the FMA. Each
// tile kernel first issues the driver's prefetches of its next block of w
// (a Go call per tile to a prefetch function cost 3–4% of a forward). The
// gemv kernels (1–3 rows) run along whole rows of an unpacked w [K, N]
// instead, and the gemvT kernels (1–3 rows) along sixteen rows of an
// unpacked w [N, K], transposing 8×8 blocks in registers: the same FMA
// chain per element as the tiles, without writing a packed copy of w
// (1×768×50257: 5.3–5.7 GFLOP/s packed, 6.9–7.8 with gemvT, same load;
// PREFETCHT0 256, 512 or 1024 bytes ahead in each of the sixteen rows made
// it slower, 4.2–7.4). The hot loops start on 32-byte boundaries (PCALIGN),
// so that inserting a kernel does not move the others' loops across fetch
// blocks (no difference measurable under the machine's load).
//
// Versions, on the 2-core EPYC (Zen 3) of bench/RESULTS.md, 6×16 on data
// in L1: (1) A read in place, six row pointers: 60–65 GFLOP/s; (2) A packed
// [k][6]: 85–93 GFLOP/s (the FMA peak is about 100), kept. In a whole
// product (128×768×2304): 57 GFLOP/s, then 74–77 once w was packed row by
// row in assembly (Go's copy of 64 bytes per row was a memmove call) and
// the first k block started from zero registers instead of loading C; a
// PREFETCHT0 of the next C tile or of A and B inside the loop, and k
// blocks of 384 or 768, made no measurable difference and are gone. The
// matmul packs w for products of 13 rows or more: read in place at 128
// rows, a 12 KiB row stride (N = 3072) maps a panel to one L1 set (48 vs
// 67 GFLOP/s).
//
// AVX-512 (32 registers of 16 floats): one register per panel row, so the
// same packed panels serve both sets. The main tile is 6×32 (12
// accumulators, as AVX2's 6×16, and 256 k of w, 32 KiB, stay in L1);
// 6×64 (24 accumulators, 64 KiB of w a k block, so from L2) also exists,
// and the device check (bench/gpu/run.sh cpu) times the two. Zeroing uses
// VPXORD: VXORPS on 512-bit registers needs AVX512DQ. Untimed here: no
// machine of ours has AVX-512.
//
// The rest: packT16 (a 16-row transpose by 8×8 register transposes;
// prefetching its 16 streams did not help: it runs at memory bandwidth),
// packN16 (copies rows into panels), prefetchRows, the float32 GELU, the
// attention's dot products and weighted sums (no FMA: the pure-Go order),
// the softmax's exponentials (math.Exp's FMA path, four lanes) and its
// final division.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
)

// tile is one kernel shape: rows of A and panels of 16 columns of B.
type tile struct{ rows, panels int }

// isa is an instruction set's vector registers, as the tile kernels use
// them.
type isa struct {
	name      string // in kernel names: sgemm<name>_6x16
	reg       string // register prefix: "Y" or "Z"
	regs      int    // vector registers
	vecFloats int    // float32 lanes per register
	zero      string // the instruction that zeroes a register
}

var (
	avx2   = isa{name: "AVX2", reg: "Y", regs: 16, vecFloats: 8, zero: "VXORPS"}
	avx512 = isa{name: "AVX512", reg: "Z", regs: 32, vecFloats: 16, zero: "VPXORD"} // VXORPS on Z needs AVX512DQ
)

// vr returns vector register i.
func (s isa) vr(i int) string { return fmt.Sprintf("%s%d", s.reg, i) }

// vecBytes returns the bytes of one register.
func (s isa) vecBytes() int { return 4 * s.vecFloats }

// perPanel returns the registers of one panel row (16 columns).
func (s isa) perPanel() int { return 16 / s.vecFloats }

// tiles are the kernel shapes of each instruction set, as the driver
// (sgemm.go) asks for them: the main tile (6×16 for AVX2, 6×64 for
// AVX-512), tiles for the last rows and for few-row products.
var tiles = map[isa][]tile{
	avx2: {
		{6, 1}, {5, 1}, {4, 1}, {3, 1}, {2, 1}, {1, 1},
		{3, 2}, {2, 2}, {1, 2}, {1, 4},
	},
	avx512: {
		{6, 4}, {5, 4}, {4, 4}, {3, 4}, {2, 4}, {1, 4},
		{6, 2}, {5, 2}, {4, 2}, {3, 2}, {2, 2}, {1, 2},
		{6, 1}, {5, 1}, {4, 1}, {3, 1}, {2, 1}, {1, 1},
	},
}

func main() {
	out := flag.String("out", "simd_amd64.s", "output file")
	flag.Parse()
	var w strings.Builder
	w.WriteString("// Code generated by gen_amd64.go; DO NOT EDIT.\n\n")
	w.WriteString("//go:build amd64 && !fxpurego\n\n#include \"textflag.h\"\n")
	for _, t := range tiles[avx2] {
		kernel(&w, avx2, t)
	}
	for _, t := range tiles[avx512] {
		kernel(&w, avx512, t)
	}
	transpose(&w)
	copyPanels(&w)
	for rows := 1; rows <= 3; rows++ {
		gemv(&w, rows)
	}
	for rows := 1; rows <= 3; rows++ {
		gemvT(&w, rows)
	}
	gelu(&w)
	geluErf(&w)
	dots(&w)
	mix(&w)
	prefetch(&w)
	expDiff(&w)
	divide(&w)
	if err := os.WriteFile(*out, []byte(w.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type asm struct{ w *strings.Builder }

func (a asm) op(format string, args ...any) { fmt.Fprintf(a.w, "\t"+format+"\n", args...) }
func (a asm) label(l string)                { fmt.Fprintf(a.w, "%s:\n", l) }

// aAddr returns the address of A's row r at k offset u from SI: A is
// packed as [k][rows], so the rows of one k are adjacent.
func aAddr(rows, r, u int) string {
	if d := 4 * (rows*u + r); d != 0 {
		return fmt.Sprintf("%d(SI)", d)
	}
	return "(SI)"
}

// bAddr returns the address of B vector v (panel v/perPanel, vector
// v%perPanel of it) in the current row: panels are R12 (pstride) bytes
// apart, R13 = 3·pstride.
func (s isa) bAddr(v int) string {
	disp := ""
	if d := v % s.perPanel() * s.vecBytes(); d != 0 {
		disp = fmt.Sprint(d)
	}
	switch v / s.perPanel() {
	case 0:
		return disp + "(DI)"
	case 1:
		return disp + "(DI)(R12*1)"
	case 2:
		return disp + "(DI)(R12*2)"
	default:
		return disp + "(DI)(R13*1)"
	}
}

// cAddr returns the address of C's row r, vector v: rows 0–2 from DX, rows
// 3–5 from AX (DX + 3·ldc); R10 holds ldc in bytes.
func (s isa) cAddr(r, v int) string {
	base := "DX"
	if r >= 3 {
		base, r = "AX", r-3
	}
	disp := ""
	if v != 0 {
		disp = fmt.Sprint(s.vecBytes() * v)
	}
	switch r {
	case 0:
		return fmt.Sprintf("%s(%s)", disp, base)
	case 1:
		return fmt.Sprintf("%s(%s)(R10*1)", disp, base)
	default:
		return fmt.Sprintf("%s(%s)(R10*2)", disp, base)
	}
}

func y(i int) string { return fmt.Sprintf("Y%d", i) }

// kernel writes the tile kernel of shape t in instruction set s:
// sgemm<s.name>_<rows>x<columns>. The accumulators take the first
// registers, then B's registers (where they fit), then one or two
// registers for A's broadcasts.
func kernel(w *strings.Builder, s isa, t tile) {
	a := asm{w}
	nv := s.perPanel() * t.panels // vectors per row
	acc := t.rows * nv
	if acc > s.regs*3/4 {
		panic("too many accumulators")
	}
	regB := acc+nv+1 <= s.regs // B held in registers, else read by each FMA
	first := acc               // the first register after the accumulators and B
	if regB {
		first += nv
	}
	bcast := []int{first}
	if first+1 < s.regs {
		bcast = append(bcast, first+1)
	}
	y := s.vr
	bReg := func(v int) string { return y(acc + v) }
	name := fmt.Sprintf("sgemm%s_%dx%d", s.name, t.rows, 16*t.panels)
	fmt.Fprintf(w, "\n// func %s(k int, a, b *float32, ldb, pstride int, c *float32, ldc, load int, bias, pf *float32, pfBytes int)\n", name)
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-88\n", name)
	a.op("MOVQ k+0(FP), CX")
	a.op("MOVQ a+8(FP), SI")
	a.op("MOVQ b+16(FP), DI")
	a.op("MOVQ ldb+24(FP), R9")
	a.op("MOVQ pstride+32(FP), R12")
	a.op("MOVQ c+40(FP), DX")
	a.op("MOVQ ldc+48(FP), R10")
	a.op("MOVQ bias+64(FP), R11")
	a.op("SHLQ $2, R9")
	a.op("SHLQ $2, R12")
	a.op("SHLQ $2, R10")
	a.op("LEAQ (R12)(R12*2), R13")
	a.op("LEAQ (DX)(R10*2), AX")
	a.op("ADDQ R10, AX")
	// Ask for the bytes at pf (the driver's next block of w) to be brought
	// into L2 while the tile computes.
	a.op("MOVQ pf+72(FP), BX")
	a.op("MOVQ pfBytes+80(FP), R8")
	a.op("TESTQ R8, R8")
	a.op("JLE start0")
	a.label("pfline")
	a.op("PREFETCHT1 (BX)")
	a.op("ADDQ $64, BX")
	a.op("SUBQ $64, R8")
	a.op("JG pfline")
	a.label("start0")
	// The accumulators start from C, or from zero (C's value on the first
	// k block) without reading C.
	a.op("CMPQ load+56(FP), $0")
	a.op("JNE loadc")
	for i := range acc {
		a.op("%s %s, %s, %s", s.zero, y(i), y(i), y(i))
	}
	a.op("JMP start")
	a.label("loadc")
	for r := range t.rows {
		for v := range nv {
			a.op("VMOVUPS %s, %s", s.cAddr(r, v), y(r*nv+v))
		}
	}
	a.label("start")
	step := func(u int) {
		if regB {
			for v := range nv {
				a.op("VMOVUPS %s, %s", s.bAddr(v), bReg(v))
			}
		}
		for r := range t.rows {
			bc := y(bcast[r%len(bcast)])
			a.op("VBROADCASTSS %s, %s", aAddr(t.rows, r, u), bc)
			for v := range nv {
				src := s.bAddr(v)
				if regB {
					src = bReg(v)
				}
				a.op("VFMADD231PS %s, %s, %s", src, bc, y(r*nv+v))
			}
		}
	}
	advanceA := func(ks int) { a.op("ADDQ $%d, SI", 4*t.rows*ks) }
	a.op("MOVQ CX, R14")
	a.op("SHRQ $2, R14")
	a.op("ANDQ $3, CX")
	a.op("TESTQ R14, R14")
	a.op("JZ tail")
	a.op("PCALIGN $32")
	a.label("loop4")
	if t.rows == 6 {
		a.op("PREFETCHT0 384(SI)")
		a.op("PREFETCHT0 512(DI)")
	}
	for u := range 4 {
		step(u)
		a.op("ADDQ R9, DI")
	}
	advanceA(4)
	a.op("DECQ R14")
	a.op("JNZ loop4")
	a.label("tail")
	a.op("TESTQ CX, CX")
	a.op("JZ done")
	a.label("loop1")
	step(0)
	a.op("ADDQ R9, DI")
	advanceA(1)
	a.op("DECQ CX")
	a.op("JNZ loop1")
	a.label("done")
	// The bias is added once, after the last k.
	a.op("TESTQ R11, R11")
	a.op("JZ store")
	biasReg := y(s.regs - 1)
	for v := range nv {
		if v == 0 {
			a.op("VMOVUPS (R11), %s", biasReg)
		} else {
			a.op("VMOVUPS %d(R11), %s", s.vecBytes()*v, biasReg)
		}
		for r := range t.rows {
			acc := y(r*nv + v)
			a.op("VADDPS %s, %s, %s", biasReg, acc, acc)
		}
	}
	a.label("store")
	for r := range t.rows {
		for v := range nv {
			a.op("VMOVUPS %s, %s", y(r*nv+v), s.cAddr(r, v))
		}
	}
	a.op("VZEROUPPER")
	a.op("RET")
}

// transposeSteps are the three steps of an 8×8 transpose of float32 in
// AVX2 registers: each combines pairs of the previous step's eight
// results (the rows, for the first) by two instructions into two of its
// own. pairs lists, for each pair, the indexes of its two inputs and of
// its two outputs; ops are the instructions that write the first and the
// second output.
var transposeSteps = [3]struct {
	ops   [2]string
	pairs [4][4]int
}{
	{[2]string{"VUNPCKLPS", "VUNPCKHPS"}, [4][4]int{{0, 1, 0, 1}, {2, 3, 2, 3}, {4, 5, 4, 5}, {6, 7, 6, 7}}},
	{[2]string{"VSHUFPS $0x44,", "VSHUFPS $0xEE,"}, [4][4]int{{0, 2, 0, 1}, {1, 3, 2, 3}, {4, 6, 4, 5}, {5, 7, 6, 7}}},
	{[2]string{"VPERM2F128 $0x20,", "VPERM2F128 $0x31,"}, [4][4]int{{0, 4, 0, 4}, {1, 5, 1, 5}, {2, 6, 2, 6}, {3, 7, 3, 7}}},
}

// transpose8x8 writes the in-register 8×8 transpose of packT16AVX2 and
// sgemvTAVX2_*, and returns the registers of its columns: Y(cols[s])
// holds element s of rows 0–7. rows[l] is row l's operand, a register or
// a memory operand (anything with parentheses); a row in memory that
// must be a register (the even one of each first-step pair) is first
// loaded into the register of the pair's first output. dest chooses the
// two output registers of each pair, given the step (0–2), the registers
// of the pair's inputs (-1 in step 0) and the indexes of its outputs in
// the step. Where the pair's first instruction overwrites one of its
// inputs, the second is written first.
func transpose8x8(a asm, rows [8]string, dest func(step int, in, out [2]int) [2]int) (cols [8]int) {
	operand := rows
	reg := [8]int{-1, -1, -1, -1, -1, -1, -1, -1}
	for step, st := range transposeSteps {
		var next [8]int
		for _, p := range st.pairs {
			src := [2]string{operand[p[0]], operand[p[1]]}
			d := dest(step, [2]int{reg[p[0]], reg[p[1]]}, [2]int{p[2], p[3]})
			if strings.Contains(src[0], "(") {
				a.op("VMOVUPS %s, %s", src[0], y(d[0]))
				src[0] = y(d[0])
			}
			order := [2]int{0, 1}
			if y(d[0]) == src[0] || y(d[0]) == src[1] {
				order = [2]int{1, 0}
			}
			for _, k := range order {
				a.op("%s %s, %s, %s", st.ops[k], src[1], src[0], y(d[k]))
			}
			next[p[2]], next[p[3]] = d[0], d[1]
		}
		reg = next
		for i, r := range reg {
			operand[i] = y(r)
		}
	}
	return reg
}

// transpose writes packT16AVX2, which packs 16 rows of a row-major matrix
// (w [N, K]) into one B panel: dst[k·16+j] = src[j·lds+k] for j < 16 and
// k < n, n a multiple of 8, by 8×8 transposes in registers.
func transpose(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func packT16AVX2(dst, src *float32, lds, n int)\n")
	fmt.Fprintf(w, "TEXT ·packT16AVX2(SB), NOSPLIT, $0-32\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ src+8(FP), SI")
	a.op("MOVQ lds+16(FP), R8")
	a.op("MOVQ n+24(FP), CX")
	a.op("SHLQ $2, R8")
	a.op("LEAQ (R8)(R8*2), R9")   // 3·lds
	a.op("LEAQ (SI)(R8*4), BX")   // row 4
	a.op("LEAQ (BX)(R8*4), R10")  // row 8
	a.op("LEAQ (R10)(R8*4), R11") // row 12
	a.op("SHRQ $3, CX")
	a.op("TESTQ CX, CX")
	a.op("JZ done")
	a.label("loop")
	block := func(b0, b1 string, half int) {
		mem := []string{"(" + b0 + ")", "(" + b0 + ")(R8*1)", "(" + b0 + ")(R8*2)", "(" + b0 + ")(R9*1)",
			"(" + b1 + ")", "(" + b1 + ")(R8*1)", "(" + b1 + ")(R8*2)", "(" + b1 + ")(R9*1)"}
		var rows [8]string
		for l, m := range mem {
			rows[l] = y(l)
			a.op("VMOVUPS %s, %s", m, rows[l])
		}
		// Y0–Y7 hold the rows; the steps write Y8–Y15, Y0–Y7 and Y8–Y15,
		// output o of a step to the o-th register of that bank.
		cols := transpose8x8(a, rows, func(step int, _, out [2]int) [2]int {
			bank := 8
			if step == 1 {
				bank = 0
			}
			return [2]int{bank + out[0], bank + out[1]}
		})
		for s, c := range cols {
			a.op("VMOVUPS %s, %d(DI)", y(c), 64*s+32*half)
		}
	}
	block("SI", "BX", 0)
	block("R10", "R11", 1)
	for _, r := range []string{"SI", "BX", "R10", "R11"} {
		a.op("ADDQ $32, %s", r)
	}
	a.op("ADDQ $512, DI")
	a.op("DECQ CX")
	a.op("JNZ loop")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// copyPanels writes packN16AVX2, which packs k rows of a row-major matrix
// (w [K, N]) into panels of 16 columns: for row p < k and panel q < panels,
// dst[q·dstride+p·16+j] = src[p·lds+q·16+j], j < 16.
func copyPanels(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func packN16AVX2(dst, src *float32, lds, k, panels, dstride int)\n")
	fmt.Fprintf(w, "TEXT ·packN16AVX2(SB), NOSPLIT, $0-48\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ src+8(FP), SI")
	a.op("MOVQ lds+16(FP), R8")
	a.op("MOVQ k+24(FP), CX")
	a.op("MOVQ panels+32(FP), R9")
	a.op("MOVQ dstride+40(FP), R10")
	a.op("SHLQ $2, R8")
	a.op("SHLQ $2, R10")
	a.op("TESTQ CX, CX")
	a.op("JZ done")
	a.op("TESTQ R9, R9")
	a.op("JZ done")
	a.label("row")
	a.op("MOVQ SI, AX") // this row's source
	a.op("MOVQ DI, DX") // this row in panel 0
	a.op("MOVQ R9, BX")
	a.label("panel")
	a.op("VMOVUPS (AX), Y0")
	a.op("VMOVUPS 32(AX), Y1")
	a.op("VMOVUPS Y0, (DX)")
	a.op("VMOVUPS Y1, 32(DX)")
	a.op("ADDQ $64, AX")
	a.op("ADDQ R10, DX")
	a.op("DECQ BX")
	a.op("JNZ panel")
	a.op("ADDQ R8, SI")
	a.op("ADDQ $64, DI")
	a.op("DECQ CX")
	a.op("JNZ row")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// gemv writes sgemvAVX2_<rows>, the kernel for products of one to three
// rows with w [K, N] read in place: for each group of four k it runs along
// the whole row of columns, c[i][j] = fma(a[k+3], w[k+3][j], … fma(a[k],
// w[k][j], c[i][j])), so w streams through once, four rows at a time, and
// the rows of c stay in L1. The arithmetic per element is the tile
// kernels': one chain of fused multiply-adds over k in order, from c.
func gemv(w *strings.Builder, rows int) {
	a := asm{w}
	name := fmt.Sprintf("sgemvAVX2_%d", rows)
	fmt.Fprintf(w, "\n// func %s(k int, a, b *float32, ldb int, c *float32, ldc, n int, bias *float32)\n", name)
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	a.op("MOVQ k+0(FP), CX")
	a.op("MOVQ a+8(FP), SI")
	a.op("MOVQ b+16(FP), DI")
	a.op("MOVQ ldb+24(FP), R9")
	a.op("MOVQ c+32(FP), DX")
	a.op("MOVQ ldc+40(FP), R10")
	a.op("MOVQ n+48(FP), R12")
	a.op("SHLQ $2, R9")
	a.op("SHLQ $2, R10")
	a.op("SHLQ $2, R12")
	a.op("LEAQ (DX)(R10*1), R8")
	a.op("LEAQ (DX)(R10*2), R15")
	cRow := []string{"DX", "R8", "R15"}
	wRow := []string{"AX", "BX", "R13", "R14"}
	// Registers: accumulators Y0.., then (rows > 1) registers for w, one
	// per k where they fit, then the broadcasts of a, 4·rows of them, at
	// the top.
	bc := func(u, i int) string { return y(16 - 4*rows + u*rows + i) }
	wReg := func(u int) string { return y(rows + u%(16-5*rows)) }
	pass := func(label string, ks int) {
		for u := range ks {
			for i := range rows {
				if d := 4 * (u*rows + i); d != 0 {
					a.op("VBROADCASTSS %d(SI), %s", d, bc(u, i))
				} else {
					a.op("VBROADCASTSS (SI), %s", bc(u, i))
				}
			}
		}
		a.op("MOVQ DI, AX")
		if ks == 4 {
			a.op("LEAQ (DI)(R9*1), BX")
			a.op("LEAQ (DI)(R9*2), R13")
			a.op("LEAQ (BX)(R9*2), R14")
		}
		a.op("XORQ R11, R11")
		a.op("PCALIGN $32")
		a.label(label)
		for i := range rows {
			a.op("VMOVUPS (%s)(R11*1), %s", cRow[i], y(i))
		}
		for u := range ks {
			src := fmt.Sprintf("(%s)(R11*1)", wRow[u])
			if rows > 1 {
				a.op("VMOVUPS %s, %s", src, wReg(u))
				src = wReg(u)
			}
			for i := range rows {
				a.op("VFMADD231PS %s, %s, %s", src, bc(u, i), y(i))
			}
		}
		for i := range rows {
			a.op("VMOVUPS %s, (%s)(R11*1)", y(i), cRow[i])
		}
		a.op("ADDQ $32, R11")
		a.op("CMPQ R11, R12")
		a.op("JLT %s", label)
		a.op("ADDQ $%d, SI", 4*rows*ks)
	}
	a.label("quad")
	a.op("CMPQ CX, $4")
	a.op("JLT single")
	pass("qcol", 4)
	a.op("LEAQ (DI)(R9*4), DI")
	a.op("SUBQ $4, CX")
	a.op("JMP quad")
	a.label("single")
	a.op("TESTQ CX, CX")
	a.op("JZ bias")
	pass("scol", 1)
	a.op("ADDQ R9, DI")
	a.op("DECQ CX")
	a.op("JMP single")
	a.label("bias")
	a.op("MOVQ bias+56(FP), SI")
	a.op("TESTQ SI, SI")
	a.op("JZ done")
	a.op("XORQ R11, R11")
	a.label("bcol")
	a.op("VMOVUPS (SI)(R11*1), Y15")
	for i := range rows {
		a.op("VADDPS (%s)(R11*1), Y15, %s", cRow[i], y(i))
		a.op("VMOVUPS %s, (%s)(R11*1)", y(i), cRow[i])
	}
	a.op("ADDQ $32, R11")
	a.op("CMPQ R11, R12")
	a.op("JLT bcol")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// gemvT writes sgemvTAVX2_<rows>, the kernel for products of one to three
// rows with w [N, K] read in place, without packing: c[i][j] = Σ_k a[k][i]·
// w[j][k] for n columns (a multiple of 16) and k a multiple of 8, then the
// bias. Sixteen rows of w (sixteen output columns) stream side by side; each
// step loads an 8×8 block from eight of them and transposes it in registers
// (transpose8x8, as packT16), so that one register holds w[j..j+8][k] for one
// k, and the fused multiply-adds run down k in order, one lane per output
// element, from zero: the arithmetic of the tile kernels, so the bits are
// theirs. Registers: the accumulators (two per row), nine for the
// transpose, one broadcast of a.
func gemvT(w *strings.Builder, rows int) {
	a := asm{w}
	name := fmt.Sprintf("sgemvTAVX2_%d", rows)
	fmt.Fprintf(w, "\n// func %s(k int, a, b *float32, ldb int, c *float32, ldc, n int, bias *float32)\n", name)
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	a.op("MOVQ k+0(FP), CX")
	a.op("MOVQ b+16(FP), DI")
	a.op("MOVQ ldb+24(FP), R8")
	a.op("MOVQ c+32(FP), DX")
	a.op("MOVQ ldc+40(FP), R10")
	a.op("MOVQ n+48(FP), R12")
	a.op("MOVQ bias+56(FP), R13")
	a.op("SHLQ $2, R8")
	a.op("SHLQ $2, R10")
	a.op("LEAQ (R8)(R8*2), R9") // 3·ldb
	a.op("SHRQ $3, CX")         // steps of 8 k
	a.op("JZ done")
	a.op("SHRQ $4, R12") // groups of 16 columns
	a.op("JZ done")
	acc := func(i, g int) string { return y(2*i + g) }
	bc := y(15)
	a.label("group")
	for i := range rows {
		for g := range 2 {
			a.op("VXORPS %s, %s, %s", acc(i, g), acc(i, g), acc(i, g))
		}
	}
	a.op("MOVQ a+8(FP), SI")
	a.op("MOVQ DI, BX")           // columns 0–3 of the group
	a.op("LEAQ (DI)(R8*4), AX")   // 4–7
	a.op("LEAQ (AX)(R8*4), R11")  // 8–11
	a.op("LEAQ (R11)(R8*4), R15") // 12–15
	a.op("MOVQ CX, R14")
	a.op("PCALIGN $32")
	a.label("kloop")
	half := func(g int, b0, b1 string) {
		var wRows [8]string // the block's rows: w[j+l][k..k+8]
		for l := range wRows {
			b := b0
			if l >= 4 {
				b = b1
			}
			wRows[l] = [4]string{"(" + b + ")", "(" + b + ")(R8*1)", "(" + b + ")(R8*2)", "(" + b + ")(R9*1)"}[l%4]
		}
		free := []int{}
		for r := 2 * rows; r < 2*rows+9; r++ {
			free = append(free, r)
		}
		pop := func() int { r := free[0]; free = free[1:]; return r }
		push := func(r int) { free = append(free, r) }
		// Nine registers after the accumulators: step 0 takes two free
		// ones (the even row is loaded into the first); steps 1 and 2
		// write the low half to a free one and the high half over the
		// pair's second input, and free its first.
		f := transpose8x8(a, wRows, func(step int, in, _ [2]int) [2]int {
			lo := pop()
			if step == 0 {
				return [2]int{lo, pop()}
			}
			push(in[0])
			return [2]int{lo, in[1]}
		})
		// f[s] holds w[j..j+8][k+s].
		for s := range 8 {
			for i := range rows {
				if d := 4 * (s*rows + i); d != 0 {
					a.op("VBROADCASTSS %d(SI), %s", d, bc)
				} else {
					a.op("VBROADCASTSS (SI), %s", bc)
				}
				a.op("VFMADD231PS %s, %s, %s", y(f[s]), bc, acc(i, g))
			}
		}
	}
	half(0, "BX", "AX")
	half(1, "R11", "R15")
	for _, r := range []string{"BX", "AX", "R11", "R15"} {
		a.op("ADDQ $32, %s", r)
	}
	a.op("ADDQ $%d, SI", 4*8*rows)
	a.op("DECQ R14")
	a.op("JNZ kloop")
	// The bias is added once, after the last k.
	a.op("TESTQ R13, R13")
	a.op("JZ store")
	for i := range rows {
		a.op("VADDPS (R13), %s, %s", acc(i, 0), acc(i, 0))
		a.op("VADDPS 32(R13), %s, %s", acc(i, 1), acc(i, 1))
	}
	a.op("ADDQ $64, R13")
	a.label("store")
	cRow := []string{"(DX)", "(DX)(R10*1)", "(DX)(R10*2)"}
	for i := range rows {
		a.op("VMOVUPS %s, %s", acc(i, 0), cRow[i])
		a.op("VMOVUPS %s, 32%s", acc(i, 1), cRow[i])
	}
	a.op("ADDQ $64, DX")
	a.op("LEAQ (DI)(R8*8), DI")
	a.op("LEAQ (DI)(R8*8), DI")
	a.op("DECQ R12")
	a.op("JNZ group")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// vecConst is a named float32 constant of a kernel, stored as a vector of 8
// lanes so that an instruction can read it from memory.
type vecConst struct {
	name string
	v    float32
}

// vecConsts writes consts as the read-only symbol sym<>, one vector of 8
// lanes each, and returns the memory operand of a constant by name.
func vecConsts(w *strings.Builder, sym string, consts []vecConst) func(name string) string {
	off := map[string]int{}
	for i, c := range consts {
		off[c.name] = 32 * i
		for l := range 8 {
			fmt.Fprintf(w, "DATA %s<>+%d(SB)/4, $0x%08x // %s\n", sym, 32*i+4*l, math.Float32bits(c.v), c.name)
		}
	}
	fmt.Fprintf(w, "GLOBL %s<>(SB), RODATA|NOPTR, $%d\n", sym, 32*len(consts))
	return func(name string) string { return fmt.Sprintf("%s<>+%d(SB)", sym, off[name]) }
}

// geluConsts are the constants of geluTanhAVX2.
var geluConsts = []vecConst{
	{"c", 0.044715},
	{"k", float32(-2 * math.Sqrt(2/math.Pi))},
	{"one", 1},
	{"lo", -87},
	{"hi", 88},
	{"log2e", float32(math.Log2E)},
	// Cephes expf: ln 2 in two parts, and the polynomial of exp on
	// [-ln2/2, ln2/2].
	{"ln2hi", 0.693359375},
	{"ln2lo", -2.12194440e-4},
	{"p0", 1.9875691500e-4},
	{"p1", 1.3981999507e-3},
	{"p2", 8.3334519073e-3},
	{"p3", 4.1665795894e-2},
	{"p4", 1.6666665459e-1},
	{"p5", 5.0000001201e-1},
}

// gelu writes geluTanhAVX2: GPT-2's GELU, 0.5x(1+tanh(u)) with
// u = √(2/π)(x+0.044715x³), computed in float32 as x/(1+exp(-2u)) (the
// same function; no cancellation for negative x), exp by Cephes' expf
// (range reduction by ln 2, a degree-6 polynomial, 2^n by adding n to the
// exponent); -2u is clamped to [-87, 88], where 1+exp(-2u) is 1 or x/(…)
// below float32's resolution of GELU.
func gelu(w *strings.Builder) {
	a := asm{w}
	k := vecConsts(w, "geluConsts", geluConsts)
	fmt.Fprintf(w, "\n// func geluTanhAVX2(dst, src *float32, n int)\n")
	fmt.Fprintf(w, "TEXT ·geluTanhAVX2(SB), NOSPLIT, $0-24\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ src+8(FP), SI")
	a.op("MOVQ n+16(FP), CX")
	a.op("SHRQ $3, CX")
	a.op("JZ done")
	a.op("VMOVUPS %s, Y8", k("one"))
	a.label("loop")
	a.op("VMOVUPS (SI), Y0")           // x
	a.op("VMULPS Y0, Y0, Y1")          // x²
	a.op("VMULPS %s, Y1, Y1", k("c"))  // 0.044715x²
	a.op("VADDPS Y8, Y1, Y1")          // 1+0.044715x²
	a.op("VMULPS %s, Y0, Y2", k("k"))  // -2√(2/π)·x
	a.op("VMULPS Y1, Y2, Y2")          // t = -2u
	a.op("VMAXPS %s, Y2, Y2", k("lo")) // clamp
	a.op("VMINPS %s, Y2, Y2", k("hi"))
	a.op("VMULPS %s, Y2, Y3", k("log2e"))       // t·log2 e
	a.op("VROUNDPS $0, Y3, Y3")                 // n, to nearest
	a.op("VFNMADD231PS %s, Y3, Y2", k("ln2hi")) // r = t - n·ln2
	a.op("VFNMADD231PS %s, Y3, Y2", k("ln2lo"))
	a.op("VMOVUPS %s, Y4", k("p0"))
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
		a.op("VFMADD213PS %s, Y2, Y4", k(p)) // Y4 = Y4·r + p
	}
	a.op("VMULPS Y2, Y2, Y5")      // r²
	a.op("VFMADD213PS Y2, Y5, Y4") // poly·r² + r
	a.op("VADDPS Y8, Y4, Y4")      // + 1: exp(r)
	a.op("VCVTPS2DQ Y3, Y3")       // n as an integer
	a.op("VPSLLD $23, Y3, Y3")
	a.op("VPADDD Y3, Y4, Y4") // exp(r)·2^n = exp(t)
	a.op("VADDPS Y8, Y4, Y4") // 1+exp(-2u)
	a.op("VDIVPS Y4, Y0, Y0") // x/(1+exp(-2u))
	a.op("VMOVUPS Y0, (DI)")
	a.op("ADDQ $32, SI")
	a.op("ADDQ $32, DI")
	a.op("DECQ CX")
	a.op("JNZ loop")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// geluErfConsts are the constants of geluErfAVX2.
var geluErfConsts = []vecConst{
	{"sign", float32(math.Copysign(0, -1))},
	{"amax", 20}, // Φ(-20) is 0 and Φ(20) is 1 in float32
	{"rsqrt2", float32(1 / math.Sqrt2)},
	{"half", 0.5},
	{"neghalf", -0.5},
	{"one", 1},
	{"elo", -104}, // e^-104 is 0 in float32 once multiplied by erfc's other factors
	{"log2e", float32(math.Log2E)},
	{"ln2hi", 0.693359375},
	{"ln2lo", -2.12194440e-4},
	{"p0", 1.9875691500e-4},
	{"p1", 1.3981999507e-3},
	{"p2", 8.3334519073e-3},
	{"p3", 4.1665795894e-2},
	{"p4", 1.6666665459e-1},
	{"p5", 5.0000001201e-1},
	{"bias", math.Float32frombits(127)}, // the exponent bias, as an int32 lane
	// Numerical Recipes' erfcc (Chebyshev; fractional error below 1.2e-7):
	// erfc(t) = τ·e^(-t²+P(τ)), τ = 1/(1+t/2), P = c0 + τ(c1 + … τ·c9).
	{"c9", 0.17087277},
	{"c8", -0.82215223},
	{"c7", 1.48851587},
	{"c6", -1.13520398},
	{"c5", 0.27886807},
	{"c4", -0.18628806},
	{"c3", 0.09678418},
	{"c2", 0.37409196},
	{"c1", 1.00002368},
	{"c0", -1.26551223},
}

// geluErf writes geluErfAVX2: BERT's GELU, x·Φ(x) with Φ the standard
// normal CDF, in float32. With a = min(|x|, 20) and t = a/√2, Φ(-a) =
// erfc(t)/2 = τ·e^P(τ)·e^(-a²/2)/2 (Numerical Recipes' erfcc), and Φ(x) is
// Φ(-a) for x < 0 and 1 - Φ(-a) otherwise, so the lower tail keeps its
// relative precision. a² = hi + lo is split exactly (lo by a fused
// multiply-add) and e^(-a²/2) taken as e^(-hi/2)·(1 - lo/2), so the
// square's rounding does not reach the result; e^(-hi/2) comes last, and
// 2^n is applied in two steps so that subnormal results are rounded once.
// e^y is Cephes' expf, as in geluTanhAVX2.
func geluErf(w *strings.Builder) {
	a := asm{w}
	k := vecConsts(w, "geluErfConsts", geluErfConsts)
	// exp sets Y[y] = e^Y[y] for Y[y] in [-104, 88], with scratch Y[n] and
	// Y[s] (Y15 holds 1).
	exp := func(y, n, s int) {
		a.op("VMULPS %s, Y%d, Y%d", k("log2e"), y, n)
		a.op("VROUNDPS $0, Y%d, Y%d", n, n) // n, to nearest
		a.op("VFNMADD231PS %s, Y%d, Y%d", k("ln2hi"), n, y)
		a.op("VFNMADD231PS %s, Y%d, Y%d", k("ln2lo"), n, y) // r = y - n·ln2
		a.op("VMOVUPS %s, Y%d", k("p0"), s)
		for _, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
			a.op("VFMADD213PS %s, Y%d, Y%d", k(p), y, s)
		}
		a.op("VMULPS Y%d, Y%d, Y14", y, y)
		a.op("VFMADD213PS Y%d, Y14, Y%d", y, s) // poly·r² + r
		a.op("VADDPS Y15, Y%d, Y%d", s, y)      // e^r
		a.op("VCVTPS2DQ Y%d, Y%d", n, n)
		a.op("VPSRAD $1, Y%d, Y%d", n, s)     // n1 = n>>1
		a.op("VPSUBD Y%d, Y%d, Y%d", s, n, n) // n2 = n - n1
		for _, r := range []int{s, n} {
			a.op("VPADDD %s, Y%d, Y%d", k("bias"), r, r)
			a.op("VPSLLD $23, Y%d, Y%d", r, r)
			a.op("VMULPS Y%d, Y%d, Y%d", r, y, y) // ·2^n1, then ·2^n2
		}
	}
	fmt.Fprintf(w, "\n// func geluErfAVX2(dst, src *float32, n int)\n")
	fmt.Fprintf(w, "TEXT ·geluErfAVX2(SB), NOSPLIT, $0-24\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ src+8(FP), SI")
	a.op("MOVQ n+16(FP), CX")
	a.op("SHRQ $3, CX")
	a.op("JZ done")
	a.op("VMOVUPS %s, Y15", k("one"))
	a.op("VMOVUPS %s, Y13", k("sign"))
	a.label("loop")
	a.op("VMOVUPS (SI), Y0")                   // x
	a.op("VANDNPS Y0, Y13, Y1")                // |x|
	a.op("VMINPS %s, Y1, Y1", k("amax"))       // a (20 for NaN; x·Φ is NaN then)
	a.op("VMULPS Y1, Y1, Y2")                  // hi = a² rounded
	a.op("VMOVAPS Y2, Y3")                     //
	a.op("VFMSUB231PS Y1, Y1, Y3")             // lo = a·a - hi, exactly
	a.op("VMULPS %s, Y1, Y4", k("rsqrt2"))     // t
	a.op("VFMADD132PS %s, Y15, Y4", k("half")) // 1 + t/2
	a.op("VDIVPS Y4, Y15, Y4")                 // τ
	a.op("VMOVUPS %s, Y5", k("c9"))
	for _, c := range []string{"c8", "c7", "c6", "c5", "c4", "c3", "c2", "c1", "c0"} {
		a.op("VFMADD213PS %s, Y4, Y5", k(c)) // P = P·τ + c
	}
	exp(5, 6, 7)                                  // e^P
	a.op("VMULPS Y4, Y5, Y5")                     // τ·e^P
	a.op("VFMADD132PS %s, Y15, Y3", k("neghalf")) // 1 - lo/2
	a.op("VMULPS Y3, Y5, Y5")                     //
	a.op("VMULPS %s, Y5, Y5", k("half"))          // erfcx part, halved
	a.op("VMULPS %s, Y2, Y2", k("neghalf"))       // -hi/2, exact
	a.op("VMAXPS %s, Y2, Y2", k("elo"))           //
	exp(2, 6, 7)                                  // e^(-hi/2)
	a.op("VMULPS Y2, Y5, Y5")                     // Φ(-a)
	a.op("VSUBPS Y5, Y15, Y6")                    // Φ(a) = 1 - Φ(-a)
	a.op("VBLENDVPS Y0, Y5, Y6, Y6")              // Φ(x): Φ(-a) where x's sign is set
	a.op("VMULPS Y6, Y0, Y0")                     // x·Φ(x)
	a.op("VMOVUPS Y0, (DI)")
	a.op("ADDQ $32, SI")
	a.op("ADDQ $32, DI")
	a.op("DECQ CX")
	a.op("JNZ loop")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// hsum writes the sum of the 8 lanes of Yi to Xi's lane 0 in the order of
// the pure-Go dot: ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)); Xt is scratch.
func hsum(a asm, i, t int) {
	a.op("VEXTRACTF128 $1, Y%d, X%d", i, t)
	a.op("VADDPS X%d, X%d, X%d", t, i, i) // s0+s4, s1+s5, s2+s6, s3+s7
	a.op("VMOVHLPS X%d, X%d, X%d", i, i, t)
	a.op("VADDPS X%d, X%d, X%d", t, i, i) // (s0+s4)+(s2+s6), (s1+s5)+(s3+s7)
	a.op("VMOVSHDUP X%d, X%d", i, t)
	a.op("VADDSS X%d, X%d, X%d", t, i, i)
}

// dots writes dotsAVX2: out[j] = Σ q[i]·k[j·ldk+i] over i < dh for j < n,
// dh a multiple of 8, with the arithmetic of the pure-Go dot: eight
// partial sums (the lanes), products rounded before they are added
// (VMULPS, VADDPS: no FMA), combined as hsum. Four keys at a time.
func dots(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func dotsAVX2(q, k *float32, ldk, n, dh int, out *float32)\n")
	fmt.Fprintf(w, "TEXT ·dotsAVX2(SB), NOSPLIT, $0-48\n")
	a.op("MOVQ q+0(FP), SI")
	a.op("MOVQ k+8(FP), DI")
	a.op("MOVQ ldk+16(FP), R8")
	a.op("MOVQ n+24(FP), CX")
	a.op("MOVQ dh+32(FP), R9")
	a.op("MOVQ out+40(FP), DX")
	a.op("SHLQ $2, R8")
	a.op("SHLQ $2, R9")
	a.op("LEAQ (R8)(R8*2), R10")
	a.label("quad")
	a.op("CMPQ CX, $4")
	a.op("JLT single")
	for i := range 4 {
		a.op("VXORPS Y%d, Y%d, Y%d", i, i, i)
	}
	a.op("XORQ AX, AX")
	a.label("qloop")
	a.op("VMOVUPS (SI)(AX*1), Y4")
	a.op("LEAQ (DI)(AX*1), BX")
	for i, addr := range []string{"(BX)", "(BX)(R8*1)", "(BX)(R8*2)", "(BX)(R10*1)"} {
		a.op("VMULPS %s, Y4, Y%d", addr, 5+i)
		a.op("VADDPS Y%d, Y%d, Y%d", 5+i, i, i)
	}
	a.op("ADDQ $32, AX")
	a.op("CMPQ AX, R9")
	a.op("JLT qloop")
	for i := range 4 {
		hsum(a, i, 5)
		a.op("VMOVSS X%d, %d(DX)", i, 4*i)
	}
	a.op("ADDQ $16, DX")
	a.op("LEAQ (DI)(R8*4), DI")
	a.op("SUBQ $4, CX")
	a.op("JMP quad")
	a.label("single")
	a.op("TESTQ CX, CX")
	a.op("JZ done")
	a.op("VXORPS Y0, Y0, Y0")
	a.op("XORQ AX, AX")
	a.label("sloop")
	a.op("VMOVUPS (SI)(AX*1), Y4")
	a.op("VMULPS (DI)(AX*1), Y4, Y5")
	a.op("VADDPS Y5, Y0, Y0")
	a.op("ADDQ $32, AX")
	a.op("CMPQ AX, R9")
	a.op("JLT sloop")
	hsum(a, 0, 5)
	a.op("VMOVSS X0, (DX)")
	a.op("ADDQ $4, DX")
	a.op("ADDQ R8, DI")
	a.op("DECQ CX")
	a.op("JMP single")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// mix writes mixAVX2: z[i] += w[j]·v[off[j]+i] for j < n in order, i < dh,
// dh a multiple of 32, each product rounded before it is added (VMULPS,
// VADDPS), as the pure-Go axpy: 32 values of z at a time in registers.
func mix(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func mixAVX2(z *float32, dh int, w *float32, off *int, n int, v *float32)\n")
	fmt.Fprintf(w, "TEXT ·mixAVX2(SB), NOSPLIT, $0-48\n")
	a.op("MOVQ z+0(FP), DX")
	a.op("MOVQ dh+8(FP), R9")
	a.op("MOVQ w+16(FP), SI")
	a.op("MOVQ off+24(FP), R11")
	a.op("MOVQ n+32(FP), CX")
	a.op("MOVQ v+40(FP), DI")
	a.op("SHLQ $2, R9")
	a.op("XORQ R12, R12")
	a.label("chunk")
	a.op("CMPQ R12, R9")
	a.op("JGE done")
	for i := range 4 {
		a.op("VMOVUPS %d(DX)(R12*1), Y%d", 32*i, i)
	}
	a.op("XORQ R13, R13")
	a.label("key")
	a.op("CMPQ R13, CX")
	a.op("JGE store")
	a.op("VBROADCASTSS (SI)(R13*4), Y4")
	a.op("MOVQ (R11)(R13*8), AX")
	a.op("LEAQ (DI)(AX*4), BX")
	a.op("ADDQ R12, BX")
	for i := range 4 {
		a.op("VMULPS %d(BX), Y4, Y%d", 32*i, 5+i)
		a.op("VADDPS Y%d, Y%d, Y%d", 5+i, i, i)
	}
	a.op("INCQ R13")
	a.op("JMP key")
	a.label("store")
	for i := range 4 {
		a.op("VMOVUPS Y%d, %d(DX)(R12*1)", i, 32*i)
	}
	a.op("ADDQ $128, R12")
	a.op("JMP chunk")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// prefetch writes prefetchRowsAVX2, which asks for rows rows of bytes bytes
// each, lds floats apart, to be brought into L2 (PREFETCHT1): the driver
// fetches the next block of w from memory while the kernels compute.
func prefetch(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func prefetchRowsAVX2(src *float32, lds, rows, bytes int)\n")
	fmt.Fprintf(w, "TEXT ·prefetchRowsAVX2(SB), NOSPLIT, $0-32\n")
	a.op("MOVQ src+0(FP), SI")
	a.op("MOVQ lds+8(FP), R8")
	a.op("MOVQ rows+16(FP), CX")
	a.op("MOVQ bytes+24(FP), R9")
	a.op("SHLQ $2, R8")
	a.op("TESTQ CX, CX")
	a.op("JZ done")
	a.label("row")
	a.op("XORQ AX, AX")
	a.label("line")
	a.op("PREFETCHT1 (SI)(AX*1)")
	a.op("ADDQ $64, AX")
	a.op("CMPQ AX, R9")
	a.op("JLT line")
	a.op("ADDQ R8, SI")
	a.op("DECQ CX")
	a.op("JNZ row")
	a.label("done")
	a.op("RET")
}

// expConsts are the constants of Go's math.Exp on amd64 (math/exp_amd64.s:
// Shibata's method from SLEEF, a Taylor series of exp(r/16) squared four
// times), each stored as a vector of 4 float64.
var expConsts = []struct {
	name string
	v    float64
}{
	{"log2e", 1.4426950408889634073599246810018920},
	{"ln2u", 0.69314718055966295651160180568695068359375},
	{"ln2l", 0.28235290563031577122588448175013436025525412068e-12},
	{"sixteenth", 0.0625},
	{"c64", 2.4801587301587301587e-5},
	{"c56", 1.9841269841269841270e-4},
	{"c48", 1.3888888888888888889e-3},
	{"c40", 8.3333333333333333333e-3},
	{"c32", 4.1666666666666666667e-2},
	{"c24", 1.6666666666666666667e-1},
	{"half", 0.5},
	{"one", 1.0},
	{"two", 2.0},
	{"neginf", math.Inf(-1)},
}

// expDiff writes expDiffAVX2: dst[i] = exp(float64(src[i]-m)) for i < n,
// n a multiple of 4, as softmax needs it, with the bits of Go's math.Exp on
// a CPU with FMA: the same operations as its FMA path, four lanes at a
// time. The caller recomputes, with math.Exp, the lanes whose argument is
// outside [-708, 709] (where math.Exp takes its denormal, overflow or
// non-finite paths), except -Inf, which gives 0 here as there.
func expDiff(w *strings.Builder) {
	a := asm{w}
	off := map[string]int{}
	for i, c := range expConsts {
		off[c.name] = 32 * i
		for l := range 4 {
			fmt.Fprintf(w, "DATA expConsts<>+%d(SB)/8, $0x%016x // %s\n", 32*i+8*l, math.Float64bits(c.v), c.name)
		}
	}
	fmt.Fprintf(w, "GLOBL expConsts<>(SB), RODATA|NOPTR, $%d\n", 32*len(expConsts))
	k := func(name string) string { return fmt.Sprintf("expConsts<>+%d(SB)", off[name]) }
	fmt.Fprintf(w, "\n// func expDiffAVX2(dst *float64, src *float32, m float32, n int)\n")
	fmt.Fprintf(w, "TEXT ·expDiffAVX2(SB), NOSPLIT, $0-32\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ src+8(FP), SI")
	a.op("VBROADCASTSS m+16(FP), X8")
	a.op("MOVQ n+24(FP), CX")
	a.op("SHRQ $2, CX")
	a.op("JZ done")
	a.label("loop")
	a.op("VMOVUPS (SI), X0")
	a.op("VSUBPS X8, X0, X0") // v - m in float32
	a.op("VCVTPS2PD X0, Y0")  // x
	a.op("VMULPD %s, Y0, Y1", k("log2e"))
	a.op("VCVTPD2DQY Y1, X2") // the exponent, rounded to nearest
	a.op("VCVTDQ2PD X2, Y1")
	a.op("VMOVUPD Y0, Y3")
	a.op("VFNMADD231PD %s, Y1, Y3", k("ln2u")) // x - e·ln2u
	a.op("VFNMADD231PD %s, Y1, Y3", k("ln2l")) // - e·ln2l
	a.op("VMULPD %s, Y3, Y3", k("sixteenth"))
	a.op("VMOVUPD %s, Y4", k("c64"))
	for _, c := range []string{"c56", "c48", "c40", "c32", "c24", "half", "one"} {
		a.op("VFMADD213PD %s, Y3, Y4", k(c)) // Y4 = Y3·Y4 + c
	}
	a.op("VMULPD Y4, Y3, Y3")
	for range 3 {
		a.op("VADDPD %s, Y3, Y4", k("two"))
		a.op("VMULPD Y4, Y3, Y3")
	}
	a.op("VADDPD %s, Y3, Y4", k("two"))
	a.op("VFMADD213PD %s, Y4, Y3", k("one")) // Y3 = Y4·Y3 + 1
	// ·2^e: the exponent's bits, (e+1023)<<52.
	a.op("VPMOVSXDQ X2, Y5")
	a.op("VPSLLQ $52, Y5, Y5")
	a.op("VPADDQ %s, Y5, Y5", k("one")) // the bits of 1.0 are 1023<<52
	a.op("VMULPD Y5, Y3, Y3")
	// exp(-Inf) = 0.
	a.op("VCMPPD $0, %s, Y0, Y6", k("neginf"))
	a.op("VANDNPD Y3, Y6, Y3")
	a.op("VMOVUPD Y3, (DI)")
	a.op("ADDQ $16, SI")
	a.op("ADDQ $32, DI")
	a.op("DECQ CX")
	a.op("JNZ loop")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}

// divide writes divToF32AVX2: dst[i] = float32(e[i]/s) for i < n, n a
// multiple of 4: one IEEE division and one rounding to float32 per value,
// as Go computes float32(e[i] / s).
func divide(w *strings.Builder) {
	a := asm{w}
	fmt.Fprintf(w, "\n// func divToF32AVX2(dst *float32, e *float64, s float64, n int)\n")
	fmt.Fprintf(w, "TEXT ·divToF32AVX2(SB), NOSPLIT, $0-32\n")
	a.op("MOVQ dst+0(FP), DI")
	a.op("MOVQ e+8(FP), SI")
	a.op("VBROADCASTSD s+16(FP), Y1")
	a.op("MOVQ n+24(FP), CX")
	a.op("SHRQ $2, CX")
	a.op("JZ done")
	a.label("loop")
	a.op("VMOVUPD (SI), Y0")
	a.op("VDIVPD Y1, Y0, Y0")
	a.op("VCVTPD2PSY Y0, X0")
	a.op("VMOVUPS X0, (DI)")
	a.op("ADDQ $32, SI")
	a.op("ADDQ $16, DI")
	a.op("DECQ CX")
	a.op("JNZ loop")
	a.label("done")
	a.op("VZEROUPPER")
	a.op("RET")
}
