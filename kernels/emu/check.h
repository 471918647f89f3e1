// check.h — what the emulator's check programs (kernelcheck.cpp,
// attncheck.cpp, bf16check.cpp, recordcheck.cpp) share: the failure count
// their exit status reports, one random stream (each program seeds it in
// main, so its inputs stay its own), random vectors and launch dimensions.
// Include it after the .cu files under test (they bring fx_emu.h).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <random>
#include <vector>

typedef long double LD;
typedef std::vector<float> VF;

// failures counts the checks that failed; main returns failures != 0.
static int failures = 0;

// rng is the program's random stream, seeded in main.
static std::mt19937_64 rng;

// randv returns n values drawn uniformly from [lo, hi).
inline VF randv(size_t n, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  VF v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// D3 is a grid or block dimension.
inline FxEmuDim D3(unsigned x, unsigned y = 1, unsigned z = 1) {
  FxEmuDim d;
  d.x = x, d.y = y, d.z = z;
  return d;
}

// check compares got with want elementwise: |got-want| <= tol·scale[i] (or
// tol·max(|want|, floor) without scale); NaN must match NaN, infinities
// must match exactly. It prints one line (the worst error, where, and how
// many wanted or got values were not finite) and counts a failure.
inline void check(const std::string& name, const float* got, const std::vector<LD>& want, double tol,
                  const std::vector<LD>* scale = nullptr, LD floor = 1e-30L) {
  double worst = 0;
  size_t bad = 0, at = 0, nonfinite = 0;
  for (size_t i = 0; i < want.size(); i++) {
    LD w = want[i];
    float g = got[i];
    bool ok;
    double e = 0;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
      nonfinite++;
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = (LD)g == w;
      nonfinite++;
    } else {
      LD s = scale ? (*scale)[i] : fabsl(w);
      if (s < floor) s = floor;
      e = (double)(fabsl((LD)g - w) / s);
      ok = e <= tol;
    }
    if (e > worst) worst = e, at = i;
    if (!ok) {
      if (bad < 3) printf("    %s: [%zu] got %.9g want %.9Lg\n", name.c_str(), i, g, w);
      bad++;
    }
  }
  printf("%-72s %s  max err %.3g (at %zu) over %zu (%zu not finite)\n", name.c_str(), bad ? "FAIL" : "ok  ", worst,
         at, want.size(), nonfinite);
  if (bad) failures++;
}

// check is check on a vector's values.
inline void check(const std::string& name, const VF& got, const std::vector<LD>& want, double tol,
                  const std::vector<LD>* scale = nullptr, LD floor = 1e-30L) {
  check(name, got.data(), want, tol, scale, floor);
}
