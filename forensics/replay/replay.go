// Package replay re-runs an incident from its bundle: it checks that the
// model files are the recorded ones, runs the recorded input through the
// same recorder settings, and proves the replay equal to the recording —
// the same output tokens, the same generation state at every step, every
// recorded activation bit for bit (on the same backend) — or reports the
// first divergence. With interventions it then runs again and reports the
// new outcome beside the recorded one.
package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

// ErrModelMismatch is wrapped by Replay's error when the model given is not
// the recorded one (by sha256) and Options.AllowModelMismatch is false.
var ErrModelMismatch = errors.New("model differs from the recording")

// Harness re-runs the code around the model of a recorded incident: it
// makes its external calls through calls (served from the bundle, never
// made for real) and returns the prompt text it built, which must be the
// recorded one.
type Harness func(ctx context.Context, calls recorder.Caller) (string, error)

// Options configures Replay.
type Options struct {
	// Model is the identity of the model given to Replay (see
	// recorder.Identify), compared with the bundle's.
	Model bundle.Model
	// AllowModelMismatch replays on a model whose files differ from the
	// recorded ones, reporting the differences instead of failing.
	AllowModelMismatch bool
	// Interventions, when not empty, are applied in a second run whose
	// outcome is reported beside the recorded one.
	Interventions []transformer.Intervention
	// Harness, when not nil, is re-run with the recorded external calls
	// before the model.
	Harness Harness
}

// Report is the result of a replay.
type Report struct {
	// Bundle is the bundle's directory.
	Bundle string `json:"bundle"`
	// Match is true when the replay reproduced the recording: same model,
	// tokens, steps, activations and external calls.
	Match bool `json:"match"`
	// ModelMismatch lists how the model differs from the recorded one
	// (only with AllowModelMismatch).
	ModelMismatch []string `json:"model_mismatch,omitempty"`
	// BackendNote is set when the backend differs from the recording's.
	BackendNote string `json:"backend_note,omitempty"`
	// RecordedTokens and ReplayedTokens are the output tokens.
	RecordedTokens []int `json:"recorded_tokens"`
	ReplayedTokens []int `json:"replayed_tokens"`
	TokensMatch    bool  `json:"tokens_match"`
	// Steps compares the per-step generation state.
	Steps StepCheck `json:"steps"`
	// Activations counts what was compared.
	Activations ActivationCheck `json:"activations"`
	// FirstDivergence is the first recorded activation that differs, in
	// the order the forward passes computed them; nil when none does.
	FirstDivergence *Divergence `json:"first_divergence,omitempty"`
	// Calls compares the external calls (when a Harness ran).
	Calls CallCheck `json:"external_calls"`
	// RecordedOutcome and ReplayedOutcome are the detector's verdicts.
	RecordedOutcome bundle.Outcome `json:"recorded_outcome"`
	ReplayedOutcome bundle.Outcome `json:"replayed_outcome"`
	ReplayedText    string         `json:"replayed_text"`
	// Intervened is the intervened run, when Options.Interventions is set.
	Intervened *Intervened `json:"intervened,omitempty"`
}

// StepCheck compares generation steps.
type StepCheck struct {
	Recorded int `json:"recorded"`
	Replayed int `json:"replayed"`
	// FirstMismatch is the first step whose token, KV-cache length, RNG
	// state or KV-cache sketch differs.
	FirstMismatch *StepMismatch `json:"first_mismatch,omitempty"`
}

// StepMismatch is one field of one generation step that differs.
type StepMismatch struct {
	Step     int    `json:"step"`
	Field    string `json:"field"`
	Recorded string `json:"recorded"`
	Replayed string `json:"replayed"`
}

// ActivationCheck counts the activations compared.
type ActivationCheck struct {
	// Hooks is the number of recorded hooks.
	Hooks int `json:"hooks"`
	// Sketches is the number of hook × position sketches compared.
	Sketches int `json:"sketches"`
	// Stored is the number of stored activations compared value by value.
	Stored int `json:"stored"`
	// BitForBit is true when every sketch hash and stored value matched.
	BitForBit bool `json:"bit_for_bit"`
}

