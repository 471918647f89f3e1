package weights

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrModelNotFound marks a model that is neither a directory nor in the
// local Hugging Face hub cache.
var ErrModelNotFound = errors.New("model not found")

// ConfigFileName is the name of a model's configuration file.
const ConfigFileName = "config.json"

// Resolve returns the directory that holds the model nameOrDir.
//
// If nameOrDir is an existing directory it is returned as is, provided it
// holds config.json. Otherwise nameOrDir is taken as a Hugging Face hub
// model name ("gpt2", "openai-community/gpt2", "bert-base-uncased") and
// looked up in the hub cache: $HF_HUB_CACHE, then $HF_HOME/hub (or
// $XDG_CACHE_HOME/huggingface/hub when HF_HOME is unset), then
// ~/.cache/huggingface/hub. In each, models--{org}--{name} is tried, also
// under the name's canonical alias where the hub renamed a legacy model
// (gpt2 is openai-community/gpt2, bert-base-uncased is
// google-bert/bert-base-uncased). The snapshot is the revision named by
// refs/main, or the only snapshot if refs/main is missing; it must hold
// config.json.
//
// Resolve never downloads. Its error wraps ErrModelNotFound and lists the
// places searched.
func Resolve(nameOrDir string) (string, error) {
	st, err := os.Stat(nameOrDir)
	switch {
	case err == nil && st.IsDir():
		if err := hasConfig(nameOrDir); err != nil {
			return "", fmt.Errorf("weights: %s: %w: %w", nameOrDir, ErrModelNotFound, err)
		}
		return nameOrDir, nil
	case err == nil:
		return "", fmt.Errorf("weights: %s: %w: a file, not a model directory", nameOrDir, ErrModelNotFound)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("weights: %w", err)
	}
	if !validRepoID(nameOrDir) {
		return "", fmt.Errorf("weights: %q: %w: no such directory, and not a Hugging Face model name",
			nameOrDir, ErrModelNotFound)
	}
	var searched []string
	for _, root := range hubCacheDirs() {
		for _, id := range repoAliases(nameOrDir) {
			repo := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"))
			snap, err := snapshotIn(repo)
			if err == nil {
				return snap, nil
			}
			if errors.Is(err, fs.ErrNotExist) {
				searched = append(searched, repo)
			} else {
				searched = append(searched, fmt.Sprintf("%s (%v)", repo, err))
			}
		}
	}
	return "", fmt.Errorf("weights: model %q: %w in the Hugging Face cache (fx never downloads); searched: %s",
		nameOrDir, ErrModelNotFound, strings.Join(searched, ", "))
}

// hasConfig returns nil if dir holds a config.json file.
func hasConfig(dir string) error {
	st, err := os.Stat(filepath.Join(dir, ConfigFileName))
	if err != nil {
		return fmt.Errorf("no %s", ConfigFileName)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", ConfigFileName)
	}
	return nil
}

// snapshotIn returns the snapshot directory of a cached hub repository. Its
// error wraps fs.ErrNotExist when repo does not exist at all.
func snapshotIn(repo string) (string, error) {
	if _, err := os.Stat(repo); err != nil {
		return "", err
	}
	snaps := filepath.Join(repo, "snapshots")
	var snap string
	ref, err := readLimited(filepath.Join(repo, "refs", "main"), 4096)
	switch {
	case err == nil:
		rev := strings.TrimSpace(string(ref))
		if !plainFileName(rev) {
			return "", fmt.Errorf("refs/main holds %q, not a revision", rev)
		}
		snap = filepath.Join(snaps, rev)
		if st, err := os.Stat(snap); err != nil || !st.IsDir() {
			return "", fmt.Errorf("refs/main names revision %s, which has no snapshot", rev)
		}
	case errors.Is(err, fs.ErrNotExist):
		entries, err := os.ReadDir(snaps)
		if err != nil {
			return "", errors.New("no refs/main and no snapshots")
		}
		var dirs []string
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			}
		}
		if len(dirs) != 1 {
			return "", fmt.Errorf("no refs/main and %d snapshots", len(dirs))
		}
		snap = filepath.Join(snaps, dirs[0])
	default:
		return "", fmt.Errorf("refs/main: %w", err)
	}
	if err := hasConfig(snap); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", filepath.Base(snap), err)
	}
	return snap, nil
}

// hubCacheDirs returns the hub cache directories to search, in order.
func hubCacheDirs() []string {
	var dirs []string
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(v); d != "" {
			dirs = append(dirs, d)
		}
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "hub"))
	} else if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "huggingface", "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	var out []string
	for _, d := range dirs {
		if d = filepath.Clean(d); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// validRepoID reports whether s is a hub model id: "name" or "org/name",
// each part of letters, digits, '-', '_' and '.', without "--" or "..".
func validRepoID(s string) bool {
	parts := strings.Split(s, "/")
	if len(parts) > 2 || len(s) > 200 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Contains(p, "--") || strings.Contains(p, "..") ||
			strings.HasPrefix(p, ".") || strings.HasPrefix(p, "-") {
			return false
		}
		for _, r := range p {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r == '-' || r == '_' || r == '.'
			if !ok {
				return false
			}
		}
	}
	return true
}

// repoAliases returns id and, for the legacy models the hub moved under an
// organisation, the other spelling of the same model.
func repoAliases(id string) []string {
	org, name, hasOrg := strings.Cut(id, "/")
	if hasOrg {
		switch {
		case org == "openai-community" && strings.HasPrefix(name, "gpt2"),
			org == "google-bert" && strings.HasPrefix(name, "bert-"),
			org == "distilbert" && strings.HasPrefix(name, "distil"):
			return []string{id, name}
		}
		return []string{id}
	}
	switch {
	case strings.HasPrefix(id, "gpt2"):
		return []string{id, "openai-community/" + id}
	case strings.HasPrefix(id, "bert-"):
		return []string{id, "google-bert/" + id}
	case strings.HasPrefix(id, "distil"):
		return []string{id, "distilbert/" + id}
	}
	return []string{id}
}
