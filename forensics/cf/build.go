package cf

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
)

// BaselineOptions configure BuildBaseline.
type BaselineOptions struct {
	// Config holds the compression settings, the values patterns and the
	// baseline settings (max new tokens, min samples).
	Config Config
	// Model is the model's identity (see recorder.Identify).
	Model bundle.Model
	// Sketch holds the sketch settings of the recordings the baseline will
	// score (the recording section's k and seed).
	Sketch bundle.Sketch
	// FxVersion is stamped into the baseline.
	FxVersion string
	// Log, when not nil, receives a progress line per prompt.
	Log io.Writer
}

// BuildBaseline runs every prompt (token ids) through m as an incident
// would be recorded (GPT-2 generating Config.Baseline.MaxNewTokens tokens
// greedily) and summarises the features of the runs into a baseline.
func BuildBaseline(ctx context.Context, m *transformer.Model, prompts [][]int, o BaselineOptions) (*Baseline, error) {
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("cf: baseline: no prompts")
	}
	if o.Model.Type == "" {
		o.Model.Type = m.Config.ModelType
	}
	if o.Sketch.K == 0 {
		o.Sketch = bundle.Sketch{K: 8, Seed: 1, Hash: bundle.HashXXH64}
	}
	c, err := NewCompressor(cfg.Quantize, cfg.ZstdLevel, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	acc := NewAccumulator(o.Model, m.Config.Layers, o.Sketch, cfg)
	opts := RecordOptions(m, cfg.Values, o.Sketch)
	for i, ids := range prompts {
		start := time.Now()
		run, _, err := RecordPrompt(ctx, m, ids, cfg.Baseline.MaxNewTokens, opts, cfg.Values)
		if err != nil {
			return nil, fmt.Errorf("cf: baseline prompt %d: %w", i+1, err)
		}
		f, err := extract(run, c, cfg.MinRowBytes, cfg.Exclude)
		if err != nil {
			return nil, fmt.Errorf("cf: baseline prompt %d: %w", i+1, err)
		}
		if err := acc.Add(f); err != nil {
			return nil, err
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "baseline: prompt %d/%d, %d positions, %s\n", i+1, len(prompts), f.Positions, time.Since(start).Round(time.Millisecond))
		}
	}
	b, err := acc.Baseline(time.Now())
	if err != nil {
		return nil, err
	}
	b.FxVersion = o.FxVersion
	return b, nil
}