// Divergence locates the first activation that differs.
type Divergence struct {
	Hook     string `json:"hook"`
	Position int    `json:"position"`
	// Step is the generation step that computed the position (0: the
	// prompt's forward pass).
	Step int `json:"step"`
	// MaxDiff is the largest absolute difference at that hook and
	// position: computed from the stored values when the activation was
	// stored (Exact; for float16 storage, between the rounded values), else
	// a lower bound from the sketches (|Δmean|, |Δmin|, |Δmax|,
	// |ΔL2|/√count). It is math.MaxFloat64 when unbounded: a value is
	// missing, or became infinite or NaN on one side only.
	MaxDiff float64 `json:"max_diff"`
	Exact   bool    `json:"exact"`
	// Detail says what differs.
	Detail string `json:"detail"`
}

// String formats a divergence as "HOOK position P (step S): max diff D".
func (d *Divergence) String() string {
	bound := "="
	if !d.Exact {
		bound = "≥"
	}
	diff := fmt.Sprintf("%.6g", d.MaxDiff)
	if d.MaxDiff >= math.MaxFloat64 {
		diff = "∞"
	}
	return fmt.Sprintf("%s position %d (step %d): max diff %s %s (%s)", d.Hook, d.Position, d.Step, bound, diff, d.Detail)
}

// CallCheck compares the external calls of a harness replay.
type CallCheck struct {
	Recorded int  `json:"recorded"`
	Served   int  `json:"served"`
	Harness  bool `json:"harness"`
	// Unused lists the recorded calls the replay never made.
	Unused []string `json:"unused,omitempty"`
	// PromptDiffers is set when the harness built a different prompt.
	PromptDiffers string `json:"prompt_differs,omitempty"`
}

// Intervened is the run with interventions.
type Intervened struct {
	Interventions []string       `json:"interventions"`
	OutputIDs     []int          `json:"output_ids"`
	OutputText    string         `json:"output_text"`
	Outcome       bundle.Outcome `json:"outcome"`
	// RecordedText and RecordedOutcome are the recording's, beside.
	RecordedText    string         `json:"recorded_text"`
	RecordedOutcome bundle.Outcome `json:"recorded_outcome"`
	// Flipped is true when the detector's verdict changed.
	Flipped bool `json:"flipped"`
	// FirstChange is the first activation the interventions changed.
	FirstChange *Divergence `json:"first_change,omitempty"`
}

