package weights

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDTypeSize(t *testing.T) {
	tests := []struct {
		d     DType
		size  int
		bits  int
		known bool
	}{
		{F64, 8, 64, true}, {F32, 4, 32, true}, {F16, 2, 16, true}, {BF16, 2, 16, true},
		{I64, 8, 64, true}, {I32, 4, 32, true}, {I16, 2, 16, true}, {I8, 1, 8, true},
		{U64, 8, 64, true}, {U32, 4, 32, true}, {U16, 2, 16, true}, {U8, 1, 8, true},
		{Bool, 1, 8, true}, {C64, 8, 64, true},
		{F8E4M3, 1, 8, true}, {F8E5M2, 1, 8, true}, {F8E8M0, 1, 8, true},
		{F6E2M3, 0, 6, true}, {F6E3M2, 0, 6, true}, {F4, 0, 4, true},
		{"F128", 0, 0, false}, {"", 0, 0, false}, {"f32", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.d), func(t *testing.T) {
			assert.Equal(t, tt.size, tt.d.Size())
			assert.Equal(t, tt.bits, tt.d.Bits())
			assert.Equal(t, tt.known, tt.d.Known())
		})
	}
}

func TestF16ToFloat32(t *testing.T) {
	tests := []struct {
		bits uint16
		want float64
	}{
		{0x3C00, 1},
		{0xBC00, -1},
		{0x7BFF, 65504},
		{0x0001, math.Ldexp(1, -24)},
		{0x03FF, math.Ldexp(1023, -24)},
		{0x0400, math.Ldexp(1, -14)},
		{0x3555, 0.333251953125},
		{0x4000, 2},
		{0x0000, 0},
		{0x7C00, math.Inf(1)},
		{0xFC00, math.Inf(-1)},
	}
	for _, tt := range tests {
		assert.Equal(t, float32(tt.want), F16ToFloat32(tt.bits), "0x%04X", tt.bits)
	}
	assert.Equal(t, uint32(0x80000000), math.Float32bits(F16ToFloat32(0x8000)), "-0")
	assert.Equal(t, uint32(0x7FC00000), math.Float32bits(F16ToFloat32(0x7E00)), "quiet NaN")
	assert.Equal(t, uint32(0x7F802000), math.Float32bits(F16ToFloat32(0x7C01)), "NaN payload kept")
}

func TestBF16ToFloat32(t *testing.T) {
	assert.Equal(t, float32(1), BF16ToFloat32(0x3F80))
	assert.Equal(t, float32(-2), BF16ToFloat32(0xC000))
	assert.Equal(t, float32(math.Ldexp(1, -133)), BF16ToFloat32(0x0001))
	assert.Equal(t, float32(math.Inf(1)), BF16ToFloat32(0x7F80))
	assert.True(t, math.IsNaN(float64(BF16ToFloat32(0x7FC0))))
}

func TestFloat32ToF16Rounding(t *testing.T) {
	tests := []struct {
		in   float64
		want uint16
	}{
		{1, 0x3C00},
		{65504, 0x7BFF},
		{65519.99, 0x7BFF},                 // below the halfway point to 65536
		{65520, 0x7C00},                    // halfway to 65536 rounds to even: infinity
		{1e9, 0x7C00},                      // overflow
		{-1e9, 0xFC00},                     // overflow, negative
		{1 + math.Ldexp(1, -11), 0x3C00},   // tie, rounds to even (down)
		{1 + 3*math.Ldexp(1, -11), 0x3C02}, // tie, rounds to even (up)
		{1 + math.Ldexp(1, -11) + math.Ldexp(1, -20), 0x3C01}, // above the tie
		{math.Ldexp(1, -24), 0x0001},                          // smallest subnormal
		{math.Ldexp(1, -25), 0x0000},                          // tie with zero, rounds to even
		{math.Ldexp(3, -25), 0x0002},                          // tie between 1 and 2 units, to even
		{math.Ldexp(1.0000001, -25), 0x0001},                  // just above the tie
		{math.Ldexp(1, -26), 0x0000},                          // underflow
		{math.Ldexp(1, -14) - math.Ldexp(1, -25), 0x0400},     // rounds up into the normals
		{math.Ldexp(1023, -24), 0x03FF},                       // largest subnormal
		{1e-45, 0x0000},                                       // float32 subnormal
		{math.Inf(1), 0x7C00},
		{math.Inf(-1), 0xFC00},
		{math.Copysign(0, -1), 0x8000},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Float32ToF16(float32(tt.in)), "%g", tt.in)
	}
	n := Float32ToF16(float32(math.NaN()))
	assert.Equal(t, uint16(0x7C00), n&0x7C00)
	assert.NotZero(t, n&0x03FF, "NaN stays NaN")
	assert.Equal(t, uint16(0x7E00), Float32ToF16(math.Float32frombits(0x7F800001))&0x7E00, "signalling NaN is quieted")
}

