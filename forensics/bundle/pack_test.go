package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// packTestBundle writes the synthetic bundle and packs it.
func packTestBundle(t *testing.T) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "incident")
	writeTestBundle(t, dir, Float16)
	b, err := Open(dir, DefaultLimits())
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, b.Pack(&buf, 3))
	return buf.Bytes()
}

// readArchive returns the entries of a .tar.zst.
func readArchive(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, tarEntry{*hdr, body})
	}
}

// writeArchive builds a .tar.zst from entries, as they are.
func writeArchive(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := e.hdr
		require.NoError(t, tw.WriteHeader(&hdr))
		if len(e.data) > 0 {
			_, err := tw.Write(e.data)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func reg(name string, data []byte) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	data := packTestBundle(t)
	again := packTestBundle(t)
	assert.Equal(t, data, again, "packing is deterministic")

	names := []string{}
	for _, e := range readArchive(t, data) {
		names = append(names, e.hdr.Name)
	}
	assert.Equal(t, "incident/", names[0])
	assert.Equal(t, "incident/manifest.json", names[1], "the manifest comes first")

	dest := t.TempDir()
	out, err := Unpack(bytes.NewReader(data), dest, DefaultLimits())
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dest, "incident"), out)
	b, err := Open(out, DefaultLimits())
	require.NoError(t, err)
	got, err := b.Activations()
	require.NoError(t, err)
	_, want := testRecords(3, Float16)
	assert.Equal(t, want, got)
	entries, err := os.ReadDir(dest)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary directory is left")

	_, err = Unpack(bytes.NewReader(data), dest, DefaultLimits())
	assert.ErrorContains(t, err, "already exists")
}

func TestUnpackRefusesHostileArchives(t *testing.T) {
	valid := readArchive(t, packTestBundle(t))
	with := func(extra ...tarEntry) func([]tarEntry) []tarEntry {
		return func(es []tarEntry) []tarEntry { return append(es, extra...) }
	}
	replace := func(name string, data []byte) func([]tarEntry) []tarEntry {
		return func(es []tarEntry) []tarEntry {
			for i := range es {
				if es[i].hdr.Name == name {
					es[i] = reg(name, data)
				}
			}
			return es
		}
	}
	cases := []struct {
		name    string
		edit    func([]tarEntry) []tarEntry
		raw     func([]byte) []byte
		limits  func(*Limits)
		problem string
		sentry  error
	}{
		{name: "dot dot", edit: with(reg("incident/../evil", []byte("x"))), problem: `"incident/../evil": invalid bundle: escapes the archive`, sentry: ErrInvalid},
		{name: "absolute", edit: func(es []tarEntry) []tarEntry {
			return append([]tarEntry{reg("/etc/cron.d/evil", []byte("x"))}, es...)
		}, problem: "absolute path", sentry: ErrInvalid},
		{name: "symlink", edit: with(tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "incident/activations/x.npz", Linkname: "/etc/passwd"}}),
			problem: `is a symbolic link (to "/etc/passwd")`, sentry: ErrInvalid},
		{name: "hard link", edit: with(tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "incident/activations/x.npz", Linkname: "/etc/passwd"}}),
			problem: "is a hard link", sentry: ErrInvalid},
		{name: "device", edit: with(tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "incident/dev", Devmajor: 1, Devminor: 3}}),
			problem: "is not a regular file or directory", sentry: ErrInvalid},
		{name: "outside the top directory", edit: with(reg("other/inputs.jsonl", []byte("x"))),
			problem: `outside the archive's one top directory "incident"`, sentry: ErrInvalid},
		{name: "duplicate", edit: func(es []tarEntry) []tarEntry { return append(es, es[2]) }, problem: "duplicate", sentry: ErrInvalid},
		{name: "foreign file", edit: with(reg("incident/run.sh", []byte("#!/bin/sh"))), problem: `"run.sh" is not a file of fx-bundle/1`, sentry: ErrInvalid},
		{name: "foreign directory", edit: with(tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "incident/etc/", Mode: 0o755}}),
			problem: "unexpected directory", sentry: ErrInvalid},
		{name: "hidden top", edit: func(es []tarEntry) []tarEntry {
			for i := range es {
				es[i].hdr.Name = "." + es[i].hdr.Name
			}
			return es
		}, problem: "hidden name", sentry: ErrInvalid},
		{name: "decompression bomb", limits: func(l *Limits) { l.MaxFileBytes = 1 << 20 },
			edit:    with(reg("incident/activations/block_09.npz", make([]byte, 64<<20))),
			problem: "67108864 bytes exceed the limit of 1048576", sentry: ErrTooLarge},
		{name: "total too large", limits: func(l *Limits) { l.MaxTotalBytes = 5000 }, edit: func(es []tarEntry) []tarEntry { return es },
			problem: "the files add up to more than 5000 bytes", sentry: ErrTooLarge},
		{name: "too many files", limits: func(l *Limits) { l.MaxFiles = 2 }, edit: func(es []tarEntry) []tarEntry { return es },
			problem: "more than 2 files", sentry: ErrTooLarge},
		{name: "lying manifest", edit: replace("incident/inputs.jsonl", []byte(`{"text":"forged","input_ids":[1,2]}`+"\n")),
			problem: "inputs.jsonl: invalid bundle: ", sentry: ErrInvalid},
		{name: "no manifest", edit: func(es []tarEntry) []tarEntry { return append(es[:1:1], es[2:]...) }, problem: "no manifest.json", sentry: ErrInvalid},
		{name: "empty", edit: func([]tarEntry) []tarEntry { return nil }, problem: "empty archive", sentry: ErrInvalid},
		{name: "not zstd", raw: func([]byte) []byte { return []byte("PK\x03\x04 a zip, say") }, problem: "unpack", sentry: ErrInvalid},
		{name: "truncated", raw: func(b []byte) []byte { return b[:len(b)/2] }, problem: "unpack", sentry: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			entries := append([]tarEntry(nil), valid...)
			var data []byte
			if tc.edit != nil {
				data = writeArchive(t, tc.edit(entries))
			} else {
				data = tc.raw(writeArchive(t, entries))
			}
			limits := DefaultLimits()
			if tc.limits != nil {
				tc.limits(&limits)
			}
			dest := t.TempDir()
			_, err := Unpack(bytes.NewReader(data), dest, limits)
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), tc.problem)
			assert.ErrorIs(t, err, tc.sentry)
			left, err := os.ReadDir(dest)
			require.NoError(t, err)
			assert.Empty(t, left, "a refused archive leaves nothing behind")
		})
	}
}

func TestCountReaderStopsBombs(t *testing.T) {
	r := &countReader{r: strings.NewReader(strings.Repeat("x", 100)), n: 10}
	_, err := io.ReadAll(r)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "decompression bomb")
}

func TestPackRefusesChangedBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "incident")
	writeTestBundle(t, dir, Float16)
	b, err := Open(dir, DefaultLimits())
	require.NoError(t, err)
	p := filepath.Join(dir, InputsName)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	data[2] ^= 1
	require.NoError(t, os.WriteFile(p, data, 0o644))
	err = b.Pack(io.Discard, 3)
	assert.ErrorContains(t, err, "inputs.jsonl: invalid bundle: sha256")
}
