package gpu

import (
	"os"
	"strings"

	"github.com/modelforensics/fx/cuda/cudatest"
)

// emulatorMaxWork is the most multiply-adds (or elements) one case of a
// test gives the emulated device: about a second there.
const emulatorMaxWork = 3e8

// OnEmulator reports whether b runs on the emulated device
// (cuda/cudatest), where tests leave out their card-sized cases.
func OnEmulator(b *Backend) bool { return strings.Contains(b.name, cudatest.DeviceName) }

// ThinOnEmulator reports whether b is the emulated device without
// FX_EMULATED_FULL: tests then run a sample of their grids of shapes, so
// that every push checks each kernel path in a minute or two.
func ThinOnEmulator(b *Backend) bool { return OnEmulator(b) && os.Getenv("FX_EMULATED_FULL") == "" }

// TooBigForEmulator reports whether a case of work multiply-adds (or
// elements) is too big for b when b is the emulated device.
func TooBigForEmulator(b *Backend, work int) bool { return OnEmulator(b) && work > emulatorMaxWork }
