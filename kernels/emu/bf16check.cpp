// bf16check.cpp — runs matmul_bf16.cu's kernels on the host emulator
// (fx_emu.h) and checks them:
//   - fx_bf16_pack_weight against weights.Float32ToBF16's rule (round to
//     nearest, ties to even), bit for bit, both layouts of w, with the
//     zero padding to Kp;
//   - fx_matmul_bf16 (with matmul.cu's fx_matmul_splitk_reduce where K is
//     split) against the product of the BF16-rounded inputs in long double:
//     exact up to the FP32 accumulation (3e-7·(2 + K/64) of Σ|x·W|), and
//     against the exact product within 1.6e-2 of Σ|x·W|, on edge shapes
//     (M, N, K not multiples of the tiles, K odd, x off 16-byte alignment,
//     chunks of K that do not divide it) and GPT-2 shapes.
//
//   clang++-14 -std=c++17 -O1 -DFX_HOST_EMU -I kernels -x c++ kernels/emu/bf16check.cpp -pthread -o /tmp/bf16check
//   /tmp/bf16check [edges|gpt2]
//
// Build it with -fsanitize=thread to find races on shared memory (the
// edges set is sized for that; gpt2 takes minutes without it). Exit status
// 1 if a check fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "../matmul.cu"
#include "../matmul_bf16.cu"
#include "check.h"

static int cdiv(int a, int b) { return (a + b - 1) / b; }

// bf16_ref is weights.Float32ToBF16 (weights/internal/half), restated.
static uint16_t bf16_ref(float f) {
  uint32_t b = __builtin_bit_cast(uint32_t, f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40);
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
static float bf16_val(uint16_t h) { return __builtin_bit_cast(float, (uint32_t)h << 16); }

static void report(const std::string& name, size_t bad, double worst, size_t n) {
  printf("%-78s %s  max err %.3g over %zu\n", name.c_str(), bad ? "FAIL" : "ok  ", worst, n);
  if (bad) failures++;
}

// pack runs fx_bf16_pack_weight and returns wb [N, Kp].
static std::vector<uint16_t> pack(const float* w, int K, int N, int Kp, int transW) {
  std::vector<uint16_t> wb((size_t)N * Kp, 0xdead);
  fx_emu_launch(D3(cdiv(Kp, 32), cdiv(N, 32)), D3(256), [&] { fx_bf16_pack_weight(wb.data(), w, K, N, Kp, transW); });
  return wb;
}

static void check_pack(int K, int N, int transW) {
  VF w = randv((size_t)K * N, -3, 3);
  // Ties, both ways, and values that round up into the exponent.
  const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x3f7fffffu, 0x7f7fffffu, 0x00008000u,
                              0x00018000u, 0x80000000u, 0x7f800000u, 0xff800000u};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && i < w.size(); i++)
    w[i * 7 % w.size()] = __builtin_bit_cast(float, special[i]);
  int Kp = (K + 7) & ~7;
  std::vector<uint16_t> wb = pack(w.data(), K, N, Kp, transW);
  size_t bad = 0;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < Kp; k++) {
      uint16_t want = 0;
      if (k < K) want = bf16_ref(transW ? w[(size_t)n * K + k] : w[(size_t)k * N + n]);
      uint16_t got = wb[(size_t)n * Kp + k];
      if (got != want) {
        if (bad < 3) printf("    pack [n=%d k=%d] got %#06x want %#06x\n", n, k, got, want);
        bad++;
      }
    }
  char name[120];
  snprintf(name, sizeof name, "fx_bf16_pack_weight K=%d N=%d Kp=%d transW=%d (bits)", K, N, Kp, transW);
  report(name, bad, 0, wb.size());
}

