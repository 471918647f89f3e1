package main

import (
	"os"
	"testing"
)

func TestTmpPipeline(t *testing.T) {
	b := os.Getenv("B")
	if err := analyzePipeline([]string{b, "--out", "/tmp/report"}, nil, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if c := fxMain([]string{"certificate", "verify", "/tmp/report/certificate.json", "--bundle", b}, nil, os.Stdout, os.Stderr); c != 0 {
		t.Fatal(c)
	}
}

func TestTmpEval(t *testing.T) {
	if err := evalCCA([]string{"/tmp/pi", "/tmp/tx", "/tmp/sb", "--prompts", "10"}, nil, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}
