package weights

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/weights/npy"
)

// The files used here are written by testdata/gen/make_golden.py with numpy.

func readNPY(t *testing.T, path string) npy.Array {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	a, err := npy.Read(f)
	require.NoError(t, err)
	return a
}

func TestGoldenHalfSafetensors(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "half.safetensors"))
	require.NoError(t, err)
	defer f.Close()

	assert.Equal(t, []string{"bf16", "f16", "f32"}, f.Names())
	assert.Equal(t, map[string]string{"format": "pt", "generator": "make_golden.py"}, f.Metadata())
	assert.Zero(t, f.UnusedBytes())

	f32, err := f.Float32("f32")
	require.NoError(t, err)
	assert.Equal(t, []float32{1.5, -0.25, 1e-40}, f32)

	tests := []struct {
		tensor string
		dtype  DType
		golden string
	}{
		{"f16", F16, "half_f16.npy"},
		{"bf16", BF16, "half_bf16.npy"},
	}
	for _, tt := range tests {
		t.Run(tt.tensor, func(t *testing.T) {
			info, ok := f.Info(tt.tensor)
			require.True(t, ok)
			assert.Equal(t, tt.dtype, info.DType)
			want := readNPY(t, filepath.Join("testdata", tt.golden))
			assert.Equal(t, want.Shape, info.Shape)
			wantVals, err := want.Float32()
			require.NoError(t, err)

			got, err := f.Float32(tt.tensor)
			require.NoError(t, err)
			require.Len(t, got, len(wantVals))
			for i := range got {
				assert.Equal(t, math.Float32bits(wantVals[i]), math.Float32bits(got[i]), "element %d", i)
			}
		})
	}
}

func TestGoldenF16RoundingMatchesNumpy(t *testing.T) {
	arrays, err := npy.ReadNPZ(filepath.Join("testdata", "f16_rounding.npz"))
	require.NoError(t, err)
	in, err := arrays["input"].Float32()
	require.NoError(t, err)
	bits, err := arrays["bits"].Int64()
	require.NoError(t, err)
	require.Len(t, bits, len(in))
	require.Greater(t, len(in), 1000)
	for i, x := range in {
		if got := Float32ToF16(x); got != uint16(bits[i]) {
			t.Errorf("Float32ToF16(%g = 0x%08X) = 0x%04X, numpy gives 0x%04X", x, math.Float32bits(x), got, bits[i])
		}
	}
}
