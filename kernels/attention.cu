// attention.cu — fx's attention ops: scores q·kᵀ·scale with the mask, the
// mix pattern·v, the fused attention (online softmax), each head's share of
// the output projection, and the backward ops of scores and mix.
//
// Layouts (all dense row-major float32): q [B, Tq, H, Dh]; k, v [B, Tk, H, Dh];
// scores, pattern [B, H, Tq, Tk]; z [B, Tq, H, Dh]. Key j is forbidden for
// query i of sequence b when keyValid != NULL and keyValid[b·Tk + j] == 0,
// or when causal != 0 and j > i + qoff (qoff: keys cached before this
// step's queries, plus fx_index(*qoffAt) when qoffAt is not NULL: the
// position of a decode step that a CUDA graph replays; when that value is
// not an index, every key is forbidden, as on the CPU).
//
// Reference: engine/cpu (attention.go, grad.go). Sums are float32 in index
// order (fused multiply-adds where the CPU rounds each product); entries of
// a pattern or of dscores that are exactly 0 are skipped, as on the CPU, so
// non-finite values at masked positions never spread.
//
// Geometry, except the fused attentions: one thread per output element,
// block 256, grid min(ceil(count/256), 65535) 1-D, grid-stride over the
// count (which must be below 2^31).
//
// The fused attention, two versions (engine/gpu picks by the query count):
//   fx_attention        version 1, for decode: a block of 4 warps takes 4
//                       consecutive queries of one (b, h), one per warp,
//                       and walks the keys in tiles of 32 staged in shared
//                       memory, keeping a running max and sum (online
//                       softmax, as flash attention does).
//   fx_attention_tiled  version 2, for prefill: a block takes a tile of 64
//                       queries (32 for Dh > 64) and each thread a register
//                       micro-tile of the scores and of the output, as a
//                       matmul does; online softmax per query row.
#include "fx_cuda.h"

typedef unsigned long long u64;

// fx_query_offset is qoff plus the index at qoffAt (when not NULL), or
// -2^30 (every key forbidden) when that value is not an index.
FX_DEV int fx_query_offset(int qoff, const float* qoffAt) {
  if (!qoffAt) return qoff;
  const int at = fx_index(*qoffAt);
  return at < 0 ? -(1 << 30) : qoff + at;
}

// fx_attn_scores: s[b,h,i,j] = (Σ_d q[b,i,h,d]·k[b,j,h,d])·scale, or -Inf
// where key j is forbidden for query i.
extern "C" __global__ void fx_attn_scores(float* s, const float* q, const float* k, const int* keyValid,
                                          int B, int Tq, int Tk, int H, int Dh, float scale, int causal, int qoff,
                                          const float* qoffAt) {
  if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0) return;
  qoff = fx_query_offset(qoff, qoffAt);
  long long total = (long long)B * H * Tq * Tk;
  if (total >= (1ll << 31)) return;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned j = e % (unsigned)Tk, r = e / (unsigned)Tk;
    unsigned i = r % (unsigned)Tq;
    r /= (unsigned)Tq;
    unsigned h = r % (unsigned)H, b = r / (unsigned)H;
    if ((keyValid && keyValid[b * (unsigned)Tk + j] == 0) || (causal && (long long)j > (long long)i + qoff)) {
      s[e] = -INFINITY;
      continue;
    }
    const float* qr = q + (((u64)b * Tq + i) * H + h) * Dh;
    const float* kr = k + (((u64)b * Tk + j) * H + h) * Dh;
    float acc = 0.0f;
    for (int d = 0; d < Dh; d++) acc = __builtin_fmaf(qr[d], kr[d], acc);
    s[e] = fx_mul_rn(acc, scale);
  }
}

// fx_attn_mix: z[b,i,h,d] = Σ_j p[b,h,i,j]·v[b,j,h,d] over keys j in order,
// skipping p == 0 exactly (so non-finite v at masked keys never spreads).
extern "C" __global__ void fx_attn_mix(float* z, const float* p, const float* v, int B, int Tq, int Tk, int H,
                                       int Dh) {
  if (B <= 0 || Tq <= 0 || H <= 0 || Dh <= 0) return;
  long long total = (long long)B * Tq * H * Dh;
  if (total >= (1ll << 31)) return;
  const u64 ldv = (u64)H * Dh;  // from key j to key j+1
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned d = e % (unsigned)Dh, r = e / (unsigned)Dh;
    unsigned h = r % (unsigned)H;
    r /= (unsigned)H;
    unsigned i = r % (unsigned)Tq, b = r / (unsigned)Tq;
    const float* pr = p + (((u64)b * H + h) * Tq + i) * Tk;
    const float* vc = v + ((u64)b * Tk * H + h) * Dh + d;
    float acc = 0.0f;
    for (int j = 0; j < Tk; j++) {
      float pj = pr[j];
      if (pj != 0.0f) acc = __builtin_fmaf(pj, vc[j * ldv], acc);
    }
    z[e] = acc;
  }
}

