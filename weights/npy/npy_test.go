package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The golden files are written by testdata/gen/make_golden.py with numpy.

func readFile(t *testing.T, name string) (Array, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	return Read(f)
}

func TestReadGoldenFloat32(t *testing.T) {
	tests := []struct {
		file  string
		dtype string
		shape []int
		want  []float32
	}{
		{"f4_2x3.npy", "<f4", []int{2, 3}, []float32{-1, -0.75, -0.5, -0.25, 0, 0.25}},
		{"f8_4.npy", "<f8", []int{4}, []float32{0.1, -2.5, float32(math.Inf(1)), math.Pi}},
		{"f2_5.npy", "<f2", []int{5}, []float32{1, -2, 65504, float32(math.Ldexp(1, -24)), 0.333251953125}},
		{"i8_3x2.npy", "<i8", []int{3, 2}, []float32{-3000000021, -2000000014, -1000000007, 0, 1000000007, 2000000014}},
		{"i4_4.npy", "<i4", []int{4}, []float32{-2147483648, -1, 0, 2147483647}},
		{"u1_3.npy", "|u1", []int{3}, []float32{0, 128, 255}},
		{"b1_3.npy", "|b1", []int{3}, []float32{1, 0, 1}},
		{"scalar_f4.npy", "<f4", []int{}, []float32{3.25}},
		{"empty_f4.npy", "<f4", []int{0, 3}, []float32{}},
		{"v2_f4.npy", "<f4", []int{3}, []float32{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a, err := readFile(t, tt.file)
			require.NoError(t, err)
			assert.Equal(t, tt.dtype, a.DType)
			assert.Equal(t, tt.shape, a.Shape)
			assert.Equal(t, len(tt.want), a.NumElements())
			got, err := a.Float32()
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestReadGoldenInt64(t *testing.T) {
	tests := []struct {
		file string
		want []int64
	}{
		{"i8_3x2.npy", []int64{-3000000021, -2000000014, -1000000007, 0, 1000000007, 2000000014}},
		{"i4_4.npy", []int64{-2147483648, -1, 0, 2147483647}},
		{"u1_3.npy", []int64{0, 128, 255}},
		{"b1_3.npy", []int64{1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a, err := readFile(t, tt.file)
			require.NoError(t, err)
			got, err := a.Int64()
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	a, err := readFile(t, "f4_2x3.npy")
	require.NoError(t, err)
	_, err = a.Int64()
	assert.ErrorIs(t, err, ErrUnsupported)
}

func TestReadGoldenUnsupported(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"fortran_f4.npy", "fortran_order True"},
		{"be_f4.npy", `dtype ">f4" (only little-endian is supported)`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := readFile(t, tt.file)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnsupported)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestReadGoldenNPZ(t *testing.T) {
	for _, file := range []string{"arrays.npz", "arrays_compressed.npz"} {
		t.Run(file, func(t *testing.T) {
			m, err := ReadNPZ(filepath.Join("testdata", file))
			require.NoError(t, err)
			require.Len(t, m, 2)
			assert.Equal(t, []int{2, 3}, m["a"].Shape)
			a, err := m["a"].Float32()
			require.NoError(t, err)
			assert.Equal(t, []float32{0, 1, 2, 3, 4, 5}, a)
			b, err := m["b"].Int64()
			require.NoError(t, err)
			assert.Equal(t, []int64{-2, -1, 0, 1}, b)

			data, err := os.ReadFile(filepath.Join("testdata", file))
			require.NoError(t, err)
			m2, err := ReadNPZBytes(data)
			require.NoError(t, err)
			assert.Equal(t, m, m2)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		data  []float32
		shape []int
	}{
		{"matrix", []float32{1, -2, 3.5, float32(math.Inf(-1)), 1e-40, 0}, []int{2, 3}},
		{"vector", []float32{7}, []int{1}},
		{"scalar", []float32{2.5}, []int{}},
		{"scalar nil shape", []float32{2.5}, nil},
		{"empty", []float32{}, []int{3, 0}},
		{"4-d", make([]float32, 2*3*4*5), []int{2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, WriteFloat32(&buf, tt.data, tt.shape))
			hlen := int(binary.LittleEndian.Uint16(buf.Bytes()[8:]))
			assert.Zero(t, (10+hlen)%64, "data aligned to 64 bytes, as numpy writes")
			a, err := Read(&buf)
			require.NoError(t, err)
			assert.Zero(t, buf.Len(), "Read consumes exactly the array")
			assert.Equal(t, "<f4", a.DType)
			assert.Equal(t, len(tt.shape), len(a.Shape))
			if len(tt.shape) > 0 {
				assert.Equal(t, tt.shape, a.Shape)
			}
			got, err := a.Float32()
			require.NoError(t, err)
			assert.Equal(t, tt.data, got)

			ints := make([]int64, len(tt.data))
			for i := range ints {
				ints[i] = int64(i)*1e12 - 3
			}
			buf.Reset()
			require.NoError(t, WriteInt64(&buf, ints, tt.shape))
			a, err = Read(&buf)
			require.NoError(t, err)
			assert.Equal(t, "<i8", a.DType)
			gotInts, err := a.Int64()
			require.NoError(t, err)
			assert.Equal(t, ints, gotInts)
		})
	}
}

func TestWriteErrors(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFloat32(&buf, []float32{1, 2}, []int{3})
	assert.ErrorContains(t, err, "shape [3] holds 3 elements but data has 2")
	err = WriteInt64(&buf, nil, []int{-1})
	assert.ErrorContains(t, err, "invalid shape [-1]")
	assert.Zero(t, buf.Len())
}

func TestSaveFloat32(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.npy")
	require.NoError(t, SaveFloat32(p, []float32{1, 2}, []int{2}))
	f, err := os.Open(p)
	require.NoError(t, err)
	a, err := Read(f)
	f.Close()
	require.NoError(t, err)
	got, err := a.Float32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2}, got)

	require.Error(t, SaveFloat32(p, []float32{1}, []int{5}))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "a failed save leaves no temporary file")

	require.NoError(t, SaveInt64(filepath.Join(dir, "i.npy"), []int64{4}, []int{1}))
	assert.Error(t, SaveFloat32(filepath.Join(dir, "missing", "x.npy"), nil, []int{0}))
}

// npyBytes builds a version 1.0 .npy file from a header dict and data.
func npyBytes(dict string, data []byte) []byte {
	b := append([]byte(magic), 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	b = append(b, dict...)
	return append(b, data...)
}

func TestReadErrors(t *testing.T) {
	f4 := func(shape string) string {
		return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n"
	}
	v2 := append([]byte(magic), 2, 0)
	v2 = binary.LittleEndian.AppendUint32(v2, MaxHeaderSize+1)
	tests := []struct {
		name string
		in   []byte
		is   error
		want string
	}{
		{"empty", nil, ErrFormat, "reading magic: unexpected EOF"},
		{"bad magic", []byte("PK\x03\x04abcdefgh"), ErrFormat, "not a .npy file"},
		{"version", append([]byte(magic), 4, 0, 0, 0), ErrUnsupported, "format version 4.0"},
		{"truncated length", append([]byte(magic), 1, 0, 5), ErrFormat, "reading header length"},
		{"header too long", v2, ErrFormat, "header length 1048577 exceeds the limit of 1048576 bytes"},
		{"truncated header", append(append([]byte(magic), 1, 0), 50, 0, '{'), ErrFormat, "reading 50-byte header"},
		{"not a dict", npyBytes("[1, 2]", nil), ErrFormat, "does not start with '{'"},
		{"missing key", npyBytes("{'descr': '<f4', 'shape': (1,)}", nil), ErrFormat, `missing key "fortran_order"`},
		{"extra key", npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", nil), ErrFormat, `unexpected key "x"`},
		{"duplicate key", npyBytes("{'descr': '<f4', 'descr': '<f4'}", nil), ErrFormat, `duplicate key "descr"`},
		{"structured dtype", npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", nil), ErrFormat, "structured dtypes are not supported"},
		{"fortran not bool", npyBytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", nil), ErrFormat, "'fortran_order' is not True or False"},
		{"shape not tuple", npyBytes(f4("[1]"), nil), ErrFormat, "'shape' is not a tuple"},
		{"shape negative", npyBytes(f4("(-1,)"), nil), ErrFormat, "'shape' is not a tuple"},
		{"shape int", npyBytes(f4("(3)"), nil), ErrFormat, "'shape' is not a tuple"},
		{"shape huge", npyBytes(f4("(99999999999999999999,)"), nil), ErrFormat, "'shape' is not a tuple"},
		{"trailing", npyBytes(f4("(1,)")+"}", nil), ErrFormat, "trailing bytes"},
		{"unterminated string", npyBytes("{'descr", nil), ErrFormat, "expected a quoted key"},
		{"missing colon", npyBytes("{'descr' '<f4'}", nil), ErrFormat, `expected ':' after key "descr"`},
		{"missing comma", npyBytes("{'descr': '<f4' 'shape': (1,)}", nil), ErrFormat, "expected ',' or '}'"},
		{"unknown dtype", npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", nil), ErrUnsupported, `dtype "<c8"`},
		{"object dtype", npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", nil), ErrUnsupported, `dtype "|O"`},
		{"big-endian", npyBytes("{'descr': '>i8', 'fortran_order': False, 'shape': (1,)}", nil), ErrUnsupported, "only little-endian"},
		{"fortran", npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", make([]byte, 16)), ErrUnsupported, "fortran_order True"},
		{"truncated data", npyBytes(f4("(2, 3)"), make([]byte, 20)), ErrFormat, "reading 24 bytes of data for shape [2 3] of <f4: unexpected EOF"},
		{"no data", npyBytes(f4("(1,)"), nil), ErrFormat, "unexpected EOF"},
		{"overflowing shape", npyBytes(f4("(4294967296, 4294967296, 4294967296)"), nil), ErrFormat, "is too large"},
		{"over default limit", npyBytes(f4("(2000000000,)"), nil), ErrTooLarge, "exceeds the limit of 4294967296 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.in))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestReadLimit(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteFloat32(&buf, make([]float32, 100), []int{10, 10}))
	_, err := ReadLimit(bytes.NewReader(buf.Bytes()), 399)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "shape [10 10] of <f4 exceeds the limit of 399 bytes")
	_, err = ReadLimit(bytes.NewReader(buf.Bytes()), 400)
	assert.NoError(t, err)
	_, err = ReadLimit(bytes.NewReader(buf.Bytes()), -1)
	assert.ErrorIs(t, err, ErrTooLarge)
}

// TestReadLargeClaimSmallInput checks that a header claiming a large array
// over a short input fails without allocating the claimed size up front.
func TestReadLargeClaimSmallInput(t *testing.T) {
	in := npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (400000000,)}", make([]byte, 100))
	_, err := Read(bytes.NewReader(in))
	assert.ErrorIs(t, err, ErrFormat)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestReadHeaderVariants(t *testing.T) {
	tests := []struct {
		name  string
		dict  string
		shape []int
	}{
		{"double quotes", `{"descr": "<f4", "fortran_order": False, "shape": (2,)}`, []int{2}},
		{"key order", `{'shape': (1, 2), 'fortran_order': False, 'descr': '<f4'}`, []int{1, 2}},
		{"no trailing comma", `{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}`, []int{2}},
		{"python 2 long", `{'descr': '<f4', 'fortran_order': False, 'shape': (2L,)}`, []int{2}},
		{"tuple trailing comma", `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2,)}`, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Read(bytes.NewReader(npyBytes(tt.dict+"  \n", make([]byte, 8))))
			require.NoError(t, err)
			assert.Equal(t, tt.shape, a.Shape)
		})
	}
}

func TestArrayConversions(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name   string
		a      Array
		f32    []float32
		i64    []int64
		i64Err string
	}{
		{"i1", Array{Shape: []int{2}, DType: "|i1", Data: []byte{0xFF, 5}}, []float32{-1, 5}, []int64{-1, 5}, ""},
		{"i2", Array{Shape: []int{1}, DType: "<i2", Data: le.AppendUint16(nil, 0x8000)}, []float32{-32768}, []int64{-32768}, ""},
		{"u2", Array{Shape: []int{1}, DType: "<u2", Data: le.AppendUint16(nil, 0xFFFF)}, []float32{65535}, []int64{65535}, ""},
		{"u4", Array{Shape: []int{1}, DType: "<u4", Data: le.AppendUint32(nil, 0xFFFFFFFF)}, []float32{4294967295}, []int64{4294967295}, ""},
		{"u8", Array{Shape: []int{1}, DType: "<u8", Data: le.AppendUint64(nil, 1<<63)}, []float32{9.223372e18}, nil, "overflows int64"},
		{"f2", Array{Shape: []int{1}, DType: "<f2", Data: le.AppendUint16(nil, 0x3C00)}, []float32{1}, nil, "Int64 of a <f2 array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.a.Float32()
			require.NoError(t, err)
			assert.Equal(t, tt.f32, f)
			i, err := tt.a.Int64()
			if tt.i64Err != "" {
				assert.ErrorContains(t, err, tt.i64Err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.i64, i)
		})
	}

	bad := []struct {
		name string
		a    Array
		want string
	}{
		{"short data", Array{Shape: []int{2}, DType: "<f4", Data: make([]byte, 7)}, "needs 2 elements of 4 bytes, Data has 7 bytes"},
		{"bad dtype", Array{Shape: []int{1}, DType: "float32", Data: make([]byte, 4)}, `dtype "float32"`},
		{"negative shape", Array{Shape: []int{-1}, DType: "<f4"}, "invalid shape [-1]"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.a.Float32()
			assert.ErrorContains(t, err, tt.want)
			_, err = tt.a.Int64()
			assert.ErrorContains(t, err, tt.want)
		})
	}
	assert.Equal(t, -1, Array{Shape: []int{-1}}.NumElements())
}

func TestNPZRoundTrip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "stored", true: "deflated"}[compress], func(t *testing.T) {
			var buf bytes.Buffer
			z := NewNPZWriter(&buf, compress)
			require.NoError(t, z.AddFloat32("logits", []float32{1, 2, 3, 4}, []int{2, 2}))
			require.NoError(t, z.AddInt64("ids", []int64{50256, 0}, []int{2}))
			require.NoError(t, z.AddFloat32("empty", nil, []int{0}))
			assert.ErrorContains(t, z.AddFloat32("ids", nil, []int{0}), `npz entry "ids": duplicate name`)
			assert.ErrorContains(t, z.AddFloat32("a/b", nil, []int{0}), `npz entry "a/b": invalid name`)
			assert.ErrorContains(t, z.AddFloat32("x", []float32{1}, []int{2}), `npy: npz entry "x": shape [2] holds 2 elements`)
			require.NoError(t, z.Close())

			m, err := ReadNPZBytes(buf.Bytes())
			require.NoError(t, err)
			require.Len(t, m, 3)
			logits, err := m["logits"].Float32()
			require.NoError(t, err)
			assert.Equal(t, []float32{1, 2, 3, 4}, logits)
			assert.Equal(t, []int{2, 2}, m["logits"].Shape)
			ids, err := m["ids"].Int64()
			require.NoError(t, err)
			assert.Equal(t, []int64{50256, 0}, ids)

			p := filepath.Join(t.TempDir(), "a.npz")
			require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
			m2, err := ReadNPZ(p)
			require.NoError(t, err)
			assert.Equal(t, m, m2)
		})
	}
}

// rawZip builds a zip whose entries hold the given bytes.
func rawZip(t *testing.T, method uint16, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e[0], Method: method})
		require.NoError(t, err)
		_, err = io.WriteString(w, e[1])
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestReadNPZErrors(t *testing.T) {
	var arr bytes.Buffer
	require.NoError(t, WriteFloat32(&arr, []float32{1, 2}, []int{2}))
	good := arr.String()
	tests := []struct {
		name    string
		data    []byte
		is      error
		want    string
		maxSize int64
	}{
		{"not a zip", []byte("not a zip file at all"), ErrFormat, "npy: npz: malformed: zip: not a valid zip file", 0},
		{"entry without .npy", rawZip(t, 0, [2]string{"a.txt", good}), ErrFormat, `npy: npz: entry "a.txt": malformed: not a plain NAME.npy`, 0},
		{"entry in directory", rawZip(t, 0, [2]string{"d/a.npy", good}), ErrFormat, `npz: entry "d/a.npy"`, 0},
		{"absolute entry", rawZip(t, 0, [2]string{"/a.npy", good}), ErrFormat, `npz: entry "/a.npy"`, 0},
		{"dotdot entry", rawZip(t, 0, [2]string{"..a.npy", good}), ErrFormat, `npz: entry "..a.npy"`, 0},
		{"backslash entry", rawZip(t, 0, [2]string{`..\a.npy`, good}), ErrFormat, `not a plain NAME.npy`, 0},
		{"bare .npy", rawZip(t, 0, [2]string{".npy", good}), ErrFormat, `npz: entry ".npy"`, 0},
		{"duplicate entry", rawZip(t, 0, [2]string{"a.npy", good}, [2]string{"a.npy", good}), ErrFormat, `entry "a.npy": malformed: duplicate`, 0},
		{"bad array", rawZip(t, 8, [2]string{"a.npy", good}, [2]string{"b.npy", "garbage!"}), ErrFormat, `npz: entry "b.npy"`, 0},
		{"trailing bytes", rawZip(t, 0, [2]string{"a.npy", good + "x"}), ErrFormat, `npy: npz: entry "a.npy": malformed: bytes after the array`, 0},
		{"over limit", rawZip(t, 8, [2]string{"a.npy", good}), ErrTooLarge, `npz: entry "a.npy"`, 100},
		{"over limit in total", rawZip(t, 8, [2]string{"a.npy", good}, [2]string{"b.npy", good}), ErrTooLarge, `npz: entry "b.npy"`, int64(len(good)) + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := DefaultMaxBytes
			if tt.maxSize > 0 {
				limit = tt.maxSize
			}
			_, err := ReadNPZLimit(bytes.NewReader(tt.data), int64(len(tt.data)), limit)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.is), "%v is not %v", err, tt.is)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	_, err := ReadNPZ(filepath.Join(t.TempDir(), "none.npz"))
	assert.ErrorContains(t, err, "none.npz")

	// Exactly at the limit is fine.
	data := rawZip(t, 8, [2]string{"a.npy", good})
	_, err = ReadNPZLimit(bytes.NewReader(data), int64(len(data)), int64(len(good)))
	assert.NoError(t, err)
}

// TestReadNPZBomb checks that an entry whose declared size is small but
// which inflates far beyond the limit is stopped at the limit.
func TestReadNPZBomb(t *testing.T) {
	var arr bytes.Buffer
	require.NoError(t, WriteFloat32(&arr, make([]float32, 1<<20), []int{1 << 20}))
	data := rawZip(t, 8, [2]string{"a.npy", arr.String()})
	require.Less(t, len(data), 64<<10)
	_, err := ReadNPZLimit(bytes.NewReader(data), int64(len(data)), 1<<16)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Contains(t, err.Error(), `npz: entry "a.npy"`)

	// Lie about the size in the local and central headers.
	patched := bytes.Clone(data)
	size := make([]byte, 4)
	binary.LittleEndian.PutUint32(size, uint32(arr.Len()))
	small := make([]byte, 4)
	binary.LittleEndian.PutUint32(small, 1000)
	patched = bytes.ReplaceAll(patched, size, small)
	_, err = ReadNPZLimit(bytes.NewReader(patched), int64(len(patched)), 1<<16)
	require.Error(t, err)
}

// TestNumpyReadsGoOutput has numpy load what WriteFloat32, WriteInt64 and
// NPZWriter write. It needs Debian's /usr/bin/python3 with numpy.
func TestNumpyReadsGoOutput(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy not available: %v", python, err)
	}
	dir := t.TempDir()
	require.NoError(t, SaveFloat32(filepath.Join(dir, "f.npy"), []float32{1.5, -2, 1e-40, 3}, []int{2, 2}))
	require.NoError(t, SaveInt64(filepath.Join(dir, "i.npy"), []int64{-1, 1 << 40}, []int{2}))
	require.NoError(t, SaveFloat32(filepath.Join(dir, "s.npy"), []float32{7}, nil))
	for _, compress := range []bool{false, true} {
		var buf bytes.Buffer
		z := NewNPZWriter(&buf, compress)
		require.NoError(t, z.AddFloat32("a", []float32{1, 2, 3}, []int{3}))
		require.NoError(t, z.AddInt64("b", []int64{4, 5}, []int{1, 2}))
		require.NoError(t, z.Close())
		require.NoError(t, os.WriteFile(filepath.Join(dir, map[bool]string{false: "s.npz", true: "c.npz"}[compress]), buf.Bytes(), 0o644))
	}
	script := strings.Join([]string{
		"import sys, numpy as np",
		"d = sys.argv[1]",
		"f = np.load(d + '/f.npy', allow_pickle=False)",
		"assert f.dtype == np.float32 and f.shape == (2, 2), f",
		"assert f.tolist() == [[1.5, -2.0], [np.float32(1e-40).item(), 3.0]], f",
		"i = np.load(d + '/i.npy', allow_pickle=False)",
		"assert i.dtype == np.int64 and i.tolist() == [-1, 1 << 40], i",
		"s = np.load(d + '/s.npy', allow_pickle=False)",
		"assert s.shape == () and s.item() == 7.0, s",
		"for n in ('s.npz', 'c.npz'):",
		"    z = np.load(d + '/' + n, allow_pickle=False)",
		"    assert sorted(z.files) == ['a', 'b'], z.files",
		"    assert z['a'].dtype == np.float32 and z['a'].tolist() == [1, 2, 3]",
		"    assert z['b'].dtype == np.int64 and z['b'].tolist() == [[4, 5]]",
		"print('ok')",
	}, "\n")
	out, err := exec.Command(python, "-c", script, dir).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "ok\n", string(out))
}
