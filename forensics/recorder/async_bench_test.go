package recorder

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/modelforensics/fx/engine"
	"github.com/modelforensics/fx/engine/device/devicetest"
	"github.com/modelforensics/fx/forensics/bundle"
	"github.com/modelforensics/fx/transformer/transformertest"
)

// BenchmarkRecordOnDevice records a forward pass of a GPT-2-small-shaped
// model at each level through the device path (sketch kernels, pinned
// asynchronous copies of what the level stores) and through the host path
// on the same device backend (a synchronous ToHost of every recorded
// hook), so that the device run shows what the device path saves. It
// needs $FX_TEST_DEVICE to name a GPU (it skips on the CPU, which has no
// device path).
func BenchmarkRecordOnDevice(b *testing.B) {
	be := devicetest.Backend(b)
	if _, ok := be.(deviceBackend); !ok {
		b.Skip("the backend has no device path (set FX_TEST_DEVICE=cuda)")
	}
	for _, path := range []struct {
		name string
		be   engine.Backend
	}{{"device", be}, {"host", hostOnly{be}}} {
		m := transformertest.GPT2Small(b, path.be)
		for _, T := range []int{128, 512} {
			ids := make([]int, T)
			for i := range ids {
				ids[i] = (i * 7919) % 50257
			}
			in := bundle.Input{InputIDs: ids}
			for _, level := range []string{bundle.LevelMinimal, bundle.LevelLayer, bundle.LevelFull} {
				b.Run(path.name+"/"+level+"/T="+strconv.Itoa(T), func(b *testing.B) {
					opts := DefaultOptions()
					opts.Level = level
					for b.Loop() {
						r, err := New(m, opts)
						require.NoError(b, err)
						_, err = r.Run(context.Background(), in)
						require.NoError(b, err)
						_, err = r.Finish()
						require.NoError(b, err)
					}
				})
			}
		}
		m.Close()
	}
}
