package recorder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/transformertest"
)

func benchInput(T int) bundle.Input {
	ids := make([]int, T)
	for i := range ids {
		ids[i] = (i * 7919) % 50257
	}
	return bundle.Input{InputIDs: ids}
}

// benchIdentity is a stand-in model identity (hashing the random weights
// is not what is measured).
func benchIdentity() bundle.Model {
	h := "0000000000000000000000000000000000000000000000000000000000000000"
	return bundle.Model{Name: "gpt2-small-random", Type: "gpt2", DType: "F32", ConfigSHA256: h, WeightsSHA256: h,
		Tokenizer: "embedded:gpt2", TokenizerSHA256: h}
}

// BenchmarkBundleSize records a 128-token forward pass of a
// GPT-2-small-shaped model at each level and writes the bundle; MB is the
// bundle's size. DESIGN's budget: full in float16 ≤ 100 MB, minimal ≤ 2 MB
// (the benchmark fails beyond them).
func BenchmarkBundleSize(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	in := benchInput(128)
	for _, tc := range []struct {
		level, dtype string
		every        bool // record hook_result too (excluded by default)
		budgetMB     float64
	}{
		{bundle.LevelMinimal, bundle.Float16, false, 2},
		{bundle.LevelLayer, bundle.Float16, false, 100},
		{bundle.LevelFull, bundle.Float16, false, 100},
		{bundle.LevelFull, bundle.Float16, true, 100},
	} {
		name := tc.level + "/" + tc.dtype
		if tc.every {
			name += "/every-hook"
		}
		b.Run(name, func(b *testing.B) {
			var size int64
			for i := 0; b.Loop(); i++ {
				opts := recorder.DefaultOptions()
				opts.Level, opts.DType = tc.level, tc.dtype
				if tc.every {
					opts.Exclude = nil
				}
				r, err := recorder.New(m, opts)
				require.NoError(b, err)
				_, err = r.Run(context.Background(), in)
				require.NoError(b, err)
				rec, err := r.Finish()
				require.NoError(b, err)
				dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
				require.NoError(b, rec.Write(dir, recorder.WriteOptions{Model: benchIdentity(), Runtime: recorder.RuntimeInfo(m.Backend),
					Outcome: bundle.Outcome{Detector: "none"}}))
				bu, err := bundle.Open(dir, bundle.DefaultLimits())
				require.NoError(b, err)
				size = bu.Size()
				require.NoError(b, os.RemoveAll(dir))
			}
			mb := float64(size) / 1e6
			b.ReportMetric(mb, "MB")
			if mb > tc.budgetMB {
				b.Fatalf("%s bundle of a 128-token GPT-2-small run is %.2f MB, over the %.0f MB budget", tc.level, mb, tc.budgetMB)
			}
		})
	}
}

// BenchmarkRecordOverhead is a 128-token forward pass of a
// GPT-2-small-shaped model without recording and recorded at each level
// (in memory: hooks, sketches, stored activations; then Finish), and the
// same with the bundle written. cpu-s/op is the process's CPU time per run
// (the CPU backend and the sketches both run on every core).
func BenchmarkRecordOverhead(b *testing.B) {
	m := transformertest.GPT2Small(b, cpu.New())
	defer m.Close()
	in := benchInput(128)
	batch, err := transformer.NewBatch([][]int{in.InputIDs}, nil)
	require.NoError(b, err)
	b.Run("plain", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			_, err := m.Forward(context.Background(), batch, nil)
			require.NoError(b, err)
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
	for _, level := range []string{bundle.LevelMinimal, bundle.LevelLayer, bundle.LevelFull} {
		for _, write := range []bool{false, true} {
			name := level
			if write {
				name += "+write"
			}
			b.Run(name, func(b *testing.B) {
				var hooks, writes time.Duration
				cpu0 := cpuTime()
				for i := 0; b.Loop(); i++ {
					opts := recorder.DefaultOptions()
					opts.Level = level
					r, err := recorder.New(m, opts)
					require.NoError(b, err)
					_, err = r.Run(context.Background(), in)
					require.NoError(b, err)
					rec, err := r.Finish()
					require.NoError(b, err)
					hooks += rec.HookTime
					if write {
						start := time.Now()
						dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
						require.NoError(b, rec.Write(dir, recorder.WriteOptions{Model: benchIdentity(),
							Runtime: recorder.RuntimeInfo(m.Backend), Outcome: bundle.Outcome{Detector: "none"}}))
						writes += time.Since(start)
						require.NoError(b, os.RemoveAll(dir))
					}
				}
				// CPU time (less noisy than wall time on a busy machine),
				// time inside the recorder's hooks and writing the bundle,
				// per run.
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
				b.ReportMetric(hooks.Seconds()/float64(b.N), "hook-s/op")
				if write {
					b.ReportMetric(writes.Seconds()/float64(b.N), "write-s/op")
				}
			})
		}
	}
}
