package cf

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/modelforensics/fx/configs"
)

func TestSectionYAMLIsTheDefault(t *testing.T) {
	got, err := LoadConfig(NamedYAML{Name: "config.yaml", Data: SectionYAML()})
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), got)
	none, err := LoadConfig()
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), none)
	// configs/default.yaml, with or without its cf section, gives the
	// defaults.
	def, err := LoadConfig(NamedYAML{Name: "configs/default.yaml", Data: configs.DefaultYAML()})
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), def)
	// Every key of the section is documented on the lines above it.
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal(SectionYAML(), &node))
	for i, line := range bytes.Split(SectionYAML(), []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' || bytes.HasPrefix(trimmed, []byte(`"`)) || !bytes.Contains(line, []byte(":")) {
			continue
		}
		prev := bytes.Split(SectionYAML(), []byte("\n"))[i-1]
		assert.True(t, bytes.HasPrefix(bytes.TrimSpace(prev), []byte("#")), "line %d %q has no comment above it", i+1, line)
	}
}

// TestDefaultYAMLHoldsTheSection checks configs/default.yaml's cf section
// against config.yaml: the same text, which loads as DefaultConfig.
func TestDefaultYAMLHoldsTheSection(t *testing.T) {
	def := string(configs.DefaultYAML())
	assert.Contains(t, def, "\n"+strings.TrimSpace(string(SectionYAML()))+"\n")
	c, err := LoadConfig(NamedYAML{Name: "configs/default.yaml", Data: []byte(def)})
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), c)
	_, err = configs.Default()
	require.NoError(t, err, "configs accepts the cf section")
}

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c Config)
		err   string
	}{
		{name: "overrides what it names", yaml: "cf:\n  quantize: fp16\n  baseline:\n    min_samples: 4\n", check: func(t *testing.T, c Config) {
			assert.Equal(t, FP16, c.Quantize)
			assert.Equal(t, 4, c.Baseline.MinSamples)
			assert.Equal(t, 8, c.Baseline.MaxNewTokens, "kept")
			assert.Equal(t, []string{"*"}, c.Values, "kept")
		}},
		{name: "other sections are not cf's business", yaml: "recording:\n  levle: typo\n", check: func(t *testing.T, c Config) {
			assert.Equal(t, DefaultConfig(), c)
		}},
		{name: "unknown key", yaml: "cf:\n  zstd: 3\n", err: "config user.yaml: cf: yaml: unmarshal errors:\n  line 1: field zstd not found"},
		{name: "not yaml", yaml: "cf: [\n", err: "config user.yaml"},
		{name: "quantize", yaml: "cf:\n  quantize: int4\n", err: `cf.quantize: "int4" is not int8 or fp16`},
		{name: "zstd level", yaml: "cf:\n  zstd_level: 30\n", err: "cf.zstd_level: 30 is outside [1, 22]"},
		{name: "min row bytes", yaml: "cf:\n  min_row_bytes: 0\n", err: "cf.min_row_bytes: 0 < 1"},
		{name: "values pattern", yaml: "cf:\n  values: ['blocks.[']\n", err: `cf.values: pattern "blocks.["`},
		{name: "exclude pattern", yaml: "cf:\n  exclude: ['[']\n", err: "cf.exclude"},
		{name: "no signals", yaml: "cf:\n  signals: []\n", err: "cf.signals: empty"},
		{name: "bad signal", yaml: "cf:\n  signals: [entropy]\n", err: `cf.signals: signal "entropy"`},
		{name: "top", yaml: "cf:\n  top: 0\n", err: "cf.top: 0 < 1"},
		{name: "combine", yaml: "cf:\n  combine: sum\n", err: `cf.combine: "sum"`},
		{name: "clip", yaml: "cf:\n  z_clip: 0\n", err: "cf.z_clip"},
		{name: "threshold", yaml: "cf:\n  threshold: -1\n", err: "cf.threshold"},
		{name: "max new tokens", yaml: "cf:\n  baseline: {max_new_tokens: -1}\n", err: "cf.baseline.max_new_tokens: -1 < 0"},
		{name: "min samples", yaml: "cf:\n  baseline: {min_samples: 0}\n", err: "cf.baseline.min_samples: 0 < 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(NamedYAML{Name: "defaults", Data: SectionYAML()}, NamedYAML{Name: "user.yaml", Data: []byte(tc.yaml)})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}
