// matmul_bf16.cu — fx's matrix product y = x·W + bias on BF16 tensor cores.
//
// y[m, n] = Σ_k bf16(x[m, k])·bf16(W(k, n)) + (bias ? bias[n] : 0), the
// products exact and summed in FP32 (mma.sync m16n8k16, .bf16 operands,
// .f32 accumulate); bf16() rounds to nearest, ties to even (cvt.rn). x
// [M, K] row-major FP32, as every activation; W is given once, converted:
// fx_bf16_pack_weight turns an FP32 weight, w [K, N] (GPT-2's Conv1D) or
// [N, K] (nn.Linear, transW), into wb [N, Kp] of bfloat16 bits, k
// contiguous, Kp = K rounded up to a multiple of 8 with zeros after K, so
// that every row of wb is 16-byte aligned and both layouts of w are one
// layout here. engine/gpu (matmul_bf16.go) converts each weight on its
// first BF16 product and keeps the result while the weight lives.
//
// Reference: engine/cpu's MatMul of the same inputs; with inputs rounded
// to BF16 (8-bit mantissa) expect ~4e-3 relative differences: an opt-in
// fast path, like TF32. kernels/emu/bf16check.cpp checks the kernels
// against the product of the BF16-rounded inputs in long double (exact up
// to FP32 accumulation) and the rounding against weights.Float32ToBF16's
// rule.
//
// Split-K as in matmul.cu: block z of a grid with splits > 1 sums chunk z
// of K into part[z, m, n] without the bias, and matmul.cu's
// fx_matmul_splitk_reduce adds the chunks in order and the bias.
//
// Versions:
//   fx_bf16_pack_weight  the one-time conversion of a weight.
//   fx_matmul_bf16       v1: 128×128 block tile, 8 warps of 64×32 (4×4 mma
//                        tiles of 16×8), BK = 32 (two k16 steps), three
//                        cp.async stages in dynamic shared memory; x staged
//                        as FP32 and rounded to BF16 as fragments are read
//                        (cvt.rn.bf16x2), wb staged as BF16. The layout of
//                        fx_matmul_tf32 (matmul.cu) with half the bytes of
//                        W per k and twice the k per mma.
#include "fx_cuda.h"

typedef unsigned long long u64;
typedef float fx_bf_float2 __attribute__((ext_vector_type(2)));

// fx_bf_split_range returns the k range [*kb, *ke) of split s of kchunk (a
// kchunk <= 0 means one split over all of K); false when it is empty.
FX_DEV bool fx_bf_split_range(int K, int kchunk, int s, int* kb, int* ke) {
  if (kchunk <= 0 || kchunk > K) kchunk = K;
  u64 b = (u64)s * (u64)kchunk;
  if (b >= (u64)K) return false;
  *kb = (int)b;
  *ke = K - *kb < kchunk ? K : *kb + kchunk;
  return true;
}

// ---------------------------------------------------------------------------
// Weight conversion.

#define BP_TILE 32

// fx_bf16_pack_weight: wb[n·Kp + k] = bf16(W(k, n)) for k < K, 0 for K <= k
// < Kp, n < N; W(k, n) = transW ? w[n·K + k] : w[k·N + n]. Block 256
// threads, grid (ceil(Kp/32), ceil(N/32)): a 32×32 tile through shared
// memory, so that reads of w and writes of wb both run along their
// contiguous dimension.
extern "C" __global__ __launch_bounds__(256) void fx_bf16_pack_weight(unsigned short* wb, const float* w, int K,
                                                                      int N, int Kp, int transW) {
  __shared__ unsigned short tile[BP_TILE][BP_TILE + 2];  // tile[n][k]
  if (K <= 0 || N <= 0 || Kp < K || bdim_x() != 256) return;
  const int k0 = (int)bid_x() * BP_TILE, n0 = (int)bid_y() * BP_TILE;
  const int tid = (int)tid_x();
  if (k0 >= Kp || n0 >= N) return;  // the whole block
#pragma unroll
  for (int it = 0; it < 4; it++) {
    int e = tid + 256 * it, r = e >> 5, c = e & 31;
    if (!transW) {  // w [K, N]: rows of k, lanes along n
      int gk = k0 + r, gn = n0 + c;
      tile[c][r] = (gk < K && gn < N) ? fx_bf16(w[(u64)gk * N + gn]) : 0;
    } else {  // w [N, K]: rows of n, lanes along k
      int gn = n0 + r, gk = k0 + c;
      tile[r][c] = (gk < K && gn < N) ? fx_bf16(w[(u64)gn * K + gk]) : 0;
    }
  }
  sync_threads();
#pragma unroll
  for (int it = 0; it < 4; it++) {
    int e = tid + 256 * it, r = e >> 5, c = e & 31;
    int gn = n0 + r, gk = k0 + c;
    if (gn < N && gk < Kp) wb[(u64)gn * Kp + gk] = tile[r][c];
  }
}

