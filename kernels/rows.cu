// rows.cu — fx's row ops over the last dimension: LayerNorm, its scale
// (TransformerLens's hook_scale) and its backward, LayerNorm fused with the
// residual add before it, and Softmax and its backward.
//
// Reference: engine/cpu (elementwise.go, grad.go). The CPU takes LayerNorm's
// mean and variance, LayerNormBackward's sums and SoftmaxBackward's sum in
// float64; so do these kernels, since the formulas built on them cancel
// (x-mean, g-mean(g)-x̂·mean(g·x̂), dy-Σy·dy) and float32 sums would show there
// as relative errors far above float32's. The elementwise steps copy the
// CPU's roundings (float32(n·γ)+β for LayerNorm), so results are within an
// ulp of the CPU's, usually equal. Softmax's exponentials are float32
// (fx_expf), their sum float64.
//
// Reductions are deterministic: each thread sums a strided slice of the row
// in order, warps combine by butterfly shuffles, and every thread then adds
// the warp sums in warp order.
//
// Geometry of every kernel here: one block per row, block 256 threads (any
// multiple of 32 up to 1024 works), grid min(rows, 65535) 1-D with a
// grid-stride loop over rows.
//
// Version 1 of each (the only one).
#include "fx_cuda.h"

// block_sum_d returns the sum of v over the block; every thread gets the
// same bits. sh is __shared__ double[32]; all threads must call it.
FX_DEV double block_sum_d(double v, double* sh) {
  v = warp_sum_d(v);
  if (lane_id() == 0) sh[warp_id()] = v;
  sync_threads();
  double s = 0.0;
  unsigned nw = bdim_x() >> 5;
  for (unsigned w = 0; w < nw; w++) s += sh[w];
  sync_threads();  // sh is read before anyone writes it again
  return s;
}

// block_max returns the NaN-propagating maximum of v over the block (see
// fx_max); every thread gets the same bits. sh is __shared__ float[32].
FX_DEV float block_max(float v, float* sh) {
  v = warp_max(v);
  if (lane_id() == 0) sh[warp_id()] = v;
  sync_threads();
  float m = -INFINITY;
  unsigned nw = bdim_x() >> 5;
  for (unsigned w = 0; w < nw; w++) m = fx_max(m, sh[w]);
  sync_threads();
  return m;
}

// row_variance returns the row's biased variance about its mean mu in
// float64: row_moments' second pass. All threads must call it.
FX_DEV double row_variance(const float* xr, int D, double* sh, double mu) {
  double q = 0.0;
  for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
    double d = (double)xr[c] - mu;
    q += d * d;
  }
  return block_sum_d(q, sh) / (double)D;
}

// row_moments returns the row's mean and biased variance in float64, two
// passes (as engine/cpu's moments). All threads must call it.
FX_DEV void row_moments(const float* xr, int D, double* sh, double* mean, double* var) {
  double s = 0.0;
  for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) s += (double)xr[c];
  double mu = block_sum_d(s, sh) / (double)D;
  *mean = mu;
  *var = row_variance(xr, D, sh, mu);
}

// fx_layernorm: y = (x-mean)/sqrt(var+eps)·gamma + beta over rows of D, as
// engine/cpu: n = float32((x-mean)·rstd) in float64, then float32(n·γ) + β.
extern "C" __global__ void fx_layernorm(float* y, const float* x, const float* gamma, const float* beta,
                                        int rows, int D, float eps) {
  __shared__ double sh[32];
  if (D <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    const float* xr = x + (unsigned long long)r * (unsigned)D;
    float* yr = y + (unsigned long long)r * (unsigned)D;
    double mean, var;
    row_moments(xr, D, sh, &mean, &var);
    double rstd = 1.0 / __builtin_sqrt(var + (double)eps);
    for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
      float n = (float)(((double)xr[c] - mean) * rstd);
      yr[c] = fx_add_rn(fx_mul_rn(n, gamma[c]), beta[c]);
    }
  }
}

// fx_add_layernorm: s = x + delta and y = LayerNorm(s) over rows of D: the
// residual add, with the mean's sums taken as each thread adds its
// elements c = tid, tid + blockDim, … of the row (row_moments' first pass,
// in its order), then fx_layernorm's variance and normalisation on the sum
// as written. Each thread rereads only the elements it wrote, so no
// barrier orders the writes; the bits are those of fx_add then
// fx_layernorm. s and y must not alias x, delta or each other.
extern "C" __global__ void fx_add_layernorm(float* s, float* y, const float* x, const float* delta,
                                            const float* gamma, const float* beta, int rows, int D, float eps) {
  __shared__ double sh[32];
  if (D <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    unsigned long long off = (unsigned long long)r * (unsigned)D;
    float* sr = s + off;
    float* yr = y + off;
    double sum = 0.0;
    for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
      float v = x[off + c] + delta[off + c];
      sr[c] = v;
      sum += (double)v;
    }
    double mean = block_sum_d(sum, sh) / (double)D;
    double var = row_variance(sr, D, sh, mean);
    double rstd = 1.0 / __builtin_sqrt(var + (double)eps);
    for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
      float n = (float)(((double)sr[c] - mean) * rstd);
      yr[c] = fx_add_rn(fx_mul_rn(n, gamma[c]), beta[c]);
    }
  }
}

