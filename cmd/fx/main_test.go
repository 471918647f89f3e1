package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/weights/npy"
)

func testModel(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

// runFx runs the CLI in-process and returns its exit code, stdout and stderr.
func runFx(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := fxMain(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func goldenNPZ(t *testing.T, name string) map[string]npy.Array {
	t.Helper()
	arrays, err := npy.ReadNPZ(filepath.Join("..", "..", "testdata", "golden", name+".npz"))
	require.NoError(t, err)
	return arrays
}

// firstSequence returns the golden's first input sequence (unpadded) as
// "id,id,...", with its length.
func firstSequence(t *testing.T, arrays map[string]npy.Array) (string, int) {
	ids, err := arrays["input_ids"].Int64()
	require.NoError(t, err)
	mask, err := arrays["attention_mask"].Int64()
	require.NoError(t, err)
	T := arrays["input_ids"].Shape[1]
	var parts []string
	for j := range T {
		if mask[j] == 1 {
			parts = append(parts, fmt.Sprint(ids[j]))
		}
	}
	return strings.Join(parts, ","), len(parts)
}

func TestRunGenerateMatchesTorchGreedy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "gpt2-default_generate.json"))
	require.NoError(t, err)
	var g struct {
		Prompts [][]int `json:"prompts"`
		Greedy  [][]int `json:"greedy"`
	}
	require.NoError(t, json.Unmarshal(data, &g))
	require.Equal(t, []int{464, 3290}, g.Prompts[0], "the golden's first prompt is \"The dog\"")

	// The embedded default model is testdata/models/gpt2-default.
	for _, model := range [][]string{nil, {testModel("gpt2-default")}} {
		args := append([]string{"run"}, model...)
		args = append(args, "--prompt", "The dog", "--max-new-tokens", fmt.Sprint(len(g.Greedy[0])), "--json")
		code, stdout, stderr := runFx(t, "", args...)
		require.Equal(t, 0, code, stderr)
		var out runOutput
		require.NoError(t, json.Unmarshal([]byte(stdout), &out))
		assert.Equal(t, []int{464, 3290}, out.InputIDs)
		assert.Equal(t, g.Greedy[0], out.OutputIDs)
		assert.True(t, strings.HasPrefix(out.Text, "The dog"))
	}
}

func TestRunDumpMatchesTorch(t *testing.T) {
	cases := []struct{ model, hook string }{
		{"gpt2-tiny", "unembed.hook_out"},
		{"gpt2-tiny", "blocks.0.hook_resid_post"},
		{"gpt2-tiny", "blocks.1.attn.hook_pattern"},
		{"bert-tiny-cls", "blocks.1.hook_resid_post"},
		{"bert-tiny-cls", "classifier.hook_out"},
	}
	for _, tc := range cases {
		t.Run(tc.model+"/"+tc.hook, func(t *testing.T) {
			arrays := goldenNPZ(t, tc.model)
			tokens, n := firstSequence(t, arrays)
			file := filepath.Join(t.TempDir(), "act.npy")
			code, _, stderr := runFx(t, "", "run", testModel(tc.model), "--tokens", tokens, "--max-new-tokens", "0",
				"--dump", tc.hook+"="+file)
			require.Equal(t, 0, code, stderr)
			f, err := os.Open(file)
			require.NoError(t, err)
			defer f.Close()
			got, err := npy.Read(f)
			require.NoError(t, err)
			gotF, err := got.Float32()
			require.NoError(t, err)

			want := arrays[tc.hook]
			wantF, err := want.Float32()
			require.NoError(t, err)
			assert.Equal(t, want.Shape[1:], got.Shape, "batch dimension dropped")
			// The golden's first sequence is unpadded (length n = T), so its
			// slice of the batch is the whole reference.
			require.Equal(t, arrays["input_ids"].Shape[1], n, "the first sequence is unpadded")
			ref := wantF[:len(gotF)]
			diff, scale := 0.0, 0.0
			for i := range ref {
				if math.IsInf(float64(ref[i]), 0) {
					assert.Equal(t, ref[i], gotF[i])
					continue
				}
				diff = math.Max(diff, math.Abs(float64(gotF[i]-ref[i])))
				scale = math.Max(scale, math.Abs(float64(ref[i])))
			}
			assert.LessOrEqual(t, diff, 1e-4*scale)
		})
	}
}

