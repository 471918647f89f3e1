// Package cca finds causal minimal fix sets: the smallest set of
// activation interventions (MLP neurons, attention heads or whole layers,
// patched from a counterfactual run or set to a baseline mean or zero)
// that corrects a recorded failure, ranked by attribution patching and
// verified by real, batched forward passes, down to a 1-minimal set.
package cca

import (
	"fmt"
	"time"

	"github.com/modelforensics/fx/configs"
)

// Granularities of candidate sites.
const (
	// Auto takes MLP neurons and attention heads.
	Auto = "auto"
	// Neurons takes MLP neurons (blocks.L.mlp.hook_post[i=N]).
	Neurons = "neuron"
	// Heads takes attention heads (blocks.L.attn.hook_z[head=H]).
	Heads = "head"
	// Layers takes whole attention and MLP outputs
	// (blocks.L.hook_attn_out, blocks.L.hook_mlp_out).
	Layers = "layer"
)

// Intervention kinds a fix set applies.
const (
	// Patch sets a site to its value in the counterfactual run (the prompt
	// without the trigger), averaged over that run's positions; without a
	// counterfactual, to the baseline mean.
	Patch = "patch"
	// MeanAbl sets a site to its mean over the baseline corpus.
	MeanAbl = "mean"
	// ZeroAbl sets a site to zero.
	ZeroAbl = "zero"
)

// When AtP*'s GradDrop runs (Config.GradDrop).
const (
	// GradDropAuto runs it only when the top cca.max_candidates of the
	// plain ranking together do not correct the failure (the evidence
	// that the ranking missed), then ranks again before widening.
	GradDropAuto = "auto"
	// GradDropOn runs it on every search, before the first ranking.
	GradDropOn = "on"
	// GradDropOff never runs it.
	GradDropOff = "off"
)

// Config holds CCA's settings: the cca section of configs/default.yaml.
type Config struct {
	// Granularity is Auto, Neurons, Heads or Layers.
	Granularity string `yaml:"granularity"`
	// Intervention is Patch, MeanAbl or ZeroAbl.
	Intervention string `yaml:"intervention"`
	// MaxCandidates is how many top-ranked candidates the search starts
	// from (0: all); when all of them together do not correct the failure
	// it widens the window four times at a time up to every candidate.
	MaxCandidates int `yaml:"max_candidates"`
	// Batch is how many intervention sets one batched forward evaluates.
	Batch int `yaml:"batch"`
	// CancellationGuard weighs the sum of per-position |attribution| into
	// the ranking key (0 ranks by the signed estimate alone), so that a
	// site whose effects cancel across positions is still tried early.
	CancellationGuard float64 `yaml:"cancellation_guard"`
	// GradDrop is when AtP*'s GradDrop runs (GradDropAuto, GradDropOn or
	// GradDropOff): one more backward pass per layer downstream of the
	// candidates, each with the gradient through that layer's attention
	// and MLP writes dropped; the cancellation score is then the mean over
	// the passes of the summed |estimate| (without it, the plain pass's sum
	// over positions of |estimate|).
	GradDrop string `yaml:"grad_drop"`
	// QueryKey adds each head's query and key (blocks.L.attn.hook_q and
	// hook_k[head=H]) to the head candidates, estimated as AtP* does: the
	// attention pattern recomputed with the patched query or key.
	QueryKey bool `yaml:"query_key"`
	// MaxPaths bounds how many more generation paths the search adds to a
	// generation metric (KindLexiconPath) when free generation with its
	// fix set, replayed through the detector, still fails: each adds the
	// new generation's path and searches again from the fix set (0: the
	// fix set is checked against the detector once, and no path is
	// added).
	MaxPaths int `yaml:"max_paths"`
	// MaxForwards bounds the batched forwards of the search (0: none).
	MaxForwards int `yaml:"max_forwards"`
	// Timeout bounds the search's wall time (0: none).
	Timeout time.Duration `yaml:"timeout"`
	// Tolerance is the relative tolerance of a certificate's replayed
	// metrics (the CPU backend replays bit for bit; other backends not).
	Tolerance float64 `yaml:"tolerance"`
}

// DefaultConfig returns the defaults of configs/default.yaml's cca section.
func DefaultConfig() Config {
	return Config{Granularity: Auto, Intervention: Patch, MaxCandidates: 4096, Batch: 8,
		CancellationGuard: 0.5, GradDrop: GradDropAuto, MaxPaths: 4, MaxForwards: 400, Timeout: 10 * time.Minute, Tolerance: 1e-4}
}

// Validate checks the settings, naming the key at fault.
func (c *Config) Validate() error {
	switch c.Granularity {
	case Auto, Neurons, Heads, Layers:
	default:
		return fmt.Errorf("cca.granularity: %q is not auto, neuron, head or layer", c.Granularity)
	}
	switch c.Intervention {
	case Patch, MeanAbl, ZeroAbl:
	default:
		return fmt.Errorf("cca.intervention: %q is not patch, mean or zero", c.Intervention)
	}
	switch c.GradDrop {
	case GradDropAuto, GradDropOn, GradDropOff:
	default:
		return fmt.Errorf("cca.grad_drop: %q is not auto, on or off", c.GradDrop)
	}
	switch {
	case c.MaxCandidates < 0:
		return fmt.Errorf("cca.max_candidates: %d < 0", c.MaxCandidates)
	case c.Batch < 1 || c.Batch > 256:
		return fmt.Errorf("cca.batch: %d is outside [1, 256]", c.Batch)
	case c.CancellationGuard < 0:
		return fmt.Errorf("cca.cancellation_guard: %g < 0", c.CancellationGuard)
	case c.MaxPaths < 0:
		return fmt.Errorf("cca.max_paths: %d < 0", c.MaxPaths)
	case c.MaxForwards < 0:
		return fmt.Errorf("cca.max_forwards: %d < 0", c.MaxForwards)
	case c.Timeout < 0:
		return fmt.Errorf("cca.timeout: %s < 0", c.Timeout)
	case c.Tolerance < 0:
		return fmt.Errorf("cca.tolerance: %g < 0", c.Tolerance)
	}
	return nil
}

// NamedYAML is a YAML document and the name its errors carry.
type NamedYAML = configs.NamedYAML

// LoadConfig returns the defaults overridden by the cca section of each
// YAML document in order (configs/default.yaml's text, then a user's
// file); documents without a cca section are skipped. Unknown keys inside
// the section are errors naming the document.
func LoadConfig(docs ...NamedYAML) (Config, error) {
	c := DefaultConfig()
	if err := configs.DecodeSection("cca", &c, docs...); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}
