// fx_emu.h — a host emulator for fx's kernels, for tests without a GPU.
//
// fx_cuda.h includes this instead of its device definitions when
// FX_HOST_EMU is defined. Each GPU thread of a block runs as an OS thread;
// blocks run one after another (so a kernel's __shared__ arrays, static
// here, belong to one block at a time). sync_threads is a barrier over the
// block, warp shuffles and mma a barrier over the warp; a barrier that
// waits more than FX_EMU_TIMEOUT_S seconds (a thread that exited early, or
// a shuffle not every lane reaches) aborts the test with a message. mma
// follows the fragment layout of the PTX ISA ("Matrix Fragments for
// mma.m16n8k8", .tf32), which fx_cuda.h's comment restates.
//
// Build the tests with -ffp-contract=off or with -mfma -ffp-contract=fast to
// see both roundings clang's CUDA mode may choose.
#ifndef FX_EMU_H
#define FX_EMU_H

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(n)
#define FX_DEV static inline

#ifndef FX_EMU_TIMEOUT_S
#define FX_EMU_TIMEOUT_S 20
#endif

struct FxEmuDim {
  unsigned x = 1, y = 1, z = 1;
};

// FxEmuBarrier is a reusable barrier for n threads that aborts on timeout.
class FxEmuBarrier {
 public:
  void reset(unsigned n) {
    n_ = n;
    count_ = 0;
    gen_ = 0;
  }
  void wait(const char* what) {
    std::unique_lock<std::mutex> lk(mu_);
    unsigned gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      gen_++;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lk, std::chrono::seconds(FX_EMU_TIMEOUT_S), [&] { return gen_ != gen; })) {
      std::fprintf(stderr, "fx_emu: %s barrier timed out (%u of %u threads arrived): a thread exited early or skipped it\n",
                   what, count_, n_);
      std::abort();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned n_ = 0, count_ = 0, gen_ = 0;
};

struct FxEmuWarp {
  FxEmuBarrier bar;
  unsigned long long word[32];
  unsigned a[32][4], b[32][2];
  float c[32][4];
};

struct FxEmuState {
  FxEmuDim grid, block, bid;
  FxEmuBarrier block_bar;
  std::vector<FxEmuWarp> warps;
};

inline FxEmuState fx_emu;
inline thread_local unsigned fx_emu_tid;

FX_DEV unsigned tid_x() { return fx_emu_tid; }
FX_DEV unsigned bid_x() { return fx_emu.bid.x; }
FX_DEV unsigned bid_y() { return fx_emu.bid.y; }
FX_DEV unsigned bid_z() { return fx_emu.bid.z; }
FX_DEV unsigned bdim_x() { return fx_emu.block.x; }
FX_DEV unsigned gdim_x() { return fx_emu.grid.x; }
FX_DEV unsigned gdim_y() { return fx_emu.grid.y; }

FX_DEV void sync_threads() { fx_emu.block_bar.wait("sync_threads"); }

static inline FxEmuWarp& fx_emu_warp() { return fx_emu.warps[fx_emu_tid / 32]; }

static inline unsigned long long fx_emu_exchange(unsigned long long v, int src) {
  FxEmuWarp& w = fx_emu_warp();
  unsigned lane = fx_emu_tid & 31;
  w.word[lane] = v;
  w.bar.wait("shuffle");
  unsigned long long r = w.word[src & 31];
  w.bar.wait("shuffle");
  return r;
}

FX_DEV float shfl_xor(float v, int m) {
  unsigned r = (unsigned)fx_emu_exchange(__builtin_bit_cast(unsigned, v), (int)((fx_emu_tid & 31) ^ (unsigned)m));
  return __builtin_bit_cast(float, r);
}
FX_DEV float shfl_idx(float v, int src) {
  unsigned r = (unsigned)fx_emu_exchange(__builtin_bit_cast(unsigned, v), src);
  return __builtin_bit_cast(float, r);
}
FX_DEV double shfl_xor_d(double v, int m) {
  unsigned long long r = fx_emu_exchange(__builtin_bit_cast(unsigned long long, v), (int)((fx_emu_tid & 31) ^ (unsigned)m));
  return __builtin_bit_cast(double, r);
}

FX_DEV float fx_mul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
FX_DEV float fx_add_rn(float a, float b) {
  volatile float r = a + b;
  return r;
}

FX_DEV unsigned fx_tf32(float x) {
  unsigned u = __builtin_bit_cast(unsigned, x);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // Inf, NaN
  return (u + 0x1000u) & 0xffffe000u;                // to nearest, ties away
}

FX_DEV void fx_mma_tf32(float c[4], const unsigned a[4], const unsigned b[2]) {
  FxEmuWarp& w = fx_emu_warp();
  unsigned lane = fx_emu_tid & 31;
  for (int i = 0; i < 4; i++) w.a[lane][i] = a[i], w.c[lane][i] = c[i];
  for (int i = 0; i < 2; i++) w.b[lane][i] = b[i];
  w.bar.wait("mma");
  float A[16][8], B[8][8], C[16][8];
  for (unsigned l = 0; l < 32; l++) {
    unsigned g = l >> 2, t = l & 3;
    A[g][t] = __builtin_bit_cast(float, w.a[l][0]);
    A[g + 8][t] = __builtin_bit_cast(float, w.a[l][1]);
    A[g][t + 4] = __builtin_bit_cast(float, w.a[l][2]);
    A[g + 8][t + 4] = __builtin_bit_cast(float, w.a[l][3]);
    B[t][g] = __builtin_bit_cast(float, w.b[l][0]);
    B[t + 4][g] = __builtin_bit_cast(float, w.b[l][1]);
    C[g][2 * t] = w.c[l][0];
    C[g][2 * t + 1] = w.c[l][1];
    C[g + 8][2 * t] = w.c[l][2];
    C[g + 8][2 * t + 1] = w.c[l][3];
  }
  w.bar.wait("mma");
  unsigned g = lane >> 2, t = lane & 3;
  const unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  for (int i = 0; i < 4; i++) {
    float s = C[rows[i]][cols[i]];
    for (int k = 0; k < 8; k++) s += A[rows[i]][k] * B[k][cols[i]];
    c[i] = s;
  }
}

// fx_emu_launch runs kernel() on every thread of grid×block (block.y and
// block.z must be 1, as for every fx kernel).
template <typename F>
void fx_emu_launch(FxEmuDim grid, FxEmuDim block, F kernel) {
  if (block.y != 1 || block.z != 1 || block.x % 32 != 0) {
    std::fprintf(stderr, "fx_emu: block must be [32k, 1, 1]\n");
    std::abort();
  }
  fx_emu.grid = grid;
  fx_emu.block = block;
  std::vector<FxEmuWarp> warps(block.x / 32);
  fx_emu.warps.swap(warps);
  for (FxEmuWarp& w : fx_emu.warps) w.bar.reset(32);
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        fx_emu.bid = FxEmuDim{x, y, z};
        fx_emu.block_bar.reset(block.x);
        std::vector<std::thread> threads;
        threads.reserve(block.x);
        for (unsigned t = 0; t < block.x; t++)
          threads.emplace_back([t, &kernel] {
            fx_emu_tid = t;
            kernel();
          });
        for (std::thread& th : threads) th.join();
      }
}

#endif  // FX_EMU_H
