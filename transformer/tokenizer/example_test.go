package tokenizer_test

import (
	"fmt"

	"github.com/modelforensics/fx/transformer/tokenizer"
)

func ExampleDefaultGPT2() {
	tok, err := tokenizer.DefaultGPT2()
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := tok.Encode("Hello, world!<|endoftext|>")
	fmt.Println(ids)
	text, err := tok.Decode(ids)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(text)
	// Output:
	// [15496 11 995 0 50256]
	// Hello, world!<|endoftext|>
}

func ExampleDefaultBERT() {
	tok, err := tokenizer.DefaultBERT()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.EncodeForModel("Hello, world!"))
	fmt.Println(tok.Tokenize("unaffable"))
	ids, typeIDs := tok.EncodePair("hello", "world")
	fmt.Println(ids, typeIDs)
	// Output:
	// [101 7592 1010 2088 999 102]
	// [una ##ffa ##ble]
	// [101 7592 102 2088 102] [0 0 0 1 1]
}