#define FX_ATT_WARPS 4  // queries per block, one per warp
#define FX_ATT_KT 32    // keys per tile, one per lane
#define FX_ATT_DMAX 128

// fx_attention: z = AttnMix(Softmax(AttnScores(q, k, scale, mask)), v),
// fused, never materialising [Tq, Tk]. A query whose keys are all forbidden
// gets zeros; forbidden keys contribute nothing even where v is not finite.
// Dh <= 128 (the host checks; a larger Dh leaves z untouched).
// Geometry: block 128 threads (4 warps), grid (ceil(Tq/4), H, B).
//
// Warp w owns query i = 4·blockIdx.x + w. For each tile of 32 keys the
// block stages K and V rows in shared memory; lane j scores key j0+j
// against the warp's query; the warp takes the tile max by shuffles,
// rescales its running sum l and accumulator by e^(m_old - m_new) and adds
// e^(s_j - m_new)·v_j, lane owning output dims lane, lane+32, lane+64,
// lane+96. Keys at or past kend, forbidden by causality for all 4 queries
// of the block, are never loaded; the tile loop bounds depend only on the
// block, so every warp reaches every barrier (warps whose query is past Tq
// load tiles and write nothing).
extern "C" __global__ __launch_bounds__(128) void fx_attention(float* z, const float* q, const float* k,
                                                               const float* v, const int* keyValid, int B,
                                                               int Tq, int Tk, int H, int Dh, float scale,
                                                               int causal, int qoff, const float* qoffAt) {
  __shared__ float Qs[FX_ATT_WARPS][FX_ATT_DMAX];
  __shared__ float Ks[FX_ATT_KT][FX_ATT_DMAX + 1];  // +1: lanes read column d of 32 rows
  __shared__ float Vs[FX_ATT_KT][FX_ATT_DMAX];
  if (Dh <= 0 || Dh > FX_ATT_DMAX || Tq <= 0 || Tk <= 0 || bdim_x() != 32 * FX_ATT_WARPS) return;
  qoff = fx_query_offset(qoff, qoffAt);
  const unsigned b = bid_z(), h = bid_y();
  if (b >= (unsigned)B || h >= (unsigned)H) return;
  const int w = (int)warp_id(), lane = (int)lane_id();
  const int i0 = (int)bid_x() * FX_ATT_WARPS;
  if (i0 >= Tq) return;
  const int i = i0 + w;
  const bool qvalid = i < Tq;
  const u64 ld = (u64)H * Dh;  // from one position to the next in q, k, v, z

  for (int d = lane; d < FX_ATT_DMAX; d += 32)
    Qs[w][d] = (qvalid && d < Dh) ? q[((u64)b * Tq + i) * ld + (u64)h * Dh + d] : 0.0f;

  // Keys [kend, Tk) are forbidden for every query of the block.
  int kend = Tk;
  if (causal) {
    long long lim = (long long)(i0 + FX_ATT_WARPS - 1 < Tq - 1 ? i0 + FX_ATT_WARPS - 1 : Tq - 1) + qoff + 1;
    kend = lim < 0 ? 0 : (lim < Tk ? (int)lim : Tk);
  }
  const float* kb = k + (u64)b * Tk * ld + (u64)h * Dh;
  const float* vb = v + (u64)b * Tk * ld + (u64)h * Dh;

  float m = -INFINITY;  // running max of the scores (the same in every lane)
  float l = 0.0f;       // running Σ e^(s-m) (the same in every lane)
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int j0 = 0; j0 < kend; j0 += FX_ATT_KT) {
    sync_threads();  // the previous tile is no longer read (and Qs is written)
    for (int jj = w; jj < FX_ATT_KT; jj += FX_ATT_WARPS) {
      int j = j0 + jj;
      bool in = j < kend;
      for (int d = lane; d < Dh; d += 32) {
        Ks[jj][d] = in ? kb[(u64)j * ld + d] : 0.0f;
        Vs[jj][d] = in ? vb[(u64)j * ld + d] : 0.0f;
      }
    }
    sync_threads();

    const int j = j0 + lane;
    const bool allowed = qvalid && j < kend && (!keyValid || keyValid[(u64)b * Tk + j] != 0) &&
                         (!causal || (long long)j <= (long long)i + qoff);
    float s = -INFINITY;
    if (allowed) {
      float dot = 0.0f;
      for (int d = 0; d < Dh; d++) dot = __builtin_fmaf(Qs[w][d], Ks[lane][d], dot);
      s = fx_mul_rn(dot, scale);
    }
    const float mn = fx_max(m, warp_max(s));
    if (mn != -INFINITY) {  // else no key so far is allowed: nothing to add
      const float alpha = fx_expf(m - mn);  // 0 while m is -Inf
      const float pj = fx_expf(s - mn);     // 0 for forbidden keys
      l = __builtin_fmaf(l, alpha, warp_sum(pj));
#pragma unroll
      for (int c = 0; c < 4; c++) acc[c] *= alpha;
      for (int jj = 0; jj < FX_ATT_KT; jj++) {
        const float p = shfl_idx(pj, jj);
        if (p != 0.0f) {
#pragma unroll
          for (int c = 0; c < 4; c++)
            if (lane + 32 * c < Dh) acc[c] = __builtin_fmaf(p, Vs[jj][lane + 32 * c], acc[c]);
        }
      }
      m = mn;
    }
  }
  if (!qvalid) return;
  float* zr = z + ((u64)b * Tq + i) * ld + (u64)h * Dh;
