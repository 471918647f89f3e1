// matmul.cu — fx's matrix product y = act(x·W + bias).
//
// y[m, n] = act(Σ_k x[m, k]·W(k, n) + (bias ? bias[n] : 0)), x [M, K] row-major,
// W(k, n) = transW ? w[n·K + k] (w [N, K], nn.Linear) : w[k·N + n] (w [K, N],
// GPT-2's Conv1D); bias [N] or NULL; y [M, N]. Any M, N, K >= 1 (the host
// handles K = 0 and empty outputs); tiles past the edges are zero-filled.
// act is the epilogue's activation (fx_gelu.h's FX_ACT_*: none, or GELU's
// tanh or erf form), applied by the kernel that writes y: a tiled product
// kernel (to its outputs once stored, fx_act_at), or with partial sums
// (split-K, and always the skinny kernel) fx_matmul_splitk_reduce_act. It
// is fx_gelu.h's GELU, the elementwise kernel's, on the same float32 value,
// so MatMulGELU has the bits of MatMul then GELU.
//
// Reference: engine/cpu (matmul.go, sgemm.go), float32 with its own
// summation order. The FP32 kernels use fused multiply-adds in a fixed order
// (given with each kernel), so they agree with it to float32 rounding of the
// sums and give the same bits on every run. The TF32 kernels round x and W to
// TF32 (10-bit mantissa, cvt.rna): expect ~1e-3 relative differences, it is
// an opt-in fast path.
//
// Split-K: a product whose output tiles are too few to fill the GPU splits K
// into chunks of kchunk (the last one shorter): launch s of the grid's z (or
// y, for the skinny kernel) dimension writes the chunk's sum to
// part[s, m, n] (part [splits, M, N], splits = ceil(K/kchunk)), and
// fx_matmul_splitk_reduce adds the chunks in order s = 0, 1, … and the bias.
// No atomics: the result is deterministic for a given kchunk.
//
// Versions (engine/gpu/matmul.go, planMatMul, picks one from M, N, K and the
// SM count):
//   fx_matmul_skinny_partial  M <= 8 (a decode step): split-K partial sums,
//                             w read once with 16-byte loads.
//   fx_matmul_splitk_reduce   the sum over chunks, plus the bias
//   (and _act)                (and then act).
//   fx_matmul_f32             FP32, 128×128 block tile, BK = 8, 8×8 outputs
//                             per thread: large products.
//   fx_matmul_f32_64          FP32, 64×64 block tile, BK = 16, 8×4 outputs
//                             per thread, optional split-K: mid-size M.
//   fx_matmul_tf32            tensor cores (mma.sync m16n8k8 TF32, FP32
//                             accumulate): 128×128 block tile, 8 warps of
//                             64×32, BK = 32, three cp.async stages in
//                             dynamic shared memory.
//   fx_matmul_tf32_64         tensor cores, 64×64 block tile, 4 warps of
//                             32×32, BK = 32, optional split-K: small grids.
#include "fx_cuda.h"
#include "fx_gelu.h"

typedef unsigned long long u64;

typedef float fx_float4 __attribute__((ext_vector_type(4)));

// fx_lds4 loads 4 floats from p, which must be 16-byte aligned (rows of
// As and Bs are multiples of 16 bytes and every offset read is a multiple
// of 4 floats).
FX_DEV fx_float4 fx_lds4(const float* p) { return *(const fx_float4*)__builtin_assume_aligned(p, 16); }

// fx_ldg4 loads 4 floats from global memory at p, 16-byte aligned (the
// callers check the base pointer and the row length at run time).
FX_DEV fx_float4 fx_ldg4(const float* p) { return *(const fx_float4*)__builtin_assume_aligned(p, 16); }

// fx_aligned16 reports whether p is 16-byte aligned.
FX_DEV bool fx_aligned16(const void* p) { return ((u64)p & 15) == 0; }

// fx_fma4 returns a·b + c elementwise. Written on whole vectors so that
// clang keeps b's load from shared memory one ld.shared.v4 (it splits a
// vector load whose every use takes out one element); clang's CUDA mode
// contracts the product and sum into one fma.rn.f32 per element.
FX_DEV fx_float4 fx_fma4(float a, fx_float4 b, fx_float4 c) { return (fx_float4)(a) * b + c; }

// fx_dot4_acc returns acc + a.x·b.x + a.y·b.y + a.z·b.z + a.w·b.w as four
// fused multiply-adds in that order.
FX_DEV float fx_dot4_acc(fx_float4 a, fx_float4 b, float acc) {
  acc = __builtin_fmaf(a.x, b.x, acc);
  acc = __builtin_fmaf(a.y, b.y, acc);
  acc = __builtin_fmaf(a.z, b.z, acc);
  return __builtin_fmaf(a.w, b.w, acc);
}

