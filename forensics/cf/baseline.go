package cf

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelforensics/fx/forensics/bundle"
)

// BaselineFormat is the format line of the .fxbase files this package
// writes and reads.
const BaselineFormat = "fx-baseline/1"

// Sentinel errors of baseline files.
var (
	// ErrCorrupt marks a baseline file that is truncated, fails its
	// checksum, or breaks the schema.
	ErrCorrupt = errors.New("corrupt baseline")
	// ErrUnsupported marks a baseline of a format version this package
	// does not read.
	ErrUnsupported = errors.New("unsupported baseline format")
)

// maxBaselineBytes bounds a baseline file.
const maxBaselineBytes = 1 << 30

// Position classes of a baseline: positions below the cutoff each have
// their own distribution ("0", "1", ...); positions at or past it share
// ClassTail; a bidirectional model's last position ([SEP]) has ClassLast;
// ClassAll pools every position, the fallback of a class with too few
// samples.
const (
	ClassTail = "tail"
	ClassLast = "last"
	ClassAll  = "all"
)

// Baseline is the distribution of every CF feature over a corpus of benign
// runs of one model: per feature and position class, its median and
// absolute deviations. It is the content of a .fxbase file (see doc.go
// for the file format).
type Baseline struct {
	// Format is BaselineFormat.
	Format string `json:"format"`
	// Created is when the baseline was made (UTC).
	Created time.Time `json:"created"`
	// FxVersion is the fx that made it.
	FxVersion string `json:"fx_version,omitempty"`
	// Model identifies the model (its sha256s are compared with a bundle's).
	Model bundle.Model `json:"model"`
	// Layers is the model's number of blocks.
	Layers int `json:"layers"`
	// Sketch holds the sketch settings the projections were made with.
	Sketch bundle.Sketch `json:"sketch"`
	// Quantize, ZstdLevel and MinRowBytes are the compression settings.
	Quantize    string `json:"quantize"`
	ZstdLevel   int    `json:"zstd_level"`
	MinRowBytes int    `json:"min_row_bytes"`
	// MaxNewTokens is how many tokens each GPT-2 prompt generated.
	MaxNewTokens int `json:"max_new_tokens"`
	// Prompts is the number of benign runs; Positions their positions in
	// all.
	Prompts   int `json:"prompts"`
	Positions int `json:"positions"`
	// MinSamples is the fewest samples a position class needs; Cutoff the
	// first position pooled into ClassTail.
	MinSamples int `json:"min_samples"`
	Cutoff     int `json:"cutoff"`
	// Bidirectional is true for BERT, whose last position has ClassLast.
	Bidirectional bool `json:"bidirectional"`
	// Features holds every feature's distributions, sorted by key.
	Features []FeatureDist `json:"features"`
	// Scoring holds the scoring settings the calibration was made with.
	Scoring Scoring `json:"scoring"`
	// Calibration holds, per signal, the distribution of log(1 + a layer's
	// score from the signal alone) over the baseline's own runs, per layer
	// and pooled (see CombineCalibrated).
	Calibration []Calibration `json:"calibration"`

	index map[string]int
}

// Scoring holds the settings that make a layer's score from z-scores:
// cf.exclude, cf.top and cf.z_clip.
type Scoring struct {
	// Exclude, Top and ZClip are cf.exclude, cf.top and cf.z_clip.
	Exclude []string `json:"exclude"`
	Top     int      `json:"top"`
	ZClip   float64  `json:"z_clip"`
}

// Calibration is the distribution of log(1 + a signal's layer score) over
// the baseline's runs: per layer, and over every layer together.
type Calibration struct {
	// Signal is the signal calibrated.
	Signal Signal `json:"signal"`
	// Layers holds each layer's distribution; All pools the layers.
	Layers []Dist `json:"layers"`
	All    Dist   `json:"all"`
}

// FeatureDist is one feature's distributions by position class.
type FeatureDist struct {
	// Hook, Stat and Layer identify the feature (see Series).
	Hook  string `json:"hook"`
	Stat  string `json:"stat"`
	Layer int    `json:"layer"`
	// Classes maps a position class to the feature's distribution there.
	Classes map[string]Dist `json:"classes"`
}

// Key returns "HOOK/STAT".
func (f *FeatureDist) Key() string { return f.Hook + "/" + f.Stat }

// Feature returns the distributions of a feature by key.
func (b *Baseline) Feature(key string) (*FeatureDist, bool) {
	if b.index == nil {
		b.index = make(map[string]int, len(b.Features))
		for i := range b.Features {
			b.index[b.Features[i].Key()] = i
		}
	}
	i, ok := b.index[key]
	if !ok {
		return nil, false
	}
	return &b.Features[i], true
}

