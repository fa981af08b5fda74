//go:build linux

package modelio

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeCopy copies b into anonymous memory aligned to hugePage and advised
// MADV_HUGEPAGE, and returns the copy and the function that unmaps it. Page
// cache pages of a mapped file are 4 KiB, so every random row lookup into a
// table far larger than the TLB's reach also misses the TLB; on 2 MiB pages
// it mostly does not (rq eval of an int8-dynamic DLRM: about 10% faster).
// Where the kernel gives no huge pages the copy still works, at 4 KiB.
func hugeCopy(b []byte) ([]byte, func() error, error) {
	size := (len(b) + hugePage - 1) &^ (hugePage - 1)
	m, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m)))) & (hugePage - 1)
	c := m[off : off+size]
	_ = unix.Madvise(c, unix.MADV_HUGEPAGE) // advice: without THP, plain pages
	copy(c, b)
	return c[:len(b):len(b)], func() error { return unix.Munmap(m) }, nil
}

// populatePages reads the pages of b, inside a file mapping made by
// mapFile, into the page cache and maps them (MADV_POPULATE_READ, Linux
// 5.14); older kernels get MADV_WILLNEED, which starts the same reads
// without waiting for them. Memory outside such a mapping is left alone.
func populatePages(b []byte) {
	if adviseMapped(b, unix.MADV_POPULATE_READ) != nil {
		_ = adviseMapped(b, unix.MADV_WILLNEED)
	}
}