// fx_split_range returns the k range [*kb, *ke) of split s of kchunk (a
// kchunk <= 0 means one split over all of K); false when it is empty.
FX_DEV bool fx_split_range(int K, int kchunk, int s, int* kb, int* ke) {
  if (kchunk <= 0 || kchunk > K) kchunk = K;
  u64 b = (u64)s * (u64)kchunk;
  if (b >= (u64)K) return false;
  *kb = (int)b;
  *ke = K - *kb < kchunk ? K : *kb + kchunk;
  return true;
}

// fx_act_at applies act in place to y[gm, n] (y [M, N]) when it is inside
// the output. The product kernels store their outputs, then each thread
// rereads the ones it stored (its own writes, from L1 or L2) and applies
// the activation in a loop kept rolled: GELU is long, and unrolled over a
// thread's 32 or 64 accumulators it would spill them to local memory.
FX_DEV void fx_act_at(float* y, int M, int N, int gm, int gn, int act) {
  if (gm < M && gn < N) {
    float* p = y + (u64)gm * N + gn;
    *p = fx_activate(*p, act);
  }
}

// ---------------------------------------------------------------------------
// Split-K reduction.

// fx_splitk_reduce: y[m, n] = act((part[0, m, n] + part[1, m, n] + … +
// part[splits-1, m, n]) + bias[n]), summed in that order, bias NULL or
// [N]. part [splits, M, N]; y may not alias part. Grid-stride over the M·N
// outputs (< 2^31).
FX_DEV void fx_splitk_reduce(float* y, const float* part, const float* bias, int M, int N, int splits, int act) {
  if (M <= 0 || N <= 0 || splits <= 0) return;
  const unsigned MN = (unsigned)M * (unsigned)N;
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < MN; i += gdim_x() * bdim_x()) {
    const float* p = part + i;
    float s = p[0];
    // Unrolled so that 16 loads are in flight ahead of the adds, which
    // stay in order.
#pragma unroll 16
    for (int sp = 1; sp < splits; sp++) s += p[(u64)sp * MN];
    if (bias) s += bias[i % (unsigned)N];
    y[i] = act == FX_ACT_NONE ? s : fx_activate(s, act);
  }
}

// fx_matmul_splitk_reduce: fx_splitk_reduce without an activation. Block
// 256, any grid.
extern "C" __global__ void fx_matmul_splitk_reduce(float* y, const float* part, const float* bias, int M, int N,
                                                   int splits) {
  fx_splitk_reduce(y, part, bias, M, N, splits, FX_ACT_NONE);
}

// fx_matmul_splitk_reduce_act: fx_splitk_reduce with the activation act
// (FX_ACT_*), the epilogue of a split-K MatMulGELU. Block 256, any grid.
extern "C" __global__ void fx_matmul_splitk_reduce_act(float* y, const float* part, const float* bias, int M, int N,
                                                       int splits, int act) {
  fx_splitk_reduce(y, part, bias, M, N, splits, act);
}

// ---------------------------------------------------------------------------
// Skinny products (M <= 8, a decode step): split-K partial sums that read w
// once, with 16-byte loads where the alignment allows.

#define SK_MAXM 8
#define SK_WARPS 8  // block 256 threads
#define SK_NB 128   // columns per block, transW == 0: 4 per lane
#define SK_NW 4     // columns per warp, transW == 1: 32 per block

// fx_sk_kn_vec: transW == 0, w 16-byte aligned and N % 4 == 0. The warp
// takes rows k = kb + warp, kb + warp + 8, … < ke of the chunk, the lane
// columns n..n+3 (all < N), R rows' 16-byte loads in flight (8 for M <= 2,
// 4 above, as registers allow); a[m] gets Σ x[m, k]·w[k, n..n+3] over
// those rows in order of k.
template <int MM>
FX_DEV void fx_sk_kn_vec(fx_float4 a[SK_MAXM], const float* x, const float* w, int N, int K, int n, int kb, int ke,
                         int warp) {
  constexpr int R = MM <= 2 ? 8 : 4;
  int k = kb + warp;
  for (; k + (R - 1) * SK_WARPS < ke; k += R * SK_WARPS) {
    const float* wp = w + (u64)k * N + n;
    fx_float4 wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) wr[r] = fx_ldg4(wp + (u64)(r * SK_WARPS) * N);
#pragma unroll
    for (int m = 0; m < MM; m++) {
      const float* xr = x + (u64)m * K + k;
#pragma unroll
      for (int r = 0; r < R; r++) a[m] = fx_fma4(xr[r * SK_WARPS], wr[r], a[m]);
    }
  }
  for (; k < ke; k += SK_WARPS) {
    const fx_float4 w0 = fx_ldg4(w + (u64)k * N + n);
#pragma unroll
    for (int m = 0; m < MM; m++) a[m] = fx_fma4(x[(u64)m * K + k], w0, a[m]);
  }
}

