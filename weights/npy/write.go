package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteFloat32 writes data, of the given shape, to w as a .npy array of
// dtype '<f4'. len(data) must equal the product of shape; an empty shape
// writes a 0-d array of one element.
func WriteFloat32(w io.Writer, data []float32, shape []int) error {
	if err := writeFloat32(w, data, shape); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

func writeFloat32(w io.Writer, data []float32, shape []int) error {
	if err := writeHeader(w, "<f4", len(data), shape); err != nil {
		return err
	}
	return writeChunks(w, len(data), 4, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(data[i]))
	})
}

// WriteInt64 writes data, of the given shape, to w as a .npy array of dtype
// '<i8'. len(data) must equal the product of shape.
func WriteInt64(w io.Writer, data []int64, shape []int) error {
	if err := writeInt64(w, data, shape); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

func writeInt64(w io.Writer, data []int64, shape []int) error {
	if err := writeHeader(w, "<i8", len(data), shape); err != nil {
		return err
	}
	return writeChunks(w, len(data), 8, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint64(b, uint64(data[i]))
	})
}

// SaveFloat32 writes data as a .npy file at path, as WriteFloat32 does. It
// writes a temporary file in the same directory and renames it over path,
// so path is either left as it was or holds the whole array.
func SaveFloat32(path string, data []float32, shape []int) error {
	return save(path, func(w io.Writer) error { return writeFloat32(w, data, shape) })
}

// SaveInt64 writes data as a .npy file at path, as WriteInt64 does, and as
// atomically as SaveFloat32.
func SaveInt64(path string, data []int64, shape []int) error {
	return save(path, func(w io.Writer) error { return writeInt64(w, data, shape) })
}

// save writes a file atomically through write.
func save(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// checkShape checks that shape holds n elements.
func checkShape(n int, shape []int) error {
	elems, ok := numElements(shape)
	if !ok {
		return fmt.Errorf("invalid shape %v", shape)
	}
	if elems != uint64(n) {
		return fmt.Errorf("shape %v holds %d elements but data has %d", shape, elems, n)
	}
	return nil
}

// Header returns the magic, version, header length and header of a
// .npy file, padded as numpy pads it so that the data starts at a multiple
// of 64 bytes.
func Header(descr string, shape []int) []byte {
	var dims []string
	for _, d := range shape {
		dims = append(dims, strconv.Itoa(d))
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	dict := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + tuple + ", }"
	// Version 1.0 has a 2-byte header length; 2.0 a 4-byte one.
	major, prefix := byte(1), 10
	if len(dict)+1+prefix+64 > math.MaxUint16 {
		major, prefix = 2, 12
	}
	total := prefix + len(dict) + 1
	pad := (64 - total%64) % 64
	hlen := len(dict) + pad + 1
	b := make([]byte, 0, prefix+hlen)
	b = append(b, magic...)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(hlen))
	}
	b = append(b, dict...)
	b = append(b, strings.Repeat(" ", pad)...)
	return append(b, '\n')
}

func writeHeader(w io.Writer, descr string, n int, shape []int) error {
	if err := checkShape(n, shape); err != nil {
		return err
	}
	if _, err := w.Write(Header(descr, shape)); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return nil
}

// writeChunks writes n elements of size bytes, encoded by add, in chunks.
func writeChunks(w io.Writer, n, size int, add func([]byte, int) []byte) error {
	buf := make([]byte, 0, 64<<10)
	for i := range n {
		buf = add(buf, i)
		if len(buf)+size > cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("write data: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	return nil
}
