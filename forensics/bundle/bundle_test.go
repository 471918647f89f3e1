package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const zeroSHA = "0000000000000000000000000000000000000000000000000000000000000000"

// testRecords returns the activations of a small synthetic recording with
// T positions: an unstored hook, a stored float16 residual and a stored
// attention pattern.
func testRecords(T int, dtype string) ([]HookInfo, []HookRecord) {
	sk := func(name string, p int, raw *Raw) HookRecord {
		r := HookRecord{Hook: name, Raw: raw}
		for i := range p {
			r.Count = append(r.Count, 4)
			r.Mean = append(r.Mean, float32(i)+0.5)
			r.L2 = append(r.L2, float32(i)*2)
			r.Min = append(r.Min, -float32(i))
			r.Max = append(r.Max, float32(i)+1)
			r.Hash = append(r.Hash, uint64(i)*0x9e3779b97f4a7c15+1<<63)
			for k := range 3 {
				r.Proj = append(r.Proj, float32(i*3+k)/7)
			}
		}
		return r
	}
	raw := func(shape []int) *Raw {
		n := 1
		for _, d := range shape {
			n *= d
		}
		r := &Raw{Shape: shape, DType: dtype}
		for i := range n {
			v := float32(i)/3 - 1
			if dtype == Float16 {
				r.F16 = append(r.F16, uint16(i*37%0x7bff))
			} else {
				r.F32 = append(r.F32, v)
			}
		}
		return r
	}
	infos := []HookInfo{
		{Name: "hook_embed", Positions: T, Shape: []int{T, 4}},
		{Name: "blocks.0.attn.hook_pattern", Positions: T, Shape: []int{2, T, T}, Stored: true},
		{Name: "blocks.0.hook_resid_post", Positions: T, Shape: []int{T, 4}, Stored: true},
		{Name: "ln_final.hook_normalized", Positions: T, Shape: []int{T, 4}},
	}
	var recs []HookRecord
	for _, h := range infos {
		var r *Raw
		if h.Stored {
			r = raw(h.Shape)
		}
		recs = append(recs, sk(h.Name, h.Positions, r))
	}
	return infos, recs
}

// testManifest returns the manifest of the synthetic recording.
func testManifest(infos []HookInfo, T int, dtype string) *Manifest {
	return &Manifest{
		Format:  Format,
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Model: Model{Name: "gpt2-tiny", Type: "gpt2", DType: "F32", ConfigSHA256: zeroSHA, WeightsSHA256: zeroSHA,
			Tokenizer: "embedded:gpt2", TokenizerSHA256: zeroSHA},
		Runtime: Runtime{FxVersion: "test", Backend: "cpu", Device: "cpu"},
		Record: Record{Level: LevelLayer, DType: dtype, Positions: T, Sketch: Sketch{K: 3, Seed: 1, Hash: HashXXH64},
			CompressionLevel: 6, Hooks: infos},
		Outcome: Outcome{Detector: "contains:x", Failed: true, Detail: "found"},
	}
}

