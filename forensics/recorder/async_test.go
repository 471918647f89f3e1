package recorder

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

// sketchRowsBlocks is kernels/record.cu's fx_record_rows restated in Go, in
// the kernel's order of work (each block of 256 values on its own, from
// ±Inf; the blocks folded in order; the hash from four lanes), so that a
// test on the CPU shows that the kernel's arithmetic is the host path's.
func sketchRowsBlocks(x []float32, rows int, f16 bool) *engine.RowSketch {
	n := len(x) / rows
	s := &engine.RowSketch{Sum: make([]float64, rows), SumSq: make([]float64, rows), Min: make([]float32, rows),
		Max: make([]float32, rows), Hash: make([]uint64, rows)}
	for r := range rows {
		row := x[r*n : (r+1)*n]
		mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
		for b := 0; b < n; b += 256 {
			blk := row[b:min(b+256, n)]
			var s0, s1, s2, s3, q0, q1, q2, q3 float32
			mn0, mn1, mx0, mx1 := float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Inf(-1))
			i := 0
			for ; i+4 <= len(blk); i += 4 {
				x0, x1, x2, x3 := blk[i], blk[i+1], blk[i+2], blk[i+3]
				s0, s1, s2, s3 = s0+x0, s1+x1, s2+x2, s3+x3
				q0, q1, q2, q3 = q0+float32(x0*x0), q1+float32(x1*x1), q2+float32(x2*x2), q3+float32(x3*x3)
				mn0, mn1 = min32(mn0, min32(x0, x1)), min32(mn1, min32(x2, x3))
				mx0, mx1 = max32(mx0, max32(x0, x1)), max32(mx1, max32(x2, x3))
			}
			for ; i < len(blk); i++ {
				v := blk[i]
				s0, q0 = s0+v, q0+float32(v*v)
				mn0, mx0 = min32(mn0, v), max32(mx0, v)
			}
			s.Sum[r] += float64((s0 + s1) + (s2 + s3))
			s.SumSq[r] += float64((q0 + q1) + (q2 + q3))
			mn, mx = min32(mn, min32(mn0, mn1)), max32(mx, max32(mx0, mx1))
		}
		s.Min[r], s.Max[r] = mn, mx
		var h xxh64
		h.reset()
		for st := 0; st+8 <= n; st += 8 {
			lane := func(j int) uint64 {
				return uint64(math.Float32bits(row[st+j])) | uint64(math.Float32bits(row[st+j+1]))<<32
			}
			h.stripe(lane(0), lane(2), lane(4), lane(6))
		}
		h.total = uint64(n / 8 * 32)
		for _, v := range row[n/8*8:] { // the tail, through the streaming code
			h.WriteFloat32s([]float32{v})
		}
		s.Hash[r] = h.Sum64()
	}
	if f16 {
		for _, v := range x {
			s.F16 = append(s.F16, weights.Float32ToF16(v))
		}
	}
	return s
}

// asyncCPU is a host backend that offers the device path's capabilities,
// with sketchRowsBlocks for the kernels and copies that are done at once.
type asyncCPU struct{ engine.Backend }

type ready[T any] struct{ v T }

func (r ready[T]) Wait() (T, error) { return r.v, nil }

func (a asyncCPU) ToHostAsync(t *engine.Tensor) engine.Pending[[]float32] {
	return ready[[]float32]{append([]float32(nil), a.ToHost(t)...)}
}

func (a asyncCPU) SketchRows(x *engine.Tensor, rows int, f16 bool) engine.Pending[*engine.RowSketch] {
	return ready[*engine.RowSketch]{sketchRowsBlocks(a.ToHost(x), rows, f16)}
}

// hostOnly hides a backend's optional capabilities: the recorder takes the
// host path.
type hostOnly struct{ engine.Backend }

// specialRows returns rows×n values of several scales with, row by row,
// none, scattered or only special values: NaNs first or second in a pair,
// ±0 in both orders, ±Inf, subnormals, float16 ties and edges.
func specialRows(rng *rand.Rand, rows, n int) []float32 {
	specials := []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x80000000, 0x00000000, 0x7f800000, 0xff800000,
		0x00000001, 0x80000001, 0x007fffff, 0x3f801000, 0x3f803000, 0x477ff000, 0x33000000, 0x387fc000, 0x7f7fffff}
	x := make([]float32, rows*n)
	for r := range rows {
		row := x[r*n : (r+1)*n]
		for i := range row {
			row[i] = float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(41)-20))
		}
		switch r % 4 {
		case 1:
			for i := 0; i <= n/16; i++ {
				row[rng.IntN(n)] = math.Float32frombits(specials[i%len(specials)])
			}
		case 2:
			for i := range row {
				row[i] = float32(math.NaN())
			}
		case 3:
			for i := range row {
				row[i] = float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
			}
		}
	}
	return x
}

