package weights

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shardedDir writes two shards and an index into a new directory.
func shardedDir(t *testing.T, index string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{
		{Name: "wte", DType: F32, Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "h.0.w", DType: F16, Shape: []int{2}, Data: []float32{0.5, -1}},
	}, nil))
	require.NoError(t, Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{
		{Name: "ln_f.w", DType: BF16, Shape: []int{1}, Data: []float32{2}},
	}, nil))
	require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFileName), []byte(index), 0o644))
	return dir
}

const goodIndex = `{
  "metadata": {"total_size": 26},
  "weight_map": {
    "wte": "model-00001-of-00002.safetensors",
    "h.0.w": "model-00001-of-00002.safetensors",
    "ln_f.w": "model-00002-of-00002.safetensors"
  }
}`

func TestOpenDirSharded(t *testing.T) {
	dir := shardedDir(t, goodIndex)
	s, err := OpenDir(dir)
	require.NoError(t, err)
	defer s.Close()

	assert.Equal(t, []string{"h.0.w", "ln_f.w", "wte"}, s.Names())
	assert.Equal(t, []string{
		filepath.Join(dir, "model-00001-of-00002.safetensors"),
		filepath.Join(dir, "model-00002-of-00002.safetensors"),
	}, s.Files())

	info, ok := s.Info("ln_f.w")
	require.True(t, ok)
	assert.Equal(t, BF16, info.DType)
	_, ok = s.Info("nope")
	assert.False(t, ok)

	tests := []struct {
		name string
		want []float32
	}{
		{"wte", []float32{1, 2, 3, 4}},
		{"h.0.w", []float32{0.5, -1}},
		{"ln_f.w", []float32{2}},
	}
	for _, tt := range tests {
		got, err := s.Float32(tt.name)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, tt.name)
	}
	raw, err := s.Raw("ln_f.w")
	require.NoError(t, err)
	assert.Equal(t, []byte{0x00, 0x40}, raw)

	_, err = s.Float32("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = s.Raw("nope")
	assert.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")
	_, err = s.Float32("wte")
	assert.ErrorIs(t, err, ErrClosed)
}

func TestOpenDirSingleFilePreferred(t *testing.T) {
	dir := shardedDir(t, goodIndex)
	require.NoError(t, Write(filepath.Join(dir, SingleFileName), []Tensor{
		{Name: "only", DType: F32, Shape: []int{1}, Data: []float32{9}},
	}, nil))
	s, err := OpenDir(dir)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, []string{"only"}, s.Names())
	assert.Equal(t, []string{filepath.Join(dir, SingleFileName)}, s.Files())
}

func TestOpenDirErrors(t *testing.T) {
	shard1 := `"model-00001-of-00002.safetensors"`
	tests := []struct {
		name  string
		index string
		want  string
	}{
		{"invalid json", `{"weight_map":`, "not valid JSON"},
		{"not an object", `[]`, "a JSON array, not an object"},
		{"missing weight_map", `{"metadata":{}}`, `missing "weight_map"`},
		{"weight_map not object", `{"weight_map":[]}`, `"weight_map" is a JSON array, not an object`},
		{"empty weight_map", `{"weight_map":{}}`, `"weight_map" is empty`},
		{"shard not string", `{"weight_map":{"wte":1}}`, `tensor "wte": shard is a JSON number, not a string`},
		{"shard with slash", `{"weight_map":{"wte":"sub/x.safetensors"}}`, `shard "sub/x.safetensors" is not a plain file name`},
		{"shard escaping dir", `{"weight_map":{"wte":"../x.safetensors"}}`, `shard "../x.safetensors" is not a plain file name`},
		{"shard absolute", `{"weight_map":{"wte":"/etc/passwd"}}`, `is not a plain file name`},
		{"shard dotdot", `{"weight_map":{"wte":".."}}`, `shard ".." is not a plain file name`},
		{"shard backslash", `{"weight_map":{"wte":"..\\x"}}`, `is not a plain file name`},
		{"shard empty", `{"weight_map":{"wte":""}}`, `shard "" is not a plain file name`},
		{"missing shard file", `{"weight_map":{"wte":"model-00009.safetensors"}}`, "model-00009.safetensors"},
		{"tensor absent from shard", `{"weight_map":{"wte":` + shard1 + `,"lm_head":` + shard1 + `}}`,
			`tensor "lm_head": tensor not found: listed under shard "model-00001-of-00002.safetensors" but absent from it`},
		{"tensor in other shard", `{"weight_map":{"ln_f.w":` + shard1 + `}}`, `tensor "ln_f.w"`},
		{"duplicate tensor", `{"weight_map":{"wte":` + shard1 + `,"wte":` + shard1 + `}}`, `duplicate tensor "wte"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shardedDir(t, tt.index)
			s, err := OpenDir(dir)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), dir)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	t.Run("no weights", func(t *testing.T) {
		dir := t.TempDir()
		_, err := OpenDir(dir)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrNoWeights)
		assert.Contains(t, err.Error(), dir)
	})
	t.Run("duplicate across shards", func(t *testing.T) {
		dir := shardedDir(t, goodIndex)
		require.NoError(t, Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{
			{Name: "ln_f.w", DType: BF16, Shape: []int{1}, Data: []float32{2}},
			{Name: "wte", DType: F32, Shape: []int{1}, Data: []float32{2}},
		}, nil))
		_, err := OpenDir(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `tensor "wte" is in both`)
	})
	t.Run("bad shard", func(t *testing.T) {
		dir := shardedDir(t, goodIndex)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), []byte("garbage"), 0o644))
		_, err := OpenDir(dir)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), "model-00002-of-00002.safetensors")
	})
}

func TestNewSet(t *testing.T) {
	a, err := Parse("a", st(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(1)))
	require.NoError(t, err)
	b, err := Parse("b", st(`{"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(2)))
	require.NoError(t, err)
	c, err := Parse("c", st(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(3)))
	require.NoError(t, err)

	s, err := NewSet(a, b)
	require.NoError(t, err)
	assert.Equal(t, []string{"x", "y"}, s.Names())
	assert.Equal(t, []string{"a", "b"}, s.Files())
	got, err := s.Float32("y")
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, got)

	_, err = NewSet(a, c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tensor "x" is in both a and c`)

	_, err = NewSet(a, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "file 1 is nil")

	empty, err := NewSet()
	require.NoError(t, err)
	assert.Empty(t, empty.Names())
}
