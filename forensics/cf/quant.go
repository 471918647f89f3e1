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

// Int8 codes of non-finite values, as bytes: NaN is -128 (outside the
// range [-127, 127] finite values map to); -Inf saturates to -127 (+Inf
// to 127).
const (
	nanCode    byte = 0x80 // int8(-128)
	negInfCode byte = 0x81 // int8(-127)
)

// QuantizeInt8 appends the int8 quantisation of row to dst and returns it
// with the row's scale: s = max|x|/127 over the finite values, each value
// coded as round(x/s) (half away from zero), clamped to [-127, 127]. A row
// of zeros (or of no finite values) has scale 0 and codes 0. NaN is coded
// -128, ±Inf ±127.
func QuantizeInt8(dst []byte, row []float32) ([]byte, float32) {
	var amax float32
	finite := true
	for _, x := range row {
		a := math.Abs(float64(x))
		if a > math.MaxFloat32 || a != a { // ±Inf or NaN
			finite = false
			continue
		}
		amax = max(amax, float32(a))
	}
	scale := amax / 127
	inv := float32(0)
	if scale > 0 {
		inv = 127 / amax
	}
	for _, x := range row {
		if !finite {
			switch {
			case x != x: // NaN
				dst = append(dst, nanCode)
				continue
			case math.IsInf(float64(x), 1):
				dst = append(dst, 127)
				continue
			case math.IsInf(float64(x), -1):
				dst = append(dst, negInfCode)
				continue
			}
		}
		// Round half away from zero: x·inv is a float32, exact in float64,
		// and so is adding ½; truncation then rounds.
		v := float64(x * inv)
		var q int32
		if v >= 0 {
			q = int32(v + 0.5)
		} else {
			q = int32(v - 0.5)
		}
		dst = append(dst, byte(int8(min(max(q, -127), 127))))
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
