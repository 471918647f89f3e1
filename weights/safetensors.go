// Package weights reads and writes model weights in the Hugging Face
// safetensors format, reads the config.json that describes a GPT-2 or BERT
// model, and finds a model's files in a directory or the local Hugging Face
// hub cache.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON header naming each tensor's dtype, shape and byte span, then the data
// region. Open maps a file into memory read-only and validates the whole
// header before any tensor is used, so a truncated or hostile file gives an
// error (wrapping ErrInvalid) rather than a crash or an out-of-range read.
// A Set joins the shards of a model saved as several files.
//
// The package never downloads anything.
package weights

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/modelforensics/fx/weights/internal/half"
	"github.com/valyala/fastjson"
)

// MaxHeaderSize is the largest safetensors JSON header accepted, in bytes.
const MaxHeaderSize = 100 << 20

// Sentinel errors. Errors returned by this package wrap one of these where a
// caller may want to branch on the cause.
var (
	// ErrInvalid marks a malformed safetensors file or header.
	ErrInvalid = errors.New("invalid safetensors")
	// ErrUnsupportedDType marks a tensor whose dtype Float32 or Write
	// cannot convert.
	ErrUnsupportedDType = errors.New("unsupported dtype")
	// ErrNotFound marks a tensor name that a File or Set does not hold.
	ErrNotFound = errors.New("tensor not found")
	// ErrClosed marks use of a File after Close.
	ErrClosed = errors.New("file closed")
)

// TensorInfo describes one tensor of a safetensors file. Begin and End are
// byte offsets into the data region, which starts right after the header.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	Begin int64
	End   int64
}

// NumElements returns the number of elements of the tensor: the product of
// its shape, 1 for a scalar.
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file. Its methods are safe for concurrent use.
type File struct {
	path    string
	release func([]byte) error // nil for an in-memory file

	mu     sync.RWMutex
	buf    []byte // the whole file; nil once closed
	closed bool

	data    []byte // the data region, a view of buf
	tensors map[string]TensorInfo
	names   []string
	meta    map[string]string
	unused  int64
}

// Open maps the safetensors file at path into memory read-only and
// validates its header. The caller must Close the File when done with it
// and with every slice it returned. The file must not be truncated or
// rewritten in place while it is open: the mapping would see the change,
// or fault.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("weights: %s: not a regular file", path)
	}
	if st.Size() < 8 {
		return nil, shortError(path, st.Size())
	}
	buf, release, err := mapFile(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	f, err := parse(path, buf)
	if err != nil {
		release(buf)
		return nil, err
	}
	f.release = release
	return f, nil
}

// Parse validates an in-memory safetensors file, such as one embedded with
// go:embed. name identifies it in errors and is what Path returns. The File
// aliases data, which must not be modified while the File is in use.
func Parse(name string, data []byte) (*File, error) {
	return parse(name, data)
}

// Close releases the file's memory. Slices returned by Raw and Float32 that
// alias the file must not be used afterwards. Close is safe to call more
// than once; later calls do nothing.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	buf := f.buf
	f.buf, f.data = nil, nil
	if f.release != nil {
		if err := f.release(buf); err != nil {
			return fmt.Errorf("weights: %s: close: %w", f.path, err)
		}
	}
	return nil
}

// Path returns the path the file was opened from, or the name given to Parse.
func (f *File) Path() string { return f.path }

// Names returns the names of the file's tensors in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info returns the description of the named tensor, and whether it exists.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	t.Shape = slices.Clone(t.Shape)
	return t, true
}

// Metadata returns a copy of the header's __metadata__ map (empty if the
// header has none).
func (f *File) Metadata() map[string]string {
	m := maps.Clone(f.meta)
	if m == nil {
		m = map[string]string{}
	}
	return m
}

// UnusedBytes returns the number of bytes of the data region that belong to
// no tensor: gaps between tensors and bytes after the last one. Files written
// by the Hugging Face library and by Write have none.
func (f *File) UnusedBytes() int64 { return f.unused }

