// recordcheck.cpp — runs record.cu's kernels on the host emulator
// (fx_emu.h) and checks them bit for bit against the host recorder's
// rules, restated here from forensics/recorder/sketch.go (addStats, min32,
// max32), forensics/recorder/xxh64.go (WriteFloat32s, Sum64) and
// weights/internal/half (Float32ToF16): rows of many lengths (below one
// 32-byte stripe, around the 256-value blocks, more than 256 blocks so
// that thread 0 folds in rounds), a grid smaller than the rows, and values
// that tell the rules apart (NaN first or second in a pair, ±0 in both
// orders, ±Inf, subnormals, rows all NaN, float16 ties, overflow and
// subnormal results, NaN payloads). A sum that is NaN matches any NaN: the
// payload an add of NaNs keeps is the hardware's (the recorder stores one
// canonical NaN for a NaN mean or L2 norm).
//
//   clang++-14 -std=c++17 -O1 -DFX_HOST_EMU -ffp-contract=off -I kernels -x c++ kernels/emu/recordcheck.cpp -pthread -o /tmp/recordcheck
//   /tmp/recordcheck
//
// Build it with -ffp-contract=off (the host rules round each product, as
// Go on amd64 does) and, to find races on shared memory, with
// -fsanitize=thread. Exit status 1 if a check fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../record.cu"
#include "check.h"

static float bitsf(uint32_t u) { return __builtin_bit_cast(float, u); }
static uint32_t fbits(float f) { return __builtin_bit_cast(uint32_t, f); }

// ---------------------------------------------------------------------------
// The host's rules.

static float min32(float a, float b) { return b < a ? b : a; }
static float max32(float a, float b) { return b > a ? b : a; }

struct Stats {
  double sum = 0, sumsq = 0;
  float mn = INFINITY, mx = -INFINITY;
};

// add_stats is sketch.go's addStats on one row, from a reset accumulator.
static Stats add_stats(const float* xs, int n) {
  Stats a;
  const int block = 256;
  float mn = a.mn, mx = a.mx;
  for (int start = 0; start < n; start += block) {
    const float* chunk = xs + start;
    int len = n - start < block ? n - start : block;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
    float mn0 = mn, mn1 = mn, mx0 = mx, mx1 = mx;
    int i = 0;
    for (; i + 4 <= len; i += 4) {
      float x0 = chunk[i], x1 = chunk[i + 1], x2 = chunk[i + 2], x3 = chunk[i + 3];
      s0 += x0, s1 += x1, s2 += x2, s3 += x3;
      q0 += x0 * x0, q1 += x1 * x1, q2 += x2 * x2, q3 += x3 * x3;
      mn0 = min32(mn0, min32(x0, x1));
      mn1 = min32(mn1, min32(x2, x3));
      mx0 = max32(mx0, max32(x0, x1));
      mx1 = max32(mx1, max32(x2, x3));
    }
    for (; i < len; i++) {
      float x = chunk[i];
      s0 += x, q0 += x * x;
      mn0 = min32(mn0, x), mx0 = max32(mx0, x);
    }
    a.sum += (double)((s0 + s1) + (s2 + s3));
    a.sumsq += (double)((q0 + q1) + (q2 + q3));
    mn = min32(mn, min32(mn0, mn1)), mx = max32(mx, max32(mx0, mx1));
  }
  a.mn = mn, a.mx = mx;
  return a;
}