#pragma unroll
  for (int c = 0; c < 4; c++)
    if (lane + 32 * c < Dh) zr[lane + 32 * c] = l != 0.0f ? acc[c] / l : 0.0f;
}

// ---------------------------------------------------------------------------
// fx_attention_tiled: fx_attention (same parameters, same semantics) for
// prefill, flash-attention style in FP32 SIMT: a block owns a tile of BQ
// queries of one (b, h), walks the keys in tiles of BK staged in shared
// memory, and keeps each query row's running max m and sum l (online
// softmax) and its BQ×Dh output tile in registers.
//
// Geometry: block 128 threads (4 warps); grid (ceil(Tq/BQ), H, B) with
//   Dh <= 64:        BQ = 64, BK = 64 (8 rows × 4 keys, 8 rows × 4 dims a thread)
//   64 < Dh <= 128:  BQ = 32, BK = 32 (4 rows × 2 keys, 4 rows × 8 dims a thread)
// (shared memory: 44 KB static, the larger of the two layouts). Dh <= 128
// (the host checks): a larger Dh or another block size leaves z untouched,
// and so does a smaller grid for the queries it does not reach.
//
// Thread layout (RT rows, KT = BK/16 keys, DV = 1 or 2 float4 of dims): warp
// w owns the 2·RT rows from 2·RT·w; lane = 16·rg + kg takes rows
// 2·RT·w + rg + 2r (r < RT), keys kg + 16c (c < KT), dims 64e + 4kg + u
// (e < DV, u < 4). A row's scores live in the 16 lanes of one half-warp, so
// its max is reduced by shuffles within the warp; its sum l is kept per
// lane (every lane of the row rescales by the same factor) and reduced once
// at the end.
//
// Shared memory: Qs [BQ][DW+4] (the query tile, staged once; DW = 64·DV,
// zero past Dh and past Tq), KV [BK][DW+4] (the key tile, then the value
// tile in the same buffer), Ps [BQ][36] (the weights of 32 keys: the P·V
// product runs over each half of a 64-key tile in turn). Rows are padded by
// 4 floats, so the float4 reads (2 rows a warp for Q and P, 16 rows for K,
// 16 consecutive float4 for V) are free of bank conflicts (the scalar
// stores of P, 32 a thread and tile, have 2-way conflicts).
//
// Per key tile (every bound depends only on the block, so every thread
// reaches every barrier): stage K and the keys' validity; S = Q·Kᵀ in
// registers (fused multiply-adds over d in order, then ·scale rounded, as in
// fx_attention); forbidden entries -Inf; the row max by shuffles; the
// weights p = 2^((s - m)·log2 e) (ex2.approx: within 2 ulps) and the
// rescaling of l and the output tile by 2^((m_old - m_new)·log2 e); stage V
// (zero for forbidden and out-of-range keys); O += P·V with P written to
// shared memory by each warp for its own rows (a warp barrier, not the
// block's). Where a staged value of V is not finite (NaN or Inf at an
// allowed key: flagged by each warp while staging) the tile takes a slower
// path that skips p == 0 exactly, so nothing non-finite spreads from keys a
// row must not see or whose weight underflowed (the CPU skips p == 0 too).
// Key tiles at or past kend (causally forbidden for every query of the
// tile) are never visited. A query with no allowed key gets zeros.
//
// Global loads are float4 when Dh % 4 == 0 and q, k, v are 16-byte aligned,
// else scalar.

