package transformer_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/transformer"
)

func TestParseSite(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"blocks.7.hook_resid_post", "blocks.7.hook_resid_post"},
		{"blocks.3.mlp.hook_post[pos=5,i=1234]", "blocks.3.mlp.hook_post[pos=5,i=1234]"},
		{"blocks.1.attn.hook_z[head=4]", "blocks.1.attn.hook_z[head=4]"},
		{"blocks.*.attn.hook_z[head=*]", "blocks.*.attn.hook_z[head=*]"},
		{"blocks.0.hook_resid_mid[ pos = -1 , i=0:10 ]", "blocks.0.hook_resid_mid[pos=-1,i=0:10]"},
		{"blocks.0.attn.hook_pattern[head=1,pos=2:,src=:3]", "blocks.0.attn.hook_pattern[pos=2:,head=1,src=0:3]"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s, err := transformer.ParseSite(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.String())
		})
	}
	bad := []struct{ in, want string }{
		{"", "no hook name"},
		{"[pos=1]", "no hook name"},
		{"blocks.0.hook_resid_post[pos=1", "want HOOK[key=value"},
		{"blocks.0.hook_resid_post[pos]", "want key=value"},
		{"blocks.0.hook_resid_post[pos=x]", "pos=x"},
		{"blocks.0.hook_resid_post[pos=1:y]", "range end"},
		{"blocks.0.hook_resid_post[layer=1]", `unknown selector "layer"`},
		{"blocks.0.hook_resid_post[pos=1,pos=2]", "given twice"},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.in, func(t *testing.T) {
			_, err := transformer.ParseSite(tc.in)
			require.ErrorIs(t, err, transformer.ErrBadSite)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSitesCheckedAgainstModel(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny") // 2 layers, 4 heads, d_model 60, d_mlp 240
	sites, err := m.ParseSites("blocks.*.attn.hook_z[head=3]")
	require.NoError(t, err)
	assert.Len(t, sites, 2)

	bad := []struct{ in, want string }{
		{"blocks.2.hook_resid_post", "unknown hook"},
		{"blocks.0.attn.hook_z[head=4]", "head=4 is out of range for hook blocks.0.attn.hook_z (4 heads)"},
		{"blocks.0.mlp.hook_post[i=240]", "i=240 is out of range"},
		{"blocks.0.mlp.hook_post[head=1]", "has no head axis"},
		{"blocks.0.hook_resid_post[src=1]", "has no src axis"},
		{"blocks.0.attn.hook_pattern[i=1]", "has no i axis"},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			_, err := m.ParseSites(tc.in)
			require.ErrorIs(t, err, transformer.ErrBadSite)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestExpandSweep(t *testing.T) {
	m := loadTiny(t, "gpt2-tiny")
	sites, err := m.ExpandSweep("blocks.*.attn.hook_z[head=*]", 5)
	require.NoError(t, err)
	require.Len(t, sites, 2*4)
	assert.Equal(t, "blocks.1.attn.hook_z[head=3]", sites[7].String())

	sites, err = m.ExpandSweep("blocks.*.hook_resid_pre[pos=*]", 5)
	require.NoError(t, err)
	assert.Len(t, sites, 2*5)
}
