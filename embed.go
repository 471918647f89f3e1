// Package fx holds the files embedded in the fx binary: the default model
// that `fx run` uses when no model is named.
package fx

import "embed"

// DefaultModelName names the embedded default model.
const DefaultModelName = "embedded:gpt2-default"

// defaultModel is a tiny random GPT-2 with the real GPT-2 vocabulary
// (testdata/models/gpt2-default, made by testdata/gen/make_models.py).
//
//go:embed testdata/models/gpt2-default/config.json testdata/models/gpt2-default/model.safetensors
var defaultModel embed.FS

// DefaultModel returns the embedded default model's config.json and
// model.safetensors.
func DefaultModel() (config, safetensors []byte, err error) {
	const dir = "testdata/models/gpt2-default/"
	if config, err = defaultModel.ReadFile(dir + "config.json"); err != nil {
		return nil, nil, err
	}
	if safetensors, err = defaultModel.ReadFile(dir + "model.safetensors"); err != nil {
		return nil, nil, err
	}
	return config, safetensors, nil
}
