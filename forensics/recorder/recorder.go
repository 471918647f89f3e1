// Package recorder records an incident as it happens: it rides on the
// model's hook API, reads every recorded activation in place (no copy on a
// host backend; on a device backend that offers engine.RowSketcher and
// engine.HostCopier, the sketches are computed on the device and copied,
// with what the level stores, asynchronously) and keeps, per hook and
// position, a sketch (count, mean, L2 norm, min, max, a seeded random
// projection to k dimensions, and the XXH64 of the exact float32 bytes)
// and, by level, the activation itself. During generation it also
// sketches the KV cache step by step, and it logs the external calls a
// harness makes. A Recording is written as an fx-bundle/1 (see
// forensics/bundle).
package recorder

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
)

// Options are the recording settings (the recording section of
// configs/default.yaml).
type Options struct {
	// Level is bundle.LevelMinimal, LevelLayer or LevelFull.
	Level string
	// Hooks are hook names or globs to record; empty means every hook.
	Hooks []string
	// Exclude are hook names or globs not to record.
	Exclude []string
	// DType is the storage dtype of activations: bundle.Float16 or Float32.
	DType string
	// SketchK is the dimension of the random projection.
	SketchK int
	// SketchSeed seeds the projection.
	SketchSeed uint64
	// CompressionLevel is the deflate level of the .npz entries, 0 to 9.
	CompressionLevel int
}

// DefaultOptions returns the settings of configs/default.yaml: level
// layer, every hook but the per-head attention results, float16, k = 8.
func DefaultOptions() Options {
	return Options{
		Level:            bundle.LevelLayer,
		Hooks:            []string{"*"},
		Exclude:          []string{"blocks.*.attn.hook_result"},
		DType:            bundle.Float16,
		SketchK:          8,
		SketchSeed:       1,
		CompressionLevel: 1,
	}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch o.Level {
	case bundle.LevelMinimal, bundle.LevelLayer, bundle.LevelFull:
	default:
		return fmt.Errorf("recorder: level %q is not minimal, layer or full", o.Level)
	}
	if o.DType != bundle.Float16 && o.DType != bundle.Float32 {
		return fmt.Errorf("recorder: dtype %q is not float16 or float32", o.DType)
	}
	if o.SketchK < 1 || o.SketchK > 1024 {
		return fmt.Errorf("recorder: sketch k %d is outside [1, 1024]", o.SketchK)
	}
	if o.CompressionLevel < 0 || o.CompressionLevel > 9 {
		return fmt.Errorf("recorder: compression level %d is outside [0, 9]", o.CompressionLevel)
	}
	for _, p := range append(slices.Clone(o.Hooks), o.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("recorder: hook pattern %q: %w", p, err)
		}
	}
	return nil
}

// OptionsOf returns the options a bundle was recorded with, recording
// exactly its hooks, so that a replay sketches and stores the same things.
func OptionsOf(m *bundle.Manifest) Options {
	rec := m.Record
	o := Options{Level: rec.Level, DType: rec.DType, SketchK: rec.Sketch.K, SketchSeed: rec.Sketch.Seed,
		CompressionLevel: rec.CompressionLevel}
	for _, h := range rec.Hooks {
		o.Hooks = append(o.Hooks, h.Name)
	}
	return o
}

// ErrState is wrapped by errors about using a Recorder out of order: a
// second run, activations that do not follow on from the previous ones.
var ErrState = errors.New("recorder")

// Recorder records one run of a model. Build it with New, run the model
// with Run, then call Finish.
// A harness logs its external calls with Call. A Recorder is not safe for
// concurrent use, except Call.
type Recorder struct {
	m      *transformer.Model
	opts   Options
	names  []string // recorded hooks, forward order
	tracks map[string]*track
	proj   *projector
	kv     *kvSketcher
	calls  *CallLog
	causal bool
	acc    sketchAcc

	// Hook calls whose results are on their way from a device backend
	// (async.go), recorded in order by drain.
	pending      []pendingHook
	pendingBytes int
	pendingErr   error

	hookTime time.Duration
	runTime  time.Duration
	ran      bool
	input    bundle.Input
	steps    []transformer.Step
}

// New returns a recorder for m with the given options. Hook patterns that
// match no hook point are errors.
func New(m *transformer.Model, opts Options) (*Recorder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	patterns := opts.Hooks
	if len(patterns) == 0 {
		patterns = []string{"*"}
	}
	for _, p := range patterns {
		names, err := m.MatchHooks(p)
		if err != nil {
			return nil, fmt.Errorf("recorder: %w", err)
		}
		for _, n := range names {
			want[n] = true
		}
	}
	r := &Recorder{m: m, opts: opts, tracks: map[string]*track{}, proj: newProjector(opts.SketchK, opts.SketchSeed),
		calls: NewCallLog(), causal: m.GPT2 != nil}
	for _, n := range m.HookNames() {
		if !want[n] || matchAny(opts.Exclude, n) {
			continue
		}
		r.names = append(r.names, n)
		r.tracks[n] = newTrack(n, r.stores(n), opts.DType)
	}
	if len(r.names) == 0 {
		return nil, fmt.Errorf("recorder: hooks %q minus %q leave nothing to record", opts.Hooks, opts.Exclude)
	}
	if m.GPT2 != nil {
		r.kv = newKVSketcher(m.Config.Layers)
	}
	return r, nil
}