// fx_sk_nk_vec: transW == 1, x and w 16-byte aligned, K, kb and ke
// multiples of 4. The warp takes columns nb..nb+nc-1 (nc <= 4), the lane k = kb +
// 4·lane + 128i < ke, one 16-byte load of each column's row and of each x
// row per step; acc[c][m] gets the lane's Σ x[m, k]·w[nb+c, k] in order of
// k.
template <int MM>
FX_DEV void fx_sk_nk_vec(float acc[SK_NW][SK_MAXM], const float* x, const float* w, int K, int nb, int nc, int kb,
                         int ke, int lane) {
  for (int k = kb + 4 * lane; k < ke; k += 128) {
    fx_float4 wv[SK_NW];
#pragma unroll
    for (int c = 0; c < SK_NW; c++) wv[c] = c < nc ? fx_ldg4(w + (u64)(nb + c) * K + k) : (fx_float4)(0.0f);
#pragma unroll
    for (int m = 0; m < MM; m++) {
      const fx_float4 xv = fx_ldg4(x + (u64)m * K + k);
#pragma unroll
      for (int c = 0; c < SK_NW; c++) acc[c][m] = fx_dot4_acc(xv, wv[c], acc[c][m]);
    }
  }
}

#define FX_SK_SWITCH(M, CALL)  \
  switch (M) {                 \
    case 1: CALL(1); break;    \
    case 2: CALL(2); break;    \
    case 3: CALL(3); break;    \
    case 4: CALL(4); break;    \
    case 5: CALL(5); break;    \
    case 6: CALL(6); break;    \
    case 7: CALL(7); break;    \
    default: CALL(8); break;   \
  }

