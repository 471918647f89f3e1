package bundle

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// Input is one line of inputs.jsonl: a sequence the model ran on, how it
// generated, and what it produced.
type Input struct {
	// Text is the prompt as given; empty when the run was given token ids.
	Text string `json:"text"`
	// InputIDs are the prompt's token ids.
	InputIDs []int `json:"input_ids"`
	// Generate holds the generation settings; nil for a single forward
	// pass (BERT, or GPT-2 with no new tokens).
	Generate *Generate `json:"generate,omitempty"`
	// OutputIDs are the generated tokens, or the predicted token of a
	// single forward pass.
	OutputIDs []int `json:"output_ids"`
	// OutputText is the decoded output, or a classifier's label.
	OutputText string `json:"output_text"`
	// Label and Probabilities are a classifier's prediction.
	Label         string             `json:"label,omitempty"`
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
}

// Generate holds the generation settings of a sequence.
type Generate struct {
	MaxNewTokens int     `json:"max_new_tokens"`
	StopAtEOS    bool    `json:"stop_at_eos"`
	EOS          int     `json:"eos"`
	Sampler      Sampler `json:"sampler"`
}

// Sampler holds the sampler settings (see transformer.Sampler).
type Sampler struct {
	Temperature float64 `json:"temperature"`
	TopK        int     `json:"top_k"`
	TopP        float64 `json:"top_p"`
	Seed        uint64  `json:"seed"`
}

// StateDiffs is state_diffs.json: the state that changes at each
// generation step.
type StateDiffs struct {
	Steps []StepState `json:"steps"`
}

// StepState is one generation step: the token chosen, the KV-cache length
// after the step's forward pass, the sampler's RNG state before its draw,
// and a sketch of the KV cache.
type StepState struct {
	Step       int    `json:"step"`
	Token      int    `json:"token"`
	KVCacheLen int    `json:"kv_cache_len"`
	RNGState   []byte `json:"rng_state"`
	// KV holds, per block, the XXH64 (hex) of the cached keys and values
	// after the step: the float32 values of positions [0, KVCacheLen), in
	// little-endian byte order.
	KV *KVState `json:"kv,omitempty"`
}

// KVState is the KV-cache sketch of one step: one hash per block.
type KVState struct {
	K []string `json:"k"`
	V []string `json:"v"`
}

// ExternalCall is one line of external_calls.jsonl: a call the harness made
// outside the model, with its request and response.
type ExternalCall struct {
	// Seq is the call's index, from 0, in the order the calls were made.
	Seq int `json:"seq"`
	// Name says what was called ("tool:search", "http:GET https://…").
	Name string `json:"name"`
	// Request and Response are the bytes sent and received.
	Request  []byte `json:"-"`
	Response []byte `json:"-"`
	// Error is the call's error message; the response is empty then.
	Error string `json:"error,omitempty"`
}

// externalCallJSON is ExternalCall as stored: request and response as text
// when they are valid UTF-8, else base64 with Encoding "base64".
type externalCallJSON struct {
	Seq      int    `json:"seq"`
	Name     string `json:"name"`
	Encoding string `json:"encoding,omitempty"`
	Request  string `json:"request"`
	Response string `json:"response"`
	Error    string `json:"error,omitempty"`
}

