package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// Limits bound what a reader accepts, so that a hostile bundle or archive
// cannot exhaust memory or disk.
type Limits struct {
	// MaxManifestBytes bounds manifest.json.
	MaxManifestBytes int64
	// MaxFileBytes bounds any one file, and the decompressed data of any
	// one activations .npz.
	MaxFileBytes int64
	// MaxTotalBytes bounds the files together (and an archive's
	// decompressed size).
	MaxTotalBytes int64
	// MaxFiles bounds the number of files.
	MaxFiles int
}

// DefaultLimits returns the limits fx uses unless configured otherwise:
// 16 MiB of manifest, 4 GiB per file, 16 GiB in all, 10000 files.
func DefaultLimits() Limits {
	return Limits{MaxManifestBytes: 16 << 20, MaxFileBytes: 4 << 30, MaxTotalBytes: 16 << 30, MaxFiles: 10000}
}

// Bundle is a bundle whose names, sizes and checksums have all been
// verified against its manifest, with its small files parsed and
// cross-checked.
type Bundle struct {
	// Dir is the bundle's directory.
	Dir      string
	Manifest *Manifest
	// Input is the recorded sequence (inputs.jsonl).
	Input         Input
	StateDiffs    *StateDiffs
	ExternalCalls []ExternalCall
	Metrics       *Metrics
	limits        Limits
}

// Open verifies the bundle in dir and reads its small files. It refuses,
// with an error naming the file and the problem: a missing or malformed
// manifest, a format it does not read, symbolic links and anything but
// regular files and the activations directory, files the manifest does not
// list or lists but are missing, sizes and checksums that differ from the
// manifest's, anything beyond limits, and contents that contradict the
// manifest. Activations are decoded by Activations.
func Open(dir string, limits Limits) (*Bundle, error) {
	b, err := open(dir, limits)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return b, nil
}

func open(dir string, limits Limits) (*Bundle, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: not a directory", ErrInvalid)
	}
	mpath := filepath.Join(dir, ManifestName)
	mst, err := os.Lstat(mpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: no %s (not a bundle, or one whose recording never finished)", ErrInvalid, ManifestName)
	case err != nil:
		return nil, err
	case mst.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s: %w: is a symbolic link; bundles hold regular files only", ManifestName, ErrInvalid)
	case !mst.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %w: not a regular file", ManifestName, ErrInvalid)
	case mst.Size() > limits.MaxManifestBytes:
		return nil, fmt.Errorf("%s: %w: %d bytes exceed the limit of %d", ManifestName, ErrTooLarge, mst.Size(), limits.MaxManifestBytes)
	}
	mdata, err := readRegular(mpath, limits.MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	m, err := ParseManifest(mdata)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Dir: dir, Manifest: m, limits: limits}
	if err := b.checkTree(); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := b.verifyFile(f); err != nil {
			return nil, err
		}
	}
	if err := b.readSmallFiles(); err != nil {
		return nil, err
	}
	return b, nil
}

// checkTree walks the directory without following links and checks every
// entry against the manifest and the limits.
func (b *Bundle) checkTree() error {
	m, lim := b.Manifest, b.limits
	if len(m.Files) > lim.MaxFiles {
		return fmt.Errorf("%s: %w: %d files exceed the limit of %d", ManifestName, ErrTooLarge, len(m.Files), lim.MaxFiles)
	}
	listed := map[string]FileEntry{}
	var total int64
	for _, f := range m.Files {
		listed[f.Path] = f
		if f.Size > lim.MaxFileBytes {
			return fmt.Errorf("%s: %w: %d bytes exceed the limit of %d per file", f.Path, ErrTooLarge, f.Size, lim.MaxFileBytes)
		}
		total += f.Size
		if total > lim.MaxTotalBytes {
			return fmt.Errorf("%s: %w: the files add up to more than the limit of %d bytes", ManifestName, ErrTooLarge, lim.MaxTotalBytes)
		}
	}
	seen := map[string]bool{}
	count := 0
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(b.Dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(rel, e.Name())
			if count++; count > lim.MaxFiles+2 {
				return fmt.Errorf("%w: more than %d entries", ErrTooLarge, lim.MaxFiles)
			}
			switch t := e.Type(); {
			case t&fs.ModeSymlink != 0:
				return fmt.Errorf("%s: %w: is a symbolic link; bundles hold regular files only", p, ErrInvalid)
			case t.IsDir():
				if p != ActivationsDir {
					return fmt.Errorf("%s: %w: unexpected directory (only %s/ belongs in a bundle)", p, ErrInvalid, ActivationsDir)
				}
				if err := walk(p); err != nil {
					return err
				}
			case !t.IsRegular():
				return fmt.Errorf("%s: %w: not a regular file (%s)", p, ErrInvalid, t)
			case p == ManifestName:
			default:
				f, ok := listed[p]
				if !ok {
					if err := CheckPath(p); err != nil {
						return fmt.Errorf("%s: %w", p, err)
					}
					return fmt.Errorf("%s: %w: not listed in %s", p, ErrInvalid, ManifestName)
				}
				info, err := e.Info()
				if err != nil {
					return err
				}
				if info.Size() != f.Size {
					return fmt.Errorf("%s: %w: %d bytes, %s says %d", p, ErrInvalid, info.Size(), ManifestName, f.Size)
				}
				seen[p] = true
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return err
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return fmt.Errorf("%s: %w: listed in %s but missing", f.Path, ErrInvalid, ManifestName)
		}
	}
	return nil
}