// fx_matmul_skinny_partial: split-K partial sums of a product of M <= 8
// rows (M > 8 does nothing): part[s, m, n] = Σ x[m, k]·W(k, n) over chunk s,
// k in [s·kchunk, min(K, (s+1)·kchunk)), for s < splits = ceil(K/kchunk)
// (kchunk <= 0: one chunk of K). part [splits, M, N]. Block 256 threads
// (8 warps), grid (ceil(N/128), splits) for transW == 0, (ceil(N/32),
// splits) for transW == 1.
//   transW == 0 (w [K, N]): lane l of warp v takes columns n0 + 4l..4l+3 of
//     the block's 128 and rows k = kb + v + 8i of the chunk, summed in
//     order of k with 16-byte loads of w when w is 16-byte aligned and N %
//     4 == 0 (else 4-byte loads); then shared memory adds the 8 warps'
//     sums in order of v.
//   transW == 1 (w [N, K]): warp v takes 4 columns n = 4·(8·blockIdx.x + v)
//     + c, lane l the k = kb + 4l + 128i (16-byte loads of w and x rows when
//     x and w are 16-byte aligned and K and the chunk's ends are multiples
//     of 4) or k = kb + l + 32i (4-byte loads), each summed in order of k;
//     then shared memory adds the 32 lanes' sums in order of l (thread
//     32v + 8c + m adds those of row m, column c).
// So each part[s, m, n] is a sum in a fixed order: the same bits on every
// run. At most 128 registers per thread (launch bounds 256 × 2), so that
// two blocks share an SM: 16 warps of loads in flight.
extern "C" __global__ __launch_bounds__(256, 2) void fx_matmul_skinny_partial(float* part, const float* x,
                                                                           const float* w, int M, int N, int K,
                                                                           int transW, int kchunk) {
  // transW == 0: red[v][m][c], the warps' sums; transW == 1: red[v][l][j],
  // lane l's sum j = 8c + m, rows padded to 33 against bank conflicts.
  __shared__ __attribute__((aligned(16))) float red[SK_WARPS * 32 * 33];
  if (M <= 0 || M > SK_MAXM || N <= 0 || K <= 0 || bdim_x() != 256) return;
  const int s = (int)bid_y();
  int kb, ke;
  if (!fx_split_range(K, kchunk, s, &kb, &ke)) return;  // the whole block
  const int tid = (int)tid_x(), warp = tid >> 5, lane = tid & 31;

  if (!transW) {
    const int n0 = (int)bid_x() * SK_NB;
    if (n0 >= N) return;  // the whole block
    const int n = n0 + 4 * lane;
    fx_float4 a[SK_MAXM];
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++) a[m] = (fx_float4)(0.0f);
    if (n < N) {  // per lane; no barrier or shuffle inside
      if (fx_aligned16(w) && (N & 3) == 0) {
#define FX_SK_KN(MM) fx_sk_kn_vec<MM>(a, x, w, N, K, n, kb, ke, warp)
        FX_SK_SWITCH(M, FX_SK_KN)
#undef FX_SK_KN
      } else {
        for (int k = kb + warp; k < ke; k += SK_WARPS) {
          const float* wr = w + (u64)k * N;
          fx_float4 wv;
          wv.x = wr[n];
          wv.y = n + 1 < N ? wr[n + 1] : 0.0f;
          wv.z = n + 2 < N ? wr[n + 2] : 0.0f;
          wv.w = n + 3 < N ? wr[n + 3] : 0.0f;
#pragma unroll
          for (int m = 0; m < SK_MAXM; m++)
            if (m < M) a[m] = fx_fma4(x[(u64)m * K + k], wv, a[m]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++)
      if (m < M) *(fx_float4*)__builtin_assume_aligned(&red[(warp * SK_MAXM + m) * SK_NB + 4 * lane], 16) = a[m];
    sync_threads();
    for (int i = tid; i < M * SK_NB; i += 256) {
      const int m = i / SK_NB, c = i % SK_NB;
      if (n0 + c >= N) continue;
      float v = red[m * SK_NB + c];
#pragma unroll
      for (int v8 = 1; v8 < SK_WARPS; v8++) v += red[(v8 * SK_MAXM + m) * SK_NB + c];
      part[((u64)s * M + m) * N + n0 + c] = v;
    }
    return;
  }

  // transW == 1. A whole warp shares its columns (none past N for the
  // warps with nc <= 0), so the branches are warp-uniform; every thread
  // reaches the barrier.
  const int nb = ((int)bid_x() * SK_WARPS + warp) * SK_NW;
  const int nc = N - nb < SK_NW ? N - nb : SK_NW;
  float acc[SK_NW][SK_MAXM];
#pragma unroll
  for (int c = 0; c < SK_NW; c++)
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++) acc[c][m] = 0.0f;
  if (nc <= 0) {
    // no columns
  } else if (fx_aligned16(w) && fx_aligned16(x) && (K & 3) == 0 && ((kb | ke) & 3) == 0) {
#define FX_SK_NK(MM) fx_sk_nk_vec<MM>(acc, x, w, K, nb, nc, kb, ke, lane)
    FX_SK_SWITCH(M, FX_SK_NK)
#undef FX_SK_NK
  } else {
    for (int k = kb + lane; k < ke; k += 32) {
      float wv[SK_NW];
#pragma unroll
      for (int c = 0; c < SK_NW; c++) wv[c] = c < nc ? w[(u64)(nb + c) * K + k] : 0.0f;
#pragma unroll
      for (int m = 0; m < SK_MAXM; m++) {
        if (m < M) {
          const float xv = x[(u64)m * K + k];
#pragma unroll
          for (int c = 0; c < SK_NW; c++) acc[c][m] = __builtin_fmaf(xv, wv[c], acc[c][m]);
        }
      }
    }
  }
  float* rl = red + (warp * 32 + lane) * 33;
#pragma unroll
  for (int c = 0; c < SK_NW; c++)
#pragma unroll
    for (int m = 0; m < SK_MAXM; m++) rl[c * SK_MAXM + m] = acc[c][m];
  sync_threads();
  const int j = lane, c = j / SK_MAXM, m = j % SK_MAXM;
  if (c < nc && m < M) {
    const float* rj = red + warp * 32 * 33 + j;
    float v = rj[0];
#pragma unroll 8
    for (int l = 1; l < 32; l++) v += rj[l * 33];
    part[((u64)s * M + m) * N + nb + c] = v;
  }
}

// ---------------------------------------------------------------------------
// FP32 tiles.

#define MM_BM 128
#define MM_BN 128
#define MM_BK 8
#define MM_PAD 4  // row stride 132 floats: conflict-free transposing stores, 16-byte rows


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

// fx_matmul_f32: y = act(x·W + bias); block 256 threads, grid (ceil(N/128),
// ceil(M/128)).
// Thread (ty, tx) = (tid/16, tid%16) computes rows {4ty..4ty+3, 64+4ty..64+4ty+3}
// and columns {4tx..4tx+3, 64+4tx..64+4tx+3} of the block's tile, each
// output summed over k in order with fused multiply-adds. Shared memory
// holds the tile's x columns transposed (As[k][m]) and W (Bs[k][n]), both
// layouts of w transposed or copied on the way in; the next k-tile is read
// from global memory into registers while the current one is multiplied.
extern "C" __global__ __launch_bounds__(256) void fx_matmul_f32(float* y, const float* x, const float* w,
                                                                const float* bias, int M, int N, int K,
                                                                int transW, int act) {
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
  if (act == FX_ACT_NONE) return;
#pragma unroll 1
  for (int e = 0; e < 64; e++) {
    int i = e >> 3, j = e & 7;
    fx_act_at(y, M, N, m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4), n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4),
              act);
  }
}

#define T64_BM 64
#define T64_BN 64
#define T64_BK 16
#define T64_PAD 4  // row stride 68 floats: 16-byte rows, 2-way conflicts at most on the transposing stores

// fx_mm64_load reads the 64×16 x tile and the 16×64 W tile at k0 into
// registers, 8 elements each per thread, zero past the edges (rows >= M,
// columns >= N, k >= ke). x: 16 lanes run along k of one row; W [K, N]:
// lanes run along n; W [N, K]: 16 lanes along k.
FX_DEV void fx_mm64_load(float ra[8], float rb[8], const float* x, const float* w, int M, int N, int K, int transW,
                         int m0, int n0, int k0, int ke, int tid) {
#pragma unroll
  for (int it = 0; it < 8; it++) {
    int e = tid + 128 * it;
    int gm = m0 + (e >> 4), gk = k0 + (e & 15);
    ra[it] = (gm < M && gk < ke) ? x[(u64)gm * K + gk] : 0.0f;
  }
#pragma unroll
  for (int it = 0; it < 8; it++) {
    int e = tid + 128 * it;
    if (!transW) {
      int gk = k0 + (e >> 6), gn = n0 + (e & 63);
      rb[it] = (gk < ke && gn < N) ? w[(u64)gk * N + gn] : 0.0f;
    } else {
      int gn = n0 + (e >> 4), gk = k0 + (e & 15);
      rb[it] = (gk < ke && gn < N) ? w[(u64)gn * K + gk] : 0.0f;
    }
  }
}

