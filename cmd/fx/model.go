package main

import (
	"errors"
	"fmt"

	"github.com/modelforensics/fx"
	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/device"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
	"github.com/modelforensics/fx/weights"
)

// backend returns the backend the --device flag names.
func backend(name string) (engine.Backend, error) {
	b, err := device.Open(name)
	if err != nil {
		return nil, usagef("--device %s: %v", name, err)
	}
	return b, nil
}

// loadModel loads the model a command names, or the embedded default when
// name is empty.
func loadModel(name string, b engine.Backend) (*transformer.Model, error) {
	if name != "" {
		m, err := transformer.Load(name, b)
		if err != nil {
			return nil, usageError{err}
		}
		return m, nil
	}
	cfgJSON, st, err := fx.DefaultModel()
	if err != nil {
		return nil, err
	}
	cfg, err := weights.ParseConfig(fx.DefaultModelName+"/config.json", cfgJSON)
	if err != nil {
		return nil, err
	}
	file, err := weights.Parse(fx.DefaultModelName+"/model.safetensors", st)
	if err != nil {
		return nil, err
	}
	set, err := weights.NewSet(file)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.DefaultGPT2()
	if err != nil {
		return nil, err
	}
	return transformer.New(fx.DefaultModelName, cfg, set, tok, b)
}

// inputError marks errors about the user's input as usage errors.
func inputError(err error) error {
	if errors.Is(err, transformer.ErrBadInput) || errors.Is(err, transformer.ErrUnknownHook) {
		return usageError{err}
	}
	return err
}

// oneModelArg returns the single optional positional MODEL argument.
func oneModelArg(args []string, required bool) (string, error) {
	switch {
	case len(args) > 1:
		return "", usagef("want one MODEL argument, got %d: %q", len(args), args)
	case len(args) == 0 && required:
		return "", usagef("missing MODEL (a directory with config.json and model.safetensors, or a hub name)")
	case len(args) == 0:
		return "", nil
	}
	return args[0], nil
}

// fmtProb formats a probability for the terminal.
func fmtProb(p float64) string { return fmt.Sprintf("%.4f", p) }