// ---------------------------------------------------------------------------
// The product.

#define BB_BM 128
#define BB_BN 128
#define BB_BK 32
#define BB_STAGES 3
#define BB_LDA 40                          // As[m][k] floats: 64-bit fragment reads hit 32 banks per half-warp
#define BB_LDB 40                          // Bs[n][k] bf16s (20 words): 32-bit fragment reads hit 32 banks
#define BB_A_WORDS (BB_BM * BB_LDA)        // 5120
#define BB_B_WORDS (BB_BN * BB_LDB / 2)    // 2560
#define BB_STAGE_WORDS (BB_A_WORDS + BB_B_WORDS)
// FX_MATMUL_BF16_SHARED is the dynamic shared memory fx_matmul_bf16 needs:
// 92160 bytes (engine/gpu/matmul_bf16.go's bf16SharedBytes).
#define FX_MATMUL_BF16_SHARED (BB_STAGES * BB_STAGE_WORDS * 4)

// fx_bb_load queues the copies of k-tile k0 — the 128×32 x tile (FP32)
// and the 128×32 wb tile (BF16, [n][k]) — into As and Bs (one stage),
// zero-filled past the edges (rows >= M, columns >= N, k >= ke). With avec
// (x 16-byte aligned; K and the chunk's ends multiples of 4) x's rows go
// in 16-byte copies, 8 per row, else in 4-byte ones. wb's rows always go
// in 16-byte copies of 8 k, 4 per row: its rows are 16-byte aligned, and a
// copy that starts below ke ends below Kp; the values it holds past ke
// meet zeros of x (a chunk's end is a multiple of 32 unless it is K, past
// which wb holds zeros).
FX_DEV void fx_bb_load(float* As, unsigned short* Bs, const float* x, const unsigned short* wb, int M, int N, int K,
                       int Kp, bool avec, int m0, int n0, int k0, int ke, int tid) {
  if (avec) {
#pragma unroll
    for (int it = 0; it < 4; it++) {
      int e = tid + 256 * it, r = e >> 3, kc = (e & 7) * 4;
      int gm = m0 + r, gk = k0 + kc;
      bool ok = gm < M && gk < ke;
      fx_cp_async16(As + r * BB_LDA + kc, ok ? x + (u64)gm * K + gk : x, ok ? 16 : 0);
    }
  } else {
#pragma unroll 4
    for (int it = 0; it < 16; it++) {
      int e = tid + 256 * it, r = e >> 5, kk = e & 31;
      int gm = m0 + r, gk = k0 + kk;
      bool ok = gm < M && gk < ke;
      fx_cp_async4(As + r * BB_LDA + kk, ok ? x + (u64)gm * K + gk : x, ok ? 4 : 0);
    }
  }
#pragma unroll
  for (int it = 0; it < 2; it++) {
    int e = tid + 256 * it, r = e >> 2, kc = (e & 3) * 8;
    int gn = n0 + r, gk = k0 + kc;
    bool ok = gn < N && gk < ke;
    fx_cp_async16(Bs + r * BB_LDB + kc, ok ? wb + (u64)gn * Kp + gk : wb, ok ? 16 : 0);
  }
}