// check_matmul runs y = x·W + bias through fx_bf16_pack_weight and
// fx_matmul_bf16 with chunks of kchunk (<= 0: one), as engine/gpu's
// MatMul does in BF16 mode, and checks every element.
static void check_matmul(int M, int N, int K, int transW, bool withBias, int kchunk, int xoff = 0) {
  VF xs = randv((size_t)M * K + xoff), w = randv((size_t)K * N), bias = randv(N);
  const float* x = xs.data() + xoff;
  const float* bp = withBias ? bias.data() : nullptr;
  int Kp = (K + 7) & ~7;
  std::vector<uint16_t> wb = pack(w.data(), K, N, Kp, transW);
  if (kchunk <= 0 || kchunk >= K) kchunk = K;
  int splits = cdiv(K, kchunk);
  VF y((size_t)M * N, NAN), part;
  float* dst = y.data();
  if (splits > 1) {
    part.assign((size_t)splits * M * N, NAN);
    dst = part.data();
  }
  auto t0 = std::chrono::steady_clock::now();
  fx_emu_launch_shared(D3(cdiv(N, 128), cdiv(M, 128), splits), D3(256), FX_MATMUL_BF16_SHARED, [&] {
    fx_matmul_bf16(dst, x, wb.data(), splits > 1 ? nullptr : bp, M, N, K, Kp, splits > 1 ? kchunk : 0);
  });
  if (splits > 1)
    fx_emu_launch(D3(4), D3(256), [&] { fx_matmul_splitk_reduce(y.data(), part.data(), bp, M, N, splits); });
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  double tol = 3e-7 * (2 + K / 64.0);
  size_t bad = 0, bad_exact = 0;
  double worst = 0, worst_exact = 0;
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      LD acc = 0, accb = 0, sa = 0;
      for (int k = 0; k < K; k++) {
        float xv = x[(size_t)m * K + k], wv = transW ? w[(size_t)n * K + k] : w[(size_t)k * N + n];
        acc += (LD)xv * wv, sa += fabsl((LD)xv * wv);
        accb += (LD)bf16_val(bf16_ref(xv)) * bf16_val(bf16_ref(wv));
      }
      LD bv = bp ? bp[n] : 0;
      sa += fabsl(bv) + 1e-30L;
      float g = y[(size_t)m * N + n];
      double e = std::isnan(g) ? INFINITY : (double)(fabsl((LD)g - (accb + bv)) / sa);
      double ee = std::isnan(g) ? INFINITY : (double)(fabsl((LD)g - (acc + bv)) / sa);
      if (e > tol) {
        if (bad < 3) printf("    [%d, %d] got %.9g want %.9Lg (bf16 inputs)\n", m, n, g, accb + bv);
        bad++;
      }
      if (ee > 1.6e-2) bad_exact++;
      worst = std::max(worst, e), worst_exact = std::max(worst_exact, ee);
    }
  char name[160];
  snprintf(name, sizeof name, "fx_matmul_bf16 %dx%dx%d transW=%d bias=%d kchunk=%d splits=%d%s [%.0f ms]", M, N, K,
           transW, (int)withBias, kchunk, splits, xoff ? " x+1" : "", ms);
  report(std::string(name) + " (vs bf16 inputs)", bad, worst, y.size());
  report(std::string(name) + " (vs exact)", bad_exact, worst_exact, y.size());
}

static void test_edges() {
  for (int transW = 0; transW < 2; transW++) {
    check_pack(1, 1, transW);
    check_pack(37, 45, transW);
    check_pack(64, 33, transW);
  }
  struct MM {
    int M, N, K;
  };
  int parity = 0;
  for (MM sh : std::vector<MM>{{1, 1, 1}, {7, 5, 3}, {129, 130, 9}, {65, 63, 100}, {33, 131, 37}, {9, 24, 260}})
    for (int transW = 0; transW < 2; transW++) {
      bool bias = (parity++ & 1) != 0;
      check_matmul(sh.M, sh.N, sh.K, transW, bias, 0);
      if (sh.K > 64) check_matmul(sh.M, sh.N, sh.K, transW, !bias, 64);  // split-K, reduced with the bias
    }
  // x off 16-byte alignment and K % 4 != 0: x in 4-byte copies; a K of
  // more tiles than stages.
  check_matmul(130, 129, 20, 0, true, 0, 1);
  check_matmul(17, 40, 200, 1, false, 0, 1);
  check_matmul(40, 136, 200, 0, true, 96);
}

static void test_gpt2() {
  // GPT-2 small's products at one block row (M = 16 and 130, an edge of
  // the 128-row tile), as engine/gpu plans them on 132 SMs: K = 768 split
  // in chunks of 256 or 384, K = 3072 in chunks of 768.
  check_matmul(16, 2304, 768, 0, true, 256);   // c_attn
  check_matmul(130, 768, 768, 0, true, 384);   // attn c_proj
  check_matmul(16, 3072, 768, 0, true, 256);   // c_fc
  check_matmul(16, 768, 3072, 0, true, 768);   // mlp c_proj
  check_matmul(16, 1000, 768, 1, false, 256);  // the unembedding (w [V, D]), a slice of V
}

int main(int argc, char** argv) {
  rng.seed(4242);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string only = argc > 1 ? argv[1] : "";
  if (only.empty() || only == "edges") test_edges();
  if (only.empty() || only == "gpt2") test_gpt2();
  printf(failures ? "FAIL: %d checks\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