func TestRunClassifies(t *testing.T) {
	arrays := goldenNPZ(t, "bert-tiny-cls")
	tokens, _ := firstSequence(t, arrays)
	code, stdout, stderr := runFx(t, "", "run", testModel("bert-tiny-cls"), "--tokens", tokens, "--json")
	require.Equal(t, 0, code, stderr)
	var out runOutput
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	logits, err := arrays["classifier.hook_out"].Float32()
	require.NoError(t, err)
	// PyTorch's logits for the first sequence, softmaxed.
	l0, l1 := float64(logits[0]), float64(logits[1])
	pNeg := 1 / (1 + math.Exp(l1-l0))
	assert.InDelta(t, pNeg, out.Probabilities["NEGATIVE"], 1e-5)
	assert.InDelta(t, 1-pNeg, out.Probabilities["POSITIVE"], 1e-5)

	code, stdout, stderr = runFx(t, "", "run", testModel("bert-tiny-cls"), "--prompt", "a gripping, funny film")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `^(NEGATIVE|POSITIVE)\n`, stdout)
}

func TestTokenize(t *testing.T) {
	cases := []struct {
		name, model, in, want string
	}{
		{"gpt2 published ids", testModel("gpt2-default"), `["Hello world", "Hello, world!", "The dog"]`,
			"[[15496,995],[15496,11,995,0],[464,3290]]\n"},
		{"embedded gpt2", "", `["The dog"]`, "[[464,3290]]\n"},
		{"bert with specials", testModel("bert-tiny-cls"), `["hello world"]`, "[[101,7592,2088,102]]\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"tokenize", "--json"}
			if tc.model != "" {
				args = append(args, tc.model)
			}
			code, stdout, stderr := runFx(t, tc.in, args...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, tc.want, stdout)
		})
	}
	code, stdout, _ := runFx(t, "Hello world\nThe dog\n", "tokenize")
	assert.Equal(t, 0, code)
	assert.Equal(t, "15496 995\n464 3290\n", stdout)
}