typedef float fx_at4 __attribute__((ext_vector_type(4)));

#define FX_AT_THREADS 128
#define FX_AT_SMEM 11008  // floats: max(64·68 + 64·68 + 64·36, 32·132 + 32·132 + 32·36)
#define FX_AT_LOG2E 0x1.715476p+0f

#ifdef FX_HOST_EMU
// The emulator's warp barrier orders shared memory between the lanes (as
// bar.warp.sync does on the GPU).
FX_DEV void fx_at_syncwarp() { fx_emu_warp().bar.wait("syncwarp"); }
// fx_at_ex2 models ex2.approx.ftz.f32 by its contract (PTX ISA: within
// 2 ulps of the correctly rounded 2^x; ±0 → 1, -Inf → +0, NaN → NaN;
// subnormal results flushed to +0): 2^x rounded, then moved by -2..+2 ulps
// chosen from the bits of x, so the checks' tolerances are tried with
// errors as large as the hardware's may be.
FX_DEV float fx_at_ex2(float x) {
  if (x != x) return x;
  if (x == 0.0f) return 1.0f;
  float r = (float)__builtin_exp2l((long double)x);
  if (r < 0x1p-126f) return 0.0f;
  if (r > 3.4028235e38f) return r;
  unsigned u = fx_float_bits(r);
  int delta = (int)(((fx_float_bits(x) * 2654435761u) >> 16) % 5u) - 2;
  float e = fx_bits_float(u + (unsigned)delta);
  return (e < 0x1p-126f || e > 3.4028235e38f) ? r : e;
}
#else
FX_DEV void fx_at_syncwarp() { asm volatile("bar.warp.sync -1;" ::: "memory"); }
FX_DEV float fx_at_ex2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
#endif

FX_DEV fx_at4 fx_at_lds4(const float* p) { return *(const fx_at4*)__builtin_assume_aligned(p, 16); }
FX_DEV void fx_at_sts4(float* p, fx_at4 x) { *(fx_at4*)__builtin_assume_aligned(p, 16) = x; }
FX_DEV fx_at4 fx_at_fma4(float a, fx_at4 b, fx_at4 c) { return (fx_at4)(a)*b + c; }
FX_DEV bool fx_at_finite(float x) { return __builtin_fabsf(x) <= 3.4028235e38f; }

// fx_at_stage fills dst [R][LD] (DW floats of each row) from rows of src
// (ld floats apart): row r < nrow with rowok[r] (or rowok NULL) gets
// src[r·ld + d] for d < Dh, everything else 0. With vec, Dh % 4 == 0 and
// src is 16-byte aligned. Returns whether a value read is not finite.
template <int R, int DW, int LD>
FX_DEV bool fx_at_stage(float* dst, const float* src, u64 ld, int nrow, const int* rowok, int Dh, bool vec,
                        int tid) {
  bool bad = false;
  if (vec) {
    const int F = DW / 4, RP = FX_AT_THREADS / F;  // float4 a row, rows a pass
    const int f = tid % F, r0 = tid / F;
    const bool din = 4 * f < Dh;
#pragma unroll
    for (int p = 0; p < R / RP; p++) {
      const int r = r0 + p * RP;
      fx_at4 x = (fx_at4)(0.0f);
      if (din && r < nrow && (!rowok || rowok[r])) {
        x = *(const fx_at4*)__builtin_assume_aligned(src + (u64)r * ld + 4 * f, 16);
        bad |= !(fx_at_finite(x.x) && fx_at_finite(x.y) && fx_at_finite(x.z) && fx_at_finite(x.w));
      }
      fx_at_sts4(dst + r * LD + 4 * f, x);
    }
  } else {
    const int RP = FX_AT_THREADS / DW;
    const int d = tid % DW, r0 = tid / DW;
    const bool din = d < Dh;
    for (int r = r0; r < R; r += RP) {
      float x = 0.0f;
      if (din && r < nrow && (!rowok || rowok[r])) {
        x = src[(u64)r * ld + d];
        bad |= !fx_at_finite(x);
      }
      dst[r * LD + d] = x;
    }
  }
  return bad;
}

