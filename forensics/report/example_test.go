package report_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelforensics/fx/forensics/report"
)

// Example loads the report directory fx analyze wrote for the demo
// incident and writes its incident report, one HTML page.
func Example() {
	page, err := report.Load(filepath.Join("testdata", "demo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	page.Generator = "example"
	var html bytes.Buffer
	if err := page.Render(&html); err != nil {
		fmt.Println(err)
		return
	}
	c := page.Certificate
	fmt.Println("detector:", c.Detector)
	fmt.Printf("output: %q → %q\n", c.RecordedText, c.Outcome.Text)
	for _, m := range c.FixSet {
		fmt.Println("fix:", m.Site)
	}
	fmt.Println("CF flagged layers:", page.CF.Flagged)
	fmt.Println("certificate:", page.Verified())
	fmt.Println("self-contained:", !strings.Contains(html.String(), "http"))
	// Output:
	// detector: contains:HACKED
	// output: " HACKED HACKED HACK" → " H H H H H H H H"
	// fix: blocks.2.mlp.hook_post[i=75]
	// fix: blocks.2.mlp.hook_post[i=91]
	// CF flagged layers: [2 1 3]
	// certificate: not verified here
	// self-contained: true
}

// ExamplePage_WriteFile writes the page of a report directory to a file,
// as fx report REPORT_DIR -o incident.html does.
func ExamplePage_WriteFile() {
	page, err := report.Load(filepath.Join("testdata", "demo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "fx-report-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "incident.html")
	if err := page.WriteFile(path); err != nil {
		fmt.Println(err)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(string(data), "<!DOCTYPE html>"))
	// Output:
	// true
}
