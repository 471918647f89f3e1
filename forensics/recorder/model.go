package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer"
)

// Roles of model files.
const (
	RoleConfig    = "config"
	RoleWeights   = "weights"
	RoleIndex     = "index"
	RoleTokenizer = "tokenizer"
)

// ModelFile is one file a model was loaded from.
type ModelFile struct {
	// Role is RoleConfig, RoleWeights, RoleIndex or RoleTokenizer.
	Role string
	// Name is the file's base name ("model.safetensors").
	Name string
	// Path is where the file is read from, unless Data is set.
	Path string
	// Data holds the file's contents for a model that is not on disk (the
	// embedded default); nil means read Path.
	Data []byte
}

// DirFiles returns the files m was loaded from when it came from the model
// directory dir: config.json, its weight files, the shard index if any,
// and the tokenizer files when the directory has them (else the model uses
// an embedded tokenizer).
func DirFiles(m *transformer.Model, dir string) []ModelFile {
	exists := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	files := []ModelFile{{Role: RoleConfig, Name: "config.json", Path: filepath.Join(dir, "config.json")}}
	for _, p := range m.Weights().Files() {
		files = append(files, ModelFile{Role: RoleWeights, Name: filepath.Base(p), Path: p})
	}
	if exists("model.safetensors.index.json") {
		files = append(files, ModelFile{Role: RoleIndex, Name: "model.safetensors.index.json", Path: filepath.Join(dir, "model.safetensors.index.json")})
	}
	var tok []string
	switch m.Config.ModelType {
	case "gpt2":
		if exists("vocab.json") && exists("merges.txt") {
			tok = []string{"vocab.json", "merges.txt"}
		}
	case "bert":
		if exists("vocab.txt") {
			tok = []string{"vocab.txt"}
		}
	}
	for _, n := range tok {
		files = append(files, ModelFile{Role: RoleTokenizer, Name: n, Path: filepath.Join(dir, n)})
	}
	return files
}

// Identify returns the identity of m, loaded as name from files: the
// sha256 of its config, of its weight files concatenated in name order, and
// of its tokenizer files (or, for an embedded tokenizer, of its vocabulary:
// each token's length as a little-endian uint32, then its bytes, in id
// order).
func Identify(m *transformer.Model, name string, files []ModelFile) (bundle.Model, error) {
	id := bundle.Model{Name: name, Type: m.Config.ModelType, Tokenizer: "files"}
	digest := func(fs []ModelFile) (string, error) {
		h := sha256.New()
		for _, f := range fs {
			if err := hashFile(h, f); err != nil {
				return "", err
			}
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	byRole := func(role string) []ModelFile {
		var out []ModelFile
		for _, f := range files {
			if f.Role == role {
				out = append(out, f)
			}
		}
		return out
	}
	cfg := byRole(RoleConfig)
	if len(cfg) != 1 {
		return id, fmt.Errorf("recorder: model %s: %d config files, want 1", name, len(cfg))
	}
	weights := byRole(RoleWeights)
	if len(weights) == 0 {
		return id, fmt.Errorf("recorder: model %s: no weight files", name)
	}
	slices.SortFunc(weights, func(a, b ModelFile) int { return strings.Compare(a.Name, b.Name) })
	var err error
	if id.ConfigSHA256, err = digest(cfg); err != nil {
		return id, err
	}
	if id.WeightsSHA256, err = digest(weights); err != nil {
		return id, err
	}
	if tok := byRole(RoleTokenizer); len(tok) > 0 {
		if id.TokenizerSHA256, err = digest(tok); err != nil {
			return id, err
		}
	} else {
		id.Tokenizer = "embedded:" + m.Config.ModelType
		id.TokenizerSHA256 = tokenizerFingerprint(m)
	}
	for _, f := range files {
		h := sha256.New()
		if err := hashFile(h, f); err != nil {
			return id, err
		}
		size := int64(len(f.Data))
		if f.Data == nil {
			st, err := os.Stat(f.Path)
			if err != nil {
				return id, fmt.Errorf("recorder: model file: %w", err)
			}
			size = st.Size()
		}
		id.Files = append(id.Files, bundle.FileEntry{Path: f.Name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: size})
	}
	dtypes := map[string]bool{}
	set := m.Weights()
	for _, n := range set.Names() {
		if info, ok := set.Info(n); ok {
			dtypes[fmt.Sprint(info.DType)] = true
		}
	}
	var ds []string
	for d := range dtypes {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	id.DType = strings.Join(ds, ",")
	return id, nil
}

// hashFile adds a model file's bytes to h.
func hashFile(h hash.Hash, f ModelFile) error {
	if f.Data != nil {
		h.Write(f.Data)
		return nil
	}
	r, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("recorder: model file: %w", err)
	}
	defer r.Close()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("recorder: model file %s: %w", f.Path, err)
	}
	return nil
}

// tokenizerFingerprint hashes an embedded tokenizer's vocabulary.
func tokenizerFingerprint(m *transformer.Model) string {
	h := sha256.New()
	h.Write([]byte("embedded:" + m.Config.ModelType + "\n"))
	if ts, ok := m.Tokenizer.(interface{ TokenString(int) string }); ok {
		var buf bytes.Buffer
		for id := range m.Tokenizer.VocabSize() {
			s := ts.TokenString(id)
			buf.Reset()
			buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
			buf.WriteString(s)
			h.Write(buf.Bytes())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ModelMismatch lists how two model identities differ: type, config,
// weights and tokenizer, each as "FIELD: recorded X, now Y". The name is
// not compared (the same files may live elsewhere).
func ModelMismatch(recorded, now bundle.Model) []string {
	var out []string
	cmp := func(field, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: recorded %s, now %s", field, a, b))
		}
	}
	cmp("model.type", recorded.Type, now.Type)
	cmp("model.config_sha256", recorded.ConfigSHA256, now.ConfigSHA256)
	cmp("model.weights_sha256", recorded.WeightsSHA256, now.WeightsSHA256)
	cmp("model.tokenizer_sha256", recorded.TokenizerSHA256, now.TokenizerSHA256)
	return out
}

// RuntimeInfo describes this process and backend for a manifest.
func RuntimeInfo(b engine.Backend) bundle.Runtime {
	version := "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				version += " " + s.Value
			}
		}
	}
	return bundle.Runtime{FxVersion: version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Backend: b.Name(), Device: b.Name()}
}
