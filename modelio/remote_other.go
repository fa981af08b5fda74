//go:build !linux

package modelio

import (
	"fmt"
	"math"
)

// anonRegion allocates size bytes for a model read from object storage
// (see remote_linux.go); here an ordinary buffer.
func anonRegion(size int64) ([]byte, func() error, error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%d bytes is too large for this platform", size)
	}
	return make([]byte, size), func() error { return nil }, nil
}

// readOnly does nothing: an ordinary buffer cannot be protected.
func readOnly(b []byte) {}
