package cpu

import (
	"testing"
	"time"
)

func BenchmarkKernel6x16(b *testing.B) {
	const kb = 256
	a := make([]float32, 6*kb)
	bp := make([]float32, kb*16)
	c := make([]float32, 6*16)
	for i := range a {
		a[i] = 0.001
	}
	for b.Loop() {
		for range 100 {
			sgemmAVX2_6x16(kb, &a[0], &bp[0], 16, 0, &c[0], 16, 1, nil)
		}
	}
	b.ReportMetric(2*6*16*kb*100*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func TestM1Variants(t *testing.T) {
	const K, N = 768, 2304
	w := make([]float32, K*N)
	for i := range w {
		w[i] = float32(i%7) * 0.1
	}
	x := make([]float32, K)
	c := make([]float32, N)
	best := map[string]float64{}
	type variant struct {
		name string
		f    func()
	}
	vs := []variant{
		{"gemv full", func() { sgemvAVX2_1(K, &x[0], &w[0], N, &c[0], N, N, nil) }},
		{"gemv 576", func() {
			for n0 := 0; n0 < N; n0 += 576 {
				sgemvAVX2_1(K, &x[0], &w[n0], N, &c[n0], N, 576, nil)
			}
		}},
		{"gemv 256", func() {
			for n0 := 0; n0 < N; n0 += 256 {
				sgemvAVX2_1(K, &x[0], &w[n0], N, &c[n0], N, 256, nil)
			}
		}},
		{"tile 1x64 kb256", func() {
			for n0 := 0; n0 < N; n0 += 64 {
				for pc := 0; pc < K; pc += 256 {
					sgemmAVX2_1x64(256, &x[pc], &w[pc*N+n0], N, 16, &c[n0], N, min(pc, 1), nil)
				}
			}
		}},
		{"tile 1x64 kb768", func() {
			for n0 := 0; n0 < N; n0 += 64 {
				sgemmAVX2_1x64(768, &x[0], &w[n0], N, 16, &c[n0], N, 0, nil)
			}
		}},
	}
	for range 20 {
		for _, v := range vs {
			st := time.Now()
			for range 10 {
				v.f()
			}
			best[v.name] = max(best[v.name], 10*2*K*N/time.Since(st).Seconds()/1e9)
		}
	}
	t.Log(best)
}

func BenchmarkGELUx(b *testing.B) {
	be := New(WithWorkers(1))
	x := make([]float32, 128*3072)
	for i := range x {
		x[i] = float32(i%1000)/250 - 2
	}
	t := be.FromHost(x, 128, 3072)
	for b.Loop() {
		be.GELU(t, 0)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
}