// Class returns the position class of position p in a run of P positions
// (whole: a hook without positions, class "0").
func (b *Baseline) Class(p, P int, whole bool) string {
	return classOf(p, P, whole, b.Bidirectional, b.Cutoff)
}

func classOf(p, P int, whole, bidirectional bool, cutoff int) string {
	switch {
	case whole:
		return "0"
	case bidirectional && p == P-1 && P > 1:
		return ClassLast
	case p >= cutoff:
		return ClassTail
	}
	return strconv.Itoa(p)
}

// Dist returns the distribution a value of the feature at position p of a
// run of P positions is scored against: its class's, or ClassAll's when
// the class has fewer than MinSamples samples.
func (f *FeatureDist) Dist(b *Baseline, p, P int, whole bool) (Dist, bool) {
	if d, ok := f.Classes[b.Class(p, P, whole)]; ok && d.N >= b.MinSamples {
		return d, true
	}
	d, ok := f.Classes[ClassAll]
	return d, ok && d.N > 0
}

// Accumulator collects the features of benign runs into a Baseline.
type Accumulator struct {
	b          Baseline
	minSamples int
	samples    map[string]*featureSamples
	reach      []int // reach[p]: runs with more than p positions (last excluded)
	runs       []*Features
}

type featureSamples struct {
	hook, stat string
	layer      int
	whole      bool
	byPos      [][]float64
	last       []float64
}

// NewAccumulator returns an accumulator for baselines of the model
// identified by model, with layers blocks and sketch settings sketch, with
// cfg's compression, scoring and baseline settings.
func NewAccumulator(model bundle.Model, layers int, sketch bundle.Sketch, cfg Config) *Accumulator {
	return &Accumulator{
		b: Baseline{Format: BaselineFormat, Model: model, Layers: layers, Sketch: sketch, Quantize: cfg.Quantize,
			ZstdLevel: cfg.ZstdLevel, MinRowBytes: cfg.MinRowBytes, MaxNewTokens: cfg.Baseline.MaxNewTokens,
			Bidirectional: model.Type == "bert",
			Scoring:       Scoring{Exclude: slices.Clone(cfg.Exclude), Top: cfg.Top, ZClip: cfg.ZClip}},
		minSamples: cfg.Baseline.MinSamples,
		samples:    map[string]*featureSamples{},
	}
}

// Add adds one benign run's features.
func (a *Accumulator) Add(f *Features) error {
	if f.ModelType != a.b.Model.Type {
		return fmt.Errorf("cf: baseline: a %s run for a %s baseline", f.ModelType, a.b.Model.Type)
	}
	if f.SketchK != a.b.Sketch.K || f.SketchSeed != a.b.Sketch.Seed {
		return fmt.Errorf("cf: baseline: sketch k=%d seed=%d, the baseline has k=%d seed=%d", f.SketchK, f.SketchSeed, a.b.Sketch.K, a.b.Sketch.Seed)
	}
	P := f.Positions
	a.runs = append(a.runs, f)
	a.b.Prompts++
	a.b.Positions += P
	n := P
	if a.b.Bidirectional && P > 1 {
		n = P - 1
	}
	for p := range n {
		if p == len(a.reach) {
			a.reach = append(a.reach, 0)
		}
		a.reach[p]++
	}
	for i := range f.Series {
		s := &f.Series[i]
		fs := a.samples[s.Key()]
		if fs == nil {
			fs = &featureSamples{hook: s.Hook, stat: s.Stat, layer: s.Layer, whole: len(s.Values) == 1 && P > 1}
			a.samples[s.Key()] = fs
		}
		for p, x := range s.Values {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
			if a.b.Bidirectional && !fs.whole && p == P-1 && P > 1 {
				fs.last = append(fs.last, x)
				continue
			}
			for len(fs.byPos) <= p {
				fs.byPos = append(fs.byPos, nil)
			}
			fs.byPos[p] = append(fs.byPos[p], x)
		}
	}
	return nil
}

