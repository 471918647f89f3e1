package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/recorder"
	"github.com/modelforensics/fx/forensics/replay"
	"github.com/modelforensics/fx/transformer"
)

// Record an incident into a bundle, then replay it: the replay reproduces
// every recorded activation bit for bit.
func Example() {
	ctx := context.Background()
	dir := "../../testdata/models/gpt2-tiny"
	m, err := transformer.Load(dir, cpu.New())
	if err != nil {
		panic(err)
	}
	defer m.Close()
	id, err := recorder.Identify(m, dir, recorder.DirFiles(m, dir))
	if err != nil {
		panic(err)
	}

	// Record: greedy generation of 4 tokens, residual stream stored.
	r, err := recorder.New(m, recorder.DefaultOptions())
	if err != nil {
		panic(err)
	}
	out, err := r.Run(ctx, bundle.Input{InputIDs: []int{1, 2, 3}, Generate: &bundle.Generate{MaxNewTokens: 4}})
	if err != nil {
		panic(err)
	}
	rec, err := r.Finish()
	if err != nil {
		panic(err)
	}
	tmp, err := os.MkdirTemp("", "fx-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "incident")
	det := recorder.Contains("x")
	if err := rec.Write(path, recorder.WriteOptions{Model: id, Runtime: recorder.RuntimeInfo(m.Backend), Outcome: det.Detect(out)}); err != nil {
		panic(err)
	}

	// Replay: open (every checksum verified), re-run, compare.
	b, err := bundle.Open(path, bundle.DefaultLimits())
	if err != nil {
		panic(err)
	}
	rep, err := replay.Replay(ctx, b, m, replay.Options{Model: id})
	if err != nil {
		panic(err)
	}
	fmt.Println("positions:", b.Manifest.Record.Positions)
	fmt.Println("match:", rep.Match, "bit for bit:", rep.Activations.BitForBit)
	// Output:
	// positions: 6
	// match: true bit for bit: true
}
