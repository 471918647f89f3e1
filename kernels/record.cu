// record.cu — the recorder's per-element work on the device, so that only
// sketches and quantised bytes cross to the host.
//
// forensics/recorder keeps, per recorded hook and position (a row of n
// values of a [1, T, ...] activation), a sketch: count, mean, L2 norm,
// min, max, a random sign projection (a MatMul, already on the device)
// and the XXH64 of the row's float32 bytes; and, by record level, the
// values themselves, as float32 or rounded to float16. These kernels
// compute what the host would from the same bits, with the host's own
// rules, so that a bundle recorded through them is byte for byte the one
// the host path writes:
//
//   fx_record_rows  per row: sum and sum of squares (float32 partial sums
//                   over blocks of 256 values, four chains each, as
//                   sketch.go's addStats runs them, then added in float64
//                   in order of the blocks), min and max (min32/max32:
//                   NaN skipped as the second operand, the first of equal
//                   values kept, in addStats' order), and the XXH64 of the
//                   row's little-endian bytes (xxh64.go, seed 0).
//   fx_record_f16   float32 → float16 bits with weights.Float32ToF16's rule
//                   (round to nearest, ties to even; subnormals; overflow
//                   to ±Inf; a NaN keeps its sign and the top of its
//                   payload, quieted), not cvt.rn.f16.f32, whose NaNs
//                   differ.
//
// Products are rounded on their own (fx_mul_rn), as Go's compiler does on
// amd64 (no fused multiply-add unless asked): the host path's sums of
// squares are those of GOARCH=amd64 (GOAMD64=v1, the default).
//
// Reference: forensics/recorder (sketch.go, xxh64.go) and
// weights/internal/half; kernels/emu/recordcheck.cpp restates them and
// checks the kernels bit for bit on rows with NaN, ±Inf, ±0 and
// subnormals; forensics/recorder's tests check the recorder's device path
// against its host path, on the CPU with a Go restatement of these
// kernels and on a GPU with them.
//
// Versions:
//   v1: one block of 256 threads per row: thread c takes block c of 256
//       values (rounds of 256 blocks), thread 0 folds the blocks in order;
//       threads 0-3 take one XXH64 lane each over the row's 32-byte
//       stripes, thread 0 finishes the hash.
#include "fx_cuda.h"

typedef unsigned long long u64;

#define RR_THREADS 256
#define RR_BLOCK 256  // values per block of the sums (sketch.go's addStats)

// fx_rec_min and fx_rec_max are sketch.go's min32 and max32: the second
// operand replaces the first only when strictly smaller (larger), so a
// NaN second operand is skipped and of equal values (±0) the first stays.
FX_DEV float fx_rec_min(float a, float b) { return b < a ? b : a; }
FX_DEV float fx_rec_max(float a, float b) { return b > a ? b : a; }

// XXH64 (xxHash's specification; forensics/recorder/xxh64.go).
#define XX_P1 11400714785074694791ull
#define XX_P2 14029467366897019727ull
#define XX_P3 1609587929392839161ull
#define XX_P4 9650029242287828579ull
#define XX_P5 2870177450012600261ull

FX_DEV u64 fx_rotl64(u64 x, int r) { return (x << r) | (x >> (64 - r)); }
FX_DEV u64 fx_xx_round(u64 acc, u64 input) { return fx_rotl64(acc + input * XX_P2, 31) * XX_P1; }
FX_DEV u64 fx_xx_merge(u64 acc, u64 val) { return (acc ^ fx_xx_round(0, val)) * XX_P1 + XX_P4; }

// fx_xx_init returns XXH64 lane j's initial accumulator (j = 0..3: v1..v4).
FX_DEV u64 fx_xx_init(int j) {
  const u64 P1 = XX_P1;
  return j == 0 ? P1 + XX_P2 : j == 1 ? XX_P2 : j == 2 ? 0 : 0 - P1;
}

// fx_xx_lane returns XXH64 lane j's accumulator v after the given number
// of full 32-byte stripes of x: lane j reads the 8-byte words x[8s+2j] |
// x[8s+2j+1] << 32.
FX_DEV u64 fx_xx_lane(u64 v, const float* x, int stripes, int j) {
  for (int s = 0; s < stripes; s++) {
    const float* p = x + (u64)s * 8 + 2 * j;
    v = fx_xx_round(v, (u64)fx_float_bits(p[0]) | (u64)fx_float_bits(p[1]) << 32);
  }
  return v;
}

