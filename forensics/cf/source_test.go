package cf

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

// modelDir returns the directory of a model of testdata/models.
func modelDir(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

// writeBundle records ids on m (loaded from testdata/models/name) at
// level, as fx run --record does, and returns the opened bundle.
func writeBundle(t testing.TB, m *transformer.Model, name string, ids []int, maxNew int, level string) *bundle.Bundle {
	t.Helper()
	opts := recorder.DefaultOptions()
	opts.Level = level
	r, err := recorder.New(m, opts)
	require.NoError(t, err)
	in := bundle.Input{InputIDs: ids}
	if maxNew > 0 {
		in.Generate = &bundle.Generate{MaxNewTokens: maxNew}
	}
	_, err = r.Run(context.Background(), in)
	require.NoError(t, err)
	rec, err := r.Finish()
	require.NoError(t, err)
	id, err := recorder.Identify(m, name, recorder.DirFiles(m, modelDir(name)))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "incident_"+level)
	require.NoError(t, rec.Write(path, recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend),
		Outcome: bundle.Outcome{Detector: "none"}}))
	b, err := bundle.Open(path, bundle.DefaultLimits())
	require.NoError(t, err)
	return b
}

// tinyBaseline builds a baseline of gpt2-tiny from a few token prompts.
func tinyBaseline(t testing.TB, m *transformer.Model, cfg Config) *Baseline {
	t.Helper()
	id, err := recorder.Identify(m, "gpt2-tiny", recorder.DirFiles(m, modelDir("gpt2-tiny")))
	require.NoError(t, err)
	var prompts [][]int
	for i := range 8 {
		prompts = append(prompts, tokens(6+i, i+3, 512))
	}
	cfg.Baseline.MaxNewTokens, cfg.Baseline.MinSamples = 4, 4
	base, err := BuildBaseline(context.Background(), m, prompts, BaselineOptions{Config: cfg, Model: id, Sketch: testSketch})
	require.NoError(t, err)
	return base
}

func TestBundleRunAtEveryLevel(t *testing.T) {
	m := testModel(t, "gpt2-tiny")
	cfg := DefaultConfig()
	base := tinyBaseline(t, m, cfg)
	require.NoError(t, base.Validate())
	ids := tokens(12, 42, 512)
	ctx := context.Background()

	full := writeBundle(t, m, "gpt2-tiny", ids, 5, bundle.LevelFull)
	run, src, err := BundleRun(ctx, full, nil, cfg.Values)
	require.NoError(t, err)
	assert.Empty(t, src.Replayed)
	want, err := Analyze(run, base, cfg)
	require.NoError(t, err)
	assert.Equal(t, 2, want.NumLayers)
	assert.Equal(t, 16, want.NumPositions)
	assert.Len(t, want.Ranking, 2)
	assert.Positive(t, want.Features.BySignal[Compression])
	assert.Positive(t, want.Features.BySignal[Norm])
	assert.Positive(t, want.Features.BySignal[Projection])

	for _, level := range []string{bundle.LevelLayer, bundle.LevelMinimal} {
		t.Run(level, func(t *testing.T) {
			b := writeBundle(t, m, "gpt2-tiny", ids, 5, level)
			_, _, err := BundleRun(ctx, b, nil, cfg.Values)
			require.ErrorIs(t, err, ErrNeedModel)
			assert.Contains(t, err.Error(), "level "+level)
			// Replayed on the model, the run measures as the full bundle's:
			// the replay is checked bit for bit, and values are rounded to
			// float16 as the full bundle stores them.
			run, src, err := BundleRun(ctx, b, m, cfg.Values)
			require.NoError(t, err)
			assert.NotEmpty(t, src.Replayed)
			assert.Positive(t, src.Verified)
			got, err := Analyze(run, base, cfg)
			require.NoError(t, err)
			assert.Equal(t, want.Ranking, got.Ranking)
			assert.Equal(t, want.Cells, got.Cells)
			assert.Equal(t, want.Top, got.Top)
		})
	}

	// A layer bundle alone: the residual stream it stores, compressed as
	// block writes (delta_attn, delta_mlp).
	layer := writeBundle(t, m, "gpt2-tiny", ids, 5, bundle.LevelLayer)
	run, src, err = BundleRun(ctx, layer, nil, ResidualHooks())
	require.NoError(t, err)
	assert.Equal(t, 6, src.Stored)
	f, err := Extract(run, nil, 32)
	require.NoError(t, err)
	assert.Contains(t, seriesByKey(f), "blocks.1.delta_mlp/rms")

	// A minimal bundle scored on its sketches alone.
	minimal := writeBundle(t, m, "gpt2-tiny", ids, 5, bundle.LevelMinimal)
	run, _, err = BundleRun(ctx, minimal, nil, nil)
	require.NoError(t, err)
	rep, err := Analyze(run, base, cfg)
	require.NoError(t, err)
	assert.Zero(t, rep.Features.BySignal[Compression])
	assert.Contains(t, rep.Notes[0], "signal compression: no feature to score")
	assert.Contains(t, rep.Text(), "RANK")
}

func TestBundleRunReplayMismatch(t *testing.T) {
	m := testModel(t, "gpt2-tiny")
	b := writeBundle(t, m, "gpt2-tiny", tokens(8, 5, 512), 3, bundle.LevelMinimal)
	// The bf16 copy of the model computes other bits.
	other := testModel(t, "gpt2-tiny-bf16")
	_, _, err := BundleRun(context.Background(), b, other, []string{"*"})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrReplayMismatch), "%v", err)
	assert.Contains(t, err.Error(), "recorded")
	bert := testModel(t, "bert-tiny-cls")
	_, _, err = BundleRun(context.Background(), b, bert, []string{"*"})
	assert.ErrorContains(t, err, "recorded on a gpt2 model, replay model is bert")
}

func TestAnalyzeErrors(t *testing.T) {
	m := testModel(t, "gpt2-tiny")
	cfg := DefaultConfig()
	base := tinyBaseline(t, m, cfg)
	run := recordRun(t, m, tokens(6, 1, 512), 2, cfg.Values)
	cases := []struct {
		name   string
		mutate func(r *Run, b *Baseline, c *Config)
		want   string
	}{
		{"model type", func(r *Run, b *Baseline, c *Config) { b.Model.Type = "bert" }, "the baseline is of a bert model"},
		{"sketch", func(r *Run, b *Baseline, c *Config) { b.Sketch.Seed = 9 }, "seed=9"},
		{"layers", func(r *Run, b *Baseline, c *Config) { b.Layers = 3 }, "the run has 2 blocks, the baseline's model 3"},
		{"config", func(r *Run, b *Baseline, c *Config) { c.Top = 0 }, "cf.top"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, c := *base, cfg
			tc.mutate(&run, &b, &c)
			_, err := Analyze(run, &b, c)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	// Other compression settings than the baseline's are noted, the
	// baseline's used.
	c := cfg
	c.Quantize = FP16
	rep, err := Analyze(run, base, c)
	require.NoError(t, err)
	assert.Contains(t, rep.Notes[0], "compression settings are the baseline's (quantize int8")
}
