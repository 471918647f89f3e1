// Package bundle reads and writes fx-bundle/1, the self-contained record of
// one incident: the model's identity, the input and output, activations and
// their sketches, external calls, per-step generation state and metrics,
// every file named in manifest.json with its sha256 and size.
//
// A bundle is written into a temporary directory and renamed when complete,
// and read back only after every name, size and checksum has been checked
// against the manifest; nothing in it is trusted before that.
//
// Versioning: manifest.json's "format" names the schema. A reader accepts
// only the version it knows and rejects unknown fields, so any change to
// the files or fields of a bundle is a new version ("fx-bundle/2"), and an
// older fx refuses it with a message that names both versions.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Format is the format string of the bundles this package writes and reads.
const Format = "fx-bundle/1"

// ManifestName is the manifest's file name at the bundle's root.
const ManifestName = "manifest.json"

// The files of a bundle besides the manifest and the activations.
const (
	InputsName        = "inputs.jsonl"
	ExternalCallsName = "external_calls.jsonl"
	StateDiffsName    = "state_diffs.json"
	MetricsName       = "metrics.json"
	// ActivationsDir holds one .npz per group of hooks (see Group).
	ActivationsDir = "activations"
)

// Sentinel errors wrapped by this package's errors, for callers that branch
// on the cause.
var (
	// ErrInvalid marks a bundle, manifest or archive that breaks the format
	// or contradicts itself: a bad name, a checksum or size that does not
	// match, a missing or unlisted file, a lying manifest.
	ErrInvalid = errors.New("invalid bundle")
	// ErrUnsupported marks a well-formed bundle of a format version this
	// package does not read.
	ErrUnsupported = errors.New("unsupported bundle format")
	// ErrTooLarge marks an entry, a file or decompressed data beyond the
	// reader's Limits.
	ErrTooLarge = errors.New("too large")
)

// Record levels.
const (
	// LevelMinimal records inputs, outputs and per-hook, per-position
	// sketches: enough to prove that a replay matches.
	LevelMinimal = "minimal"
	// LevelLayer adds the residual stream of every block.
	LevelLayer = "layer"
	// LevelFull adds every recorded hook's activation.
	LevelFull = "full"
)

// Storage dtypes of recorded activations.
const (
	Float16 = "float16"
	Float32 = "float32"
)

// HashXXH64 names the hash of exact activation bytes used in sketches: XXH64
// with seed 0 over the float32 values in little-endian byte order.
const HashXXH64 = "xxh64"

// SketchStats lists the per-position sketch statistics, each stored as the
// npz entry HOOK.STAT (see HookRecord).
var sketchStats = []string{"count", "mean", "l2", "min", "max", "proj", "hash"}

// SketchStats returns the names of the per-position sketch entries.
func SketchStats() []string { return slices.Clone(sketchStats) }

// Manifest is manifest.json: what a bundle holds and how to check it.
type Manifest struct {
	// Format is always Format ("fx-bundle/1").
	Format string `json:"format"`
	// Created is when the recording finished (UTC).
	Created time.Time `json:"created"`
	Model   Model     `json:"model"`
	Runtime Runtime   `json:"runtime"`
	Record  Record    `json:"record"`
	Outcome Outcome   `json:"outcome"`
	// Files lists every file of the bundle but the manifest, with its
	// sha256 and size, sorted by path.
	Files []FileEntry `json:"files"`
}

// Model identifies the model files an incident was recorded with.
type Model struct {
	// Name is the model as it was named to fx: a directory, a hub name or
	// "embedded:gpt2-default".
	Name string `json:"name"`
	// Type is the config's model_type: "gpt2" or "bert".
	Type string `json:"type"`
	// DType lists the weights' storage dtypes ("F32", "F16,BF16").
	DType string `json:"dtype"`
	// ConfigSHA256 is the sha256 of config.json.
	ConfigSHA256 string `json:"config_sha256"`
	// WeightsSHA256 is the sha256 of the weight files' bytes concatenated in
	// file name order: for one model.safetensors, its sha256sum.
	WeightsSHA256 string `json:"weights_sha256"`
	// Tokenizer says where the tokenizer came from: "files" (the model
	// directory's vocab.json and merges.txt, or vocab.txt) or an embedded
	// default such as "embedded:gpt2".
	Tokenizer string `json:"tokenizer"`
	// TokenizerSHA256 is the sha256 of the tokenizer files concatenated, or
	// for an embedded tokenizer of its vocabulary (each token's length as a
	// little-endian uint32, then its bytes, in id order).
	TokenizerSHA256 string `json:"tokenizer_sha256"`
	// Files lists the model files by base name with their sha256 and size.
	Files []FileEntry `json:"files"`
}

