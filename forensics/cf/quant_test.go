package cf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuantizeInt8(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct {
		name  string
		row   []float32
		scale float32
		codes []int8
	}{
		// max|x| = 2: x·63.5 → 63.5 rounds away from zero to 64.
		{"hand computed", []float32{1, -2, 0.5, 0}, 2.0 / 127, []int8{64, -127, 32, 0}},
		{"zeros", []float32{0, 0, 0}, 0, []int8{0, 0, 0}},
		{"empty", nil, 0, []int8{}},
		// Non-finite values do not set the scale: NaN is -128, ±Inf ±127.
		{"non-finite", []float32{nan, inf, -inf, 1, -0.25}, 1.0 / 127, []int8{-128, 127, -127, 127, -32}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, scale := QuantizeInt8(nil, tc.row)
			assert.InDelta(t, tc.scale, scale, 1e-9)
			got := make([]int8, len(out))
			for i, b := range out {
				got[i] = int8(b)
			}
			assert.Equal(t, tc.codes, got)
		})
	}
	for _, c := range readGolden(t).Int8 {
		t.Run("numpy "+c.Name, func(t *testing.T) {
			out, scale := QuantizeInt8([]byte{0xff}, c.Row)
			require.Len(t, out, len(c.Row)+1, "appends to dst")
			assert.Equal(t, byte(0xff), out[0])
			assert.Equal(t, c.Scale, scale)
			for i, b := range out[1:] {
				assert.Equal(t, c.Codes[i], int8(b), "value %d = %g", i, c.Row[i])
			}
		})
	}
}

func TestQuantizeFP16(t *testing.T) {
	// IEEE 754 half: 1 = 0x3c00, -2 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff,
	// 1e6 overflows to +Inf 0x7c00; little-endian.
	got := QuantizeFP16(nil, []float32{1, -2, 0.5, 65504, 1e6})
	assert.Equal(t, []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0x00, 0x7c}, got)
	_, err := Quantize(nil, []float32{1}, "int4")
	assert.ErrorContains(t, err, `quantize "int4": want int8 or fp16`)
}

func TestCompressorRatio(t *testing.T) {
	c, err := NewCompressor(Int8, 3, 1)
	require.NoError(t, err)
	defer c.Close()
	// 1024 zero bytes are one zstd frame (RFC 8878): magic 4 bytes, frame
	// header descriptor 1, single-segment content size 2 (256 ≤ n < 65792),
	// then one RLE block: header 3 + the byte 1 = 11 bytes.
	assert.InDelta(t, 11.0/1024, c.Ratio(make([]float32, 1024), nil), 1e-12)
	// Uniform int8 codes do not compress: a raw block, ratio just above 1.
	rng := rand.New(rand.NewPCG(1, 2))
	row := make([]float32, 1024)
	for i := range row {
		row[i] = float32(rng.IntN(255) - 127)
	}
	r := c.Ratio(row, &Scratch{})
	assert.Greater(t, r, 1.0)
	assert.Less(t, r, 1.02)
	// One large outlier leaves every other value near code 0: far more
	// compressible than the Gaussian row it was added to.
	gauss := make([]float32, 768)
	for i := range gauss {
		gauss[i] = float32(rng.NormFloat64())
	}
	plain := c.Ratio(gauss, nil)
	gauss[17] = 60
	assert.Less(t, c.Ratio(gauss, nil), 0.7*plain)
	assert.True(t, math.IsNaN(c.Ratio(nil, nil)))

	f16, err := NewCompressor(FP16, 1, 1)
	require.NoError(t, err)
	defer f16.Close()
	// 512 zero halves: 1024 zero bytes, the same 11-byte frame.
	assert.InDelta(t, 11.0/1024, f16.Ratio(make([]float32, 512), nil), 1e-12)

	for _, tc := range []struct {
		quant string
		level int
		err   string
	}{{"int4", 3, `quantize "int4"`}, {Int8, 0, "zstd level 0 is outside [1, 22]"}, {Int8, 23, "zstd level 23"}} {
		_, err := NewCompressor(tc.quant, tc.level, 1)
		assert.ErrorContains(t, err, tc.err)
	}
}