// stores reports whether the level keeps hook's activation itself.
func (r *Recorder) stores(hook string) bool {
	switch r.opts.Level {
	case bundle.LevelFull:
		return true
	case bundle.LevelLayer:
		return IsResidual(hook)
	}
	return false
}

// IsResidual reports whether hook is a point of the residual stream of a
// block: blocks.N.hook_resid_pre, _mid or _post.
func IsResidual(hook string) bool {
	if !strings.HasPrefix(hook, "blocks.") {
		return false
	}
	return strings.HasSuffix(hook, ".hook_resid_pre") || strings.HasSuffix(hook, ".hook_resid_mid") ||
		strings.HasSuffix(hook, ".hook_resid_post")
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// HookNames returns the recorded hooks in forward order.
func (r *Recorder) HookNames() []string { return slices.Clone(r.names) }

// Hooks returns the recorder's hooks: one per recorded hook point, and the
// KV sketcher's on every block's hook_k and hook_v. Register them after
// any hooks that change activations (interventions), so that the recorder
// sees what flows on.
func (r *Recorder) Hooks() []transformer.HookSpec {
	var specs []transformer.HookSpec
	for _, n := range r.m.HookNames() {
		t := r.tracks[n]
		layer, isK := -1, false
		if r.kv != nil {
			layer, isK = kvHook(n)
		}
		if t == nil && layer < 0 {
			continue
		}
		specs = append(specs, transformer.Hook(n, r.observe(t, layer, isK)))
	}
	return specs
}

// kvHook returns the block of a blocks.N.attn.hook_k or hook_v name, and
// whether it is the keys; -1 for other hooks.
func kvHook(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blocks.")
	if !ok {
		return -1, false
	}
	num, tail, _ := strings.Cut(rest, ".")
	if tail != "attn.hook_k" && tail != "attn.hook_v" {
		return -1, false
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return -1, false
	}
	return n, tail == "attn.hook_k"
}

// observe returns the hook that sketches (and stores) an activation in
// place and feeds the KV sketcher.
func (r *Recorder) observe(t *track, layer int, isK bool) transformer.HookFunc {
	return func(a *engine.Tensor, h *transformer.HookCtx) error {
		start := time.Now()
		defer func() { r.hookTime += time.Since(start) }()
		shape := a.Shape()
		if len(shape) < 2 || shape[0] != 1 {
			return fmt.Errorf("%w: %s has shape %v; a recording holds one sequence (batch 1)", ErrState, h.Name, shape)
		}
		if db, ok := h.Backend.(deviceBackend); ok {
			r.observeDevice(db, t, layer, isK, a, h)
			return nil
		}
		if err := r.drain(); err != nil { // keep the order, should the backend change
			return err
		}
		data := h.Backend.ToHost(a) // the tensor's own memory on a host backend
		if t != nil {
			if err := t.add(a, data, h.Backend, h.Offset, r.causal, r.proj, &r.acc); err != nil {
				return err
			}
		}
		if layer >= 0 {
			if err := r.kv.add(layer, isK, data, h.Offset, shape[1]); err != nil {
				return err
			}
		}
		return nil
	}
}

// Call makes an external call through the recorder's log (see CallLog).
func (r *Recorder) Call(ctx context.Context, name string, request []byte, do CallFunc) ([]byte, error) {
	return r.calls.Call(ctx, name, request, do)
}

// Run runs the model on in with the recorder's hooks registered after
// extra (interventions): Generate when in.Generate is set, one forward
// pass otherwise. It returns in with the outputs filled in. A recorder
// runs once.
func (r *Recorder) Run(ctx context.Context, in bundle.Input, extra ...transformer.HookSpec) (bundle.Input, error) {
	if r.ran {
		return in, fmt.Errorf("%w: Run called twice; a recorder records one run", ErrState)
	}
	r.ran = true
	hooks, err := r.m.NewHooks(append(slices.Clone(extra), r.Hooks()...)...)
	if err != nil {
		return in, err
	}
	start := time.Now()
	out, steps, err := RunModel(ctx, r.m, in, hooks)
	if derr := r.drain(); err == nil {
		err = derr
	}
	r.runTime = time.Since(start)
	if err != nil {
		return in, err
	}
	r.input, r.steps = out, steps
	return out, nil
}

// RunModel runs m on in with hooks, as Recorder.Run does, and returns in
// with its outputs and the generation steps (none for a single forward).
func RunModel(ctx context.Context, m *transformer.Model, in bundle.Input, hooks *transformer.Hooks) (bundle.Input, []transformer.Step, error) {
	out := in
	out.OutputIDs, out.OutputText, out.Label, out.Probabilities = nil, "", "", nil
	if g := in.Generate; g != nil {
		opts := transformer.GenerateOptions{MaxNewTokens: g.MaxNewTokens, StopAtEOS: g.StopAtEOS, EOS: g.EOS,
			Sampler: transformer.Sampler{Temperature: g.Sampler.Temperature, TopK: g.Sampler.TopK, TopP: g.Sampler.TopP, Seed: g.Sampler.Seed}}
		gen, err := m.Generate(ctx, in.InputIDs, opts, hooks)
		if err != nil {
			return in, nil, err
		}
		out.OutputIDs = gen.Tokens
		if out.OutputText, err = m.Tokenizer.Decode(gen.Tokens); err != nil {
			return in, nil, err
		}
		return out, gen.Steps, nil
	}
	batch, err := transformer.NewBatch([][]int{in.InputIDs}, nil)
	if err != nil {
		return in, nil, err
	}
	logits, err := m.Forward(ctx, batch, hooks)
	if err != nil {
		return in, nil, err
	}
	host := m.Backend.ToHost(logits)
	switch {
	case m.BERT != nil && m.BERT.Head == transformer.HeadSequenceClassification:
		labels := m.BERT.Labels()
		probs := transformer.Probabilities(host[:len(labels)])
		out.Probabilities = map[string]float64{}
		best := 0
		for i, p := range probs {
			out.Probabilities[labels[i]] = p
			if p > probs[best] {
				best = i
			}
		}
		out.Label, out.OutputText, out.OutputIDs = labels[best], labels[best], []int{best}
	case m.BERT != nil && m.BERT.Head == transformer.HeadNone:
	default:
		// Token logits [1, T, V]: GPT-2's next token, BERT's [MASK]s.
		V := logits.Dim(-1)
		positions := []int{len(host)/V - 1}
		if m.BERT != nil {
			positions = m.MaskPositions(in.InputIDs)
		}
		for _, p := range positions {
			out.OutputIDs = append(out.OutputIDs, argmax(host[p*V:(p+1)*V]))
		}
		if out.OutputText, err = m.Tokenizer.Decode(out.OutputIDs); err != nil {
			return in, nil, err
		}
	}
	return out, nil, nil
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// Recording is what a recorder captured: the input and output, the
// record settings and hooks, the activations and sketches, the per-step
// state, the external calls and the timings.
type Recording struct {
	Input         bundle.Input
	Record        bundle.Record
	Hooks         []bundle.HookRecord
	StateDiffs    bundle.StateDiffs
	ExternalCalls []bundle.ExternalCall
	// RunTime is the wall time of the model run, hooks included; HookTime
	// the part spent inside the recorder's hooks.
	RunTime, HookTime time.Duration
}

// Finish completes the recording after Run.
func (r *Recorder) Finish() (*Recording, error) {
	if !r.ran {
		return nil, fmt.Errorf("%w: Finish before Run", ErrState)
	}
	if err := r.drain(); err != nil {
		return nil, err
	}
	in := r.input
	T := len(in.InputIDs)
	if in.Generate != nil {
		if len(in.OutputIDs) == 0 {
			return nil, fmt.Errorf("%w: generation produced no tokens", ErrState)
		}
		T += len(in.OutputIDs) - 1
	}
	rec := &Recording{Input: in, RunTime: r.runTime, HookTime: r.hookTime, ExternalCalls: r.calls.Calls(),
		Record: bundle.Record{Level: r.opts.Level, DType: r.opts.DType, Positions: T, CompressionLevel: r.opts.CompressionLevel,
			Sketch: bundle.Sketch{K: r.opts.SketchK, Seed: r.opts.SketchSeed, Hash: bundle.HashXXH64}}}
	for _, n := range r.names {
		t := r.tracks[n]
		hr, info, err := t.finish(T)
		if err != nil {
			return nil, err
		}
		rec.Record.Hooks = append(rec.Record.Hooks, info)
		rec.Hooks = append(rec.Hooks, hr)
	}
	for i, st := range r.steps {
		s := bundle.StepState{Step: i, Token: st.Token, KVCacheLen: st.CacheLen, RNGState: st.RNGState}
		if r.kv != nil {
			kv, err := r.kv.state(st.CacheLen)
			if err != nil {
				return nil, err
			}
			s.KV = kv
		}
		rec.StateDiffs.Steps = append(rec.StateDiffs.Steps, s)
	}
	if rec.StateDiffs.Steps == nil {
		rec.StateDiffs.Steps = []bundle.StepState{}
	}
	return rec, nil
}

// Steps returns the generation steps of the run.
func (r *Recorder) Steps() []transformer.Step { return slices.Clone(r.steps) }
