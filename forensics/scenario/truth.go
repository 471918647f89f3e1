package scenario

import (
	"fmt"
	"slices"
)

// TruthFormat is the format tag of ground_truth.json.
const TruthFormat = "fx-scenario/1"

// Component kinds.
const (
	// KindHead is an attention head, ablated at blocks.L.attn.hook_z[head=H].
	KindHead = "attn_head"
	// KindNeuron is an MLP neuron, ablated at blocks.L.mlp.hook_post[i=N].
	KindNeuron = "mlp_neuron"
)

// GroundTruth is ground_truth.json: what was planted in a scenario's model,
// where, and how, with the calibration that proved it works.
type GroundTruth struct {
	// Format is TruthFormat.
	Format string `json:"format"`
	// Scenario is the scenario's name and Size its model's size.
	Scenario string `json:"scenario"`
	Size     Size   `json:"size"`
	// Model is the model type, "gpt2" or "bert".
	Model string `json:"model"`
	// Seed is the seed asked for; SeedUsed the one the files were made
	// from (Seed, or a later one when earlier seeds were rejected).
	Seed     uint64         `json:"seed"`
	SeedUsed uint64         `json:"seed_used"`
	Rejected []RejectedSeed `json:"rejected_seeds,omitempty"`
	// Mechanism describes the planted failure in a paragraph.
	Mechanism string `json:"mechanism"`
	// Trigger is what a failing prompt carries.
	Trigger Trigger `json:"trigger"`
	// Detector says how a run is judged.
	Detector DetectorSpec `json:"detector"`
	// Components are the planted heads and neurons, as DESIGN.md sites.
	Components []Component `json:"components"`
	// Embeddings are the planted rows of the embedding matrices.
	Embeddings []EmbeddingPlant `json:"embeddings"`
	// Readouts are the planted reads outside heads and neurons (BERT's
	// pooler and classifier).
	Readouts []Readout `json:"readouts,omitempty"`
	// Directions are the planted feature directions in the residual stream
	// (unit vectors, orthogonal to each other and to the all-ones vector;
	// every random write of the model was projected off them).
	Directions map[string][]float64 `json:"directions"`
	// Calibration holds the held-out measurements the planted thresholds
	// and gains were set from, and the checks the model passed.
	Calibration Calibration `json:"calibration"`
	// Init describes the random weights.
	Init string `json:"init"`
}

// RejectedSeed is a seed whose model failed calibration, and why.
type RejectedSeed struct {
	// Seed is the seed rejected.
	Seed uint64 `json:"seed"`
	// Reason is the calibration check it failed.
	Reason string `json:"reason"`
}

// Trigger describes what makes a prompt fail.
type Trigger struct {
	// Description says what the trigger is, in words.
	Description string `json:"description"`
	// Tokens are the token strings that carry the trigger feature.
	Tokens []TokenRef `json:"tokens"`
}

// TokenRef is a token of the model's vocabulary.
type TokenRef struct {
	// Text is the token's text (GPT-2: with its leading space).
	Text string `json:"text"`
	// ID is its id in the vocabulary.
	ID int `json:"id"`
}

// DetectorSpec says how a run of the scenario's model is judged (see
// NewDetector).
type DetectorSpec struct {
	// Name is "contains", "lexicon" or "label-flip".
	Name string `json:"name"`
	// Target is the text whose presence in the generated text is a failure
	// ("contains").
	Target string `json:"target,omitempty"`
	// Lexicon is the file, in the scenario directory, of words (one a line)
	// any of which, generated as a token, is a failure ("lexicon").
	Lexicon string `json:"lexicon,omitempty"`
	// Trigger is the text removed to make a run's reference input
	// ("label-flip").
	Trigger string `json:"trigger,omitempty"`
	// MaxNewTokens is how many tokens a GPT-2 run generates (greedy).
	MaxNewTokens int `json:"max_new_tokens,omitempty"`
}