func TestFloat32ToBF16Rounding(t *testing.T) {
	tests := []struct {
		in   uint32 // float32 bits
		want uint16
	}{
		{0x3F800000, 0x3F80}, // 1
		{0x3F808000, 0x3F80}, // tie, to even (down)
		{0x3F818000, 0x3F82}, // tie, to even (up)
		{0x3F808001, 0x3F81}, // above the tie
		{0x3F807FFF, 0x3F80}, // below the tie
		{0x7F7FFFFF, 0x7F80}, // max float32 rounds to infinity
		{0x7F7F7FFF, 0x7F7F}, // stays finite
		{0x7F800000, 0x7F80}, // infinity
		{0xFF800000, 0xFF80}, // -infinity
		{0x80000000, 0x8000}, // -0
		{0x00008000, 0x0000}, // tiny subnormal tie, to even
		{0x00018000, 0x0002}, // subnormal tie, to even (up)
		{0x7FC00000, 0x7FC0}, // quiet NaN
		{0x7F800001, 0x7FC0}, // signalling NaN with low payload: quieted, still NaN
		{0xFF810000, 0xFFC1}, // signalling NaN: quieted, payload kept
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Float32ToBF16(math.Float32frombits(tt.in)), "0x%08X", tt.in)
	}
}

// TestHalfRoundTripExhaustive converts every 16-bit pattern to float32 and
// back: a non-NaN must come back unchanged, a NaN as a NaN of the same sign.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for b := range 1 << 16 {
		h := uint16(b)
		f := F16ToFloat32(h)
		isNaN := h&0x7C00 == 0x7C00 && h&0x3FF != 0
		assert.Equal(t, isNaN, math.IsNaN(float64(f)), "F16 0x%04X", h)
		back := Float32ToF16(f)
		if isNaN {
			if back&0x7C00 != 0x7C00 || back&0x3FF == 0 || back&0x8000 != h&0x8000 {
				t.Fatalf("F16 NaN 0x%04X came back as 0x%04X", h, back)
			}
		} else if back != h {
			t.Fatalf("F16 0x%04X -> %g -> 0x%04X", h, f, back)
		}

		g := BF16ToFloat32(h)
		bback := Float32ToBF16(g)
		if math.IsNaN(float64(g)) {
			if bback&0x7F80 != 0x7F80 || bback&0x7F == 0 || bback&0x8000 != h&0x8000 {
				t.Fatalf("BF16 NaN 0x%04X came back as 0x%04X", h, bback)
			}
		} else if bback != h {
			t.Fatalf("BF16 0x%04X -> %g -> 0x%04X", h, g, bback)
		}
	}
}

// TestFloat32ToF16Nearest checks, over a sweep of float32 values, that
// rounding is the nearest half value: no half value lies strictly closer.
func TestFloat32ToF16Nearest(t *testing.T) {
	for b := uint32(0x33000000); b < 0x47800000+0x100000; b += 0x1235 {
		f := math.Float32frombits(b)
		h := Float32ToF16(f)
		got := float64(F16ToFloat32(h))
		if math.IsInf(got, 1) {
			assert.GreaterOrEqual(t, float64(f), 65520.0, "%g rounded to infinity", f)
			continue
		}
		err := math.Abs(got - float64(f))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7C00 == 0x7C00 || nb&0x8000 != 0 {
				continue
			}
			other := math.Abs(float64(F16ToFloat32(nb)) - float64(f))
			if other < err || (other == err && nb&1 == 0) {
				t.Fatalf("%g (0x%08X) rounded to 0x%04X but 0x%04X is nearer or the even tie", f, b, h, nb)
			}
		}
	}
}