// Replay re-runs the bundle's incident on m and compares it with the
// recording. It fails with ErrModelMismatch when m's files are not the
// recorded ones (unless allowed), with recorder.ErrUnrecordedCall when the
// harness makes a call the recording lacks, and with the model's own errors;
// a replay that runs but differs is not an error: the Report says where.
func Replay(ctx context.Context, b *bundle.Bundle, m *transformer.Model, o Options) (*Report, error) {
	man := b.Manifest
	rep := &Report{Bundle: b.Dir, RecordedOutcome: man.Outcome, RecordedTokens: b.Input.OutputIDs}
	if diff := recorder.ModelMismatch(man.Model, o.Model); len(diff) > 0 {
		if !o.AllowModelMismatch {
			return nil, fmt.Errorf("replay %s: %w: %s (use --allow-model-mismatch to replay anyway)", b.Dir, ErrModelMismatch, strings.Join(diff, "; "))
		}
		rep.ModelMismatch = diff
	}
	if now := m.Backend.Name(); now != man.Runtime.Backend {
		rep.BackendNote = fmt.Sprintf("recorded on backend %s, replayed on %s: bit for bit is promised on the same backend only", man.Runtime.Backend, now)
	}
	recorded, err := b.Activations()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	det, err := recorder.ParseDetector(man.Outcome.Detector)
	if err != nil {
		return nil, fmt.Errorf("replay: %s outcome: %w", bundle.ManifestName, err)
	}
	rep.Calls = CallCheck{Recorded: len(b.ExternalCalls)}
	if o.Harness != nil {
		calls := recorder.NewCallReplay(b.ExternalCalls)
		text, err := o.Harness(ctx, calls)
		if err != nil {
			return nil, fmt.Errorf("replay %s: harness: %w", b.Dir, err)
		}
		rep.Calls.Harness = true
		unused := calls.Unused()
		rep.Calls.Served = len(b.ExternalCalls) - len(unused)
		for _, c := range unused {
			rep.Calls.Unused = append(rep.Calls.Unused, fmt.Sprintf("#%d %s", c.Seq, c.Name))
		}
		if text != b.Input.Text {
			rep.Calls.PromptDiffers = fmt.Sprintf("the harness built %q, the recording has %q", text, b.Input.Text)
		}
	}

	opts := recorder.OptionsOf(man)
	input := b.Input
	rec, out, err := run(ctx, m, opts, input, nil)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", b.Dir, err)
	}
	rep.ReplayedTokens = out.OutputIDs
	rep.ReplayedText = out.OutputText
	rep.TokensMatch = slices.Equal(b.Input.OutputIDs, out.OutputIDs)
	rep.ReplayedOutcome = det.Detect(out)
	rep.Steps = compareSteps(b.StateDiffs.Steps, rec.StateDiffs.Steps)
	div, check := compare(man, recorded, rec.Hooks, len(input.InputIDs), input.Generate != nil)
	rep.FirstDivergence, rep.Activations = div, check
	rep.Match = len(rep.ModelMismatch) == 0 && rep.TokensMatch && rep.Steps.FirstMismatch == nil &&
		rep.Steps.Recorded == rep.Steps.Replayed && div == nil && len(rep.Calls.Unused) == 0 && rep.Calls.PromptDiffers == ""

	if len(o.Interventions) > 0 {
		ivHooks, err := m.InterventionHooks(o.Interventions)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		ivRec, ivOut, err := run(ctx, m, opts, input, ivHooks)
		if err != nil {
			return nil, fmt.Errorf("replay %s: intervened run: %w", b.Dir, err)
		}
		iv := &Intervened{OutputIDs: ivOut.OutputIDs, OutputText: ivOut.OutputText, Outcome: det.Detect(ivOut),
			RecordedText: b.Input.OutputText, RecordedOutcome: man.Outcome}
		for _, x := range o.Interventions {
			iv.Interventions = append(iv.Interventions, x.String())
		}
		iv.Flipped = iv.Outcome.Failed != man.Outcome.Failed
		iv.FirstChange, _ = compare(man, recorded, ivRec.Hooks, len(input.InputIDs), input.Generate != nil)
		rep.Intervened = iv
	}
	return rep, nil
}

// run records one run of input with extra hooks before the recorder's.
func run(ctx context.Context, m *transformer.Model, opts recorder.Options, input bundle.Input, extra []transformer.HookSpec) (*recorder.Recording, bundle.Input, error) {
	r, err := recorder.New(m, opts)
	if err != nil {
		return nil, input, err
	}
	out, err := r.Run(ctx, input, extra...)
	if err != nil {
		return nil, input, err
	}
	rec, err := r.Finish()
	if err != nil {
		return nil, input, err
	}
	return rec, out, nil
}

