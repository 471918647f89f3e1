// check.h — what the emulator's check programs (kernelcheck.cpp,
// attncheck.cpp, bf16check.cpp, recordcheck.cpp) share: the failure count
// their exit status reports, one random stream (each program seeds it in
// main, so its inputs stay its own), random vectors and launch dimensions.
// Include it after the .cu files under test (they bring fx_emu.h).
#pragma once

#include <cstddef>
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