// TestRowSketchMatchesHost checks engine.RowSketcher's statistics, hash and
// float16 bits against the host path's (addStats, xxh64,
// weights.Float32ToF16) bit for bit (a NaN sum matches any NaN): the GPU
// kernels where $FX_TEST_DEVICE names a GPU, else their Go restatement.
func TestRowSketchMatchesHost(t *testing.T) {
	b := devicetest.Backend(t)
	rs, ok := b.(engine.RowSketcher)
	if !ok {
		rs = asyncCPU{b}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 3, 7, 8, 9, 13, 255, 256, 257, 768, 1027, 3072, 256*256 + 300} {
		rows := 6
		if n > 4096 {
			rows = 2
		}
		x := specialRows(rng, rows, n)
		got, err := rs.SketchRows(b.FromHost(x, 1, rows, n), rows, true).Wait()
		require.NoError(t, err, "n=%d", n)
		for r := range rows {
			row := x[r*n : (r+1)*n]
			var acc sketchAcc
			acc.reset(0)
			acc.addStats(row)
			sameFloat := func(what string, g, w float64) {
				if g != g && w != w {
					return
				}
				assert.Equal(t, math.Float64bits(w), math.Float64bits(g), "n=%d row %d: %s", n, r, what)
			}
			sameFloat("sum", got.Sum[r], acc.sum)
			sameFloat("sum of squares", got.SumSq[r], acc.sumsq)
			assert.Equal(t, math.Float32bits(acc.min), math.Float32bits(got.Min[r]), "n=%d row %d: min", n, r)
			assert.Equal(t, math.Float32bits(acc.max), math.Float32bits(got.Max[r]), "n=%d row %d: max", n, r)
			assert.Equal(t, acc.h.Sum64(), got.Hash[r], "n=%d row %d: hash", n, r)
		}
		bad := 0
		for i, v := range x {
			if got.F16[i] != weights.Float32ToF16(v) {
				bad++
			}
		}
		assert.Zero(t, bad, "n=%d: float16 bits that differ", n)
	}
}

// TestDevicePathMatchesHostPath records the same runs through the device
// path (async.go) and the host path and checks that the recordings are the
// same, sketch for sketch and byte for byte: on a GPU ($FX_TEST_DEVICE)
// with the kernels and pinned copies against the host path on the same
// GPU, else on the CPU with asyncCPU.
func TestDevicePathMatchesHostPath(t *testing.T) {
	b := devicetest.Backend(t)
	device, host := engine.Backend(asyncCPU{b}), b
	if _, ok := b.(deviceBackend); ok {
		device, host = b, hostOnly{b}
	}
	dir := filepath.Join("..", "..", "testdata", "models")
	ids := []int{11, 12, 13, 14, 15, 16, 17}
	gen := bundle.Input{InputIDs: ids[:4], Generate: &bundle.Generate{MaxNewTokens: 4, Sampler: bundle.Sampler{Temperature: 1, Seed: 5}}}
	cases := []struct {
		model, level, dtype string
		in                  bundle.Input
	}{
		{"gpt2-tiny", bundle.LevelFull, bundle.Float16, bundle.Input{InputIDs: ids}},
		{"gpt2-tiny", bundle.LevelFull, bundle.Float32, gen},
		{"gpt2-tiny", bundle.LevelLayer, bundle.Float16, gen},
		{"gpt2-tiny", bundle.LevelMinimal, bundle.Float16, bundle.Input{InputIDs: ids}},
		{"bert-tiny-cls", bundle.LevelFull, bundle.Float16, bundle.Input{InputIDs: []int{2, 7, 8, 9, 3}}},
	}
	for _, tc := range cases {
		t.Run(tc.model+"/"+tc.level+"/"+tc.dtype, func(t *testing.T) {
			run := func(be engine.Backend) *Recording {
				m, err := transformer.Load(filepath.Join(dir, tc.model), be)
				require.NoError(t, err)
				defer m.Close()
				opts := DefaultOptions()
				opts.Level, opts.DType, opts.Exclude = tc.level, tc.dtype, nil
				r, err := New(m, opts)
				require.NoError(t, err)
				_, err = r.Run(context.Background(), tc.in)
				require.NoError(t, err)
				rec, err := r.Finish()
				require.NoError(t, err)
				return rec
			}
			want, got := run(host), run(device)
			assert.Equal(t, want.Input, got.Input)
			assert.Equal(t, want.Record, got.Record)
			assert.Equal(t, want.StateDiffs, got.StateDiffs)
			require.Len(t, got.Hooks, len(want.Hooks))
			for i := range want.Hooks {
				assert.Equal(t, want.Hooks[i], got.Hooks[i], "hook %s", want.Hooks[i].Hook)
			}
		})
	}
}
