package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows a long step's progress: a bar (a spinner until the
// number of items is known) on standard error when it is a terminal, and
// nothing at all otherwise (pipes, files, CI logs) or with --quiet. The
// packages report progress as lines (a Log io.Writer, a cca.Progress
// function); progress turns "prompt 3/58"-style lines into the bar's count
// and any other line into its description. The zero value is silent.
type progress struct {
	bar  *progressbar.ProgressBar
	line []byte // a partial line written to log
}

// progressCount finds an item count in a package's progress line:
// "baseline: prompt 3/58, ..." or "...: 25/116 prompts measured".
var progressCount = regexp.MustCompile(`\bprompts? (\d+)/(\d+)\b|\b(\d+)/(\d+) prompts\b`)

// newProgress returns the progress display of a command whose standard
// error is stderr.
func newProgress(stderr io.Writer, quiet bool) *progress {
	if quiet || !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(80*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

// log returns a writer for a package's Log field: nil when silent, so the
// package formats nothing.
func (p *progress) log() io.Writer {
	if p.bar == nil {
		return nil
	}
	return p
}

// Write takes progress lines.
func (p *progress) Write(b []byte) (int, error) {
	p.line = append(p.line, b...)
	for {
		i := bytes.IndexByte(p.line, '\n')
		if i < 0 {
			break
		}
		p.step(string(p.line[:i]))
		p.line = p.line[i+1:]
	}
	return len(b), nil
}

// stepf takes one progress line (a cca.Progress).
func (p *progress) stepf(format string, args ...any) {
	if p.bar != nil {
		p.step(fmt.Sprintf(format, args...))
	}
}

// step shows a progress line: its count on the bar, its text as the
// description.
func (p *progress) step(line string) {
	if p.bar == nil {
		return
	}
	line = strings.TrimSpace(line)
	if m := progressCount.FindStringSubmatchIndex(line); m != nil {
		a, b := 2, 4
		if m[2] < 0 {
			a, b = 6, 8
		}
		done, _ := strconv.Atoi(line[m[a]:m[a+1]])
		total, _ := strconv.Atoi(line[m[b]:m[b+1]])
		p.count(done, total, strings.TrimRight(strings.TrimSpace(line[:m[0]]), ":,"))
		return
	}
	p.bar.Describe(truncateText(line, 60))
}

// count sets the bar to done of total items, described by what.
func (p *progress) count(done, total int, what string) {
	if p.bar == nil || total <= 0 {
		return
	}
	if p.bar.GetMax() != total {
		p.bar.ChangeMax(total)
	}
	if what != "" {
		p.bar.Describe(truncateText(what, 40))
	}
	_ = p.bar.Set(done) // only a terminal write can fail; progress is best effort
}

// done clears the bar; later calls do nothing.
func (p *progress) done() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Finish() // best effort, as count
	p.bar = nil
}

// truncateText shortens s to n runes with an ellipsis.
func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// isTerminal reports whether w is a terminal (progress goes there only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