// fx_matmul_bf16: block 256 threads (8 warps), grid (ceil(N/128),
// ceil(M/128), splits), FX_MATMUL_BF16_SHARED bytes of dynamic shared
// memory (the host raises the kernel's limit above 48 KB once, at load).
// wb [N, Kp] from fx_bf16_pack_weight (Kp >= K, a multiple of 8; wb
// 16-byte aligned). Block z sums over chunk z of K, k in [z·kchunk,
// min(K, (z+1)·kchunk)) (kchunk <= 0: all of K; else a multiple of 32),
// into y + z·M·N: with splits > 1 y is the split-K workspace part
// [splits, M, N] and bias must be NULL (fx_matmul_splitk_reduce adds it).
// Warp w computes the 64×32 sub-tile at rows 64·(w/4), columns 32·(w%4)
// of the block's 128×128 tile as 4×4 mma tiles of 16×8, over k in steps
// of 16. The k-tiles (BK = 32) go through three shared-memory stages, each
// filled by cp.async two tiles ahead of its use, as in fx_matmul_tf32:
// As[m][k] FP32 (stride 40) and Bs[n][k] BF16 (stride 40). x's fragments
// are rounded to BF16 in pairs as they are read. One barrier per k-tile.
// Each output's products are accumulated in order of k (in the mma's FP32
// accumulate). At most 128 registers per thread (launch bounds 256 × 2).
extern "C" __global__ __launch_bounds__(256, 2) void fx_matmul_bf16(float* y, const float* x,
                                                                 const unsigned short* wb, const float* bias, int M,
                                                                 int N, int K, int Kp, int kchunk) {
  FX_DYN_SHARED(float, smem);
  if (M <= 0 || N <= 0 || K <= 0 || Kp < K || (Kp & 7) != 0 || bdim_x() != 256) return;
  int kb, ke;
  if (!fx_bf_split_range(K, kchunk, (int)bid_z(), &kb, &ke)) return;  // the whole block
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * BB_BM, n0 = (int)bid_x() * BB_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  y += (u64)bid_z() * M * N;
  const int warp = tid >> 5, lane = tid & 31;
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
  const int g = lane >> 2, t = lane & 3;
  const bool avec = ((u64)x & 15) == 0 && (K & 3) == 0 && ((kb | ke) & 3) == 0;

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int c = 0; c < 4; c++) acc[mi][ni][c] = 0.0f;

  const int tiles = (ke - kb + BB_BK - 1) / BB_BK;
  // Prologue: tiles 0 .. STAGES-2, one commit group each (empty past the
  // last tile, so that the group count stays in step with the tiles).
#pragma unroll
  for (int st = 0; st < BB_STAGES - 1; st++) {
    if (st < tiles)
      fx_bb_load(smem + st * BB_STAGE_WORDS, (unsigned short*)(smem + st * BB_STAGE_WORDS + BB_A_WORDS), x, wb, M, N,
                 K, Kp, avec, m0, n0, kb + st * BB_BK, ke, tid);
    fx_cp_async_commit();
  }
  for (int kt = 0; kt < tiles; kt++) {
    fx_cp_async_wait<BB_STAGES - 2>();  // this thread's copies of tile kt have landed
    sync_threads();                     // everyone's have; everyone is done with tile kt-1
    const int nt = kt + BB_STAGES - 1;  // refill tile kt-1's stage with tile nt
    if (nt < tiles) {
      const int st = nt % BB_STAGES;
      fx_bb_load(smem + st * BB_STAGE_WORDS, (unsigned short*)(smem + st * BB_STAGE_WORDS + BB_A_WORDS), x, wb, M,
                 N, K, Kp, avec, m0, n0, kb + nt * BB_BK, ke, tid);
    }
    fx_cp_async_commit();
    const float* As = smem + (kt % BB_STAGES) * BB_STAGE_WORDS;
    const unsigned* Bw = (const unsigned*)(As + BB_A_WORDS);  // Bs as words: (n, k pair) at n·20 + k/2
#pragma unroll
    for (int ks = 0; ks < BB_BK; ks += 16) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; mi++) {
        const float* ap = As + (wm + mi * 16 + g) * BB_LDA + ks + 2 * t;
        const fx_bf_float2 v0 = *(const fx_bf_float2*)__builtin_assume_aligned(ap, 8);               // (g,   2t)
        const fx_bf_float2 v1 = *(const fx_bf_float2*)__builtin_assume_aligned(ap + 8 * BB_LDA, 8);  // (g+8, 2t)
        const fx_bf_float2 v2 = *(const fx_bf_float2*)__builtin_assume_aligned(ap + 8, 8);           // (g,   2t+8)
        const fx_bf_float2 v3 = *(const fx_bf_float2*)__builtin_assume_aligned(ap + 8 * BB_LDA + 8, 8);
        a[mi][0] = fx_bf16x2(v0.x, v0.y);
        a[mi][1] = fx_bf16x2(v1.x, v1.y);
        a[mi][2] = fx_bf16x2(v2.x, v2.y);
        a[mi][3] = fx_bf16x2(v3.x, v3.y);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const unsigned* bp = Bw + (wn + ni * 8 + g) * (BB_LDB / 2) + ks / 2 + t;
        b[ni][0] = bp[0];  // (k = 2t..2t+1,   n = g)
        b[ni][1] = bp[4];  // (k = 2t+8..2t+9, n = g)
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) fx_mma_bf16(acc[mi][ni], a[mi], b[ni]);
    }
  }
  fx_cp_async_wait<0>();  // only empty groups are left

#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        int gm = m0 + wm + mi * 16 + g + (c >= 2 ? 8 : 0);
        int gn = n0 + wn + ni * 8 + 2 * t + (c & 1);
        if (gm < M && gn < N) y[(u64)gm * N + gn] = bias ? acc[mi][ni][c] + bias[gn] : acc[mi][ni][c];
      }
}
