// fx_cuda.h — the CUDA dialect of fx's kernels, without the CUDA headers.
//
// The kernels are compiled by clang alone (no CUDA toolkit, no libdevice):
//
//   clang-14 -x cuda --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc -nocudalib -O3 -Wall -Werror -S
//
// so this header supplies what the CUDA headers would: the function and
// variable qualifiers, thread and block indices, barriers, warp shuffles, the
// tensor-core instructions and asynchronous copies (cp.async) the TF32
// and BF16 matmuls use, dynamic shared memory, and float math written here
// (fx_expf, fx_tanhf, fx_erff, fx_erfcf, fx_normcdff) accurate to a few ulps,
// including subnormals, ±Inf and NaN.
//
// Conventions:
//   - Every kernel is `extern "C" __global__` and takes float*/const float*/
//     const int* pointers and 32-bit int or float scalars.
//   - Helpers are FX_DEV (static, device, always inlined).
//   - Grid-stride loops use unsigned counters, so i + stride cannot
//     overflow for counts below 2^31.
//   - clang compiles CUDA with -ffp-contract=fast: a*b+c may become one
//     fused multiply-add. Where a product must be rounded on its own (to
//     match engine/cpu, or to split a product into exact hi and lo parts)
//     the code uses fx_mul_rn / fx_add_rn, which ptxas never fuses.
//
// With FX_HOST_EMU defined (kernels/emu), the same kernels compile for the
// host and run on a thread-per-GPU-thread emulator, for tests on machines
// without a GPU.
#ifndef FX_CUDA_H
#define FX_CUDA_H

#ifdef FX_HOST_EMU
#include "emu/fx_emu.h"
#else

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline)) inline
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))  // threads[, min blocks per SM]

#define FX_DEV static __device__ __forceinline__

// Thread and block indices (threadIdx, blockIdx, blockDim, gridDim).
FX_DEV unsigned tid_x() { return __nvvm_read_ptx_sreg_tid_x(); }
FX_DEV unsigned bid_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
FX_DEV unsigned bid_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
FX_DEV unsigned bid_z() { return __nvvm_read_ptx_sreg_ctaid_z(); }
FX_DEV unsigned bdim_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
FX_DEV unsigned gdim_x() { return __nvvm_read_ptx_sreg_nctaid_x(); }
FX_DEV unsigned gdim_y() { return __nvvm_read_ptx_sreg_nctaid_y(); }

// sync_threads is __syncthreads (bar.sync 0): every thread of the block
// must reach it.
FX_DEV void sync_threads() { __syncthreads(); }

// Warp shuffles over the full warp (mask 0xffffffff): every lane of the
// warp must execute them together. shfl_xor reads lane ^ m; shfl_idx reads
// lane src. (Inline PTX: clang-14's __nvvm_shfl_sync_* builtins need the
// ptx60 target feature, which the plain command line above does not set.)
FX_DEV float shfl_xor(float v, int m) {
  float r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(m));
  return r;
}
FX_DEV float shfl_idx(float v, int src) {
  float r;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(src));
  return r;
}
FX_DEV double shfl_xor_d(double v, int m) {
  unsigned long long b = __builtin_bit_cast(unsigned long long, v);
  unsigned lo = (unsigned)b, hi = (unsigned)(b >> 32);
  asm volatile("shfl.sync.bfly.b32 %0, %0, %1, 0x1f, 0xffffffff;" : "+r"(lo) : "r"(m));
  asm volatile("shfl.sync.bfly.b32 %0, %0, %1, 0x1f, 0xffffffff;" : "+r"(hi) : "r"(m));
  return __builtin_bit_cast(double, ((unsigned long long)hi << 32) | lo);
}

