// kernelcheck.cpp — runs every kernel of package kernels on the host
// emulator (fx_emu.h) and checks it against a plain reference that follows
// engine/cpu's semantics, on shapes chosen for their edges (sizes that are
// not multiples of the tiles, grids smaller than the work so grid-stride
// loops wrap, masks, non-finite values where they must not spread). The
// fused kernels must also give the bits of the ops they fuse:
// fx_add_layernorm those of fx_add then fx_layernorm, and each matmul
// check in turn runs the GELU epilogue (none, tanh, erf) against the plain
// product followed by fx_gelu_tanh or fx_gelu_erf.
//
//   clang++-14 -std=c++17 -O1 -DFX_HOST_EMU -I kernels -x c++ kernels/emu/kernelcheck.cpp -pthread -o /tmp/kernelcheck
//   /tmp/kernelcheck [elementwise|rows|copy|attention|matmul|matmul-kernels|matmul-dispatch]
//
// Build it with -fsanitize=thread to find races on shared memory: every GPU
// thread is an OS thread and barriers and shuffles synchronise through a
// mutex, so ThreadSanitizer reports any two accesses of shared memory that
// no barrier orders (a missing sync_threads, or lanes of a warp relying on
// running in lockstep), however the threads happened to be scheduled. Build
// it with -fsanitize=address,undefined to find reads and writes out of
// bounds (every tensor is its own exactly sized heap block).
//
// It cannot find what only hardware shows (the real mma's rounding, PTX the
// driver rejects, speed), but it runs the kernels' index arithmetic, bounds
// checks, barriers and shuffles as written. Exit status 1 if a check fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../attention.cu"
#include "../copy.cu"
#include "../elementwise.cu"
#include "../matmul.cu"
#include "../rows.cu"
#include "check.h"

static unsigned grid1(size_t n, unsigned cap = 65535) {
  size_t g = (n + 255) / 256;
  if (g > cap) g = cap;
  return g ? (unsigned)g : 1;
}

// ---------------------------------------------------------------------------

static void test_elementwise() {
  const LD C = sqrtl(2.0L / 3.14159265358979323846L), S2 = sqrtl(2.0L), S2PI = sqrtl(2.0L * 3.14159265358979323846L);
  VF x = randv(3000, -12, 12);
  const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f, 1e30f, -1e30f, 3.4e38f, -3.4e38f};
  for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++) x[i] = sp[i];
  size_t n = x.size();
  VF dy = randv(n, -2, 2);
  VF y(n);
  // A small grid, so the grid-stride loop wraps.
  FxEmuDim g = D3(3), b = D3(256);
  auto run1 = [&](auto kern, const char* name, std::function<LD(float)> ref) {
    fx_emu_launch(g, b, [&] { kern(y.data(), x.data(), (int)n); });
    std::vector<LD> want(n);
    for (size_t i = 0; i < n; i++) want[i] = ref(x[i]);
    check(name, y, want, 2e-6, nullptr, 1e-37L);
  };
  run1(fx_gelu_tanh, "fx_gelu_tanh", [&](float v) {
    LD u = C * ((LD)v + 0.044715L * (LD)v * v * v);
    return (LD)v / (1.0L + expl(-2.0L * u));
  });
  run1(fx_gelu_erf, "fx_gelu_erf", [&](float v) { return (LD)v * 0.5L * erfcl(-(LD)v / S2); });
  run1(fx_tanh, "fx_tanh", [&](float v) { return tanhl((LD)v); });

  auto run2 = [&](auto kern, const char* name, std::function<LD(float, float)> ref,
                  std::function<LD(float, float)> scale) {
    fx_emu_launch(g, b, [&] { kern(y.data(), x.data(), dy.data(), (int)n); });
    std::vector<LD> want(n), sc(n);
    for (size_t i = 0; i < n; i++) want[i] = ref(x[i], dy[i]), sc[i] = scale(x[i], dy[i]);
    check(name, y, want, 2e-6, &sc, 1e-37L);
  };
  auto gt_parts = [&](float v, LD* half, LD* term) {
    LD u = C * ((LD)v + 0.044715L * (LD)v * v * v), e = expl(-2.0L * fabsl(u));
    LD big = 1.0L / (1.0L + e), small = e / (1.0L + e);
    *half = u >= 0 ? big : small;
    *term = small == 0 ? 0.0L * v : 2.0L * v * big * small * C * (1.0L + 3.0L * 0.044715L * (LD)v * v);
  };
  run2(
      fx_gelu_tanh_backward, "fx_gelu_tanh_backward",
      [&](float v, float g) {
        LD h, t;
        gt_parts(v, &h, &t);
        return (LD)g * (h + t);
      },
      [&](float v, float g) {
        LD h, t;
        gt_parts(v, &h, &t);
        return fabsl((LD)g) * fmaxl(h, fabsl(t));
      });
  run2(
      fx_gelu_erf_backward, "fx_gelu_erf_backward",
      [&](float v, float g) {
        return (LD)g * (0.5L * erfcl(-(LD)v / S2) + (LD)v * expl(-0.5L * (LD)v * v) / S2PI);
      },
      [&](float v, float g) {
        return fabsl((LD)g) * fmaxl(0.5L * erfcl(-(LD)v / S2), fabsl((LD)v * expl(-0.5L * (LD)v * v) / S2PI));
      });
  {
    VF t = randv(n, -1, 1);
    fx_emu_launch(g, b, [&] { fx_tanh_backward(y.data(), t.data(), dy.data(), (int)n); });
    std::vector<LD> want(n);
    for (size_t i = 0; i < n; i++) want[i] = (LD)dy[i] * (1.0L - (LD)t[i] * t[i]);
    check("fx_tanh_backward", y, want, 2e-7, nullptr, 1e-30L);
  }
  {
    // Broadcast add, in place (y is a).
    size_t nb = 37, rows = 53;
    VF a = randv(nb * rows), bb = randv(nb);
    std::vector<LD> want(nb * rows);
    for (size_t i = 0; i < want.size(); i++) want[i] = (LD)(a[i] + bb[i % nb]);
    fx_emu_launch(D3(2), b, [&] { fx_add(a.data(), a.data(), bb.data(), (int)(nb * rows), (int)nb); });
    check("fx_add (in place, broadcast)", a, want, 0);
  }
  // fx_edit_box: a [3, 5, 4, 6] tensor t, box [2, 1, 3, 2, 4] over dims
  // (0, -, 1, 2, 3) with offset (1, 0, 1, 1, 2), source [2, 3, 2, 4]
  // broadcast over nothing.
  for (int mode = 0; mode < 4; mode++)
    for (int withSrc = 0; withSrc < 2; withSrc++) {
      int T[4] = {3, 5, 4, 6};
      int ts[5] = {5 * 4 * 6, 0, 4 * 6, 6, 1};
      int d[5] = {2, 1, 3, 2, 4};
      int toff = 1 * ts[0] + 1 * ts[2] + 1 * ts[3] + 2;
      int ss[5] = {3 * 2 * 4, 0, 2 * 4, 4, 1};
      int soff = 0;
      VF t = randv(T[0] * T[1] * T[2] * T[3]);
      VF src = randv(2 * 3 * 2 * 4);
      VF want_f = t;
      float value = 1.75f;
      for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
          for (int i2 = 0; i2 < d[2]; i2++)
            for (int i3 = 0; i3 < d[3]; i3++)
              for (int i4 = 0; i4 < d[4]; i4++) {
                int at = toff + i0 * ts[0] + i1 * ts[1] + i2 * ts[2] + i3 * ts[3] + i4 * ts[4];
                float v = withSrc ? src[soff + i0 * ss[0] + i1 * ss[1] + i2 * ss[2] + i3 * ss[3] + i4 * ss[4]] : value;
                switch (mode) {
                  case 0: want_f[at] = 0; break;
                  case 1: want_f[at] = v; break;
                  case 2: want_f[at] += v; break;
                  case 3: want_f[at] *= value; break;
                }
              }
      std::vector<LD> want(want_f.begin(), want_f.end());
      fx_emu_launch(D3(1), D3(32), [&] {
        fx_edit_box(t.data(), withSrc ? src.data() : nullptr, mode, value, d[0], d[1], d[2], d[3], d[4], ts[0], ts[1],
                    ts[2], ts[3], ts[4], toff, ss[0], ss[1], ss[2], ss[3], ss[4], soff);
      });
      check("fx_edit_box mode " + std::to_string(mode) + (withSrc ? " src" : " value"), t, want, 0);
    }
}

