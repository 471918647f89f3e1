package gpu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/gpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/transformertest"
)

// The benchmarks report the device time per op (ms/op, from CUDA events
// around b.N ops) beside Go's wall-clock ns/op; bench/gpu/run.sh puts them
// beside PyTorch's times on the same card.

var precisions = []gpu.Precision{gpu.FP32, gpu.TF32, gpu.BF16}

// BenchmarkMatMul times MatMul at GPT-2 shapes: x [M, K] · w [K, N] (the
// Conv1D layout), and the unembedding x · wteᵀ (transW, N = 50257). Inputs
// that fit in L2 rotate among four sets.
func BenchmarkMatMul(b *testing.B) {
	for _, prec := range precisions {
		g := newBackend(b, gpu.Options{MatMul: prec})
		for _, m := range []int{1, 128, 512, 4096} {
			for _, kn := range [][2]int{{768, 2304}, {768, 3072}, {3072, 768}, {768, 50257}} {
				for _, transW := range []bool{false, true} {
					if transW && kn[1] != 50257 {
						continue
					}
					name := fmt.Sprintf("%s/M=%d,K=%d,N=%d", prec, m, kn[0], kn[1])
					if transW {
						name += ",transW"
					}
					b.Run(name, func(b *testing.B) {
						benchMatMul(b, g, m, kn[0], kn[1], transW)
					})
				}
			}
		}
		g.Sync()
	}
}

func benchMatMul(b *testing.B, g *gpu.Backend, m, k, n int, transW bool) {
	r := rand.New(rand.NewPCG(uint64(m), uint64(n)))
	sets := 1
	if 4*(m*k+k*n+m*n) < 64<<20 {
		sets = 4
	}
	var xs, ws []*engine.Tensor
	for range sets {
		xs = append(xs, g.FromHost(randn(r, m*k, 1), m, k))
		wshape := []int{k, n}
		if transW {
			wshape = []int{n, k}
		}
		ws = append(ws, g.FromHost(randn(r, k*n, 0.02), wshape...))
	}
	bias := g.FromHost(randn(r, n, 0.02), n)
	for i := range 3 { // warm up: module load, JIT, pool
		g.MatMul(xs[i%sets], ws[i%sets], bias, transW)
	}
	require.NoError(b, g.Sync())
	b.ResetTimer()
	timer, err := g.StartTimer()
	require.NoError(b, err)
	for i := range b.N {
		g.MatMul(xs[i%sets], ws[i%sets], bias, transW)
	}
	dev, err := timer.Stop()
	require.NoError(b, err)
	require.NoError(b, g.Sync())
	perOp := dev.Seconds() / float64(b.N)
	b.ReportMetric(perOp*1e3, "ms/op")
	b.ReportMetric(2*float64(m)*float64(k)*float64(n)/perOp/1e12, "TFLOP/s")
}

// BenchmarkFused times each fused op against the two ops it replaces, at
// GPT-2's shapes: MatMulGELU against MatMul then GELU for the MLP's first
// product ([M, 768]·[768, 3072]), and AddLayerNorm against Add then
// LayerNorm on the residual stream ([M, 768]).
func BenchmarkFused(b *testing.B) {
	for _, prec := range precisions {
		g := newBackend(b, gpu.Options{MatMul: prec})
		r := rand.New(rand.NewPCG(1, 2))
		const d, inner = 768, 3072
		w, bias := g.FromHost(randn(r, d*inner, 0.02), d, inner), g.FromHost(randn(r, inner, 0.02), inner)
		gamma, beta := g.FromHost(randn(r, d, 1), d), g.FromHost(randn(r, d, 0.1), d)
		for _, m := range []int{1, 128, 512, 4096} {
			x, delta := g.FromHost(randn(r, m*d, 1), m, d), g.FromHost(randn(r, m*d, 1), m, d)
			for _, c := range []struct {
				name string
				op   func()
			}{
				{"MatMul+GELU", func() { g.GELU(g.MatMul(x, w, bias, false), engine.GELUTanh) }},
				{"MatMulGELU", func() { g.MatMulGELU(x, w, bias, false, engine.GELUTanh) }},
			} {
				b.Run(fmt.Sprintf("%s/%s/M=%d,K=%d,N=%d", prec, c.name, m, d, inner), func(b *testing.B) {
					benchForward(b, g, func() error { c.op(); return nil })
				})
			}
			if prec != gpu.FP32 {
				continue
			}
			for _, c := range []struct {
				name string
				op   func()
			}{
				{"Add+LayerNorm", func() { g.LayerNorm(g.Add(x, delta), gamma, beta, 1e-5) }},
				{"AddLayerNorm", func() { g.AddLayerNorm(x, delta, gamma, beta, 1e-5) }},
			} {
				b.Run(fmt.Sprintf("%s/M=%d,D=%d", c.name, m, d), func(b *testing.B) {
					benchForward(b, g, func() error { c.op(); return nil })
				})
			}
		}
		require.NoError(b, g.Sync())
	}
}