// Products and sums rounded on their own: ptxas never fuses mul.rn/add.rn
// into an fma.
FX_DEV float fx_mul_rn(float a, float b) {
  float r;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
FX_DEV float fx_add_rn(float a, float b) {
  float r;
  asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

// fx_tf32 rounds x to TF32 (10 mantissa bits, to nearest, ties away from
// zero) and returns its bits, as mma's .tf32 operands want them.
FX_DEV unsigned fx_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// fx_mma_tf32 is one warp-wide D = A·B + C, A 16×8, B 8×8, C/D 16×8 (FP32
// accumulate), with c updated in place. With g = lane>>2 and t = lane&3,
// lane holds (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32):
//   a[0] = A[g][t]   a[1] = A[g+8][t]   a[2] = A[g][t+4]   a[3] = A[g+8][t+4]
//   b[0] = B[t][g]   b[1] = B[t+4][g]                      (B[k][n])
//   c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
FX_DEV void fx_mma_tf32(float c[4], const unsigned a[4], const unsigned b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// fx_bf16 rounds x to bfloat16 (8 mantissa bits, to nearest, ties to
// even; cvt.rn.bf16.f32) and returns its bits.
FX_DEV unsigned short fx_bf16(float x) {
  unsigned short r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return r;
}

// fx_bf16x2 rounds lo and hi to bfloat16 as fx_bf16 does and packs them
// into one register, lo in the low 16 bits, as mma's .bf16 operands want
// two consecutive elements.
FX_DEV unsigned fx_bf16x2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// fx_mma_bf16 is one warp-wide D = A·B + C, A 16×16, B 16×8 in bfloat16,
// C/D 16×8 in FP32, with c updated in place. Each a and b register holds
// two elements, the lower index in the low half. With g = lane>>2 and
// t = lane&3, lane holds (PTX ISA, "Matrix Fragments for mma.m16n8k16",
// .bf16):
//   a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]
//   a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]    b[1] = B[2t+8..2t+9][g]        (B[k][n])
//   c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
FX_DEV void fx_mma_bf16(float c[4], const unsigned a[4], const unsigned b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// FX_DYN_SHARED(T, name) declares the block's dynamic shared memory
// (the launch's sharedBytes) as T name[], 16-byte aligned.
#define FX_DYN_SHARED(T, name) extern __shared__ __attribute__((aligned(16))) T name[]

// fx_smem_addr returns the shared-memory address of p, a generic pointer
// into shared memory, as cp.async wants it.
FX_DEV unsigned fx_smem_addr(const void* p) {
  unsigned r;
  asm("{ .reg .u64 fxa; cvta.to.shared.u64 fxa, %1; cvt.u32.u64 %0, fxa; }"
      : "=r"(r)
      : "l"((unsigned long long)p));
  return r;
}

// Asynchronous copies from global to shared memory (sm_80 cp.async; PTX
// ISA, "Data Movement and Conversion Instructions: cp.async"). A copy of
// size bytes (16: cp.async.cg, both addresses 16-byte aligned; 4:
// cp.async.ca, 4-byte aligned) reads src_bytes <= size bytes from src and
// fills the rest of dst with zeros (src_bytes 0 reads nothing). Copies are
// queued until fx_cp_async_commit closes them into a group;
// fx_cp_async_wait<N> waits until at most the N most recent groups of this
// thread are still in flight. Other threads see the data only after a
// barrier that follows the wait.
FX_DEV void fx_cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(fx_smem_addr(dst)),
               "l"((unsigned long long)src), "r"(src_bytes)
               : "memory");
}
FX_DEV void fx_cp_async4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(fx_smem_addr(dst)),
               "l"((unsigned long long)src), "r"(src_bytes)
               : "memory");
}
FX_DEV void fx_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
FX_DEV void fx_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

#endif  // FX_HOST_EMU

#ifndef INFINITY
#define INFINITY __builtin_inff()
#endif
#ifndef NAN
#define NAN __builtin_nanf("")
#endif

// Warp lane and warp index of a 1-D block.
FX_DEV unsigned lane_id() { return tid_x() & 31u; }
FX_DEV unsigned warp_id() { return tid_x() >> 5; }

FX_DEV float fx_bits_float(unsigned u) { return __builtin_bit_cast(float, u); }
FX_DEV unsigned fx_float_bits(float f) { return __builtin_bit_cast(unsigned, f); }

