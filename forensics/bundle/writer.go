package bundle

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WriterOptions configures a Writer.
type WriterOptions struct {
	// CompressionLevel is the deflate level of activation .npz entries,
	// 0 (stored) to 9.
	CompressionLevel int
	// Progress, when not nil, is called after each file is complete in the
	// temporary directory, with its bundle path and size.
	Progress func(path string, size int64)
}

// Writer writes a bundle into a temporary directory beside its final path
// and renames it there on Commit, so that a crash or a kill leaves no
// directory that looks like a complete bundle: the temporary one is hidden
// (".NAME.partial-*") and has no manifest.json until the very end.
type Writer struct {
	final string
	tmp   string
	opts  WriterOptions
	files []FileEntry
	done  bool
}

// Create starts a bundle that Commit will move to path. path must not
// exist; its parent directory is created if needed.
func Create(path string, opts WriterOptions) (*Writer, error) {
	if opts.CompressionLevel < 0 || opts.CompressionLevel > 9 {
		return nil, fmt.Errorf("bundle: compression level %d is outside [0, 9]", opts.CompressionLevel)
	}
	path = filepath.Clean(path)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("bundle: %s already exists; not overwriting it", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &Writer{final: path, tmp: tmp, opts: opts}, nil
}

// Path returns the bundle's final path.
func (w *Writer) Path() string { return w.final }

// TempDir returns the temporary directory being written.
func (w *Writer) TempDir() string { return w.tmp }

// WriteFile writes the bundle file name (a path CheckPath accepts) through
// write, recording its sha256 and size.
func (w *Writer) WriteFile(name string, write func(io.Writer) error) error {
	if w.done {
		return fmt.Errorf("bundle: %s: write after Commit or Abort", name)
	}
	if err := CheckPath(name); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if slices.ContainsFunc(w.files, func(f FileEntry) bool { return f.Path == name }) {
		return fmt.Errorf("bundle: %s: written twice", name)
	}
	full := filepath.Join(w.tmp, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", name, err)
	}
	w.files = append(w.files, FileEntry{Path: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n})
	if w.opts.Progress != nil {
		w.opts.Progress(name, cw.n)
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

// Write writes through and counts.
func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteJSON writes v as indented JSON.
func (w *Writer) WriteJSON(name string, v any) error {
	return w.WriteFile(name, func(out io.Writer) error {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// WriteJSONLines writes each element of vs as one line of JSON.
func WriteJSONLines[T any](w *Writer, name string, vs []T) error {
	return w.WriteFile(name, func(out io.Writer) error {
		enc := json.NewEncoder(out)
		for _, v := range vs {
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteActivations writes the records of one group as
// activations/GROUP.npz.
func (w *Writer) WriteActivations(group string, records []HookRecord) error {
	for _, r := range records {
		if g := Group(r.Hook); g != group {
			return fmt.Errorf("bundle: hook %s belongs to group %s, not %s", r.Hook, g, group)
		}
	}
	return w.WriteFile(ActivationsPath(group), func(out io.Writer) error {
		return WriteActivations(out, records, w.opts.CompressionLevel)
	})
}

// Sizes returns the size of every file written so far and their "total".
func (w *Writer) Sizes() map[string]int64 {
	out := map[string]int64{}
	var total int64
	for _, f := range w.files {
		out[f.Path] = f.Size
		total += f.Size
	}
	out["total"] = total
	return out
}

// Commit completes the bundle: it fills m.Format and m.Files from what was
// written, validates m, writes manifest.json, syncs, and renames the
// temporary directory to the final path. On error the temporary directory
// is removed.
func (w *Writer) Commit(m *Manifest) (err error) {
	if w.done {
		return fmt.Errorf("bundle: Commit after Commit or Abort")
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	m.Format = Format
	m.Files = slices.Clone(w.files)
	slices.SortFunc(m.Files, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	if err := m.Validate(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", ManifestName, err)
	}
	f, err := os.OpenFile(filepath.Join(w.tmp, ManifestName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", ManifestName, err)
	}
	for _, dir := range []string{filepath.Join(w.tmp, ActivationsDir), w.tmp} {
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := os.Chmod(w.tmp, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := os.Lstat(w.final); err == nil {
		return fmt.Errorf("bundle: %s appeared while writing; not overwriting it", w.final)
	}
	if err := os.Rename(w.tmp, w.final); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	w.done = true
	if err := syncDir(filepath.Dir(w.final)); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Abort removes the temporary directory. It is safe to call after Commit
// (it does nothing then) and more than once.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := os.RemoveAll(w.tmp); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so that renames and creations in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
