package cf

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/forensics/scenario"
	"github.com/modelforensics/fx/transformer"
)

// TestEvaluateTinyScenarios makes the three scenarios at the tiny size
// (seed 1, as fx scenario make does) and evaluates CF on each with the
// default config. It asserts issue 6's targets (a planted layer in the top
// 2 for ≥ 90% of failing prompts, AUROC ≥ 0.9) for the combined signals
// with every activation (a full bundle, or a minimal one replayed), and
// for each signal alone what it achieves, with a note where that misses a
// target. bench/RESULTS.md ("CF evaluation") holds the measured table.
func TestEvaluateTinyScenarios(t *testing.T) {
	all := SetName(AllSignals())
	type want struct {
		variant, signals string
		top2, auroc      float64
		note             string
	}
	cases := []struct {
		name  string
		wants []want
	}{
		{"prompt-injection", []want{
			{"full", all, TargetTop2, TargetAUROC, ""},
			{"full", "compression", TargetTop2, TargetAUROC, ""},
			{"any", "norm", TargetTop2, TargetAUROC, ""},
			{"any", "projection", TargetTop2, TargetAUROC, ""},
			// The residual stream of a width-64 model is 64 bytes a row:
			// too short for zstd to entropy-code, every ratio is the same.
			{"layer", "compression", 0, 0.5, "compression of 64-byte residual rows carries no signal (AUROC 0.5, misses 0.9 by 0.4)"},
			{"layer", all, TargetTop2, TargetAUROC, ""},
		}},
		{"toxic-generation", []want{
			{"full", all, TargetTop2, TargetAUROC, ""},
			{"full", "compression", TargetTop2, TargetAUROC, ""},
			{"any", "norm+projection", TargetTop2, TargetAUROC, ""},
			{"layer", all, TargetTop2, TargetAUROC, ""},
		}},
		{"sentiment-bypass", []want{
			{"full", all, TargetTop2, TargetAUROC, ""},
			// 30 of the 68 benign prompts are positive reviews carrying the
			// trigger: the planted mechanism runs on them too (they stay
			// POSITIVE, so they do not fail), and compression sees it
			// there as on the failing prompts. Measured: AUROC 0.61,
			// missing the target by about 0.3; 0.78 against the benign
			// prompts without the trigger.
			{"full", "compression", TargetTop2, 0.55, "compression alone: AUROC about 0.61 (target 0.9): the mechanism also runs on benign prompts with the trigger"},
			{"any", "projection", TargetTop2, TargetAUROC, ""},
		}},
	}
	ctx := context.Background()
	var results []*EvalResult
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.name)
			_, err := scenario.Make(ctx, tc.name, dir, scenario.Options{Size: scenario.Tiny, Seed: 1})
			require.NoError(t, err)
			m, err := transformer.Load(dir, cpu.New())
			require.NoError(t, err)
			defer m.Close()
			r, err := Evaluate(ctx, dir, m, EvalOptions{Config: DefaultConfig()})
			require.NoError(t, err)
			results = append(results, r)
			assert.Equal(t, []int{1, 2}, r.Planted)
			assert.GreaterOrEqual(t, r.Failing, 50)
			assert.GreaterOrEqual(t, r.Benign, 50)
			rows := map[string]EvalRow{}
			for _, row := range r.Rows {
				rows[row.Variant+" "+row.Signals] = row
			}
			for _, w := range tc.wants {
				row, ok := rows[w.variant+" "+w.signals]
				require.True(t, ok, "%s %s", w.variant, w.signals)
				assert.GreaterOrEqual(t, row.Top2, w.top2, "%s %s top-2 %s", w.variant, w.signals, w.note)
				assert.GreaterOrEqual(t, row.AUROC, w.auroc, "%s %s AUROC %s", w.variant, w.signals, w.note)
				if w.note != "" {
					t.Logf("%s %s: top-2 %.0f%%, AUROC %.3f; %s", w.variant, w.signals, 100*row.Top2, row.AUROC, w.note)
				}
			}
		})
	}
	t.Logf("\n%s", Table(results))
}
