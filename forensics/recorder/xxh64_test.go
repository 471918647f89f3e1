package recorder

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func xxhBytes(p []byte) uint64 {
	d := newXXH64()
	d.Write(p)
	return d.Sum64()
}

func TestXXH64KnownValues(t *testing.T) {
	// Reference values of XXH64 with seed 0 (xxHash's own test vectors).
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
	} {
		assert.Equal(t, tc.want, xxhBytes([]byte(tc.in)), "%q", tc.in)
	}
}

// zstdChecksum returns the content checksum of a zstd frame of data: the
// low 32 bits of XXH64(data, seed 0), as the zstd format defines it.
func zstdChecksum(t *testing.T, data []byte) uint32 {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(true))
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	b := buf.Bytes()
	return binary.LittleEndian.Uint32(b[len(b)-4:])
}

func TestXXH64MatchesZstdChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 100, 1000, 4096 + 5} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		assert.Equal(t, zstdChecksum(t, data), uint32(xxhBytes(data)), "length %d", n)
	}
}

func TestXXH64FloatsAreTheirBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([]float32, 203)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	xs[5] = float32(math.Inf(-1))
	xs[6] = float32(math.NaN())
	raw := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	want := xxhBytes(raw)
	// Any split into segments, and any mix of byte and float writes, gives
	// the hash of the bytes.
	for _, cuts := range [][]int{{203}, {1, 202}, {7, 8, 9, 179}, {0, 3, 0, 200}, {64, 64, 64, 11}} {
		d := newXXH64()
		at := 0
		for i, c := range cuts {
			if i%2 == 1 {
				d.Write(raw[4*at : 4*(at+c)])
			} else {
				d.WriteFloat32s(xs[at : at+c])
			}
			at += c
		}
		assert.Equal(t, want, d.Sum64(), "cuts %v", cuts)
	}
	d := newXXH64()
	d.WriteFloat32s(xs[:10])
	mid := d.Sum64()
	assert.Equal(t, mid, d.Sum64(), "Sum64 does not change the state")
	d.WriteFloat32s(xs[10:])
	assert.Equal(t, want, d.Sum64())
}