func TestInspect(t *testing.T) {
	code, stdout, stderr := runFx(t, "", "inspect", testModel("gpt2-tiny-bf16"))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "transformer.h.0.attn.c_attn.weight")
	assert.Contains(t, stdout, "BF16")
	assert.Contains(t, stdout, "parameters")

	code, stdout, stderr = runFx(t, "", "inspect", testModel("bert-tiny-mlm"), "--json")
	require.Equal(t, 0, code, stderr)
	var out inspectOutput
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	assert.Contains(t, out.Hooks, "blocks.2.hook_resid_post")
	assert.Positive(t, out.Parameters)
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown hook in --dump", []string{"run", testModel("gpt2-tiny"), "--tokens", "1,2", "--dump", "blocks.7.hook_resid_post=x.npy"}, "blocks.7.hook_resid_post"},
		{"bad --dump", []string{"run", "--prompt", "x", "--dump", "nofile"}, "HOOK=FILE.npy"},
		{"token id outside vocabulary", []string{"run", testModel("gpt2-tiny"), "--tokens", "1,512"}, "token id 512"},
		{"prompt longer than n_positions", []string{"run", testModel("gpt2-tiny"), "--tokens", strings.Repeat("1,", 64) + "1"}, "exceed"},
		{"missing model", []string{"run", "/nonexistent/model", "--prompt", "x"}, "/nonexistent/model"},
		{"both inputs", []string{"run", "--prompt", "x", "--tokens", "1"}, "exactly one"},
		{"cuda without a backend", []string{"run", "--prompt", "x", "--device", "cuda"}, "--device cuda"},
		{"unknown flag", []string{"run", "--frob"}, "frob"},
		{"tokenize bad json", []string{"tokenize", "--json"}, "JSON array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runFx(t, "{", tc.args...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// goldenIDs returns an int64 golden array as "id,id,...".
func goldenIDs(t *testing.T, a npy.Array) string {
	v, err := a.Int64()
	require.NoError(t, err)
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

func readNPY(t *testing.T, path string) []float32 {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	a, err := npy.Read(f)
	require.NoError(t, err)
	v, err := a.Float32()
	require.NoError(t, err)
	return v
}

func assertClose(t *testing.T, want, got []float32, msg string) {
	require.Len(t, got, len(want), msg)
	diff, scale := 0.0, 0.0
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	assert.LessOrEqual(t, diff, 1e-4*scale, msg)
}

// TestRunInterveneMatchesTorch runs golden intervention cases
// (testdata/gen/make_interventions.py) through the CLI: a neuron zeroed, a
// head patched from a cache file that fx run --cache wrote, a steering
// vector from .npy.
func TestRunInterveneMatchesTorch(t *testing.T) {
	arrays, err := npy.ReadNPZ(filepath.Join("..", "..", "testdata", "golden", "interventions.npz"))
	require.NoError(t, err)
	dir := t.TempDir()
	model := testModel("gpt2-tiny")
	input := goldenIDs(t, arrays["gpt2-tiny:input_ids"])
	source := goldenIDs(t, arrays["gpt2-tiny:patch_source_ids"])
	steer, err := arrays["gpt2-tiny:steer"].Float32()
	require.NoError(t, err)
	require.NoError(t, npy.SaveFloat32(filepath.Join(dir, "steer.npy"), steer, []int{len(steer)}))

	cleanNPZ := filepath.Join(dir, "clean.npz")
	code, _, stderr := runFx(t, "", "run", model, "--tokens", source, "--max-new-tokens", "0",
		"--cache", cleanNPZ, "--cache-hooks", "blocks.*.attn.hook_z")
	require.Equal(t, 0, code, stderr)

	cases := []struct {
		name, intervene, want string
	}{
		{"zero a neuron", "blocks.1.mlp.hook_post[pos=3,i=17]=zero", "gpt2-tiny:a:logits"},
		{"patch a head", "blocks.0.attn.hook_z[head=2]=patch:" + cleanNPZ, "gpt2-tiny:b:logits"},
		{"steering vector", "blocks.0.hook_resid_post=add:" + filepath.Join(dir, "steer.npy"), "gpt2-tiny:c:logits"},
		{"scale a pattern", "blocks.1.attn.hook_pattern[head=1]=scale:0.5", "gpt2-tiny:d:logits"},
		{"set a range", "blocks.0.hook_resid_mid[pos=-1,i=0:10]=set:1.5", "gpt2-tiny:e:logits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "logits.npy")
			code, _, stderr := runFx(t, "", "run", model, "--tokens", input, "--max-new-tokens", "0",
				"--intervene", tc.intervene, "--dump", "unembed.hook_out="+out)
			require.Equal(t, 0, code, stderr)
			want, err := arrays[tc.want].Float32()
			require.NoError(t, err)
			assertClose(t, want, readNPY(t, out), tc.intervene)
		})
	}
}

func TestPatchSweep(t *testing.T) {
	model := testModel("gpt2-default")
	png := filepath.Join(t.TempDir(), "heads.png")
	code, stdout, stderr := runFx(t, "", "patch", model,
		"--clean", "When John and Mary went to the store, John gave a drink to",
		"--corrupt", "When John and Mary went to the store, Mary gave a drink to",
		"--metric", "logit-diff: Mary, John",
		"--sites", "blocks.*.attn.hook_z[head=*]", "--sites", "blocks.0.hook_resid_pre", "--png", png)
	require.Equal(t, 0, code, stderr)
	var sw struct {
		Clean, Corrupt float64
		Results        []struct {
			Site       string
			Normalized float64
		}
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &sw))
	require.Len(t, sw.Results, 2*2+1)
	assert.Equal(t, "blocks.1.attn.hook_z[head=1]", sw.Results[3].Site)
	// Patching the whole residual stream into block 0 is the clean run.
	assert.Equal(t, "blocks.0.hook_resid_pre", sw.Results[4].Site)
	assert.InDelta(t, 1.0, sw.Results[4].Normalized, 1e-9)
	st, err := os.Stat(png)
	require.NoError(t, err)
	assert.Positive(t, st.Size())

	code, _, stderr = runFx(t, "", "patch", model, "--clean", "a b", "--corrupt", "a b c", "--metric", "logprob: a", "--sites", "blocks.0.hook_resid_pre")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "equal lengths")
}