// writeTestBundle writes a valid synthetic bundle at dir: a 2-token prompt
// and 2 generated tokens (3 positions).
func writeTestBundle(t *testing.T, dir, dtype string) *Manifest {
	t.Helper()
	const T = 3
	infos, recs := testRecords(T, dtype)
	w, err := Create(dir, WriterOptions{CompressionLevel: 6})
	require.NoError(t, err)
	require.NoError(t, WriteJSONLines(w, InputsName, []Input{{Text: "ab", InputIDs: []int{1, 2},
		Generate: &Generate{MaxNewTokens: 2, EOS: 9}, OutputIDs: []int{5, 6}, OutputText: "xy"}}))
	groups := map[string][]HookRecord{}
	var order []string
	for _, r := range recs {
		g := Group(r.Hook)
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], r)
	}
	for _, g := range order {
		require.NoError(t, w.WriteActivations(g, groups[g]))
	}
	require.NoError(t, w.WriteJSON(StateDiffsName, StateDiffs{Steps: []StepState{
		{Step: 0, Token: 5, KVCacheLen: 2, RNGState: []byte{1, 2}, KV: &KVState{K: []string{"aa"}, V: []string{"bb"}}},
		{Step: 1, Token: 6, KVCacheLen: 3, RNGState: []byte{3, 4}, KV: &KVState{K: []string{"cc"}, V: []string{"dd"}}},
	}}))
	require.NoError(t, WriteJSONLines(w, ExternalCallsName, []ExternalCall{
		{Seq: 0, Name: "tool:search", Request: []byte(`{"q":"x"}`), Response: []byte("ok")},
		{Seq: 1, Name: "http:GET", Request: []byte{0xff, 0}, Response: []byte{1, 2, 0x80}},
	}))
	require.NoError(t, w.WriteJSON(MetricsName, Metrics{TimingsS: map[string]float64{"run": 1}, SizesBytes: w.Sizes()}))
	m := testManifest(infos, T, dtype)
	require.NoError(t, w.Commit(m))
	return m
}

func TestRoundTrip(t *testing.T) {
	for _, dtype := range []string{Float16, Float32} {
		t.Run(dtype, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "incident")
			writeTestBundle(t, dir, dtype)
			b, err := Open(dir, DefaultLimits())
			require.NoError(t, err)
			require.NoError(t, b.Verify())
			assert.Equal(t, []int{5, 6}, b.Input.OutputIDs)
			assert.Len(t, b.StateDiffs.Steps, 2)
			require.Len(t, b.ExternalCalls, 2)
			assert.Equal(t, []byte{0xff, 0}, b.ExternalCalls[1].Request, "binary requests survive as base64")
			assert.Equal(t, `{"q":"x"}`, string(b.ExternalCalls[0].Request))
			got, err := b.Activations()
			require.NoError(t, err)
			_, want := testRecords(3, dtype)
			assert.Equal(t, want, got)
			assert.Equal(t, []string{"hook_embed", "blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post", "ln_final.hook_normalized"}, b.Hooks())
			var files []string
			for _, f := range b.Manifest.Files {
				files = append(files, f.Path)
			}
			assert.Equal(t, []string{"activations/block_00.npz", "activations/embed.npz", "activations/final.npz",
				ExternalCallsName, InputsName, MetricsName, StateDiffsName}, files)
		})
	}
}

func TestGroup(t *testing.T) {
	for _, tc := range []struct{ hook, group string }{
		{"hook_embed", "embed"}, {"embed.hook_token_type_embed", "embed"}, {"blocks.0.hook_resid_pre", "block_00"},
		{"blocks.11.attn.hook_z", "block_11"}, {"blocks.123.mlp.hook_post", "block_123"}, {"ln_final.hook_scale", "final"},
		{"unembed.hook_out", "final"}, {"classifier.hook_out", "final"}, {"blocks.x.hook_q", "final"},
	} {
		assert.Equal(t, tc.group, Group(tc.hook), tc.hook)
	}
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct{ path, problem string }{
		{InputsName, ""}, {"activations/block_03.npz", ""}, {"activations/embed.npz", ""},
		{"", "empty path"},
		{"/etc/passwd", "is absolute"},
		{`C:\x`, "is absolute"},
		{"../inputs.jsonl", "escapes the bundle"},
		{"activations/../../x", "escapes the bundle"},
		{`activations\block_00.npz`, "backslash"},
		{"activations//block_00.npz", "not clean"},
		{"./inputs.jsonl", "not clean"},
		{"evil.sh", "not a file of fx-bundle/1"},
		{"activations/block_0.npz", "not a file of fx-bundle/1"},
		{"activations/x/block_00.npz", "not a file of fx-bundle/1"},
		{"a\x00b", "NUL"},
	} {
		err := CheckPath(tc.path)
		if tc.problem == "" {
			assert.NoError(t, err, tc.path)
			continue
		}
		require.Error(t, err, tc.path)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), tc.problem, tc.path)
	}
}

