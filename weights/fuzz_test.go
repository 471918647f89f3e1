package weights

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input makes Parse or the accessors panic, and
// that every tensor of an accepted file lies inside its data region.
// Seeds live in testdata/fuzz/FuzzParse. Run with
//
//	go test ./weights -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	f.Add(st(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]}}`, make([]byte, 12)))
	f.Add(st(`{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		defer file.Close()
		dataLen := int64(len(file.data))
		for _, name := range file.Names() {
			info, ok := file.Info(name)
			if !ok {
				t.Fatalf("Names lists %q but Info does not find it", name)
			}
			if info.Begin < 0 || info.Begin > info.End || info.End > dataLen {
				t.Fatalf("tensor %q: span [%d, %d] outside %d-byte data region", name, info.Begin, info.End, dataLen)
			}
			raw, err := file.Raw(name)
			if err != nil || int64(len(raw)) != info.End-info.Begin {
				t.Fatalf("Raw(%q): %d bytes, err %v", name, len(raw), err)
			}
			vals, err := file.Float32(name)
			if err == nil && len(vals) != info.NumElements() {
				t.Fatalf("Float32(%q): %d values for shape %v", name, len(vals), info.Shape)
			}
			if err != nil && !errors.Is(err, ErrUnsupportedDType) {
				t.Fatalf("Float32(%q): %v", name, err)
			}
		}
	})
}
