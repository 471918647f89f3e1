// fakekernels.cpp gives the fake driver (cuda/testdata/fakecuda.c) every fx
// kernel, run on the host emulator (fx_emu.h), so that engine/gpu and
// everything above it run whole on a machine without a GPU: the Go code's
// launches, argument packing, pools, copies, streams, events and graphs
// against the kernels' real code. Timings mean nothing here, and the
// emulator runs a launch at a time (one OS thread per GPU thread of a
// block, blocks in turn, each block's threads as fibers: fx_emu.h).
//
// Build (engine/gpu's TestEmulatedDevice does this):
//   clang++-14 -std=c++17 -O1 -fPIC -I .. -I ../../cuda -c fakekernels.cpp
//   cc -fPIC -I ../../cuda -c ../../cuda/testdata/fakecuda.c
//   clang++-14 -shared -o DIR/libcuda.so.1 fakekernels.o fakecuda.o -pthread

#define FX_HOST_EMU
#define FX_EMU_FIBERS

#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>

#include "../attention.cu"
#include "../copy.cu"
#include "../elementwise.cu"
#include "../matmul.cu"
#include "../matmul_bf16.cu"
#include "../record.cu"
#include "../rows.cu"
#include "testdata/fake_kernel.h"

namespace {

// launch_mu serializes launches: the emulator's state is one per process.
std::mutex launch_mu;

template <typename F>
struct Signature;

// Signature<void (*)(A...)> runs a kernel of parameters A... from the
// driver's array of pointers to its parameters.
template <typename... A>
struct Signature<void (*)(A...)> {
  static constexpr int n = sizeof...(A);
  static constexpr int sizes[sizeof...(A)] = {(int)sizeof(A)...};
  static_assert(((sizeof(A) <= FX_FAKE_PARAM_BYTES) && ...), "a parameter larger than the fake copies");

  template <void (*K)(A...), size_t... I>
  static void call(void** params, std::index_sequence<I...>) {
    K(*static_cast<std::remove_cv_t<A>*>(params[I])...);
  }

  template <void (*K)(A...)>
  static void run(const unsigned grid[3], const unsigned block[3], unsigned shared, void** params) {
    std::lock_guard<std::mutex> lock(launch_mu);
    FxEmuDim g, b;
    g.x = grid[0], g.y = grid[1], g.z = grid[2];
    b.x = block[0], b.y = block[1], b.z = block[2];
    fx_emu_launch_shared(g, b, shared, [&] { call<K>(params, std::index_sequence_for<A...>{}); });
  }
};

template <auto K>
constexpr fake_kernel entry(const char* name) {
  using S = Signature<decltype(K)>;
  return fake_kernel{name, S::n, S::sizes, &S::template run<K>};
}

#define FX_KERNEL(name) entry<&name>(#name)

// kernels lists every extern "C" __global__ function of kernels/*.cu; a
// kernel missing here is NOT_FOUND, which engine/gpu reports when it loads.
const fake_kernel kernels[] = {
    FX_KERNEL(fx_attn_scores),
    FX_KERNEL(fx_attn_mix),
    FX_KERNEL(fx_attention),
    FX_KERNEL(fx_attention_tiled),
    FX_KERNEL(fx_head_result),
    FX_KERNEL(fx_attn_scores_backward_dq),
    FX_KERNEL(fx_attn_scores_backward_dk),
    FX_KERNEL(fx_attn_mix_backward_dp),
    FX_KERNEL(fx_attn_mix_backward_dv),
    FX_KERNEL(fx_gather_rows),
    FX_KERNEL(fx_gather_rows_at),
    FX_KERNEL(fx_set_rows_at),
    FX_KERNEL(fx_copy_cols),
    FX_KERNEL(fx_scatter_add_rows),
    FX_KERNEL(fx_sum_axis),
    FX_KERNEL(fx_gelu_tanh),
    FX_KERNEL(fx_gelu_erf),
    FX_KERNEL(fx_tanh),
    FX_KERNEL(fx_add),
    FX_KERNEL(fx_gelu_tanh_backward),
    FX_KERNEL(fx_gelu_erf_backward),
    FX_KERNEL(fx_tanh_backward),
    FX_KERNEL(fx_edit_box),
    FX_KERNEL(fx_matmul_splitk_reduce),
    FX_KERNEL(fx_matmul_splitk_reduce_act),
    FX_KERNEL(fx_matmul_skinny_partial),
    FX_KERNEL(fx_matmul_f32),
    FX_KERNEL(fx_matmul_f32_64),
    FX_KERNEL(fx_matmul_tf32_64),
    FX_KERNEL(fx_matmul_tf32),
    FX_KERNEL(fx_bf16_pack_weight),
    FX_KERNEL(fx_matmul_bf16),
    FX_KERNEL(fx_record_rows),
    FX_KERNEL(fx_record_f16),
    FX_KERNEL(fx_layernorm),
    FX_KERNEL(fx_add_layernorm),
    FX_KERNEL(fx_layernorm_scale),
    FX_KERNEL(fx_layernorm_backward),
    FX_KERNEL(fx_softmax),
    FX_KERNEL(fx_softmax_backward),
};

}  // namespace

extern "C" const fake_kernel* fx_fake_kernel(const char* name) {
  for (const fake_kernel& k : kernels)
    if (std::strcmp(k.name, name) == 0) return &k;
  return nullptr;
}
