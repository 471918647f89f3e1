package weights

import (
	"math"
	"math/bits"

	"github.com/modelforensics/fx/weights/internal/half"
)

// DType is a safetensors element type, spelled as in the header ("F32").
type DType string

// The element types of the safetensors format. Every one of them is accepted
// by the reader, which needs only their sizes; Float32 converts only F32, F16
// and BF16, and Write encodes only those three.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
	C64    DType = "C64"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	F8E8M0 DType = "F8_E8M0"
	F6E2M3 DType = "F6_E2M3"
	F6E3M2 DType = "F6_E3M2"
	F4     DType = "F4"
)

// Bits returns the number of bits one element of d occupies, or 0 if d is
// not a safetensors dtype.
func (d DType) Bits() int {
	switch d {
	case F4:
		return 4
	case F6E2M3, F6E3M2:
		return 6
	case Bool, U8, I8, F8E5M2, F8E4M3, F8E8M0:
		return 8
	case I16, U16, F16, BF16:
		return 16
	case I32, U32, F32:
		return 32
	case I64, U64, F64, C64:
		return 64
	}
	return 0
}

// Size returns the number of bytes one element of d occupies. It returns 0
// for the sub-byte types (F4, F6_E2M3, F6_E3M2), whose sizes are given by
// Bits, and for names that are not safetensors dtypes.
func (d DType) Size() int {
	b := d.Bits()
	if b%8 != 0 {
		return 0
	}
	return b / 8
}

// Known reports whether d is a safetensors dtype.
func (d DType) Known() bool { return d.Bits() != 0 }

// convertible reports whether Float32 and Write support d.
func (d DType) convertible() bool { return d == F32 || d == F16 || d == BF16 }

// byteSize returns the number of bytes that a tensor of the given element
// count and dtype occupies. ok is false when the size overflows int64 or is
// not a whole number of bytes.
func byteSize(d DType, elems uint64) (n int64, ok bool) {
	hi, lo := bits.Mul64(elems, uint64(d.Bits()))
	if hi != 0 || lo%8 != 0 || lo/8 > math.MaxInt64 {
		return 0, false
	}
	return int64(lo / 8), true
}

// numElements returns the product of shape, with ok false on overflow or a
// negative dimension.
func numElements(shape []int) (n uint64, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d == 0 {
			n = 0
		}
	}
	if n == 0 {
		return 0, true
	}
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// F16ToFloat32 converts IEEE 754 half-precision bits to the float32 of the
// same value. The conversion is exact: subnormals, infinities and signed
// zeros are kept, and a NaN keeps its sign and payload.
func F16ToFloat32(h uint16) float32 { return half.F16ToFloat32(h) }

// Float32ToF16 converts f to IEEE 754 half-precision bits, rounding to
// nearest with ties to even. Values too large for half precision become
// infinities, values too small become (signed) zeros or subnormals. A NaN
// stays a NaN of the same sign, quieted, keeping the top bits of its payload.
func Float32ToF16(f float32) uint16 { return half.Float32ToF16(f) }

// BF16ToFloat32 converts bfloat16 bits to the float32 of the same value.
func BF16ToFloat32(h uint16) float32 { return half.BF16ToFloat32(h) }

// Float32ToBF16 converts f to bfloat16 bits, rounding to nearest with ties
// to even. A NaN stays a NaN of the same sign, quieted.
func Float32ToBF16(f float32) uint16 { return half.Float32ToBF16(f) }