// Baseline summarises the runs added so far: positions reached by at
// least cf.baseline.min_samples runs get their own class, later ones are
// pooled. It then scores every run against the summary and keeps the
// distribution of each signal's layer scores as the calibration.
func (a *Accumulator) Baseline(created time.Time) (*Baseline, error) {
	minSamples := a.minSamples
	if a.b.Prompts == 0 {
		return nil, fmt.Errorf("cf: baseline: no runs")
	}
	if minSamples < 1 {
		return nil, fmt.Errorf("cf: baseline: min samples %d < 1", minSamples)
	}
	b := a.b
	b.Created = created.UTC().Truncate(time.Second)
	b.MinSamples = minSamples
	b.Cutoff = 0
	for b.Cutoff < len(a.reach) && a.reach[b.Cutoff] >= minSamples {
		b.Cutoff++
	}
	keys := make([]string, 0, len(a.samples))
	for k := range a.samples {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fs := a.samples[k]
		fd := FeatureDist{Hook: fs.hook, Stat: fs.stat, Layer: fs.layer, Classes: map[string]Dist{}}
		var all, tail []float64
		for p, xs := range fs.byPos {
			all = append(all, xs...)
			if fs.whole || p < b.Cutoff {
				if len(xs) > 0 {
					fd.Classes[strconv.Itoa(p)] = Summarize(xs)
				}
				continue
			}
			tail = append(tail, xs...)
		}
		if len(tail) > 0 {
			fd.Classes[ClassTail] = Summarize(tail)
		}
		if len(fs.last) > 0 {
			fd.Classes[ClassLast] = Summarize(fs.last)
			all = append(all, fs.last...)
		}
		if len(all) == 0 {
			continue
		}
		fd.Classes[ClassAll] = Summarize(all)
		b.Features = append(b.Features, fd)
	}
	b.calibrate(a.runs)
	return &b, nil
}

// calibrate scores each run against the baseline, each signal alone, and
// keeps the distribution of log(1 + layer score) per signal and layer.
// The runs are part of the baseline they are scored against, so the
// calibration sees them as slightly more typical than new benign runs.
func (b *Baseline) calibrate(runs []*Features) {
	b.Calibration = nil
	samples := map[Signal][][]float64{}
	for _, f := range runs {
		s := Score(f, b, b.Scoring.Exclude)
		for _, sig := range AllSignals() {
			c := s.signalCells([]Signal{sig}, b.Scoring.Top, b.Scoring.ZClip)
			if c == nil {
				continue
			}
			if samples[sig] == nil {
				samples[sig] = make([][]float64, b.Layers)
			}
			for l := range min(len(c), b.Layers) {
				best := 0.0
				for _, v := range c[l] {
					best = max(best, v)
				}
				samples[sig][l] = append(samples[sig][l], math.Log1p(best))
			}
		}
	}
	for _, sig := range AllSignals() {
		if samples[sig] == nil {
			continue
		}
		cal := Calibration{Signal: sig, Layers: make([]Dist, b.Layers)}
		var pooled []float64
		for l, xs := range samples[sig] {
			cal.Layers[l] = Summarize(xs)
			pooled = append(pooled, xs...)
		}
		cal.All = Summarize(pooled)
		b.Calibration = append(b.Calibration, cal)
	}
}

// Validate checks a baseline's fields, naming the first one at fault.
func (b *Baseline) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("field %s: %w: %s", field, ErrCorrupt, fmt.Sprintf(format, args...))
	}
	switch {
	case b.Format != BaselineFormat:
		return fmt.Errorf("field format: %q: %w (this fx reads %s)", b.Format, ErrUnsupported, BaselineFormat)
	case b.Model.Type != "gpt2" && b.Model.Type != "bert":
		return bad("model.type", "%q is not gpt2 or bert", b.Model.Type)
	case b.Model.WeightsSHA256 == "":
		return bad("model.weights_sha256", "missing")
	case b.Layers < 1:
		return bad("layers", "%d < 1", b.Layers)
	case b.Sketch.K < 1 || b.Sketch.K > 1024:
		return bad("sketch.k", "%d is outside [1, 1024]", b.Sketch.K)
	case b.Quantize != Int8 && b.Quantize != FP16:
		return bad("quantize", "%q is not %s or %s", b.Quantize, Int8, FP16)
	case b.ZstdLevel < 1 || b.ZstdLevel > 22:
		return bad("zstd_level", "%d is outside [1, 22]", b.ZstdLevel)
	case b.Prompts < 1:
		return bad("prompts", "%d < 1", b.Prompts)
	case b.MinSamples < 1:
		return bad("min_samples", "%d < 1", b.MinSamples)
	case b.Cutoff < 0:
		return bad("cutoff", "%d < 0", b.Cutoff)
	case len(b.Features) == 0:
		return bad("features", "empty")
	}
	if b.Scoring.Top < 1 || !(b.Scoring.ZClip > 0) {
		return bad("scoring", "top %d, z_clip %g", b.Scoring.Top, b.Scoring.ZClip)
	}
	for i, c := range b.Calibration {
		field := fmt.Sprintf("calibration[%d]", i)
		if _, err := ParseSignal(string(c.Signal)); err != nil {
			return bad(field+".signal", "%v", err)
		}
		if len(c.Layers) != b.Layers {
			return bad(field+".layers", "%d layers, the model has %d", len(c.Layers), b.Layers)
		}
		for l, d := range append(slices.Clone(c.Layers), c.All) {
			name := fmt.Sprintf("%s.layers[%d]", field, l)
			if l == len(c.Layers) {
				name = field + ".all"
			}
			if d.N < 1 || math.IsNaN(d.Median) || math.IsInf(d.Median, 0) || !(d.MAD >= 0) || !(d.MeanAD >= 0) ||
				math.IsInf(d.MAD, 0) || math.IsInf(d.MeanAD, 0) {
				return bad(name, "n %d, median %g, mad %g, mean_ad %g", d.N, d.Median, d.MAD, d.MeanAD)
			}
		}
	}
	for i, f := range b.Features {
		field := fmt.Sprintf("features[%d]", i)
		if i > 0 && b.Features[i-1].Key() >= f.Key() {
			return bad(field, "%s is out of order or repeated (features are sorted by hook/stat)", f.Key())
		}
		if f.Hook == "" || f.Stat == "" {
			return bad(field, "missing hook or stat")
		}
		if f.Layer != LayerOf(f.Hook) || f.Layer >= b.Layers {
			return bad(field+".layer", "%d for hook %s of a %d-block model", f.Layer, f.Hook, b.Layers)
		}
		if _, ok := f.Classes[ClassAll]; !ok {
			return bad(field+".classes", "no %q class", ClassAll)
		}
		for c, d := range f.Classes {
			if c != ClassAll && c != ClassTail && c != ClassLast {
				if p, err := strconv.Atoi(c); err != nil || p < 0 || strconv.Itoa(p) != c {
					return bad(field+".classes", "%q is not a position class", c)
				}
			}
			for _, v := range []float64{d.Median, d.MAD, d.MeanAD} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return bad(field+".classes."+c, "not finite")
				}
			}
			if d.N < 1 || d.MAD < 0 || d.MeanAD < 0 {
				return bad(field+".classes."+c, "n %d, mad %g, mean_ad %g", d.N, d.MAD, d.MeanAD)
			}
		}
	}
	return nil
}