// fx_xx_finish returns the hash of total bytes (a multiple of 4) given
// the lanes after their full stripes and the tail of m < 8 floats after
// them (xxh64.go's Sum64).
FX_DEV u64 fx_xx_finish(const u64 v[4], const float* tail, int m, u64 total) {
  u64 h;
  if (total >= 32) {
    h = fx_rotl64(v[0], 1) + fx_rotl64(v[1], 7) + fx_rotl64(v[2], 12) + fx_rotl64(v[3], 18);
    h = fx_xx_merge(h, v[0]);
    h = fx_xx_merge(h, v[1]);
    h = fx_xx_merge(h, v[2]);
    h = fx_xx_merge(h, v[3]);
  } else {
    h = v[2] + XX_P5;  // v3's initial value, 0
  }
  h += total;
  int i = 0;
  for (; i + 2 <= m; i += 2) {
    h ^= fx_xx_round(0, (u64)fx_float_bits(tail[i]) | (u64)fx_float_bits(tail[i + 1]) << 32);
    h = fx_rotl64(h, 27) * XX_P1 + XX_P4;
  }
  if (i < m) {
    h ^= (u64)fx_float_bits(tail[i]) * XX_P1;
    h = fx_rotl64(h, 23) * XX_P2 + XX_P3;
  }
  h ^= h >> 33;
  h *= XX_P2;
  h ^= h >> 29;
  h *= XX_P3;
  h ^= h >> 32;
  return h;
}

// fx_rec_block computes block c of row x (values [256c, min(n, 256c+256))):
// its float32 sum and sum of squares, each (s0+s1)+(s2+s3) of four chains
// over the values 4i, 4i+1, 4i+2, 4i+3 (a tail of fewer than four goes to
// chain 0), and its min and max over the pairs and the tail in the order
// addStats takes them, starting from ±Inf (which the fold across blocks
// may start from: see fx_record_rows).
FX_DEV void fx_rec_block(const float* x, int n, int c, float* sum, float* sq, float* mn, float* mx) {
  const int b = c * RR_BLOCK, len = n - b < RR_BLOCK ? n - b : RR_BLOCK;
  const float* p = x + b;
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
  float mn0 = INFINITY, mn1 = INFINITY, mx0 = -INFINITY, mx1 = -INFINITY;
  int i = 0;
  for (; i + 4 <= len; i += 4) {
    const float x0 = p[i], x1 = p[i + 1], x2 = p[i + 2], x3 = p[i + 3];
    s0 += x0;
    s1 += x1;
    s2 += x2;
    s3 += x3;
    q0 += fx_mul_rn(x0, x0);
    q1 += fx_mul_rn(x1, x1);
    q2 += fx_mul_rn(x2, x2);
    q3 += fx_mul_rn(x3, x3);
    mn0 = fx_rec_min(mn0, fx_rec_min(x0, x1));
    mn1 = fx_rec_min(mn1, fx_rec_min(x2, x3));
    mx0 = fx_rec_max(mx0, fx_rec_max(x0, x1));
    mx1 = fx_rec_max(mx1, fx_rec_max(x2, x3));
  }
  for (; i < len; i++) {
    const float v = p[i];
    s0 += v;
    q0 += fx_mul_rn(v, v);
    mn0 = fx_rec_min(mn0, v);
    mx0 = fx_rec_max(mx0, v);
  }
  *sum = (s0 + s1) + (s2 + s3);
  *sq = (q0 + q1) + (q2 + q3);
  *mn = fx_rec_min(mn0, mn1);
  *mx = fx_rec_max(mx0, mx1);
}

