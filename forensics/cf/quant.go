package cf

import (
	"fmt"
	"math"

	"github.com/modelforensics/fx/weights"
)

// Quantisations of a row before compression.
const (
	// Int8 maps each value x of a row to round(x/s) in [-127, 127] with the
	// row's own scale s = max|x|/127 (the largest finite magnitude), one
	// byte per value.
	Int8 = "int8"
	// FP16 stores each value as IEEE 754 half precision, little-endian, two
	// bytes per value.
	FP16 = "fp16"
)

// Int8 codes of non-finite values, outside the range finite values map to
// ([-127, 127]): NaN is -128; +Inf and -Inf saturate to 127 and -127.
const int8NaN = -128

// QuantizeInt8 appends the int8 quantisation of row to dst and returns it
// with the row's scale: s = max|x|/127 over the finite values, each value
// coded as round(x/s) (half away from zero), clamped to [-127, 127]. A row
// of zeros (or of no finite values) has scale 0 and codes 0. NaN is coded
// -128, ±Inf ±127.
func QuantizeInt8(dst []byte, row []float32) ([]byte, float32) {
	var amax float32
	for _, x := range row {
		if a := float32(math.Abs(float64(x))); a > amax && !math.IsInf(float64(a), 0) {
			amax = a
		}
	}
	scale := amax / 127
	inv := float32(0)
	if scale > 0 {
		inv = 127 / amax
	}
	for _, x := range row {
		var q int32
		switch {
		case x != x: // NaN
			q = int8NaN
		case math.IsInf(float64(x), 1):
			q = 127
		case math.IsInf(float64(x), -1):
			q = -127
		default:
			v := float64(x * inv)
			q = int32(math.Round(v))
			q = min(max(q, -127), 127)
		}
		dst = append(dst, byte(int8(q)))
	}
	return dst, scale
}

// QuantizeFP16 appends the float16 bits of row to dst, little-endian.
func QuantizeFP16(dst []byte, row []float32) []byte {
	for _, x := range row {
		h := weights.Float32ToF16(x)
		dst = append(dst, byte(h), byte(h>>8))
	}
	return dst
}

// Quantize appends row quantised as kind (Int8 or FP16) to dst.
func Quantize(dst []byte, row []float32, kind string) ([]byte, error) {
	switch kind {
	case Int8:
		out, _ := QuantizeInt8(dst, row)
		return out, nil
	case FP16:
		return QuantizeFP16(dst, row), nil
	}
	return dst, fmt.Errorf("cf: quantize %q: want %s or %s", kind, Int8, FP16)
}