// fx_mm64_store writes the registers fx_mm64_load filled to As[k][m] and
// Bs[k][n] (x transposed; W as loaded).
FX_DEV void fx_mm64_store(float (*As)[T64_BM + T64_PAD], float (*Bs)[T64_BN + T64_PAD], const float ra[8],
                          const float rb[8], int transW, int tid) {
#pragma unroll
  for (int it = 0; it < 8; it++) {
    int e = tid + 128 * it;
    As[e & 15][e >> 4] = ra[it];
    if (!transW)
      Bs[e >> 6][e & 63] = rb[it];
    else
      Bs[e & 15][e >> 4] = rb[it];
  }
}

// fx_matmul_f32_64: y = act(x·W + bias); block 128 threads, grid
// (ceil(N/64), ceil(M/64), splits). Block z sums over chunk z of K, k in
// [z·kchunk, min(K, (z+1)·kchunk)) (kchunk <= 0: all of K), into y + z·M·N:
// with splits > 1 y is the split-K workspace part [splits, M, N], and bias
// must be NULL and act FX_ACT_NONE (fx_matmul_splitk_reduce applies them);
// with one split, y is the output.
// Thread (ty, tx) = (tid/16, tid%16) computes rows {4ty..4ty+3,
// 32+4ty..32+4ty+3} and columns 4tx..4tx+3 of the block's 64×64 tile, each
// output summed over its chunk in order of k with fused multiply-adds.
// Shared memory holds the tile's x columns transposed (As[k][m]) and W
// (Bs[k][n]); the next k-tile is read from global memory into registers
// while the current one is multiplied.
extern "C" __global__ __launch_bounds__(128) void fx_matmul_f32_64(float* y, const float* x, const float* w,
                                                                   const float* bias, int M, int N, int K,
                                                                   int transW, int kchunk, int act) {
  __shared__ __attribute__((aligned(16))) float As[T64_BK][T64_BM + T64_PAD];
  __shared__ __attribute__((aligned(16))) float Bs[T64_BK][T64_BN + T64_PAD];
  if (M <= 0 || N <= 0 || K <= 0 || bdim_x() != 128) return;
  int kb, ke;
  if (!fx_split_range(K, kchunk, (int)bid_z(), &kb, &ke)) return;  // the whole block
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * T64_BM, n0 = (int)bid_x() * T64_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  y += (u64)bid_z() * M * N;
  const int tx = tid & 15, ty = tid >> 4;

  // acc[i] holds row i's 4 columns (rows 4ty+i, then 32+4ty+i-4).
  fx_float4 acc[8];
#pragma unroll
  for (int i = 0; i < 8; i++) acc[i] = (fx_float4)(0.0f);

  float ra[8], rb[8];
  fx_mm64_load(ra, rb, x, w, M, N, K, transW, m0, n0, kb, ke, tid);
  for (int k0 = kb; k0 < ke; k0 += T64_BK) {
    fx_mm64_store(As, Bs, ra, rb, transW, tid);
    sync_threads();
    if (k0 + T64_BK < ke) fx_mm64_load(ra, rb, x, w, M, N, K, transW, m0, n0, k0 + T64_BK, ke, tid);
#pragma unroll
    for (int kk = 0; kk < T64_BK; kk++) {
      const fx_float4 a0 = fx_lds4(&As[kk][4 * ty]);
      const fx_float4 a1 = fx_lds4(&As[kk][32 + 4 * ty]);
      const fx_float4 b = fx_lds4(&Bs[kk][4 * tx]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
#pragma unroll
      for (int i = 0; i < 8; i++) acc[i] = fx_fma4(a[i], b, acc[i]);
    }
    sync_threads();  // the tile is read before the next one is stored
  }

#pragma unroll
  for (int i = 0; i < 8; i++) {
    int gm = m0 + (i < 4 ? 4 * ty + i : 32 + 4 * ty + i - 4);
    if (gm >= M) continue;
    float* yr = y + (u64)gm * N;
    const float v[4] = {acc[i].x, acc[i].y, acc[i].z, acc[i].w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
      int gn = n0 + 4 * tx + j;
      if (gn < N) yr[gn] = bias ? v[j] + bias[gn] : v[j];
    }
  }
  if (act == FX_ACT_NONE) return;
#pragma unroll 1
  for (int e = 0; e < 32; e++) {
    int i = e >> 2;
    fx_act_at(y, M, N, m0 + (i < 4 ? 4 * ty + i : 32 + 4 * ty + i - 4), n0 + 4 * tx + (e & 3), act);
  }
}

// ---------------------------------------------------------------------------
// TF32 tensor cores.

#define TC_BM 64
#define TC_BN 64
#define TC_BK 32
#define TC_LDA (TC_BK + 4)   // As[m][k], stride 36: fragment reads hit 32 banks
#define TC_LDB (TC_BN + 8)   // Bs[k][n], stride 72 (transW == 0)
#define TC_LDBT (TC_BK + 4)  // Bs[n][k], stride 36 (transW == 1)

// fx_mm_tf32_load reads the 64×32 x tile and the 32×64 W tile at k0 into
// registers, 16 elements each per thread, zero past the edges (rows >= M,
// columns >= N, k >= ke). x: a warp
// reads one row (32 k); W [K, N]: lanes run along n; W [N, K]: a warp reads
// one row.
FX_DEV void fx_mm_tf32_load(float ra[16], float rb[16], const float* x, const float* w, int M, int N, int K,
                            int transW, int m0, int n0, int k0, int ke, int tid) {
#pragma unroll
  for (int it = 0; it < 16; it++) {
    int e = tid + 128 * it;
    int gm = m0 + (e >> 5), gk = k0 + (e & 31);
    ra[it] = (gm < M && gk < ke) ? x[(u64)gm * K + gk] : 0.0f;
  }
#pragma unroll
  for (int it = 0; it < 16; it++) {
    int e = tid + 128 * it;
    if (!transW) {
      int gk = k0 + (e >> 6), gn = n0 + (e & 63);
      rb[it] = (gk < ke && gn < N) ? w[(u64)gk * N + gn] : 0.0f;
    } else {
      int gn = n0 + (e >> 5), gk = k0 + (e & 31);
      rb[it] = (gk < ke && gn < N) ? w[(u64)gn * K + gk] : 0.0f;
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

// fx_matmul_tf32_64: y = act(x·W + bias); block 128 threads (4 warps), grid
// (ceil(N/64), ceil(M/64), splits). Block z sums over chunk z of K, k in
// [z·kchunk, min(K, (z+1)·kchunk)) (kchunk <= 0: all of K), into y + z·M·N:
// with splits > 1 y is the split-K workspace part [splits, M, N], and bias
// must be NULL and act FX_ACT_NONE (fx_matmul_splitk_reduce applies them). Warp w computes the 32×32 sub-tile at rows 32·(w/2), columns 32·(w%2) of
// the block's 64×64 tile as 2×4 mma tiles of 16×8, over k in steps of 8.
// Tiles are staged in shared memory already rounded to TF32 (cvt.rna):
// As[m][k] (stride 36) and B as Bs[k][n] (stride 72) for w [K, N], or as
// Bs[n][k] (stride 36) for w [N, K] — in each case loads from global run
// along the contiguous dimension and the mma fragment reads are free of
// bank conflicts. Both B layouts hold 32·72 = 64·36 words. The next k-tile
// is read from global memory into registers while the current one is
// multiplied.
extern "C" __global__ __launch_bounds__(128) void fx_matmul_tf32_64(float* y, const float* x, const float* w,
                                                                    const float* bias, int M, int N, int K,
                                                                    int transW, int kchunk, int act) {
  __shared__ unsigned As[TC_BM * TC_LDA];
  __shared__ unsigned Bs[TC_BK * TC_LDB];
  if (M <= 0 || N <= 0 || K <= 0 || bdim_x() != 128) return;
  int kb, ke;
  if (!fx_split_range(K, kchunk, (int)bid_z(), &kb, &ke)) return;  // the whole block
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * TC_BM, n0 = (int)bid_x() * TC_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  y += (u64)bid_z() * M * N;
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
  fx_mm_tf32_load(ra, rb, x, w, M, N, K, transW, m0, n0, kb, ke, tid);
  for (int k0 = kb; k0 < ke; k0 += TC_BK) {
    fx_mm_tf32_store(As, Bs, ra, rb, transW, tid);
    sync_threads();
    if (k0 + TC_BK < ke) fx_mm_tf32_load(ra, rb, x, w, M, N, K, transW, m0, n0, k0 + TC_BK, ke, tid);
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
  if (act == FX_ACT_NONE) return;
#pragma unroll 1
  for (int e = 0; e < 32; e++) {
    int mi = e >> 4, ni = (e >> 2) & 3, c = e & 3;
    fx_act_at(y, M, N, m0 + wm + mi * 16 + g + (c >= 2 ? 8 : 0), n0 + wn + ni * 8 + 2 * t + (c & 1), act);
  }
}

#define TB_BM 128
#define TB_BN 128
#define TB_BK 32
#define TB_STAGES 3
#define TB_LDA 36                      // As[m][k], stride 36: fragment reads hit 32 banks, 16-byte rows
#define TB_LDB 136                     // Bs[k][n], stride 136 (transW == 0)
#define TB_LDBT 36                     // Bs[n][k], stride 36 (transW == 1)
#define TB_A_WORDS (TB_BM * TB_LDA)    // 4608
#define TB_B_WORDS (TB_BN * TB_LDBT)   // 4608 >= TB_BK * TB_LDB = 4352
#define TB_STAGE_WORDS (TB_A_WORDS + TB_B_WORDS)
// FX_MATMUL_TF32_SHARED is the dynamic shared memory fx_matmul_tf32 needs:
// 110592 bytes (engine/gpu/matmul.go's tf32SharedBytes).
#define FX_MATMUL_TF32_SHARED (TB_STAGES * TB_STAGE_WORDS * 4)

// fx_tb_load queues the copies of k-tile k0 — the 128×32 x tile and the
// 32×128 W tile — into As and Bs (one stage), zero-filled past the edges
// (rows >= M, columns >= N, k >= ke). With avec (x 16-byte aligned; K and
// the chunk's ends multiples of 4) x's rows go in 16-byte copies, 8 lanes
// per row; with bvec (w 16-byte aligned; N % 4 == 0 for w [K, N], K and
// the chunk's ends multiples of 4 for w [N, K]) likewise W: w [K, N] 32 lanes per row of 128 n, w [N, K] 8 lanes per
// row of 32 k. Otherwise 4-byte copies. A zero-filled copy reads nothing
// (source size 0) from a valid address.
FX_DEV void fx_tb_load(float* As, float* Bs, const float* x, const float* w, int M, int N, int K, int transW,
                       bool avec, bool bvec, int m0, int n0, int k0, int ke, int tid) {
  if (avec) {
#pragma unroll
    for (int it = 0; it < 4; it++) {
      int e = tid + 256 * it, r = e >> 3, kc = (e & 7) * 4;
      int gm = m0 + r, gk = k0 + kc;
      bool ok = gm < M && gk < ke;
      fx_cp_async16(As + r * TB_LDA + kc, ok ? x + (u64)gm * K + gk : x, ok ? 16 : 0);
    }
  } else {
#pragma unroll 4
    for (int it = 0; it < 16; it++) {
      int e = tid + 256 * it, r = e >> 5, kk = e & 31;
      int gm = m0 + r, gk = k0 + kk;
      bool ok = gm < M && gk < ke;
      fx_cp_async4(As + r * TB_LDA + kk, ok ? x + (u64)gm * K + gk : x, ok ? 4 : 0);
    }
  }
  if (!transW) {
    if (bvec) {
#pragma unroll
      for (int it = 0; it < 4; it++) {
        int e = tid + 256 * it, r = e >> 5, nc = (e & 31) * 4;
        int gk = k0 + r, gn = n0 + nc;
        bool ok = gk < ke && gn < N;
        fx_cp_async16(Bs + r * TB_LDB + nc, ok ? w + (u64)gk * N + gn : w, ok ? 16 : 0);
      }
    } else {
#pragma unroll 4
      for (int it = 0; it < 16; it++) {
        int e = tid + 256 * it, r = e >> 7, nn = e & 127;
        int gk = k0 + r, gn = n0 + nn;
        bool ok = gk < ke && gn < N;
        fx_cp_async4(Bs + r * TB_LDB + nn, ok ? w + (u64)gk * N + gn : w, ok ? 4 : 0);
      }
    }
  } else {
    if (bvec) {
#pragma unroll
      for (int it = 0; it < 4; it++) {
        int e = tid + 256 * it, r = e >> 3, kc = (e & 7) * 4;
        int gn = n0 + r, gk = k0 + kc;
        bool ok = gn < N && gk < ke;
        fx_cp_async16(Bs + r * TB_LDBT + kc, ok ? w + (u64)gn * K + gk : w, ok ? 16 : 0);
      }
    } else {
#pragma unroll 4
      for (int it = 0; it < 16; it++) {
        int e = tid + 256 * it, r = e >> 5, kk = e & 31;
        int gn = n0 + r, gk = k0 + kk;
        bool ok = gn < N && gk < ke;
        fx_cp_async4(Bs + r * TB_LDBT + kk, ok ? w + (u64)gn * K + gk : w, ok ? 4 : 0);
      }
    }
  }
}

// fx_matmul_tf32: y = act(x·W + bias); block 256 threads (8 warps), grid
// (ceil(N/128), ceil(M/128), splits), FX_MATMUL_TF32_SHARED bytes of
// dynamic shared memory (the host raises the kernel's limit above 48 KB
// once, at load). Block z sums over chunk z of K, k in [z·kchunk, min(K,
// (z+1)·kchunk)) (kchunk <= 0: all of K), into y + z·M·N: with splits > 1 y
// is the split-K workspace part [splits, M, N], and bias must be NULL and
// act FX_ACT_NONE (fx_matmul_splitk_reduce applies them). Warp w
// computes the 64×32 sub-tile at rows 64·(w/4), columns 32·(w%4) of the
// block's 128×128 tile as 4×4 mma tiles of 16×8, over k in steps of 8.
// The k-tiles (BK = 32) go through three shared-memory stages, each filled
// by cp.async two tiles ahead of its use: As[m][k] (stride 36), and B as
// Bs[k][n] (stride 136) for w [K, N] or as Bs[n][k] (stride 36) for w [N,
// K] — global reads run along the contiguous dimension and the fragment
// reads are free of bank conflicts. Fragments are rounded to TF32
// (cvt.rna) as they are read. One barrier per k-tile: after it every
// thread has finished the previous tile, whose stage is refilled next.
// Each output's products are accumulated in order of k (in the mma's
// FP32 accumulate). At most 128 registers per thread (launch bounds 256 ×
// 2), so that two blocks (16 warps) share an SM.
extern "C" __global__ __launch_bounds__(256, 2) void fx_matmul_tf32(float* y, const float* x, const float* w,
                                                                 const float* bias, int M, int N, int K,
                                                                 int transW, int kchunk, int act) {
  FX_DYN_SHARED(float, smem);
  if (M <= 0 || N <= 0 || K <= 0 || bdim_x() != 256) return;
  int kb, ke;
  if (!fx_split_range(K, kchunk, (int)bid_z(), &kb, &ke)) return;  // the whole block
  const int tid = (int)tid_x();
  const int m0 = (int)bid_y() * TB_BM, n0 = (int)bid_x() * TB_BN;
  if (m0 >= M || n0 >= N) return;  // the whole block
  y += (u64)bid_z() * M * N;
  const int warp = tid >> 5, lane = tid & 31;
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
  const int g = lane >> 2, t = lane & 3;
  // B element (k, n) of a stage is Bs[k·bk + n·bn].
  const int bk = transW ? 1 : TB_LDB, bn = transW ? TB_LDBT : 1;
  // 16-byte copies along k need the chunk's ends at multiples of 4 too, so
  // that no copy straddles ke.
  const bool kvec = (K & 3) == 0 && ((kb | ke) & 3) == 0;
  const bool avec = fx_aligned16(x) && kvec;
  const bool bvec = fx_aligned16(w) && (transW ? kvec : (N & 3) == 0);

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int c = 0; c < 4; c++) acc[mi][ni][c] = 0.0f;

  const int tiles = (ke - kb + TB_BK - 1) / TB_BK;
  // Prologue: tiles 0 .. STAGES-2, one commit group each (empty past the
  // last tile, so that the group count stays in step with the tiles).
#pragma unroll
  for (int st = 0; st < TB_STAGES - 1; st++) {
    if (st < tiles)
      fx_tb_load(smem + st * TB_STAGE_WORDS, smem + st * TB_STAGE_WORDS + TB_A_WORDS, x, w, M, N, K, transW, avec,
                 bvec, m0, n0, kb + st * TB_BK, ke, tid);
    fx_cp_async_commit();
  }
  for (int kt = 0; kt < tiles; kt++) {
    fx_cp_async_wait<TB_STAGES - 2>();  // this thread's copies of tile kt have landed
    sync_threads();                     // everyone's have; everyone is done with tile kt-1
    const int nt = kt + TB_STAGES - 1;  // refill tile kt-1's stage with tile nt
    if (nt < tiles) {
      const int st = nt % TB_STAGES;
      fx_tb_load(smem + st * TB_STAGE_WORDS, smem + st * TB_STAGE_WORDS + TB_A_WORDS, x, w, M, N, K, transW, avec,
                 bvec, m0, n0, kb + nt * TB_BK, ke, tid);
    }
    fx_cp_async_commit();
    const float* As = smem + (kt % TB_STAGES) * TB_STAGE_WORDS;
    const float* Bs = As + TB_A_WORDS;
#pragma unroll
    for (int ks = 0; ks < TB_BK; ks += 8) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; mi++) {
        const float* ap = As + (wm + mi * 16 + g) * TB_LDA + ks + t;
        a[mi][0] = fx_tf32(ap[0]);               // (g,   t)
        a[mi][1] = fx_tf32(ap[8 * TB_LDA]);      // (g+8, t)
        a[mi][2] = fx_tf32(ap[4]);               // (g,   t+4)
        a[mi][3] = fx_tf32(ap[8 * TB_LDA + 4]);  // (g+8, t+4)
      }
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const float* bp = Bs + (ks + t) * bk + (wn + ni * 8 + g) * bn;
        b[ni][0] = fx_tf32(bp[0]);       // (k = t,   n = g)
        b[ni][1] = fx_tf32(bp[4 * bk]);  // (k = t+4, n = g)
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) fx_mma_tf32(acc[mi][ni], a[mi], b[ni]);
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
  if (act == FX_ACT_NONE) return;
#pragma unroll 1
  for (int e = 0; e < 64; e++) {
    int mi = e >> 4, ni = (e >> 2) & 3, c = e & 3;
    fx_act_at(y, M, N, m0 + wm + mi * 16 + g + (c >= 2 ? 8 : 0), n0 + wn + ni * 8 + 2 * t + (c & 1), act);
  }
}
