package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
)

func cmdTokenize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokenize", stderr)
	asJSON := fs.Bool("json", false, "read a JSON array of strings, write a JSON array of id arrays")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fx tokenize [MODEL] [--json] < input")
		fmt.Fprintln(stderr, "Without --json, each input line is tokenized to a line of ids.")
		fmt.Fprintln(stderr, "Without MODEL, the embedded GPT-2 tokenizer is used.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	name, err := oneModelArg(pos, false)
	if err != nil {
		return err
	}
	var tok tokenizer.Tokenizer
	if name == "" {
		tok, err = tokenizer.DefaultGPT2()
	} else {
		tok, _, err = transformer.LoadTokenizer(name)
	}
	if err != nil {
		return usageError{err}
	}
	if *asJSON {
		var texts []string
		if err := json.NewDecoder(stdin).Decode(&texts); err != nil {
			return usagef("standard input: want a JSON array of strings: %w", err)
		}
		ids := make([][]int, len(texts))
		for i, t := range texts {
			ids[i] = transformer.EncodeText(tok, t)
		}
		return json.NewEncoder(stdout).Encode(ids)
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for sc.Scan() {
		ids := transformer.EncodeText(tok, sc.Text())
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprint(id)
		}
		fmt.Fprintln(w, strings.Join(parts, " "))
	}
	if err := sc.Err(); err != nil {
		return usagef("standard input: %w", err)
	}
	return nil
}