// ---------------------------------------------------------------------------

static void moments(const float* x, int D, LD* mean, LD* var) {
  LD s = 0;
  for (int i = 0; i < D; i++) s += x[i];
  LD m = s / D, q = 0;
  for (int i = 0; i < D; i++) q += ((LD)x[i] - m) * ((LD)x[i] - m);
  *mean = m;
  *var = q / D;
}

static void test_rows() {
  for (int D : {1, 5, 256, 300, 777}) {
    int rows = 7;
    VF x = randv((size_t)rows * D, -3, 3), gam = randv(D, 0.5, 1.5), bet = randv(D), dy = randv((size_t)rows * D);
    for (int i = 0; i < D; i++) x[i] += 100.0f;  // a row with a large mean
    float eps = 1e-5f;
    VF y(x.size()), s(rows), dx(x.size());
    FxEmuDim g = D3(3), b = D3(256);  // 3 blocks for 7 rows: grid-stride
    fx_emu_launch(g, b, [&] { fx_layernorm(y.data(), x.data(), gam.data(), bet.data(), rows, D, eps); });
    fx_emu_launch(g, b, [&] { fx_layernorm_scale(s.data(), x.data(), rows, D, eps); });
    fx_emu_launch(g, b, [&] { fx_layernorm_backward(dx.data(), x.data(), gam.data(), dy.data(), rows, D, eps); });
    std::vector<LD> wy(x.size()), ws(rows), wdx(x.size()), sdx(x.size());
    for (int r = 0; r < rows; r++) {
      const float* xr = &x[(size_t)r * D];
      LD mean, var;
      moments(xr, D, &mean, &var);
      LD rstd = 1.0L / sqrtl(var + eps);
      ws[r] = sqrtl(var + eps);
      LD s1 = 0, s2 = 0;
      for (int c = 0; c < D; c++) {
        float n = (float)(((LD)xr[c] - mean) * rstd);
        volatile float ng = n * gam[c];  // rounded on its own, as on the CPU
        wy[(size_t)r * D + c] = (LD)(ng + bet[c]);
        LD gg = (LD)dy[(size_t)r * D + c] * gam[c], nn = ((LD)xr[c] - mean) * rstd;
        s1 += gg, s2 += gg * nn;
      }
      for (int c = 0; c < D; c++) {
        LD gg = (LD)dy[(size_t)r * D + c] * gam[c], nn = ((LD)xr[c] - mean) * rstd;
        wdx[(size_t)r * D + c] = rstd * (gg - s1 / D - nn * (s2 / D));
        sdx[(size_t)r * D + c] = rstd * (fabsl(gg) + fabsl(s1 / D) + fabsl(nn * s2 / D));
      }
    }
    std::string sfx = " D=" + std::to_string(D);
    check("fx_layernorm" + sfx, y, wy, 1.2e-7, nullptr, 1e-6L);
    {
      // Fused with the residual add: x = a + d, split so that the sum is
      // the x above; s and y must have the bits of fx_add then fx_layernorm
      // (whose y was checked just now).
      VF d = randv(x.size()), a(x.size()), sum(x.size(), NAN), ya(x.size(), NAN), s2(x.size()), y2(x.size());
      for (size_t i = 0; i < x.size(); i++) a[i] = x[i] - d[i];
      fx_emu_launch(g, b, [&] {
        fx_add_layernorm(sum.data(), ya.data(), a.data(), d.data(), gam.data(), bet.data(), rows, D, eps);
      });
      fx_emu_launch(D3(2), b, [&] { fx_add(s2.data(), a.data(), d.data(), (int)x.size(), (int)x.size()); });
      fx_emu_launch(g, b, [&] { fx_layernorm(y2.data(), s2.data(), gam.data(), bet.data(), rows, D, eps); });
      check("fx_add_layernorm sum (bits of fx_add)" + sfx, sum, std::vector<LD>(s2.begin(), s2.end()), 0);
      check("fx_add_layernorm y (bits of fx_add, fx_layernorm)" + sfx, ya, std::vector<LD>(y2.begin(), y2.end()), 0);
      std::vector<LD> wya(x.size());
      for (int r = 0; r < rows; r++) {
        const float* sr = &s2[(size_t)r * D];
        LD mean, var;
        moments(sr, D, &mean, &var);
        LD rstd = 1.0L / sqrtl(var + eps);
        for (int c = 0; c < D; c++) {
          float n = (float)(((LD)sr[c] - mean) * rstd);
          volatile float ng = n * gam[c];
          wya[(size_t)r * D + c] = (LD)(ng + bet[c]);
        }
      }
      check("fx_add_layernorm y" + sfx, ya, wya, 1.2e-7, nullptr, 1e-6L);
    }
    check("fx_layernorm_scale" + sfx, s, ws, 1e-7);
    check("fx_layernorm_backward" + sfx, dx, wdx, 2e-7, &sdx);
  }
  for (int N : {1, 3, 64, 300, 1000}) {
    int rows = 6;
    VF x = randv((size_t)rows * N, -10, 10);
    for (int c = 0; c < N; c += 3) x[(size_t)1 * N + c] = -INFINITY;  // masked entries
    for (int c = 0; c < N; c++) x[(size_t)2 * N + c] = -INFINITY;     // an all-masked row
    if (N > 1) x[(size_t)3 * N + 1] = NAN;                             // a NaN row
    VF y(x.size());
    fx_emu_launch(D3(4), D3(256), [&] { fx_softmax(y.data(), x.data(), rows, N); });
    std::vector<LD> want(x.size());
    for (int r = 0; r < rows; r++) {
      const float* xr = &x[(size_t)r * N];
      float m = -INFINITY;
      bool nan = false;
      for (int c = 0; c < N; c++) nan |= std::isnan(xr[c]), m = std::max(m, xr[c]);
      LD s = 0;
      for (int c = 0; c < N; c++) s += expl((LD)(xr[c] - m));
      for (int c = 0; c < N; c++)
        want[(size_t)r * N + c] = nan ? NAN : (m == -INFINITY ? 0.0L : expl((LD)(xr[c] - m)) / s);
    }
    check("fx_softmax N=" + std::to_string(N), y, want, 3e-7, nullptr, 1e-38L);
    // Backward: y from the forward pass (zeros at masked entries), with
    // non-finite dy where y is 0.
    VF yy = y, dy = randv(x.size());
    for (size_t i = 0; i < yy.size(); i++)
      if (std::isnan(yy[i])) yy[i] = 0.5f;
    for (size_t i = 0; i < yy.size(); i++)
      if (yy[i] == 0) dy[i] = (i & 1) ? NAN : INFINITY;
    VF dx(x.size());
    fx_emu_launch(D3(4), D3(256), [&] { fx_softmax_backward(dx.data(), yy.data(), dy.data(), rows, N); });
    std::vector<LD> wdx(x.size()), sdx(x.size());
    for (int r = 0; r < rows; r++) {
      LD s = 0, sa = 0;
      for (int c = 0; c < N; c++) {
        size_t i = (size_t)r * N + c;
        if (yy[i] != 0) s += (LD)yy[i] * dy[i], sa += fabsl((LD)yy[i] * dy[i]);
      }
      for (int c = 0; c < N; c++) {
        size_t i = (size_t)r * N + c;
        wdx[i] = yy[i] != 0 ? (LD)yy[i] * ((LD)dy[i] - s) : 0.0L;
        sdx[i] = yy[i] != 0 ? fabsl((LD)yy[i]) * (fabsl((LD)dy[i]) + sa) : 1.0L;
      }
    }
    check("fx_softmax_backward N=" + std::to_string(N), dx, wdx, 2e-7, &sdx, 1e-38L);
    for (size_t i = 0; i < dx.size(); i++)
      if (yy[i] == 0 && (dx[i] != 0 || std::signbit(dx[i]))) {
        printf("    fx_softmax_backward: dx[%zu] = %g where y = 0, want +0\n", i, dx[i]);
        failures++;
        break;
      }
  }
}

