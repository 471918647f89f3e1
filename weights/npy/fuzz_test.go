package npy

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadNPY checks that no input makes Read or the conversions panic, and
// that an accepted array's data matches its shape. Seeds live in
// testdata/fuzz/FuzzReadNPY. Run with
//
//	go test ./weights/npy -run '^$' -fuzz FuzzReadNPY -fuzztime 30s
func FuzzReadNPY(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, []float32{1, 2, 3, 4, 5, 6}, []int{2, 3}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(npyBytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", []byte{1, 0, 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadLimit(bytes.NewReader(data), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		n := a.NumElements()
		if n < 0 {
			t.Fatalf("accepted shape %v", a.Shape)
		}
		if vals, err := a.Float32(); err != nil || len(vals) != n {
			t.Fatalf("Float32: %d values for %d elements, err %v", len(vals), n, err)
		}
		if vals, err := a.Int64(); err == nil && len(vals) != n {
			t.Fatalf("Int64: %d values for %d elements", len(vals), n)
		}
	})
}

// FuzzReadNPZ checks that no input makes ReadNPZBytes panic.
func FuzzReadNPZ(f *testing.F) {
	var buf bytes.Buffer
	z := NewNPZWriter(&buf, true)
	if err := z.AddFloat32("a", []float32{1, 2}, []int{2}); err != nil {
		f.Fatal(err)
	}
	if err := z.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadNPZLimit(bytes.NewReader(data), int64(len(data)), 1<<20)
		if err != nil {
			return
		}
		for _, a := range m {
			if _, err := a.Float32(); err != nil {
				t.Fatalf("Float32 of an accepted array: %v", err)
			}
		}
	})
}
