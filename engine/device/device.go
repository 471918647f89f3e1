// Package device opens the backend a --device flag names, so that one fx
// binary runs everywhere: the CPU backend always, the CUDA backend where
// the driver and a GPU are present.
package device

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/engine/gpu"
)

// Names lists what Open takes.
const Names = "auto, cpu, cuda, cuda:N, cuda-tf32 (cuda:N-tf32) or cuda-bf16 (cuda:N-bf16)"

// Open returns the backend name selects: "cpu"; "cuda" or "cuda:N" (GPU
// N, FP32 matmuls), with "-tf32" for TF32 or "-bf16" for BF16 tensor-core
// matmuls; "auto"
// for GPU 0 when a driver and a GPU are present, else the CPU. "cuda" on a
// machine without either is an error that says so.
func Open(name string) (engine.Backend, error) {
	switch name {
	case "cpu":
		return cpu.New(), nil
	case "auto":
		b, err := gpu.New(gpu.Options{})
		if err != nil {
			return cpu.New(), nil
		}
		return b, nil
	}
	opts, ok := ParseCUDA(name)
	if !ok {
		return nil, fmt.Errorf("unknown device %q: want %s", name, Names)
	}
	b, err := gpu.New(opts)
	if err != nil {
		return nil, err // not a nil *gpu.Backend in a non-nil interface
	}
	return b, nil
}

// ParseCUDA parses "cuda", "cuda:N" and their "-tf32" and "-bf16" forms.
func ParseCUDA(name string) (gpu.Options, bool) {
	var opts gpu.Options
	if rest, ok := strings.CutSuffix(name, "-tf32"); ok {
		name, opts.MatMul = rest, gpu.TF32
	} else if rest, ok := strings.CutSuffix(name, "-bf16"); ok {
		name, opts.MatMul = rest, gpu.BF16
	}
	if name == "cuda" {
		return opts, true
	}
	n, ok := strings.CutPrefix(name, "cuda:")
	if !ok {
		return opts, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 {
		return opts, false
	}
	opts.Ordinal = i
	return opts, true
}
