// fx_gelu.h — GELU in float32 for fx's kernels: the elementwise op
// (elementwise.cu) and the matmul epilogue (matmul.cu) share it, so the
// fused MatMulGELU gives the bits of MatMul then GELU.
//
// Reference: engine/cpu (elementwise.go), which computes in float64 and
// rounds once. These compute in float32 with fx_cuda.h's math, in forms that
// stay accurate in relative terms where the textbook formula cancels
// (0.5·x·(1+tanh u) and 0.5·x·(1+erf) for x << 0): a few float32 ulps from
// the float64 result.
#ifndef FX_GELU_H
#define FX_GELU_H

#include "fx_cuda.h"

// GELU's tanh form: 0.5·x·(1+tanh(u)), u = √(2/π)·(x+0.044715·x³).
#define FX_GELU_C 0.79788456080286536  // √(2/π)
#define FX_GELU_A 0.044715

// fx_gelu_u returns u = √(2/π)·x·(1+0.044715·x²) in double: e^(±2u) is
// taken at |2u| up to 104, where a float u's rounding error (and that of
// the constants in float) would come out as 1e-5 relative.
FX_DEV double fx_gelu_u(float x) {
  double xd = x;
  return FX_GELU_C * xd * __builtin_fma(FX_GELU_A, xd * xd, 1.0);
}

// fx_gelu_tanh_f returns 0.5·x·(1+tanh(u)) = x·σ(2u), σ the logistic
// function: with e = e^(-2|u|) in (0, 1], σ(2u) is 1/(1+e) for u >= 0 and
// e/(1+e) for u < 0, neither of which cancels. From |u| = 40 on, 1+e is 1
// and e = e1², e1 = e^(-|u|), is applied in two steps so x·e stays
// accurate where e alone would be subnormal.
FX_DEV float fx_gelu_tanh_f(float x) {
  double u = fx_gelu_u(x);
  double a = __builtin_fabs(u);
  if (u >= 0.0 || a < 40.0) {
    float e = fx_exp_d(-2.0 * a);
    float big = 1.0f / (1.0f + e);
    return fx_mul_rn(x, u >= 0.0 ? big : fx_mul_rn(e, big));
  }
  float e1 = fx_exp_d(-a);  // NaN u lands here: NaN
  return fx_mul_rn(fx_mul_rn(x, e1), e1);
}

// fx_gelu_erf_f returns 0.5·x·(1+erf(x/√2)) = x·Φ(x).
FX_DEV float fx_gelu_erf_f(float x) { return fx_normcdf_mul(x, x); }

// The activations of a matmul's epilogue (the act argument of matmul.cu's
// kernels): engine.Activation + 1, 0 for none.
#define FX_ACT_NONE 0
#define FX_ACT_GELU_TANH 1
#define FX_ACT_GELU_ERF 2

// fx_activate returns v with activation act applied (v itself for
// FX_ACT_NONE or an unknown act).
FX_DEV float fx_activate(float v, int act) {
  if (act == FX_ACT_GELU_TANH) return fx_gelu_tanh_f(v);
  if (act == FX_ACT_GELU_ERF) return fx_gelu_erf_f(v);
  return v;
}

#endif  // FX_GELU_H
