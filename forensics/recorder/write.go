package recorder

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/modelforensics/fx/forensics/bundle"
)

// WriteOptions holds what a bundle needs beyond the recording itself.
type WriteOptions struct {
	// Model is the model's identity (see Identify).
	Model bundle.Model
	// Runtime describes the software and backend (see RuntimeInfo).
	Runtime bundle.Runtime
	// Outcome is the detector's verdict on the run.
	Outcome bundle.Outcome
	// LoadTime is how long loading the model took, for metrics.json
	// (left out when 0).
	LoadTime time.Duration
	// Progress, when not nil, is called after each file is written.
	Progress func(path string, size int64)
}

// Write writes the recording as a bundle at path (which must not exist):
// into a temporary directory beside it first, renamed to path only when
// every file and the manifest are complete and synced.
func (rec *Recording) Write(path string, o WriteOptions) error {
	start := time.Now()
	w, err := bundle.Create(path, bundle.WriterOptions{CompressionLevel: rec.Record.CompressionLevel, Progress: o.Progress})
	if err != nil {
		return err
	}
	err = rec.writeFiles(w, start, o)
	if err != nil {
		w.Abort()
		return err
	}
	m := &bundle.Manifest{Created: time.Now().UTC().Truncate(time.Second), Model: o.Model, Runtime: o.Runtime,
		Record: rec.Record, Outcome: o.Outcome}
	return w.Commit(m)
}

func (rec *Recording) writeFiles(w *bundle.Writer, start time.Time, o WriteOptions) error {
	if err := bundle.WriteJSONLines(w, bundle.InputsName, []bundle.Input{rec.Input}); err != nil {
		return err
	}
	var group string
	var records []bundle.HookRecord
	flush := func() error {
		if len(records) == 0 {
			return nil
		}
		err := w.WriteActivations(group, records)
		records = nil
		return err
	}
	for _, h := range rec.Hooks {
		if g := bundle.Group(h.Hook); g != group {
			if err := flush(); err != nil {
				return err
			}
			group = g
		}
		records = append(records, h)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := w.WriteJSON(bundle.StateDiffsName, rec.StateDiffs); err != nil {
		return err
	}
	if err := bundle.WriteJSONLines(w, bundle.ExternalCallsName, rec.ExternalCalls); err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metrics := bundle.Metrics{
		TimingsS: map[string]float64{
			"run":    rec.RunTime.Seconds(),
			"record": rec.HookTime.Seconds(),
			"write":  time.Since(start).Seconds(),
		},
		SizesBytes:     w.Sizes(),
		PeakRSSBytes:   peakRSS(),
		GoHeapSysBytes: int64(ms.HeapSys),
		PromptTokens:   len(rec.Input.InputIDs),
	}
	if o.LoadTime > 0 {
		metrics.TimingsS["load"] = o.LoadTime.Seconds()
	}
	if rec.Input.Generate != nil {
		metrics.GeneratedTokens = len(rec.Input.OutputIDs)
	}
	return w.WriteJSON(bundle.MetricsName, metrics)
}

// peakRSS returns the process's peak resident set size from
// /proc/self/status (VmHWM), or 0 where that is not available.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 2 && string(fields[1]) == "kB" {
			kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
