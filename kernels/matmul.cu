// matmul.cu — fx's matrix product y = x·W + bias.
//
// y[m, n] = Σ_k x[m, k]·W(k, n) + (bias ? bias[n] : 0), x [M, K] row-major,
// W(k, n) = transW ? w[n·K + k] (w [N, K], nn.Linear) : w[k·N + n] (w [K, N],
// GPT-2's Conv1D); bias [N] or NULL; y [M, N]. Any M, N, K >= 1 (the host
// handles K = 0 and empty outputs); tiles past the edges are zero-filled.
//
// Reference: engine/cpu (matmul.go, sgemm.go), float32 with its own
// summation order; fx_matmul_f32 and fx_matmul_skinny_f32 use fused
// multiply-adds in order of k (per thread), so they agree with it to float32
// rounding of the sums. fx_matmul_tf32 rounds x and W to TF32 (10-bit
// mantissa): expect ~1e-3 relative differences, it is an opt-in fast path.
//
// Versions:
//   fx_matmul_f32         shared-memory tiled FP32: 128×128 block tile,
//                         BK = 8, 8×8 outputs per thread.
//   fx_matmul_skinny_f32  M <= 8 (a decode step): reads w once.
//   fx_matmul_tf32        tensor cores (mma.sync m16n8k8 TF32, FP32
//                         accumulate): 64×64 block tile, BK = 32.
#include "fx_cuda.h"

typedef unsigned long long u64;

#define MM_BM 128
#define MM_BN 128
#define MM_BK 8
#define MM_PAD 4  // row stride 132 floats: conflict-free transposing stores, 16-byte rows

typedef float fx_float4 __attribute__((ext_vector_type(4)));

// fx_lds4 loads 4 floats from p, which must be 16-byte aligned (rows of
// As and Bs are 528 bytes and every offset read is a multiple of 4 floats).
FX_DEV fx_float4 fx_lds4(const float* p) { return *(const fx_float4*)__builtin_assume_aligned(p, 16); }

// fx_fma4 returns a·b + c elementwise. Written on whole vectors so that
// clang keeps b's load from shared memory one ld.shared.v4 (it splits a
// vector load whose every use takes out one element); clang's CUDA mode
// contracts the product and sum into one fma.rn.f32 per element.
FX_DEV fx_float4 fx_fma4(float a, fx_float4 b, fx_float4 c) { return (fx_float4)(a) * b + c; }

// fx_mm_f32_load reads the 128×8 x tile and the 8×128 W tile at k0 into
// registers, 4 elements each per thread, zero past the edges. x: lanes run
// along k (8 per row); W [K, N]: lanes run along n; W [N, K]: along k.
FX_DEV void fx_mm_f32_load(float ra[4], float rb[4], const float* x, const float* w, int M, int N, int K,
                           int transW, int m0, int n0, int k0, int tid) {
#pragma unroll
  for (int it = 0; it < 4; it++) {
    int e = tid + 256 * it;
    int gm = m0 + (e >> 3), gk = k0 + (e & 7);
    ra[it] = (gm < M && gk < K) ? x[(u64)gm * K + gk] : 0.0f;
  }
#pragma unroll
  for (int it = 0; it < 4; it++) {
    int e = tid + 256 * it;
    if (!transW) {
      int gk = k0 + (e >> 7), gn = n0 + (e & 127);
      rb[it] = (gk < K && gn < N) ? w[(u64)gk * N + gn] : 0.0f;
    } else {
      int gn = n0 + (e >> 3), gk = k0 + (e & 7);
      rb[it] = (gk < K && gn < N) ? w[(u64)gn * K + gk] : 0.0f;
    }
  }
}