// Raw returns the named tensor's bytes, little-endian as stored. The slice
// aliases the file's memory without copying: it is read-only (writing to a
// mapped file faults) and valid only until Close.
func (f *File) Raw(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("weights: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("weights: %s: tensor %q: %w", f.path, name, ErrClosed)
	}
	return f.data[t.Begin:t.End:t.End], nil
}

// Float32 returns the named tensor's values as float32.
//
// For an F32 tensor whose bytes are 4-byte aligned (always so in files
// written by the Hugging Face library or Write) the slice is a zero-copy view
// of the file's memory: it is read-only (writing to it faults) and valid only
// until Close. Otherwise, and for F16 and BF16 tensors, which are converted
// exactly, each call returns a newly allocated slice that the caller owns.
// Other dtypes give an error wrapping ErrUnsupportedDType.
func (f *File) Float32(name string) ([]float32, error) {
	raw, err := f.Raw(name)
	if err != nil {
		return nil, err
	}
	t := f.tensors[name]
	switch t.DType {
	case F32:
		n := len(raw) / 4
		if n == 0 {
			return []float32{}, nil
		}
		if littleEndian() && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n), nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case F16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = half.F16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = half.BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("weights: %s: tensor %q: %w %s (Float32 reads F32, F16 and BF16)",
		f.path, name, ErrUnsupportedDType, t.DType)
}

// littleEndian reports whether the machine stores integers little-endian,
// as safetensors does.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func shortError(name string, size int64) error {
	return fmt.Errorf("weights: %s: %w: file is %d bytes, shorter than the 8-byte header length",
		name, ErrInvalid, size)
}

// invalid returns an error wrapping ErrInvalid for the named file.
func invalid(name, format string, args ...any) error {
	return fmt.Errorf("weights: %s: %w: %s", name, ErrInvalid, fmt.Sprintf(format, args...))
}

// parse validates buf as a safetensors file named name.
func parse(name string, buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, shortError(name, int64(len(buf)))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, invalid(name, "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, invalid(name, "header length %d exceeds the %d bytes after the length prefix", n, len(buf)-8)
	}
	header := buf[8 : 8+n]
	data := buf[8+n:]
	if !utf8.Valid(header) {
		return nil, invalid(name, "header is not valid UTF-8")
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(header)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w: header is not valid JSON: %w", name, ErrInvalid, err)
	}
	obj, err := v.Object()
	if err != nil {
		return nil, invalid(name, "header is a JSON %s, not an object", v.Type())
	}
	f := &File{
		path:    name,
		buf:     buf,
		data:    data,
		tensors: make(map[string]TensorInfo, obj.Len()),
	}
	seenMeta := false
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		k := string(key)
		if k == "__metadata__" {
			if seenMeta {
				err = invalid(name, "duplicate __metadata__")
				return
			}
			seenMeta = true
			f.meta, err = parseMetadata(name, v)
			return
		}
		if _, dup := f.tensors[k]; dup {
			err = invalid(name, "duplicate tensor %q", k)
			return
		}
		var t TensorInfo
		t, err = parseEntry(name, k, v, int64(len(data)))
		f.tensors[k] = t
	})
	if err != nil {
		return nil, err
	}
	f.names = slices.AppendSeq(make([]string, 0, len(f.tensors)), maps.Keys(f.tensors))
	slices.Sort(f.names)
	if f.unused, err = checkSpans(name, f.tensors, f.names, int64(len(data))); err != nil {
		return nil, err
	}
	return f, nil
}

