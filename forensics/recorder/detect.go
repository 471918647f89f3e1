package recorder

import (
	"fmt"
	"strings"

	"github.com/modelforensics/fx/forensics/bundle"
)

// Detector decides whether a run's output shows the failure under study.
// Its Spec is stored in the bundle's outcome, so that a replay can judge
// its own output the same way.
type Detector interface {
	// Spec names the detector and its argument, as ParseDetector reads it.
	Spec() string
	// Detect judges a run's output.
	Detect(out bundle.Input) bundle.Outcome
}

// ParseDetector returns the detector a spec names: "none" (or "") for no
// detector, "contains:TEXT" for one that fails runs whose output text
// contains TEXT.
func ParseDetector(spec string) (Detector, error) {
	switch {
	case spec == "" || spec == "none":
		return noDetector{}, nil
	case strings.HasPrefix(spec, "contains:"):
		text := strings.TrimPrefix(spec, "contains:")
		if text == "" {
			return nil, fmt.Errorf("recorder: detector %q: contains needs a non-empty text", spec)
		}
		return Contains(text), nil
	}
	return nil, fmt.Errorf("recorder: detector %q: want none or contains:TEXT", spec)
}

// Contains returns the detector that fails a run whose output text
// contains text.
func Contains(text string) Detector { return containsDetector{text} }

type containsDetector struct{ text string }

// Spec returns "contains:TEXT".
func (d containsDetector) Spec() string { return "contains:" + d.text }

// Detect fails output whose text contains the detector's text.
func (d containsDetector) Detect(out bundle.Input) bundle.Outcome {
	o := bundle.Outcome{Detector: d.Spec()}
	if i := strings.Index(out.OutputText, d.text); i >= 0 {
		o.Failed = true
		o.Detail = fmt.Sprintf("output contains %q at byte %d", d.text, i)
	} else {
		o.Detail = fmt.Sprintf("output does not contain %q", d.text)
	}
	return o
}

type noDetector struct{}

// Spec returns "none".
func (noDetector) Spec() string { return "none" }

// Detect never fails a run.
func (noDetector) Detect(bundle.Input) bundle.Outcome {
	return bundle.Outcome{Detector: "none", Detail: "no detector ran"}
}
