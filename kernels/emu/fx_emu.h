// fx_emu.h — a host emulator for fx's kernels, for tests without a GPU.
//
// fx_cuda.h includes this instead of its device definitions when
// FX_HOST_EMU is defined. Each GPU thread of a block runs as an OS thread;
// blocks run one after another on the same OS threads, with a barrier
// between them (so a kernel's __shared__ arrays, static here, belong to one
// block at a time). sync_threads is a barrier over the
// block, warp shuffles and mma a barrier over the warp; a barrier that
// waits more than FX_EMU_TIMEOUT_S seconds (a thread that exited early, or
// a shuffle not every lane reaches) aborts the test with a message. mma
// follows the fragment layouts of the PTX ISA ("Matrix Fragments for
// mma.m16n8k8", .tf32, and "for mma.m16n8k16", .bf16), which fx_cuda.h's
// comments restate.
//
// Asynchronous copies (cp.async) are queued per thread when issued and
// performed, by the thread that issued them, when a fx_cp_async_wait lets
// their group complete: as late as the hardware may land them, so that a
// kernel that reads a stage before waiting for it reads stale data, and
// ThreadSanitizer sees a copy that races with another thread's use of its
// destination. Dynamic shared memory (FX_DYN_SHARED) is a heap block of
// exactly the launch's size (fx_emu_launch_shared), filled with NaN bytes
// before every block, so that reads past it or of bytes no copy wrote show.
//
// Build the tests with -ffp-contract=off or with -mfma -ffp-contract=fast to
// see both roundings clang's CUDA mode may choose.
//
// With FX_EMU_FIBERS (the fake driver's build, fakekernels.cpp; x86-64
// only), the threads of a block run instead as fibers on the launching OS
// thread, each until it waits at a barrier or ends, in turn: deterministic
// and far faster than an OS thread per GPU thread, but blind to the races
// that the OS threads under ThreadSanitizer show, which the check programs
// keep.
#ifndef FX_EMU_H
#define FX_EMU_H

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>
#if defined(FX_EMU_FIBERS) && !defined(__x86_64__)
#error "FX_EMU_FIBERS: the fiber switch is written for x86-64"
#endif

// FX_EMU_TLS qualifies what each GPU thread has of its own: thread-local
// with an OS thread per GPU thread; with fibers, plain globals that the
// scheduler saves and restores (thread-local access in a shared library
// cost a third of the fake driver's time).
#ifdef FX_EMU_FIBERS
#define FX_EMU_TLS
#else
#define FX_EMU_TLS thread_local
#endif

#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define FX_DEV static inline

#ifndef FX_EMU_TIMEOUT_S
#define FX_EMU_TIMEOUT_S 20
#endif

struct FxEmuDim {
  unsigned x = 1, y = 1, z = 1;
};

#ifdef FX_EMU_FIBERS
// fx_emu_yield returns to the fiber scheduler: the running fiber waits (at
// what) until the scheduler comes back to it.
static void fx_emu_yield(const char* what);
inline unsigned long long fx_emu_progress;  // barriers passed and fibers ended
#endif

