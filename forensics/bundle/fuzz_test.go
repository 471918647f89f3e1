package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseManifest checks that no input makes ParseManifest panic, that
// every error wraps a sentinel, and that an accepted manifest survives a
// round trip through JSON. Seeds live in testdata/fuzz/FuzzParseManifest
// (made by testdata/gen). Run with
//
//	go test ./forensics/bundle -run '^$' -fuzz FuzzParseManifest -fuzztime 30s
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"fx-bundle/1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal an accepted manifest: %v", err)
		}
		if _, err := ParseManifest(again); err != nil {
			t.Fatalf("an accepted manifest does not parse again: %v", err)
		}
		for _, g := range m.Groups() {
			if _, ok := m.File(ActivationsPath(g)); !ok {
				t.Fatalf("accepted without the file of group %s", g)
			}
		}
	})
}

// activationsSpec is what FuzzDecodeActivations decodes against: the
// manifest's record of one activations file.
type activationsSpec struct {
	K     int        `json:"k"`
	DType string     `json:"dtype"`
	Hooks []HookInfo `json:"hooks"`
}

// FuzzDecodeActivations checks that no .npz, against any plausible hook
// list, makes DecodeActivations panic or allocate beyond its limit, and
// that what it accepts matches the hooks it was told to expect. Seeds
// (spec JSON, npz) live in testdata/fuzz/FuzzDecodeActivations.
//
//	go test ./forensics/bundle -run '^$' -fuzz FuzzDecodeActivations -fuzztime 30s
func FuzzDecodeActivations(f *testing.F) {
	infos, recs := testRecords(3, Float16)
	var buf bytes.Buffer
	if err := WriteActivations(&buf, recs, 1); err != nil {
		f.Fatal(err)
	}
	spec, err := json.Marshal(activationsSpec{K: 3, DType: Float16, Hooks: infos})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(spec, buf.Bytes())
	f.Fuzz(func(t *testing.T, specJSON, data []byte) {
		var spec activationsSpec
		if json.Unmarshal(specJSON, &spec) != nil || spec.K < 1 || spec.K > 64 || len(spec.Hooks) > 64 ||
			(spec.DType != Float16 && spec.DType != Float32) {
			return
		}
		for _, h := range spec.Hooks {
			if checkShape(h.Shape) != nil || h.Positions < 1 || h.Positions > 1<<12 {
				return
			}
		}
		got, err := DecodeActivations(data, spec.Hooks, spec.K, spec.DType, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(got) != len(spec.Hooks) {
			t.Fatalf("%d records for %d hooks", len(got), len(spec.Hooks))
		}
		for i, r := range got {
			h := spec.Hooks[i]
			if r.Hook != h.Name || r.Positions() != h.Positions || (r.Raw != nil) != h.Stored {
				t.Fatalf("record %d (%s) does not match its hook info", i, r.Hook)
			}
			if err := r.check(h, spec.K, spec.DType); err != nil {
				t.Fatalf("accepted an inconsistent record: %v", err)
			}
		}
	})
}
