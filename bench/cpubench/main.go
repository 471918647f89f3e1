// Command cpubench times fx's GPT-2 on the CPU backend as
// bench/torch_cpu_forward.py times PyTorch: a full forward of one token and
// of a prompt (every position's logits), one decode step through the KV
// cache after the prompt, and the peak RSS of loading the model and running
// the prompt's forward. bench/run_cpu_bench.sh runs both, interleaved.
//
//	go run ./bench/cpubench -model DIR [-threads N] [-kernels auto|go|avx2|avx512] [-rounds R]
//
// Each time is the best of R rounds (each round the mean of enough calls to
// last about -seconds); it prints one JSON object.
//
// With -hooks N it measures the hook path instead (the [hooks] overhead
// benchmark, transformer's BenchmarkHookOverhead, alternating): N rounds,
// each a prompt forward with no hooks, one with a no-op hook at every hook
// point that only observes (all but hook_result and hook_scale) and one
// with a no-op hook at hook_pattern alone, in turn, so that the three see
// the same load; it prints the best and the median CPU time (user and
// system, which other jobs on the machine disturb less than the wall
// clock) and wall time of each, and their overheads over no hooks.
//
//	go run ./bench/cpubench -model DIR -threads 1 -hooks 15
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
)

// result is one measurement.
type result struct {
	Bench      string  `json:"bench"`
	SecPerOp   float64 `json:"sec_per_op"`
	TokensPerS float64 `json:"tokens_per_s,omitempty"`
}

func main() {
	model := flag.String("model", "", "model directory (config.json, model.safetensors)")
	threads := flag.Int("threads", runtime.GOMAXPROCS(0), "GOMAXPROCS")
	kernels := flag.String("kernels", "auto", "CPU kernels: auto, go, avx2 or avx512")
	prompt := flag.Int("tokens", 128, "prompt length")
	steps := flag.Int("steps", 16, "decode steps timed after the prompt")
	rounds := flag.Int("rounds", 3, "rounds per measurement (the best is kept)")
	seconds := flag.Float64("seconds", 1, "minimum duration of a round")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	hooks := flag.Int("hooks", 0, "measure the hook overhead over this many alternating rounds instead")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpubench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	if *hooks > 0 {
		err = hookOverhead(*model, *threads, cpu.Kernels(*kernels), *prompt, *hooks)
	} else {
		err = run(*model, *threads, cpu.Kernels(*kernels), *prompt, *steps, *rounds, *seconds)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "cpubench:", err)
		os.Exit(1)
	}
}

// load sets the thread count and loads the model in dir on a CPU backend
// with the given kernels.
func load(dir string, threads int, kernels cpu.Kernels) (*transformer.Model, *cpu.Backend, error) {
	if dir == "" {
		return nil, nil, fmt.Errorf("-model DIR is required")
	}
	runtime.GOMAXPROCS(threads)
	be := cpu.New(cpu.WithKernels(kernels))
	m, err := transformer.Load(dir, be)
	return m, be, err
}