// MarshalJSON stores request and response as text, or base64 when either
// is not valid UTF-8.
func (c ExternalCall) MarshalJSON() ([]byte, error) {
	j := externalCallJSON{Seq: c.Seq, Name: c.Name, Request: string(c.Request), Response: string(c.Response), Error: c.Error}
	if !utf8.Valid(c.Request) || !utf8.Valid(c.Response) {
		j.Encoding = "base64"
		j.Request = base64.StdEncoding.EncodeToString(c.Request)
		j.Response = base64.StdEncoding.EncodeToString(c.Response)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *ExternalCall) UnmarshalJSON(data []byte) error {
	var j externalCallJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*c = ExternalCall{Seq: j.Seq, Name: j.Name, Error: j.Error, Request: []byte(j.Request), Response: []byte(j.Response)}
	switch j.Encoding {
	case "":
	case "base64":
		var err error
		if c.Request, err = base64.StdEncoding.DecodeString(j.Request); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		if c.Response, err = base64.StdEncoding.DecodeString(j.Response); err != nil {
			return fmt.Errorf("response: %w", err)
		}
	default:
		return fmt.Errorf("encoding %q is not base64", j.Encoding)
	}
	return nil
}

// Metrics is metrics.json: what the recording cost.
type Metrics struct {
	// TimingsS holds durations in seconds: "run" (the model, hooks
	// included), "record" (the part inside the recorder's hooks), "write"
	// (the files before metrics.json), and "load" when the caller timed
	// loading the model.
	TimingsS map[string]float64 `json:"timings_s"`
	// SizesBytes holds the size of every file written before metrics.json,
	// and "total".
	SizesBytes map[string]int64 `json:"sizes_bytes"`
	// PeakRSSBytes is the process's peak resident set size (VmHWM), 0 where
	// unknown.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// GoHeapSysBytes is the memory the Go heap obtained from the system.
	GoHeapSysBytes int64 `json:"go_heap_sys_bytes"`
	// Tokens counts the prompt and generated tokens.
	PromptTokens    int `json:"prompt_tokens"`
	GeneratedTokens int `json:"generated_tokens"`
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// forEachLine calls fn on every non-empty line of data with its 1-based
// line number.
func forEachLine(data []byte, fn func(line int, text []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ParseInputs decodes inputs.jsonl and checks each line.
func ParseInputs(data []byte) ([]Input, error) {
	var out []Input
	err := forEachLine(data, func(line int, text []byte) error {
		var in Input
		if err := decodeStrict(text, &in); err != nil {
			return fmt.Errorf("%s:%d: %w: %w", InputsName, line, ErrInvalid, err)
		}
		if err := in.validate(); err != nil {
			return fmt.Errorf("%s:%d: %w: %w", InputsName, line, ErrInvalid, err)
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != 1 {
		return nil, fmt.Errorf("%s: %w: %d sequences (%s holds exactly one)", InputsName, ErrInvalid, len(out), Format)
	}
	return out, nil
}

func (in *Input) validate() error {
	if len(in.InputIDs) == 0 || len(in.InputIDs) > maxPositions {
		return fmt.Errorf("input_ids: %d tokens (want 1 to %d)", len(in.InputIDs), maxPositions)
	}
	for i, id := range in.InputIDs {
		if id < 0 {
			return fmt.Errorf("input_ids[%d]: %d < 0", i, id)
		}
	}
	for i, id := range in.OutputIDs {
		if id < 0 {
			return fmt.Errorf("output_ids[%d]: %d < 0", i, id)
		}
	}
	if g := in.Generate; g != nil {
		if g.MaxNewTokens < 1 || g.MaxNewTokens > maxPositions {
			return fmt.Errorf("generate.max_new_tokens: %d is outside [1, %d]", g.MaxNewTokens, maxPositions)
		}
		if len(in.OutputIDs) > g.MaxNewTokens {
			return fmt.Errorf("output_ids: %d tokens, more than max_new_tokens %d", len(in.OutputIDs), g.MaxNewTokens)
		}
		s := g.Sampler
		if s.Temperature < 0 || s.TopK < 0 || s.TopP < 0 || s.TopP > 1 {
			return fmt.Errorf("generate.sampler: temperature %g, top_k %d, top_p %g out of range", s.Temperature, s.TopK, s.TopP)
		}
	}
	return nil
}

// ParseStateDiffs decodes state_diffs.json.
func ParseStateDiffs(data []byte) (*StateDiffs, error) {
	var s StateDiffs
	if err := decodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", StateDiffsName, ErrInvalid, err)
	}
	for i, st := range s.Steps {
		if st.Step != i {
			return nil, fmt.Errorf("%s: steps[%d]: %w: step %d out of order", StateDiffsName, i, ErrInvalid, st.Step)
		}
		if st.Token < 0 || st.KVCacheLen < 0 {
			return nil, fmt.Errorf("%s: steps[%d]: %w: token %d, kv_cache_len %d", StateDiffsName, i, ErrInvalid, st.Token, st.KVCacheLen)
		}
		if st.KV != nil && len(st.KV.K) != len(st.KV.V) {
			return nil, fmt.Errorf("%s: steps[%d].kv: %w: %d key hashes and %d value hashes", StateDiffsName, i, ErrInvalid, len(st.KV.K), len(st.KV.V))
		}
	}
	return &s, nil
}

// ParseExternalCalls decodes external_calls.jsonl.
func ParseExternalCalls(data []byte) ([]ExternalCall, error) {
	var out []ExternalCall
	err := forEachLine(data, func(line int, text []byte) error {
		var c ExternalCall
		if err := json.Unmarshal(text, &c); err != nil {
			return fmt.Errorf("%s:%d: %w: %w", ExternalCallsName, line, ErrInvalid, err)
		}
		if c.Seq != len(out) {
			return fmt.Errorf("%s:%d: %w: seq %d, want %d", ExternalCallsName, line, ErrInvalid, c.Seq, len(out))
		}
		if c.Name == "" {
			return fmt.Errorf("%s:%d: %w: missing name", ExternalCallsName, line, ErrInvalid)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// ParseMetrics decodes metrics.json.
func ParseMetrics(data []byte) (*Metrics, error) {
	var m Metrics
	if err := decodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", MetricsName, ErrInvalid, err)
	}
	return &m, nil
}
