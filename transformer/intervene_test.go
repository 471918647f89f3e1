package transformer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/transformer"
)

func site(t *testing.T, s string) transformer.Site {
	t.Helper()
	out, err := transformer.ParseSite(s)
	require.NoError(t, err)
	return out
}

// TestBatchedInterventionsBitIdentical checks that N intervention sets in
// one batched forward give the same bits as N separate forwards.
func TestBatchedInterventionsBitIdentical(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "bert-tiny-cls"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			toks := []int{101, 7, 99, 250, 31, 102}
			sets := [][]transformer.Intervention{
				{{Site: site(t, "blocks.1.mlp.hook_post[pos=3,i=17]"), Mode: transformer.Zero, Row: -1}},
				{{Site: site(t, "blocks.0.attn.hook_z[head=2]"), Mode: transformer.Scale, Value: 0.25, Row: -1}},
				{},
				{{Site: site(t, "blocks.0.hook_resid_post[pos=-1]"), Mode: transformer.Add, Value: 0.5, Row: -1},
					{Site: site(t, "blocks.1.attn.hook_pattern[head=1]"), Mode: transformer.Scale, Value: 0.5, Row: -1}},
			}
			batched, err := m.RunBatchedInterventions(context.Background(), toks, sets)
			require.NoError(t, err)
			host := batched.Host()
			per := len(host) / len(sets)
			for n, set := range sets {
				single, err := m.RunWithInterventions(context.Background(), toks, set)
				require.NoError(t, err)
				assert.Equal(t, single.Host(), host[n*per:(n+1)*per], "set %d", n)
			}
			clean, err := m.RunWithHooks(context.Background(), toks)
			require.NoError(t, err)
			assert.Equal(t, clean.Host(), host[2*per:3*per], "the empty set is the clean run")
			assert.NotEqual(t, clean.Host(), host[per:2*per], "scaling a head changes the output")
		})
	}
}

// TestForwardFromEqualsFullForward resumes at every block from the cached
// resid_pre and checks the output is bit-identical to the full forward.
func TestForwardFromEqualsFullForward(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "bert-tiny-mlm"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			toks := []int{3, 1, 4, 1, 5, 9, 2, 6}
			in, err := transformer.NewBatch([][]int{toks}, nil)
			require.NoError(t, err)
			full, cache, err := m.ForwardWithCache(context.Background(), in, transformer.Names("blocks.*.hook_resid_pre"))
			require.NoError(t, err)
			for layer := range m.Config.Layers {
				resid := cache[blockHook(layer, "hook_resid_pre")]
				before := append([]float32(nil), resid.Host()...)
				out, err := m.ForwardFrom(context.Background(), in, layer, resid, nil)
				require.NoError(t, err)
				assert.Equal(t, full.Host(), out.Host(), "resume at block %d", layer)
				assert.Equal(t, before, resid.Host(), "the cached tensor is left as it was")
			}
			_, err = m.ForwardFrom(context.Background(), in, m.Config.Layers, cache[blockHook(0, "hook_resid_pre")], nil)
			assert.ErrorIs(t, err, transformer.ErrBadInput)
			_, err = m.ForwardFrom(context.Background(), in, 0, engine.NewHost(make([]float32, 4), 1, 2, 2), nil)
			assert.ErrorIs(t, err, transformer.ErrBadInput)
		})
	}
}

func blockHook(layer int, name string) string { return fmt.Sprintf("blocks.%d.%s", layer, name) }

func TestInterventionErrors(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	toks := []int{1, 2, 3}
	cases := []struct {
		name string
		iv   transformer.Intervention
		want string
	}{
		{"position out of range", transformer.Intervention{Site: site(t, "blocks.0.hook_resid_post[pos=3]"), Mode: transformer.Zero, Row: -1}, "pos=3 is out of range for 3 positions"},
		{"unknown mode", transformer.Intervention{Site: site(t, "blocks.0.hook_resid_post"), Mode: "smash", Row: -1}, `unknown mode "smash"`},
		{"patch without source", transformer.Intervention{Site: site(t, "blocks.0.hook_resid_post"), Mode: transformer.Patch, Row: -1}, "needs a source"},
		{"steering vector of the wrong length", transformer.Intervention{Site: site(t, "blocks.0.hook_resid_post"), Mode: transformer.Add,
			Source: engine.NewHost(make([]float32, 7), 7), Row: -1}, "a vector of 7 values for an axis of 60"},
		{"short patch source", transformer.Intervention{Site: site(t, "blocks.0.hook_resid_post"), Mode: transformer.Patch,
			Source: engine.NewHost(make([]float32, 60), 1, 60), Row: -1}, "does not cover"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.RunWithInterventions(context.Background(), toks, []transformer.Intervention{tc.iv})
			require.ErrorIs(t, err, transformer.ErrBadSite)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
