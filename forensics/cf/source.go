package cf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

// ErrNeedModel is wrapped by BundleRun's error when the bundle does not
// store an activation CF needs and no model was given to replay it.
var ErrNeedModel = errors.New("the bundle does not store the activations CF needs")

// ErrReplayMismatch is wrapped by BundleRun's error when replaying a
// bundle's run does not reproduce its recorded sketches bit for bit.
var ErrReplayMismatch = errors.New("the replay does not reproduce the recording")

// Source says where a run's activations came from.
type Source struct {
	// Replayed lists the hooks whose activations were replayed on the
	// model (empty when the bundle stores everything CF needs).
	Replayed []string `json:"replayed,omitempty"`
	// Stored lists the needed hooks the bundle stores.
	Stored int `json:"stored"`
	// Verified counts the hook × position sketch hashes of the replay
	// checked against the recording.
	Verified int `json:"verified,omitempty"`
}

// NeededHooks returns the recorded hooks whose values CF needs: those the
// values patterns name.
func NeededHooks(m *bundle.Manifest, values []string) []string {
	var out []string
	for _, h := range m.Record.Hooks {
		if matchAny(values, h.Name) {
			out = append(out, h.Name)
		}
	}
	return out
}

// BundleRun reads a verified bundle's run for CF: every recorded hook's
// sketches and the activations the values patterns name. Activations the
// bundle does not store (a minimal bundle stores none, a layer bundle only
// the residual stream) are replayed on m, which must then be the recorded
// model: the replay must reproduce every recorded sketch hash bit for bit
// (ErrReplayMismatch), so that CF measures the recorded incident. With m
// nil, missing activations are an error wrapping ErrNeedModel.
func BundleRun(ctx context.Context, b *bundle.Bundle, m *transformer.Model, values []string) (Run, Source, error) {
	man := b.Manifest
	recs, err := b.Activations()
	if err != nil {
		return Run{}, Source{}, fmt.Errorf("cf: %w", err)
	}
	run := Run{ModelType: man.Model.Type, Record: man.Record, Hooks: recs}
	run.Record.Hooks = slices.Clone(man.Record.Hooks)
	// Only the needed activations are measured, whatever else the bundle
	// stores, so that a layer and a full bundle of one run score alike.
	for i, h := range run.Record.Hooks {
		if h.Stored && !matchAny(values, h.Name) {
			run.Hooks[i].Raw = nil
			run.Record.Hooks[i].Stored = false
		}
	}
	var src Source
	var missing []string
	for _, name := range NeededHooks(man, values) {
		info, _ := man.Hook(name)
		if info.Stored {
			src.Stored++
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return run, src, nil
	}
	if m == nil {
		return Run{}, Source{}, fmt.Errorf("cf: bundle %s (level %s): %w: %s; give the recorded model to replay them",
			b.Dir, man.Record.Level, ErrNeedModel, summarizeHooks(missing))
	}
	replayed, verified, err := replayHooks(ctx, b, recs, m, missing)
	if err != nil {
		return Run{}, Source{}, err
	}
	for i, h := range run.Record.Hooks {
		if raw, ok := replayed[h.Name]; ok {
			run.Hooks[i].Raw = raw
			run.Record.Hooks[i].Stored = true
		}
	}
	src.Replayed, src.Verified = missing, verified
	return run, src, nil
}

// summarizeHooks lists hooks for an error message, eliding a long list.
func summarizeHooks(hooks []string) string {
	if len(hooks) <= 4 {
		return strings.Join(hooks, ", ")
	}
	return fmt.Sprintf("%s, … %s (%d hooks)", strings.Join(hooks[:3], ", "), hooks[len(hooks)-1], len(hooks))
}

// replayHooks re-runs the bundle's input on m with the recorded settings,
// storing the wanted hooks in float32, checks every recorded sketch hash
// against the replay's, and returns the wanted activations.
func replayHooks(ctx context.Context, b *bundle.Bundle, recorded []bundle.HookRecord, m *transformer.Model, want []string) (map[string]*bundle.Raw, int, error) {
	man := b.Manifest
	if m.Config.ModelType != man.Model.Type {
		return nil, 0, fmt.Errorf("cf: bundle %s: recorded on a %s model, replay model is %s", b.Dir, man.Model.Type, m.Config.ModelType)
	}
	opts := recorder.OptionsOf(man)
	opts.DType = bundle.Float32
	opts.Level = bundle.LevelLayer
	for _, h := range want {
		if !recorder.IsResidual(h) {
			opts.Level = bundle.LevelFull
		}
	}
	r, err := recorder.New(m, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("cf: replay %s: %w", b.Dir, err)
	}
	if _, err := r.Run(ctx, b.Input); err != nil {
		return nil, 0, fmt.Errorf("cf: replay %s: %w", b.Dir, err)
	}
	rec, err := r.Finish()
	if err != nil {
		return nil, 0, fmt.Errorf("cf: replay %s: %w", b.Dir, err)
	}
	byName := map[string]*bundle.HookRecord{}
	for i := range rec.Hooks {
		byName[rec.Hooks[i].Hook] = &rec.Hooks[i]
	}
	verified := 0
	for _, a := range recorded {
		got := byName[a.Hook]
		if got == nil || len(got.Hash) != len(a.Hash) {
			return nil, 0, fmt.Errorf("cf: bundle %s: %w: hook %s was not replayed with %d positions", b.Dir, ErrReplayMismatch, a.Hook, len(a.Hash))
		}
		for p, h := range a.Hash {
			if got.Hash[p] != h {
				return nil, 0, fmt.Errorf("cf: bundle %s: %w: hook %s position %d: xxh64 %016x recorded, %016x replayed (another model or backend? see fx replay)",
					b.Dir, ErrReplayMismatch, a.Hook, p, h, got.Hash[p])
			}
			verified++
		}
	}
	out := map[string]*bundle.Raw{}
	for _, h := range want {
		got := byName[h]
		if got == nil || got.Raw == nil {
			return nil, 0, fmt.Errorf("cf: replay %s: hook %s was not stored", b.Dir, h)
		}
		out[h] = got.Raw
	}
	return out, verified, nil
}

// RecordOptions returns the recorder options CF records a prompt with for
// a baseline or an evaluation: every hook of the blocks but the per-head
// attention results (CF scores the blocks; leaving out unembed.hook_out
// spares generation the logits of every prompt position, and sketches do
// not depend on which other hooks are recorded), sketch k and seed as
// given, and the activations the values patterns name stored in float32.
func RecordOptions(m *transformer.Model, values []string, sketch bundle.Sketch) recorder.Options {
	o := recorder.DefaultOptions()
	o.Hooks = []string{"blocks.*"}
	o.DType = bundle.Float32
	o.SketchK, o.SketchSeed = sketch.K, sketch.Seed
	o.Level = bundle.LevelLayer
	for _, h := range m.HookNames() {
		if matchAny(values, h) && !recorder.IsResidual(h) && !matchAny(o.Exclude, h) {
			o.Level = bundle.LevelFull
		}
	}
	return o
}

// RecordPrompt runs ids through m with a recorder of the given options,
// generating maxNew tokens greedily on a GPT-2 (a single forward pass on
// BERT, or with maxNew 0), and returns the run and its input with outputs.
// Only the hooks the values patterns name keep their activations.
func RecordPrompt(ctx context.Context, m *transformer.Model, ids []int, maxNew int, opts recorder.Options, values []string) (Run, bundle.Input, error) {
	in := bundle.Input{InputIDs: ids}
	if m.GPT2 != nil && maxNew > 0 {
		in.Generate = &bundle.Generate{MaxNewTokens: maxNew}
	}
	r, err := recorder.New(m, opts)
	if err != nil {
		return Run{}, in, fmt.Errorf("cf: %w", err)
	}
	out, err := r.Run(ctx, in)
	if err != nil {
		return Run{}, in, fmt.Errorf("cf: %w", err)
	}
	rec, err := r.Finish()
	if err != nil {
		return Run{}, in, fmt.Errorf("cf: %w", err)
	}
	for i := range rec.Hooks {
		if rec.Hooks[i].Raw != nil && !matchAny(values, rec.Hooks[i].Hook) {
			rec.Hooks[i].Raw = nil
			rec.Record.Hooks[i].Stored = false
		}
	}
	return Run{ModelType: m.Config.ModelType, Record: rec.Record, Hooks: rec.Hooks}, out, nil
}
