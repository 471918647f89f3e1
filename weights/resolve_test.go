package weights

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// isolateHF points every Hugging Face cache location at empty temporary
// directories and returns them.
func isolateHF(t *testing.T) (hubCache, hfHome, home string) {
	t.Helper()
	hubCache, hfHome, home = t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("HF_HUB_CACHE", hubCache)
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_HOME", hfHome)
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", home)
	return hubCache, hfHome, home
}

// cacheRepo lays out a hub cache repository under root and returns the
// snapshot directory for rev. refs/main is written when ref is non-empty.
func cacheRepo(t *testing.T, root, repoDir, ref string, revs ...string) string {
	t.Helper()
	repo := filepath.Join(root, repoDir)
	var snap string
	for _, rev := range revs {
		snap = filepath.Join(repo, "snapshots", rev)
		require.NoError(t, os.MkdirAll(snap, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(snap, "config.json"), []byte(`{"model_type":"gpt2"}`), 0o644))
	}
	if ref != "" {
		require.NoError(t, os.MkdirAll(filepath.Join(repo, "refs"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(ref+"\n"), 0o644))
		return filepath.Join(repo, "snapshots", ref)
	}
	return snap
}

func TestResolveDirectory(t *testing.T) {
	isolateHF(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644))
	got, err := Resolve(dir)
	require.NoError(t, err)
	assert.Equal(t, dir, got)

	empty := t.TempDir()
	_, err = Resolve(empty)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrModelNotFound)
	assert.Contains(t, err.Error(), empty)
	assert.Contains(t, err.Error(), "no config.json")

	file := filepath.Join(dir, "config.json")
	_, err = Resolve(file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a file, not a model directory")
}

func TestResolveHubCache(t *testing.T) {
	tests := []struct {
		name  string
		query string
		setup func(t *testing.T, hubCache, hfHome, home string) string // returns the expected snapshot
	}{
		{"HF_HUB_CACHE with refs/main", "gpt2", func(t *testing.T, hubCache, _, _ string) string {
			return cacheRepo(t, hubCache, "models--gpt2", "abc123", "abc123", "old456")
		}},
		{"org/name", "openai-community/gpt2", func(t *testing.T, hubCache, _, _ string) string {
			return cacheRepo(t, hubCache, "models--openai-community--gpt2", "r1", "r1")
		}},
		{"alias: bare name finds org repo", "gpt2", func(t *testing.T, hubCache, _, _ string) string {
			return cacheRepo(t, hubCache, "models--openai-community--gpt2", "r1", "r1")
		}},
		{"alias: org name finds legacy repo", "google-bert/bert-base-uncased", func(t *testing.T, _, hfHome, _ string) string {
			return cacheRepo(t, filepath.Join(hfHome, "hub"), "models--bert-base-uncased", "r2", "r2")
		}},
		{"HF_HOME/hub", "bert-base-uncased", func(t *testing.T, _, hfHome, _ string) string {
			return cacheRepo(t, filepath.Join(hfHome, "hub"), "models--bert-base-uncased", "r2", "r2")
		}},
		{"home cache", "gpt2", func(t *testing.T, _, _, home string) string {
			return cacheRepo(t, filepath.Join(home, ".cache", "huggingface", "hub"), "models--gpt2", "r3", "r3")
		}},
		{"HF_HUB_CACHE wins over HF_HOME", "gpt2", func(t *testing.T, hubCache, hfHome, _ string) string {
			cacheRepo(t, filepath.Join(hfHome, "hub"), "models--gpt2", "other", "other")
			return cacheRepo(t, hubCache, "models--gpt2", "first", "first")
		}},
		{"no refs/main, one snapshot", "gpt2", func(t *testing.T, hubCache, _, _ string) string {
			return cacheRepo(t, hubCache, "models--gpt2", "", "only")
		}},
		{"broken repo in first cache, good in second", "gpt2", func(t *testing.T, hubCache, hfHome, _ string) string {
			cacheRepo(t, hubCache, "models--gpt2", "", "a", "b")
			return cacheRepo(t, filepath.Join(hfHome, "hub"), "models--gpt2", "ok", "ok")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hubCache, hfHome, home := isolateHF(t)
			want := tt.setup(t, hubCache, hfHome, home)
			got, err := Resolve(tt.query)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name  string
		query string
		setup func(t *testing.T, hubCache string)
		want  []string
	}{
		{"not cached", "gpt2", func(*testing.T, string) {}, []string{
			`model "gpt2": model not found in the Hugging Face cache`, "models--gpt2", "models--openai-community--gpt2", "never downloads",
		}},
		{"refs/main names missing snapshot", "gpt2", func(t *testing.T, hubCache string) {
			cacheRepo(t, hubCache, "models--gpt2", "", "x")
			require.NoError(t, os.MkdirAll(filepath.Join(hubCache, "models--gpt2", "refs"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(hubCache, "models--gpt2", "refs", "main"), []byte("deadbeef"), 0o644))
		}, []string{"refs/main names revision deadbeef, which has no snapshot"}},
		{"refs/main escapes", "gpt2", func(t *testing.T, hubCache string) {
			cacheRepo(t, hubCache, "models--gpt2", "../../x")
		}, []string{`refs/main holds "../../x", not a revision`}},
		{"two snapshots, no refs/main", "gpt2", func(t *testing.T, hubCache string) {
			cacheRepo(t, hubCache, "models--gpt2", "", "a", "b")
		}, []string{"no refs/main and 2 snapshots"}},
		{"snapshot without config", "gpt2", func(t *testing.T, hubCache string) {
			snap := cacheRepo(t, hubCache, "models--gpt2", "r", "r")
			require.NoError(t, os.Remove(filepath.Join(snap, "config.json")))
		}, []string{"snapshot r: no config.json"}},
		{"invalid name", "../gpt2", func(*testing.T, string) {}, []string{`"../gpt2": model not found: no such directory, and not a Hugging Face model name`}},
		{"too many slashes", "a/b/c", func(*testing.T, string) {}, []string{"not a Hugging Face model name"}},
		{"double dash", "a--b", func(*testing.T, string) {}, []string{"not a Hugging Face model name"}},
		{"empty", "", func(*testing.T, string) {}, []string{"not a Hugging Face model name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hubCache, hfHome, home := isolateHF(t)
			tt.setup(t, hubCache)
			_, err := Resolve(tt.query)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrModelNotFound)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			if tt.name == "not cached" {
				for _, place := range []string{hubCache, filepath.Join(hfHome, "hub"), filepath.Join(home, ".cache", "huggingface", "hub")} {
					assert.Contains(t, err.Error(), place)
				}
			}
		})
	}
}

func TestHubCacheDirs(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("HOME", "/home/u")
	assert.Equal(t, []string{"/xdg/huggingface/hub", "/home/u/.cache/huggingface/hub"}, hubCacheDirs())

	t.Setenv("HF_HUB_CACHE", "/home/u/.cache/huggingface/hub/")
	assert.Equal(t, []string{"/home/u/.cache/huggingface/hub", "/xdg/huggingface/hub"}, hubCacheDirs(),
		"duplicates are dropped, first place kept")

	t.Setenv("HF_HOME", "/hf")
	assert.Equal(t, []string{"/home/u/.cache/huggingface/hub", "/hf/hub"}, hubCacheDirs(),
		"HF_HOME replaces XDG_CACHE_HOME")
}