// fx_at_pv adds the 32 keys of weights Ps (this thread's rows, from prow,
// row r at prow + 2r·36) times their values (from vrow, key jj at
// vrow + jj·LD) to o, in order of keys. With SKIP, a weight of exactly 0
// adds nothing (not even 0·NaN); the two versions are separate loops, so
// the common one has no test in it.
template <int RT, int DV, int LD, bool SKIP>
FX_DEV void fx_at_pv(fx_at4 (&o)[RT][DV], const float* prow, const float* vrow) {
  for (int jj = 0; jj < 32; jj += 4) {
    fx_at4 pv[RT];
#pragma unroll
    for (int r = 0; r < RT; r++) pv[r] = fx_at_lds4(prow + 2 * r * 36 + jj);
#pragma unroll
    for (int u = 0; u < 4; u++) {
#pragma unroll
      for (int e = 0; e < DV; e++) {
        const fx_at4 vv = fx_at_lds4(vrow + (jj + u) * LD + 64 * e);
#pragma unroll
        for (int r = 0; r < RT; r++) {
          const float p = pv[r][u];
          if (!SKIP) {
            o[r][e] = fx_at_fma4(p, vv, o[r][e]);
          } else if (p != 0.0f) {
            fx_at4 a = o[r][e];
            a.x = __builtin_fmaf(p, vv.x, a.x);
            a.y = __builtin_fmaf(p, vv.y, a.y);
            a.z = __builtin_fmaf(p, vv.z, a.z);
            a.w = __builtin_fmaf(p, vv.w, a.w);
            o[r][e] = a;
          }
        }
      }
    }
  }
}

