package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
)

func main() {
	runtime.GOMAXPROCS(1)
	m, err := transformer.Load("/tmp/cpuspeed/model/gpt2-small", cpu.New())
	if err != nil {
		panic(err)
	}
	ids := make([]int, 128)
	for i := range ids {
		ids[i] = (i * 7919) % 50257
	}
	in, _ := transformer.NewBatch([][]int{ids}, nil)
	m.Forward(context.Background(), in, nil)
	f, _ := os.Create(os.Args[1])
	pprof.StartCPUProfile(f)
	const n = 10
	best, bestCPU := 1e9, 1e9
	for range n {
		st := time.Now()
		c0 := cpuTime()
		m.Forward(context.Background(), in, nil)
		best = min(best, time.Since(st).Seconds())
		bestCPU = min(bestCPU, cpuTime()-c0)
	}
	pprof.StopCPUProfile()
	fmt.Printf("forward 128: best %.1f ms wall, best %.1f ms CPU\n", best*1000, bestCPU*1000)
}

func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