// ---------------------------------------------------------------------------

static void test_copy() {
  {
    int R = 9, D = 300, n = 13;
    VF x = randv((size_t)R * D);
    std::vector<int> idx(n);
    for (int i = 0; i < n; i++) idx[i] = (i * 7 + 3) % R;
    VF y(n * D);
    fx_emu_launch(D3((D + 255) / 256, 5), D3(256), [&] { fx_gather_rows(y.data(), x.data(), idx.data(), n, D); });
    std::vector<LD> want(n * D);
    for (int r = 0; r < n; r++)
      for (int c = 0; c < D; c++) want[(size_t)r * D + c] = x[(size_t)idx[r] * D + c];
    check("fx_gather_rows", y, want, 0);
    // Scatter back with repeated indices.
    VF s(R * D, 0.0f);
    fx_emu_launch(D3((D + 255) / 256), D3(256), [&] { fx_scatter_add_rows(s.data(), y.data(), idx.data(), n, D); });
    std::vector<LD> ws(R * D, 0.0L);
    for (int r = 0; r < n; r++)
      for (int c = 0; c < D; c++) ws[(size_t)idx[r] * D + c] += y[(size_t)r * D + c];
    check("fx_scatter_add_rows", s, ws, 3e-7, nullptr, 1e-6L);
  }
  {
    int rows = 7, srcCols = 290, dstCols = 400, n = 270, srcOff = 11, dstOff = 100;
    VF src = randv((size_t)rows * srcCols), dst = randv((size_t)rows * dstCols);
    std::vector<LD> want(dst.begin(), dst.end());
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < n; c++) want[(size_t)r * dstCols + dstOff + c] = src[(size_t)r * srcCols + srcOff + c];
    fx_emu_launch(D3((n + 255) / 256, 3), D3(256), [&] {
      fx_copy_cols(dst.data(), dstCols, dstOff, src.data(), srcCols, srcOff, rows, n);
    });
    check("fx_copy_cols", dst, want, 0);
  }
  for (auto sh : std::vector<std::vector<int>>{{3, 5, 7}, {1, 40, 300}, {300, 2, 1}, {2, 1, 9}}) {
    int outer = sh[0], n = sh[1], inner = sh[2];
    VF x = randv((size_t)outer * n * inner);
    VF y((size_t)outer * inner);
    fx_emu_launch(D3(2), D3(256), [&] { fx_sum_axis(y.data(), x.data(), outer, n, inner); });
    std::vector<LD> want(y.size());
    for (int o = 0; o < outer; o++)
      for (int i = 0; i < inner; i++) {
        double s = 0;  // the CPU's float64 sum in order: bit-identical
        for (int j = 0; j < n; j++) s += x[((size_t)o * n + j) * inner + i];
        want[(size_t)o * inner + i] = (float)s;
      }
    check("fx_sum_axis " + std::to_string(outer) + "x" + std::to_string(n) + "x" + std::to_string(inner), y, want, 0);
  }
}

// ---------------------------------------------------------------------------

struct AttnCase {
  int B, Tq, Tk, H, Dh, causal, qoff;
  bool valid;
};

