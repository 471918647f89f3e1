//go:build !unix

package weights

import (
	"fmt"
	"io"
	"os"
)

// mapFile reads the first size bytes of f into memory: this platform has no
// mmap. The returned release function does nothing.
func mapFile(f *os.File, size int64) ([]byte, func([]byte) error, error) {
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to read", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return b, func([]byte) error { return nil }, nil
}
