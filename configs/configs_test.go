package configs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefault(t *testing.T) {
	c, err := Default()
	require.NoError(t, err)
	assert.Equal(t, Recording{Level: "layer", Hooks: []string{"*"}, Exclude: []string{"blocks.*.attn.hook_result"},
		DType: "float16", Sketch: Sketch{K: 8, Seed: 1}, CompressionLevel: 1}, c.Recording)
	assert.Equal(t, Bundle{MaxManifestBytes: 16 << 20, MaxFileBytes: 4 << 30, MaxTotalBytes: 16 << 30, MaxFiles: 10000, PackLevel: 3}, c.Bundle)
	same, err := Load("")
	require.NoError(t, err)
	assert.Equal(t, c, same)
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		check   func(t *testing.T, c *Config)
		problem string
	}{
		{name: "overrides only what it names", yaml: "recording:\n  level: full\n  sketch:\n    k: 16\n", check: func(t *testing.T, c *Config) {
			assert.Equal(t, "full", c.Recording.Level)
			assert.Equal(t, 16, c.Recording.Sketch.K)
			assert.Equal(t, uint64(1), c.Recording.Sketch.Seed, "kept from the defaults")
			assert.Equal(t, "float16", c.Recording.DType)
			assert.Equal(t, []string{"blocks.*.attn.hook_result"}, c.Recording.Exclude)
		}},
		{name: "replaces lists", yaml: "recording:\n  exclude: []\n  hooks: [\"blocks.*.hook_resid_post\"]\n", check: func(t *testing.T, c *Config) {
			assert.Empty(t, c.Recording.Exclude)
			assert.Equal(t, []string{"blocks.*.hook_resid_post"}, c.Recording.Hooks)
		}},
		{name: "empty file", yaml: "", check: func(t *testing.T, c *Config) { assert.Equal(t, "layer", c.Recording.Level) }},
		{name: "unknown key", yaml: "recording:\n  levle: full\n", problem: "line 2: field levle not found"},
		{name: "unknown section", yaml: "recorder: {}\n", problem: "field recorder not found"},
		{name: "bad level", yaml: "recording:\n  level: most\n", problem: `recording.level: "most" is not minimal, layer or full`},
		{name: "bad dtype", yaml: "recording:\n  dtype: bf16\n", problem: "recording.dtype"},
		{name: "bad k", yaml: "recording:\n  sketch: {k: 0}\n", problem: "recording.sketch.k: 0"},
		{name: "bad compression", yaml: "recording:\n  compression_level: 10\n", problem: "recording.compression_level: 10"},
		{name: "bad limit", yaml: "bundle:\n  max_files: 0\n", problem: "bundle.max_files: 0 < 1"},
		{name: "bad pack level", yaml: "bundle:\n  pack_level: 30\n", problem: "bundle.pack_level: 30"},
		{name: "wrong type", yaml: "recording:\n  sketch: {k: many}\n", problem: "cannot unmarshal"},
		{name: "not yaml", yaml: "recording: [\n", problem: "config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "fx.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o644))
			c, err := Load(p)
			if tc.problem != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.problem)
				assert.Contains(t, err.Error(), p, "the error names the file")
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorContains(t, err, "missing.yaml")
}

func TestDefaultYAMLIsDocumented(t *testing.T) {
	// Every key of the defaults has a comment on the lines above it or on
	// its own line.
	lines := strings.Split(string(DefaultYAML()), "\n")
	key := regexp.MustCompile(`^\s*[a-z_]+:`)
	for i, line := range lines {
		if !key.MatchString(line) {
			continue
		}
		documented := strings.Contains(line, " #") || (i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#"))
		assert.True(t, documented, "line %d %q has no comment", i+1, line)
	}
}