// Encode writes the baseline as a .fxbase file: the format line, a line
// with the sha256 and byte length of the payload, then the payload (the
// baseline as JSON).
func (b *Baseline) Encode(w io.Writer) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("cf: baseline: %w", err)
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("cf: baseline: %w", err)
	}
	sum := sha256.Sum256(payload)
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\nsha256 %s %d\n", BaselineFormat, hex.EncodeToString(sum[:]), len(payload))
	bw.Write(payload)
	return bw.Flush()
}

// WriteFile writes the baseline to path, through a temporary file renamed
// into place when complete.
func (b *Baseline) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cf: baseline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("cf: baseline %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cf: baseline %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cf: baseline: %w", err)
	}
	return nil
}

// DecodeBaseline reads a .fxbase file's bytes: it checks the format line,
// the payload's length and sha256, decodes the JSON (unknown fields are
// errors) and validates it. Errors wrap ErrCorrupt or ErrUnsupported.
func DecodeBaseline(data []byte) (*Baseline, error) {
	line, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no format line (want %q)", ErrCorrupt, BaselineFormat)
	}
	if format := string(line); format != BaselineFormat {
		if strings.HasPrefix(format, "fx-baseline/") {
			return nil, fmt.Errorf("format %q: %w (this fx reads %s)", format, ErrUnsupported, BaselineFormat)
		}
		return nil, fmt.Errorf("%w: not an fx baseline (the first line is not %q)", ErrCorrupt, BaselineFormat)
	}
	line, payload, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no checksum line", ErrCorrupt)
	}
	fields := strings.Fields(string(line))
	if len(fields) != 3 || fields[0] != "sha256" || len(fields[1]) != 64 {
		return nil, fmt.Errorf("%w: checksum line %q is not \"sha256 HEX LENGTH\"", ErrCorrupt, line)
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: checksum line: length %q", ErrCorrupt, fields[2])
	}
	if len(payload) != n {
		return nil, fmt.Errorf("%w: payload of %d bytes, the checksum line says %d (truncated?)", ErrCorrupt, len(payload), n)
	}
	sum := sha256.Sum256(payload)
	if got := hex.EncodeToString(sum[:]); got != fields[1] {
		return nil, fmt.Errorf("%w: payload sha256 %s, the checksum line says %s (the file was changed or corrupted)", ErrCorrupt, got, fields[1])
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var b Baseline
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: payload: data after the JSON object", ErrCorrupt)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// ReadBaseline reads and checks the .fxbase file at path.
func ReadBaseline(path string) (*Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cf: baseline: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBaselineBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cf: baseline %s: %w", path, err)
	}
	if len(data) > maxBaselineBytes {
		return nil, fmt.Errorf("cf: baseline %s: larger than %d bytes", path, maxBaselineBytes)
	}
	b, err := DecodeBaseline(data)
	if err != nil {
		return nil, fmt.Errorf("cf: baseline %s: %w", path, err)
	}
	return b, nil
}
