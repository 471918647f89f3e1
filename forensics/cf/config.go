package cf

import (
	"bytes"
	_ "embed" // config.yaml
	"fmt"
	"path"

	"github.com/modelforensics/fx/configs"
)

// Config holds CF's settings: the cf section of configs/default.yaml.
type Config struct {
	// Quantize is how a row is quantised before compression: Int8 (per-row
	// scale) or FP16.
	Quantize string `yaml:"quantize"`
	// ZstdLevel is the fixed zstd level (1 to 22).
	ZstdLevel int `yaml:"zstd_level"`
	// MinRowBytes: rows of fewer quantised bytes get no compression ratio
	// (a frame header would dominate it).
	MinRowBytes int `yaml:"min_row_bytes"`
	// Values are the hooks whose activations CF needs; a minimal bundle's
	// run is replayed to get them, and a layer or full bundle must store
	// them.
	Values []string `yaml:"values"`
	// Exclude are hooks (names or globs) whose features are measured but
	// not scored.
	Exclude []string `yaml:"exclude"`
	// Signals are the signals combined into the anomaly scores.
	Signals []string `yaml:"signals"`
	// Top is how many of a layer's largest |z| at a position are averaged
	// into its score there.
	Top int `yaml:"top"`
	// Combine is how the signals are combined: CombineGeometric or
	// CombinePooled.
	Combine string `yaml:"combine"`
	// ZClip bounds each |z| before it is combined.
	ZClip float64 `yaml:"z_clip"`
	// Threshold flags a layer (or position) whose score reaches it.
	Threshold float64 `yaml:"threshold"`
	// Baseline holds the settings of fx baseline.
	Baseline BaselineConfig `yaml:"baseline"`
}

// BaselineConfig holds the settings of a baseline corpus run.
type BaselineConfig struct {
	// MaxNewTokens is how many tokens each GPT-2 prompt generates
	// (greedy), as an incident's run would.
	MaxNewTokens int `yaml:"max_new_tokens"`
	// MinSamples is the fewest samples a position class needs.
	MinSamples int `yaml:"min_samples"`
}

// SectionYAML returns the cf section as configs/default.yaml documents it
// (forensics/cf/config.yaml): DefaultConfig's values, each key explained.
func SectionYAML() []byte { return bytes.Clone(sectionYAML) }

//go:embed config.yaml
var sectionYAML []byte

// DefaultConfig returns the defaults of configs/default.yaml's cf section.
func DefaultConfig() Config {
	return Config{
		Quantize:    Int8,
		ZstdLevel:   3,
		MinRowBytes: 32,
		Values:      []string{"*"},
		Exclude: []string{"blocks.*.hook_resid_pre", "blocks.*.hook_resid_mid", "blocks.*.hook_resid_post",
			"blocks.*.ln1.hook_scale", "blocks.*.ln2.hook_scale"},
		Signals:   []string{string(Compression), string(Norm), string(Projection)},
		Top:       3,
		Combine:   CombineCalibrated,
		ZClip:     1000,
		Threshold: 10,
		Baseline:  BaselineConfig{MaxNewTokens: 8, MinSamples: 16},
	}
}

// Validate checks the settings, naming the key at fault.
func (c *Config) Validate() error {
	if c.Quantize != Int8 && c.Quantize != FP16 {
		return fmt.Errorf("cf.quantize: %q is not %s or %s", c.Quantize, Int8, FP16)
	}
	if c.ZstdLevel < 1 || c.ZstdLevel > 22 {
		return fmt.Errorf("cf.zstd_level: %d is outside [1, 22]", c.ZstdLevel)
	}
	if c.MinRowBytes < 1 {
		return fmt.Errorf("cf.min_row_bytes: %d < 1", c.MinRowBytes)
	}
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"cf.values", c.Values}, {"cf.exclude", c.Exclude}} {
		for _, p := range list.patterns {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("%s: pattern %q: %w", list.key, p, err)
			}
		}
	}
	if len(c.Signals) == 0 {
		return fmt.Errorf("cf.signals: empty (want some of compression, norm, projection)")
	}
	for _, s := range c.Signals {
		if _, err := ParseSignal(s); err != nil {
			return fmt.Errorf("cf.signals: %w", err)
		}
	}
	if c.Top < 1 {
		return fmt.Errorf("cf.top: %d < 1", c.Top)
	}
	if c.Combine != CombineCalibrated && c.Combine != CombineGeometric && c.Combine != CombinePooled {
		return fmt.Errorf("cf.combine: %q is not %s, %s or %s", c.Combine, CombineCalibrated, CombineGeometric, CombinePooled)
	}
	if !(c.ZClip > 0) {
		return fmt.Errorf("cf.z_clip: %g is not positive", c.ZClip)
	}
	if !(c.Threshold > 0) {
		return fmt.Errorf("cf.threshold: %g is not positive", c.Threshold)
	}
	if c.Baseline.MaxNewTokens < 0 {
		return fmt.Errorf("cf.baseline.max_new_tokens: %d < 0", c.Baseline.MaxNewTokens)
	}
	if c.Baseline.MinSamples < 1 {
		return fmt.Errorf("cf.baseline.min_samples: %d < 1", c.Baseline.MinSamples)
	}
	return nil
}

// SignalList returns the configured signals, parsed.
func (c *Config) SignalList() ([]Signal, error) {
	var out []Signal
	for _, s := range c.Signals {
		sig, err := ParseSignal(s)
		if err != nil {
			return nil, fmt.Errorf("cf.signals: %w", err)
		}
		out = append(out, sig)
	}
	return out, nil
}

// LoadConfig returns the defaults overridden by the cf section of each
// YAML document in order (configs/default.yaml's text, then a user's
// config file; nil or empty documents are skipped, as are documents with
// no cf section). Unknown keys inside the cf section are errors naming
// the document; other sections are left to their own modules.
func LoadConfig(docs ...NamedYAML) (Config, error) {
	c := DefaultConfig()
	if err := configs.DecodeSection("cf", &c, docs...); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// NamedYAML is a YAML document and the name its errors carry.
type NamedYAML = configs.NamedYAML
