package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/cpu"
)

// randSlice returns n normal values from a fixed seed.
func randSlice(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// BenchmarkMatMul times x·w + bias at GPT-2's shapes for each set of
// kernels this CPU can run ("-bench MatMul/kernels=avx2/" picks one), and
// AVX-512 with its 6×64 main tile as kernels=avx512_main4.
func BenchmarkMatMul(b *testing.B) {
	shapes := []struct {
		k, n   int
		transW bool
	}{
		{768, 2304, false},
		{768, 768, false},
		{768, 3072, false},
		{3072, 768, false},
		{768, 50257, true},
	}
	sets := map[string]*cpu.Backend{}
	var names []string
	for _, kn := range cpu.AvailableKernels() {
		sets[string(kn)] = cpu.New(cpu.WithKernels(kn))
		names = append(names, string(kn))
		if kn == cpu.KernelsAVX512 {
			be := cpu.New(cpu.WithKernels(kn))
			if cpu.SetMainPanels(be, 4, false) {
				sets["avx512_main4"] = be
				names = append(names, "avx512_main4")
			}
		}
	}
	for _, kn := range names {
		be := sets[kn]
		for _, m := range []int{1, 8, 128, 512} {
			for _, s := range shapes {
				name := fmt.Sprintf("kernels=%s/M=%d/K=%d/N=%d/transW=%v", kn, m, s.k, s.n, s.transW)
				b.Run(name, func(b *testing.B) {
					x := be.FromHost(randSlice(1, m*s.k), m, s.k)
					wShape := []int{s.k, s.n}
					if s.transW {
						wShape = []int{s.n, s.k}
					}
					w := be.FromHost(randSlice(2, s.k*s.n), wShape...)
					bias := be.FromHost(randSlice(3, s.n), s.n)
					b.ResetTimer()
					for b.Loop() {
						be.MatMul(x, w, bias, s.transW)
					}
					flops := 2 * float64(m) * float64(s.k) * float64(s.n)
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkOps times every op but MatMul (backendtest.OpBenches) at GPT-2
// small's shapes over 128 tokens, with the effective bandwidth: the least
// bytes the op must read and write over its time.
func BenchmarkOps(b *testing.B) {
	be := cpu.New()
	for _, op := range backendtest.OpBenches(be, 1, 128) {
		b.Run(backendtest.OpBenchName(op, 1, 128), func(b *testing.B) {
			b.SetBytes(op.Bytes)
			for b.Loop() {
				op.Run()
			}
		})
	}
}