// Runtime describes the software and hardware of the recording.
type Runtime struct {
	FxVersion string `json:"fx_version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Backend is the engine backend's name with its kernels ("cpu/avx2"); a replay is bit for bit
	// only on the same backend.
	Backend string `json:"backend"`
	Device  string `json:"device"`
}

// Record holds the recording settings and what was recorded.
type Record struct {
	// Level is LevelMinimal, LevelLayer or LevelFull.
	Level string `json:"level"`
	// DType is the storage dtype of stored activations: Float16 or Float32.
	DType string `json:"dtype"`
	// Positions is the number of token positions the model ran on: the
	// prompt plus every generated token fed back (the last one never is).
	Positions int `json:"positions"`
	// Sketch holds the sketch settings.
	Sketch Sketch `json:"sketch"`
	// CompressionLevel is the deflate level of the .npz entries (0 stores).
	CompressionLevel int `json:"compression_level"`
	// Hooks lists every recorded hook point in forward order.
	Hooks []HookInfo `json:"hooks"`
}

// Sketch holds the settings of the per-position sketches.
type Sketch struct {
	// K is the dimension of the random projection.
	K int `json:"k"`
	// Seed seeds the projection's random signs.
	Seed uint64 `json:"seed"`
	// Hash is the hash of exact bytes: HashXXH64.
	Hash string `json:"hash"`
}

// HookInfo describes one recorded hook point.
type HookInfo struct {
	// Name is the hook point, e.g. "blocks.3.mlp.hook_post".
	Name string `json:"name"`
	// Positions is the number of sketched positions: Record.Positions, or
	// 1 for a hook without a position axis (pooler.hook_out).
	Positions int `json:"positions"`
	// Shape is the activation over the whole run, batch dimension dropped:
	// [positions, ...] for most hooks, [heads, positions, positions] for
	// attention scores and patterns (masked entries hold -Inf and 0).
	Shape []int `json:"shape"`
	// Stored is true when the activation itself is in the bundle, not only
	// its sketches.
	Stored bool `json:"stored"`
}

// Outcome is a detector's verdict on the recorded run.
type Outcome struct {
	// Detector names the detector and its argument ("contains:HACKED"), or
	// "none".
	Detector string `json:"detector"`
	// Failed is true when the detector found the failure.
	Failed bool `json:"failed"`
	// Detail says what the detector saw.
	Detail string `json:"detail"`
}

// FileEntry is one file with its sha256 (lowercase hex) and size in bytes.
type FileEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// maxHooks and maxPositions bound what a manifest may claim, so that
// derived allocations stay bounded.
const (
	maxHooks     = 1 << 16
	maxPositions = 1 << 20
	maxSketchK   = 1024
	maxRank      = 8
)

var (
	sha256Re   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hookNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$`)
)