// fx_record_rows: the sketch statistics of rows x [T, n] (n >= 1), into
// out [T, 4] words: out[4r] the float64 bits of the row's sum, out[4r+1]
// of its sum of squares, out[4r+2] min's float32 bits | max's << 32 (±Inf
// when every value is NaN: the host makes both NaN), out[4r+3] the
// XXH64. Block 256 threads, one row per block, rows r = blockIdx.x +
// k·gridDim.x (any grid).
//
// addStats folds block j's min into the row's as min32(mn, min32(mn0,
// mn1)) with mn0 and mn1 starting from mn; since mn is never NaN and
// min32 keeps the first of equal values, that is min32(mn, min32(a, b))
// with a and b the chains' minima from +Inf, which fx_rec_block computes
// on its own; likewise max. The float64 sums run in order of the blocks
// on thread 0.
extern "C" __global__ __launch_bounds__(RR_THREADS) void fx_record_rows(u64* out, const float* x, int T, int n) {
  __shared__ float bsum[RR_THREADS], bsq[RR_THREADS], bmn[RR_THREADS], bmx[RR_THREADS];
  __shared__ u64 lanes[4];
  if (T <= 0 || n <= 0 || bdim_x() != RR_THREADS) return;
  const int tid = (int)tid_x();
  const int blocks = (n + RR_BLOCK - 1) / RR_BLOCK;
  for (int r = (int)bid_x(); r < T; r += (int)gdim_x()) {
    const float* xr = x + (u64)r * n;
    double sum = 0, sq = 0;
    float mn = INFINITY, mx = -INFINITY;
    for (int c0 = 0; c0 < blocks; c0 += RR_THREADS) {
      const int c = c0 + tid;
      if (c < blocks) fx_rec_block(xr, n, c, &bsum[tid], &bsq[tid], &bmn[tid], &bmx[tid]);
      sync_threads();
      if (tid == 0) {
        const int m = blocks - c0 < RR_THREADS ? blocks - c0 : RR_THREADS;
        for (int j = 0; j < m; j++) {
          sum += (double)bsum[j];
          sq += (double)bsq[j];
          mn = fx_rec_min(mn, bmn[j]);
          mx = fx_rec_max(mx, bmx[j]);
        }
      }
      sync_threads();  // the blocks' results are read before the next round writes them
    }
    if (tid < 4) lanes[tid] = fx_xx_lane(fx_xx_init(tid), xr, n / 8, tid);
    sync_threads();
    if (tid == 0) {
      const u64 v[4] = {lanes[0], lanes[1], lanes[2], lanes[3]};
      u64* o = out + (u64)r * 4;
      o[0] = __builtin_bit_cast(u64, sum);
      o[1] = __builtin_bit_cast(u64, sq);
      o[2] = (u64)fx_float_bits(mn) | (u64)fx_float_bits(mx) << 32;
      o[3] = fx_xx_finish(v, xr + n / 8 * 8, n % 8, 4 * (u64)n);
    }
    sync_threads();  // lanes is read before the next row writes it
  }
}

// fx_f16_bits is weights.Float32ToF16 (weights/internal/half), on the bits.
FX_DEV unsigned short fx_f16_bits(float f) {
  const unsigned b = fx_float_bits(f);
  const unsigned short sign = (unsigned short)((b >> 16) & 0x8000u);
  const int exp = (int)((b >> 23) & 0xffu);
  const unsigned mant = b & 0x7fffffu;
  if (exp == 0xff) {
    if (mant == 0) return sign | 0x7c00;
    return sign | 0x7e00 | (unsigned short)(mant >> 13);
  }
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A half subnormal (or zero): its mantissa counts units of 2^-24.
    if (e < -10) return sign;
    const unsigned m = mant | 0x800000u;
    const unsigned shift = (unsigned)(14 - e);
    unsigned h = m >> shift;
    const unsigned rem = m & ((1u << shift) - 1);
    const unsigned half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return sign | (unsigned short)h;
  }
  unsigned h = (unsigned)e << 10 | mant >> 13;
  const unsigned rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;  // a carry into the exponent is right, up to Inf
  return sign | (unsigned short)h;
}

// fx_record_f16: out[i] = the float16 bits of x[i], i < n (< 2^31).
// Grid-stride: block 256, any grid.
extern "C" __global__ void fx_record_f16(unsigned short* out, const float* x, int n) {
  if (n <= 0) return;
  for (unsigned i = bid_x() * bdim_x() + tid_x(); i < (unsigned)n; i += gdim_x() * bdim_x()) out[i] = fx_f16_bits(x[i]);
}
