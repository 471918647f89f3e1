package cf_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cf"
	"github.com/modelforensics/fx/transformer"
)

// Example makes a baseline of a model from benign prompts, records one
// more run as an incident would be, and ranks its layers.
func Example() {
	ctx := context.Background()
	m, err := transformer.Load(filepath.Join("..", "..", "testdata", "models", "gpt2-tiny"), cpu.New())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	cfg := cf.DefaultConfig()
	cfg.Baseline.MaxNewTokens, cfg.Baseline.MinSamples = 4, 4
	var benign [][]int
	for i := range 8 {
		benign = append(benign, []int{10 + i, 20 + 2*i, 30, 40 + i, 50})
	}
	sketch := bundle.Sketch{K: 8, Seed: 1, Hash: bundle.HashXXH64}
	base, err := cf.BuildBaseline(ctx, m, benign, cf.BaselineOptions{Config: cfg,
		Model: bundle.Model{Name: "gpt2-tiny", Type: "gpt2"}, Sketch: sketch})
	if err != nil {
		fmt.Println(err)
		return
	}
	run, _, err := cf.RecordPrompt(ctx, m, []int{7, 300, 301, 302, 9}, 4, cf.RecordOptions(m, cfg.Values, sketch), cfg.Values)
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := cf.Analyze(run, base, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("layers ranked:", len(rep.Ranking), "positions:", rep.NumPositions)
	fmt.Println("signals:", cf.SetName(rep.Signals))
	// Output:
	// layers ranked: 2 positions: 8
	// signals: compression+norm+projection
}
