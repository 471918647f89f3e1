package weights

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// st builds a safetensors file from a header and a data region.
func st(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// f32bytes encodes values as little-endian float32.
func f32bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestParseErrors(t *testing.T) {
	withLen := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "file is 0 bytes, shorter than the 8-byte header length"},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "file is 7 bytes"},
		{"header over limit", withLen(MaxHeaderSize+1, "{}"), "header length 104857601 exceeds the limit of 104857600 bytes"},
		{"header over file", withLen(3, "{}"), "header length 3 exceeds the 2 bytes after the length prefix"},
		{"header length max u64", withLen(math.MaxUint64, "{}"), "exceeds the limit"},
		{"invalid utf-8", st("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"invalid json", st(`{"a":`, nil), "header is not valid JSON"},
		{"empty header", st("", nil), "header is not valid JSON"},
		{"trailing garbage", st(`{} x`, nil), "header is not valid JSON"},
		{"header is array", st(`[]`, nil), "header is a JSON array, not an object"},
		{"header is string", st(`"x"`, nil), "header is a JSON string, not an object"},
		{"entry not object", st(`{"a":1}`, nil), `tensor "a": entry is a JSON number, not an object`},
		{"missing dtype", st(`{"a":{"shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": missing "dtype"`},
		{"dtype not string", st(`{"a":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": "dtype" is a JSON number, not a string`},
		{"unknown dtype", st(`{"a":{"dtype":"F128","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": unknown dtype "F128"`},
		{"lowercase dtype", st(`{"a":{"dtype":"f32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "f32"`},
		{"missing shape", st(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": missing "shape"`},
		{"shape not array", st(`{"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}`, make([]byte, 4)), `"shape" is a JSON number, not an array`},
		{"shape float", st(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)), `shape[0] is not an integer: 1.5`},
		{"shape string", st(`{"a":{"dtype":"F32","shape":[1,"2"],"data_offsets":[0,4]}}`, make([]byte, 4)), `shape[1] is not an integer`},
		{"negative dim", st(`{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "a": negative dimension -1 in shape [2,-1]`},
		{"missing offsets", st(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), `tensor "a": missing "data_offsets"`},
		{"offsets not array", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}}`, make([]byte, 4)), `"data_offsets" is a JSON string, not an array`},
		{"offsets length", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), `"data_offsets" has 3 elements, want 2`},
		{"negative offset", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, make([]byte, 4)), `data_offsets[0] is not a non-negative integer: -4`},
		{"huge offset", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}`, make([]byte, 4)), `data_offsets[1] is not a non-negative integer`},
		{"begin after end", st(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, make([]byte, 4)), `data_offsets [4, 0]: begin is after end`},
		{"past data region", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), `data_offsets [0, 8] extend past the end of the 4-byte data region`},
		{"size mismatch", st(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, make([]byte, 24)), `shape [2 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20`},
		{"size mismatch f16", st(`{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), `shape [3] of F16 needs 6 bytes`},
		{"sub-byte partial", st(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)), `shape [3] of F4 is not a whole number of bytes`},
		{"shape overflow", st(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), `shape [4294967296 4294967296 4294967296] is too large`},
		{"bytes overflow", st(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}`, make([]byte, 4)), `is not a whole number of bytes or is too large`},
		{"overlap", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), `tensors "a" [0, 8] and "b" [4, 12] overlap`},
		{"overlap contained", st(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 16)), `tensors "a" [0, 16] and "b" [4, 8] overlap`},
		{"same span", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensors "a" [0, 4] and "b" [0, 4] overlap`},
		{"duplicate tensor", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `duplicate tensor "a"`},
		{"duplicate metadata", st(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate __metadata__`},
		{"metadata not object", st(`{"__metadata__":[1]}`, nil), `__metadata__ is a JSON array, not an object`},
		{"metadata value not string", st(`{"__metadata__":{"format":1}}`, nil), `__metadata__: value of "format" is a JSON number, not a string`},
		{"metadata duplicate key", st(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `__metadata__: duplicate key "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("bad.safetensors", tt.file)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), "bad.safetensors")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name   string
		file   []byte
		names  []string
		meta   map[string]string
		unused int64
	}{
		{"empty header object", st(`{}`, nil), []string{}, map[string]string{}, 0},
		{"padded header", st(`{}      `, nil), []string{}, map[string]string{}, 0},
		{"null metadata", st(`{"__metadata__":null}`, nil), []string{}, map[string]string{}, 0},
		{"metadata", st(`{"__metadata__":{"format":"pt"}}`, nil), []string{}, map[string]string{"format": "pt"}, 0},
		{"empty tensor, empty data region", st(`{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}}`, nil), []string{"e"}, map[string]string{}, 0},
		{"scalar", st(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32bytes(2)), []string{"s"}, map[string]string{}, 0},
		{"gap and tail", st(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 20)), []string{"a", "b"}, map[string]string{}, 12},
		{"two empty tensors at one offset", st(`{"x":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"y":{"dtype":"F16","shape":[0],"data_offsets":[4,4]},"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), []string{"x", "y", "z"}, map[string]string{}, 0},
		{"sub-byte dtype", st(`{"q":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}`, make([]byte, 2)), []string{"q"}, map[string]string{}, 0},
		{"unknown entry keys ignored", st(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}`, []byte{7}), []string{"a"}, map[string]string{}, 0},
		{"escaped name", st(`{"a\"b\u00e9":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7}), []string{"a\"bé"}, map[string]string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("ok.safetensors", tt.file)
			require.NoError(t, err)
			assert.Equal(t, tt.names, f.Names())
			assert.Equal(t, tt.meta, f.Metadata())
			assert.Equal(t, tt.unused, f.UnusedBytes())
			assert.Equal(t, "ok.safetensors", f.Path())
			require.NoError(t, f.Close())
		})
	}
}