// compareSteps finds the first step whose state differs.
func compareSteps(recorded, replayed []bundle.StepState) StepCheck {
	c := StepCheck{Recorded: len(recorded), Replayed: len(replayed)}
	for i := range min(len(recorded), len(replayed)) {
		a, b := recorded[i], replayed[i]
		mismatch := func(field, x, y string) {
			if c.FirstMismatch == nil && x != y {
				c.FirstMismatch = &StepMismatch{Step: i, Field: field, Recorded: x, Replayed: y}
			}
		}
		mismatch("token", fmt.Sprint(a.Token), fmt.Sprint(b.Token))
		mismatch("kv_cache_len", fmt.Sprint(a.KVCacheLen), fmt.Sprint(b.KVCacheLen))
		mismatch("rng_state", fmt.Sprintf("%x", a.RNGState), fmt.Sprintf("%x", b.RNGState))
		if a.KV != nil && b.KV != nil {
			for l := range min(len(a.KV.K), len(b.KV.K)) {
				mismatch(fmt.Sprintf("kv.k[%d]", l), a.KV.K[l], b.KV.K[l])
				mismatch(fmt.Sprintf("kv.v[%d]", l), a.KV.V[l], b.KV.V[l])
			}
		} else if (a.KV == nil) != (b.KV == nil) {
			mismatch("kv", fmt.Sprint(a.KV != nil), fmt.Sprint(b.KV != nil))
		}
		if c.FirstMismatch != nil {
			break
		}
	}
	if c.FirstMismatch == nil && len(recorded) != len(replayed) {
		n := min(len(recorded), len(replayed))
		c.FirstMismatch = &StepMismatch{Step: n, Field: "steps", Recorded: fmt.Sprint(len(recorded)), Replayed: fmt.Sprint(len(replayed))}
	}
	return c
}

// compare walks the recorded activations in the order the forward passes
// computed them (step by step; within a step, hooks in forward order, then
// positions) and returns the first that differs from the replay.
func compare(man *bundle.Manifest, recorded, replayed []bundle.HookRecord, prompt int, generated bool) (*Divergence, ActivationCheck) {
	check := ActivationCheck{Hooks: len(recorded), BitForBit: true}
	byName := map[string]*bundle.HookRecord{}
	for i := range replayed {
		byName[replayed[i].Hook] = &replayed[i]
	}
	infos := map[string]bundle.HookInfo{}
	for _, h := range man.Record.Hooks {
		infos[h.Name] = h
	}
	T := man.Record.Positions
	steps := 1
	if generated && T > prompt {
		steps = T - prompt + 1
	}
	var first *Divergence
	for s := range steps {
		lo, hi := 0, min(prompt, T)
		if s > 0 {
			lo, hi = prompt+s-1, prompt+s
		}
		for i := range recorded {
			a := &recorded[i]
			b := byName[a.Hook]
			for p := lo; p < hi && p < a.Positions(); p++ {
				check.Sketches++
				d := positionDiff(a, b, infos[a.Hook], p)
				if d == nil {
					continue
				}
				check.BitForBit = false
				if first == nil {
					d.Step = s
					first = d
				}
			}
		}
	}
	for i := range recorded {
		if recorded[i].Raw != nil {
			check.Stored++
		}
	}
	return first, check
}

// positionDiff compares one hook at one position, or returns nil when they
// are equal bit for bit.
func positionDiff(a, b *bundle.HookRecord, info bundle.HookInfo, p int) *Divergence {
	d := diffAt(a, b, info, p)
	if d != nil && (math.IsInf(d.MaxDiff, 0) || math.IsNaN(d.MaxDiff)) {
		d.MaxDiff = math.MaxFloat64 // JSON has no infinity
	}
	return d
}