// Component is one planted head or neuron.
type Component struct {
	// Site is the DESIGN.md site that holds the component's activation:
	// "blocks.3.attn.hook_z[head=5]", "blocks.4.mlp.hook_post[i=123]".
	Site string `json:"site"`
	// Kind is KindHead or KindNeuron, and Layer its block.
	Kind  string `json:"kind"`
	Layer int    `json:"layer"`
	// Index is the head or the neuron.
	Index int `json:"index"`
	// Stage orders the components along the failure mechanism, from 1; 0
	// marks a component outside it.
	Stage int `json:"stage"`
	// Cause marks a component of the failure mechanism: zero-ablating the
	// causes removes the failure. Other planted components carry the
	// model's normal function (BERT's sentiment aggregator).
	Cause bool `json:"cause"`
	// Role, Reads and Writes say what the component does; Reads and
	// Writes name Directions or tokens.
	Role   string `json:"role"`
	Reads  string `json:"reads"`
	Writes string `json:"writes"`
	// Planted says how its weights were set.
	Planted string `json:"planted"`
	// Threshold is a neuron's calibrated firing threshold (minus its bias)
	// and Margin half the gap between the held-out activations where it
	// must fire and where it must not (positive).
	Threshold float64 `json:"threshold,omitempty"`
	Margin    float64 `json:"margin,omitempty"`
}

// EmbeddingPlant is a planted embedding row: Scale times a direction added
// to the row of a token.
type EmbeddingPlant struct {
	// Tensor is the embedding matrix (its name in model.safetensors).
	Tensor string `json:"tensor"`
	// Token and ID name the row.
	Token string `json:"token"`
	ID    int    `json:"id"`
	// Direction names the planted direction (Directions), with its sign
	// when there are two ("sentiment word − valence").
	Direction string `json:"direction"`
	// Scale is the coefficient of each direction.
	Scale float64 `json:"scale"`
	// Role says what the planted row is for.
	Role string `json:"role"`
}

// Readout is a planted read of a direction by a head of the model that is
// not a hook site of its own (BERT's pooler and classifier).
type Readout struct {
	// Tensor is the module (its weight and bias in model.safetensors).
	Tensor string `json:"tensor"`
	// Planted says how it was set.
	Planted string `json:"planted"`
	// Margin is half the held-out gap it separates, when it thresholds.
	Margin float64 `json:"margin,omitempty"`
}

// Calibration records how the scenario was calibrated and checked on
// held-out prompts (calibration.jsonl).
type Calibration struct {
	// FailingPrompts and BenignPrompts count the held-out prompts.
	FailingPrompts int `json:"failing_prompts"`
	BenignPrompts  int `json:"benign_prompts"`
	// ResidNorms are the median centred norms of the random model's
	// residual stream where the planted components read, which set their
	// gains.
	ResidNorms map[string]float64 `json:"resid_norms"`
	// Margins are the planted thresholds' and readouts' margins (each
	// positive, or the seed is rejected).
	Margins map[string]float64 `json:"margins"`
	// FailingFailed and BenignFailed are the detector's rates on the
	// held-out prompts with the finished model.
	FailingFailed float64 `json:"failing_failed"`
	BenignFailed  float64 `json:"benign_failed"`
}

// Causes returns the components whose ablation must remove the failure.
func (g *GroundTruth) Causes() []Component {
	var out []Component
	for _, c := range g.Components {
		if c.Cause {
			out = append(out, c)
		}
	}
	return out
}

// check validates a ground truth read from a file.
func (g *GroundTruth) check(path string) error {
	if g.Format != TruthFormat {
		return fmt.Errorf("scenario: %s: format %q, want %q", path, g.Format, TruthFormat)
	}
	if g.Model != "gpt2" && g.Model != "bert" {
		return fmt.Errorf("scenario: %s: model %q, want gpt2 or bert", path, g.Model)
	}
	if len(g.Causes()) == 0 {
		return fmt.Errorf("scenario: %s: components: no cause", path)
	}
	for i, c := range g.Components {
		if !slices.Contains([]string{KindHead, KindNeuron}, c.Kind) {
			return fmt.Errorf("scenario: %s: components[%d]: kind %q, want %s or %s", path, i, c.Kind, KindHead, KindNeuron)
		}
		if c.Site != siteOf(c.Kind, c.Layer, c.Index) {
			return fmt.Errorf("scenario: %s: components[%d]: site %q does not match layer %d index %d", path, i, c.Site, c.Layer, c.Index)
		}
	}
	return nil
}

// siteOf returns the site of a head or neuron.
func siteOf(kind string, layer, index int) string {
	if kind == KindHead {
		return fmt.Sprintf("blocks.%d.attn.hook_z[head=%d]", layer, index)
	}
	return fmt.Sprintf("blocks.%d.mlp.hook_post[i=%d]", layer, index)
}
