package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelforensics/fx/configs"
	"github.com/modelforensics/fx/forensics/bundle"
)

// cmdBundle dispatches fx bundle verify|inspect|pack|unpack.
func cmdBundle(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	usage := "usage: fx bundle verify|inspect|pack|unpack ...\n" +
		"  fx bundle verify BUNDLE [--json]     schema, names, every checksum and activation file\n" +
		"  fx bundle inspect BUNDLE [--json]    model, input, output, outcome, hooks, sizes\n" +
		"  fx bundle pack BUNDLE [-o FILE]      write BUNDLE.tar.zst\n" +
		"  fx bundle unpack FILE [-C DIR]       extract and verify a packed bundle"
	if len(args) == 0 {
		return usagef("missing subcommand\n%s", usage)
	}
	switch args[0] {
	case "verify":
		return cmdBundleVerify(args[1:], stdout, stderr)
	case "inspect":
		return cmdBundleInspect(args[1:], stdout, stderr)
	case "pack":
		return cmdBundlePack(args[1:], stdout, stderr)
	case "unpack":
		return cmdBundleUnpack(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, usage)
		return nil
	}
	return usagef("unknown subcommand %q\n%s", args[0], usage)
}

// bundleArgs parses a bundle subcommand's flags and its one positional
// argument, and loads the config.
func bundleArgs(name, what string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (string, *configs.Config, error) {
	fs := newFlagSet("bundle "+name, stderr)
	config := fs.String("config", "", "YAML config file over configs/default.yaml (bundle limits, pack level)")
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fx bundle %s %s [flags]\n", name, what)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) != 1 {
		return "", nil, usagef("want one %s argument, got %d", what, len(pos))
	}
	cfg, err := configs.Load(*config)
	if err != nil {
		return "", nil, usageError{err}
	}
	return pos[0], cfg, nil
}

// openBundle opens and verifies a bundle directory. A path that does not
// exist is a usage error; a bundle that fails a check is not.
func openBundle(dir string, cfg *configs.Config) (*bundle.Bundle, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, usagef("%w", err)
	}
	return bundle.Open(dir, bundleLimits(cfg))
}

// bundleVerifyOutput is fx bundle verify --json's output (printed only
// when the bundle verifies; a failure is an error and exit code 1).
type bundleVerifyOutput struct {
	Bundle    string `json:"bundle"`
	OK        bool   `json:"ok"`
	Format    string `json:"format"`
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
	Hooks     int    `json:"hooks"`
	Positions int    `json:"positions"`
	Level     string `json:"level"`
}