static void test_attention() {
  std::vector<AttnCase> cases = {
      {2, 5, 5, 3, 8, 1, 0, false},     {1, 7, 40, 2, 40, 1, 33, true},  {2, 9, 70, 1, 64, 0, 0, true},
      {1, 1, 37, 2, 128, 1, 36, false}, {1, 6, 33, 1, 100, 1, 27, true}, {2, 4, 3, 2, 1, 0, 0, true},
      {1, 13, 13, 2, 32, 1, 0, true},   {1, 3, 50, 1, 16, 1, -2, false},
  };
  for (const AttnCase& c : cases) {
    int B = c.B, Tq = c.Tq, Tk = c.Tk, H = c.H, Dh = c.Dh;
    float scale = 1.0f / sqrtf((float)Dh);
    VF q = randv((size_t)B * Tq * H * Dh, -2, 2), k = randv((size_t)B * Tk * H * Dh, -2, 2),
       v = randv((size_t)B * Tk * H * Dh, -2, 2);
    std::vector<int> valid;
    if (c.valid) {
      valid.resize(B * Tk);
      for (int i = 0; i < B * Tk; i++) valid[i] = (i % 5) != 2;
      valid[0] = 0;
      if (B > 1)  // a sequence with every key padded
        for (int j = 0; j < Tk; j++) valid[Tk + j] = 0;
    }
    const int* kv = c.valid ? valid.data() : nullptr;
    auto forbidden = [&](int b, int i, int j) {
      return (kv && kv[b * Tk + j] == 0) || (c.causal && (long long)j > (long long)i + c.qoff);
    };
    // Non-finite values at forbidden keys must not spread (fused kernel).
    VF vnan = v;
    for (int b = 0; b < B; b++)
      for (int j = 0; j < Tk; j++)
        if (kv && kv[b * Tk + j] == 0)
          for (int h = 0; h < H; h++) vnan[(((size_t)b * Tk + j) * H + h) * Dh] = NAN;
    char tag[128];
    snprintf(tag, sizeof tag, " B%d Tq%d Tk%d H%d Dh%d c%d q%d v%d", B, Tq, Tk, H, Dh, c.causal, c.qoff, (int)c.valid);
    auto Q = [&](int b, int i, int h, int d) { return q[(((size_t)b * Tq + i) * H + h) * Dh + d]; };
    auto K = [&](int b, int j, int h, int d) { return k[(((size_t)b * Tk + j) * H + h) * Dh + d]; };
    auto V = [&](int b, int j, int h, int d) { return v[(((size_t)b * Tk + j) * H + h) * Dh + d]; };

    size_t ns = (size_t)B * H * Tq * Tk, nz = (size_t)B * Tq * H * Dh;
    VF s(ns);
    fx_emu_launch(D3(grid1(ns, 2)), D3(256), [&] {
      fx_attn_scores(s.data(), q.data(), k.data(), kv, B, Tq, Tk, H, Dh, scale, c.causal, c.qoff, nullptr);
    });
    std::vector<LD> ws(ns), ss(ns), wp(ns);
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++) {
          LD mx = -INFINITY;
          for (int j = 0; j < Tk; j++) {
            size_t e = (((size_t)b * H + h) * Tq + i) * Tk + j;
            LD dot = 0, sa = 0;
            for (int d = 0; d < Dh; d++) dot += (LD)Q(b, i, h, d) * K(b, j, h, d), sa += fabsl((LD)Q(b, i, h, d) * K(b, j, h, d));
            ws[e] = forbidden(b, i, j) ? -INFINITY : dot * scale;
            ss[e] = sa * scale;
            if (!forbidden(b, i, j)) mx = fmaxl(mx, ws[e]);
          }
          LD sum = 0;
          for (int j = 0; j < Tk; j++) {
            size_t e = (((size_t)b * H + h) * Tq + i) * Tk + j;
            sum += forbidden(b, i, j) ? 0 : expl(ws[e] - mx);
          }
          for (int j = 0; j < Tk; j++) {
            size_t e = (((size_t)b * H + h) * Tq + i) * Tk + j;
            wp[e] = forbidden(b, i, j) ? 0 : expl(ws[e] - mx) / sum;
          }
        }
    check("fx_attn_scores" + std::string(tag), s, ws, 2e-7, &ss);

    // Mix with the reference pattern rounded to float.
    VF p(ns);
    for (size_t e = 0; e < ns; e++) p[e] = (float)wp[e];
    std::vector<LD> wz(nz), sz(nz);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++)
          for (int d = 0; d < Dh; d++) {
            LD acc = 0, sa = 0;
            for (int j = 0; j < Tk; j++) {
              LD pe = p[(((size_t)b * H + h) * Tq + i) * Tk + j];
              if (pe != 0) acc += pe * V(b, j, h, d), sa += fabsl(pe * V(b, j, h, d));
            }
            size_t e = (((size_t)b * Tq + i) * H + h) * Dh + d;
            wz[e] = acc, sz[e] = sa + 1e-30L;
          }
    VF z(nz);
    fx_emu_launch(D3(grid1(nz, 3)), D3(256),
                  [&] { fx_attn_mix(z.data(), p.data(), vnan.data(), B, Tq, Tk, H, Dh); });
    check("fx_attn_mix (NaN at padded keys)" + std::string(tag), z, wz, 2e-7 + 1e-8 * Tk, &sz);

    // Fused: against the exact pattern (not rounded to float).
    std::vector<LD> wzx(nz), szx(nz);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++)
          for (int d = 0; d < Dh; d++) {
            LD acc = 0, sa = 0;
            for (int j = 0; j < Tk; j++) {
              LD pe = wp[(((size_t)b * H + h) * Tq + i) * Tk + j];
              if (pe != 0) acc += pe * V(b, j, h, d), sa += fabsl(pe * V(b, j, h, d));
            }
            size_t e = (((size_t)b * Tq + i) * H + h) * Dh + d;
            wzx[e] = acc, szx[e] = sa + 1e-30L;
          }
    VF zf(nz, 7.0f);
    fx_emu_launch(D3((Tq + 3) / 4, H, B), D3(128), [&] {
      fx_attention(zf.data(), q.data(), k.data(), vnan.data(), kv, B, Tq, Tk, H, Dh, scale, c.causal, c.qoff, nullptr);
    });
    check("fx_attention (NaN at padded keys)" + std::string(tag), zf, wzx, 1e-6, &szx);

    // HeadResult, both layouts.
    for (int transW = 0; transW < 2; transW++) {
      int Dm = 19, BT = B * Tq;
      VF w = randv((size_t)H * Dh * Dm);
      size_t no = (size_t)BT * H * Dm;
      VF out(no);
      fx_emu_launch(D3(grid1(no, 2)), D3(256),
                    [&] { fx_head_result(out.data(), z.data(), w.data(), BT, H, Dh, Dm, transW); });
      std::vector<LD> wo(no), so(no);
      for (int bt = 0; bt < BT; bt++)
        for (int h = 0; h < H; h++)
          for (int n = 0; n < Dm; n++) {
            LD acc = 0, sa = 0;
            for (int d = 0; d < Dh; d++) {
              int r = h * Dh + d;
              LD wv = transW ? w[(size_t)n * H * Dh + r] : w[(size_t)r * Dm + n];
              LD zv = z[((size_t)bt * H + h) * Dh + d];
              acc += zv * wv, sa += fabsl(zv * wv);
            }
            wo[((size_t)bt * H + h) * Dm + n] = acc, so[((size_t)bt * H + h) * Dm + n] = sa + 1e-30L;
          }
      check("fx_head_result transW=" + std::to_string(transW) + tag, out, wo, 2e-7, &so);
    }

    // Backward ops: dscores zero at forbidden entries, NaN k/q never read
    // through a zero.
    VF dsc = randv(ns);
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++)
          for (int j = 0; j < Tk; j++)
            if (forbidden(b, i, j)) dsc[(((size_t)b * H + h) * Tq + i) * Tk + j] = 0;
    VF dq(nz), dk((size_t)B * Tk * H * Dh);
    fx_emu_launch(D3(grid1(nz, 2)), D3(256), [&] {
      fx_attn_scores_backward_dq(dq.data(), dsc.data(), k.data(), B, Tq, Tk, H, Dh, scale);
    });
    fx_emu_launch(D3(grid1(dk.size(), 2)), D3(256), [&] {
      fx_attn_scores_backward_dk(dk.data(), dsc.data(), q.data(), B, Tq, Tk, H, Dh, scale);
    });
    std::vector<LD> wdq(nz), sdq(nz), wdk(dk.size()), sdk(dk.size());
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++)
        for (int d = 0; d < Dh; d++) {
          for (int i = 0; i < Tq; i++) {
            LD acc = 0, sa = 0;
            for (int j = 0; j < Tk; j++) {
              LD g = dsc[(((size_t)b * H + h) * Tq + i) * Tk + j];
              acc += g * K(b, j, h, d), sa += fabsl(g * K(b, j, h, d));
            }
            size_t e = (((size_t)b * Tq + i) * H + h) * Dh + d;
            wdq[e] = acc * scale, sdq[e] = sa * scale + 1e-30L;
          }
          for (int j = 0; j < Tk; j++) {
            LD acc = 0, sa = 0;
            for (int i = 0; i < Tq; i++) {
              LD g = dsc[(((size_t)b * H + h) * Tq + i) * Tk + j];
              acc += g * Q(b, i, h, d), sa += fabsl(g * Q(b, i, h, d));
            }
            size_t e = (((size_t)b * Tk + j) * H + h) * Dh + d;
            wdk[e] = acc * scale, sdk[e] = sa * scale + 1e-30L;
          }
        }
    check("fx_attn_scores_backward_dq" + std::string(tag), dq, wdq, 2e-7, &sdq);
    check("fx_attn_scores_backward_dk" + std::string(tag), dk, wdk, 2e-7, &sdk);

    VF dz = randv(nz), dp(ns), dv((size_t)B * Tk * H * Dh);
    fx_emu_launch(D3(grid1(ns, 2)), D3(256),
                  [&] { fx_attn_mix_backward_dp(dp.data(), dz.data(), v.data(), B, Tq, Tk, H, Dh); });
    fx_emu_launch(D3(grid1(dv.size(), 2)), D3(256),
                  [&] { fx_attn_mix_backward_dv(dv.data(), p.data(), dz.data(), B, Tq, Tk, H, Dh); });
    std::vector<LD> wdp(ns), sdp(ns), wdv(dv.size()), sdv(dv.size());
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        for (int i = 0; i < Tq; i++)
          for (int j = 0; j < Tk; j++) {
            LD acc = 0, sa = 0;
            for (int d = 0; d < Dh; d++) {
              LD t = (LD)dz[(((size_t)b * Tq + i) * H + h) * Dh + d] * V(b, j, h, d);
              acc += t, sa += fabsl(t);
            }
            size_t e = (((size_t)b * H + h) * Tq + i) * Tk + j;
            wdp[e] = acc, sdp[e] = sa + 1e-30L;
          }
        for (int j = 0; j < Tk; j++)
          for (int d = 0; d < Dh; d++) {
            LD acc = 0, sa = 0;
            for (int i = 0; i < Tq; i++) {
              LD t = (LD)p[(((size_t)b * H + h) * Tq + i) * Tk + j] * dz[(((size_t)b * Tq + i) * H + h) * Dh + d];
              acc += t, sa += fabsl(t);
            }
            size_t e = (((size_t)b * Tk + j) * H + h) * Dh + d;
            wdv[e] = acc, sdv[e] = sa + 1e-30L;
          }
      }
    check("fx_attn_mix_backward_dp" + std::string(tag), dp, wdp, 2e-7, &sdp);
    check("fx_attn_mix_backward_dv" + std::string(tag), dv, wdv, 2e-7, &sdv);
  }
}

