package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteRoundTrip(t *testing.T) {
	tie16 := float32(1 + math.Ldexp(1, -11))  // halfway between two halves
	tieBF := float32(1 + math.Ldexp(1, -8))   // halfway between two bfloat16s
	up16 := float32(1 + 3*math.Ldexp(1, -11)) // halfway, rounds up to even
	tests := []struct {
		name  string
		dtype DType
		in    []float32
		want  []float32
	}{
		{"f32", F32, []float32{0, -1.5, 3.1415927, 1e-40, float32(math.Inf(-1))}, []float32{0, -1.5, 3.1415927, 1e-40, float32(math.Inf(-1))}},
		{"f16", F16, []float32{1, tie16, up16, 0.1, 70000, 1e-8, -2},
			[]float32{1, 1, float32(1 + 4*math.Ldexp(1, -11)), 0.099975586, float32(math.Inf(1)), 0, -2}},
		{"bf16", BF16, []float32{1, tieBF, 0.1, 3.4e38, -2},
			[]float32{1, 1, math.Float32frombits(0x3DCD0000), float32(math.Inf(1)), -2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.safetensors")
			require.NoError(t, Write(p, []Tensor{{Name: "x", DType: tt.dtype, Shape: []int{len(tt.in)}, Data: tt.in}}, nil))
			f, err := Open(p)
			require.NoError(t, err)
			defer f.Close()
			info, ok := f.Info("x")
			require.True(t, ok)
			assert.Equal(t, tt.dtype, info.DType)
			got, err := f.Float32("x")
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i := range got {
				assert.Equal(t, math.Float32bits(tt.want[i]), math.Float32bits(got[i]), "element %d: %g", i, got[i])
			}
		})
	}
}

func TestWriteManyTensors(t *testing.T) {
	tensors := []Tensor{
		{Name: "z.bias", DType: F32, Shape: []int{3}, Data: []float32{1, 2, 3}},
		{Name: "a.weight", DType: F16, Shape: []int{1, 3}, Data: []float32{4, 5, 6}}, // 6 bytes: misaligns what follows
		{Name: "m.scalar", DType: BF16, Shape: []int{}, Data: []float32{7}},
		{Name: "e.empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
	meta := map[string]string{"format": "pt", "b": "<&>"}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, Write(p, tensors, meta))

	data, err := os.ReadFile(p)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(data)
	assert.Zero(t, (8+n)%8, "data region must start 8-byte aligned")

	f, err := Open(p)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, []string{"a.weight", "e.empty", "m.scalar", "z.bias"}, f.Names())
	assert.Equal(t, meta, f.Metadata())
	assert.Zero(t, f.UnusedBytes())
	var prevEnd int64
	for _, name := range f.Names() { // name order, no gaps
		info, _ := f.Info(name)
		assert.Equal(t, prevEnd, info.Begin, name)
		prevEnd = info.End
	}
	for _, tn := range tensors {
		info, ok := f.Info(tn.Name)
		require.True(t, ok)
		assert.Equal(t, tn.Shape, info.Shape)
		got, err := f.Float32(tn.Name)
		require.NoError(t, err)
		want := tn.Data
		if want == nil {
			want = []float32{}
		}
		assert.Equal(t, want, got, tn.Name)
	}
}

func TestEncodeHeader(t *testing.T) {
	var buf bytes.Buffer
	err := Encode(&buf, []Tensor{
		{Name: "b", DType: F32, Shape: []int{1}, Data: []float32{1}},
		{Name: "a", DType: F16, Shape: []int{2, 1}, Data: []float32{1, 2}},
	}, map[string]string{"z": "1", "format": "pt"})
	require.NoError(t, err)
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b)
	header := string(b[8 : 8+n])
	want := `{"__metadata__":{"format":"pt","z":"1"},` +
		`"a":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},` +
		`"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`
	assert.Equal(t, want, strings.TrimRight(header, " "))
	assert.Zero(t, len(header)%8)
	assert.Equal(t, []byte{0x00, 0x3C, 0x00, 0x40, 0x00, 0x00, 0x80, 0x3F}, b[8+n:])
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
		is      error
	}{
		{"duplicate", []Tensor{{Name: "a", DType: F32, Data: []float32{1}}, {Name: "a", DType: F32, Data: []float32{2}}}, nil, `duplicate tensor "a"`, nil},
		{"empty name", []Tensor{{DType: F32, Data: []float32{1}}}, nil, "empty name", nil},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Data: []float32{1}}}, nil, `tensor "__metadata__": reserved name`, nil},
		{"bad utf-8 name", []Tensor{{Name: "\xff", DType: F32, Data: []float32{1}}}, nil, "not valid UTF-8", nil},
		{"unsupported dtype", []Tensor{{Name: "a", DType: I64, Data: []float32{1}}}, nil, `tensor "a": unsupported dtype "I64"`, ErrUnsupportedDType},
		{"unknown dtype", []Tensor{{Name: "a", DType: "X", Data: []float32{1}}}, nil, `unsupported dtype "X"`, ErrUnsupportedDType},
		{"shape mismatch", []Tensor{{Name: "a", DType: F32, Shape: []int{2, 2}, Data: []float32{1}}}, nil, `tensor "a": shape [2 2] holds 4 values but Data has 1`, nil},
		{"negative dim", []Tensor{{Name: "a", DType: F32, Shape: []int{-1}, Data: nil}}, nil, `tensor "a": invalid shape [-1]`, nil},
		{"bad utf-8 metadata", nil, map[string]string{"k": "\xff"}, `metadata "k": not valid UTF-8`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, tt.tensors, tt.meta)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Zero(t, buf.Len(), "nothing written on a validation error")
		})
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		return 0, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestEncodeWriteError(t *testing.T) {
	data := make([]float32, 100000)
	for _, after := range []int{0, 8, 100, 100000} {
		err := Encode(&failWriter{after: after}, []Tensor{{Name: "a", DType: F32, Shape: []int{len(data)}, Data: data}}, nil)
		require.Error(t, err, "after %d", after)
		assert.Contains(t, err.Error(), "disk full")
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	require.NoError(t, Write(p, []Tensor{{Name: "a", DType: F32, Shape: []int{1}, Data: []float32{1}}}, nil))
	before, err := os.ReadFile(p)
	require.NoError(t, err)

	err = Write(p, []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: []float32{1}}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	after, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, before, after, "a failed Write leaves the old file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	err = Write(filepath.Join(dir, "missing", "m.safetensors"), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing")

	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
}

// TestWriteReadableByPython parses a file written by Write with a reader
// written from the safetensors specification in Python, using numpy only.
func TestWriteReadableByPython(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy not available: %v", python, err)
	}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, Write(p, []Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4.5}},
		{Name: "h", DType: F16, Shape: []int{3}, Data: []float32{1, 0.5, -65504}},
	}, map[string]string{"format": "pt"}))
	script := `
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
assert (8 + n) % 8 == 0
h = json.loads(b[8:8 + n])
assert h["__metadata__"] == {"format": "pt"}, h
d = b[8 + n:]
def get(name, dt):
    e = h[name]
    s, t = e["data_offsets"]
    return np.frombuffer(d[s:t], dtype=dt).reshape(e["shape"])
assert get("w", "<f4").tolist() == [[1, 2], [3, 4.5]]
assert get("h", "<f2").tolist() == [1, 0.5, -65504]
print("ok")
`
	out, err := exec.Command(python, "-c", script, p).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "ok\n", string(out))
}
