// mathcheck.cpp — measures the float math of fx_cuda.h (and the GELU
// helpers of elementwise.cu) against long-double references, over every
// float input (or a stride through them), on the host.
//
//   clang++-14 -std=c++17 -O2 -DFX_HOST_EMU -I kernels -x c++ kernels/emu/mathcheck.cpp -pthread -o /tmp/mathcheck
//   /tmp/mathcheck [stride]    # stride 1: all 2^32 inputs (a few minutes)
//
// Build it twice, with -ffp-contract=off and with -mfma -ffp-contract=fast,
// to cover both choices the device compiler may make. It prints, for each
// function, the largest error in float ulps of the reference (and where),
// and exits 1 if one exceeds its bound or a special value is wrong. Below
// 2^-126 an ulp is 2^-149: subnormal results are judged in absolute terms.
//
// Measured with stride 13 (-ffp-contract=off; the same with -mfma):
//   fx_expf 1.08, fx_tanhf 1.55, fx_erff 1.04, fx_erfcf 4.10, fx_normcdff 4.51,
//   fx_exp_neg_half_sq 2.21, GELU tanh 3.55, GELU erf 4.90 ulps; the GELU
//   derivatives 6.76 (tanh) and 4.86 (erf) ulps of the larger of their two
//   terms (they cross zero).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "../elementwise.cu"

typedef long double LD;

static LD ulp_of(LD d) {
  d = fabsl(d);
  if (d < 0x1p-126L) return 0x1p-149L;
  if (d > 0x1.fffffep127L) d = 0x1.fffffep127L;
  int e;
  frexpl(d, &e);  // d = m·2^e, m in [0.5, 1)
  return ldexpl(1.0L, e - 24);
}

struct Result {
  double max_ulp = 0;
  float worst = 0;
  long long bad_special = 0;
  float first_bad = 0;
};

// err returns the error of got against want in ulps of scale (the
// magnitude the error is judged against: |want| for a relative measure).
static double err_ulps(float got, LD want, LD scale, bool* special_bad) {
  if (std::isnan(want)) {
    if (!std::isnan(got)) *special_bad = true;
    return 0;
  }
  if (std::isnan(got)) {
    *special_bad = true;
    return 0;
  }
  if (std::isinf(want) || std::isinf(got)) {
    // A finite reference beyond FLT_MAX rounds to Inf.
    LD w = want;
    if (!std::isinf(want) && fabsl(want) >= 0x1.ffffffp127L) w = want > 0 ? INFINITY : -INFINITY;
    if ((LD)got != w) *special_bad = true;
    return 0;
  }
  return (double)(fabsl((LD)got - want) / ulp_of(scale));
}

struct Check {
  const char* name;
  std::function<float(float)> f;
  std::function<LD(float)> ref;
  std::function<LD(float)> scale;  // null: |ref|
  double bound;                     // ulps
};

static Result run(const Check& c, uint64_t stride) {
  const int nt = std::max(1u, std::thread::hardware_concurrency());
  std::vector<Result> rs(nt);
  std::vector<std::thread> th;
  for (int t = 0; t < nt; t++)
    th.emplace_back([&, t] {
      Result& r = rs[t];
      for (uint64_t u = (uint64_t)t * stride; u < (1ull << 32); u += (uint64_t)nt * stride) {
        float x;
        uint32_t b = (uint32_t)u;
        memcpy(&x, &b, 4);
        float got = c.f(x);
        LD want = c.ref(x);
        LD scale = c.scale ? c.scale(x) : want;
        bool bad = false;
        double e = err_ulps(got, want, scale, &bad);
        if (bad) {
          if (r.bad_special++ == 0) r.first_bad = x;
        } else if (e > r.max_ulp) {
          r.max_ulp = e;
          r.worst = x;
        }
      }
    });
  for (auto& t : th) t.join();
  Result out;
  for (auto& r : rs) {
    if (r.max_ulp > out.max_ulp) out.max_ulp = r.max_ulp, out.worst = r.worst;
    if (r.bad_special && !out.bad_special) out.first_bad = r.first_bad;
    out.bad_special += r.bad_special;
  }
  return out;
}

