//go:build !unix || hurd

package modelio

import (
	"fmt"
	"io"
	"math"
	"os"
)

// mapFile reads the whole file: on systems without the unix mmap call the
// tensors simply live in an ordinary buffer.
func mapFile(f *os.File, size int64) (data []byte, release func() error, err error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to read on this platform", size)
	}
	data = make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return data, func() error { return nil }, nil
}

// isMapped is false: nothing is memory-mapped here.
func isMapped(b []byte) bool { return false }

// releasePages does nothing: the tensors live in an ordinary buffer, whose
// pages cannot be dropped without losing the data.
func releasePages(b []byte) error { return nil }
