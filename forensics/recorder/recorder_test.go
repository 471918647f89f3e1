package recorder_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

func modelDir(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

func load(t *testing.T, name string) *transformer.Model {
	t.Helper()
	m, err := transformer.Load(modelDir(name), devicetest.Backend(t))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// record runs in on m with opts and returns the recording.
func record(t *testing.T, m *transformer.Model, opts recorder.Options, in bundle.Input) *recorder.Recording {
	t.Helper()
	r, err := recorder.New(m, opts)
	require.NoError(t, err)
	_, err = r.Run(context.Background(), in)
	require.NoError(t, err)
	rec, err := r.Finish()
	require.NoError(t, err)
	return rec
}

func options(level, dtype string) recorder.Options {
	o := recorder.DefaultOptions()
	o.Level, o.DType = level, dtype
	return o
}

// xxh64 computes XXH64 (seed 0) of data with a plain, one-shot
// implementation of the specification, independent of the recorder's.
func xxh64(data []byte) uint64 {
	const p1, p2, p3, p4, p5 uint64 = 11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579, 2870177450012600261
	rotl := func(x uint64, r uint) uint64 { return x<<r | x>>(64-r) }
	round := func(acc, in uint64) uint64 { return rotl(acc+in*p2, 31) * p1 }
	le := binary.LittleEndian
	n := uint64(len(data))
	var h uint64
	if len(data) >= 32 {
		v1, v2, v3, v4 := p1, p2, uint64(0), uint64(0)
		v1 += p2
		v4 -= p1
		for ; len(data) >= 32; data = data[32:] {
			v1, v2 = round(v1, le.Uint64(data)), round(v2, le.Uint64(data[8:]))
			v3, v4 = round(v3, le.Uint64(data[16:])), round(v4, le.Uint64(data[24:]))
		}
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
		for _, v := range []uint64{v1, v2, v3, v4} {
			h = (h^round(0, v))*p1 + p4
		}
	} else {
		h = p5
	}
	h += n
	for ; len(data) >= 8; data = data[8:] {
		h = rotl(h^round(0, le.Uint64(data)), 27)*p1 + p4
	}
	if len(data) >= 4 {
		h = rotl(h^uint64(le.Uint32(data))*p1, 23)*p2 + p3
		data = data[4:]
	}
	for _, c := range data {
		h = rotl(h^uint64(c)*p5, 11) * p1
	}
	h ^= h >> 33
	h *= p2
	h ^= h >> 29
	h *= p3
	return h ^ h>>32
}

func floatBytes(xs []float32) []byte {
	b := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// sign returns the projection sign of element j of row r, as the package
// documents it.
func sign(seed uint64, r, j int) float64 {
	rng := rand.NewPCG(seed, uint64(r))
	var u uint64
	for range j/64 + 1 {
		u = rng.Uint64()
	}
	if u>>(j%64)&1 == 1 {
		return -1
	}
	return 1
}

// positionValues returns position p's values of a stored float32
// activation, as the sketch reads them: a row of [T, ...], or the causal
// part of each head's row of [H, T, T] attention.
func positionValues(name string, raw *bundle.Raw, p int, causal bool) []float32 {
	s := raw.Shape
	if strings.HasSuffix(name, "hook_pattern") || strings.HasSuffix(name, "hook_attn_scores") {
		H, T := s[0], s[1]
		L := T
		if causal {
			L = p + 1
		}
		var out []float32
		for h := range H {
			out = append(out, raw.F32[(h*T+p)*T:(h*T+p)*T+L]...)
		}
		return out
	}
	n := raw.Len() / s[0]
	return raw.F32[p*n : (p+1)*n]
}

func TestRecordingIsFaithful(t *testing.T) {
	// A single forward recorded at full float32 holds exactly what
	// RunWithCache caches, and every sketch is what its definition says
	// of those values.
	for _, model := range []string{"gpt2-tiny", "bert-tiny-cls"} {
		t.Run(model, func(t *testing.T) {
			m := load(t, model)
			ids := []int{1, 5, 9, 42, 7, 3}
			if m.BERT != nil {
				ids = m.Encode("a gripping, funny film")
			}
			opts := options(bundle.LevelFull, bundle.Float32)
			rec := record(t, m, opts, bundle.Input{InputIDs: ids})
			var names []string
			for _, h := range rec.Hooks {
				names = append(names, h.Hook)
			}
			require.NotContains(t, names, "blocks.0.attn.hook_result", "excluded by default")
			_, cache, err := m.RunWithCache(context.Background(), ids, transformer.Names(names...))
			require.NoError(t, err)
			T := len(ids)
			for _, h := range rec.Hooks {
				want := cache[h.Hook]
				require.NotNil(t, h.Raw, h.Hook)
				assert.Equal(t, want.Shape()[1:], h.Raw.Shape, h.Hook)
				assert.True(t, slices.Equal(floatBytes(want.Host()), floatBytes(h.Raw.F32)), "%s: stored values differ from RunWithCache", h.Hook)
				positions := T
				if len(want.Shape()) == 2 {
					positions = 1
				}
				require.Equal(t, positions, h.Positions(), h.Hook)
				for p := range positions {
					xs := h.Raw.F32
					if positions > 1 {
						xs = positionValues(h.Hook, h.Raw, p, m.GPT2 != nil)
					}
					sum, sumsq, mn, mx := 0.0, 0.0, math.Inf(1), math.Inf(-1)
					for _, x := range xs {
						sum += float64(x)
						sumsq += float64(x) * float64(x)
						mn, mx = math.Min(mn, float64(x)), math.Max(mx, float64(x))
					}
					n := float64(len(xs))
					assert.Equal(t, int64(len(xs)), h.Count[p], "%s[%d] count", h.Hook, p)
					assert.InDelta(t, sum/n, float64(h.Mean[p]), 1e-5*(1+math.Abs(sum/n)), "%s[%d] mean", h.Hook, p)
					assert.InDelta(t, math.Sqrt(sumsq), float64(h.L2[p]), 1e-5*(1+math.Sqrt(sumsq)), "%s[%d] l2", h.Hook, p)
					assert.Equal(t, float32(mn), h.Min[p], "%s[%d] min", h.Hook, p)
					assert.Equal(t, float32(mx), h.Max[p], "%s[%d] max", h.Hook, p)
					assert.Equal(t, xxh64(floatBytes(xs)), h.Hash[p], "%s[%d] hash", h.Hook, p)
					if p == 0 && len(xs) <= 200 {
						k := opts.SketchK
						for r := range k {
							proj := 0.0
							for j, x := range xs {
								proj += float64(x) * sign(opts.SketchSeed, r, j)
							}
							proj /= math.Sqrt(float64(k))
							assert.InDelta(t, proj, float64(h.Proj[p*k+r]), 1e-4*(1+math.Abs(proj)), "%s[%d] proj %d", h.Hook, p, r)
						}
					}
				}
			}
		})
	}
}

func TestRecordingDoesNotChangeTheRun(t *testing.T) {
	ctx := context.Background()
	m := load(t, "gpt2-tiny")
	ids := []int{4, 8, 15, 16, 23, 42}
	opts := transformer.GenerateOptions{MaxNewTokens: 7, Sampler: transformer.Sampler{Temperature: 0.9, TopK: 40, Seed: 3}}
	plain, err := m.Generate(ctx, ids, opts, nil)
	require.NoError(t, err)
	for _, level := range []string{bundle.LevelMinimal, bundle.LevelLayer, bundle.LevelFull} {
		r, err := recorder.New(m, options(level, bundle.Float16))
		require.NoError(t, err)
		hs, err := m.NewHooks(r.Hooks()...)
		require.NoError(t, err)
		got, err := m.Generate(ctx, ids, opts, hs)
		require.NoError(t, err)
		assert.Equal(t, plain, got, "level %s: tokens, KV lengths and RNG states as without recording", level)
	}
	batch, err := transformer.NewBatch([][]int{ids}, nil)
	require.NoError(t, err)
	want, err := m.Forward(ctx, batch, nil)
	require.NoError(t, err)
	r, err := recorder.New(m, options(bundle.LevelFull, bundle.Float32))
	require.NoError(t, err)
	hs, err := m.NewHooks(r.Hooks()...)
	require.NoError(t, err)
	got, err := m.Forward(ctx, batch, hs)
	require.NoError(t, err)
	assert.True(t, slices.Equal(floatBytes(m.Backend.ToHost(want)), floatBytes(m.Backend.ToHost(got))), "logits bit for bit")
}

func TestGenerationRecording(t *testing.T) {
	m := load(t, "gpt2-tiny")
	ids := []int{11, 12, 13, 14}
	in := bundle.Input{InputIDs: ids, Generate: &bundle.Generate{MaxNewTokens: 5, Sampler: bundle.Sampler{Temperature: 1, Seed: 9}}}
	rec := record(t, m, options(bundle.LevelFull, bundle.Float32), in)
	out := rec.Input.OutputIDs
	require.Len(t, out, 5)
	T := len(ids) + len(out) - 1
	assert.Equal(t, T, rec.Record.Positions)

	// Steps are Generate's, with the KV-cache sketch of each.
	plain, err := m.Generate(context.Background(), ids, transformer.GenerateOptions{MaxNewTokens: 5,
		Sampler: transformer.Sampler{Temperature: 1, Seed: 9}}, nil)
	require.NoError(t, err)
	require.Len(t, rec.StateDiffs.Steps, 5)
	byName := map[string]bundle.HookRecord{}
	for _, h := range rec.Hooks {
		byName[h.Hook] = h
	}
	for i, st := range rec.StateDiffs.Steps {
		assert.Equal(t, plain.Steps[i].Token, st.Token)
		assert.Equal(t, plain.Steps[i].CacheLen, st.KVCacheLen)
		assert.Equal(t, plain.Steps[i].RNGState, st.RNGState)
		require.NotNil(t, st.KV)
		for l := range m.Config.Layers {
			// The KV cache after the step holds the keys and values of
			// positions [0, kv_cache_len): the stored hook_k and hook_v rows.
			for _, kv := range []struct {
				hook string
				got  string
			}{{fmt.Sprintf("blocks.%d.attn.hook_k", l), st.KV.K[l]}, {fmt.Sprintf("blocks.%d.attn.hook_v", l), st.KV.V[l]}} {
				raw := byName[kv.hook].Raw
				n := raw.Len() / raw.Shape[0]
				assert.Equal(t, fmt.Sprintf("%016x", xxh64(floatBytes(raw.F32[:st.KVCacheLen*n]))), kv.got, "step %d %s", i, kv.hook)
			}
		}
	}

	// The activations assembled step by step are those of one forward pass
	// over the whole sequence (to rounding: the KV path sums differently).
	full := append(append([]int(nil), ids...), out[:len(out)-1]...)
	var names []string
	for _, h := range rec.Hooks {
		names = append(names, h.Hook)
	}
	_, cache, err := m.RunWithCache(context.Background(), full, transformer.Names(names...))
	require.NoError(t, err)
	for _, h := range rec.Hooks {
		want := cache[h.Hook].Host()
		require.Equal(t, cache[h.Hook].Shape()[1:], h.Raw.Shape, h.Hook)
		scale := 0.0
		for _, x := range want {
			if !math.IsInf(float64(x), 0) {
				scale = math.Max(scale, math.Abs(float64(x)))
			}
		}
		for i, x := range want {
			y := h.Raw.F32[i]
			if math.IsInf(float64(x), -1) {
				require.True(t, math.IsInf(float64(y), -1), "%s[%d]: masked score %v", h.Hook, i, y)
				continue
			}
			require.InDelta(t, x, y, 1e-4*(1+scale), "%s[%d]", h.Hook, i)
		}
	}
}

func TestLevels(t *testing.T) {
	m := load(t, "gpt2-tiny")
	in := bundle.Input{InputIDs: []int{1, 2, 3}, Generate: &bundle.Generate{MaxNewTokens: 2}}
	for _, tc := range []struct {
		level  string
		hooks  []string
		stored func(string) bool
	}{
		{bundle.LevelMinimal, nil, func(string) bool { return false }},
		{bundle.LevelLayer, nil, recorder.IsResidual},
		{bundle.LevelFull, nil, func(string) bool { return true }},
		{bundle.LevelFull, []string{"blocks.1.mlp.*"}, func(string) bool { return true }},
	} {
		t.Run(tc.level+strings.Join(tc.hooks, ","), func(t *testing.T) {
			opts := options(tc.level, bundle.Float16)
			if tc.hooks != nil {
				opts.Hooks = tc.hooks
			}
			rec := record(t, m, opts, in)
			var want []string
			for _, n := range m.HookNames() {
				if n == "blocks.0.attn.hook_result" || n == "blocks.1.attn.hook_result" {
					continue
				}
				if tc.hooks == nil || strings.HasPrefix(n, "blocks.1.mlp.") {
					want = append(want, n)
				}
			}
			var got []string
			for i, h := range rec.Hooks {
				got = append(got, h.Hook)
				assert.Equal(t, tc.stored(h.Hook), h.Raw != nil, h.Hook)
				assert.Equal(t, h.Raw != nil, rec.Record.Hooks[i].Stored)
				assert.Equal(t, 4, h.Positions())
				if h.Raw != nil {
					assert.Equal(t, bundle.Float16, h.Raw.DType)
				}
			}
			assert.Equal(t, want, got, "recorded in forward order")
			// The KV sketcher runs even when hook_k and hook_v are not recorded.
			require.Len(t, rec.StateDiffs.Steps, 2)
			assert.Len(t, rec.StateDiffs.Steps[1].KV.K, 2)
		})
	}
}

func TestRecorderErrors(t *testing.T) {
	m := load(t, "gpt2-tiny")
	for _, tc := range []struct {
		name    string
		edit    func(*recorder.Options)
		problem string
	}{
		{"level", func(o *recorder.Options) { o.Level = "most" }, `level "most"`},
		{"dtype", func(o *recorder.Options) { o.DType = "bfloat16" }, `dtype "bfloat16"`},
		{"k", func(o *recorder.Options) { o.SketchK = 0 }, "sketch k 0"},
		{"compression", func(o *recorder.Options) { o.CompressionLevel = 12 }, "compression level 12"},
		{"unknown hook", func(o *recorder.Options) { o.Hooks = []string{"blocks.9.hook_resid_post"} }, "unknown hook"},
		{"bad glob", func(o *recorder.Options) { o.Exclude = []string{"["} }, "syntax error in pattern"},
		{"nothing left", func(o *recorder.Options) { o.Exclude = []string{"*"} }, "leave nothing to record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := recorder.DefaultOptions()
			tc.edit(&o)
			_, err := recorder.New(m, o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.problem)
		})
	}
	r, err := recorder.New(m, recorder.DefaultOptions())
	require.NoError(t, err)
	_, err = r.Finish()
	assert.ErrorIs(t, err, recorder.ErrState)
	_, err = r.Run(context.Background(), bundle.Input{InputIDs: []int{1}})
	require.NoError(t, err)
	_, err = r.Run(context.Background(), bundle.Input{InputIDs: []int{1}})
	assert.ErrorIs(t, err, recorder.ErrState, "a recorder records one run")

	// A batch of two is not a recording.
	r, err = recorder.New(m, recorder.DefaultOptions())
	require.NoError(t, err)
	hs, err := m.NewHooks(r.Hooks()...)
	require.NoError(t, err)
	batch, err := transformer.NewBatch([][]int{{1, 2}, {3, 4}}, nil)
	require.NoError(t, err)
	_, err = m.Forward(context.Background(), batch, hs)
	assert.ErrorContains(t, err, "one sequence (batch 1)")
}

func TestInterventionsAreRecordedAsTheyFlow(t *testing.T) {
	m := load(t, "gpt2-tiny")
	sites, err := m.ParseSites("blocks.0.hook_resid_post")
	require.NoError(t, err)
	ivHooks, err := m.InterventionHooks([]transformer.Intervention{{Site: sites[0], Mode: transformer.Zero, Row: -1}})
	require.NoError(t, err)
	r, err := recorder.New(m, options(bundle.LevelLayer, bundle.Float32))
	require.NoError(t, err)
	_, err = r.Run(context.Background(), bundle.Input{InputIDs: []int{1, 2, 3}}, ivHooks...)
	require.NoError(t, err)
	rec, err := r.Finish()
	require.NoError(t, err)
	for _, h := range rec.Hooks {
		if h.Hook == "blocks.0.hook_resid_post" {
			for _, x := range h.Raw.F32 {
				require.Zero(t, x)
			}
			return
		}
	}
	t.Fatal("blocks.0.hook_resid_post not recorded")
}

func TestCalls(t *testing.T) {
	ctx := context.Background()
	log := recorder.NewCallLog()
	made := 0
	do := func(resp string, err error) recorder.CallFunc {
		return func(context.Context) ([]byte, error) { made++; return []byte(resp), err }
	}
	resp, err := log.Call(ctx, "tool:search", []byte(`{"q":"weather"}`), do(`{"temp":21}`, nil))
	require.NoError(t, err)
	assert.Equal(t, `{"temp":21}`, string(resp))
	_, err = log.Call(ctx, "http:GET", []byte("https://example.com"), do("", errors.New("timeout")))
	assert.EqualError(t, err, "timeout")
	calls := log.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "timeout", calls[1].Error)
	assert.Equal(t, 2, made)

	for _, tc := range []struct {
		name    string
		calls   [][2]string // name, request
		problem string
		sentry  error
	}{
		{"served", [][2]string{{"tool:search", `{"q":"weather"}`}}, "", nil},
		{"recorded failure", [][2]string{{"tool:search", `{"q":"weather"}`}, {"http:GET", "https://example.com"}},
			"recorded external call failed: timeout", recorder.ErrRecordedCallFailed},
		{"other request", [][2]string{{"tool:search", `{"q":"stocks"}`}},
			`external call #0 tool:search "{\"q\":\"stocks\"}": external call not in the recording (the recording's call #0 is tool:search "{\"q\":\"weather\"}")`,
			recorder.ErrUnrecordedCall},
		{"other tool", [][2]string{{"tool:calc", `{"q":"weather"}`}}, "the recording's call #0 is tool:search", recorder.ErrUnrecordedCall},
		{"one too many", [][2]string{{"tool:search", `{"q":"weather"}`}, {"http:GET", "https://example.com"}, {"tool:x", ""}},
			"", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replay := recorder.NewCallReplay(calls)
			var err error
			for _, c := range tc.calls {
				var resp []byte
				resp, err = replay.Call(ctx, c[0], []byte(c[1]), do("live", nil))
				if err != nil {
					break
				}
				assert.Equal(t, `{"temp":21}`, string(resp), "the recorded response, not a live one")
			}
			if tc.name == "one too many" {
				_, err = replay.Call(ctx, "tool:x", nil, do("live", nil))
				assert.ErrorIs(t, err, recorder.ErrUnrecordedCall)
				assert.ErrorContains(t, err, "external call #2 tool:x \"\": external call not in the recording (the recording has 2 calls)")
				return
			}
			if tc.problem == "" {
				require.NoError(t, err)
				assert.Len(t, replay.Unused(), 1)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.sentry)
			assert.Contains(t, err.Error(), tc.problem)
		})
	}
	assert.Equal(t, 2, made, "replay never calls out")
}

