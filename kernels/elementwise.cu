// elementwise.cu — fx's elementwise ops: GELU (tanh and erf forms, the
// float math in fx_gelu.h, which matmul.cu's epilogue shares), tanh,
// broadcast add, their backward ops, and in-place edits of a box of a tensor.
//
// Reference: engine/cpu (elementwise.go, grad.go, edit.go), which computes in
// float64 and rounds once. These kernels compute in float32 with fx_cuda.h's
// math, in forms that stay accurate in relative terms where the textbook
// formula cancels (0.5·x·(1+tanh u) and 0.5·x·(1+erf) for x << 0, 1-tanh²u
// for |u| >> 1): a few float32 ulps from the float64 result.
//
// Geometry of every kernel here: block 256, grid min(ceil(n/256), 65535),
// 1-D, a grid-stride loop over the n elements.
//
// Version 1 of each (the only one): one thread per element.
#include "fx_cuda.h"
#include "fx_gelu.h"  // fx_gelu_tanh_f, fx_gelu_erf_f, fx_gelu_u

// fx_gelu_tanh_grad returns d/dx of 0.5·x·(1+tanh(u)):
// 0.5·(1+tanh u) + 0.5·x·sech²(u)·u'. With e, big and small as in
// fx_gelu_tanh_f, 0.5·(1+tanh u) is big or small and sech²(u) = 4·big·small,
// neither of which cancels.
FX_DEV float fx_gelu_tanh_grad(float x) {
  double u = fx_gelu_u(x);
  double a = __builtin_fabs(u);
  // 2x·u' = 2x·√(2/π)·(1+3·0.044715·x²)
  float du2x = fx_mul_rn(2.0f * x, fx_mul_rn((float)FX_GELU_C, __builtin_fmaf((float)(3 * FX_GELU_A), fx_mul_rn(x, x), 1.0f)));
  if (a < 40.0) {
    float e = fx_exp_d(-2.0 * a);
    float big = 1.0f / (1.0f + e);
    float small = fx_mul_rn(e, big);
    return (u >= 0.0 ? big : small) + fx_mul_rn(fx_mul_rn(du2x, big), small);
  }
  // |u| >= 40 (or NaN): big is 1 and small is e1², applied in two steps.
  // Where e1 is 0 the second term is 0 (0·x: NaN for x = ±Inf, as on the
  // CPU), even where du2x overflowed.
  float e1 = fx_exp_d(-a);
  float half1pt = u >= 0.0 ? 1.0f : fx_mul_rn(e1, e1);
  float term = e1 == 0.0f ? 0.0f * x : fx_mul_rn(fx_mul_rn(du2x, e1), e1);
  return half1pt + term;
}

// fx_gelu_erf_grad returns Φ(x) + x·φ(x), φ(x) = e^(-x²/2)/√(2π).
FX_DEV float fx_gelu_erf_grad(float x) {
  return fx_normcdff(x) + fx_exp_neg_half_sq_mul(x, fx_mul_rn(x, 0x1.988454p-2f));  // 1/√(2π)
}

// fx_gelu_tanh: y[i] = GELU_tanh(x[i]).
extern "C" __global__ void fx_gelu_tanh(float* y, const float* x, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    y[i] = fx_gelu_tanh_f(x[i]);
}

// fx_gelu_erf: y[i] = GELU_erf(x[i]) = 0.5·x·(1+erf(x/√2)).
extern "C" __global__ void fx_gelu_erf(float* y, const float* x, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    y[i] = fx_gelu_erf_f(x[i]);
}

// fx_tanh: y[i] = tanh(x[i]).
extern "C" __global__ void fx_tanh(float* y, const float* x, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    y[i] = fx_tanhf(x[i]);
}

// fx_add: y[i] = a[i] + b[i % nb] (b broadcast over a's leading
// dimensions). y may be a.
extern "C" __global__ void fx_add(float* y, const float* a, const float* b, int n, int nb) {
  if (nb <= 0) return;
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    y[i] = a[i] + b[i % (unsigned)nb];
}

// fx_gelu_tanh_backward: dx[i] = dy[i]·GELU_tanh'(x[i]).
extern "C" __global__ void fx_gelu_tanh_backward(float* dx, const float* x, const float* dy, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    dx[i] = fx_mul_rn(dy[i], fx_gelu_tanh_grad(x[i]));
}

// fx_gelu_erf_backward: dx[i] = dy[i]·GELU_erf'(x[i]).
extern "C" __global__ void fx_gelu_erf_backward(float* dx, const float* x, const float* dy, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x())
    dx[i] = fx_mul_rn(dy[i], fx_gelu_erf_grad(x[i]));
}

// fx_tanh_backward: dx[i] = dy[i]·(1-y[i]²), for y = tanh(x).
extern "C" __global__ void fx_tanh_backward(float* dx, const float* y, const float* dy, int n) {
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x()) {
    float v = y[i];
    dx[i] = fx_mul_rn(dy[i], __builtin_fmaf(-v, v, 1.0f));
  }
}

// Edit modes (engine.EditMode).
#define FX_EDIT_ZERO 0
#define FX_EDIT_SET 1
#define FX_EDIT_ADD 2
#define FX_EDIT_SCALE 3

// fx_edit_box changes a box of t in place (engine.Edit, engine/cpu/edit.go).
// The box has d0·d1·d2·d3·d4 elements; element (i0, …, i4) (i4 fastest) is
// t[toff + Σ i_k·ts_k], and its source value src[soff + Σ i_k·ss_k], or value
// when src is NULL. mode 0 sets it to 0, 1 to the source value, 2 adds the
// source value, 3 multiplies it by value. Distinct box elements must be
// distinct elements of t (as engine.Edit.Check ensures for t's strides).
// Geometry: grid-stride over n = d0·d1·d2·d3·d4 (n < 2^31, computed by the
// host for the grid as well).
extern "C" __global__ void fx_edit_box(float* t, const float* src, int mode, float value,
                                       int d0, int d1, int d2, int d3, int d4,
                                       int ts0, int ts1, int ts2, int ts3, int ts4, int toff,
                                       int ss0, int ss1, int ss2, int ss3, int ss4, int soff) {
  if (d0 <= 0 || d1 <= 0 || d2 <= 0 || d3 <= 0 || d4 <= 0) return;
  long long n = (long long)d0 * d1 * d2 * d3 * d4;
  if (n >= (1ll << 31)) return;
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += bdim_x() * gdim_x()) {
    unsigned r = i;
    long long i4 = r % (unsigned)d4;
    r /= (unsigned)d4;
    long long i3 = r % (unsigned)d3;
    r /= (unsigned)d3;
    long long i2 = r % (unsigned)d2;
    r /= (unsigned)d2;
    long long i1 = r % (unsigned)d1;
    long long i0 = r / (unsigned)d1;
    long long at = toff + i0 * ts0 + i1 * ts1 + i2 * ts2 + i3 * ts3 + i4 * ts4;
    float v = value;
    if (src && (mode == FX_EDIT_SET || mode == FX_EDIT_ADD)) v = src[soff + i0 * ss0 + i1 * ss1 + i2 * ss2 + i3 * ss3 + i4 * ss4];
    switch (mode) {
      case FX_EDIT_ZERO:
        t[at] = 0.0f;
        break;
      case FX_EDIT_SET:
        t[at] = v;
        break;
      case FX_EDIT_ADD:
        t[at] = fx_add_rn(t[at], v);
        break;
      case FX_EDIT_SCALE:
        t[at] = fx_mul_rn(t[at], value);
        break;
    }
  }
}