// rewriteManifest edits manifest.json as JSON.
func rewriteManifest(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, ManifestName)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	data, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, data, 0o644))
}

// replaceFile writes data as bundle file p and fixes its manifest entry, as
// a forger who knows the format would.
func replaceFile(t *testing.T, dir, p string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), data, 0o644))
	sum := sha256.Sum256(data)
	rewriteManifest(t, dir, func(m map[string]any) {
		for _, f := range m["files"].([]any) {
			e := f.(map[string]any)
			if e["path"] == p {
				e["sha256"] = hex.EncodeToString(sum[:])
				e["size"] = len(data)
			}
		}
	})
}

// filesEntry returns manifest["files"][i] for path p.
func filesEntry(m map[string]any, p string) map[string]any {
	for _, f := range m["files"].([]any) {
		if e := f.(map[string]any); e["path"] == p {
			return e
		}
	}
	return nil
}

func TestOpenRefusesHostileBundles(t *testing.T) {
	npzBomb := func(t *testing.T) []byte {
		// One entry of 8 MiB of zeros deflates to a few kB.
		big := make([]float32, 2<<20)
		var sb strings.Builder
		require.NoError(t, WriteActivations(&sb, []HookRecord{{Hook: "hook_embed", Count: make([]int64, 3), Mean: make([]float32, 3),
			L2: make([]float32, 3), Min: make([]float32, 3), Max: make([]float32, 3), Proj: make([]float32, 9), Hash: make([]uint64, 3),
			Raw: &Raw{Shape: []int{len(big)}, DType: Float32, F32: big}}}, 9))
		return []byte(sb.String())
	}
	cases := []struct {
		name    string
		limits  func(*Limits)
		corrupt func(t *testing.T, dir string)
		problem string
		sentry  error
		verify  bool // the problem shows only when activations are decoded
	}{
		{name: "no manifest", corrupt: func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, ManifestName))) },
			problem: "no manifest.json", sentry: ErrInvalid},
		{name: "manifest not JSON", corrupt: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestName), []byte("{not json"), 0o644))
		}, problem: "manifest.json", sentry: ErrInvalid},
		{name: "newer format", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { m["format"] = "fx-bundle/2" })
		}, problem: `format "fx-bundle/2"`, sentry: ErrUnsupported},
		{name: "unknown manifest field", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { m["extra"] = 1 })
		}, problem: `unknown field "extra"`, sentry: ErrInvalid},
		{name: "absolute path", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { filesEntry(m, InputsName)["path"] = "/etc/passwd" })
		}, problem: `"/etc/passwd" is absolute`, sentry: ErrInvalid},
		{name: "dot dot", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { filesEntry(m, InputsName)["path"] = "../inputs.jsonl" })
		}, problem: "escapes the bundle", sentry: ErrInvalid},
		{name: "file listed twice", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				files := m["files"].([]any)
				m["files"] = append(files[:1], files...)
			})
		}, problem: "listed twice", sentry: ErrInvalid},
		{name: "required file unlisted", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				var keep []any
				for _, f := range m["files"].([]any) {
					if f.(map[string]any)["path"] != MetricsName {
						keep = append(keep, f)
					}
				}
				m["files"] = keep
			})
		}, problem: "metrics.json is missing from the list", sentry: ErrInvalid},
		{name: "symlinked file", corrupt: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "activations", "block_00.npz")
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Symlink("/etc/passwd", p))
		}, problem: "activations/block_00.npz: invalid bundle: is a symbolic link", sentry: ErrInvalid},
		{name: "symlinked manifest", corrupt: func(t *testing.T, dir string) {
			p := filepath.Join(dir, ManifestName)
			require.NoError(t, os.Rename(p, filepath.Join(t.TempDir(), "m.json")))
			require.NoError(t, os.Symlink("/etc/passwd", p))
		}, problem: "manifest.json: invalid bundle: is a symbolic link", sentry: ErrInvalid},
		{name: "symlinked directory", corrupt: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "activations")
			other := filepath.Join(t.TempDir(), "elsewhere")
			require.NoError(t, os.Rename(p, other))
			require.NoError(t, os.Symlink(other, p))
		}, problem: "activations: invalid bundle: is a symbolic link", sentry: ErrInvalid},
		{name: "unlisted file", corrupt: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "activations", "block_07.npz"), []byte("x"), 0o644))
		}, problem: "activations/block_07.npz: invalid bundle: not listed in manifest.json", sentry: ErrInvalid},
		{name: "foreign file", corrupt: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "run.sh"), []byte("x"), 0o755))
		}, problem: `"run.sh" is not a file of fx-bundle/1`, sentry: ErrInvalid},
		{name: "unexpected directory", corrupt: func(t *testing.T, dir string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "extra"), 0o755))
		}, problem: "extra: invalid bundle: unexpected directory", sentry: ErrInvalid},
		{name: "missing file", corrupt: func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, StateDiffsName))) },
			problem: "state_diffs.json: invalid bundle: listed in manifest.json but missing", sentry: ErrInvalid},
		{name: "changed file same size", corrupt: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "activations", "embed.npz")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			data[len(data)/2] ^= 1
			require.NoError(t, os.WriteFile(p, data, 0o644))
		}, problem: "activations/embed.npz: invalid bundle: sha256", sentry: ErrInvalid},
		{name: "truncated file", corrupt: func(t *testing.T, dir string) {
			require.NoError(t, os.Truncate(filepath.Join(dir, InputsName), 10))
		}, problem: "inputs.jsonl: invalid bundle: 10 bytes, manifest.json says", sentry: ErrInvalid},
		{name: "oversize entry", limits: func(l *Limits) { l.MaxFileBytes = 100 }, corrupt: func(*testing.T, string) {},
			problem: "bytes exceed the limit of 100 per file", sentry: ErrTooLarge},
		{name: "oversize manifest", limits: func(l *Limits) { l.MaxManifestBytes = 100 }, corrupt: func(*testing.T, string) {},
			problem: "manifest.json: too large", sentry: ErrTooLarge},
		{name: "too many files", limits: func(l *Limits) { l.MaxFiles = 3 }, corrupt: func(*testing.T, string) {},
			problem: "files exceed the limit of 3", sentry: ErrTooLarge},
		{name: "lying positions", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				rec := m["record"].(map[string]any)
				rec["positions"] = 4
				for _, h := range rec["hooks"].([]any) {
					hm := h.(map[string]any)
					hm["positions"] = 4
					if shape := hm["shape"].([]any); len(shape) == 3 {
						hm["shape"] = []int{2, 4, 4}
					} else {
						hm["shape"] = []int{4, 4}
					}
				}
			})
		}, problem: "record.positions 4, but 2 input and 2 output tokens make 3", sentry: ErrInvalid},
		{name: "lying state diffs", corrupt: func(t *testing.T, dir string) {
			replaceFile(t, dir, StateDiffsName, []byte(`{"steps":[{"step":0,"token":5,"kv_cache_len":2,"rng_state":null},{"step":1,"token":7,"kv_cache_len":3,"rng_state":null}]}`))
		}, problem: "steps[1]: invalid bundle: token 7, but inputs.jsonl output_ids[1] is 6", sentry: ErrInvalid},
		{name: "lying stored flag", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				m["record"].(map[string]any)["hooks"].([]any)[0].(map[string]any)["stored"] = true
			})
		}, verify: true, problem: "activations/embed.npz: invalid bundle: entry hook_embed.npy is missing", sentry: ErrInvalid},
		{name: "hook not in manifest", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				rec := m["record"].(map[string]any)
				hooks := rec["hooks"].([]any)
				rec["hooks"] = hooks[:len(hooks)-1]
				var keep []any
				for _, f := range m["files"].([]any) {
					if f.(map[string]any)["path"] != "activations/final.npz" {
						keep = append(keep, f)
					}
				}
				m["files"] = keep
			})
		}, problem: "activations/final.npz: invalid bundle: not listed in manifest.json", sentry: ErrInvalid},
		{name: "lying shape", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) {
				m["record"].(map[string]any)["hooks"].([]any)[2].(map[string]any)["shape"] = []int{3, 5}
			})
		}, verify: true, problem: "entry blocks.0.hook_resid_post.npy has shape [3 4], want [3 5]", sentry: ErrInvalid},
		{name: "npz decompression bomb", limits: func(l *Limits) { l.MaxFileBytes = 1 << 20 }, corrupt: func(t *testing.T, dir string) {
			replaceFile(t, dir, "activations/embed.npz", npzBomb(t))
		}, verify: true, problem: "activations/embed.npz: too large: decompression bomb?", sentry: ErrTooLarge},
		{name: "npz not a zip", corrupt: func(t *testing.T, dir string) {
			replaceFile(t, dir, "activations/final.npz", []byte("PK\x03\x04 not really"))
		}, verify: true, problem: "activations/final.npz: invalid bundle", sentry: ErrInvalid},
		{name: "bad input line", corrupt: func(t *testing.T, dir string) {
			replaceFile(t, dir, InputsName, []byte(`{"text":"a","input_ids":[-1]}`+"\n"))
		}, problem: "inputs.jsonl:1: invalid bundle: input_ids[0]: -1 < 0", sentry: ErrInvalid},
		{name: "bad sha field", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { m["model"].(map[string]any)["weights_sha256"] = "xyz" })
		}, problem: "field model.weights_sha256", sentry: ErrInvalid},
		{name: "bad level", corrupt: func(t *testing.T, dir string) {
			rewriteManifest(t, dir, func(m map[string]any) { m["record"].(map[string]any)["level"] = "everything" })
		}, problem: `field record.level: invalid bundle: "everything"`, sentry: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "incident")
			writeTestBundle(t, dir, Float16)
			tc.corrupt(t, dir)
			limits := DefaultLimits()
			if tc.limits != nil {
				tc.limits(&limits)
			}
			b, err := Open(dir, limits)
			if tc.verify {
				require.NoError(t, err, "the problem is inside an activations file")
				err = b.Verify()
			}
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), tc.problem)
			assert.ErrorIs(t, err, tc.sentry)
		})
	}
}

