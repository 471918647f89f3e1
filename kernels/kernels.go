// Package kernels holds fx's hand-written CUDA kernels as PTX, for the GPU
// backend (engine/gpu) to load with the CUDA driver at run time.
//
// Each op family is one .cu file in this directory (elementwise, rows, copy,
// attention, matmul, matmul_bf16, record), compiled to a .ptx file beside it by `make kernels`
// with Debian's clang-14 alone: no CUDA toolkit, no CUDA headers, no
// libdevice. fx_cuda.h supplies the dialect the CUDA headers would (thread
// indices, barriers, warp shuffles, tensor-core mma) and the float math
// (exp, tanh, erf, erfc, the normal CDF) the kernels need; fx_gelu.h holds
// GELU, shared by the elementwise kernels and the matmul's epilogue. The
// .ptx files are committed, so building fx needs no CUDA compiler; the
// tests check that they match their sources.
//
// Every kernel is extern "C" with a comment stating its launch geometry and
// what it computes; engine/cpu is the reference for each op.
//
// kernels/emu runs the same sources on the host: emu/fx_emu.h emulates a
// block as OS threads (barriers, shuffles and mma by the PTX ISA's fragment
// layout), emu/kernelcheck.cpp checks every kernel against a plain
// reference on edge-case shapes (emu/attncheck.cpp does so for
// fx_attention_tiled, emu/bf16check.cpp for matmul_bf16.cu and
// emu/recordcheck.cpp for record.cu, bit for bit against the recorder's
// rules), and emu/mathcheck.cpp measures the math against
// long-double references over all float inputs. Set FX_KERNELS_EMU=1 to run
// them from `go test` (it needs clang++-14 and takes a few minutes).
package kernels

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.ptx
var ptxFiles embed.FS

// Module is one compiled .cu file: PTX text for the driver's JIT.
type Module struct {
	// Name is the file stem: "matmul" for matmul.cu and matmul.ptx.
	Name string
	// PTX is the module's PTX source (.target sm_80, PTX ISA 7.0).
	PTX string
}

// Modules returns every PTX module, sorted by name.
func Modules() []Module {
	entries, err := fs.ReadDir(ptxFiles, ".")
	if err != nil {
		panic("kernels: reading embedded PTX: " + err.Error())
	}
	var mods []Module
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".ptx") {
			continue
		}
		b, err := ptxFiles.ReadFile(name)
		if err != nil {
			panic("kernels: reading embedded " + name + ": " + err.Error())
		}
		mods = append(mods, Module{Name: strings.TrimSuffix(name, ".ptx"), PTX: string(b)})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	return mods
}