// fx_layernorm_scale: s[r] = sqrt(var+eps) of row r (float64, rounded once).
extern "C" __global__ void fx_layernorm_scale(float* s, const float* x, int rows, int D, float eps) {
  __shared__ double sh[32];
  if (D <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    double mean, var;
    row_moments(x + (unsigned long long)r * (unsigned)D, D, sh, &mean, &var);
    if (tid_x() == 0) s[r] = (float)__builtin_sqrt(var + (double)eps);
  }
}

// fx_layernorm_backward: dx for y = LayerNorm(x, gamma, beta, eps) given dy,
// as engine/cpu: with x̂ = (x-mean)·rstd and g = dy·gamma (float64),
// dx = rstd·(g - mean(g) - x̂·mean(g·x̂)), in float64, rounded once.
extern "C" __global__ void fx_layernorm_backward(float* dx, const float* x, const float* gamma, const float* dy,
                                                 int rows, int D, float eps) {
  __shared__ double sh[32];
  if (D <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    unsigned long long off = (unsigned long long)r * (unsigned)D;
    const float* xr = x + off;
    const float* dyr = dy + off;
    double mean, var;
    row_moments(xr, D, sh, &mean, &var);
    double rstd = 1.0 / __builtin_sqrt(var + (double)eps);
    double s1 = 0.0, s2 = 0.0;
    for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
      double n = ((double)xr[c] - mean) * rstd;
      double g = (double)dyr[c] * (double)gamma[c];
      s1 += g;
      s2 += g * n;
    }
    double m1 = block_sum_d(s1, sh) / (double)D;
    double m2 = block_sum_d(s2, sh) / (double)D;
    for (unsigned c = tid_x(); c < (unsigned)D; c += bdim_x()) {
      double n = ((double)xr[c] - mean) * rstd;
      double g = (double)dyr[c] * (double)gamma[c];
      dx[off + c] = (float)(rstd * (g - m1 - n * m2));
    }
  }
}

// fx_softmax: y = exp(x-max)/Σexp(x-max) over rows of N; a row whose max
// is -Inf (all -Inf) becomes zeros; a NaN anywhere in a row makes it all
// NaN (engine/cpu's max propagates NaN). x - max is float32 (as on the
// CPU), e^(x-max) float32, the sum and the division float64. y may be x.
extern "C" __global__ void fx_softmax(float* y, const float* x, int rows, int N) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  if (N <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    unsigned long long off = (unsigned long long)r * (unsigned)N;
    const float* xr = x + off;
    float* yr = y + off;
    float m = -INFINITY;
    for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) m = fx_max(m, xr[c]);
    m = block_max(m, shf);
    if (m == -INFINITY) {  // the same for every thread
      for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) yr[c] = 0.0f;
      continue;
    }
    // Each thread rereads only the elements it wrote itself.
    double s = 0.0;
    for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) {
      float e = fx_expf(xr[c] - m);
      yr[c] = e;
      s += (double)e;
    }
    s = block_sum_d(s, shd);
    for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) yr[c] = (float)((double)yr[c] / s);
  }
}

// fx_softmax_backward: dx = y·(dy - s), s = Σ_{y≠0} y·dy, over rows of N,
// in float64 (y·dy is exact there) and rounded once; where y is 0, dx is +0
// and dy is not read, so non-finite dy at masked entries cannot spread.
extern "C" __global__ void fx_softmax_backward(float* dx, const float* y, const float* dy, int rows, int N) {
  __shared__ double sh[32];
  if (N <= 0) return;
  for (unsigned r = bid_x(); r < (unsigned)rows; r += gdim_x()) {
    unsigned long long off = (unsigned long long)r * (unsigned)N;
    const float* yr = y + off;
    const float* dyr = dy + off;
    double s = 0.0;
    for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) {
      float v = yr[c];
      if (v != 0.0f) s += (double)v * (double)dyr[c];
    }
    s = block_sum_d(s, sh);
    for (unsigned c = tid_x(); c < (unsigned)N; c += bdim_x()) {
      float v = yr[c];
      dx[off + c] = v != 0.0f ? (float)((double)v * ((double)dyr[c] - s)) : 0.0f;
    }
  }
}
