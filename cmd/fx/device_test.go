package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/cuda/cudatest"
	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/forensics/certificate"
)

// TestPipelineOnDevice runs the main job with --device $FX_TEST_DEVICE (a
// CUDA device; skipped otherwise): fx run with an intervention and a dump
// on GPT-2, fx run on BERT, then the recorded prompt injection through fx
// baseline, fx analyze and fx certificate verify, and checks that the
// device finds the CPU's fix set. (The certificate verifies on the device
// that recorded it: replay is bit for bit on the same backend only.)
func TestPipelineOnDevice(t *testing.T) {
	dev := os.Getenv(devicetest.Env)
	if dev == "" || dev == "cpu" {
		t.Skipf("%s names no CUDA device", devicetest.Env)
	}
	dir := t.TempDir()
	code, stdout, stderr := runFx(t, "", "run", testModel("gpt2-tiny"), "--tokens", "1,2,3,4", "--device", dev, "--json",
		"--intervene", "blocks.0.mlp.hook_post[i=5]=zero", "--dump", "blocks.1.attn.hook_pattern="+filepath.Join(dir, "pattern.npy"))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "{")
	_, err := os.Stat(filepath.Join(dir, "pattern.npy"))
	require.NoError(t, err, "the dumped pattern")
	code, _, stderr = runFx(t, "", "run", testModel("bert-tiny-cls"), "--prompt", "a gripping, heartfelt film", "--device", dev, "--json")
	require.Equal(t, 0, code, stderr)

	sites := func(c *certificate.Certificate) []string {
		var s []string
		for _, m := range c.FixSet {
			s = append(s, m.Site)
		}
		return s
	}
	bundle, report, onDevice := analyzedIncident(t, dev)
	_, _, onCPU := analyzedIncident(t, "cpu")
	assert.Equal(t, sites(onCPU), sites(onDevice), "the fix set on %s and on the CPU", dev)
	code, stdout, stderr = runFx(t, "", "certificate", "verify", filepath.Join(report, "certificate.json"), "--bundle", bundle, "--device", dev)
	assert.Equal(t, 0, code, "verify on %s: %s%s", dev, stdout, stderr)
}

// TestEmulatedDevice runs TestPipelineOnDevice on the emulated CUDA device
// (cuda/cudatest).
func TestEmulatedDevice(t *testing.T) {
	cudatest.Rerun(t, "^TestPipelineOnDevice$", devicetest.Env+"=cuda")
}
