package cf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/bundle"
)

var testModelID = bundle.Model{Name: "m", Type: "gpt2", WeightsSHA256: strings.Repeat("ab", 32)}

// synthRun is a run of P positions with one feature per block of a
// 2-block model: blocks.L.mlp.hook_post/rms = base + position + 0.1·L.
func synthRun(P int, base float64) *Features {
	f := &Features{ModelType: "gpt2", Positions: P, Layers: 2, SketchK: 8, SketchSeed: 1}
	for l := range 2 {
		s := Series{Hook: fmt.Sprintf("blocks.%d.mlp.hook_post", l), Stat: StatRMS, Layer: l, Values: make([]float64, P)}
		for p := range P {
			s.Values[p] = base + float64(p) + 0.1*float64(l)
		}
		f.Series = append(f.Series, s)
	}
	return f
}

func testConfig(minSamples int) Config {
	cfg := DefaultConfig()
	cfg.Baseline.MinSamples = minSamples
	return cfg
}

func TestAccumulatorClasses(t *testing.T) {
	acc := NewAccumulator(testModelID, 2, testSketch, testConfig(3))
	// Runs of 2, 3, 4 and 6 positions: positions 0 and 1 are reached by 4
	// runs, 2 by 3, 3 by 2: the cutoff is 3.
	for i, P := range []int{2, 3, 4, 6} {
		require.NoError(t, acc.Add(synthRun(P, float64(10*i))))
	}
	b, err := acc.Baseline(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
	require.NoError(t, err)
	assert.Equal(t, 3, b.Cutoff)
	assert.Equal(t, 4, b.Prompts)
	assert.Equal(t, 15, b.Positions)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), b.Created)
	fd, ok := b.Feature("blocks.1.mlp.hook_post/rms")
	require.True(t, ok)
	// Position 0: 0.1, 10.1, 20.1, 30.1.
	assert.Equal(t, Summarize([]float64{0.1, 10.1, 20.1, 30.1}), fd.Classes["0"])
	// Position 2: 22.1, 32.1 and 2+0.1+10: three runs reach it.
	assert.Equal(t, Summarize([]float64{12.1, 22.1, 32.1}), fd.Classes["2"])
	// Tail (positions 3-5): 23.1 from the third run, 33.1, 34.1, 35.1.
	assert.Equal(t, Summarize([]float64{23.1, 33.1, 34.1, 35.1}), fd.Classes[ClassTail])
	assert.Equal(t, 15, fd.Classes[ClassAll].N)
	for _, tc := range []struct {
		p, P  int
		class string
	}{{0, 6, "0"}, {2, 6, "2"}, {3, 6, ClassTail}, {40, 41, ClassTail}} {
		assert.Equal(t, tc.class, b.Class(tc.p, tc.P, false))
	}
	// A class with fewer than min samples scores against ClassAll.
	b.MinSamples = 5
	d, ok := fd.Dist(b, 0, 6, false)
	require.True(t, ok)
	assert.Equal(t, fd.Classes[ClassAll], d)
	// One calibration per signal with features: norm only here.
	require.Len(t, b.Calibration, 1)
	assert.Equal(t, Norm, b.Calibration[0].Signal)
	assert.Len(t, b.Calibration[0].Layers, 2)

	// BERT: the last position ([SEP]) has its own class.
	bert := testModelID
	bert.Type = "bert"
	acc = NewAccumulator(bert, 2, testSketch, testConfig(1))
	f := synthRun(4, 0)
	f.ModelType = "bert"
	require.NoError(t, acc.Add(f))
	bb, err := acc.Baseline(time.Now())
	require.NoError(t, err)
	assert.Equal(t, 3, bb.Cutoff)
	assert.Equal(t, ClassLast, bb.Class(3, 4, false))
	assert.Equal(t, "0", bb.Class(0, 1, true), "a hook without positions")
	fd, _ = bb.Feature("blocks.0.mlp.hook_post/rms")
	assert.Equal(t, Summarize([]float64{3}), fd.Classes[ClassLast])

	// Errors.
	_, err = NewAccumulator(testModelID, 2, testSketch, testConfig(1)).Baseline(time.Now())
	assert.ErrorContains(t, err, "no runs")
	f = synthRun(2, 0)
	f.SketchK = 4
	assert.ErrorContains(t, NewAccumulator(testModelID, 2, testSketch, testConfig(1)).Add(f), "sketch k=4")
	f.ModelType = "bert"
	assert.ErrorContains(t, NewAccumulator(testModelID, 2, testSketch, testConfig(1)).Add(f), "a bert run for a gpt2 baseline")
}