func cmdBundleVerify(args []string, stdout, stderr io.Writer) error {
	var asJSON *bool
	dir, cfg, err := bundleArgs("verify", "BUNDLE", args, stderr, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	b, err := openBundle(dir, cfg)
	if err != nil {
		return err
	}
	if err := b.Verify(); err != nil {
		return err
	}
	rec := b.Manifest.Record
	if *asJSON {
		return writeJSON(stdout, bundleVerifyOutput{Bundle: dir, OK: true, Format: bundle.Format, Files: len(b.Manifest.Files) + 1,
			Bytes: b.Size(), Hooks: len(rec.Hooks), Positions: rec.Positions, Level: rec.Level})
	}
	fmt.Fprintf(stdout, "ok %s: %s, %d files, %s, %d hooks × %d positions, level %s, every checksum matches\n",
		dir, bundle.Format, len(b.Manifest.Files)+1, humanBytes(b.Size()), len(rec.Hooks), rec.Positions, rec.Level)
	return nil
}

// bundleInspectOutput is fx bundle inspect --json's output.
type bundleInspectOutput struct {
	Manifest      *bundle.Manifest `json:"manifest"`
	Input         bundle.Input     `json:"input"`
	Steps         int              `json:"steps"`
	ExternalCalls int              `json:"external_calls"`
	Metrics       *bundle.Metrics  `json:"metrics"`
}

func cmdBundleInspect(args []string, stdout, stderr io.Writer) error {
	var asJSON *bool
	dir, cfg, err := bundleArgs("inspect", "BUNDLE", args, stderr, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	b, err := openBundle(dir, cfg)
	if err != nil {
		return err
	}
	m := b.Manifest
	if *asJSON {
		return writeJSON(stdout, bundleInspectOutput{Manifest: m, Input: b.Input, Steps: len(b.StateDiffs.Steps),
			ExternalCalls: len(b.ExternalCalls), Metrics: b.Metrics})
	}
	w := stdout
	short := func(s string) string { return s[:min(12, len(s))] }
	fmt.Fprintf(w, "bundle    %s (%s, %d files, %s)\n", dir, m.Format, len(m.Files)+1, humanBytes(b.Size()))
	fmt.Fprintf(w, "created   %s\n", m.Created.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "model     %s (%s, %s): config %s…, weights %s…, tokenizer %s %s…\n", m.Model.Name, m.Model.Type,
		m.Model.DType, short(m.Model.ConfigSHA256), short(m.Model.WeightsSHA256), m.Model.Tokenizer, short(m.Model.TokenizerSHA256))
	rt := m.Runtime
	fmt.Fprintf(w, "runtime   fx %s, %s, %s/%s, backend %s\n", rt.FxVersion, rt.GoVersion, rt.OS, rt.Arch, rt.Backend)
	in := b.Input
	fmt.Fprintf(w, "input     %q (%d tokens)\n", in.Text, len(in.InputIDs))
	if g := in.Generate; g != nil {
		s := g.Sampler
		fmt.Fprintf(w, "generate  max %d new tokens, temperature %g, top-k %d, top-p %g, seed %d, stop at EOS %v\n",
			g.MaxNewTokens, s.Temperature, s.TopK, s.TopP, s.Seed, g.StopAtEOS)
	}
	fmt.Fprintf(w, "output    %q (ids %v)\n", in.OutputText, in.OutputIDs)
	fmt.Fprintf(w, "outcome   %s\n", outcomeString(m.Outcome))
	rec := m.Record
	stored := 0
	for _, h := range rec.Hooks {
		if h.Stored {
			stored++
		}
	}
	fmt.Fprintf(w, "record    level %s, %s, %d positions, sketch k=%d seed=%d %s, deflate level %d\n",
		rec.Level, rec.DType, rec.Positions, rec.Sketch.K, rec.Sketch.Seed, rec.Sketch.Hash, rec.CompressionLevel)
	fmt.Fprintf(w, "steps     %d generation steps; %d external calls\n", len(b.StateDiffs.Steps), len(b.ExternalCalls))
	fmt.Fprintf(w, "hooks     %d recorded, %d stored\n", len(rec.Hooks), stored)
	for _, h := range rec.Hooks {
		mark := ""
		if h.Stored {
			mark = "  stored"
		}
		fmt.Fprintf(w, "  %-36s %v%s\n", h.Name, h.Shape, mark)
	}
	fmt.Fprintln(w, "files")
	for _, f := range m.Files {
		fmt.Fprintf(w, "  %-28s %10s  sha256 %s…\n", f.Path, humanBytes(f.Size), short(f.SHA256))
	}
	if mt := b.Metrics; mt != nil {
		t := mt.TimingsS
		fmt.Fprintf(w, "metrics   run %.3fs (recording hooks %.3fs), write %.3fs, peak RSS %s\n",
			t["run"], t["record"], t["write"], humanBytes(mt.PeakRSSBytes))
	}
	return nil
}

func cmdBundlePack(args []string, stdout, stderr io.Writer) error {
	var out *string
	var level *int
	var asJSON *bool
	dir, cfg, err := bundleArgs("pack", "BUNDLE", args, stderr, func(fs *flag.FlagSet) {
		out = fs.String("o", "", "archive to write (default: BUNDLE.tar.zst)")
		level = fs.Int("level", 0, "zstd level 1-22 (default: the config's bundle.pack_level)")
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	b, err := openBundle(dir, cfg)
	if err != nil {
		return err
	}
	if *out == "" {
		clean := filepath.Clean(dir)
		if base := filepath.Base(clean); base == "." || base == ".." {
			abs, err := filepath.Abs(clean)
			if err != nil {
				return err
			}
			clean = filepath.Base(abs)
		}
		*out = clean + ".tar.zst"
	}
	if *level == 0 {
		*level = cfg.Bundle.PackLevel
	}
	if _, err := os.Lstat(*out); err == nil {
		return usagef("-o %s: exists; not overwriting it", *out)
	}
	f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = b.Pack(f, *level)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), *out); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, bundleFileOutput{Bundle: dir, File: *out, Bytes: st.Size()})
	}
	fmt.Fprintf(stdout, "packed %s into %s (%s)\n", dir, *out, humanBytes(st.Size()))
	return nil
}

func cmdBundleUnpack(args []string, stdout, stderr io.Writer) error {
	var dest *string
	var asJSON *bool
	file, cfg, err := bundleArgs("unpack", "FILE.tar.zst", args, stderr, func(fs *flag.FlagSet) {
		dest = fs.String("C", ".", "directory to unpack into")
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return usagef("%w", err)
	}
	defer f.Close()
	if st, err := os.Stat(*dest); err != nil || !st.IsDir() {
		if err == nil {
			err = fmt.Errorf("not a directory")
		}
		return usagef("-C %s: %w", *dest, err)
	}
	path, err := bundle.Unpack(f, *dest, bundleLimits(cfg))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageError{err}
		}
		return err
	}
	if *asJSON {
		return writeJSON(stdout, bundleFileOutput{Bundle: path, File: file})
	}
	fmt.Fprintf(stdout, "unpacked %s: verified, every checksum matches\n", path)
	return nil
}

// bundleFileOutput is fx bundle pack and unpack --json's output: the
// bundle directory and its archive (with its size when packed).
type bundleFileOutput struct {
	Bundle string `json:"bundle"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes,omitempty"`
}

// humanBytes formats a size as "12.3 MB".
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