int main(int argc, char** argv) {
  uint64_t stride = argc > 1 ? strtoull(argv[1], 0, 10) : 1;
  const LD C = sqrtl(2.0L / 3.14159265358979323846264338327950288L);
  const LD SQRT2 = sqrtl(2.0L), SQRT2PI = sqrtl(2.0L * 3.14159265358979323846264338327950288L);
  auto gelu_u = [C](float x) { return C * ((LD)x + 0.044715L * (LD)x * x * x); };
  std::vector<Check> checks = {
      {"fx_expf", fx_expf, [](float x) { return expl((LD)x); }, nullptr, 1.3},
      // Arguments that are not floats: x·(1 + 2^-30) in double.
      {"fx_exp_d", [](float x) { return fx_exp_d((double)x + (double)x * 0x1p-30); },
       [](float x) { return expl((LD)((double)x + (double)x * 0x1p-30)); }, nullptr, 1.3},
      {"fx_tanhf", fx_tanhf, [](float x) { return tanhl((LD)x); }, nullptr, 2.0},
      {"fx_erff", fx_erff, [](float x) { return erfl((LD)x); }, nullptr, 1.3},
      {"fx_erfcf", fx_erfcf, [](float x) { return erfcl((LD)x); },
       nullptr, 5.0},
      {"fx_normcdff", fx_normcdff, [SQRT2](float x) { return 0.5L * erfcl(-(LD)x / SQRT2); }, nullptr, 5.5},
      {"fx_exp_neg_half_sq", fx_exp_neg_half_sq, [](float x) { return expl(-0.5L * (LD)x * x); }, nullptr, 2.6},
      {"fx_gelu_tanh_f", fx_gelu_tanh_f,
       [gelu_u](float x) {
         LD u = gelu_u(x);
         return (LD)x / (1.0L + expl(-2.0L * u));
       },
       nullptr, 4.0},
      {"fx_gelu_erf_f", fx_gelu_erf_f, [SQRT2](float x) { return (LD)x * 0.5L * erfcl(-(LD)x / SQRT2); }, nullptr, 6.0},
      {"fx_gelu_tanh_grad", fx_gelu_tanh_grad,
       [C, gelu_u](float x) {
         LD u = gelu_u(x), e = expl(-2.0L * fabsl(u)), big = 1.0L / (1.0L + e), small = e / (1.0L + e);
         LD du = C * (1.0L + 3.0L * 0.044715L * (LD)x * x);
         LD term = small == 0 ? 0.0L * x : 2.0L * x * big * small * du;
         return (u >= 0 ? big : small) + term;
       },
       // Judged against the larger of the two terms (the sum crosses 0).
       [C, gelu_u](float x) {
         LD u = gelu_u(x), e = expl(-2.0L * fabsl(u)), big = 1.0L / (1.0L + e), small = e / (1.0L + e);
         LD du = C * (1.0L + 3.0L * 0.044715L * (LD)x * x);
         LD term = small == 0 ? 0.0L : 2.0L * x * big * small * du;
         return fmaxl(u >= 0 ? big : small, fabsl(term));
       },
       8.0},
      {"fx_gelu_erf_grad", fx_gelu_erf_grad,
       [SQRT2, SQRT2PI](float x) {
         LD phi = expl(-0.5L * (LD)x * x) / SQRT2PI;
         return 0.5L * erfcl(-(LD)x / SQRT2) + (LD)x * phi;
       },
       [SQRT2, SQRT2PI](float x) {
         LD phi = expl(-0.5L * (LD)x * x) / SQRT2PI;
         return fmaxl(0.5L * erfcl(-(LD)x / SQRT2), fabsl((LD)x * phi));
       },
       8.0},
  };
  int rc = 0;
  for (const Check& c : checks) {
    Result r = run(c, stride);
    bool ok = r.max_ulp <= c.bound && r.bad_special == 0;
    printf("%-20s max %.3f ulp at %a (%.9g)%s", c.name, r.max_ulp, r.worst, r.worst, ok ? "" : "  FAIL");
    if (r.bad_special) printf("  %lld wrong special values, first at %a", r.bad_special, r.first_bad);
    printf("\n");
    fflush(stdout);
    if (!ok) rc = 1;
  }
  return rc;
}