// fx_mm_f32_store writes the registers fx_mm_f32_load filled to As[k][m]
// and Bs[k][n] (x transposed; W as loaded).
FX_DEV void fx_mm_f32_store(float (*As)[MM_BM + MM_PAD], float (*Bs)[MM_BN + MM_PAD], const float ra[4],
                            const float rb[4], int transW, int tid) {
#pragma unroll
  for (int it = 0; it < 4; it++) {
    int e = tid + 256 * it;
    As[e & 7][e >> 3] = ra[it];
    if (!transW)
      Bs[e >> 7][e & 127] = rb[it];
    else
      Bs[e & 7][e >> 3] = rb[it];
  }
}

// fx_matmul_f32: block 256 threads, grid (ceil(N/128), ceil(M/128)).
// Thread (ty, tx) = (tid/16, tid%16) computes rows {4ty..4ty+3, 64+4ty..64+4ty+3}
// and columns {4tx..4tx+3, 64+4tx..64+4tx+3} of the block's tile, each
// output summed over k in order with fused multiply-adds. Shared memory
// holds the tile's x columns transposed (As[k][m]) and W (Bs[k][n]), both
// layouts of w transposed or copied on the way in; the next k-tile is read
// from global memory into registers while the current one is multiplied.
extern "C" __global__ __launch_bounds__(256) void fx_matmul_f32(float* y, const float* x, const float* w,
                                                                const float* bias, int M, int N, int K,
                                                                int transW) {
  __shared__ __attribute__((aligned(16))) float As[MM_BK][MM_BM + MM_PAD];
  __shared__ __attribute__((aligned(16))) float Bs[MM_BK][MM_BN + MM_PAD];
  if (M <= 0 || N <= 0 || K <= 0 || bdim_x() != 256) return;
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * MM_BM, n0 = (int)bid_x() * MM_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  const int tx = tid & 15, ty = tid >> 4;

  // acc[i][h] holds row i's 4 columns of half h (columns 4tx.. or 64+4tx..),
  // as vectors so that the loads of B stay 16-byte ld.shared.v4.
  fx_float4 acc[8][2];
#pragma unroll
  for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = (fx_float4)(0.0f);

  float ra[4], rb[4];
  fx_mm_f32_load(ra, rb, x, w, M, N, K, transW, m0, n0, 0, tid);
  for (int k0 = 0; k0 < K; k0 += MM_BK) {
    fx_mm_f32_store(As, Bs, ra, rb, transW, tid);
    sync_threads();
    if (k0 + MM_BK < K) fx_mm_f32_load(ra, rb, x, w, M, N, K, transW, m0, n0, k0 + MM_BK, tid);
#pragma unroll
    for (int kk = 0; kk < MM_BK; kk++) {
      const fx_float4 a0 = fx_lds4(&As[kk][4 * ty]);
      const fx_float4 a1 = fx_lds4(&As[kk][64 + 4 * ty]);
      const fx_float4 b0 = fx_lds4(&Bs[kk][4 * tx]);
      const fx_float4 b1 = fx_lds4(&Bs[kk][64 + 4 * tx]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
#pragma unroll
      for (int i = 0; i < 8; i++) {
        acc[i][0] = fx_fma4(a[i], b0, acc[i][0]);
        acc[i][1] = fx_fma4(a[i], b1, acc[i][1]);
      }
    }
    sync_threads();  // the tile is read before the next one is stored
  }

#pragma unroll
  for (int i = 0; i < 8; i++) {
    int gm = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
    if (gm >= M) continue;
    float* yr = y + (u64)gm * N;
    const float v[8] = {acc[i][0].x, acc[i][0].y, acc[i][0].z, acc[i][0].w,
                        acc[i][1].x, acc[i][1].y, acc[i][1].z, acc[i][1].w};
#pragma unroll
    for (int j = 0; j < 8; j++) {
      int gn = n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
      if (gn < N) yr[gn] = bias ? v[j] + bias[gn] : v[j];
    }
  }
}

#define SK_MAXM 8

// fx_matmul_skinny_f32: for M <= 8 (rows m >= M are not touched; M > 8 does
// nothing).
//   transW == 0: one thread per column n (w read once, coalesced along n),
//     all M rows in registers; block 256, grid ceil(N/256).
//   transW == 1: one warp per column n, lanes striding over k, warp-shuffle
//     reduction; block 256 (8 warps), grid ceil(N/8).
extern "C" __global__ void fx_matmul_skinny_f32(float* y, const float* x, const float* w, const float* bias, int M,
                                                int N, int K, int transW) {
  if (M <= 0 || M > SK_MAXM || N <= 0 || K <= 0) return;
  float acc[SK_MAXM];
#pragma unroll
  for (int m = 0; m < SK_MAXM; m++) acc[m] = 0.0f;
  if (!transW) {
    unsigned n = bid_x() * bdim_x() + tid_x();
    if (n >= (unsigned)N) return;
    for (int k = 0; k < K; k++) {
      float wv = w[(u64)k * N + n];
#pragma unroll
      for (int m = 0; m < SK_MAXM; m++)
        if (m < M) acc[m] = __builtin_fmaf(x[(u64)m * K + k], wv, acc[m]);
    }
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++)
      if (m < M) y[(u64)m * N + n] = bias ? acc[m] + bias[n] : acc[m];
    return;
  }
  // A whole warp shares n, so the early return and the shuffles are
  // warp-uniform.
  unsigned n = (bid_x() * bdim_x() + tid_x()) >> 5;
  unsigned lane = lane_id();
  if (n >= (unsigned)N) return;
  const float* wr = w + (u64)n * K;
  for (int k = (int)lane; k < K; k += 32) {
    float wv = wr[k];
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++)
      if (m < M) acc[m] = __builtin_fmaf(x[(u64)m * K + k], wv, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < SK_MAXM; m++)
    if (m < M) acc[m] = warp_sum(acc[m]);
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++)
      if (m < M) y[(u64)m * N + n] = bias ? acc[m] + bias[n] : acc[m];
  }
}

