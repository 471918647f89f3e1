package tokenizer

import "unicode/utf8"

// decodeUTF8Replace converts b to a string, replacing each maximal subpart
// of an ill-formed UTF-8 sequence with U+FFFD. This is the substitution that
// the Unicode Standard recommends (chapter 3, "U+FFFD Substitution of
// Maximal Subparts") and that Python's bytes.decode("utf-8",
// errors="replace") and the WHATWG TextDecoder perform; Go's own
// conversions differ, replacing every invalid byte separately.
func decodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart returns the length of the longest prefix of b that starts
// a well-formed UTF-8 sequence, at least 1. b must not start with a complete
// well-formed sequence.
func maximalSubpart(b []byte) int {
	var need int         // continuation bytes the lead byte needs
	lo, hi := 0x80, 0xBF // range of the first continuation byte
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case 0xE1 <= c && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := int(b[n])
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			break
		}
		n++
	}
	return n
}
