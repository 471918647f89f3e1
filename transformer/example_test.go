package transformer_test

import (
	"context"
	"fmt"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
)

// exampleModel is a model directory in Hugging Face layout (a hub name in
// the HF cache works too).
const exampleModel = "../testdata/models/gpt2-default"

func ExampleModel_RunWithCache() {
	m, err := transformer.Load(exampleModel, cpu.New())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	toks := m.Encode("The dog")
	logits, cache, err := m.RunWithCache(context.Background(), toks, transformer.Names("blocks.*.mlp.hook_post"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("tokens", toks)
	fmt.Println("logits", engine.ShapeString(logits.Shape()))
	fmt.Println("blocks.1.mlp.hook_post", engine.ShapeString(cache["blocks.1.mlp.hook_post"].Shape()))
	// Output:
	// tokens [464 3290]
	// logits [1 2 50257]
	// blocks.1.mlp.hook_post [1 2 128]
}

func ExampleModel_RunWithInterventions() {
	m, err := transformer.Load(exampleModel, cpu.New())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	sites, err := m.ParseSites("blocks.1.mlp.hook_post[pos=-1,i=7]")
	if err != nil {
		fmt.Println(err)
		return
	}
	ivs := []transformer.Intervention{{Site: sites[0], Mode: transformer.Zero, Row: -1}}
	logits, err := m.RunWithInterventions(context.Background(), m.Encode("The dog"), ivs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ivs[0], engine.ShapeString(logits.Shape()))

	_, err = m.ParseSites("blocks.1.mlp.hook_post[head=0]")
	fmt.Println(err)
	// Output:
	// blocks.1.mlp.hook_post[pos=-1,i=7]=zero [1 2 50257]
	// bad site blocks.1.mlp.hook_post[head=0]: hook blocks.1.mlp.hook_post has no head axis (its axes: pos, i)
}
