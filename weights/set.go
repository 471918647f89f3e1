package weights

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/valyala/fastjson"
)

// File names that OpenDir looks for.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// maxIndexSize bounds the size of a model.safetensors.index.json.
const maxIndexSize = 64 << 20

// ErrNoWeights marks a directory that holds neither model.safetensors nor
// model.safetensors.index.json.
var ErrNoWeights = errors.New("no model.safetensors or model.safetensors.index.json")

// Set is a model's tensors spread over one or more safetensors files, as
// Hugging Face saves large models in shards. Each tensor name belongs to
// exactly one file. Its methods are safe for concurrent use.
type Set struct {
	files []*File
	owner map[string]*File
	names []string
}

// NewSet joins files into a Set, which takes ownership of them: closing the
// Set closes them. A tensor name held by two files is an error.
func NewSet(files ...*File) (*Set, error) {
	s := &Set{owner: map[string]*File{}}
	for i, f := range files {
		if f == nil {
			return nil, fmt.Errorf("weights: NewSet: file %d is nil", i)
		}
		for _, n := range f.names {
			if g, dup := s.owner[n]; dup {
				return nil, fmt.Errorf("weights: tensor %q is in both %s and %s", n, g.path, f.path)
			}
			s.owner[n] = f
		}
		s.files = append(s.files, f)
	}
	s.names = slices.AppendSeq(make([]string, 0, len(s.owner)), maps.Keys(s.owner))
	slices.Sort(s.names)
	return s, nil
}

// OpenDir opens the weights of the model in dir: model.safetensors if it
// exists, otherwise model.safetensors.index.json and every shard its
// weight_map names. Shard names must be plain file names within dir, and
// every tensor the index lists must be in the shard it names.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	_, err := os.Stat(single)
	if err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		return NewSet(f)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("weights: %w", err)
	}
	index := filepath.Join(dir, IndexFileName)
	data, err := readLimited(index, maxIndexSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("weights: %s: %w", dir, ErrNoWeights)
	}
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	weightMap, err := parseIndex(index, data)
	if err != nil {
		return nil, err
	}
	shardNames := slices.Sorted(maps.Keys(setOf(maps.Values(weightMap))))
	files := make([]*File, 0, len(shardNames))
	byShard := make(map[string]*File, len(shardNames))
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, sh := range shardNames {
		f, err := Open(filepath.Join(dir, sh))
		if err != nil {
			closeAll()
			return nil, err // names the shard's path
		}
		files = append(files, f)
		byShard[sh] = f
	}
	set, err := NewSet(files...)
	if err != nil {
		closeAll()
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(weightMap)) {
		sh := weightMap[name]
		if _, ok := byShard[sh].tensors[name]; !ok {
			set.Close()
			return nil, fmt.Errorf("weights: %s: tensor %q: %w: listed under shard %q but absent from it",
				index, name, ErrNotFound, sh)
		}
	}
	return set, nil
}

func setOf(seq func(func(string) bool)) map[string]bool {
	m := map[string]bool{}
	for v := range seq {
		m[v] = true
	}
	return m
}

// readLimited reads the file at path, failing if it is larger than max.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes", path, max)
	}
	return data, nil
}

// parseIndex returns the weight_map of a model.safetensors.index.json.
func parseIndex(name string, data []byte) (map[string]string, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: not valid JSON: %w", name, err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("weights: %s: a JSON %s, not an object", name, v.Type())
	}
	wv := v.Get("weight_map")
	if wv == nil {
		return nil, fmt.Errorf(`weights: %s: missing "weight_map"`, name)
	}
	wo, err := wv.Object()
	if err != nil {
		return nil, fmt.Errorf(`weights: %s: "weight_map" is a JSON %s, not an object`, name, wv.Type())
	}
	if wo.Len() == 0 {
		return nil, fmt.Errorf(`weights: %s: "weight_map" is empty`, name)
	}
	m := make(map[string]string, wo.Len())
	wo.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		k := string(key)
		if _, dup := m[k]; dup {
			err = fmt.Errorf("weights: %s: weight_map: duplicate tensor %q", name, k)
			return
		}
		b, e := v.StringBytes()
		if e != nil {
			err = fmt.Errorf("weights: %s: weight_map: tensor %q: shard is a JSON %s, not a string", name, k, v.Type())
			return
		}
		sh := string(b)
		if !plainFileName(sh) {
			err = fmt.Errorf("weights: %s: weight_map: tensor %q: shard %q is not a plain file name", name, k, sh)
			return
		}
		m[k] = sh
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// plainFileName reports whether s names a file directly inside a directory:
// not empty, not "." or "..", no path separators, not absolute.
func plainFileName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`+"\x00") &&
		!strings.Contains(s, "..") && !filepath.IsAbs(s) && filepath.Base(s) == s
}

// Names returns the names of all tensors in the set, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Info returns the description of the named tensor, and whether it exists.
func (s *Set) Info(name string) (TensorInfo, bool) {
	f, ok := s.owner[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Raw returns the named tensor's bytes, as File.Raw does.
func (s *Set) Raw(name string) ([]byte, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("weights: tensor %q: %w", name, ErrNotFound)
	}
	return f.Raw(name)
}

// Float32 returns the named tensor's values, as File.Float32 does.
func (s *Set) Float32(name string) ([]float32, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("weights: tensor %q: %w", name, ErrNotFound)
	}
	return f.Float32(name)
}

// Files returns the paths of the set's files, in the order they were given
// (for OpenDir, shards in sorted order), for hashing or display.
func (s *Set) Files() []string {
	paths := make([]string, len(s.files))
	for i, f := range s.files {
		paths[i] = f.Path()
	}
	return paths
}

// Close closes every file of the set. It is safe to call more than once.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