#define TC_BM 64
#define TC_BN 64
#define TC_BK 32
#define TC_LDA (TC_BK + 4)   // As[m][k], stride 36: fragment reads hit 32 banks
#define TC_LDB (TC_BN + 8)   // Bs[k][n], stride 72 (transW == 0)
#define TC_LDBT (TC_BK + 4)  // Bs[n][k], stride 36 (transW == 1)

// fx_mm_tf32_load reads the 64×32 x tile and the 32×64 W tile at k0 into
// registers, 16 elements each per thread, zero past the edges. x: a warp
// reads one row (32 k); W [K, N]: lanes run along n; W [N, K]: a warp reads
// one row.
FX_DEV void fx_mm_tf32_load(float ra[16], float rb[16], const float* x, const float* w, int M, int N, int K,
                            int transW, int m0, int n0, int k0, int tid) {
#pragma unroll
  for (int it = 0; it < 16; it++) {
    int e = tid + 128 * it;
    int gm = m0 + (e >> 5), gk = k0 + (e & 31);
    ra[it] = (gm < M && gk < K) ? x[(u64)gm * K + gk] : 0.0f;
  }
#pragma unroll
  for (int it = 0; it < 16; it++) {
    int e = tid + 128 * it;
    if (!transW) {
      int gk = k0 + (e >> 6), gn = n0 + (e & 63);
      rb[it] = (gk < K && gn < N) ? w[(u64)gk * N + gn] : 0.0f;
    } else {
      int gn = n0 + (e >> 5), gk = k0 + (e & 31);
      rb[it] = (gk < K && gn < N) ? w[(u64)gn * K + gk] : 0.0f;
    }
  }
}

