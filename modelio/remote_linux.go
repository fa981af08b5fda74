//go:build linux

package modelio

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// anonRegion reserves size bytes of anonymous memory for a model read from
// object storage. Only the pages written count in the resident set (bytes
// of the object no tensor covers are never fetched, so never touched), and
// MAP_NORESERVE lets a header be checked against the object's size before
// anything is read. Tables land on transparent huge pages where the kernel
// gives them, as PrepareTables moves a local file's tables.
func anonRegion(size int64) ([]byte, func() error, error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%d bytes is too large for this platform", size)
	}
	if size == 0 {
		return []byte{}, func() error { return nil }, nil
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advice: without THP, plain pages
	return b, func() error { return unix.Munmap(b) }, nil
}

// readOnly makes the region read-only once filled: tensors are read-only,
// as those of a mapped file are, and a stray write faults instead of
// corrupting a weight.
func readOnly(b []byte) {
	if len(b) > 0 {
		_ = unix.Mprotect(b, unix.PROT_READ)
	}
}
