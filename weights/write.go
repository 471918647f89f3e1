package weights

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modelforensics/fx/weights/internal/half"
)

// Tensor is a tensor to write. Data holds its values in row-major order;
// Write converts them to DType (F32, F16 or BF16, the latter two rounded to
// nearest with ties to even).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []float32
}

// Write writes tensors and metadata as a safetensors file at path. It writes
// a temporary file in the same directory, syncs it and renames it over path,
// so path is either left as it was or holds the whole new file.
func Write(path string, tensors []Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Encode(bw, tensors, metadata); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable where the platform allows; failure
// is harmless to correctness, so it is ignored.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// Encode writes tensors and metadata to w in the safetensors format: the
// header lists "__metadata__" first (omitted when metadata is empty), then
// the tensors, with keys in sorted order, and is padded with spaces so that
// the data region starts at a multiple of 8 bytes; the tensors' bytes follow
// in name order, without gaps. Tensor names must be unique, non-empty and
// valid UTF-8, and len(Data) must equal the product of Shape.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	order := make([]int, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		order[i] = i
		if err := checkTensor(t); err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("weights: duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("weights: metadata %q: not valid UTF-8", k)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(tensors[a].Name, tensors[b].Name) })

	var h strings.Builder
	h.WriteByte('{')
	if len(metadata) > 0 {
		h.WriteString(`"__metadata__":{`)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	var off int64
	for i, j := range order {
		t := tensors[j]
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		size := int64(len(t.Data) * t.DType.Size())
		writeJSONString(&h, t.Name)
		h.WriteString(`:{"dtype":"`)
		h.WriteString(string(t.DType))
		h.WriteString(`","shape":[`)
		for k, d := range t.Shape {
			if k > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, off+size)
		off += size
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return fmt.Errorf("weights: header of %d bytes exceeds the limit of %d", h.Len(), MaxHeaderSize)
	}

	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(h.Len()))
	if _, err := w.Write(prefix[:]); err != nil {
		return fmt.Errorf("weights: write header: %w", err)
	}
	if _, err := io.WriteString(w, h.String()); err != nil {
		return fmt.Errorf("weights: write header: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for _, j := range order {
		t := tensors[j]
		for _, x := range t.Data {
			switch t.DType {
			case F32:
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
			case F16:
				buf = binary.LittleEndian.AppendUint16(buf, half.Float32ToF16(x))
			case BF16:
				buf = binary.LittleEndian.AppendUint16(buf, half.Float32ToBF16(x))
			}
			if len(buf) > cap(buf)-8 {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("weights: tensor %q: write: %w", t.Name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("weights: write: %w", err)
	}
	return nil
}

func checkTensor(t Tensor) error {
	if t.Name == "" {
		return fmt.Errorf("weights: tensor with empty name")
	}
	if t.Name == "__metadata__" {
		return fmt.Errorf("weights: tensor %q: reserved name", t.Name)
	}
	if !utf8.ValidString(t.Name) {
		return fmt.Errorf("weights: tensor %q: name is not valid UTF-8", t.Name)
	}
	if !t.DType.convertible() {
		return fmt.Errorf("weights: tensor %q: %w %q (Write encodes F32, F16 and BF16)",
			t.Name, ErrUnsupportedDType, t.DType)
	}
	n, ok := numElements(t.Shape)
	if !ok {
		return fmt.Errorf("weights: tensor %q: invalid shape %v", t.Name, t.Shape)
	}
	if n != uint64(len(t.Data)) {
		return fmt.Errorf("weights: tensor %q: shape %v holds %d values but Data has %d",
			t.Name, t.Shape, n, len(t.Data))
	}
	return nil
}

// writeJSONString writes s to b as a JSON string.
func writeJSONString(b *strings.Builder, s string) {
	q, _ := json.Marshal(s) // cannot fail for a string
	b.Write(q)
}