// ParseManifest decodes and validates manifest.json. Unknown fields, a
// format other than Format, and any field that breaks the schema are
// errors naming the field.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", ManifestName, ErrInvalid, err)
	}
	if probe.Format != Format {
		if strings.HasPrefix(probe.Format, "fx-bundle/") {
			return nil, fmt.Errorf("%s: format %q: %w (this fx reads %s)", ManifestName, probe.Format, ErrUnsupported, Format)
		}
		return nil, fmt.Errorf("%s: format %q: %w: not an fx bundle (want %s)", ManifestName, probe.Format, ErrInvalid, Format)
	}
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", ManifestName, ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: %w: data after the JSON object", ManifestName, ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the manifest against the schema of fx-bundle/1: required
// fields, value ranges, file names, and that the listed files are exactly
// the ones the record implies.
func (m *Manifest) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: field %s: %w: %s", ManifestName, field, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if m.Format != Format {
		return fmt.Errorf("%s: field format: %q: %w (this fx reads %s)", ManifestName, m.Format, ErrUnsupported, Format)
	}
	if m.Created.IsZero() {
		return bad("created", "missing")
	}
	md := m.Model
	switch {
	case md.Name == "":
		return bad("model.name", "missing")
	case md.Type != "gpt2" && md.Type != "bert":
		return bad("model.type", "%q is not gpt2 or bert", md.Type)
	case !sha256Re.MatchString(md.ConfigSHA256):
		return bad("model.config_sha256", "%q is not a lowercase hex sha256", md.ConfigSHA256)
	case !sha256Re.MatchString(md.WeightsSHA256):
		return bad("model.weights_sha256", "%q is not a lowercase hex sha256", md.WeightsSHA256)
	case !sha256Re.MatchString(md.TokenizerSHA256):
		return bad("model.tokenizer_sha256", "%q is not a lowercase hex sha256", md.TokenizerSHA256)
	case md.Tokenizer == "":
		return bad("model.tokenizer", "missing")
	}
	for i, f := range md.Files {
		field := fmt.Sprintf("model.files[%d]", i)
		if f.Path == "" || strings.ContainsAny(f.Path, "/\\\x00") || f.Path == "." || f.Path == ".." {
			return bad(field+".path", "%q is not a plain file name", f.Path)
		}
		if !sha256Re.MatchString(f.SHA256) {
			return bad(field+".sha256", "%q is not a lowercase hex sha256", f.SHA256)
		}
		if f.Size < 0 {
			return bad(field+".size", "%d < 0", f.Size)
		}
	}
	if m.Runtime.Backend == "" {
		return bad("runtime.backend", "missing")
	}
	if err := m.Record.validate(bad); err != nil {
		return err
	}
	if m.Outcome.Detector == "" {
		return bad("outcome.detector", "missing (\"none\" when no detector ran)")
	}
	return m.validateFiles(bad)
}

func (r *Record) validate(bad func(field, format string, args ...any) error) error {
	switch r.Level {
	case LevelMinimal, LevelLayer, LevelFull:
	default:
		return bad("record.level", "%q is not minimal, layer or full", r.Level)
	}
	if r.DType != Float16 && r.DType != Float32 {
		return bad("record.dtype", "%q is not float16 or float32", r.DType)
	}
	if r.Positions < 1 || r.Positions > maxPositions {
		return bad("record.positions", "%d is outside [1, %d]", r.Positions, maxPositions)
	}
	if r.Sketch.K < 1 || r.Sketch.K > maxSketchK {
		return bad("record.sketch.k", "%d is outside [1, %d]", r.Sketch.K, maxSketchK)
	}
	if r.Sketch.Hash != HashXXH64 {
		return bad("record.sketch.hash", "%q is not %s", r.Sketch.Hash, HashXXH64)
	}
	if r.CompressionLevel < 0 || r.CompressionLevel > 9 {
		return bad("record.compression_level", "%d is outside [0, 9]", r.CompressionLevel)
	}
	if len(r.Hooks) == 0 || len(r.Hooks) > maxHooks {
		return bad("record.hooks", "%d hooks (want 1 to %d)", len(r.Hooks), maxHooks)
	}
	seen := map[string]bool{}
	for i, h := range r.Hooks {
		field := fmt.Sprintf("record.hooks[%d]", i)
		if !hookNameRe.MatchString(h.Name) || len(h.Name) > 200 {
			return bad(field+".name", "%q is not a hook point name", h.Name)
		}
		if seen[h.Name] {
			return bad(field+".name", "%q is listed twice", h.Name)
		}
		seen[h.Name] = true
		if h.Positions != r.Positions && h.Positions != 1 {
			return bad(field+".positions", "%d for hook %s (the run has %d positions)", h.Positions, h.Name, r.Positions)
		}
		if err := checkShape(h.Shape); err != nil {
			return bad(field+".shape", "%v for hook %s: %v", h.Shape, h.Name, err)
		}
		if h.Positions > 1 && !shapeHasPositions(h.Shape, h.Positions) {
			return bad(field+".shape", "%v for hook %s has no axis of its %d positions", h.Shape, h.Name, h.Positions)
		}
		if h.Stored && r.Level == LevelMinimal {
			return bad(field+".stored", "hook %s is stored, but level minimal stores no activations", h.Name)
		}
	}
	return nil
}

