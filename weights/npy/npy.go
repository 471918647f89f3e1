// Package npy reads and writes NumPy's .npy array files and .npz archives of
// them, as written by numpy.save and numpy.savez.
//
// Only little-endian, C-ordered (fortran_order False) arrays of the common
// numeric types are supported: float16, float32, float64, signed and
// unsigned integers of 1 to 8 bytes, and bool. Readers bound every size
// they are given by the input, and return errors, never panic, on malformed
// files.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"

	"github.com/modelforensics/fx/weights/internal/half"
)

// MaxHeaderSize is the largest .npy header accepted, in bytes.
const MaxHeaderSize = 1 << 20

// DefaultMaxBytes is the array data size, in bytes, that Read accepts for
// one array and ReadNPZ and ReadNPZBytes accept for a whole archive. Use
// ReadLimit and ReadNPZLimit for another bound.
const DefaultMaxBytes int64 = 4 << 30

// magic starts every .npy file.
const magic = "\x93NUMPY"

// Sentinel errors, wrapped by the errors of this package where a caller may
// want to branch on the cause.
var (
	// ErrFormat marks input that is not a well-formed .npy or .npz file.
	ErrFormat = errors.New("malformed")
	// ErrUnsupported marks a well-formed array this package cannot handle:
	// a big-endian or structured dtype, Fortran order, or a conversion
	// between incompatible types.
	ErrUnsupported = errors.New("unsupported")
	// ErrTooLarge marks data larger than the caller's limit.
	ErrTooLarge = errors.New("too large")
)

// Array is an n-dimensional array read from a .npy file.
type Array struct {
	Shape []int  // dimensions; empty for a 0-d array
	DType string // NumPy descr, e.g. "<f4", "<i8", "|u1", "|b1"
	Data  []byte // the elements in C order, little-endian
}

// NumElements returns the number of elements: the product of Shape (1 for a
// 0-d array), or -1 if a dimension is negative or the product overflows.
func (a Array) NumElements() int {
	n, ok := numElements(a.Shape)
	if !ok {
		return -1
	}
	return int(n)
}

// Float32 converts the array's elements to float32. float64 and integers
// too large for float32 are rounded to nearest; a bool is 0 or 1.
func (a Array) Float32() ([]float32, error) {
	k, n, err := a.check()
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	out := make([]float32, n)
	d := a.Data
	le := binary.LittleEndian
	for i := range out {
		var v float32
		switch k {
		case "f2":
			v = half.F16ToFloat32(le.Uint16(d[2*i:]))
		case "f4":
			v = math.Float32frombits(le.Uint32(d[4*i:]))
		case "f8":
			v = float32(math.Float64frombits(le.Uint64(d[8*i:])))
		case "i1":
			v = float32(int8(d[i]))
		case "i2":
			v = float32(int16(le.Uint16(d[2*i:])))
		case "i4":
			v = float32(int32(le.Uint32(d[4*i:])))
		case "i8":
			v = float32(int64(le.Uint64(d[8*i:])))
		case "u1":
			v = float32(d[i])
		case "u2":
			v = float32(le.Uint16(d[2*i:]))
		case "u4":
			v = float32(le.Uint32(d[4*i:]))
		case "u8":
			v = float32(le.Uint64(d[8*i:]))
		case "b1":
			if d[i] != 0 {
				v = 1
			}
		}
		out[i] = v
	}
	return out, nil
}

// Int64 converts the elements of an integer or bool array to int64. A uint64
// element above math.MaxInt64 is an error; floating-point arrays give an
// error wrapping ErrUnsupported.
func (a Array) Int64() ([]int64, error) {
	k, n, err := a.check()
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if k[0] == 'f' {
		return nil, fmt.Errorf("npy: %w: Int64 of a %s array", ErrUnsupported, a.DType)
	}
	out := make([]int64, n)
	d := a.Data
	le := binary.LittleEndian
	for i := range out {
		var v int64
		switch k {
		case "i1":
			v = int64(int8(d[i]))
		case "i2":
			v = int64(int16(le.Uint16(d[2*i:])))
		case "i4":
			v = int64(int32(le.Uint32(d[4*i:])))
		case "i8":
			v = int64(le.Uint64(d[8*i:]))
		case "u1":
			v = int64(d[i])
		case "u2":
			v = int64(le.Uint16(d[2*i:]))
		case "u4":
			v = int64(le.Uint32(d[4*i:]))
		case "u8":
			u := le.Uint64(d[8*i:])
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("npy: %w: element %d, %d, overflows int64", ErrUnsupported, i, u)
			}
			v = int64(u)
		case "b1":
			if d[i] != 0 {
				v = 1
			}
		}
		out[i] = v
	}
	return out, nil
}

