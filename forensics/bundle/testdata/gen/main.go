// Command gen writes the seed corpora of forensics/bundle's fuzz targets
// (testdata/fuzz/FuzzParseManifest, testdata/fuzz/FuzzDecodeActivations)
// from a bundle that fx records of the tiny test model. Run from the
// repository root:
//
//	go run ./forensics/bundle/testdata/gen
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/transformer"
)

const out = "forensics/bundle/testdata/fuzz"

func main() {
	tmp, err := os.MkdirTemp("", "fx-gen-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	model := "testdata/models/gpt2-tiny"
	m, err := transformer.Load(model, cpu.New())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	for _, level := range []string{bundle.LevelMinimal, bundle.LevelFull} {
		opts := recorder.DefaultOptions()
		opts.Level = level
		opts.Hooks = []string{"hook_embed", "blocks.0.*", "unembed.hook_out"}
		r, err := recorder.New(m, opts)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := r.Run(context.Background(), bundle.Input{Text: "seed", InputIDs: []int{1, 2, 3},
			Generate: &bundle.Generate{MaxNewTokens: 2}}); err != nil {
			log.Fatal(err)
		}
		rec, err := r.Finish()
		if err != nil {
			log.Fatal(err)
		}
		id, err := recorder.Identify(m, model, recorder.DirFiles(m, model))
		if err != nil {
			log.Fatal(err)
		}
		dir := filepath.Join(tmp, level)
		if err := rec.Write(dir, recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend),
			Outcome: bundle.Outcome{Detector: "contains:x", Failed: false, Detail: "seed"}}); err != nil {
			log.Fatal(err)
		}
		manifest, err := os.ReadFile(filepath.Join(dir, bundle.ManifestName))
		if err != nil {
			log.Fatal(err)
		}
		seed("FuzzParseManifest", level, manifest)
		seed("FuzzParseManifest", level+"_v2", []byte(strings.Replace(string(manifest), "fx-bundle/1", "fx-bundle/2", 1)))
		seed("FuzzParseManifest", level+"_dotdot", []byte(strings.Replace(string(manifest), `"inputs.jsonl"`, `"../inputs.jsonl"`, 1)))
		b, err := bundle.Open(dir, bundle.DefaultLimits())
		if err != nil {
			log.Fatal(err)
		}
		for _, g := range []string{"embed", "block_00"} {
			npz, err := b.ReadFile(bundle.ActivationsPath(g))
			if err != nil {
				log.Fatal(err)
			}
			rec := b.Manifest.Record
			spec, err := json.Marshal(map[string]any{"k": rec.Sketch.K, "dtype": rec.DType, "hooks": b.Manifest.HooksOf(g)})
			if err != nil {
				log.Fatal(err)
			}
			seed("FuzzDecodeActivations", level+"_"+g, spec, npz)
		}
	}
}

// seed writes one corpus file in the format of go test's fuzzing.
func seed(target, name string, values ...[]byte) {
	dir := filepath.Join(out, target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	body := "go test fuzz v1\n"
	for _, v := range values {
		body += fmt.Sprintf("[]byte(%s)\n", strconv.Quote(string(v)))
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		log.Fatal(err)
	}
}