func TestInfoAndRaw(t *testing.T) {
	file := st(`{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"I8","shape":[3],"data_offsets":[16,19]}}`,
		append(f32bytes(1, 2, 3, 4), 5, 6, 7))
	f, err := Parse("m", file)
	require.NoError(t, err)
	defer f.Close()

	info, ok := f.Info("w")
	require.True(t, ok)
	assert.Equal(t, TensorInfo{Name: "w", DType: F32, Shape: []int{2, 2}, Begin: 0, End: 16}, info)
	assert.Equal(t, 4, info.NumElements())
	info.Shape[0] = 99 // must not alter the file's copy
	again, _ := f.Info("w")
	assert.Equal(t, []int{2, 2}, again.Shape)

	_, ok = f.Info("nope")
	assert.False(t, ok)

	raw, err := f.Raw("b")
	require.NoError(t, err)
	assert.Equal(t, []byte{5, 6, 7}, raw)
	assert.Equal(t, 3, cap(raw), "Raw must not expose bytes past the tensor")

	_, err = f.Raw("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), `tensor "nope"`)

	_, err = f.Float32("b")
	assert.ErrorIs(t, err, ErrUnsupportedDType)
	assert.Contains(t, err.Error(), `tensor "b": unsupported dtype I8`)

	got, err := f.Float32("w")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, 3, 4}, got)
}