// fx_mm_tf32_store rounds the registers fx_mm_tf32_load filled to TF32 and
// writes them to As[m][k] and to Bs as [k][n] (W [K, N]) or [n][k] (W [N, K]).
FX_DEV void fx_mm_tf32_store(unsigned* As, unsigned* Bs, const float ra[16], const float rb[16], int transW,
                             int tid) {
#pragma unroll
  for (int it = 0; it < 16; it++) {
    int e = tid + 128 * it;
    As[(e >> 5) * TC_LDA + (e & 31)] = fx_tf32(ra[it]);
    if (!transW)
      Bs[(e >> 6) * TC_LDB + (e & 63)] = fx_tf32(rb[it]);
    else
      Bs[(e >> 5) * TC_LDBT + (e & 31)] = fx_tf32(rb[it]);
  }
}

// fx_matmul_tf32: block 128 threads (4 warps), grid (ceil(N/64), ceil(M/64)).
// Warp w computes the 32×32 sub-tile at rows 32·(w/2), columns 32·(w%2) of
// the block's 64×64 tile as 2×4 mma tiles of 16×8, over k in steps of 8.
// Tiles are staged in shared memory already rounded to TF32 (cvt.rna):
// As[m][k] (stride 36) and B as Bs[k][n] (stride 72) for w [K, N], or as
// Bs[n][k] (stride 36) for w [N, K] — in each case loads from global run
// along the contiguous dimension and the mma fragment reads are free of
// bank conflicts. Both B layouts hold 32·72 = 64·36 words. The next k-tile
// is read from global memory into registers while the current one is
// multiplied.
extern "C" __global__ __launch_bounds__(128) void fx_matmul_tf32(float* y, const float* x, const float* w,
                                                                 const float* bias, int M, int N, int K,
                                                                 int transW) {
  __shared__ unsigned As[TC_BM * TC_LDA];
  __shared__ unsigned Bs[TC_BK * TC_LDB];
  if (M <= 0 || N <= 0 || K <= 0 || bdim_x() != 128) return;
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * TC_BM, n0 = (int)bid_x() * TC_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  const int warp = tid >> 5, lane = tid & 31;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  const int g = lane >> 2, t = lane & 3;
  // B element (k, n) of the tile is Bs[k·bk + n·bn].
  const int bk = transW ? 1 : TC_LDB, bn = transW ? TC_LDBT : 1;

  float acc[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int c = 0; c < 4; c++) acc[mi][ni][c] = 0.0f;

  float ra[16], rb[16];
  fx_mm_tf32_load(ra, rb, x, w, M, N, K, transW, m0, n0, 0, tid);
  for (int k0 = 0; k0 < K; k0 += TC_BK) {
    fx_mm_tf32_store(As, Bs, ra, rb, transW, tid);
    sync_threads();
    if (k0 + TC_BK < K) fx_mm_tf32_load(ra, rb, x, w, M, N, K, transW, m0, n0, k0 + TC_BK, tid);
#pragma unroll
    for (int ks = 0; ks < TC_BK; ks += 8) {
      unsigned a[2][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; mi++) {
        const unsigned* ap = As + (wm + mi * 16 + g) * TC_LDA + ks + t;
        a[mi][0] = ap[0];                // (g,   t)
        a[mi][1] = ap[8 * TC_LDA];       // (g+8, t)
        a[mi][2] = ap[4];                // (g,   t+4)
        a[mi][3] = ap[8 * TC_LDA + 4];   // (g+8, t+4)
      }
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const unsigned* bp = Bs + (ks + t) * bk + (wn + ni * 8 + g) * bn;
        b[ni][0] = bp[0];       // (k = t,   n = g)
        b[ni][1] = bp[4 * bk];  // (k = t+4, n = g)
      }
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) fx_mma_tf32(acc[mi][ni], a[mi], b[ni]);
    }
    sync_threads();
  }

#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        int gm = m0 + wm + mi * 16 + g + (c >= 2 ? 8 : 0);
        int gn = n0 + wn + ni * 8 + 2 * t + (c & 1);
        if (gm < M && gn < N) y[(u64)gm * N + gn] = bias ? acc[mi][ni][c] + bias[gn] : acc[mi][ni][c];
      }
}