template <int RT, int KT, int DV>
FX_DEV void fx_at_tiled(float* sm, int* kok, float* wbad, float* z, const float* q, const float* k,
                        const float* v, const int* keyValid, int Tq, int Tk, int H, int Dh, float scale, int causal,
                        int qoff, bool vec) {
  const int BQ = 8 * RT, BK = 16 * KT, DW = 64 * DV, LD = DW + 4, LDP = 36;
  float* Qs = sm;
  float* KV = sm + BQ * LD;
  float* Ps = KV + BK * LD;
  const unsigned b = bid_z(), h = bid_y();
  const int tid = (int)tid_x(), w = tid >> 5, lane = tid & 31, rg = lane >> 4, kg = lane & 15;
  const int i0 = (int)bid_x() * BQ;
  const int nq = Tq - i0 < BQ ? Tq - i0 : BQ;  // queries of this tile (> 0)
  const int row0 = 2 * RT * w + rg;            // this thread's row r is row0 + 2r
  const u64 ld = (u64)H * Dh;                  // from one position to the next in q, k, v, z
  const float* kb = k + (u64)b * Tk * ld + (u64)h * Dh;
  const float* vb = v + (u64)b * Tk * ld + (u64)h * Dh;

  // Keys [kend, Tk) are forbidden for every query of the tile.
  int kend = Tk;
  if (causal) {
    long long lim = (long long)(i0 + nq - 1) + qoff + 1;
    kend = lim < 0 ? 0 : (lim < Tk ? (int)lim : Tk);
  }
  // Row r may see keys j <= lim[r] (causal), lim clamped to [-1, Tk].
  int lim[RT];
#pragma unroll
  for (int r = 0; r < RT; r++) {
    long long l = causal ? (long long)(i0 + row0 + 2 * r) + qoff : (long long)Tk;
    lim[r] = l < -1 ? -1 : (l > Tk ? Tk : (int)l);
  }

  fx_at_stage<BQ, DW, LD>(Qs, q + ((u64)b * Tq + i0) * ld + (u64)h * Dh, ld, nq, nullptr, Dh, vec, tid);

  fx_at4 o[RT][DV];
  float m[RT], l[RT];
#pragma unroll
  for (int r = 0; r < RT; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < DV; e++) o[r][e] = (fx_at4)(0.0f);
  }
  const int nf = (Dh + 3) >> 2;  // float4 steps over d

  for (int j0 = 0; j0 < kend; j0 += BK) {
    const int nk = kend - j0 < BK ? kend - j0 : BK;  // keys of this tile below kend
    sync_threads();  // the previous tile's V (and Qs, the first time) is written or read
    fx_at_stage<BK, DW, LD>(KV, kb + (u64)j0 * ld, ld, nk, nullptr, Dh, vec, tid);
    for (int t = tid; t < BK; t += FX_AT_THREADS)
      kok[t] = t < nk && (!keyValid || keyValid[(u64)b * Tk + j0 + t] != 0);
    sync_threads();

    // S = Q·Kᵀ: s[r][c] for row row0 + 2r, key kg + 16c.
    float s[RT][KT];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
      for (int c = 0; c < KT; c++) s[r][c] = 0.0f;
    {
      const float* qp = Qs + row0 * LD;
      const float* kp = KV + kg * LD;
      for (int f = 0; f < nf; f++) {
        fx_at4 kv[KT];
#pragma unroll
        for (int c = 0; c < KT; c++) kv[c] = fx_at_lds4(kp + 16 * c * LD + 4 * f);
#pragma unroll
        for (int r = 0; r < RT; r++) {
          const fx_at4 qv = fx_at_lds4(qp + 2 * r * LD + 4 * f);
#pragma unroll
          for (int c = 0; c < KT; c++) {
            float a = s[r][c];
            a = __builtin_fmaf(qv.x, kv[c].x, a);
            a = __builtin_fmaf(qv.y, kv[c].y, a);
            a = __builtin_fmaf(qv.z, kv[c].z, a);
            a = __builtin_fmaf(qv.w, kv[c].w, a);
            s[r][c] = a;
          }
        }
      }
    }

    // Mask, scale, online softmax.
    bool kin[KT];
#pragma unroll
    for (int c = 0; c < KT; c++) kin[c] = kok[kg + 16 * c] != 0;
#pragma unroll
    for (int r = 0; r < RT; r++) {
      float mt = -INFINITY;
#pragma unroll
      for (int c = 0; c < KT; c++) {
        const bool allowed = kin[c] && j0 + kg + 16 * c <= lim[r];
        const float sc = fx_mul_rn(s[r][c], scale);
        s[r][c] = allowed ? sc : -INFINITY;
        mt = __builtin_fmaxf(mt, s[r][c]);
      }
#pragma unroll
      for (int x = 1; x < 16; x <<= 1) mt = __builtin_fmaxf(mt, shfl_xor(mt, x));
      // A NaN score is not the max (fmax drops it) but its weight is NaN,
      // which reaches l and the output as on the CPU.
      const float mn = __builtin_fmaxf(m[r], mt);
      const float mu = mn == -INFINITY ? 0.0f : mn;  // no key allowed yet: every weight is 0
      const float alpha = fx_at_ex2(fx_mul_rn(m[r] - mu, FX_AT_LOG2E));
      m[r] = mn;
      float ps = 0.0f;
#pragma unroll
      for (int c = 0; c < KT; c++) {
        s[r][c] = fx_at_ex2(fx_mul_rn(s[r][c] - mu, FX_AT_LOG2E));
        ps += s[r][c];
      }
      l[r] = __builtin_fmaf(l[r], alpha, ps);
#pragma unroll
      for (int e = 0; e < DV; e++) o[r][e] *= alpha;
    }

    sync_threads();  // every warp is done with K
    bool bad = fx_at_stage<BK, DW, LD>(KV, vb + (u64)j0 * ld, ld, nk, kok, Dh, vec, tid);
    const float wb = warp_max(bad ? 1.0f : 0.0f);
    if (lane == 0) wbad[w] = wb;
    sync_threads();
    const bool skip = wbad[0] != 0.0f || wbad[1] != 0.0f || wbad[2] != 0.0f || wbad[3] != 0.0f;

    // O += P·V, 32 keys at a time; Ps rows are this warp's own.
#pragma unroll
    for (int half = 0; half < KT / 2; half++) {
      if (half > 0) fx_at_syncwarp();  // the previous half's weights are read
#pragma unroll
      for (int r = 0; r < RT; r++)
#pragma unroll
        for (int c = 0; c < 2; c++) Ps[(row0 + 2 * r) * LDP + kg + 16 * c] = s[r][2 * half + c];
      fx_at_syncwarp();
      if (skip)
        fx_at_pv<RT, DV, LD, true>(o, Ps + row0 * LDP, KV + 32 * half * LD + 4 * kg);
      else
        fx_at_pv<RT, DV, LD, false>(o, Ps + row0 * LDP, KV + 32 * half * LD + 4 * kg);
    }
  }

  // l over the row's 16 lanes; z = o / l (0 where no key is allowed).
