package bundle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/modelforensics/fx/weights"
	"github.com/modelforensics/fx/weights/npy"
)

// HookRecord is what a bundle holds of one hook point: a sketch of every
// position and, when stored, the activation itself. In an activations
// .npz, the hook's entries are HOOK (the activation, when stored) and
// HOOK.count, HOOK.mean, HOOK.l2, HOOK.min, HOOK.max ([positions]),
// HOOK.proj ([positions, k]) and HOOK.hash ([positions], uint64).
type HookRecord struct {
	// Hook is the hook point's name.
	Hook string
	// Count is the number of values sketched at each position.
	Count []int64
	// Mean, L2, Min and Max are the values' mean, Euclidean norm, minimum
	// and maximum at each position (NaNs are skipped by Min and Max).
	Mean, L2, Min, Max []float32
	// Proj is each position's random projection to K dimensions,
	// [positions, K] row-major.
	Proj []float32
	// Hash is the XXH64 of each position's exact float32 bytes.
	Hash []uint64
	// Raw is the activation over the whole run, or nil when not stored.
	Raw *Raw
}

// Positions returns the number of sketched positions.
func (h *HookRecord) Positions() int { return len(h.Hash) }

// Raw is a stored activation: float16 bits or float32 values.
type Raw struct {
	// Shape is the activation's shape, batch dimension dropped.
	Shape []int
	// DType is Float16 (values in F16) or Float32 (values in F32).
	DType string
	F16   []uint16
	F32   []float32
}

// Len returns the number of values.
func (r *Raw) Len() int {
	if r.DType == Float16 {
		return len(r.F16)
	}
	return len(r.F32)
}

// At returns value i as a float32.
func (r *Raw) At(i int) float32 {
	if r.DType == Float16 {
		return weights.F16ToFloat32(r.F16[i])
	}
	return r.F32[i]
}

// Bits returns the stored bits of value i (float16 bits widened, or the
// float32 bits).
func (r *Raw) Bits(i int) uint32 {
	if r.DType == Float16 {
		return uint32(r.F16[i])
	}
	return math.Float32bits(r.F32[i])
}

// check verifies a record's arrays against its hook info and k.
func (h *HookRecord) check(info HookInfo, k int, dtype string) error {
	p := info.Positions
	for _, c := range []struct {
		name string
		n    int
	}{{"count", len(h.Count)}, {"mean", len(h.Mean)}, {"l2", len(h.L2)}, {"min", len(h.Min)},
		{"max", len(h.Max)}, {"proj", len(h.Proj)}, {"hash", len(h.Hash)}} {
		want := p
		if c.name == "proj" {
			want = p * k
		}
		if c.n != want {
			return fmt.Errorf("hook %s: %s has %d values, want %d", h.Hook, c.name, c.n, want)
		}
	}
	if info.Stored != (h.Raw != nil) {
		return fmt.Errorf("hook %s: stored is %v, but the activation is %s", h.Hook, info.Stored, map[bool]string{true: "present", false: "absent"}[h.Raw != nil])
	}
	if h.Raw != nil {
		if !slices.Equal(h.Raw.Shape, info.Shape) {
			return fmt.Errorf("hook %s: activation shape %v, the manifest says %v", h.Hook, h.Raw.Shape, info.Shape)
		}
		if h.Raw.DType != dtype {
			return fmt.Errorf("hook %s: activation dtype %s, the manifest says %s", h.Hook, h.Raw.DType, dtype)
		}
		n := 1
		for _, d := range info.Shape {
			n *= d
		}
		if h.Raw.Len() != n {
			return fmt.Errorf("hook %s: %d values for shape %v", h.Hook, h.Raw.Len(), info.Shape)
		}
	}
	for i, c := range h.Count {
		if c < 0 {
			return fmt.Errorf("hook %s: count[%d] = %d < 0", h.Hook, i, c)
		}
	}
	return nil
}

