// attention.cu — fx's attention ops: scores q·kᵀ·scale with the mask, the
// mix pattern·v, the fused attention (online softmax), each head's share of
// the output projection, and the backward ops of scores and mix.
//
// Layouts (all dense row-major float32): q [B, Tq, H, Dh]; k, v [B, Tk, H, Dh];
// scores, pattern [B, H, Tq, Tk]; z [B, Tq, H, Dh]. Key j is forbidden for
// query i of sequence b when keyValid != NULL and keyValid[b·Tk + j] == 0,
// or when causal != 0 and j > i + qoff (qoff: keys cached before this
// step's queries).
//
// Reference: engine/cpu (attention.go, grad.go). Sums are float32 in index
// order (fused multiply-adds where the CPU rounds each product); entries of
// a pattern or of dscores that are exactly 0 are skipped, as on the CPU, so
// non-finite values at masked positions never spread.
//
// Geometry, except fx_attention: one thread per output element, block 256,
// grid min(ceil(count/256), 65535) 1-D, grid-stride over the count (which
// must be below 2^31).
//
// fx_attention, version 1 (the only one): a block of 4 warps takes 4
// consecutive queries of one (b, h), one per warp, and walks the keys in
// tiles of 32 staged in shared memory, keeping a running max and sum
// (online softmax, as flash attention does).
#include "fx_cuda.h"

typedef unsigned long long u64;

// fx_attn_scores: s[b,h,i,j] = (Σ_d q[b,i,h,d]·k[b,j,h,d])·scale, or -Inf
// where key j is forbidden for query i.
extern "C" __global__ void fx_attn_scores(float* s, const float* q, const float* k, const int* keyValid,
                                          int B, int Tq, int Tk, int H, int Dh, float scale, int causal, int qoff) {
  if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0) return;
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
                                                               int causal, int qoff) {
  __shared__ float Qs[FX_ATT_WARPS][FX_ATT_DMAX];
  __shared__ float Ks[FX_ATT_KT][FX_ATT_DMAX + 1];  // +1: lanes read column d of 32 rows
  __shared__ float Vs[FX_ATT_KT][FX_ATT_DMAX];
  if (Dh <= 0 || Dh > FX_ATT_DMAX || Tq <= 0 || Tk <= 0 || bdim_x() != 32 * FX_ATT_WARPS) return;
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
