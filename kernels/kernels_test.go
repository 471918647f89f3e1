package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clangFlags are the flags `make kernels` compiles each .cu with (the
// Makefile's kernels target spells them the same way; a test checks that).
var clangFlags = []string{
	"-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib",
	"-O3", "-Wall", "-Werror", "-S",
}

// wantKernels are the entry points engine/gpu launches, by module.
var wantKernels = map[string][]string{
	"elementwise": {
		"fx_gelu_tanh", "fx_gelu_erf", "fx_tanh", "fx_add",
		"fx_gelu_tanh_backward", "fx_gelu_erf_backward", "fx_tanh_backward", "fx_edit_box",
	},
	"rows": {
		"fx_layernorm", "fx_layernorm_scale", "fx_layernorm_backward", "fx_add_layernorm", "fx_softmax",
		"fx_softmax_backward",
	},
	"copy": {
		"fx_gather_rows", "fx_gather_rows_at", "fx_set_rows_at", "fx_copy_cols", "fx_scatter_add_rows",
		"fx_sum_axis",
	},
	"attention": {
		"fx_attn_scores", "fx_attn_mix", "fx_attention", "fx_attention_tiled", "fx_head_result",
		"fx_attn_scores_backward_dq", "fx_attn_scores_backward_dk",
		"fx_attn_mix_backward_dp", "fx_attn_mix_backward_dv",
	},
	"matmul": {
		"fx_matmul_f32", "fx_matmul_f32_64", "fx_matmul_tf32", "fx_matmul_tf32_64",
		"fx_matmul_skinny_partial", "fx_matmul_splitk_reduce", "fx_matmul_splitk_reduce_act",
	},
	"matmul_bf16": {"fx_bf16_pack_weight", "fx_matmul_bf16"},
	"record":      {"fx_record_rows", "fx_record_f16"},
}

func TestModulesHoldEveryKernel(t *testing.T) {
	mods := Modules()
	require.Len(t, mods, len(wantKernels))
	byName := map[string]string{}
	for _, m := range mods {
		byName[m.Name] = m.PTX
	}
	entry := regexp.MustCompile(`\.entry (\w+)\(`)
	for mod, names := range wantKernels {
		ptx, ok := byName[mod]
		if !assert.True(t, ok, "module %s", mod) {
			continue
		}
		assert.Contains(t, ptx, "\n.target sm_80\n", "module %s", mod)
		assert.Contains(t, ptx, "\n.version 7.0\n", "module %s", mod)
		for _, name := range names {
			assert.Contains(t, ptx, ".entry "+name+"(", "module %s", mod)
		}
		var got []string
		for _, m := range entry.FindAllStringSubmatch(ptx, -1) {
			got = append(got, m[1])
		}
		assert.ElementsMatch(t, names, got, "entries of module %s", mod)
		// Spills or arrays in local memory would show as .local.
		assert.NotContains(t, ptx, ".local", "module %s", mod)
	}
	// fx_matmul_tf32: 4×4 mma tiles × 4 k-steps; fx_matmul_tf32_64: 2×4 × 4.
	assert.Equal(t, 64+32, strings.Count(byName["matmul"], "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"))
	// fx_matmul_bf16: 4×4 mma tiles × 2 k16-steps, BF16 rounding with
	// cvt.rn (the pairs of x as fragments are read; the weights once).
	assert.Equal(t, 32, strings.Count(byName["matmul_bf16"], "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"))
	assert.Contains(t, byName["matmul_bf16"], "cvt.rn.bf16x2.f32")
	assert.Contains(t, byName["matmul_bf16"], "cvt.rn.bf16.f32")
	// fx_matmul_tf32's pipeline: 16-byte and 4-byte cp.async into dynamic
	// shared memory, two tiles ahead.
	for _, s := range []string{"cp.async.cg.shared.global", "cp.async.ca.shared.global", "cp.async.commit_group;",
		"cp.async.wait_group 1;", ".extern .shared .align 16 .b8 smem[];"} {
		assert.Contains(t, byName["matmul"], s)
	}
}

func TestMakefileFlags(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	assert.Contains(t, string(mk), strings.Join(clangFlags, " "), "the Makefile's kernels target and clangFlags differ")
}

// TestPTXMatchesSource recompiles every .cu and compares the result with
// the committed .ptx. It needs clang-14 on PATH.
func TestPTXMatchesSource(t *testing.T) {
	sources, err := filepath.Glob("*.cu")
	require.NoError(t, err)
	ptxs, err := filepath.Glob("*.ptx")
	require.NoError(t, err)
	require.Len(t, ptxs, len(sources), "every .cu has its .ptx and no .ptx is left over")
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		t.Skip("clang-14 is not on PATH")
	}
	dir := t.TempDir()
	for _, src := range sources {
		stem := strings.TrimSuffix(src, ".cu")
		t.Run(stem, func(t *testing.T) {
			out := filepath.Join(dir, stem+".ptx")
			args := append(append([]string{}, clangFlags...), "-o", out, src)
			cmd := exec.Command(clang, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Run(), "clang-14 %s: %s", src, stderr.String())
			assert.Empty(t, stderr.String(), "clang-14 warnings for %s", src)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			committed, err := os.ReadFile(stem + ".ptx")
			require.NoError(t, err)
			assert.True(t, bytes.Equal(got, committed), "%s.ptx is not what %s compiles to: run make kernels", stem, src)
		})
	}
}

// TestEmulator builds and runs emu/mathcheck.cpp, emu/kernelcheck.cpp,
// emu/attncheck.cpp, emu/bf16check.cpp and emu/recordcheck.cpp (see the
// package comment), all but the first under
// ThreadSanitizer so that a missing barrier fails them. It runs only with
// FX_KERNELS_EMU=1 and clang++-14 on PATH.
func TestEmulator(t *testing.T) {
	if os.Getenv("FX_KERNELS_EMU") != "1" {
		t.Skip("set FX_KERNELS_EMU=1 to run the kernels on the host emulator")
	}
	cxx, err := exec.LookPath("clang++-14")
	if err != nil {
		t.Skip("clang++-14 is not on PATH")
	}
	dir := t.TempDir()
	run := func(t *testing.T, name string, flags []string, args ...string) {
		bin := filepath.Join(dir, name)
		build := append([]string{"-std=c++17", "-O1", "-DFX_HOST_EMU", "-I", ".", "-x", "c++", "emu/" + name + ".cpp",
			"-pthread", "-o", bin}, flags...)
		out, err := exec.Command(cxx, build...).CombinedOutput()
		require.NoError(t, err, "building %s: %s", name, out)
		out, err = exec.Command(bin, args...).CombinedOutput()
		t.Logf("%s %s:\n%s", name, strings.Join(flags, " "), out)
		assert.NoError(t, err, "%s failed", name)
	}
	t.Run("mathcheck", func(t *testing.T) {
		run(t, "mathcheck", []string{"-ffp-contract=off"}, "257")
	})
	t.Run("kernelcheck", func(t *testing.T) {
		run(t, "kernelcheck", []string{"-fsanitize=thread"})
	})
	t.Run("attncheck", func(t *testing.T) {
		run(t, "attncheck", []string{"-fsanitize=thread"})
	})
	t.Run("bf16check", func(t *testing.T) {
		run(t, "bf16check", []string{"-fsanitize=thread"}, "edges")
	})
	t.Run("recordcheck", func(t *testing.T) {
		run(t, "recordcheck", []string{"-ffp-contract=off", "-fsanitize=thread"})
	})
}
