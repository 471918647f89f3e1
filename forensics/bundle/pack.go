package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the window a zstd frame may ask the decoder for.
const maxZstdWindow = 128 << 20

// Pack writes the bundle as a tar archive compressed with zstd at level
// (1 to 22, zstd's scale): a directory named after the bundle holding
// manifest.json first, then the files in manifest order, each read and
// checked against the manifest again as it is packed.
func (b *Bundle) Pack(w io.Writer, level int) error {
	abs, err := filepath.Abs(b.Dir)
	if err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	top := filepath.Base(abs)
	if err := checkTop(top); err != nil {
		return fmt.Errorf("bundle: pack %s: %w", b.Dir, err)
	}
	if level < 1 || level > 22 {
		return fmt.Errorf("bundle: pack: zstd level %d is outside [1, 22]", level)
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderCRC(true))
	if err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch})
	}
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = func() error {
		mdata, err := readRegular(filepath.Join(b.Dir, ManifestName), b.limits.MaxManifestBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", ManifestName, err)
		}
		if _, err := ParseManifest(mdata); err != nil {
			return err
		}
		if err := dir(top); err != nil {
			return err
		}
		if err := file(top+"/"+ManifestName, mdata); err != nil {
			return err
		}
		madeActivations := false
		for _, f := range b.Manifest.Files {
			if strings.HasPrefix(f.Path, ActivationsDir+"/") && !madeActivations {
				if err := dir(top + "/" + ActivationsDir); err != nil {
					return err
				}
				madeActivations = true
			}
			data, err := b.ReadFile(f.Path)
			if err != nil {
				return err
			}
			if err := file(top+"/"+f.Path, data); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	}()
	if err != nil {
		zw.Close()
		return fmt.Errorf("bundle: pack %s: %w", b.Dir, err)
	}
	return nil
}

// checkTop checks the name of an archive's top directory.
func checkTop(top string) error {
	switch {
	case top == "" || top == "." || top == "..":
		return fmt.Errorf("%w: %q is not a bundle directory name", ErrInvalid, top)
	case strings.ContainsAny(top, "/\\\x00:"):
		return fmt.Errorf("%w: %q is not a plain directory name", ErrInvalid, top)
	case strings.HasPrefix(top, "."):
		return fmt.Errorf("%w: %q is a hidden name (an unfinished bundle?)", ErrInvalid, top)
	}
	return nil
}

// countReader fails once more than n bytes have been read through it.
type countReader struct {
	r    io.Reader
	n    int64
	read int64
}

// Read reads from the underlying reader and fails past the limit.
func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read > c.n {
		return n, fmt.Errorf("%w: the archive decompresses to more than %d bytes (a decompression bomb?)", ErrTooLarge, c.n)
	}
	return n, err
}

// Unpack extracts a bundle archive that Pack wrote into a new directory
// under dest and returns its path. Entries are checked before anything is
// written: absolute names, "..", names outside the one top directory,
// links, devices and other special entries, duplicates, files that are not
// part of a bundle, entries or totals beyond limits and decompressed data
// beyond limits (a decompression bomb) are refused. The files go to a
// temporary directory, which must then Open as a bundle with every
// checksum matching and decode cleanly (Verify) before it is renamed to
// dest/NAME; on any error nothing is left behind.
func Unpack(r io.Reader, dest string, limits Limits) (string, error) {
	out, err := unpack(r, dest, limits)
	if err != nil {
		return "", fmt.Errorf("bundle: unpack: %w", err)
	}
	return out, nil
}

