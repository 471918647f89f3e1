package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/weights"
)

// tensorRow is one tensor in fx inspect's output.
type tensorRow struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
}

// inspectOutput is fx inspect's --json output.
type inspectOutput struct {
	Dir        string          `json:"dir"`
	Config     *weights.Config `json:"config"`
	Files      []string        `json:"files"`
	Tensors    []tensorRow     `json:"tensors"`
	Parameters int64           `json:"parameters"`
	Hooks      []string        `json:"hooks"`
}

func cmdInspect(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx inspect MODEL [--json]")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	name, err := oneModelArg(pos, true)
	if err != nil {
		return err
	}
	dir, err := weights.Resolve(name)
	if err != nil {
		return usageError{err}
	}
	m, err := transformer.Load(dir, cpu.New())
	if err != nil {
		return usageError{err}
	}
	defer m.Close()
	set := m.Weights()

	out := inspectOutput{Dir: dir, Config: m.Config, Files: set.Files(), Hooks: m.HookNames()}
	for _, n := range set.Names() {
		info, _ := set.Info(n)
		out.Tensors = append(out.Tensors, tensorRow{Name: n, Shape: info.Shape, DType: string(info.DType)})
		out.Parameters += int64(engine.NumElements(info.Shape))
	}
	if *asJSON {
		return writeJSON(stdout, out)
	}
	c := m.Config
	fmt.Fprintf(stdout, "model      %s (%s)\n", dir, c.ModelType)
	fmt.Fprintf(stdout, "arch       %v\n", c.Architectures)
	fmt.Fprintf(stdout, "layers     %d   d_model %d   heads %d   d_mlp %d   vocab %d   positions %d\n",
		c.Layers, c.Hidden, c.Heads, c.Inner, c.VocabSize, c.MaxPositions)
	for _, f := range out.Files {
		fmt.Fprintf(stdout, "file       %s\n", filepath.Base(f))
	}
	fmt.Fprintf(stdout, "parameters %d (%d tensors)\n\n", out.Parameters, len(out.Tensors))
	for _, t := range out.Tensors {
		fmt.Fprintf(stdout, "  %-56s %-5s %s\n", t.Name, t.DType, engine.ShapeString(t.Shape))
	}
	fmt.Fprintf(stdout, "\n%d hook points: %s … %s\n", len(out.Hooks), out.Hooks[0], out.Hooks[len(out.Hooks)-1])
	return nil
}