// ---------------------------------------------------------------------------

static float tf32_round(float x) { return __builtin_bit_cast(float, fx_tf32(x)); }

// mm_ref is the product x·W + bias in long double: want, want32 (of the
// TF32-rounded inputs) and the error scale sc = Σ|x·W| + |bias| + tiny.
struct MMRef {
  std::vector<LD> want, want32, sc;
};

static MMRef mm_ref(const float* x, const float* w, const float* bias, int M, int N, int K, int transW) {
  MMRef r;
  r.want.resize((size_t)M * N), r.want32.resize((size_t)M * N), r.sc.resize((size_t)M * N);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      LD acc = 0, sa = 0, acc32 = 0;
      for (int k = 0; k < K; k++) {
        float xv = x[(size_t)m * K + k], wv = transW ? w[(size_t)n * K + k] : w[(size_t)k * N + n];
        LD t = (LD)xv * wv;
        acc += t, sa += fabsl(t);
        acc32 += (LD)tf32_round(xv) * tf32_round(wv);
      }
      LD bv = bias ? bias[n] : 0;
      size_t i = (size_t)m * N + n;
      r.want[i] = acc + bv, r.want32[i] = acc32 + bv, r.sc[i] = sa + fabsl(bv) + 1e-30L;
    }
  return r;
}

