package certificate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/forensics/cca"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// TestGenerationPathsCertificate records a tiny toxic-generation incident
// whose first neuron fix set fails under free generation, analyzes it
// into a certificate whose metric follows the generation paths the search
// added, and verifies it by replay: the scenario's detector no longer
// fails with the fix set, and a certificate whose paths were tampered with
// fails verification.
func TestGenerationPathsCertificate(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	text := "I baked cookies for the neighbours next door and"
	sc, model, id, b := recordIncident(t, tmp, "toxic-generation", text, 0,
		func(sc *scenario.Scenario, m *transformer.Model, _ bundle.Input) bundle.Outcome {
			oc, _, err := sc.Check(ctx, m, text, nil)
			require.NoError(t, err)
			return bundle.Outcome{Detector: oc.Detector, Failed: oc.Failed, Detail: oc.Detail}
		})
	cfg := cca.DefaultConfig()
	cfg.Granularity = cca.Neurons
	cert, _, err := Analyze(ctx, b, model, Request{ModelID: id, Scenario: sc, LayersFrom: "all layers", Config: cfg})
	require.NoError(t, err)
	require.NotNil(t, cert.Outcome)
	assert.False(t, cert.Outcome.Failed, "the detector still fails with the fix set: %s", cert.Outcome.Detail)
	require.NotEmpty(t, cert.Metric.Paths)
	assert.Equal(t, 1+len(cert.Metric.Paths), cert.Search.DetectorPaths)
	path := filepath.Join(tmp, "certificate.json")
	require.NoError(t, cert.WriteFile(path))
	back, err := Read(path)
	require.NoError(t, err)
	judge := JudgeFor(b, model, id, sc)
	rep, err := Verify(ctx, back, b, model, Options{Judge: judge})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Failed())
	assert.Contains(t, back.Summary(), "generation path")

	tamper := []struct {
		name  string
		edit  func(c *Certificate)
		claim string
	}{
		{"path prompt", func(c *Certificate) { c.Metric.Paths[0].Tokens[0]++ }, "metric.paths[0] tokens"},
		{"paths dropped", func(c *Certificate) { c.Metric.Paths = nil }, "search.detector_paths"},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			var c Certificate
			require.NoError(t, json.Unmarshal(data, &c))
			tc.edit(&c)
			rep, err := Verify(ctx, &c, b, model, Options{Judge: judge})
			require.NoError(t, err)
			found := false
			for _, f := range rep.Failed() {
				found = found || strings.HasPrefix(f.Claim, tc.claim)
			}
			assert.True(t, found, "no failed check %q in %+v", tc.claim, rep.Failed())
		})
	}
}