func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "incident")
	writeTestBundle(t, dir, Float16)
	p := filepath.Join(dir, InputsName)
	require.NoError(t, os.Remove(p))
	if err := mkfifo(p); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	_, err := Open(dir, DefaultLimits())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "inputs.jsonl: invalid bundle: not a regular file")
}

func TestWriterLeavesNothingThatLooksComplete(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "incident")
	w, err := Create(final, WriterOptions{})
	require.NoError(t, err)
	require.NoError(t, WriteJSONLines(w, InputsName, []Input{{InputIDs: []int{1}}}))
	// Mid-write: only a hidden temporary directory, without a manifest.
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.True(t, strings.HasPrefix(entries[0].Name(), ".incident.partial-"), entries[0].Name())
	assert.NoFileExists(t, filepath.Join(w.TempDir(), ManifestName))
	_, err = Open(w.TempDir(), DefaultLimits())
	assert.ErrorContains(t, err, "no manifest.json")
	assert.NoDirExists(t, final)

	require.NoError(t, w.Abort())
	entries, err = os.ReadDir(parent)
	require.NoError(t, err)
	assert.Empty(t, entries, "Abort removes the temporary directory")
}

func TestWriterRefuses(t *testing.T) {
	existing := t.TempDir()
	_, err := Create(existing, WriterOptions{})
	assert.ErrorContains(t, err, "already exists")

	w, err := Create(filepath.Join(t.TempDir(), "b"), WriterOptions{})
	require.NoError(t, err)
	defer w.Abort()
	assert.ErrorContains(t, w.WriteFile("../x", nil), "escapes the bundle")
	assert.ErrorContains(t, w.WriteFile("/etc/x", nil), "is absolute")
	require.NoError(t, WriteJSONLines(w, InputsName, []Input{{InputIDs: []int{1}}}))
	assert.ErrorContains(t, WriteJSONLines(w, InputsName, []Input{{InputIDs: []int{1}}}), "written twice")
	// A manifest that does not describe what was written is not committed.
	err = w.Commit(testManifest([]HookInfo{{Name: "hook_embed", Positions: 1, Shape: []int{1, 4}}}, 1, Float16))
	assert.ErrorContains(t, err, "is missing from the list")
	assert.NoDirExists(t, w.TempDir(), "a failed Commit removes the temporary directory")
}