func run(dir string, threads int, kernels cpu.Kernels, prompt, steps, rounds int, seconds float64) error {
	m, be, err := load(dir, threads, kernels)
	if err != nil {
		return err
	}
	defer m.Close()
	ctx := context.Background()
	ids := make([]int, prompt)
	for i := range ids {
		ids[i] = (i * 7919) % m.Config.VocabSize
	}
	forward := func(n int) func() error {
		in, err := transformer.NewBatch([][]int{ids[:n]}, nil)
		if err != nil {
			return func() error { return err }
		}
		return func() error { _, err := m.Forward(ctx, in, nil); return err }
	}
	generate := func(newTokens int) func() error {
		return func() error {
			_, err := m.Generate(ctx, ids, transformer.GenerateOptions{MaxNewTokens: newTokens}, nil)
			return err
		}
	}

	// Peak RSS first: the model loaded and one prompt forward, nothing else.
	if err := forward(prompt)(); err != nil {
		return err
	}
	rss := peakRSS()

	var results []result
	for _, n := range []int{1, prompt} {
		sec, err := best(forward(n), rounds, seconds)
		if err != nil {
			return err
		}
		results = append(results, result{Bench: fmt.Sprintf("GPT2SmallForward/tokens=%d", n), SecPerOp: sec, TokensPerS: float64(n) / sec})
	}
	// A decode step: Generate of 1+steps new tokens minus Generate of 1 (the
	// prompt's forward and the first token), per step.
	one, err := best(generate(1), rounds, seconds)
	if err != nil {
		return err
	}
	many, err := best(generate(1+steps), rounds, seconds)
	if err != nil {
		return err
	}
	step := (many - one) / float64(steps)
	results = append(results,
		result{Bench: fmt.Sprintf("GPT2SmallPrefill/tokens=%d", prompt), SecPerOp: one, TokensPerS: float64(prompt) / one},
		result{Bench: fmt.Sprintf("GPT2SmallDecodeStep/cache=%d", prompt), SecPerOp: step, TokensPerS: 1 / step})

	weights, _ := os.Stat(filepath.Join(dir, "model.safetensors"))
	out := map[string]any{
		"fx":           "cpubench",
		"threads":      threads,
		"kernels":      be.Kernels(),
		"results":      results,
		"peak_rss_mib": float64(rss) / (1 << 20),
		"weights_mib":  0.0,
		"rss_note":     fmt.Sprintf("peak RSS after loading the model and one %d-token forward", prompt),
		"go":           runtime.Version(),
	}
	if weights != nil {
		out["weights_mib"] = float64(weights.Size()) / (1 << 20)
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// best returns the shortest mean time per call of fn over rounds rounds,
// each of enough calls to last at least seconds (after one warm-up call).
func best(fn func() error, rounds int, seconds float64) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	bestSec := 0.0
	for r := range rounds {
		n, start := 0, time.Now()
		for n == 0 || time.Since(start).Seconds() < seconds {
			if err := fn(); err != nil {
				return 0, err
			}
			n++
		}
		sec := time.Since(start).Seconds() / float64(n)
		if r == 0 || sec < bestSec {
			bestSec = sec
		}
	}
	return bestSec, nil
}

// hookOverhead times prompt forwards with no hooks, with a no-op hook at
// every observing hook point, and with one at hook_pattern alone, rounds
// times each, in turn, and prints the times and overheads as JSON.
func hookOverhead(dir string, threads int, kernels cpu.Kernels, prompt, rounds int) error {
	m, be, err := load(dir, threads, kernels)
	if err != nil {
		return err
	}
	defer m.Close()
	noop := func(*engine.Tensor, *transformer.HookCtx) error { return nil }
	var observe, pattern []transformer.HookSpec
	for _, n := range m.HookNames() {
		if !strings.HasSuffix(n, "hook_result") && !strings.HasSuffix(n, "hook_scale") {
			observe = append(observe, transformer.Hook(n, noop))
		}
		if strings.HasSuffix(n, "hook_pattern") {
			pattern = append(pattern, transformer.Hook(n, noop))
		}
	}
	ids := make([]int, prompt)
	for i := range ids {
		ids[i] = (i * 7919) % m.Config.VocabSize
	}
	variants := []struct {
		name  string
		hooks []transformer.HookSpec
	}{{"none", nil}, {"observe-all", observe}, {"pattern", pattern}}
	cpuSec := make([][]float64, len(variants))
	wallSec := make([][]float64, len(variants))
	ctx := context.Background()
	for r := -1; r < rounds; r++ { // round -1 warms up
		for i, v := range variants {
			c0, _ := cpuSeconds()
			t0 := time.Now()
			if _, err := m.RunWithHooks(ctx, ids, v.hooks...); err != nil {
				return err
			}
			wall := time.Since(t0).Seconds()
			c1, ok := cpuSeconds()
			if r < 0 {
				continue
			}
			wallSec[i] = append(wallSec[i], wall)
			if ok {
				cpuSec[i] = append(cpuSec[i], c1-c0)
			}
		}
	}
	type stats struct {
		Best   float64 `json:"best_s"`
		Median float64 `json:"median_s"`
	}
	summary := func(xs []float64) stats {
		if len(xs) == 0 {
			return stats{}
		}
		xs = slices.Sorted(slices.Values(xs))
		return stats{Best: xs[0], Median: xs[len(xs)/2]}
	}
	pct := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * (a/b - 1)
	}
	var results []map[string]any
	base, baseWall := summary(cpuSec[0]), summary(wallSec[0])
	for i, v := range variants {
		c, w := summary(cpuSec[i]), summary(wallSec[i])
		results = append(results, map[string]any{
			"hooks":                 v.name,
			"hook_specs":            len(v.hooks),
			"cpu":                   c,
			"wall":                  w,
			"cpu_best_overhead_%":   pct(c.Best, base.Best),
			"cpu_median_overhead_%": pct(c.Median, base.Median),
			"wall_best_overhead_%":  pct(w.Best, baseWall.Best),
		})
	}
	b, err := json.MarshalIndent(map[string]any{
		"fx": "cpubench -hooks", "threads": threads, "kernels": be.Kernels(), "tokens": prompt,
		"rounds": rounds, "results": results, "go": runtime.Version(),
	}, "", " ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