// check returns the array's kind ("f4") and element count after checking
// that its dtype is supported and Data has the size its shape implies.
func (a Array) check() (kind string, n int, err error) {
	kind, size, err := parseDescr(a.DType)
	if err != nil {
		return "", 0, err
	}
	elems, ok := numElements(a.Shape)
	if !ok {
		return "", 0, fmt.Errorf("%w: invalid shape %v", ErrFormat, a.Shape)
	}
	hi, lo := bits.Mul64(elems, uint64(size))
	if hi != 0 || lo != uint64(len(a.Data)) {
		return "", 0, fmt.Errorf("%w: shape %v of %s needs %d elements of %d bytes, Data has %d bytes",
			ErrFormat, a.Shape, a.DType, elems, size, len(a.Data))
	}
	return kind, int(elems), nil
}

// parseDescr returns the kind ("f4", "i8", "b1", ...) and item size of a
// little-endian or byte-order-free numpy descr.
func parseDescr(descr string) (kind string, size int, err error) {
	if len(descr) != 3 {
		return "", 0, fmt.Errorf("%w: dtype %q", ErrUnsupported, descr)
	}
	order, kind := descr[0], descr[1:]
	switch kind {
	case "f2", "f4", "f8", "i2", "i4", "i8", "u2", "u4", "u8":
		if order != '<' {
			return "", 0, fmt.Errorf("%w: dtype %q (only little-endian is supported)", ErrUnsupported, descr)
		}
	case "i1", "u1", "b1":
		if order != '|' && order != '<' && order != '>' && order != '=' {
			return "", 0, fmt.Errorf("%w: dtype %q", ErrUnsupported, descr)
		}
	default:
		return "", 0, fmt.Errorf("%w: dtype %q", ErrUnsupported, descr)
	}
	return kind, int(kind[1] - '0'), nil
}

// numElements returns the product of shape, with ok false for a negative
// dimension or an overflow of int64.
func numElements(shape []int) (uint64, bool) {
	n := uint64(1)
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

// Read reads one .npy array from r, accepting up to DefaultMaxBytes of data.
// It consumes exactly the header and the data.
func Read(r io.Reader) (Array, error) { return ReadLimit(r, DefaultMaxBytes) }

// ReadLimit reads one .npy array from r, failing with an error wrapping
// ErrTooLarge if its data would exceed maxBytes. It consumes exactly the
// header and the data. Format versions 1.0, 2.0 and 3.0 are accepted.
func ReadLimit(r io.Reader, maxBytes int64) (Array, error) {
	a, err := readLimit(r, maxBytes)
	if err != nil {
		return Array{}, fmt.Errorf("npy: %w", err)
	}
	return a, nil
}

// readLimit is ReadLimit without the package prefix on errors.
func readLimit(r io.Reader, maxBytes int64) (Array, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		return Array{}, fmt.Errorf("%w: reading magic: %w", ErrFormat, noEOF(err))
	}
	if string(pre[:6]) != magic {
		return Array{}, fmt.Errorf("%w: not a .npy file (bad magic %q)", ErrFormat, pre[:6])
	}
	var hlen uint64
	switch major, minor := pre[6], pre[7]; {
	case major == 1 && minor == 0:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return Array{}, fmt.Errorf("%w: reading header length: %w", ErrFormat, noEOF(err))
		}
		hlen = uint64(binary.LittleEndian.Uint16(pre[8:10]))
	case (major == 2 || major == 3) && minor == 0:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Array{}, fmt.Errorf("%w: reading header length: %w", ErrFormat, noEOF(err))
		}
		hlen = uint64(binary.LittleEndian.Uint32(b[:]))
	default:
		return Array{}, fmt.Errorf("%w: format version %d.%d", ErrUnsupported, major, minor)
	}
	if hlen > MaxHeaderSize {
		return Array{}, fmt.Errorf("%w: header length %d exceeds the limit of %d bytes", ErrFormat, hlen, MaxHeaderSize)
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(r, header); err != nil {
		return Array{}, fmt.Errorf("%w: reading %d-byte header: %w", ErrFormat, hlen, noEOF(err))
	}
	h, err := parseHeader(header)
	if err != nil {
		return Array{}, err
	}
	if h.fortran {
		return Array{}, fmt.Errorf("%w: fortran_order True", ErrUnsupported)
	}
	_, size, err := parseDescr(h.descr)
	if err != nil {
		return Array{}, err
	}
	elems, ok := numElements(h.shape)
	if !ok {
		return Array{}, fmt.Errorf("%w: shape %v is too large", ErrFormat, h.shape)
	}
	hi, nbytes := bits.Mul64(elems, uint64(size))
	if hi != 0 || nbytes > uint64(max(maxBytes, 0)) {
		return Array{}, fmt.Errorf("%w: shape %v of %s exceeds the limit of %d bytes", ErrTooLarge, h.shape, h.descr, maxBytes)
	}
	data, err := readN(r, int64(nbytes))
	if err != nil {
		return Array{}, fmt.Errorf("%w: reading %d bytes of data for shape %v of %s: %w",
			ErrFormat, nbytes, h.shape, h.descr, noEOF(err))
	}
	return Array{Shape: h.shape, DType: canonicalDescr(h.descr), Data: data}, nil
}