// checkShape checks a stored shape's rank and that its element count fits
// in an int64 with room to spare.
func checkShape(shape []int) error {
	if len(shape) == 0 || len(shape) > maxRank {
		return fmt.Errorf("rank %d is outside [1, %d]", len(shape), maxRank)
	}
	n := int64(1)
	for _, d := range shape {
		if d < 1 || d > 1<<31 {
			return fmt.Errorf("dimension %d is outside [1, 2^31]", d)
		}
		n *= int64(d)
		if n > 1<<40 {
			return fmt.Errorf("more than 2^40 elements")
		}
	}
	return nil
}

// shapeHasPositions reports whether shape has the position axis of a hook
// with p positions: the first axis, or the last two of an attention
// pattern [heads, p, p].
func shapeHasPositions(shape []int, p int) bool {
	return shape[0] == p || (len(shape) == 3 && shape[1] == p && shape[2] == p)
}

// validateFiles checks the file list: valid, unique, sorted names; the
// required files present; and exactly one activations file per hook group.
func (m *Manifest) validateFiles(bad func(field, format string, args ...any) error) error {
	want := map[string]bool{InputsName: true, ExternalCallsName: true, StateDiffsName: true, MetricsName: true}
	for _, g := range m.Groups() {
		want[ActivationsPath(g)] = true
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		field := fmt.Sprintf("files[%d]", i)
		if err := CheckPath(f.Path); err != nil {
			return fmt.Errorf("%s: field %s.path: %w", ManifestName, field, err)
		}
		if seen[f.Path] {
			return bad(field+".path", "%q is listed twice", f.Path)
		}
		seen[f.Path] = true
		if i > 0 && m.Files[i-1].Path > f.Path {
			return bad(field+".path", "%q is out of order (files are sorted by path)", f.Path)
		}
		if !want[f.Path] {
			return bad(field+".path", "%q is not a file this record implies (no recorded hook belongs to it)", f.Path)
		}
		if !sha256Re.MatchString(f.SHA256) {
			return bad(field+".sha256", "%q is not a lowercase hex sha256", f.SHA256)
		}
		if f.Size < 0 {
			return bad(field+".size", "%d < 0", f.Size)
		}
	}
	for _, p := range sortedKeys(want) {
		if !seen[p] {
			return bad("files", "%s is missing from the list", p)
		}
	}
	return nil
}

// File returns the manifest's entry for path.
func (m *Manifest) File(path string) (FileEntry, bool) {
	for _, f := range m.Files {
		if f.Path == path {
			return f, true
		}
	}
	return FileEntry{}, false
}

// Groups returns the activation groups of the recorded hooks, in forward
// order.
func (m *Manifest) Groups() []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range m.Record.Hooks {
		g := Group(h.Name)
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// HooksOf returns the recorded hooks of a group, in forward order.
func (m *Manifest) HooksOf(group string) []HookInfo {
	var out []HookInfo
	for _, h := range m.Record.Hooks {
		if Group(h.Name) == group {
			out = append(out, h)
		}
	}
	return out
}

// Hook returns the recorded hook of the given name.
func (m *Manifest) Hook(name string) (HookInfo, bool) {
	for _, h := range m.Record.Hooks {
		if h.Name == name {
			return h, true
		}
	}
	return HookInfo{}, false
}

// Group returns the activations file group of a hook point: "block_03" for
// blocks.3.*, "embed" for the embeddings (hook_embed, embed.*), "final"
// for everything after the blocks (ln_final, unembed, pooler, classifier).
func Group(hook string) string {
	if rest, ok := strings.CutPrefix(hook, "blocks."); ok {
		num, _, _ := strings.Cut(rest, ".")
		n := 0
		for _, c := range num {
			if c < '0' || c > '9' || n > 1e6 {
				return "final"
			}
			n = n*10 + int(c-'0')
		}
		if num == "" {
			return "final"
		}
		return fmt.Sprintf("block_%02d", n)
	}
	if strings.HasPrefix(hook, "hook_") || strings.HasPrefix(hook, "embed.") {
		return "embed"
	}
	return "final"
}

// ActivationsPath returns the bundle path of a group's .npz.
func ActivationsPath(group string) string { return ActivationsDir + "/" + group + ".npz" }

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