#pragma unroll
  for (int r = 0; r < RT; r++) {
    float lr = l[r];
#pragma unroll
    for (int x = 1; x < 16; x <<= 1) lr += shfl_xor(lr, x);
    const int i = i0 + row0 + 2 * r;
    if (i >= Tq) continue;
    float* zr = z + ((u64)b * Tq + i) * ld + (u64)h * Dh;
#pragma unroll
    for (int e = 0; e < DV; e++)
#pragma unroll
      for (int u = 0; u < 4; u++) {
        const int d = 64 * e + 4 * kg + u;
        if (d < Dh) zr[d] = lr != 0.0f ? o[r][e][u] / lr : 0.0f;
      }
  }
}

extern "C" __global__ __launch_bounds__(FX_AT_THREADS) void fx_attention_tiled(
    float* z, const float* q, const float* k, const float* v, const int* keyValid, int B, int Tq, int Tk, int H,
    int Dh, float scale, int causal, int qoff, const float* qoffAt) {
  __shared__ __attribute__((aligned(16))) float sm[FX_AT_SMEM];
  __shared__ int kok[64];
  __shared__ float wbad[FX_AT_THREADS / 32];
  if (Dh <= 0 || Dh > 128 || Tq <= 0 || Tk <= 0 || bdim_x() != FX_AT_THREADS) return;
  if (bid_z() >= (unsigned)B || bid_y() >= (unsigned)H) return;
  const int BQ = Dh <= 64 ? 64 : 32;
  if ((long long)bid_x() * BQ >= Tq) return;  // the whole block
  qoff = fx_query_offset(qoff, qoffAt);
  const bool vec = (Dh & 3) == 0 && (((unsigned long long)q | (unsigned long long)k | (unsigned long long)v) & 15) == 0;
  if (Dh <= 64)
    fx_at_tiled<8, 4, 1>(sm, kok, wbad, z, q, k, v, keyValid, Tq, Tk, H, Dh, scale, causal, qoff, vec);
  else
    fx_at_tiled<4, 2, 2>(sm, kok, wbad, z, q, k, v, keyValid, Tq, Tk, H, Dh, scale, causal, qoff, vec);
}

// fx_head_result: out[bt,h,n] = Σ_{d<Dh} z[bt,h,d]·W(h·Dh+d, n), with
// W(r, n) = transW ? w[n·(H·Dh) + r] : w[r·D + n] (w is [H·Dh, D], or
// [D, H·Dh] with transW); out is [BT, H, D].
extern "C" __global__ void fx_head_result(float* out, const float* z, const float* w, int BT, int H, int Dh, int D,
                                          int transW) {
  if (BT <= 0 || H <= 0 || D <= 0) return;
  long long total = (long long)BT * H * D;
  if (total >= (1ll << 31)) return;
  const u64 HD = (u64)H * Dh;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned n = e % (unsigned)D, r = e / (unsigned)D;
    unsigned h = r % (unsigned)H, bt = r / (unsigned)H;
    const float* zr = z + ((u64)bt * H + h) * Dh;
    const u64 r0 = (u64)h * Dh;
    float acc = 0.0f;
    if (transW) {
      const float* wr = w + (u64)n * HD + r0;
      for (int d = 0; d < Dh; d++) acc = __builtin_fmaf(zr[d], wr[d], acc);
    } else {
      const float* wc = w + r0 * D + n;
      for (int d = 0; d < Dh; d++) acc = __builtin_fmaf(zr[d], wc[(u64)d * D], acc);
    }
    out[e] = acc;
  }
}

// fx_attn_scores_backward_dq: dq[b,i,h,d] = scale·Σ_j ds[b,h,i,j]·k[b,j,h,d],
// over keys j in order, skipping ds == 0 (the sum is scaled at the end, as
// on the CPU). dq is [B, Tq, H, Dh].
extern "C" __global__ void fx_attn_scores_backward_dq(float* dq, const float* ds, const float* k, int B, int Tq,
                                                      int Tk, int H, int Dh, float scale) {
  if (B <= 0 || Tq <= 0 || H <= 0 || Dh <= 0) return;
  long long total = (long long)B * Tq * H * Dh;
  if (total >= (1ll << 31)) return;
  const u64 ld = (u64)H * Dh;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned d = e % (unsigned)Dh, r = e / (unsigned)Dh;
    unsigned h = r % (unsigned)H;
    r /= (unsigned)H;
    unsigned i = r % (unsigned)Tq, b = r / (unsigned)Tq;
    const float* sr = ds + (((u64)b * H + h) * Tq + i) * Tk;
    const float* kc = k + (u64)b * Tk * ld + (u64)h * Dh + d;
    float acc = 0.0f;
    for (int j = 0; j < Tk; j++) {
      float g = sr[j];
      if (g != 0.0f) acc = __builtin_fmaf(g, kc[j * ld], acc);
    }
    dq[e] = fx_mul_rn(acc, scale);
  }
}