// FxEmuBarrier is a reusable barrier for n threads that aborts on timeout.
class FxEmuBarrier {
 public:
  void reset(unsigned n) {
    n_ = n;
    count_ = 0;
    gen_ = 0;
  }
  // wait blocks until n threads have called it; with timeout false it
  // waits as long as that takes.
  void wait(const char* what, bool timeout = true) {
#ifdef FX_EMU_FIBERS
    (void)timeout;
    unsigned g = gen_;
    if (++count_ == n_) {
      count_ = 0;
      gen_++;
      fx_emu_progress++;
      return;
    }
    while (gen_ == g) fx_emu_yield(what);
    return;
#endif
    std::unique_lock<std::mutex> lk(mu_);
    unsigned gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      gen_++;
      cv_.notify_all();
      return;
    }
    if (!timeout) {
      cv_.wait(lk, [&] { return gen_ != gen; });
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

// FxEmuWarp is what the lanes of a warp exchange in shuffles and mma, in
// two copies: a warp-wide operation writes copy p (the parity of the
// lane's count of such operations), waits at the warp's barrier and reads
// copy p. One barrier per operation suffices: a lane writes copy p again
// two operations later, after every lane has passed the barrier of the
// operation in between, so after every lane has read it.
struct FxEmuWarp {
  FxEmuBarrier bar;
  unsigned long long word[2][32];
  unsigned a[2][32][4], b[2][32][2];
  float c[2][32][4];
};

struct FxEmuState {
  FxEmuDim grid, block;
  FxEmuBarrier block_bar;   // sync_threads
  FxEmuBarrier launch_bar;  // between blocks
  std::vector<FxEmuWarp> warps;
  std::vector<unsigned char> dyn_shared;  // the block's dynamic shared memory
};

inline FxEmuState fx_emu;
inline FX_EMU_TLS unsigned fx_emu_tid;
inline FX_EMU_TLS FxEmuDim fx_emu_bid;
inline FX_EMU_TLS unsigned fx_emu_wops;  // warp-wide operations of this thread in its block

FX_DEV unsigned tid_x() { return fx_emu_tid; }
FX_DEV unsigned bid_x() { return fx_emu_bid.x; }
FX_DEV unsigned bid_y() { return fx_emu_bid.y; }
FX_DEV unsigned bid_z() { return fx_emu_bid.z; }
FX_DEV unsigned bdim_x() { return fx_emu.block.x; }
FX_DEV unsigned gdim_x() { return fx_emu.grid.x; }
FX_DEV unsigned gdim_y() { return fx_emu.grid.y; }

FX_DEV void sync_threads() { fx_emu.block_bar.wait("sync_threads"); }

static inline FxEmuWarp& fx_emu_warp() { return fx_emu.warps[fx_emu_tid / 32]; }

static inline unsigned long long fx_emu_exchange(unsigned long long v, int src) {
  FxEmuWarp& w = fx_emu_warp();
  unsigned lane = fx_emu_tid & 31, p = fx_emu_wops++ & 1;
  w.word[p][lane] = v;
  w.bar.wait("shuffle");
  return w.word[p][src & 31];
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
  unsigned lane = fx_emu_tid & 31, p = fx_emu_wops++ & 1;
  for (int i = 0; i < 4; i++) w.a[p][lane][i] = a[i], w.c[p][lane][i] = c[i];
  for (int i = 0; i < 2; i++) w.b[p][lane][i] = b[i];
  w.bar.wait("mma");
  float A[16][8], B[8][8], C[16][8];
  for (unsigned l = 0; l < 32; l++) {
    unsigned g = l >> 2, t = l & 3;
    A[g][t] = __builtin_bit_cast(float, w.a[p][l][0]);
    A[g + 8][t] = __builtin_bit_cast(float, w.a[p][l][1]);
    A[g][t + 4] = __builtin_bit_cast(float, w.a[p][l][2]);
    A[g + 8][t + 4] = __builtin_bit_cast(float, w.a[p][l][3]);
    B[t][g] = __builtin_bit_cast(float, w.b[p][l][0]);
    B[t + 4][g] = __builtin_bit_cast(float, w.b[p][l][1]);
    C[g][2 * t] = w.c[p][l][0];
    C[g][2 * t + 1] = w.c[p][l][1];
    C[g + 8][2 * t] = w.c[p][l][2];
    C[g + 8][2 * t + 1] = w.c[p][l][3];
  }
  unsigned g = lane >> 2, t = lane & 3;
  const unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  for (int i = 0; i < 4; i++) {
    float s = C[rows[i]][cols[i]];
    for (int k = 0; k < 8; k++) s += A[rows[i]][k] * B[k][cols[i]];
    c[i] = s;
  }
}

// fx_bf16 rounds to nearest, ties to even, as cvt.rn.bf16.f32 does; a NaN
// becomes the canonical NaN 0x7fff.
FX_DEV unsigned short fx_bf16(float x) {
  unsigned u = __builtin_bit_cast(unsigned, x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
FX_DEV unsigned fx_bf16x2(float lo, float hi) { return (unsigned)fx_bf16(lo) | (unsigned)fx_bf16(hi) << 16; }

static inline float fx_emu_bf16_lo(unsigned r) { return __builtin_bit_cast(float, r << 16); }
static inline float fx_emu_bf16_hi(unsigned r) { return __builtin_bit_cast(float, r & 0xffff0000u); }

// fx_mma_bf16 follows the PTX ISA's fragments of mma.m16n8k16 .bf16
// (fx_cuda.h restates them); each output is C plus the 16 products (exact
// in float: 8-bit mantissas) summed in order of k.
FX_DEV void fx_mma_bf16(float c[4], const unsigned a[4], const unsigned b[2]) {
  FxEmuWarp& w = fx_emu_warp();
  unsigned lane = fx_emu_tid & 31, p = fx_emu_wops++ & 1;
  for (int i = 0; i < 4; i++) w.a[p][lane][i] = a[i], w.c[p][lane][i] = c[i];
  for (int i = 0; i < 2; i++) w.b[p][lane][i] = b[i];
  w.bar.wait("mma");
  float A[16][16], B[16][8];
  for (unsigned l = 0; l < 32; l++) {
    unsigned g = l >> 2, t = l & 3;
    const unsigned* ra = w.a[p][l];
    const unsigned* rb = w.b[p][l];
    A[g][2 * t] = fx_emu_bf16_lo(ra[0]), A[g][2 * t + 1] = fx_emu_bf16_hi(ra[0]);
    A[g + 8][2 * t] = fx_emu_bf16_lo(ra[1]), A[g + 8][2 * t + 1] = fx_emu_bf16_hi(ra[1]);
    A[g][2 * t + 8] = fx_emu_bf16_lo(ra[2]), A[g][2 * t + 9] = fx_emu_bf16_hi(ra[2]);
    A[g + 8][2 * t + 8] = fx_emu_bf16_lo(ra[3]), A[g + 8][2 * t + 9] = fx_emu_bf16_hi(ra[3]);
    B[2 * t][g] = fx_emu_bf16_lo(rb[0]), B[2 * t + 1][g] = fx_emu_bf16_hi(rb[0]);
    B[2 * t + 8][g] = fx_emu_bf16_lo(rb[1]), B[2 * t + 9][g] = fx_emu_bf16_hi(rb[1]);
  }
  unsigned g = lane >> 2, t = lane & 3;
  const unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  for (int i = 0; i < 4; i++) {
    float s = w.c[p][lane][i];
    for (int k = 0; k < 16; k++) s += A[rows[i]][k] * B[k][cols[i]];
    c[i] = s;
  }
}

// FX_DYN_SHARED(T, name): the block's dynamic shared memory as T* name.
#define FX_DYN_SHARED(T, name) T* const name = (T*)(void*)fx_emu.dyn_shared.data()

// An asynchronous copy: size bytes to dst, the first src_bytes from src and
// zeros after them.
struct FxEmuCopy {
  unsigned char* dst;
  const unsigned char* src;
  int size, src_bytes;
};
inline FX_EMU_TLS std::vector<FxEmuCopy> fx_emu_cp_open;               // issued, not committed
inline FX_EMU_TLS std::deque<std::vector<FxEmuCopy>> fx_emu_cp_groups;  // committed, oldest first

static inline void fx_emu_cp_issue(void* dst, const void* src, int size, int src_bytes) {
  if (((uintptr_t)dst | (uintptr_t)src) % (uintptr_t)size != 0 || src_bytes < 0 || src_bytes > size) {
    std::fprintf(stderr, "fx_emu: cp.async of %d bytes: dst %p, src %p (%d bytes): misaligned or bad size\n", size,
                 dst, src, src_bytes);
    std::abort();
  }
  fx_emu_cp_open.push_back(FxEmuCopy{(unsigned char*)dst, (const unsigned char*)src, size, src_bytes});
}
FX_DEV void fx_cp_async16(void* dst, const void* src, int src_bytes) { fx_emu_cp_issue(dst, src, 16, src_bytes); }
FX_DEV void fx_cp_async4(void* dst, const void* src, int src_bytes) { fx_emu_cp_issue(dst, src, 4, src_bytes); }
FX_DEV void fx_cp_async_commit() {
  fx_emu_cp_groups.push_back(std::move(fx_emu_cp_open));
  fx_emu_cp_open.clear();
}
template <int N>
FX_DEV void fx_cp_async_wait() {
  while (fx_emu_cp_groups.size() > (size_t)N) {
    for (const FxEmuCopy& c : fx_emu_cp_groups.front()) {
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, (size_t)c.src_bytes);
      std::memset(c.dst + c.src_bytes, 0, (size_t)(c.size - c.src_bytes));
    }
    fx_emu_cp_groups.pop_front();
  }
}

// fx_emu_cp_check aborts when a thread ends with copies it never waited
// for (empty groups are fine).
static inline void fx_emu_cp_check() {
  size_t n = fx_emu_cp_open.size();
  for (const auto& g : fx_emu_cp_groups) n += g.size();
  if (n) {
    std::fprintf(stderr, "fx_emu: thread %u exited with %zu cp.async copies not waited for\n", fx_emu_tid, n);
    std::abort();
  }
  fx_emu_cp_groups.clear();
}

// fx_emu_setup checks a launch's block shape (block.y and block.z must be
// 1, block.x a multiple of 32, as for every fx kernel) and sets up the
// state its blocks share: the dimensions, shared bytes of dynamic shared
// memory, the warps and the block's barrier.
static inline void fx_emu_setup(FxEmuDim grid, FxEmuDim block, size_t shared) {
  if (block.y != 1 || block.z != 1 || block.x % 32 != 0) {
    std::fprintf(stderr, "fx_emu: block must be [32k, 1, 1]\n");
    std::abort();
  }
  fx_emu.grid = grid;
  fx_emu.block = block;
  fx_emu.dyn_shared.assign(shared, 0);
  std::vector<FxEmuWarp> warps(block.x / 32);
  fx_emu.warps.swap(warps);
  for (FxEmuWarp& w : fx_emu.warps) w.bar.reset(32);
  fx_emu.block_bar.reset(block.x);
}

#ifdef FX_EMU_FIBERS
// fx_emu_switch saves the callee-saved registers on the current stack and
// the stack pointer in *save, and continues on the stack load (saved by an
// earlier switch, or prepared by fx_emu_fiber_stack). The floating-point
// control state is shared by every fiber. Weak: each program that includes
// this header defines it.
extern "C" void fx_emu_switch(void** save, void* load);
asm(R"(
  .text
  .weak fx_emu_switch
  .type fx_emu_switch, @function
fx_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fx_emu_switch, .-fx_emu_switch
)");

// FxEmuFibers is the fiber scheduler's state: one fiber per thread of a
// block, with what each keeps of the thread-local state while another runs.
struct FxEmuFibers {
  void* sched = nullptr;  // the scheduler's saved stack pointer
  std::vector<void*> sp;  // each fiber's
  std::vector<std::vector<char>> stacks;
  std::vector<unsigned> wops;
  std::vector<std::vector<FxEmuCopy>> cp_open;
  std::vector<std::deque<std::vector<FxEmuCopy>>> cp_groups;
  std::vector<unsigned char> done;
  unsigned current = 0;
  bool ended = false;             // the current fiber returned
  const char* waiting_at = "";    // what the last fiber to yield waits for
  void (*body)(void*) = nullptr;  // the kernel, as a function of arg
  void* arg = nullptr;
};
inline FxEmuFibers fx_emu_fibers;

// FX_EMU_FIBER_STACK is each fiber's stack, in bytes.
#ifndef FX_EMU_FIBER_STACK
#define FX_EMU_FIBER_STACK (64 << 10)
#endif

static void fx_emu_yield(const char* what) {
  FxEmuFibers& f = fx_emu_fibers;
  f.waiting_at = what;
  fx_emu_switch(&f.sp[f.current], f.sched);
}

// fx_emu_fiber_main is where a fiber starts: it runs the kernel and
// switches back for good.
static void fx_emu_fiber_main() {
  FxEmuFibers& f = fx_emu_fibers;
  f.body(f.arg);
  fx_emu_cp_check();
  f.ended = true;
  void* unused;
  fx_emu_switch(&unused, f.sched);
  std::abort();  // never resumed
}

// FX_EMU_CANARY is the bytes at the bottom of each fiber's stack that the
// scheduler checks when the fiber ends: a kernel whose locals outgrow
// FX_EMU_FIBER_STACK aborts the test.
#define FX_EMU_CANARY 64

// fx_emu_fiber_stack prepares stack for a first switch into
// fx_emu_fiber_main: six zero registers under its address, which the
// switch's ret pops with the stack aligned as after a call; and the canary.
static void* fx_emu_fiber_stack(std::vector<char>& stack) {
  std::memset(stack.data(), 0xa5, FX_EMU_CANARY);
  uintptr_t top = ((uintptr_t)stack.data() + stack.size()) & ~(uintptr_t)15;
  void** p = (void**)top;
  *--p = nullptr;                          // a return address fx_emu_fiber_main never uses
  *--p = (void*)&fx_emu_fiber_main;        // popped by ret
  for (int i = 0; i < 6; i++) *--p = nullptr;  // rbp, rbx, r12–r15
  return p;
}

// fx_emu_launch_shared runs kernel() on every thread of grid×block (block.y
// and block.z must be 1, as for every fx kernel) with shared bytes of
// dynamic shared memory, block after block, the block's threads as fibers.
template <typename F>
void fx_emu_launch_shared(FxEmuDim grid, FxEmuDim block, size_t shared, F kernel) {
  fx_emu_setup(grid, block, shared);
  FxEmuFibers& f = fx_emu_fibers;
  unsigned n = block.x;
  if (f.stacks.size() < n) {
    f.stacks.resize(n);
    for (auto& st : f.stacks) st.resize(FX_EMU_FIBER_STACK);
  }
  f.sp.assign(n, nullptr);
  f.wops.assign(n, 0);
  f.cp_open.assign(n, {});
  f.cp_groups.assign(n, {});
  f.done.assign(n, 0);
  f.body = [](void* k) { (*static_cast<F*>(k))(); };
  f.arg = &kernel;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        fx_emu_bid = FxEmuDim{x, y, z};
        for (FxEmuWarp& w : fx_emu.warps) w.bar.reset(32);
        fx_emu.block_bar.reset(n);
        if (!fx_emu.dyn_shared.empty()) std::memset(fx_emu.dyn_shared.data(), 0xff, fx_emu.dyn_shared.size());
        for (unsigned t = 0; t < n; t++) {
          f.sp[t] = fx_emu_fiber_stack(f.stacks[t]);
          f.done[t] = 0;
          f.wops[t] = 0;
        }
        for (unsigned live = n; live > 0;) {
          unsigned long long before = fx_emu_progress;
          for (unsigned t = 0; t < n; t++) {
            if (f.done[t]) continue;
            f.current = t;
            f.ended = false;
            fx_emu_tid = t;
            fx_emu_wops = f.wops[t];
            fx_emu_cp_open.swap(f.cp_open[t]);
            fx_emu_cp_groups.swap(f.cp_groups[t]);
            fx_emu_switch(&f.sched, f.sp[t]);
            fx_emu_cp_open.swap(f.cp_open[t]);
            fx_emu_cp_groups.swap(f.cp_groups[t]);
            f.wops[t] = fx_emu_wops;
            if (f.ended) {
              static const std::vector<char> canary(FX_EMU_CANARY, (char)0xa5);
              if (std::memcmp(f.stacks[t].data(), canary.data(), FX_EMU_CANARY) != 0) {
                std::fprintf(stderr, "fx_emu: thread %u of block (%u,%u,%u) overflowed its %d-byte fiber stack (FX_EMU_FIBER_STACK)\n",
                             t, x, y, z, FX_EMU_FIBER_STACK);
                std::abort();
              }
              f.done[t] = 1;
              live--;
              fx_emu_progress++;
            }
          }
          if (live > 0 && fx_emu_progress == before) {
            std::fprintf(stderr, "fx_emu: block (%u,%u,%u): %u threads wait at %s and none can go on: a thread exited early or skipped it\n",
                         x, y, z, live, f.waiting_at);
            std::abort();
          }
        }
      }
}
#else
// fx_emu_launch_shared runs kernel() on every thread of grid×block (block.y
// and block.z must be 1, as for every fx kernel) with shared bytes of
// dynamic shared memory.
template <typename F>
void fx_emu_launch_shared(FxEmuDim grid, FxEmuDim block, size_t shared, F kernel) {
  fx_emu_setup(grid, block, shared);
  fx_emu.launch_bar.reset(block.x);
  // One OS thread per thread of a block, for every block in turn: starting
  // threads costs far more than the barriers between blocks.
  std::vector<std::thread> threads;
  threads.reserve(block.x);
  for (unsigned t = 0; t < block.x; t++)
    threads.emplace_back([t, grid, &kernel] {
      fx_emu_tid = t;
      for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
          for (unsigned x = 0; x < grid.x; x++) {
            fx_emu_bid = FxEmuDim{x, y, z};
            fx_emu_wops = 0;
            fx_emu.launch_bar.wait("block start", false);  // every thread is done with the last block
            if (!fx_emu.dyn_shared.empty()) {
              if (t == 0) std::memset(fx_emu.dyn_shared.data(), 0xff, fx_emu.dyn_shared.size());
              fx_emu.launch_bar.wait("block start", false);  // the new block's dynamic shared memory is NaN
            }
            kernel();
            fx_emu_cp_check();
          }
    });
  for (std::thread& th : threads) th.join();
}

#endif  // FX_EMU_FIBERS

// fx_emu_launch runs kernel() on every thread of grid×block, without
// dynamic shared memory.
template <typename F>
void fx_emu_launch(FxEmuDim grid, FxEmuDim block, F kernel) {
  fx_emu_launch_shared(grid, block, 0, kernel);
}

#endif  // FX_EMU_H