// fx_max is max(a, b) that propagates NaN (as Go's max does): the result is
// NaN when either is. It is commutative, so reductions with it do not depend
// on their order.
FX_DEV float fx_max(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

// fx_index is v as an index of a position tensor (engine.Backend's Gather,
// SetRowsAt, AttnMask.QueryOffsetAt: integers held as float32), or -1 when
// v is not an integer in [0, 2^24), where float32 holds every integer.
FX_DEV int fx_index(float v) {
  if (!(v >= 0.0f && v < 16777216.0f) || __builtin_truncf(v) != v) return -1;
  return (int)v;
}

// Sums and maxima over a warp by butterfly: every lane gets the same bits
// (a+b = b+a at every step).
FX_DEV float warp_sum(float v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v += shfl_xor(v, m);
  return v;
}
FX_DEV double warp_sum_d(double v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v += shfl_xor_d(v, m);
  return v;
}
FX_DEV float warp_max(float v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = fx_max(v, shfl_xor(v, m));
  return v;
}

// ---------------------------------------------------------------------------
// Float math. Polynomial coefficients are Chebyshev fits (mpmath.chebyfit)
// rounded to float. The max errors quoted are in ulps of the exact result,
// measured against long-double references over every 13th float bit
// pattern (kernels/emu/mathcheck.cpp); a subnormal result's ulp is 2^-149.

// fx_exp_reduced returns e^r·2^k for |r| <= 0.3467 and k in [-150, 128]:
// e^r = 1 + r + r²·q(r), then the scaling by 2^k in two steps by 2^k1 and
// 2^k2, both normal, so a subnormal or overflowing result is rounded once.
FX_DEV float fx_exp_reduced(float r, int k) {
  float q = 0x1.6d112cp-10f;
  q = __builtin_fmaf(q, r, 0x1.120b9p-7f);
  q = __builtin_fmaf(q, r, 0x1.55551ap-5f);
  q = __builtin_fmaf(q, r, 0x1.5554dcp-3f);
  q = __builtin_fmaf(q, r, 0x1p-1f);
  float p = 1.0f + __builtin_fmaf(fx_mul_rn(r, r), q, r);
  int k1 = k >> 1;  // floor(k/2), in [-75, 64]
  int k2 = k - k1;  // in [-75, 64]
  float s1 = fx_bits_float((unsigned)(k1 + 127) << 23);
  float s2 = fx_bits_float((unsigned)(k2 + 127) << 23);
  return fx_mul_rn(fx_mul_rn(p, s1), s2);
}

// fx_expf returns e^x within 1.1 ulps, including subnormal results; NaN
// gives NaN, overflow +Inf, underflow +0.
FX_DEV float fx_expf(float x) {
  if (x != x) return x + x;
  // Beyond [-104, 89] e^x is 0 or +Inf in float; clamping keeps k small.
  x = __builtin_fminf(__builtin_fmaxf(x, -104.0f), 89.0f);
  // x = k·ln2 + r, |r| <= ln2/2 (a hair more, since k comes from a rounded
  // product), with ln2 split in a 16-bit head (k·head is exact) and a tail.
  float k = __builtin_rintf(fx_mul_rn(x, 0x1.715476p+0f));
  float r = __builtin_fmaf(k, -0x1.62e4p-1f, x);
  r = __builtin_fmaf(k, -0x1.7f7d1cp-20f, r);
  return fx_exp_reduced(r, (int)k);
}

// fx_exp_d returns e^y, rounded to float within 1.1 ulps, for a double y:
// for arguments computed in double because their float rounding error,
// times |y|, would show in the result (|y| near 88: 1e-5 relative).
FX_DEV float fx_exp_d(double y) {
  if (y != y) return (float)y;
  y = __builtin_fmin(__builtin_fmax(y, -104.0), 89.0);
  double k = __builtin_rint(y * 1.4426950408889634);
  float r = (float)__builtin_fma(k, -0.69314718055994529, y);
  return fx_exp_reduced(r, (int)k);
}

// fx_tanhf returns tanh(x) within 1.6 ulps.
FX_DEV float fx_tanhf(float x) {
  float a = __builtin_fabsf(x);
  if (a < 0.55f) {
    // tanh(x) = x + x³·P(x²).
    float s = fx_mul_rn(x, x);
    float p = 0x1.4b239ap-9f;
    p = __builtin_fmaf(p, s, -0x1.17641p-7f);
    p = __builtin_fmaf(p, s, 0x1.657936p-6f);
    p = __builtin_fmaf(p, s, -0x1.ba142ep-5f);
    p = __builtin_fmaf(p, s, 0x1.111104p-3f);
    p = __builtin_fmaf(p, s, -0x1.555556p-2f);
    return __builtin_fmaf(fx_mul_rn(x, s), p, x);
  }
  // tanh|x| = (1-e)/(1+e) with e = e^(-2|x|) <= e^-1.1; NaN stays NaN.
  float e = fx_expf(-2.0f * a);
  return __builtin_copysignf((1.0f - e) / (1.0f + e), x);
}

// fx_erf_small returns erf(x) for |x| < 0.85 within 1.1 ulps:
// erf(x) = x + x·P(x²).
FX_DEV float fx_erf_small(float x) {
  float s = fx_mul_rn(x, x);
  float p = 0x1.73962ap-14f;
  p = __builtin_fmaf(p, s, -0x1.b07e1ep-11f);
  p = __builtin_fmaf(p, s, 0x1.556bf4p-8f);
  p = __builtin_fmaf(p, s, -0x1.b81ep-6f);
  p = __builtin_fmaf(p, s, 0x1.ce2ebp-4f);
  p = __builtin_fmaf(p, s, -0x1.812746p-2f);
  p = __builtin_fmaf(p, s, 0x1.06eba8p-3f);
  return __builtin_fmaf(x, p, x);
}

// fx_erfc_tail returns m·erfc(t) for t in [0.5, 10.25), given t² = hi + lo
// exactly (hi the rounded square, lo its rounding error):
// erfc(t) = e^(-t²)·R(t) with R(t) = erfc(t)·e^(t²) (erfcx) fitted on three
// intervals, and e^(-t²) = e^(-hi)·e^(-lo) ≈ e^(-hi)·(1-lo), so the square's
// rounding error (up to 6e-6 relative at t = 10) does not reach the result.
// t itself only feeds R, which varies slowly. The factor e^(-hi) comes last,
// so a product that is normal keeps its precision where e^(-hi) alone
// would be subnormal.
FX_DEV float fx_erfc_tail(float t, float hi, float lo, float m) {
  float r;
  if (t < 1.25f) {
    float v = t - 0.875f;
    r = -0x1.460238p-11f;
    r = __builtin_fmaf(r, v, 0x1.b52ff8p-10f);
    r = __builtin_fmaf(r, v, -0x1.0a7be4p-8f);
    r = __builtin_fmaf(r, v, 0x1.44d5dep-7f);
    r = __builtin_fmaf(r, v, -0x1.779e86p-6f);
    r = __builtin_fmaf(r, v, 0x1.9832c6p-5f);
    r = __builtin_fmaf(r, v, -0x1.9d5868p-4f);
    r = __builtin_fmaf(r, v, 0x1.80ef8ep-3f);
    r = __builtin_fmaf(r, v, -0x1.4369f6p-2f);
    r = __builtin_fmaf(r, v, 0x1.db747ep-2f);
  } else if (t < 2.5f) {
    float v = t - 1.875f;
    r = -0x1.a8bfc4p-16f;
    r = __builtin_fmaf(r, v, 0x1.637b84p-14f);
    r = __builtin_fmaf(r, v, -0x1.06564cp-12f);
    r = __builtin_fmaf(r, v, 0x1.9870ap-11f);
    r = __builtin_fmaf(r, v, -0x1.3326b6p-9f);
    r = __builtin_fmaf(r, v, 0x1.b99b4p-8f);
    r = __builtin_fmaf(r, v, -0x1.2ef92ap-6f);
    r = __builtin_fmaf(r, v, 0x1.8a6ef6p-5f);
    r = __builtin_fmaf(r, v, -0x1.e3658p-4f);
    r = __builtin_fmaf(r, v, 0x1.13e574p-2f);
  } else {
    // R(t) = u·S(u) with u = 1/t.
    float u = 1.0f / t;
    float v = u - 0.25f;
    r = 0x1.5b78eap+0f;
    r = __builtin_fmaf(r, v, -0x1.80bd52p-1f);
    r = __builtin_fmaf(r, v, -0x1.87496cp-4f);
    r = __builtin_fmaf(r, v, 0x1.a5c076p-2f);
    r = __builtin_fmaf(r, v, -0x1.1753f6p-2f);
    r = __builtin_fmaf(r, v, -0x1.cc42c4p-6f);
    r = __builtin_fmaf(r, v, 0x1.c1900ep-3f);
    r = __builtin_fmaf(r, v, -0x1.57a048p-3f);
    r = __builtin_fmaf(r, v, -0x1.e9413p-4f);
    r = __builtin_fmaf(r, v, 0x1.18932cp-1f);
    r = fx_mul_rn(r, u);
  }
  return fx_mul_rn(fx_mul_rn(m, __builtin_fmaf(-lo, r, r)), fx_expf(-hi));
}

// fx_erfcf returns erfc(x) = 1 - erf(x) within 4.1 ulps (relative, also
// where erfc is tiny).
FX_DEV float fx_erfcf(float x) {
  float a = __builtin_fabsf(x);
  if (x != x) return x + x;
  if (a < 0.5f) return 1.0f - fx_erf_small(x);
  float tail = 0.0f;  // erfc(a), 0 in float from a = 10.06 on
  if (a < 10.25f) {
    float hi = fx_mul_rn(a, a);
    tail = fx_erfc_tail(a, hi, __builtin_fmaf(a, a, -hi), 1.0f);
  }
  return x < 0.0f ? 2.0f - tail : tail;
}

// fx_erff returns erf(x) within 1.1 ulps.
FX_DEV float fx_erff(float x) {
  float a = __builtin_fabsf(x);
  if (a < 0.84375f) return fx_erf_small(x);
  if (x != x) return x + x;
  float tail = 0.0f;
  if (a < 10.25f) {
    float hi = fx_mul_rn(a, a);
    tail = fx_erfc_tail(a, hi, __builtin_fmaf(a, a, -hi), 1.0f);
  }
  return __builtin_copysignf(1.0f - tail, x);
}

// fx_normcdf_mul returns m·Φ(x), Φ(x) = (1 + erf(x/√2))/2 the standard
// normal CDF, accurate in relative terms also far in the lower tail, where
// 1 + erf(x/√2) cancels: there Φ(x) = erfc(|x|/√2)/2 with (|x|/√2)² = x²/2
// taken exactly from x² = hi + lo, and m·Φ(x) is rounded once even where
// Φ(x) alone would be subnormal.
FX_DEV float fx_normcdf_mul(float x, float m) {
  float a = __builtin_fabsf(x);
  if (x != x) return x + x;
  float t = fx_mul_rn(a, 0x1.6a09e6p-1f);  // |x|/√2, rounded
  if (t < 0.5f) return fx_mul_rn(m, __builtin_fmaf(0.5f, fx_erf_small(fx_mul_rn(x, 0x1.6a09e6p-1f)), 0.5f));
  if (x > 0.0f) {
    float half = 0.0f;  // erfc(t)/2
    if (t < 10.25f) {
      float hi = fx_mul_rn(a, a);
      half = fx_erfc_tail(t, 0.5f * hi, 0.5f * __builtin_fmaf(a, a, -hi), 0.5f);
    }
    return fx_mul_rn(m, 1.0f - half);
  }
  if (!(t < 10.25f)) return fx_mul_rn(m, 0.0f);  // Φ(x) is 0 in float
  float hi = fx_mul_rn(a, a);
  return fx_erfc_tail(t, 0.5f * hi, 0.5f * __builtin_fmaf(a, a, -hi), 0.5f * m);
}

// fx_normcdff returns Φ(x) within 4.5 ulps.
FX_DEV float fx_normcdff(float x) { return fx_normcdf_mul(x, 1.0f); }

// fx_exp_neg_half_sq_mul returns m·e^(-x²/2) with the square taken exactly
// (as in fx_normcdf_mul) and the exponential applied last, so the result is
// accurate to a few ulps for every x; m·0 for |x| >= 15 and for ±Inf.
FX_DEV float fx_exp_neg_half_sq_mul(float x, float m) {
  float a = __builtin_fabsf(x);
  if (x != x) return x + x;
  if (!(a < 15.0f)) return fx_mul_rn(m, 0.0f);
  float hi = fx_mul_rn(a, a);
  float lo = __builtin_fmaf(a, a, -hi);
  return fx_mul_rn(__builtin_fmaf(-0.5f * lo, m, m), fx_expf(-0.5f * hi));
}

// fx_exp_neg_half_sq returns e^(-x²/2) within 2.3 ulps.
FX_DEV float fx_exp_neg_half_sq(float x) { return fx_exp_neg_half_sq_mul(x, 1.0f); }

#endif  // FX_CUDA_H