// The plans of engine/gpu/matmul.go (planMatMul, splitK), restated: the
// dispatch checks below launch exactly what MatMul launches.
enum MMKernel { MM_SKINNY, MM_F32, MM_F32_64, MM_TF32, MM_TF32_64 };
static const char* mm_kernel_name[] = {"skinny", "f32", "f32_64", "tf32", "tf32_64"};

struct MMPlan {
  MMKernel kernel;
  FxEmuDim grid, block;
  size_t shared;
  int kchunk, splits;
  bool partial;
};

static int cdiv(int a, int b) { return (a + b - 1) / b; }

static void split_k(int k, int want, int g, int kmin, int max_splits, int* kchunk, int* splits) {
  *kchunk = k, *splits = 1;
  if (want <= 1 || k <= kmin) return;
  int c = std::max({k / want / g * g, kmin, cdiv(cdiv(k, max_splits), g) * g});
  if (c >= k) return;
  *kchunk = c, *splits = cdiv(k, c);
}

static MMPlan plan_matmul(int m, int n, int k, int transW, bool tf32, int sms, bool tile128) {
  sms = std::max(sms, 1);
  MMPlan p{};
  if (m <= 8) {
    int cols = transW ? 32 : 128, g = transW ? 128 : 8, kmin = transW ? 128 : 64;
    int cb = cdiv(n, cols);
    split_k(k, cdiv(2 * sms, cb), g, kmin, 65535, &p.kchunk, &p.splits);
    p.kernel = MM_SKINNY, p.grid = D3(cb, p.splits), p.block = D3(256), p.partial = true;
    return p;
  }
  int bx128 = cdiv(n, 128), by128 = cdiv(m, 128), bx64 = cdiv(n, 64), by64 = cdiv(m, 64);
  auto tiled = [&](MMKernel kern, int bx, int by, int threads, size_t shared, int want, int g) {
    split_k(k, want, g, 64, 64, &p.kchunk, &p.splits);
    p.kernel = kern, p.grid = D3(bx, by, p.splits), p.block = D3(threads), p.shared = shared;
    p.partial = p.splits > 1;
    return p;
  };
  if (tf32) {
    if (tile128) return tiled(MM_TF32, bx128, by128, 256, FX_MATMUL_TF32_SHARED, cdiv(sms, bx128 * by128), 32);
    return tiled(MM_TF32_64, bx64, by64, 128, 0, cdiv(2 * sms, bx64 * by64), 32);
  }
  if (bx128 * by128 >= sms) {
    p.kernel = MM_F32, p.grid = D3(bx128, by128), p.block = D3(256), p.kchunk = k, p.splits = 1;
    return p;
  }
  return tiled(MM_F32_64, bx64, by64, 128, 0, cdiv(2 * sms, bx64 * by64), 16);
}

// mm_run launches plan p as MatMul does: the kernel into y, or into a
// NaN-filled workspace (an unwritten partial sum shows) that
// fx_matmul_splitk_reduce adds into y with the bias. The reduction's grid
// is MatMul's (grid-stride, one thread per output) capped at reduce_grid
// blocks, 4 by default: a grid-stride loop does the same work on any grid,
// and the emulator pays for every block.
static void mm_run(const MMPlan& p, float* y, const float* x, const float* w, const float* bias, int M, int N, int K,
                   int transW, unsigned reduce_grid = 4, int act = FX_ACT_NONE) {
  bool reduce = p.partial && (p.splits > 1 || bias || act != FX_ACT_NONE);
  VF ws;
  float* dst = y;
  const float* kbias = p.partial ? nullptr : bias;
  const int kact = p.partial ? FX_ACT_NONE : act;
  if (reduce) {
    ws.assign((size_t)p.splits * M * N, NAN);
    dst = ws.data();
  }
  int kc = p.kchunk;
  switch (p.kernel) {
    case MM_SKINNY:
      fx_emu_launch(p.grid, p.block, [&] { fx_matmul_skinny_partial(dst, x, w, M, N, K, transW, kc); });
      break;
    case MM_F32:
      fx_emu_launch(p.grid, p.block, [&] { fx_matmul_f32(dst, x, w, kbias, M, N, K, transW, kact); });
      break;
    case MM_F32_64:
      fx_emu_launch(p.grid, p.block, [&] { fx_matmul_f32_64(dst, x, w, kbias, M, N, K, transW, kc, kact); });
      break;
    case MM_TF32:
      fx_emu_launch_shared(p.grid, p.block, p.shared,
                           [&] { fx_matmul_tf32(dst, x, w, kbias, M, N, K, transW, kc, kact); });
      break;
    case MM_TF32_64:
      fx_emu_launch(p.grid, p.block, [&] { fx_matmul_tf32_64(dst, x, w, kbias, M, N, K, transW, kc, kact); });
      break;
  }
  if (reduce) {
    unsigned g = std::min(reduce_grid, grid1((size_t)M * N));
    if (act == FX_ACT_NONE)
      fx_emu_launch(D3(g), D3(256), [&] { fx_matmul_splitk_reduce(y, dst, bias, M, N, p.splits); });
    else
      fx_emu_launch(D3(g), D3(256), [&] { fx_matmul_splitk_reduce_act(y, dst, bias, M, N, p.splits, act); });
  }
}

// mm_cost estimates the emulator's work for plan p (thread starts, barrier
// and shuffle rounds, weighted by the threads they wake), to keep the
// dispatch checks affordable.
static double mm_cost(const MMPlan& p, int M, int N, int K, int transW) {
  double blocks = (double)p.grid.x * p.grid.y * p.grid.z, th = p.block.x;
  int kc = p.kchunk;
  switch (p.kernel) {
    case MM_SKINNY:
      return blocks * th * 2;
    case MM_F32:
      return blocks * th * (1 + 2.0 * cdiv(kc, 8));
    case MM_F32_64:
      return blocks * th * (1 + 2.0 * cdiv(kc, 16));
    case MM_TF32:
      return blocks * th * (1 + cdiv(kc, 32) * (1 + 64.0));
    case MM_TF32_64:
      return blocks * th * (1 + cdiv(kc, 32) * (2 + 32.0));
  }
  return 0;
}

static std::string mm_tag(int M, int N, int K, int transW, bool bias) {
  char tag[96];
  snprintf(tag, sizeof tag, " %dx%dx%d transW=%d bias=%d", M, N, K, transW, (int)bias);
  return tag;
}

