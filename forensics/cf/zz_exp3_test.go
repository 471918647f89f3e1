//go:build cfexp

package cf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

func TestExpPrompts(t *testing.T) {
	d := os.Getenv("SCEN1")
	cfg := DefaultConfig()
	if v := os.Getenv("VALUES"); v != "" {
		cfg.Values = strings.Split(v, ",")
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
	base, _ := BuildBaseline(context.Background(), m, bp, BaselineOptions{Config: cfg, Model: bundle.Model{Type: m.Config.ModelType, WeightsSHA256: "x"}, Sketch: sk})
	opts := RecordOptions(m, cfg.Values, sk)
	trig := map[int]bool{}
	for _, t := range s.Truth.Trigger.Tokens {
		trig[t.ID] = true
	}
	var prompts []scenario.Prompt
	for i, p := range s.PromptsOf("benign") {
		if i%2 == 0 {
			prompts = append(prompts, p)
		}
	}
	prompts = append(prompts, s.PromptsOf("failing")[:20]...)
	for _, p := range prompts {
		ids := m.Encode(p.Text)
		run, _, _ := RecordPrompt(context.Background(), m, ids, maxNew, opts, cfg.Values)
		rep, _ := Analyze(run, base, cfg)
		tr := slices.ContainsFunc(ids, func(id int) bool { return trig[id] })
		line := fmt.Sprintf("%-8s trig=%-5v all=%7.1f", p.Kind, tr, rep.Score)
		for _, bs := range rep.BySignal {
			line += fmt.Sprintf(" %s=%7.1f", bs.Signal[:4], bs.Score)
		}
		d := rep.Top[0]
		line += fmt.Sprintf("  | %s %s p%d z%.0f | %q", d.Hook, d.Stat, d.Position, d.Z, p.Text)
		fmt.Println(line)
	}
}