// canonicalDescr spells one-byte dtypes as numpy does, with '|'.
func canonicalDescr(d string) string {
	if d[2] == '1' {
		return "|" + d[1:]
	}
	return d
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: any EOF inside a file is a
// truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readN reads exactly n bytes. It allocates as the data arrives, so a
// header that claims more data than the input holds cannot force a huge
// allocation.
func readN(r io.Reader, n int64) ([]byte, error) {
	const chunk = 16 << 20
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	buf.Grow(chunk)
	m, err := io.Copy(&buf, io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if m < n {
		return nil, io.ErrUnexpectedEOF
	}
	return buf.Bytes(), nil
}

// header is the content of a .npy header dictionary.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader parses a .npy header: a Python dict literal with the keys
// 'descr', 'fortran_order' and 'shape', such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseHeader(b []byte) (header, error) {
	p := &dictParser{s: b}
	var h header
	seen := map[string]bool{}
	bad := func(format string, args ...any) (header, error) {
		return header{}, fmt.Errorf("%w: header %q: %s", ErrFormat, truncate(b), fmt.Sprintf(format, args...))
	}
	if !p.eat('{') {
		return bad("does not start with '{'")
	}
	for {
		if p.eat('}') {
			break
		}
		key, ok := p.str()
		if !ok {
			return bad("expected a quoted key at offset %d", p.i)
		}
		if seen[key] {
			return bad("duplicate key %q", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return bad("expected ':' after key %q", key)
		}
		switch key {
		case "descr":
			if h.descr, ok = p.str(); !ok {
				return bad("'descr' is not a string (structured dtypes are not supported)")
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.fortran = true
			case p.word("False"):
				h.fortran = false
			default:
				return bad("'fortran_order' is not True or False")
			}
		case "shape":
			if h.shape, ok = p.tuple(); !ok {
				return bad("'shape' is not a tuple of non-negative integers")
			}
		default:
			return bad("unexpected key %q", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return bad("expected ',' or '}' at offset %d", p.i)
			}
			break
		}
	}
	p.space()
	if p.i != len(p.s) {
		return bad("trailing bytes after the dictionary")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return bad("missing key %q", k)
		}
	}
	return h, nil
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}

// dictParser scans the subset of Python literal syntax used by .npy
// headers.
type dictParser struct {
	s []byte
	i int
}

func (p *dictParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// eat consumes c, after optional white space, if it is next.
func (p *dictParser) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word consumes the identifier w if it is next.
func (p *dictParser) word(w string) bool {
	p.space()
	if bytes.HasPrefix(p.s[p.i:], []byte(w)) {
		end := p.i + len(w)
		if end == len(p.s) || !isIdent(p.s[end]) {
			p.i = end
			return true
		}
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// str consumes a single- or double-quoted string without escapes.
func (p *dictParser) str() (string, bool) {
	p.space()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", false
	}
	q := p.s[p.i]
	end := bytes.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	s := p.s[p.i+1 : p.i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return "", false
	}
	p.i += end + 2
	return string(s), true
}

// tuple consumes a tuple of non-negative integers: (), (3,), (2, 3).
func (p *dictParser) tuple() ([]int, bool) {
	if !p.eat('(') {
		return nil, false
	}
	shape := []int{}
	for {
		if p.eat(')') {
			return shape, true
		}
		p.space()
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == start {
			return nil, false
		}
		n, err := strconv.ParseInt(string(p.s[start:p.i]), 10, 64)
		if err != nil || int64(int(n)) != n {
			return nil, false
		}
		if p.i < len(p.s) && p.s[p.i] == 'L' { // Python 2 long
			p.i++
		}
		shape = append(shape, int(n))
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, false
			}
			if len(shape) == 1 {
				return nil, false // (3) is an int, not a tuple
			}
			return shape, true
		}
	}
}