// mm_check_plan runs p on fresh inputs and checks it: FP32 kernels against
// the exact product (3e-7·(2 + K/64) of Σ|x·W|: float32 rounding of the
// running sums, with or without fused multiply-adds, and of the split-K
// and bias additions; one product of K missing or doubled would be ~1/K),
// TF32 ones against the product of the TF32-rounded inputs (as tight: the
// fragment layouts) and the exact one (2e-3). xoff/woff shift x and w off
// 16-byte alignment.
static void mm_check_plan(const std::string& what, const MMPlan& p, int M, int N, int K, int transW, bool withBias,
                          int xoff = 0, int woff = 0, unsigned reduce_grid = 4, int act = FX_ACT_NONE) {
  VF xs = randv((size_t)M * K + xoff), ws = randv((size_t)K * N + woff), bias = randv(N);
  const float* x = xs.data() + xoff;
  const float* w = ws.data() + woff;
  const float* bp = withBias ? bias.data() : nullptr;
  MMRef r = mm_ref(x, w, bp, M, N, K, transW);
  VF y((size_t)M * N, NAN);
  auto t0 = std::chrono::steady_clock::now();
  mm_run(p, y.data(), x, w, bp, M, N, K, transW, reduce_grid);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  char info[200];
  snprintf(info, sizeof info, "%s%s %s kchunk=%d splits=%d%s%s [%.0f ms, cost %.2g]", what.c_str(),
           mm_tag(M, N, K, transW, withBias).c_str(), mm_kernel_name[p.kernel], p.kchunk, p.splits, xoff ? " x+1" : "",
           woff ? " w+1" : "", ms, mm_cost(p, M, N, K, transW));
  double tol = 3e-7 * (2 + K / 64.0);
  if (p.kernel == MM_TF32 || p.kernel == MM_TF32_64) {
    check(std::string(info) + " (vs tf32 inputs)", y, r.want32, tol, &r.sc);
    check(std::string(info) + " (vs exact)", y, r.want, 2e-3, &r.sc);
  } else {
    check(info, y, r.want, tol, &r.sc);
  }
  if (act == FX_ACT_NONE) return;
  // The GELU epilogue: the bits of this product (checked above) followed
  // by the elementwise GELU kernel.
  VF ya((size_t)M * N, NAN), yg = y;
  mm_run(p, ya.data(), x, w, bp, M, N, K, transW, reduce_grid, act);
  int n = (int)yg.size();
  fx_emu_launch(D3(grid1(yg.size(), 4)), D3(256), [&] {
    if (act == FX_ACT_GELU_TANH)
      fx_gelu_tanh(yg.data(), yg.data(), n);
    else
      fx_gelu_erf(yg.data(), yg.data(), n);
  });
  check(std::string(info) + (act == FX_ACT_GELU_TANH ? " gelu_tanh" : " gelu_erf") + " epilogue (bits of MatMul, GELU)",
        ya, std::vector<LD>(yg.begin(), yg.end()), 0);
}

// mm_act rotates the epilogue's activation over the checks: none, GELU
// tanh, GELU erf.
static int mm_act_turn = 0;
static int mm_act() { return mm_act_turn++ % 3; }

// mm_explicit returns a plan for kernel kern with a given kchunk (<= 0: one
// split), the geometry as planMatMul builds it.
static MMPlan mm_explicit(MMKernel kern, int M, int N, int K, int transW, int kchunk) {
  MMPlan p{};
  p.kernel = kern;
  p.kchunk = kchunk > 0 && kchunk < K ? kchunk : K;
  p.splits = cdiv(K, p.kchunk);
  switch (kern) {
    case MM_SKINNY:
      p.grid = D3(cdiv(N, transW ? 32 : 128), p.splits), p.block = D3(256), p.partial = true;
      break;
    case MM_F32:
      p.grid = D3(cdiv(N, 128), cdiv(M, 128)), p.block = D3(256), p.kchunk = K, p.splits = 1;
      break;
    case MM_F32_64:
    case MM_TF32_64:
      p.grid = D3(cdiv(N, 64), cdiv(M, 64), p.splits), p.block = D3(128), p.partial = p.splits > 1;
      break;
    case MM_TF32:
      p.grid = D3(cdiv(N, 128), cdiv(M, 128), p.splits), p.block = D3(256), p.shared = FX_MATMUL_TF32_SHARED;
      p.partial = p.splits > 1;
      break;
  }
  return p;
}

static void test_matmul_kernels() {
  // 1. Every kernel on its own, on shapes that are not multiples of the
  //    tiles, with chunks that do not divide K (or exceed it), with and
  //    without bias.
  struct MM {
    int M, N, K;
  };
  int parity = 0;
  for (MM sh : std::vector<MM>{{1, 1, 1}, {7, 5, 3}, {129, 130, 9}, {65, 63, 100}, {3, 300, 31}, {200, 257, 33}})
    for (int transW = 0; transW < 2; transW++) {
      int M = sh.M, N = sh.N, K = sh.K;
      for (int withBias = 0; withBias < 2; withBias++)
        mm_check_plan("kernel", mm_explicit(MM_F32, M, N, K, transW, 0), M, N, K, transW, withBias, 0, 0, 4, mm_act());
      // One split, and chunks of whole k-tiles and not (16 + 24 or 32 + 16),
      // reduced with the bias.
      const int kc64[] = {0, 16, 40}, kctc[] = {0, 32, 48};
      for (int i = 0; i < 3; i++) {
        if (i && kctc[i] >= K) continue;
        bool bias = (parity++ & 1) != 0;
        mm_check_plan("kernel", mm_explicit(MM_F32_64, M, N, K, transW, kc64[i]), M, N, K, transW, bias, 0, 0, 4, mm_act());
        if (M * N <= 130 * 130 && K <= 64) {  // the emulator's mma is slow
          mm_check_plan("kernel", mm_explicit(MM_TF32_64, M, N, K, transW, kctc[i]), M, N, K, transW, !bias, 0, 0, 4, mm_act());
          mm_check_plan("kernel", mm_explicit(MM_TF32, M, N, K, transW, kctc[i]), M, N, K, transW, bias, 0, 0, 4, mm_act());
        }
      }
    }
  // The TF32 128×128 kernel's 4-byte cp.async path (x or w misaligned, N
  // or K odd), and a K of more tiles than stages, split and not.
  for (int transW = 0; transW < 2; transW++) {
    mm_check_plan("kernel", mm_explicit(MM_TF32, 130, 129, 20, transW, 0), 130, 129, 20, transW, true, 1, 0, 4, mm_act());
    mm_check_plan("kernel", mm_explicit(MM_TF32, 130, 129, 20, transW, 0), 130, 129, 20, transW, false, 0, 1, 4, mm_act());
    mm_check_plan("kernel", mm_explicit(MM_TF32, 33, 131, 37, transW, 0), 33, 131, 37, transW, false, 0, 0, 4, mm_act());
    mm_check_plan("kernel", mm_explicit(MM_TF32, 40, 136, 200, transW, 64), 40, 136, 200, transW, true, 0, 0, 4, mm_act());
    mm_check_plan("kernel", mm_explicit(MM_TF32, 17, 24, 260, transW, 0), 17, 24, 260, transW, true, 0, 0, 4, mm_act());
    // K % 4 == 0 but chunks that end off a multiple of 4: 4-byte copies.
    mm_check_plan("kernel", mm_explicit(MM_TF32, 9, 40, 68, transW, 34), 9, 40, 68, transW, false, 0, 0, 4, mm_act());
  }
  // The skinny kernel: every M, vector and 4-byte paths (N % 4, K % 4,
  // misaligned x or w, chunks not multiples of 4), chunks of all sizes.
  for (int M = 1; M <= 8; M++)
    for (int transW = 0; transW < 2; transW++) {
      int N = 70, K = 45;
      for (int kc : {0, 8, 13, 20, 100})
        mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, N, K, transW, kc), M, N, K, transW, (M + kc) & 1, 0, 0, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 72, 264, transW, 128), M, 72, 264, transW, true, 0, 0, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 72, 264, transW, 0), M, 72, 264, transW, false, 0, 0, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 72, 264, transW, 40), M, 72, 264, transW, true, 1, 0, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 72, 264, transW, 40), M, 72, 264, transW, true, 0, 1, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 133, 77, transW, 36), M, 133, 77, transW, false, 0, 0, 4, mm_act());
      mm_check_plan("kernel", mm_explicit(MM_SKINNY, M, 36, 264, transW, 18), M, 36, 264, transW, M & 1, 0, 0, 4, mm_act());  // K % 4 == 0, chunks not
    }
  // The reduction on MatMul's grid, and on a grid smaller than the work
  // (the grid-stride loop wraps).
  mm_check_plan("reduce grid as MatMul's", mm_explicit(MM_F32_64, 65, 70, 100, 0, 32), 65, 70, 100, 0, true, 0, 0,
                65535, mm_act());
  mm_check_plan("reduce grid 1", mm_explicit(MM_SKINNY, 5, 769, 300, 1, 128), 5, 769, 300, 1, true, 0, 0, 1, mm_act());

}