// readRegular reads a regular file (not through a symbolic link) of at most
// limit bytes.
func readRegular(name string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrInvalid)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrTooLarge, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// verifyFile checks a file's size and sha256 against its manifest entry,
// streaming it (not through a symbolic link).
func (b *Bundle) verifyFile(e FileEntry) error {
	f, err := os.OpenFile(filepath.Join(b.Dir, filepath.FromSlash(e.Path)), os.O_RDONLY|noFollow, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, e.Size+1))
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if n != e.Size {
		return fmt.Errorf("%s: %w: %d bytes, %s says %d", e.Path, ErrInvalid, n, ManifestName, e.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("%s: %w: sha256 %s, %s says %s (the file was changed or corrupted)", e.Path, ErrInvalid, got, ManifestName, e.SHA256)
	}
	return nil
}

// ReadFile returns the contents of the bundle file p after checking them,
// as read, against the manifest's size and sha256; the bytes returned are
// the bytes verified.
func (b *Bundle) ReadFile(p string) ([]byte, error) {
	f, ok := b.Manifest.File(p)
	if !ok {
		return nil, fmt.Errorf("%s: %w: not listed in %s", p, ErrInvalid, ManifestName)
	}
	data, err := readRegular(filepath.Join(b.Dir, filepath.FromSlash(p)), min(f.Size, b.limits.MaxFileBytes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(len(data)) != f.Size {
		return nil, fmt.Errorf("%s: %w: %d bytes, %s says %d", p, ErrInvalid, len(data), ManifestName, f.Size)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
		return nil, fmt.Errorf("%s: %w: sha256 %s, %s says %s (the file was changed or corrupted)", p, ErrInvalid, got, ManifestName, f.SHA256)
	}
	return data, nil
}

// readSmallFiles parses inputs, state diffs, external calls and metrics and
// checks them against the manifest and each other.
func (b *Bundle) readSmallFiles() error {
	data, err := b.ReadFile(InputsName)
	if err != nil {
		return err
	}
	ins, err := ParseInputs(data)
	if err != nil {
		return err
	}
	b.Input = ins[0]
	if data, err = b.ReadFile(StateDiffsName); err != nil {
		return err
	}
	if b.StateDiffs, err = ParseStateDiffs(data); err != nil {
		return err
	}
	if data, err = b.ReadFile(ExternalCallsName); err != nil {
		return err
	}
	if b.ExternalCalls, err = ParseExternalCalls(data); err != nil {
		return err
	}
	if data, err = b.ReadFile(MetricsName); err != nil {
		return err
	}
	if b.Metrics, err = ParseMetrics(data); err != nil {
		return err
	}
	return b.crossCheck()
}

// crossCheck checks that the input, the state diffs and the manifest's
// record tell the same story.
func (b *Bundle) crossCheck() error {
	in, rec, steps := b.Input, b.Manifest.Record, b.StateDiffs.Steps
	P := len(in.InputIDs)
	if in.Generate == nil {
		if rec.Positions != P {
			return fmt.Errorf("%s: %w: record.positions %d, but %s has %d input tokens and no generation", ManifestName, ErrInvalid, rec.Positions, InputsName, P)
		}
		if len(steps) != 0 {
			return fmt.Errorf("%s: %w: %d steps for a run without generation", StateDiffsName, ErrInvalid, len(steps))
		}
		return nil
	}
	if b.Manifest.Model.Type != "gpt2" {
		return fmt.Errorf("%s: %w: generation with a %s model", InputsName, ErrInvalid, b.Manifest.Model.Type)
	}
	n := len(in.OutputIDs)
	if n == 0 {
		return fmt.Errorf("%s: %w: generation with no output tokens", InputsName, ErrInvalid)
	}
	if rec.Positions != P+n-1 {
		return fmt.Errorf("%s: %w: record.positions %d, but %d input and %d output tokens make %d", ManifestName, ErrInvalid, rec.Positions, P, n, P+n-1)
	}
	if len(steps) != n {
		return fmt.Errorf("%s: %w: %d steps for %d output tokens", StateDiffsName, ErrInvalid, len(steps), n)
	}
	for i, st := range steps {
		if st.Token != in.OutputIDs[i] {
			return fmt.Errorf("%s: steps[%d]: %w: token %d, but %s output_ids[%d] is %d", StateDiffsName, i, ErrInvalid, st.Token, InputsName, i, in.OutputIDs[i])
		}
		if st.KVCacheLen != P+i {
			return fmt.Errorf("%s: steps[%d]: %w: kv_cache_len %d, want %d", StateDiffsName, i, ErrInvalid, st.KVCacheLen, P+i)
		}
	}
	return nil
}

// Activations decodes every activations file, in forward order of the
// hooks, checking each against the manifest (after its checksum).
func (b *Bundle) Activations() ([]HookRecord, error) {
	var out []HookRecord
	rec := b.Manifest.Record
	for _, g := range b.Manifest.Groups() {
		p := ActivationsPath(g)
		data, err := b.ReadFile(p)
		if err != nil {
			return nil, err
		}
		records, err := DecodeActivations(data, b.Manifest.HooksOf(g), rec.Sketch.K, rec.DType, b.limits.MaxFileBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, records...)
	}
	return out, nil
}

// Verify decodes every activations file as well, so that a bundle that
// passes holds nothing the manifest does not describe.
func (b *Bundle) Verify() error {
	if _, err := b.Activations(); err != nil {
		return fmt.Errorf("bundle %s: %w", b.Dir, err)
	}
	return nil
}

// Hooks returns the names of the recorded hooks in forward order.
func (b *Bundle) Hooks() []string {
	var out []string
	for _, h := range b.Manifest.Record.Hooks {
		out = append(out, h.Name)
	}
	return out
}

// Size returns the bundle's size in bytes, manifest excluded.
func (b *Bundle) Size() int64 {
	var n int64
	for _, f := range b.Manifest.Files {
		n += f.Size
	}
	return n
}