// BenchmarkOps times every op but MatMul (backendtest.OpBenches: the
// forward pass's, the interventions', the backward pass's) at GPT-2
// small's shapes over 1×128 and 8×512 tokens (1×8 on the emulated
// device), with its device time and its effective bandwidth: the least
// bytes the op must read and write over that time, to hold against the
// card's (torch_gpu_bench.py's CopyD2D row).
func BenchmarkOps(b *testing.B) {
	g := newBackend(b, gpu.Options{})
	shapes := [][2]int{{1, 128}, {8, 512}}
	if gpu.ThinOnEmulator(g) {
		shapes = [][2]int{{1, 8}}
	}
	for _, s := range shapes {
		for _, op := range backendtest.OpBenches(g, s[0], s[1]) {
			b.Run(backendtest.OpBenchName(op, s[0], s[1]), func(b *testing.B) {
				// Queued back to back, unsynced: the device time is the kernels'.
				perOp := benchForward(b, g, func() error { op.Run(); return nil })
				require.NoError(b, g.Sync())
				b.ReportMetric(float64(op.Bytes)/perOp.Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkGPT2SmallForward times a full forward (every position's logits)
// of the GPT-2-small-shaped model ($FX_BENCH_MODEL, the weights PyTorch
// runs; else random weights) at batch 1 × 128 and 8 × 512.
func BenchmarkGPT2SmallForward(b *testing.B) {
	for _, prec := range precisions {
		g := newBackend(b, gpu.Options{MatMul: prec})
		m := transformertest.GPT2Small(b, g)
		for _, bt := range [][2]int{{1, 128}, {8, 512}} {
			b.Run(fmt.Sprintf("%s/B=%d,T=%d", prec, bt[0], bt[1]), func(b *testing.B) {
				in := tokenBatch(b, bt[0], bt[1], m.Config.VocabSize)
				benchForward(b, g, func() error {
					_, err := m.Forward(context.Background(), in, nil)
					return err
				})
				b.ReportMetric(float64(bt[0]*bt[1])/(b.Elapsed().Seconds()/float64(b.N)), "tokens/s")
			})
		}
	}
}

// BenchmarkBERTBaseClassify times BertForSequenceClassification at batch
// 32 × 128 on the BERT-base-shaped weights in $FX_BENCH_BERT.
func BenchmarkBERTBaseClassify(b *testing.B) {
	dir := os.Getenv("FX_BENCH_BERT")
	if dir == "" {
		b.Skip("FX_BENCH_BERT is not set (bench/gpu/run.sh makes the weights)")
	}
	for _, prec := range precisions {
		g := newBackend(b, gpu.Options{MatMul: prec})
		m, err := transformer.Load(dir, g)
		require.NoError(b, err)
		b.Run(fmt.Sprintf("%s/B=32,T=128", prec), func(b *testing.B) {
			in := tokenBatch(b, 32, 128, m.Config.VocabSize)
			benchForward(b, g, func() error {
				_, err := m.Forward(context.Background(), in, nil)
				return err
			})
		})
	}
}

// BenchmarkGPT2SmallDecodeStep times one greedy decode step through the KV
// cache after a 128-token prompt, batch 1, with the launches per step:
//   - eager: each op launched as it comes (Generate with a hook, a no-op
//     at hook_embed), as bench/cpubench does: (Generate of 17 new tokens
//     − Generate of 1) / 16;
//   - graph: a Decoder's steps, the step captured once as a CUDA graph and
//     replayed (what Generate without hooks runs): the mean of 16 steps
//     after the capture, each step's logits copied back, with the
//     capture's own time.
func BenchmarkGPT2SmallDecodeStep(b *testing.B) {
	ctx := context.Background()
	for _, prec := range precisions {
		g := newBackend(b, gpu.Options{MatMul: prec})
		m := transformertest.GPT2Small(b, g)
		prompt := tokenBatch(b, 1, 128, m.Config.VocabSize).IDs
		toks := make([]int, len(prompt))
		for i, id := range prompt {
			toks[i] = int(id)
		}
		b.Run(fmt.Sprintf("%s/eager/cache=128", prec), func(b *testing.B) {
			hooks, err := m.NewHooks(transformer.Hook("hook_embed", func(*engine.Tensor, *transformer.HookCtx) error { return nil }))
			require.NoError(b, err)
			generate := func(n int) time.Duration {
				start := time.Now()
				_, err := m.Generate(ctx, toks, transformer.GenerateOptions{MaxNewTokens: n}, hooks)
				require.NoError(b, err)
				return time.Since(start)
			}
			generate(17) // warm up
			var one, many time.Duration
			l0 := g.Launches()
			for range b.N {
				one += generate(1)
			}
			l1 := g.Launches()
			for range b.N {
				many += generate(17)
			}
			l2 := g.Launches()
			step := (many - one).Seconds() / float64(b.N) / 16
			b.ReportMetric(step*1e3, "ms/step")
			b.ReportMetric(float64((l2-l1)-(l1-l0))/float64(b.N)/16, "launches/step")
		})
		b.Run(fmt.Sprintf("%s/graph/cache=128", prec), func(b *testing.B) {
			const steps = 16
			var stepTime, capture time.Duration
			var launches int64
			for range b.N {
				dec, err := m.NewDecoder(len(toks) + steps + 2)
				require.NoError(b, err)
				_, err = dec.Prefill(ctx, toks)
				require.NoError(b, err)
				_, err = dec.Step(ctx, 1) // uncaptured: makes what lasts
				require.NoError(b, err)
				start := time.Now()
				_, err = dec.Step(ctx, 2) // captured, then replayed
				require.NoError(b, err)
				capture += time.Since(start)
				captured, err := dec.Captured()
				require.NoError(b, err)
				require.True(b, captured, "the step was not captured")
				l0 := g.Launches()
				start = time.Now()
				for i := range steps {
					_, err := dec.Step(ctx, 3+i)
					require.NoError(b, err)
				}
				stepTime += time.Since(start)
				launches += g.Launches() - l0
				require.NoError(b, dec.Close())
			}
			b.ReportMetric(stepTime.Seconds()*1e3/float64(b.N*steps), "ms/step")
			b.ReportMetric(float64(launches)/float64(b.N*steps), "launches/step")
			b.ReportMetric(capture.Seconds()*1e3/float64(b.N), "capture-ms")
		})
	}
}

// tokenBatch returns a batch of bsz rows of t token ids below vocab.
func tokenBatch(tb testing.TB, bsz, t, vocab int) transformer.Batch {
	seqs := make([][]int, bsz)
	for bi := range seqs {
		seqs[bi] = make([]int, t)
		for i := range seqs[bi] {
			seqs[bi][i] = (i*7919 + bi*31) % vocab
		}
	}
	in, err := transformer.NewBatch(seqs, nil)
	require.NoError(tb, err)
	return in
}

// benchForward times fn b.N times after two warm-ups, between two events
// on the stream, and reports the device time per call and returns it.
func benchForward(b *testing.B, g *gpu.Backend, fn func() error) time.Duration {
	for range 2 {
		require.NoError(b, fn())
	}
	b.ResetTimer()
	timer, err := g.StartTimer()
	require.NoError(b, err)
	for range b.N {
		require.NoError(b, fn())
	}
	dev, err := timer.Stop()
	require.NoError(b, err)
	perOp := dev / time.Duration(b.N)
	b.ReportMetric(perOp.Seconds()*1e3, "ms/op")
	return perOp
}
