package kernels

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFakeKernelsListsEveryKernel checks that emu/fakekernels.cpp's
// hand-written kernels[] names every extern "C" __global__ function of
// *.cu, and nothing else. A kernel left out there is otherwise noticed only
// when engine/gpu loads it on the emulated device and gets NOT_FOUND. It
// also checks that every .entry of the committed PTX is defined in the .cu
// of the same name.
func TestFakeKernelsListsEveryKernel(t *testing.T) {
	// A declaration may have __launch_bounds__(...) before void and may
	// span lines; every line opening with extern "C" __global__ must match.
	decl := regexp.MustCompile(`(?m)^extern "C"\s+__global__\b`)
	def := regexp.MustCompile(`(?m)^extern "C"\s+__global__\s+(?:__launch_bounds__\([^()]*\)\s+)?void\s+(\w+)\s*\(`)
	sources, err := filepath.Glob("*.cu")
	require.NoError(t, err)
	require.NotEmpty(t, sources)
	defined := map[string]string{} // kernel name → file stem
	for _, src := range sources {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		ms := def.FindAllStringSubmatch(string(b), -1)
		require.Len(t, ms, len(decl.FindAllString(string(b), -1)), "%s: an extern \"C\" __global__ declaration the regexp does not parse", src)
		for _, m := range ms {
			require.NotContains(t, defined, m[1], "%s: %s defined twice", src, m[1])
			defined[m[1]] = strings.TrimSuffix(src, ".cu")
		}
	}

	cpp, err := os.ReadFile("emu/fakekernels.cpp")
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*FX_KERNEL\((\w+)\)`).FindAllStringSubmatch(string(cpp), -1) {
		assert.False(t, listed[m[1]], "emu/fakekernels.cpp lists %s twice", m[1])
		listed[m[1]] = true
	}
	var missing, extra []string
	for name := range defined {
		if !listed[name] {
			missing = append(missing, name)
		}
	}
	for name := range listed {
		if _, ok := defined[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	assert.Empty(t, missing, "kernels of *.cu missing from emu/fakekernels.cpp's kernels[]")
	assert.Empty(t, extra, "emu/fakekernels.cpp's kernels[] lists kernels no *.cu defines")

	entry := regexp.MustCompile(`\.entry (\w+)\(`)
	for _, mod := range Modules() {
		for _, m := range entry.FindAllStringSubmatch(mod.PTX, -1) {
			assert.Equal(t, mod.Name, defined[m[1]], "%s.ptx's .entry %s is not defined in %s.cu", mod.Name, m[1], mod.Name)
		}
	}
}
