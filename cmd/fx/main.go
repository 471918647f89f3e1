// Command fx runs GPT-2 and BERT from Hugging Face safetensors with
// TransformerLens-named hook points.
//
// Usage:
//
//	fx run [MODEL] --prompt TEXT [--max-new-tokens N] [--dump HOOK=FILE.npy]...
//	fx tokenize MODEL [--json] < input
//	fx inspect MODEL [--json]
//	fx patch MODEL --clean TEXT --corrupt TEXT --metric METRIC --sites SITES
//	fx run [MODEL] --prompt TEXT --record [--record-level minimal|layer|full] [--out DIR]
//	fx bundle verify|inspect|pack|unpack ...
//	fx replay BUNDLE [--intervene SITE=MODE ...]
//	fx scenario list|make|check ...
//	fx baseline MODEL --prompts benign.jsonl --out baseline.fxbase
//	fx analyze BUNDLE --baseline baseline.fxbase --out report/
//	fx analyze cf BUNDLE --baseline baseline.fxbase
//	fx certificate verify report/certificate.json --bundle BUNDLE
//	fx eval cf|cca SCENARIO_DIR...
//	fx report REPORT_DIR [-o incident.html] [--bundle BUNDLE]
//	fx help [TOPIC]
//
// MODEL is a directory holding config.json and model.safetensors, or a hub
// name found in the Hugging Face cache; fx run without one uses the embedded
// default model. Exit codes: 0 ok, 1 a failure found or a check failed,
// 2 a usage or input error (fx help exit-codes). Progress bars show only
// when standard error is a terminal; --json prints machine output.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// usageError is an error in the command line or its inputs (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// command is one fx verb.
type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run a model on a prompt or tokens; generate, classify, dump hooks", cmdRun},
		{"tokenize", "tokenize strings with a model's tokenizer", cmdTokenize},
		{"inspect", "show a model's config, tensors and hook points", cmdInspect},
		{"patch", "activation patching sweep: clean vs corrupt prompt over sites", cmdPatch},
		{"scenario", "make and check failure scenarios with planted ground truth", cmdScenario},
		{"bundle", "verify, inspect, pack or unpack an incident bundle", cmdBundle},
		{"replay", "re-run a bundle's incident, prove it bit for bit, then intervene", cmdReplay},
		{"baseline", "CF baseline: per-hook compressibility and sketch distributions over benign prompts", cmdBaseline},
		{"analyze", "analyse an incident bundle: CF → CCA → certificate (fx analyze BUNDLE), or CF alone (fx analyze cf BUNDLE)", cmdAnalyze},
		{"eval", "evaluate an analysis stage on planted-failure scenarios: fx eval cf|cca SCENARIO_DIR", cmdEval},
		{"certificate", "verify a fix-set certificate by replaying every claim", cmdCertificate},
		{"report", "the incident report of an analysed incident: one self-contained HTML page", cmdReport},
	}
}

func main() {
	os.Exit(fxMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// fxMain runs fx with args and returns the exit code.
func fxMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		printUsage(stderr)
		return 2
	case args[0] == "-h" || args[0] == "--help":
		printUsage(stdout)
		return 0
	case args[0] == "help":
		if err := cmdHelp(args[1:], stdout); err != nil {
			fmt.Fprintf(stderr, "fx help: %v\n", err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdin, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		}
		fmt.Fprintf(stderr, "fx %s: %v\n", c.name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "fx: unknown command %q; run 'fx help'\n", args[0])
	return 2
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("fx run gpt2 --prompt x" as well as "fx run --prompt x gpt2")
// and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fx "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