func TestFloat32Conversions(t *testing.T) {
	u16 := func(vs ...uint16) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
		return b
	}
	tests := []struct {
		name   string
		header string
		data   []byte
		want   []float32
	}{
		{"f32", `{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}`, f32bytes(1, -2.5, float32(math.Inf(1))), []float32{1, -2.5, float32(math.Inf(1))}},
		{"f32 empty", `{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil, []float32{}},
		{"f16", `{"t":{"dtype":"F16","shape":[5],"data_offsets":[0,10]}}`, u16(0x3C00, 0x7BFF, 0x0001, 0xC000, 0x8000),
			[]float32{1, 65504, float32(math.Ldexp(1, -24)), -2, float32(math.Copysign(0, -1))}},
		{"bf16", `{"t":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}`, u16(0x3F80, 0xC040, 0x7F80),
			[]float32{1, -3, float32(math.Inf(1))}},
		{"f16 empty", `{"t":{"dtype":"F16","shape":[2,0],"data_offsets":[0,0]}}`, nil, []float32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("m", st(tt.header, tt.data))
			require.NoError(t, err)
			got, err := f.Float32("t")
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i := range got {
				assert.Equal(t, math.Float32bits(tt.want[i]), math.Float32bits(got[i]), "element %d", i)
			}
		})
	}
}

func TestFloat32ZeroCopyAndUnaligned(t *testing.T) {
	header := `{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ` // data at 64
	require.Zero(t, (8+len(header))%8)
	file := st(header, f32bytes(3, 4))

	// Aligned: the slice aliases the input.
	buf := make([]byte, len(file)+4)
	copy(buf, file)
	require.Zero(t, uintptr(unsafe.Pointer(&buf[0]))%4)
	f, err := Parse("m", buf[:len(file)])
	require.NoError(t, err)
	got, err := f.Float32("t")
	require.NoError(t, err)
	assert.Equal(t, []float32{3, 4}, got)
	assert.Equal(t, unsafe.Pointer(&buf[8+len(header)]), unsafe.Pointer(&got[0]), "aligned F32 must be zero-copy")

	// Unaligned: a copy with the same values.
	copy(buf[1:], file)
	f, err = Parse("m", buf[1:1+len(file)])
	require.NoError(t, err)
	got, err = f.Float32("t")
	require.NoError(t, err)
	assert.Equal(t, []float32{3, 4}, got)
	assert.NotEqual(t, unsafe.Pointer(&buf[1+8+len(header)]), unsafe.Pointer(&got[0]))
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func TestOpen(t *testing.T) {
	t.Run("mapped file", func(t *testing.T) {
		p := writeFile(t, "m.safetensors", st(`{"__metadata__":{"format":"pt"},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1.5, -1)))
		f, err := Open(p)
		require.NoError(t, err)
		assert.Equal(t, p, f.Path())
		assert.Equal(t, map[string]string{"format": "pt"}, f.Metadata())
		got, err := f.Float32("t")
		require.NoError(t, err)
		assert.Equal(t, []float32{1.5, -1}, got)
		require.NoError(t, f.Close())
		require.NoError(t, f.Close(), "second Close")
		_, err = f.Raw("t")
		assert.ErrorIs(t, err, ErrClosed)
		_, err = f.Float32("t")
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("zero-length data region", func(t *testing.T) {
		p := writeFile(t, "e.safetensors", st(`{"e":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}}`, nil))
		f, err := Open(p)
		require.NoError(t, err)
		got, err := f.Float32("e")
		require.NoError(t, err)
		assert.Empty(t, got)
		require.NoError(t, f.Close())
	})
	tests := []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.safetensors") }, "no such file"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, "not a regular file"},
		{"empty file", func(t *testing.T) string { return writeFile(t, "z.safetensors", nil) }, "file is 0 bytes"},
		{"short file", func(t *testing.T) string { return writeFile(t, "s.safetensors", []byte{1, 0, 0}) }, "file is 3 bytes"},
		{"bad header", func(t *testing.T) string { return writeFile(t, "b.safetensors", st(`{`, nil)) }, "header is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path(t)
			_, err := Open(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestMappedMemoryIsReadOnly(t *testing.T) {
	p := writeFile(t, "m.safetensors", st(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  `, f32bytes(1, 2)))
	f, err := Open(p)
	require.NoError(t, err)
	defer f.Close()
	got, err := f.Float32("t")
	require.NoError(t, err)
	raw, err := f.Raw("t")
	require.NoError(t, err)
	require.Equal(t, unsafe.Pointer(&raw[0]), unsafe.Pointer(&got[0]), "zero-copy view expected")

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (faulted bool) {
		defer func() { faulted = recover() != nil }()
		got[0] = 42
		return false
	}()
	assert.True(t, faulted, "writing to the mapped tensor must fault")
}