func unpack(r io.Reader, dest string, limits Limits) (string, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
		zstd.WithDecoderMaxMemory(uint64(max(limits.MaxTotalBytes, 1<<20))))
	if err != nil {
		return "", err
	}
	defer zr.Close()
	// Tar adds a 512-byte header and up to 511 bytes of padding per
	// entry, and 1 KiB at the end.
	budget := limits.MaxTotalBytes + limits.MaxManifestBytes + int64(limits.MaxFiles+4)*1024 + 1024
	tr := tar.NewReader(&countReader{r: zr, n: budget})
	tmp, err := os.MkdirTemp(dest, ".unpack-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	top := ""
	seen := map[string]bool{}
	var total int64
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := hdr.Name
		switch {
		case name == "" || strings.ContainsRune(name, 0):
			return "", fmt.Errorf("%w: entry with an empty or NUL name", ErrInvalid)
		case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) > 1 && name[1] == ':'):
			return "", fmt.Errorf("entry %q: %w: absolute path", name, ErrInvalid)
		case strings.ContainsRune(name, '\\'):
			return "", fmt.Errorf("entry %q: %w: backslash in name", name, ErrInvalid)
		}
		trimmed := strings.TrimSuffix(name, "/")
		for _, part := range strings.Split(trimmed, "/") {
			if part == ".." {
				return "", fmt.Errorf("entry %q: %w: escapes the archive (..)", name, ErrInvalid)
			}
		}
		if path.Clean(trimmed) != trimmed {
			return "", fmt.Errorf("entry %q: %w: name is not clean", name, ErrInvalid)
		}
		first, rel, _ := strings.Cut(trimmed, "/")
		if top == "" {
			if err := checkTop(first); err != nil {
				return "", fmt.Errorf("entry %q: %w", name, err)
			}
			top = first
		} else if first != top {
			return "", fmt.Errorf("entry %q: %w: outside the archive's one top directory %q", name, ErrInvalid, top)
		}
		if seen[trimmed] {
			return "", fmt.Errorf("entry %q: %w: duplicate", name, ErrInvalid)
		}
		seen[trimmed] = true
		target := filepath.Join(tmp, filepath.FromSlash(trimmed))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if rel != "" && rel != ActivationsDir {
				return "", fmt.Errorf("entry %q: %w: unexpected directory", name, ErrInvalid)
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return "", err
			}
		case tar.TypeReg:
			limit := limits.MaxFileBytes
			if rel == ManifestName {
				limit = limits.MaxManifestBytes
			} else if err := CheckPath(rel); err != nil {
				return "", fmt.Errorf("entry %q: %w", name, err)
			}
			if hdr.Size < 0 || hdr.Size > limit {
				return "", fmt.Errorf("entry %q: %w: %d bytes exceed the limit of %d", name, ErrTooLarge, hdr.Size, limit)
			}
			if files++; files > limits.MaxFiles+1 {
				return "", fmt.Errorf("entry %q: %w: more than %d files", name, ErrTooLarge, limits.MaxFiles)
			}
			if total += hdr.Size; total > limits.MaxTotalBytes {
				return "", fmt.Errorf("entry %q: %w: the files add up to more than %d bytes", name, ErrTooLarge, limits.MaxTotalBytes)
			}
			if err := writeEntry(target, tr, hdr.Size); err != nil {
				return "", fmt.Errorf("entry %q: %w", name, err)
			}
		case tar.TypeSymlink:
			return "", fmt.Errorf("entry %q: %w: is a symbolic link (to %q); bundles hold regular files only", name, ErrInvalid, hdr.Linkname)
		case tar.TypeLink:
			return "", fmt.Errorf("entry %q: %w: is a hard link (to %q); bundles hold regular files only", name, ErrInvalid, hdr.Linkname)
		default:
			return "", fmt.Errorf("entry %q: %w: entry type %q is not a regular file or directory", name, ErrInvalid, hdr.Typeflag)
		}
	}
	if top == "" {
		return "", fmt.Errorf("%w: empty archive", ErrInvalid)
	}
	b, err := Open(filepath.Join(tmp, top), limits)
	if err != nil {
		return "", err
	}
	if err := b.Verify(); err != nil {
		return "", err
	}
	final := filepath.Join(dest, top)
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("%s already exists; not overwriting it", final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, top), final); err != nil {
		return "", err
	}
	return final, nil
}

// writeEntry writes exactly size bytes of r to a new file at target.
func writeEntry(target string, r io.Reader, size int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: truncated", ErrInvalid)
	}
	return err
}