// testBaseline returns a small valid baseline.
func testBaseline(t *testing.T) *Baseline {
	t.Helper()
	acc := NewAccumulator(testModelID, 2, testSketch, testConfig(2))
	for i, P := range []int{3, 4, 5} {
		require.NoError(t, acc.Add(synthRun(P, float64(i))))
	}
	b, err := acc.Baseline(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return b
}

func encode(t *testing.T, b *Baseline) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, b.Encode(&buf))
	return buf.Bytes()
}

func TestBaselineRoundTrip(t *testing.T) {
	b := testBaseline(t)
	path := filepath.Join(t.TempDir(), "b.fxbase")
	require.NoError(t, b.WriteFile(path))
	got, err := ReadBaseline(path)
	require.NoError(t, err)
	b.index, got.index = nil, nil
	assert.Equal(t, b, got)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(data, []byte("fx-baseline/1\nsha256 ")))
	assert.Equal(t, encode(t, b), data, "encoding is deterministic")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left")
}

// reseal returns a file with payload and a matching checksum line.
func reseal(payload []byte) []byte {
	sum := sha256.Sum256(payload)
	return fmt.Appendf(nil, "%s\nsha256 %s %d\n%s", BaselineFormat, hex.EncodeToString(sum[:]), len(payload), payload)
}

func TestBaselineCorruption(t *testing.T) {
	good := encode(t, testBaseline(t))
	_, _, payload := cut3(good)
	cases := []struct {
		name     string
		data     []byte
		sentinel error
		want     string
	}{
		{"empty", nil, ErrCorrupt, "no format line"},
		{"not a baseline", []byte("PK\x03\x04 zip\n"), ErrCorrupt, "not an fx baseline"},
		{"newer version", []byte("fx-baseline/2\nsha256 x 0\n"), ErrUnsupported, `format "fx-baseline/2"`},
		{"no checksum line", []byte("fx-baseline/1\n"), ErrCorrupt, "no checksum line"},
		{"bad checksum line", []byte("fx-baseline/1\nmd5 abc 3\nabc"), ErrCorrupt, `is not "sha256 HEX LENGTH"`},
		{"bad length", []byte("fx-baseline/1\nsha256 " + strings.Repeat("0", 64) + " -4\n"), ErrCorrupt, "length"},
		{"truncated", good[:len(good)-10], ErrCorrupt, "truncated?"},
		{"flipped byte", flip(good, len(good)-20), ErrCorrupt, "sha256"},
		{"unknown field", reseal(bytes.Replace(payload, []byte(`"layers":2`), []byte(`"layers":2,"extra":1`), 1)), ErrCorrupt, `unknown field "extra"`},
		{"trailing data", reseal(append(append([]byte{}, payload...), []byte(" {}")...)), ErrCorrupt, "after the JSON object"},
		{"bad layers", reseal(bytes.Replace(payload, []byte(`"layers":2`), []byte(`"layers":0`), 1)), ErrCorrupt, "field layers: "},
		{"bad quantize", reseal(bytes.Replace(payload, []byte(`"quantize":"int8"`), []byte(`"quantize":"int4"`), 1)), ErrCorrupt, "field quantize"},
		{"bad format field", reseal(bytes.Replace(payload, []byte(`"format":"fx-baseline/1"`), []byte(`"format":"x"`), 1)), ErrUnsupported, "field format"},
		{"zero samples", reseal(bytes.Replace(payload, []byte(`"n":3`), []byte(`"n":0`), 1)), ErrCorrupt, "features[0].classes"},
		{"calibration layers", reseal(bytes.Replace(payload, []byte(`"signal":"norm","layers":[`), []byte(`"signal":"norm","layers":[{"n":1,"median":0,"mad":0,"mean_ad":0},`), 1)), ErrCorrupt, "calibration[0].layers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBaseline(tc.data)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.sentinel), "%v wraps %v", err, tc.sentinel)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// ReadBaseline names the file.
	path := filepath.Join(t.TempDir(), "bad.fxbase")
	require.NoError(t, os.WriteFile(path, flip(good, len(good)-20), 0o644))
	_, err := ReadBaseline(path)
	assert.ErrorContains(t, err, path)
	_, err = ReadBaseline(filepath.Join(t.TempDir(), "missing.fxbase"))
	assert.ErrorContains(t, err, "missing.fxbase")
	// Encode refuses an invalid baseline.
	b := testBaseline(t)
	b.Layers = 0
	assert.ErrorContains(t, b.Encode(&bytes.Buffer{}), "field layers")
}

// cut3 splits a .fxbase into its two lines and the payload.
func cut3(data []byte) ([]byte, []byte, []byte) {
	a, rest, _ := bytes.Cut(data, []byte("\n"))
	b, payload, _ := bytes.Cut(rest, []byte("\n"))
	return a, b, payload
}

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 0x01
	return out
}