// xxh64_floats is xxh64.go's WriteFloat32s of the row from reset, then
// Sum64: a byte-stream XXH64 (seed 0) of the little-endian bytes.
static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t xround(uint64_t acc, uint64_t in) { return rotl(acc + in * XX_P2, 31) * XX_P1; }
static uint64_t xxh64_floats(const float* xs, int n) {
  std::vector<unsigned char> p(4 * (size_t)n);
  for (int i = 0; i < n; i++) {
    uint32_t u = fbits(xs[i]);
    for (int b = 0; b < 4; b++) p[4 * (size_t)i + b] = (unsigned char)(u >> (8 * b));
  }
  auto le64 = [&](size_t o) {
    uint64_t v = 0;
    for (int b = 0; b < 8; b++) v |= (uint64_t)p[o + b] << (8 * b);
    return v;
  };
  auto le32 = [&](size_t o) {
    uint64_t v = 0;
    for (int b = 0; b < 4; b++) v |= (uint64_t)p[o + b] << (8 * b);
    return v;
  };
  const uint64_t P1 = XX_P1;
  uint64_t v1 = P1 + XX_P2, v2 = XX_P2, v3 = 0, v4 = 0 - P1;
  size_t len = p.size(), o = 0;
  for (; o + 32 <= len; o += 32) {
    v1 = xround(v1, le64(o)), v2 = xround(v2, le64(o + 8)), v3 = xround(v3, le64(o + 16)),
    v4 = xround(v4, le64(o + 24));
  }
  uint64_t h;
  auto merge = [](uint64_t acc, uint64_t val) { return (acc ^ xround(0, val)) * XX_P1 + XX_P4; };
  if (len >= 32) {
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(h, v1), h = merge(h, v2), h = merge(h, v3), h = merge(h, v4);
  } else {
    h = v3 + XX_P5;
  }
  h += len;
  for (; o + 8 <= len; o += 8) {
    h ^= xround(0, le64(o));
    h = rotl(h, 27) * XX_P1 + XX_P4;
  }
  if (o + 4 <= len) {
    h ^= le32(o) * XX_P1;
    h = rotl(h, 23) * XX_P2 + XX_P3;
    o += 4;
  }
  h ^= h >> 33, h *= XX_P2, h ^= h >> 29, h *= XX_P3, h ^= h >> 32;
  return h;
}

// f16_ref is half.Float32ToF16.
static uint16_t f16_ref(float f) {
  uint32_t b = fbits(f);
  uint16_t sign = (uint16_t)(b >> 16) & 0x8000;
  int32_t exp = (int32_t)(b >> 23) & 0xff;
  uint32_t mant = b & 0x7fffff;
  if (exp == 0xff) {
    if (mant == 0) return sign | 0x7c00;
    return sign | 0x7e00 | (uint16_t)(mant >> 13);
  }
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    uint32_t m = mant | 0x800000, shift = (uint32_t)(14 - e), h = m >> shift, rem = m & ((1u << shift) - 1),
             half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1) == 1)) h++;
    return sign | (uint16_t)h;
  }
  uint32_t h = (uint32_t)e << 10 | mant >> 13, rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1)) h++;
  return sign | (uint16_t)h;
}

// ---------------------------------------------------------------------------

static const uint32_t specials[] = {
    0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu,  // NaNs: quiet, negative, signalling payloads
    0x80000000u, 0x00000000u, 0x7f800000u, 0xff800000u,  // -0, +0, ±Inf
    0x00000001u, 0x80000001u, 0x007fffffu,               // subnormals
    0x3f801000u, 0x3f803000u, 0x477ff000u, 0x477fefffu,  // f16 ties both ways, overflow by rounding, just below
    0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u,  // f16 subnormal ties and edges
    0x7f7fffffu, 0xff7fffffu,                            // ±max
};

// row_values fills a row of n with random values of several scales and,
// by kind, special values: 0 none, 1 scattered specials, 2 all NaN, 3 only
// zeros of both signs (so that which zero the min and max keep shows).
static VF row_values(int n, int kind) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::uniform_int_distribution<int> sc(-20, 20);
  VF v(n);
  for (auto& x : v) x = std::ldexp(d(rng), sc(rng));
  if (kind == 1) {
    std::uniform_int_distribution<int> pos(0, n - 1);
    for (int i = 0; i < 1 + n / 16; i++) v[pos(rng)] = bitsf(specials[i % (sizeof(specials) / sizeof(specials[0]))]);
  } else if (kind == 2) {
    for (auto& x : v) x = bitsf(0x7fc00000u);
  } else if (kind == 3) {
    std::uniform_int_distribution<int> s(0, 1);
    for (auto& x : v) x = s(rng) ? 0.0f : -0.0f;
  }
  return v;
}

