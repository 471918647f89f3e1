// attncheck.cpp — runs fx_attention_tiled (kernels/attention.cu) on the host
// emulator (fx_emu.h) against a long-double reference with engine/cpu's
// semantics, on shapes chosen for their edges: query and key counts that
// are not multiples of the tiles, both tile layouts (Dh <= 64 and
// 64 < Dh <= 128), head sizes that are not multiples of 4 (the scalar
// loads), misaligned tensors, cached keys (qoff = Tk - Tq), negative qoff,
// rows with no allowed key, padded keys (scattered, trailing, a whole
// sequence), NaN at padded and at causally forbidden keys, and NaN and Inf
// at allowed keys (which must reach the rows that see them, and only
// those). With the argument v1, fx_attention (version 1) runs on the same
// inputs too, as a second opinion (slowly: its blocks hold 4 queries).
//
//   clang++-14 -std=c++17 -O1 -DFX_HOST_EMU -I kernels -x c++ kernels/emu/attncheck.cpp -pthread -o /tmp/attncheck
//   /tmp/attncheck [v1]
//
// kernels_test.go builds it with -fsanitize=thread, as kernelcheck.cpp: a
// missing barrier (block or warp) shows as a data race on shared memory.
// The emulator's ex2.approx is off by up to the 2 ulps the PTX ISA allows,
// so the tolerances hold for the hardware's. Exit status 1 if a check fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../attention.cu"
#include "check.h"

static bool with_v1 = false;

struct Case {
  int B, Tq, Tk, H, Dh, causal, qoff;
  int pad;        // 0 none; 1 scattered (every 5th key, key 0, all of sequence 1); 2 trailing (the last
                  // 3/5 of sequence 0's keys, all of sequence 1)
  bool poison;    // NaN and Inf in v at allowed keys (and NaN at causally forbidden ones)
  bool misalign;  // q, k, v 4 bytes past 16-byte alignment (the scalar loads)
  int extraX;     // blocks past the query tiles in the grid (they must do nothing)
};

static void run(const Case& c) {
  const int B = c.B, Tq = c.Tq, Tk = c.Tk, H = c.H, Dh = c.Dh;
  const float scale = 1.0f / sqrtf((float)Dh);
  const size_t nq = (size_t)B * Tq * H * Dh, nk = (size_t)B * Tk * H * Dh;
  const int off = c.misalign ? 1 : 0;
  VF qbuf = randv(nq + off, -2, 2), kbuf = randv(nk + off, -2, 2), vbuf = randv(nk + off, -2, 2);
  float *q = qbuf.data() + off, *k = kbuf.data() + off, *v = vbuf.data() + off;

  std::vector<int> valid;
  if (c.pad) {
    valid.assign((size_t)B * Tk, 1);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < Tk; j++) {
        bool padded = b == 1;  // a sequence with every key padded
        if (c.pad == 1) padded |= (b * Tk + j) % 5 == 2 || (b == 0 && j == 0);
        if (c.pad == 2) padded |= b == 0 && j >= Tk - (3 * Tk) / 5;
        valid[(size_t)b * Tk + j] = !padded;
      }
  }
  const int* kv = c.pad ? valid.data() : nullptr;
  auto V = [&](int b, int j, int h, int d) -> float& { return v[(((size_t)b * Tk + j) * H + h) * Dh + d]; };
  auto padded = [&](int b, int j) { return kv && kv[b * Tk + j] == 0; };
  auto forbidden = [&](int b, int i, int j) {
    return padded(b, j) || (c.causal && (long long)j > (long long)i + c.qoff);
  };
  // Non-finite values at padded keys (every test), and with poison at allowed keys too.
  for (int b = 0; b < B; b++)
    for (int j = 0; j < Tk; j++)
      if (padded(b, j))
        for (int h = 0; h < H; h++) V(b, j, h, 0) = NAN, V(b, j, h, Dh - 1) = INFINITY;
  if (c.poison) {
    int b = B - 1 - (B > 1 && c.pad ? 1 : 0);  // not the fully padded sequence
    int j1 = Tk / 2, j2 = Tk - 1;               // j2: causally forbidden for early queries
    while (padded(b, j1) && j1 + 1 < Tk) j1++;
    while (padded(b, j2) && j2 > 0) j2--;
    V(b, j1, 0, Dh - 1) = NAN;
    V(b, j2, H - 1, 0) = INFINITY;
    if (Dh > 1) V(b, j2, H - 1, 1) = -INFINITY;
  }

  // Reference: exact weights over the allowed keys, Σ w·v skipping
  // forbidden keys; scale Σ|w·v| for the tolerance.
  std::vector<LD> want(nq), sc(nq);
  std::vector<LD> s(Tk), w(Tk);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < Tq; i++) {
        LD mx = -INFINITY;
        for (int j = 0; j < Tk; j++) {
          if (forbidden(b, i, j)) continue;
          LD dot = 0;
          for (int d = 0; d < Dh; d++)
            dot += (LD)q[(((size_t)b * Tq + i) * H + h) * Dh + d] * k[(((size_t)b * Tk + j) * H + h) * Dh + d];
          s[j] = dot * scale;
          mx = fmaxl(mx, s[j]);
        }
        LD sum = 0;
        for (int j = 0; j < Tk; j++) sum += forbidden(b, i, j) ? 0 : expl(s[j] - mx);
        for (int j = 0; j < Tk; j++) w[j] = forbidden(b, i, j) ? 0 : expl(s[j] - mx) / sum;
        for (int d = 0; d < Dh; d++) {
          LD acc = 0, sa = 0;
          for (int j = 0; j < Tk; j++)
            if (w[j] != 0) acc += w[j] * V(b, j, h, d), sa += fabsl(w[j] * V(b, j, h, d));
          size_t e = (((size_t)b * Tq + i) * H + h) * Dh + d;
          want[e] = acc, sc[e] = sa + 1e-30L;
        }
      }

  char tag[160];
  snprintf(tag, sizeof tag, "B%d Tq%d Tk%d H%d Dh%d causal%d qoff%d pad%d%s%s", B, Tq, Tk, H, Dh, c.causal, c.qoff,
           c.pad, c.poison ? " poison" : "", c.misalign ? " misaligned" : "");
  const int BQ = Dh <= 64 ? 64 : 32;
  VF z(nq, 7.0f);  // every element must be written
  fx_emu_launch(D3((Tq + BQ - 1) / BQ + c.extraX, H, B), D3(128), [&] {
    fx_attention_tiled(z.data(), q, k, v, kv, B, Tq, Tk, H, Dh, scale, c.causal, c.qoff, nullptr);
  });
  check(std::string("fx_attention_tiled ") + tag, z.data(), want, 2e-6, &sc);
  if (!with_v1) return;
  VF z1(nq, 7.0f);
  fx_emu_launch(D3((Tq + 3) / 4, H, B), D3(128), [&] {
    fx_attention(z1.data(), q, k, v, kv, B, Tq, Tk, H, Dh, scale, c.causal, c.qoff, nullptr);
  });
  check(std::string("fx_attention       ") + tag, z1.data(), want, 2e-6, &sc);
}

