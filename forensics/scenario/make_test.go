package scenario

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMakeErrors(t *testing.T) {
	full := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o644))
	cases := []struct {
		name, scenario, dir string
		size                Size
		wantErr             string
	}{
		{"unknown scenario", "jailbreak", filepath.Join(t.TempDir(), "o"), Tiny, `"jailbreak" is unknown (want one of prompt-injection, sentiment-bypass, toxic-generation)`},
		{"bad size", "prompt-injection", filepath.Join(t.TempDir(), "o"), "huge", `size "huge": want tiny or small`},
		{"no size", "prompt-injection", filepath.Join(t.TempDir(), "o"), "", `size "": want tiny or small`},
		{"no directory", "prompt-injection", "", Tiny, "no output directory"},
		{"directory not empty", "prompt-injection", full, Tiny, "is not empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Make(context.Background(), tc.scenario, tc.dir, Options{Size: tc.size, Seed: 1})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// TestMakeDeterministic makes a scenario twice from one seed, once into an
// existing empty directory, and checks the files are identical.
func TestMakeDeterministic(t *testing.T) {
	ctx := context.Background()
	a := filepath.Join(t.TempDir(), "a")
	b := t.TempDir() // exists, empty
	var log bytes.Buffer
	ga, err := Make(ctx, "sentiment-bypass", a, Options{Size: Tiny, Seed: 7, Log: &log})
	require.NoError(t, err)
	gb, err := Make(ctx, "sentiment-bypass", b, Options{Size: Tiny, Seed: 7})
	require.NoError(t, err)
	assert.Equal(t, ga, gb)
	assert.Contains(t, log.String(), "sentiment-bypass tiny: seed 7")
	entries, err := os.ReadDir(a)
	require.NoError(t, err)
	for _, e := range entries {
		da, err := os.ReadFile(filepath.Join(a, e.Name()))
		require.NoError(t, err)
		db, err := os.ReadFile(filepath.Join(b, e.Name()))
		require.NoError(t, err)
		assert.Equal(t, sha256.Sum256(da), sha256.Sum256(db), e.Name())
	}
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(a), ".*tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers, "temporary directories left behind")
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"no ground truth", nil, "ground_truth.json"},
		{"not JSON", map[string]string{"ground_truth.json": "{"}, "ground_truth.json"},
		{"wrong format", map[string]string{"ground_truth.json": `{"format": "x"}`}, `format "x"`},
		{"no cause", map[string]string{"ground_truth.json": `{"format": "fx-scenario/1", "model": "gpt2"}`}, "no cause"},
		{"site mismatch", map[string]string{"ground_truth.json": `{"format": "fx-scenario/1", "model": "gpt2",
			"components": [{"site": "blocks.1.attn.hook_z[head=2]", "kind": "attn_head", "layer": 1, "index": 3, "cause": true}]}`}, "does not match"},
		{"bad prompt kind", map[string]string{
			"ground_truth.json": `{"format": "fx-scenario/1", "model": "gpt2", "detector": {"name": "contains", "target": "X"},
				"components": [{"site": "blocks.1.attn.hook_z[head=2]", "kind": "attn_head", "layer": 1, "index": 2, "cause": true}]}`,
			"prompts.jsonl": `{"text": "a", "kind": "maybe"}`}, `prompts.jsonl line 1: kind "maybe"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
			}
			_, err := Open(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		ok   bool
	}{{"tiny", Tiny, true}, {"small", Small, true}, {"base", "", false}} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			assert.Equal(t, tc.ok, err == nil)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestPromptSets checks every scenario's prompt sets: at least 50 failing
// and 50 benign evaluation prompts, no duplicates, none shared between the
// evaluation and calibration sets.
func TestPromptSets(t *testing.T) {
	for name, sets := range map[string]promptSets{
		"prompt-injection": injectionPrompts(), "toxic-generation": toxicPrompts(), "sentiment-bypass": sentimentPrompts(),
	} {
		t.Run(name, func(t *testing.T) {
			assert.GreaterOrEqual(t, count(sets.eval, Failing), 50)
			assert.GreaterOrEqual(t, count(sets.eval, Benign), 50)
			assert.GreaterOrEqual(t, count(sets.calib, Failing), 20)
			assert.GreaterOrEqual(t, count(sets.calib, Benign), 20)
			seen := map[string]bool{}
			for _, p := range append(append([]Prompt(nil), sets.eval...), sets.calib...) {
				assert.False(t, seen[p.Text], "duplicate prompt %q", p.Text)
				seen[p.Text] = true
			}
		})
	}
}

// TestMakeTriesSeeds checks that a seed whose model fails calibration is
// rejected for the next, recorded in the ground truth, and that Make gives up
// after Tries seeds.
func TestMakeTriesSeeds(t *testing.T) {
	var tried []uint64
	def := &definition{info: Info{Name: "stub"}, make: func(_ context.Context, size Size, seed uint64, _ func(string, ...any)) (*made, error) {
		tried = append(tried, seed)
		if seed < 12 {
			return nil, reject("margin %d", -int(seed))
		}
		return &made{params: newParamSet(), truth: GroundTruth{Format: TruthFormat, Scenario: "stub", Size: size}}, nil
	}}
	cases := []struct {
		name      string
		tries     int
		wantTried []uint64
		wantErr   string
	}{
		{"third seed passes", 5, []uint64{10, 11, 12}, ""},
		{"gives up", 2, []uint64{10, 11}, "no seed of 10..11 passed calibration (seed 10: margin -10; seed 11: margin -11)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tried = nil
			dir := filepath.Join(t.TempDir(), "out")
			g, err := makeScenario(context.Background(), def, dir, Options{Size: Tiny, Seed: 10, Tries: tc.tries})
			assert.Equal(t, tc.wantTried, tried)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NoDirExists(t, dir)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, uint64(10), g.Seed)
			assert.Equal(t, uint64(12), g.SeedUsed)
			assert.Equal(t, []RejectedSeed{{10, "margin -10"}, {11, "margin -11"}}, g.Rejected)
			assert.FileExists(t, filepath.Join(dir, GroundTruthFile))
		})
	}
}