func TestDetectors(t *testing.T) {
	for _, tc := range []struct {
		spec, text string
		failed     bool
		problem    string
	}{
		{"none", "anything", false, ""},
		{"", "anything", false, ""},
		{"contains:HACKED", "you have been HACKED", true, ""},
		{"contains:HACKED", "all is well", false, ""},
		{"contains:", "", false, "non-empty"},
		{"regex:x", "", false, "want none or contains:TEXT"},
	} {
		d, err := recorder.ParseDetector(tc.spec)
		if tc.problem != "" {
			assert.ErrorContains(t, err, tc.problem)
			continue
		}
		require.NoError(t, err)
		o := d.Detect(bundle.Input{OutputText: tc.text})
		assert.Equal(t, tc.failed, o.Failed, tc.spec)
		assert.NotEmpty(t, o.Detail)
		again, err := recorder.ParseDetector(o.Detector)
		require.NoError(t, err)
		assert.Equal(t, d.Spec(), again.Spec(), "the stored spec parses back")
	}
}

func sha256File(t *testing.T, paths ...string) string {
	h := sha256.New()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		model     string
		weights   []string
		tokenizer []string
	}{
		{"gpt2-tiny", []string{"model.safetensors"}, nil},
		{"gpt2-default", []string{"model.safetensors"}, []string{"vocab.json", "merges.txt"}},
		{"gpt2-tiny-sharded", []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}, nil},
		{"bert-tiny-cls", []string{"model.safetensors"}, []string{"vocab.txt"}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			m := load(t, tc.model)
			dir := modelDir(tc.model)
			id, err := recorder.Identify(m, tc.model, recorder.DirFiles(m, dir))
			require.NoError(t, err)
			assert.Equal(t, sha256File(t, filepath.Join(dir, "config.json")), id.ConfigSHA256)
			var ws []string
			for _, w := range tc.weights {
				ws = append(ws, filepath.Join(dir, w))
			}
			assert.Equal(t, sha256File(t, ws...), id.WeightsSHA256, "sha256 of the weight files concatenated")
			if tc.tokenizer == nil {
				assert.Equal(t, "embedded:"+m.Config.ModelType, id.Tokenizer)
			} else {
				var tf []string
				for _, f := range tc.tokenizer {
					tf = append(tf, filepath.Join(dir, f))
				}
				assert.Equal(t, "files", id.Tokenizer)
				assert.Equal(t, sha256File(t, tf...), id.TokenizerSHA256)
			}
			assert.Empty(t, recorder.ModelMismatch(id, id))
			other := id
			other.WeightsSHA256 = strings.Repeat("0", 64)
			assert.Equal(t, []string{"model.weights_sha256: recorded " + id.WeightsSHA256 + ", now " + other.WeightsSHA256},
				recorder.ModelMismatch(id, other))
		})
	}
}

