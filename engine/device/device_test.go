package device_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/engine/device"
	"github.com/modelforensics/fx/engine/gpu"
)

func TestParseCUDA(t *testing.T) {
	tests := []struct {
		name string
		want gpu.Options
		ok   bool
	}{
		{"cuda", gpu.Options{}, true},
		{"cuda:1", gpu.Options{Ordinal: 1}, true},
		{"cuda-tf32", gpu.Options{MatMul: gpu.TF32}, true},
		{"cuda:2-tf32", gpu.Options{Ordinal: 2, MatMul: gpu.TF32}, true},
		{"cuda-bf16", gpu.Options{MatMul: gpu.BF16}, true},
		{"cuda:1-bf16", gpu.Options{Ordinal: 1, MatMul: gpu.BF16}, true},
		{"cuda-bf16-tf32", gpu.Options{}, false},
		{"cuda:", gpu.Options{}, false},
		{"cuda:-1", gpu.Options{}, false},
		{"cuda:x", gpu.Options{}, false},
		{"gpu", gpu.Options{}, false},
		{"cpu", gpu.Options{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := device.ParseCUDA(tc.name)
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	b, err := device.Open("cpu")
	require.NoError(t, err)
	assert.Contains(t, b.Name(), "cpu")

	_, err = device.Open("tpu")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"tpu"`)

	b, err = device.Open("auto")
	require.NoError(t, err)
	assert.NotNil(t, b)

	if _, err := cuda.Load(); err == nil {
		t.Skip("this machine has a GPU")
	}
	b, err = device.Open("cuda")
	require.Error(t, err)
	assert.Nil(t, b)
	assert.Contains(t, err.Error(), "libcuda.so.1")
	assert.Contains(t, device.Names, "cuda")
}