// diffAt is positionDiff before the difference is made finite.
func diffAt(a, b *bundle.HookRecord, info bundle.HookInfo, p int) *Divergence {
	d := &Divergence{Hook: a.Hook, Position: p}
	if b == nil {
		d.Detail, d.MaxDiff = "the replay did not record this hook", math.Inf(1)
		return d
	}
	if p >= b.Positions() {
		d.Detail, d.MaxDiff = fmt.Sprintf("the replay has %d positions", b.Positions()), math.Inf(1)
		return d
	}
	// Equality is decided by the hash of the exact bytes (and the stored
	// values); the other statistics only bound the difference, so a change
	// in how fx computes them (summation order) is not a divergence.
	same := a.Hash[p] == b.Hash[p] && a.Count[p] == b.Count[p]
	rawDiff, rawDiffers, haveRaw := 0.0, false, a.Raw != nil && b.Raw != nil
	if haveRaw {
		rawDiff, rawDiffers = rawPositionDiff(a.Raw, b.Raw, info, p)
	}
	if same && !rawDiffers {
		return nil
	}
	switch {
	case a.Count[p] != b.Count[p]:
		d.Detail = fmt.Sprintf("%d values recorded, %d replayed", a.Count[p], b.Count[p])
	case a.Hash[p] != b.Hash[p]:
		d.Detail = fmt.Sprintf("xxh64 %016x recorded, %016x replayed", a.Hash[p], b.Hash[p])
	default:
		d.Detail = "the stored values differ"
	}
	bound := max(absDiff(a.Mean[p], b.Mean[p]), absDiff(a.Min[p], b.Min[p]), absDiff(a.Max[p], b.Max[p]))
	if n := float64(max(a.Count[p], 1)); n > 0 {
		bound = max(bound, absDiff(a.L2[p], b.L2[p])/math.Sqrt(n))
	}
	if haveRaw && (rawDiffers || a.Raw.DType == bundle.Float32) {
		d.MaxDiff, d.Exact = rawDiff, true
		return d
	}
	if haveRaw {
		d.Detail += "; the stored float16 values are equal (the difference is below float16 resolution)"
	}
	d.MaxDiff = bound
	return d
}

// rawPositionDiff compares the stored values of one position.
func rawPositionDiff(a, b *bundle.Raw, info bundle.HookInfo, p int) (float64, bool) {
	sa, sb := segments(a, info, p), segments(b, info, p)
	if len(sa) != len(sb) || sa == nil {
		return math.Inf(1), true
	}
	diff, differs := 0.0, false
	for i := range sa {
		if sa[i].n != sb[i].n {
			return math.Inf(1), true
		}
		for j := range sa[i].n {
			ia, ib := sa[i].start+j, sb[i].start+j
			if a.Bits(ia) != b.Bits(ib) {
				differs = true
				diff = max(diff, absDiff(a.At(ia), b.At(ib)))
			}
		}
	}
	return diff, differs
}

// segment is a run of n values from start.
type segment struct{ start, n int }

// segments returns where position p's values lie in a stored activation:
// a row of [T, ...], the rows [h, p, :] of an attention pattern [H, T, T],
// or everything for a hook with one position; nil when the shape has no
// position p.
func segments(r *bundle.Raw, info bundle.HookInfo, p int) []segment {
	shape := r.Shape
	var segs []segment
	switch {
	case len(shape) == 0:
		return nil
	case info.Positions == 1:
		segs = []segment{{0, r.Len()}}
	case len(shape) == 3 && shape[1] == shape[2] && isAttention(info.Name):
		H, T := shape[0], shape[1]
		if p >= T {
			return nil
		}
		for h := range H {
			segs = append(segs, segment{(h*T + p) * T, T})
		}
	default:
		if p >= shape[0] {
			return nil
		}
		n := r.Len() / shape[0]
		segs = []segment{{p * n, n}}
	}
	for _, s := range segs {
		if s.start < 0 || s.start+s.n > r.Len() {
			return nil
		}
	}
	return segs
}

func isAttention(hook string) bool {
	return strings.HasSuffix(hook, "attn.hook_attn_scores") || strings.HasSuffix(hook, "attn.hook_pattern")
}

// absDiff returns |a-b|, infinite when exactly one is NaN or the infinities
// differ, 0 when both are NaN or the same infinity.
func absDiff(a, b float32) float64 {
	x, y := float64(a), float64(b)
	switch {
	case math.IsNaN(x) && math.IsNaN(y):
		return 0
	case math.IsNaN(x) || math.IsNaN(y):
		return math.Inf(1)
	case x == y:
		return 0
	}
	return math.Abs(x - y)
}