func TestWrittenBundleOpensInNumpy(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skip("no numpy (apt-get install python3-numpy)")
	}
	m := load(t, "gpt2-tiny")
	rec := record(t, m, options(bundle.LevelFull, bundle.Float16), bundle.Input{InputIDs: []int{1, 2, 3},
		Generate: &bundle.Generate{MaxNewTokens: 3}})
	id, err := recorder.Identify(m, "gpt2-tiny", recorder.DirFiles(m, modelDir("gpt2-tiny")))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "incident")
	require.NoError(t, rec.Write(dir, recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend),
		Outcome: bundle.Outcome{Detector: "none"}}))
	script := `
import json, sys, numpy as np
d = sys.argv[1]
man = json.load(open(d + "/manifest.json"))
out = {}
for h in man["record"]["hooks"]:
    g = "block_%02d" % int(h["name"].split(".")[1]) if h["name"].startswith("blocks.") else ("embed" if h["name"].startswith("hook_") else "final")
    z = np.load(d + "/activations/" + g + ".npz")
    a = z[h["name"]]
    out[h["name"]] = [str(a.dtype), list(a.shape), float(np.abs(a[np.isfinite(a)]).sum()),
                      str(z[h["name"] + ".hash"].dtype), list(z[h["name"] + ".proj"].shape)]
print(json.dumps(out))
`
	got, err := exec.Command(python, "-c", script, dir).CombinedOutput()
	require.NoError(t, err, string(got))
	for _, h := range rec.Hooks {
		assert.Contains(t, string(got), fmt.Sprintf(`"%s": ["float16", %s`, h.Hook, strings.ReplaceAll(fmt.Sprint(h.Raw.Shape), " ", ", ")), h.Hook)
	}
	assert.Contains(t, string(got), `"uint64", [5, 8]`, "hash is uint64, proj [positions, k]")
}