// fx_attn_scores_backward_dk: dk[b,j,h,d] = scale·Σ_i ds[b,h,i,j]·q[b,i,h,d],
// over queries i in order, skipping ds == 0. dk is [B, Tk, H, Dh].
extern "C" __global__ void fx_attn_scores_backward_dk(float* dk, const float* ds, const float* q, int B, int Tq,
                                                      int Tk, int H, int Dh, float scale) {
  if (B <= 0 || Tk <= 0 || H <= 0 || Dh <= 0) return;
  long long total = (long long)B * Tk * H * Dh;
  if (total >= (1ll << 31)) return;
  const u64 ld = (u64)H * Dh;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned d = e % (unsigned)Dh, r = e / (unsigned)Dh;
    unsigned h = r % (unsigned)H;
    r /= (unsigned)H;
    unsigned j = r % (unsigned)Tk, b = r / (unsigned)Tk;
    const float* sc = ds + ((u64)b * H + h) * Tq * Tk + j;  // column j, stride Tk
    const float* qc = q + (u64)b * Tq * ld + (u64)h * Dh + d;
    float acc = 0.0f;
    for (int i = 0; i < Tq; i++) {
      float g = sc[(u64)i * Tk];
      if (g != 0.0f) acc = __builtin_fmaf(g, qc[i * ld], acc);
    }
    dk[e] = fx_mul_rn(acc, scale);
  }
}

// fx_attn_mix_backward_dp: dp[b,h,i,j] = Σ_d dz[b,i,h,d]·v[b,j,h,d], for
// every (i, j), masked or not (engine/cpu's AttnMixBackward does not read
// the pattern for dpattern). dp is [B, H, Tq, Tk].
extern "C" __global__ void fx_attn_mix_backward_dp(float* dp, const float* dz, const float* v, int B, int Tq,
                                                   int Tk, int H, int Dh) {
  if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0) return;
  long long total = (long long)B * H * Tq * Tk;
  if (total >= (1ll << 31)) return;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned j = e % (unsigned)Tk, r = e / (unsigned)Tk;
    unsigned i = r % (unsigned)Tq;
    r /= (unsigned)Tq;
    unsigned h = r % (unsigned)H, b = r / (unsigned)H;
    const float* zr = dz + (((u64)b * Tq + i) * H + h) * Dh;
    const float* vr = v + (((u64)b * Tk + j) * H + h) * Dh;
    float acc = 0.0f;
    for (int d = 0; d < Dh; d++) acc = __builtin_fmaf(zr[d], vr[d], acc);
    dp[e] = acc;
  }
}

// fx_attn_mix_backward_dv: dv[b,j,h,d] = Σ_i p[b,h,i,j]·dz[b,i,h,d], over
// queries i in order, skipping p == 0. dv is [B, Tk, H, Dh].
extern "C" __global__ void fx_attn_mix_backward_dv(float* dv, const float* p, const float* dz, int B, int Tq,
                                                   int Tk, int H, int Dh) {
  if (B <= 0 || Tk <= 0 || H <= 0 || Dh <= 0) return;
  long long total = (long long)B * Tk * H * Dh;
  if (total >= (1ll << 31)) return;
  const u64 ld = (u64)H * Dh;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned d = e % (unsigned)Dh, r = e / (unsigned)Dh;
    unsigned h = r % (unsigned)H;
    r /= (unsigned)H;
    unsigned j = r % (unsigned)Tk, b = r / (unsigned)Tk;
    const float* pc = p + ((u64)b * H + h) * Tq * Tk + j;  // column j, stride Tk
    const float* zc = dz + (u64)b * Tq * ld + (u64)h * Dh + d;
    float acc = 0.0f;
    for (int i = 0; i < Tq; i++) {
      float g = pc[(u64)i * Tk];
      if (g != 0.0f) acc = __builtin_fmaf(g, zc[i * ld], acc);
    }
    dv[e] = acc;
  }
}