// zipEpoch is the time stamped on every zip entry, so that equal arrays
// give equal bytes.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteActivations writes records as one .npz that numpy.load opens,
// deflating its entries at level (1 to 9; 0 stores them) with
// klauspost/compress's deflate.
func WriteActivations(w io.Writer, records []HookRecord, level int) error {
	if level < 0 || level > 9 {
		return fmt.Errorf("bundle: compression level %d is outside [0, 9]", level)
	}
	zw := zip.NewWriter(w)
	// Entries are written one after another: one compressor, reset for
	// each, saves allocating its tables hundreds of times.
	var fw *flate.Writer
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if fw == nil {
			var err error
			fw, err = flate.NewWriter(out, level)
			return fw, err
		}
		fw.Reset(out)
		return fw, nil
	})
	method := zip.Deflate
	if level == 0 {
		method = zip.Store
	}
	add := func(name, descr string, shape []int, data func(buf []byte, from, to int) []byte, n, size int) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: method, Modified: zipEpoch})
		if err != nil {
			return fmt.Errorf("bundle: npz entry %s: %w", name, err)
		}
		if _, err := fw.Write(npy.Header(descr, shape)); err != nil {
			return fmt.Errorf("bundle: npz entry %s: %w", name, err)
		}
		const chunk = 16 << 10
		buf := make([]byte, 0, chunk*size)
		for from := 0; from < n; from += chunk {
			to := min(n, from+chunk)
			buf = data(buf[:0], from, to)
			if _, err := fw.Write(buf); err != nil {
				return fmt.Errorf("bundle: npz entry %s: %w", name, err)
			}
		}
		return nil
	}
	f32 := func(name string, xs []float32, shape []int) error {
		return add(name, "<f4", shape, func(b []byte, from, to int) []byte {
			for _, x := range xs[from:to] {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
			return b
		}, len(xs), 4)
	}
	le := binary.LittleEndian
	for _, r := range records {
		p := r.Positions()
		if r.Raw != nil {
			var err error
			switch raw := r.Raw; raw.DType {
			case Float16:
				err = add(r.Hook, "<f2", raw.Shape, func(b []byte, from, to int) []byte {
					for _, x := range raw.F16[from:to] {
						b = le.AppendUint16(b, x)
					}
					return b
				}, len(raw.F16), 2)
			case Float32:
				err = f32(r.Hook, raw.F32, raw.Shape)
			default:
				err = fmt.Errorf("bundle: hook %s: dtype %q is not float16 or float32", r.Hook, raw.DType)
			}
			if err != nil {
				return err
			}
		}
		if err := add(r.Hook+".count", "<i8", []int{p}, func(b []byte, from, to int) []byte {
			for _, x := range r.Count[from:to] {
				b = le.AppendUint64(b, uint64(x))
			}
			return b
		}, len(r.Count), 8); err != nil {
			return err
		}
		for _, s := range []struct {
			name string
			xs   []float32
		}{{"mean", r.Mean}, {"l2", r.L2}, {"min", r.Min}, {"max", r.Max}} {
			if err := f32(r.Hook+"."+s.name, s.xs, []int{p}); err != nil {
				return err
			}
		}
		k := 0
		if p > 0 {
			k = len(r.Proj) / p
		}
		if err := f32(r.Hook+".proj", r.Proj, []int{p, k}); err != nil {
			return err
		}
		if err := add(r.Hook+".hash", "<u8", []int{p}, func(b []byte, from, to int) []byte {
			for _, x := range r.Hash[from:to] {
				b = le.AppendUint64(b, x)
			}
			return b
		}, len(r.Hash), 8); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: npz: %w", err)
	}
	return nil
}

// DecodeActivations reads one activations .npz (data) against the hooks
// the manifest puts in it: every hook must have exactly its sketch entries
// (and its activation when stored) with the shapes and dtypes the manifest
// implies, and nothing else may be there. Decompressed data beyond
// maxBytes is an error wrapping ErrTooLarge.
func DecodeActivations(data []byte, hooks []HookInfo, k int, dtype string, maxBytes int64) ([]HookRecord, error) {
	arrays, err := npy.ReadNPZLimit(bytes.NewReader(data), int64(len(data)), maxBytes)
	if err != nil {
		if errors.Is(err, npy.ErrTooLarge) {
			return nil, fmt.Errorf("%w: decompression bomb? %w", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	used := map[string]bool{}
	get := func(name, descr string, shape []int) (npy.Array, error) {
		a, ok := arrays[name]
		if !ok {
			return npy.Array{}, fmt.Errorf("%w: entry %s.npy is missing", ErrInvalid, name)
		}
		used[name] = true
		if a.DType != descr {
			return npy.Array{}, fmt.Errorf("%w: entry %s.npy has dtype %s, want %s", ErrInvalid, name, a.DType, descr)
		}
		if !slices.Equal(a.Shape, shape) {
			return npy.Array{}, fmt.Errorf("%w: entry %s.npy has shape %v, want %v", ErrInvalid, name, a.Shape, shape)
		}
		return a, nil
	}
	le := binary.LittleEndian
	f32 := func(a npy.Array) []float32 {
		out := make([]float32, len(a.Data)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(a.Data[4*i:]))
		}
		return out
	}
	u64 := func(a npy.Array) []uint64 {
		out := make([]uint64, len(a.Data)/8)
		for i := range out {
			out[i] = le.Uint64(a.Data[8*i:])
		}
		return out
	}
	var out []HookRecord
	for _, h := range hooks {
		p := h.Positions
		r := HookRecord{Hook: h.Name}
		a, err := get(h.Name+".count", "<i8", []int{p})
		if err != nil {
			return nil, err
		}
		for _, x := range u64(a) {
			r.Count = append(r.Count, int64(x))
		}
		for _, s := range []struct {
			name string
			dst  *[]float32
		}{{"mean", &r.Mean}, {"l2", &r.L2}, {"min", &r.Min}, {"max", &r.Max}} {
			a, err := get(h.Name+"."+s.name, "<f4", []int{p})
			if err != nil {
				return nil, err
			}
			*s.dst = f32(a)
		}
		if a, err = get(h.Name+".proj", "<f4", []int{p, k}); err != nil {
			return nil, err
		}
		r.Proj = f32(a)
		if a, err = get(h.Name+".hash", "<u8", []int{p}); err != nil {
			return nil, err
		}
		r.Hash = u64(a)
		if h.Stored {
			descr := map[string]string{Float16: "<f2", Float32: "<f4"}[dtype]
			a, err := get(h.Name, descr, h.Shape)
			if err != nil {
				return nil, err
			}
			raw := &Raw{Shape: slices.Clone(h.Shape), DType: dtype}
			if dtype == Float16 {
				raw.F16 = make([]uint16, len(a.Data)/2)
				for i := range raw.F16 {
					raw.F16[i] = le.Uint16(a.Data[2*i:])
				}
			} else {
				raw.F32 = f32(a)
			}
			r.Raw = raw
		}
		if err := r.check(h, k, dtype); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		out = append(out, r)
	}
	var extra []string
	for name := range arrays {
		if !used[name] {
			extra = append(extra, name+".npy")
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, fmt.Errorf("%w: entries not in the manifest: %s", ErrInvalid, strings.Join(extra, ", "))
	}
	return out, nil
}