static void check_rows(int T, int n, unsigned grid) {
  VF x;
  for (int r = 0; r < T; r++) {
    VF row = row_values(n, r % 4);
    x.insert(x.end(), row.begin(), row.end());
  }
  std::vector<u64> out((size_t)T * 4, 0xdeadbeefdeadbeefull);
  fx_emu_launch(D3(grid), D3(256), [&] { fx_record_rows(out.data(), x.data(), T, n); });
  size_t bad = 0;
  for (int r = 0; r < T; r++) {
    const float* row = x.data() + (size_t)r * n;
    Stats s = add_stats(row, n);
    uint64_t want[4] = {__builtin_bit_cast(uint64_t, s.sum), __builtin_bit_cast(uint64_t, s.sumsq),
                        (uint64_t)fbits(s.mn) | (uint64_t)fbits(s.mx) << 32, xxh64_floats(row, n)};
    for (int j = 0; j < 4; j++) {
      u64 got = out[(size_t)r * 4 + j];
      // A NaN sum is any NaN: which payload an add of NaNs keeps differs
      // between CPUs, GPUs and compilers (the recorder stores one NaN).
      if (j < 2 && std::isnan(__builtin_bit_cast(double, got)) && std::isnan(__builtin_bit_cast(double, want[j])))
        continue;
      if (got != want[j]) {
        if (bad < 4)
          printf("    row %d word %d: got %016llx want %016llx\n", r, j, (unsigned long long)out[(size_t)r * 4 + j],
                 (unsigned long long)want[j]);
        bad++;
      }
    }
  }
  printf("%-60s %s  (%zu words differ)\n",
         ("fx_record_rows T=" + std::to_string(T) + " n=" + std::to_string(n) + " grid=" + std::to_string(grid)).c_str(),
         bad ? "FAIL" : "ok  ", bad);
  if (bad) failures++;
}

static void check_f16() {
  // Every special, then a sweep of bit patterns that covers every exponent
  // and the rounding bits.
  VF x;
  for (uint32_t s : specials) x.push_back(bitsf(s));
  for (uint32_t u = 0; u < 0xffffffffu - 0x10000u; u += 0x10001u * 7) x.push_back(bitsf(u));
  for (uint32_t e = 100; e < 145; e++)
    for (uint32_t m = 0x0fffu; m < 0x3fffu; m += 0x0fffu) x.push_back(bitsf(e << 23 | m)), x.push_back(bitsf(1u << 31 | e << 23 | m));
  int n = (int)x.size();
  std::vector<unsigned short> out(n, 0xbeef);
  fx_emu_launch(D3(3), D3(256), [&] { fx_record_f16(out.data(), x.data(), n); });
  size_t bad = 0;
  for (int i = 0; i < n; i++)
    if (out[i] != f16_ref(x[i])) {
      if (bad < 4) printf("    f16 of %08x: got %04x want %04x\n", fbits(x[i]), out[i], f16_ref(x[i]));
      bad++;
    }
  printf("%-60s %s  (%zu of %d differ)\n", "fx_record_f16 (bits)", bad ? "FAIL" : "ok  ", bad, n);
  if (bad) failures++;
}

int main() {
  rng.seed(777);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // Below one stripe, one stripe and its tail cases, around a block of
  // 256, GPT-2's widths, and more than 256 blocks (two rounds of the fold).
  for (int n : {1, 2, 3, 7, 8, 9, 13, 255, 256, 257, 768, 1027, 3072})
    check_rows(5, n, n < 300 ? 2 : 5);  // a grid of 2: rows loop over the grid
  check_rows(2, 256 * 256 + 300, 2);
  check_f16();
  printf(failures ? "FAIL: %d checks\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
