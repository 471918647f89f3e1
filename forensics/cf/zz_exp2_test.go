//go:build cfexp

package cf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

func TestExpDebug(t *testing.T) {
	d := os.Getenv("SCEN")
	cfg := DefaultConfig()
	if os.Getenv("FP16") != "" {
		cfg.Quantize = FP16
	}
	m, _ := transformer.Load(d, cpu.New())
	s, _ := scenario.Open(d)
	calib, _ := scenario.ReadPrompts(filepath.Join(d, scenario.CalibrationFile))
	var bp [][]int
	for _, p := range calib {
		if p.Kind == scenario.Benign {
			bp = append(bp, m.Encode(p.Text))
		}
	}
	for i, p := range s.PromptsOf("benign") {
		if i%2 == 1 {
			bp = append(bp, m.Encode(p.Text))
		}
	}
	maxNew := 0
	if m.GPT2 != nil {
		maxNew = s.Truth.Detector.MaxNewTokens
	}
	cfg.Baseline.MaxNewTokens = maxNew
	sk := bundle.Sketch{K: 8, Seed: 1}
	base, err := BuildBaseline(context.Background(), m, bp, BaselineOptions{Config: cfg, Model: bundle.Model{Type: m.Config.ModelType, WeightsSHA256: "x"}, Sketch: sk})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("cutoff", base.Cutoff, "features", len(base.Features))
	opts := RecordOptions(m, cfg.Values, sk)
	n := 0
	for _, kind := range []string{"benign", "failing"} {
		for _, p := range s.PromptsOf(kind)[:4] {
			run, _, _ := RecordPrompt(context.Background(), m, m.Encode(p.Text), maxNew, opts, cfg.Values)
			rep, err := Analyze(run, base, cfg)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("=====", kind, p.Text)
			fmt.Println(rep.Text())
			n++
		}
	}
}
