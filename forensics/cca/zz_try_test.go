package cca

import (
	"context"
	"testing"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/stretchr/testify/require"
)

func TestTry(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"prompt-injection", "toxic-generation", "sentiment-bypass"} {
		dir := t.TempDir() + "/s"
		_, err := scenario.Make(ctx, name, dir, scenario.Options{Size: scenario.Tiny, Seed: 1})
		require.NoError(t, err)
		sc, err := scenario.Open(dir)
		require.NoError(t, err)
		m, err := sc.Load(cpu.New())
		require.NoError(t, err)
		for _, pr := range sc.PromptsOf(scenario.Failing)[:2] {
			oc, out, err := sc.Check(ctx, m, pr.Text, nil)
			require.NoError(t, err)
			t.Logf("%s %q → %q %v", name, pr.Text, out.Text+out.Label, oc.Failed)
			inc := Incident{Text: pr.Text, PromptIDs: m.Encode(pr.Text), OutputIDs: out.Tokens, Label: out.Label}
			p, err := NewProblem(ctx, m, inc, "", sc)
			require.NoError(t, err)
			for _, g := range []string{Auto, Neurons, Heads} {
				cfg := DefaultConfig()
				cfg.Granularity = g
				res, err := Search(ctx, p, nil, cfg, t.Logf)
				require.NoError(t, err)
				var sites []string
				for _, mb := range res.FixSet {
					sites = append(sites, mb.Site.String())
				}
				ivs := Interventions(m, res.FixSet)
				oc2, out2, err := sc.Check(ctx, m, pr.Text, ivs)
				require.NoError(t, err)
				t.Logf("%s %s: %v before %.3f after %.3f removed %v cost %+v; fixed run %q failed=%v", name, g, sites, res.Before, res.After, res.Removed, res.Cost, out2.Text+out2.Label, oc2.Failed)
			}
		}
	}

}
