package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/modelforensics/fx/forensics/bundle"
)

// CallFunc makes an external call for real and returns its response.
type CallFunc func(ctx context.Context) ([]byte, error)

// Caller is how a harness around the model (a tool call, an HTTP request)
// makes the calls it makes outside the model: name says what is called,
// request is what is sent, and do makes the call for real. While
// recording, a CallLog calls do and logs request and response; on replay,
// a CallReplay serves the logged response and never calls do.
type Caller interface {
	Call(ctx context.Context, name string, request []byte, do CallFunc) ([]byte, error)
}

// ErrUnrecordedCall is wrapped by CallReplay's error for a call that is not
// in the recording: one too many, or one whose name or request differs from
// the recorded call at its place.
var ErrUnrecordedCall = errors.New("external call not in the recording")

// ErrRecordedCallFailed is wrapped by CallReplay's error for a call that
// failed when it was recorded; the message holds the recorded error.
var ErrRecordedCallFailed = errors.New("recorded external call failed")

// CallLog is a Caller that makes each call and logs it. It is safe for
// concurrent use; calls are numbered in the order they return.
type CallLog struct {
	mu    sync.Mutex
	calls []bundle.ExternalCall
}

// NewCallLog returns an empty log.
func NewCallLog() *CallLog { return &CallLog{} }

// Call calls do and logs name, request and the response or error.
func (l *CallLog) Call(ctx context.Context, name string, request []byte, do CallFunc) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("recorder: external call with an empty name")
	}
	resp, err := do(ctx)
	c := bundle.ExternalCall{Name: name, Request: slices.Clone(request), Response: slices.Clone(resp)}
	if err != nil {
		c.Error, c.Response = err.Error(), nil
	}
	l.mu.Lock()
	c.Seq = len(l.calls)
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	return resp, err
}

// Calls returns the calls logged so far.
func (l *CallLog) Calls() []bundle.ExternalCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// CallReplay is a Caller that serves recorded calls in order. It is safe
// for concurrent use.
type CallReplay struct {
	mu    sync.Mutex
	calls []bundle.ExternalCall
	next  int
}

// NewCallReplay returns a Caller that serves calls, as recorded in a
// bundle's external_calls.jsonl.
func NewCallReplay(calls []bundle.ExternalCall) *CallReplay {
	return &CallReplay{calls: slices.Clone(calls)}
}

// Call returns the recorded response of the next recorded call, which must
// have the same name and request; do is never called. A call beyond the
// recording, or one that differs from the recorded call at its place, is an
// error wrapping ErrUnrecordedCall that names both.
func (p *CallReplay) Call(_ context.Context, name string, request []byte, _ CallFunc) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.next
	if i >= len(p.calls) {
		return nil, fmt.Errorf("replay: external call #%d %s %s: %w (the recording has %d calls)",
			i, name, quoteBytes(request), ErrUnrecordedCall, len(p.calls))
	}
	c := p.calls[i]
	if c.Name != name || !bytes.Equal(c.Request, request) {
		return nil, fmt.Errorf("replay: external call #%d %s %s: %w (the recording's call #%d is %s %s)",
			i, name, quoteBytes(request), ErrUnrecordedCall, i, c.Name, quoteBytes(c.Request))
	}
	p.next++
	if c.Error != "" {
		return nil, fmt.Errorf("replay: external call #%d %s: %w: %s", i, name, ErrRecordedCallFailed, c.Error)
	}
	return slices.Clone(c.Response), nil
}

// Unused returns the recorded calls not yet served.
func (p *CallReplay) Unused() []bundle.ExternalCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls[p.next:])
}

// quoteBytes quotes a request for an error message, shortened.
func quoteBytes(b []byte) string {
	const max = 80
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