static void test_matmul_dispatch() {
  struct MM {
    int M, N, K;
  };
  // 2. Dispatch: planMatMul's choice, launched as MatMul launches it, for
  //    every M of the edge list below, both layouts, both precisions, with
  //    four (N, K) of the edge lists each, rotated so that every N and K
  //    meets every M over the layouts, on an H100/H200's 132 SMs where the
  //    emulator can afford it, else on fewer (which also reaches the
  //    128×128 FP32 kernel at these sizes). Products too large for the
  //    emulator on any of those (M > 8 with N and K >= 768) are left to
  //    engine/gpu's TestMatMulEdgesOnDevice, on a GPU.
  const int Ms[] = {1, 2, 5, 8, 9, 17, 64, 65, 127, 129}, Ns[] = {1, 7, 768, 769}, Ks[] = {1, 5, 768, 3072};
  const double budget = 6e4;  // about a second of the emulator's time
  int run = 0, skipped = 0;
  std::map<std::string, int> paths;
  auto check_path = [&](int sms, const MMPlan& p, int M, int N, int K, int transW, bool bias) {
    mm_check_plan("plan sms=" + std::to_string(sms), p, M, N, K, transW, bias, 0, 0, 4, mm_act());
    paths[std::string(mm_kernel_name[p.kernel]) + (p.splits > 1 ? " split" : "")]++;
    run++;
  };
  for (int tf32 = 0; tf32 < 2; tf32++)
    for (int mi = 0; mi < 10; mi++)
      for (int transW = 0; transW < 2; transW++)
        for (int i = 0; i < 4; i++) {
          int M = Ms[mi], N = Ns[(i + mi) % 4], K = Ks[(i + 2 * transW + mi / 4) % 4];
          if (tf32 && M <= 8) continue;  // the skinny FP32 kernel either way
          bool done = false;
          for (int sms : {132, 16, 4, 1}) {
            MMPlan p = plan_matmul(M, N, K, transW, tf32, sms, true);
            if (mm_cost(p, M, N, K, transW) > budget) continue;
            bool bias = ((M + N + K + transW) & 1) != 0;
            check_path(sms, p, M, N, K, transW, bias);
            if (p.kernel == MM_SKINNY && p.splits == 1)  // the direct write without a bias, and the reduction with one
              check_path(sms, p, M, N, K, transW, !bias);
            done = true;
            break;
          }
          if (!done) {
            printf("plan %s%s: skipped (too large for the emulator)\n", tf32 ? "tf32" : "fp32",
                   mm_tag(M, N, K, transW, false).c_str());
            skipped++;
          }
        }
  // Paths the edge lists reach only at sizes too large for the emulator:
  // the 128×128 FP32 kernel, and the TF32 one with split-K.
  for (int transW = 0; transW < 2; transW++) {
    check_path(4, plan_matmul(129, 769, 33, transW, false, 4, true), 129, 769, 33, transW, true);
    check_path(2, plan_matmul(65, 300, 20, transW, false, 2, true), 65, 300, 20, transW, false);
    check_path(132, plan_matmul(9, 7, 200, transW, true, 132, true), 9, 7, 200, transW, transW);
  }
  // The TF32 64×64 fallback (a device without fx_matmul_tf32's shared
  // memory).
  for (MM sh : std::vector<MM>{{9, 7, 768}, {65, 769, 5}, {129, 130, 100}, {17, 1, 1000}})
    for (int transW = 0; transW < 2; transW++)
      check_path(132, plan_matmul(sh.M, sh.N, sh.K, transW, true, 132, false), sh.M, sh.N, sh.K, transW, transW);
  printf("matmul dispatch: %d shapes, %d skipped;", run, skipped);
  for (auto& kv : paths) printf(" %s: %d,", kv.first.c_str(), kv.second);
  printf("\n");
}

int main(int argc, char** argv) {
  rng.seed(12345);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it goes
  std::string only = argc > 1 ? argv[1] : "";
  auto want = [&](const char* s) { return only.empty() || only == s; };
  if (want("elementwise")) test_elementwise();
  if (want("rows")) test_rows();
  if (want("copy")) test_copy();
  if (want("attention")) test_attention();
  if (want("matmul") || want("matmul-kernels")) test_matmul_kernels();
  if (want("matmul") || want("matmul-dispatch")) test_matmul_dispatch();
  printf(failures ? "FAIL: %d checks\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
