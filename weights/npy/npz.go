package npy

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// NPZWriter writes a .npz archive, as numpy.savez (or, compressed,
// numpy.savez_compressed) does: a zip file with one NAME.npy entry per
// array. A bad name or shape is reported before anything is written, and
// leaves the archive as it was; after a write error the archive is
// incomplete and the NPZWriter should be abandoned.
type NPZWriter struct {
	zw       *zip.Writer
	compress bool
	names    map[string]bool
}

// NewNPZWriter returns an NPZWriter that writes to w, deflating the entries
// if compress is true and storing them otherwise.
func NewNPZWriter(w io.Writer, compress bool) *NPZWriter {
	return &NPZWriter{zw: zip.NewWriter(w), compress: compress, names: map[string]bool{}}
}

// AddFloat32 adds data, of the given shape, as the '<f4' array name (entry
// name + ".npy"). Names must be unique, non-empty, and contain no '/', '\'
// or "..".
func (z *NPZWriter) AddFloat32(name string, data []float32, shape []int) error {
	if err := checkShape(len(data), shape); err != nil {
		return fmt.Errorf("npy: npz entry %q: %w", name, err)
	}
	return z.add(name, func(w io.Writer) error { return writeFloat32(w, data, shape) })
}

// AddInt64 adds data, of the given shape, as the '<i8' array name, with the
// same rules as AddFloat32.
func (z *NPZWriter) AddInt64(name string, data []int64, shape []int) error {
	if err := checkShape(len(data), shape); err != nil {
		return fmt.Errorf("npy: npz entry %q: %w", name, err)
	}
	return z.add(name, func(w io.Writer) error { return writeInt64(w, data, shape) })
}

func (z *NPZWriter) add(name string, write func(io.Writer) error) error {
	if !validKey(name) {
		return fmt.Errorf("npy: npz entry %q: invalid name", name)
	}
	if z.names[name] {
		return fmt.Errorf("npy: npz entry %q: duplicate name", name)
	}
	z.names[name] = true
	method := zip.Store
	if z.compress {
		method = zip.Deflate
	}
	w, err := z.zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: method, Modified: zipEpoch()})
	if err != nil {
		return fmt.Errorf("npy: npz entry %q: %w", name, err)
	}
	if err := write(w); err != nil {
		return fmt.Errorf("npy: npz entry %q: %w", name, err)
	}
	return nil
}

// zipEpoch is the modification time stamped on NPZWriter entries, so that
// the same arrays always give the same bytes.
func zipEpoch() time.Time { return time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC) }

// Close finishes the archive. It does not close the underlying writer.
func (z *NPZWriter) Close() error {
	if err := z.zw.Close(); err != nil {
		return fmt.Errorf("npy: npz: %w", err)
	}
	return nil
}

// validKey reports whether name may name an array in an archive.
func validKey(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\\\x00") && !strings.Contains(name, "..")
}

// ReadNPZ reads every array of the .npz archive at path, keyed by entry
// name without ".npy", accepting up to DefaultMaxBytes of decompressed data
// in all.
func ReadNPZ(path string) (map[string]Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	m, err := readNPZ(f, st.Size(), DefaultMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return m, nil
}

// ReadNPZBytes reads every array of an in-memory .npz archive, as ReadNPZ
// does.
func ReadNPZBytes(data []byte) (map[string]Array, error) {
	return ReadNPZLimit(bytes.NewReader(data), int64(len(data)), DefaultMaxBytes)
}

// ReadNPZLimit reads every array of the .npz archive of the given size in
// r, keyed by entry name without ".npy". Every entry must be named
// NAME.npy, with no '/', '\' or ".." in NAME, and hold exactly one array.
// The decompressed entries together may not exceed maxBytes; beyond that
// the error wraps ErrTooLarge.
func ReadNPZLimit(r io.ReaderAt, size, maxBytes int64) (map[string]Array, error) {
	m, err := readNPZ(r, size, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("npy: npz: %w", err)
	}
	return m, nil
}

// readNPZ is ReadNPZLimit without the package prefix on errors.
func readNPZ(r io.ReaderAt, size, maxBytes int64) (map[string]Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	out := make(map[string]Array, len(zr.File))
	budget := max(maxBytes, 0)
	for _, f := range zr.File {
		key, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok || !validKey(key) || strings.HasPrefix(f.Name, "/") {
			return nil, fmt.Errorf("entry %q: %w: not a plain NAME.npy", f.Name, ErrFormat)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("entry %q: %w: duplicate", f.Name, ErrFormat)
		}
		if f.UncompressedSize64 > uint64(budget) {
			return nil, fmt.Errorf("entry %q: %w: %d bytes exceed the remaining limit of %d",
				f.Name, ErrTooLarge, f.UncompressedSize64, budget)
		}
		a, used, err := readEntry(f, budget)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", f.Name, err)
		}
		budget -= used
		out[key] = a
	}
	return out, nil
}

// readEntry reads the one array of a zip entry, which may decompress to at
// most budget bytes, and returns it with the number of bytes decompressed.
func readEntry(f *zip.File, budget int64) (Array, int64, error) {
	rc, err := f.Open()
	if err != nil {
		return Array{}, 0, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	defer rc.Close()
	lr := &io.LimitedReader{R: rc, N: budget + 1}
	a, err := readLimit(lr, budget)
	if err != nil {
		if lr.N == 0 {
			return Array{}, 0, fmt.Errorf("%w: decompressed data exceeds the limit of %d bytes", ErrTooLarge, budget)
		}
		return Array{}, 0, err
	}
	var one [1]byte
	n, err := io.ReadFull(lr, one[:])
	used := budget + 1 - lr.N
	switch {
	case used > budget:
		return Array{}, 0, fmt.Errorf("%w: decompressed data exceeds the limit of %d bytes", ErrTooLarge, budget)
	case n > 0:
		return Array{}, 0, fmt.Errorf("%w: bytes after the array", ErrFormat)
	case !errors.Is(err, io.EOF):
		return Array{}, 0, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return a, used, nil
}