int main(int argc, char** argv) {
  rng.seed(4242);
  with_v1 = argc > 1 && std::string(argv[1]) == "v1";
  const std::vector<Case> cases = {
      // Dh <= 64: 64×64 tiles.
      {2, 16, 16, 3, 64, 1, 0, 1, false, false, 0},
      {2, 17, 17, 3, 64, 0, 0, 2, true, false, 1},
      {2, 63, 63, 3, 32, 1, 0, 1, true, false, 0},
      {2, 64, 64, 3, 64, 1, 0, 0, true, false, 0},
      {2, 65, 65, 3, 64, 1, 0, 2, false, true, 0},
      {2, 130, 130, 3, 64, 1, 0, 1, true, false, 0},
      {2, 130, 130, 3, 64, 0, 0, 0, false, true, 0},
      {2, 17, 40, 3, 64, 1, 23, 1, false, false, 0},       // cached keys
      {2, 20, 150, 3, 32, 1, 130, 2, true, false, 0},      // cached keys, trailing padding
      {2, 40, 40, 3, 15, 1, -5, 1, true, false, 0},        // qoff < 0: the first 5 queries see nothing
      {2, 33, 33, 3, 1, 0, 0, 1, false, false, 0},         // Dh = 1
      {2, 64, 64, 3, 33, 1, -70, 0, false, false, 0},      // no query sees a key: zeros, no tile visited
      {1, 5, 7, 2, 64, 1, 2, 0, false, false, 0},          // fewer queries than a tile
      // 64 < Dh <= 128: 32×32 tiles.
      {2, 65, 200, 3, 100, 1, 135, 2, true, false, 0},     // cached keys
      {2, 130, 130, 3, 128, 1, 0, 2, false, false, 0},
      {2, 63, 70, 3, 128, 0, 0, 1, true, false, 2},
      {2, 31, 31, 3, 65, 1, 0, 1, true, true, 0},          // misaligned, the smallest Dh of this layout
      {2, 16, 45, 3, 127, 1, -3, 1, false, false, 0},
  };
  for (const Case& c : cases) run(c);
  printf(failures ? "FAIL: %d checks\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