func parseMetadata(name string, v *fastjson.Value) (map[string]string, error) {
	if v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	o, err := v.Object()
	if err != nil {
		return nil, invalid(name, "__metadata__ is a JSON %s, not an object", v.Type())
	}
	m := make(map[string]string, o.Len())
	o.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		k := string(key)
		if _, dup := m[k]; dup {
			err = invalid(name, "__metadata__: duplicate key %q", k)
			return
		}
		s, e := v.StringBytes()
		if e != nil {
			err = invalid(name, "__metadata__: value of %q is a JSON %s, not a string", k, v.Type())
			return
		}
		m[k] = string(s)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parseEntry(name, tensor string, v *fastjson.Value, dataLen int64) (TensorInfo, error) {
	t := TensorInfo{Name: tensor}
	bad := func(format string, args ...any) error {
		return invalid(name, "tensor %q: %s", tensor, fmt.Sprintf(format, args...))
	}
	o, err := v.Object()
	if err != nil {
		return t, bad("entry is a JSON %s, not an object", v.Type())
	}

	dv := o.Get("dtype")
	if dv == nil {
		return t, bad(`missing "dtype"`)
	}
	ds, err := dv.StringBytes()
	if err != nil {
		return t, bad(`"dtype" is a JSON %s, not a string`, dv.Type())
	}
	t.DType = DType(ds)
	if !t.DType.Known() {
		return t, bad("unknown dtype %q", ds)
	}

	sv := o.Get("shape")
	if sv == nil {
		return t, bad(`missing "shape"`)
	}
	dims, err := sv.Array()
	if err != nil {
		return t, bad(`"shape" is a JSON %s, not an array`, sv.Type())
	}
	t.Shape = make([]int, len(dims))
	for i, d := range dims {
		x, err := d.Int()
		if err != nil {
			return t, bad("shape[%d] is not an integer: %s", i, d)
		}
		if x < 0 {
			return t, bad("negative dimension %d in shape %s", x, sv)
		}
		t.Shape[i] = x
	}

	ov := o.Get("data_offsets")
	if ov == nil {
		return t, bad(`missing "data_offsets"`)
	}
	offs, err := ov.Array()
	if err != nil {
		return t, bad(`"data_offsets" is a JSON %s, not an array`, ov.Type())
	}
	if len(offs) != 2 {
		return t, bad(`"data_offsets" has %d elements, want 2`, len(offs))
	}
	var be [2]int64
	for i, x := range offs {
		u, err := x.Uint64()
		if err != nil || u > math.MaxInt64 {
			return t, bad("data_offsets[%d] is not a non-negative integer: %s", i, x)
		}
		be[i] = int64(u)
	}
	t.Begin, t.End = be[0], be[1]
	if t.Begin > t.End {
		return t, bad("data_offsets [%d, %d]: begin is after end", t.Begin, t.End)
	}
	if t.End > dataLen {
		return t, bad("data_offsets [%d, %d] extend past the end of the %d-byte data region",
			t.Begin, t.End, dataLen)
	}

	elems, ok := numElements(t.Shape)
	if !ok {
		return t, bad("shape %v is too large", t.Shape)
	}
	size, ok := byteSize(t.DType, elems)
	if !ok {
		return t, bad("shape %v of %s is not a whole number of bytes or is too large", t.Shape, t.DType)
	}
	if size != t.End-t.Begin {
		return t, bad("shape %v of %s needs %d bytes but data_offsets [%d, %d] span %d",
			t.Shape, t.DType, size, t.Begin, t.End, t.End-t.Begin)
	}
	return t, nil
}

// checkSpans reports overlapping tensors and returns the number of data
// bytes that belong to no tensor.
func checkSpans(name string, tensors map[string]TensorInfo, names []string, dataLen int64) (int64, error) {
	spans := make([]TensorInfo, 0, len(tensors))
	for _, n := range names {
		if t := tensors[n]; t.End > t.Begin {
			spans = append(spans, t)
		}
	}
	slices.SortFunc(spans, func(a, b TensorInfo) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), cmp.Compare(a.Name, b.Name))
	})
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if b.Begin < a.End {
			return 0, invalid(name, "tensors %q [%d, %d] and %q [%d, %d] overlap",
				a.Name, a.Begin, a.End, b.Name, b.Begin, b.End)
		}
	}
	var used int64
	for _, t := range spans {
		used += t.End - t.Begin
	}
	return dataLen - used, nil
}