func TestManifestValidate(t *testing.T) {
	infos, _ := testRecords(3, Float16)
	for _, tc := range []struct {
		name    string
		edit    func(m *Manifest)
		problem string
	}{
		{"minimal stores nothing", func(m *Manifest) { m.Record.Level = LevelMinimal }, "level minimal stores no activations"},
		{"positions", func(m *Manifest) { m.Record.Hooks[0].Positions = 2 }, "record.hooks[0].positions"},
		{"shape without positions", func(m *Manifest) { m.Record.Hooks[0].Shape = []int{7, 4} }, "has no axis of its 3 positions"},
		{"huge shape", func(m *Manifest) { m.Record.Hooks[0].Shape = []int{3, 1 << 30, 1 << 30} }, "more than 2^40 elements"},
		{"hook name", func(m *Manifest) { m.Record.Hooks[0].Name = "../x" }, "is not a hook point name"},
		{"duplicate hook", func(m *Manifest) { m.Record.Hooks[1] = m.Record.Hooks[0] }, "listed twice"},
		{"sketch k", func(m *Manifest) { m.Record.Sketch.K = 0 }, "record.sketch.k"},
		{"hash", func(m *Manifest) { m.Record.Sketch.Hash = "md5" }, "record.sketch.hash"},
		{"detector", func(m *Manifest) { m.Outcome.Detector = "" }, "outcome.detector"},
		{"model file name", func(m *Manifest) { m.Model.Files = []FileEntry{{Path: "../c", SHA256: zeroSHA}} }, "model.files[0].path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testManifest(append([]HookInfo(nil), infos...), 3, Float16)
			for _, g := range m.Groups() {
				m.Files = append(m.Files, FileEntry{Path: ActivationsPath(g), SHA256: zeroSHA})
			}
			for _, p := range []string{ExternalCallsName, InputsName, MetricsName, StateDiffsName} {
				m.Files = append(m.Files, FileEntry{Path: p, SHA256: zeroSHA})
			}
			sortFiles(m)
			require.NoError(t, m.Validate())
			tc.edit(m)
			err := m.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.problem)
		})
	}
}

func sortFiles(m *Manifest) {
	files := m.Files
	for i := range files {
		for j := i + 1; j < len(files); j++ {
			if files[j].Path < files[i].Path {
				files[i], files[j] = files[j], files[i]
			}
		}
	}
}

func TestHookRecordRawAccessors(t *testing.T) {
	r := &Raw{Shape: []int{2}, DType: Float16, F16: []uint16{0x3c00, 0xc000}}
	assert.Equal(t, 2, r.Len())
	assert.Equal(t, float32(1), r.At(0))
	assert.Equal(t, float32(-2), r.At(1))
	assert.Equal(t, uint32(0xc000), r.Bits(1))
	f := &Raw{Shape: []int{1}, DType: Float32, F32: []float32{float32(math.Inf(-1))}}
	assert.Equal(t, math.Float32bits(float32(math.Inf(-1))), f.Bits(0))
}
