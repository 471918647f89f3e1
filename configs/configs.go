// Package configs holds fx's defaults, configs/default.yaml (embedded and
// documented in place), and loads a user's config file over them.
package configs

import (
	"bytes"
	_ "embed" // default.yaml
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of configs/default.yaml.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is fx's configuration, one section per module.
type Config struct {
	Recording Recording `yaml:"recording"`
	Bundle    Bundle    `yaml:"bundle"`
	// CF and CCA are the sections of forensics/cf and forensics/cca, kept
	// as YAML here and decoded (strictly) by those packages' LoadConfig.
	CF  yaml.Node `yaml:"cf"`
	CCA yaml.Node `yaml:"cca"`
}

// Recording is the recording section: what `fx run --record` keeps.
type Recording struct {
	Level            string   `yaml:"level"`
	Hooks            []string `yaml:"hooks"`
	Exclude          []string `yaml:"exclude"`
	DType            string   `yaml:"dtype"`
	Sketch           Sketch   `yaml:"sketch"`
	CompressionLevel int      `yaml:"compression_level"`
}

// Sketch holds the sketch settings.
type Sketch struct {
	K    int    `yaml:"k"`
	Seed uint64 `yaml:"seed"`
}

// Bundle is the bundle section: reader limits and packing.
type Bundle struct {
	MaxManifestBytes int64 `yaml:"max_manifest_bytes"`
	MaxFileBytes     int64 `yaml:"max_file_bytes"`
	MaxTotalBytes    int64 `yaml:"max_total_bytes"`
	MaxFiles         int   `yaml:"max_files"`
	PackLevel        int   `yaml:"pack_level"`
}

// maxConfigBytes bounds a config file.
const maxConfigBytes = 1 << 20

// Default returns the embedded defaults.
func Default() (*Config, error) {
	c := &Config{}
	if err := decode("configs/default.yaml", defaultYAML, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("configs/default.yaml: %w", err)
	}
	return c, nil
}

// Load returns the defaults overridden by the YAML file at path (keys the
// file omits keep their defaults); an empty path returns the defaults.
func Load(path string) (*Config, error) {
	c, err := Default()
	if err != nil || path == "" {
		return c, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigBytes)
	}
	if err := decode(path, data, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// decode decodes YAML over c, rejecting unknown keys.
func decode(name string, data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", name, err)
	}
	return nil
}

// Validate checks every section's values, naming the key at fault.
func (c *Config) Validate() error {
	r := c.Recording
	switch r.Level {
	case "minimal", "layer", "full":
	default:
		return fmt.Errorf("recording.level: %q is not minimal, layer or full", r.Level)
	}
	if r.DType != "float16" && r.DType != "float32" {
		return fmt.Errorf("recording.dtype: %q is not float16 or float32", r.DType)
	}
	if r.Sketch.K < 1 || r.Sketch.K > 1024 {
		return fmt.Errorf("recording.sketch.k: %d is outside [1, 1024]", r.Sketch.K)
	}
	if r.CompressionLevel < 0 || r.CompressionLevel > 9 {
		return fmt.Errorf("recording.compression_level: %d is outside [0, 9]", r.CompressionLevel)
	}
	b := c.Bundle
	for _, f := range []struct {
		key string
		v   int64
	}{{"bundle.max_manifest_bytes", b.MaxManifestBytes}, {"bundle.max_file_bytes", b.MaxFileBytes},
		{"bundle.max_total_bytes", b.MaxTotalBytes}, {"bundle.max_files", int64(b.MaxFiles)}} {
		if f.v < 1 {
			return fmt.Errorf("%s: %d < 1", f.key, f.v)
		}
	}
	if b.PackLevel < 1 || b.PackLevel > 22 {
		return fmt.Errorf("bundle.pack_level: %d is outside [1, 22]", b.PackLevel)
	}
	return nil
}
