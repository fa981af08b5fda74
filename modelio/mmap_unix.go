//go:build unix && !hurd

package modelio

import (
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"unsafe"

	"github.com/rqtools/rq/internal/mapfault"
	"golang.org/x/sys/unix"
)

// mappings are the live file mappings mapFile made. releasePages acts only
// on memory inside one of them: MADV_DONTNEED on ordinary (anonymous) memory
// would zero it, while on a read-only shared file mapping it merely unmaps
// pages that the next read faults back in from the page cache. Releases
// hold the read lock across the madvise call and unmapping takes the write
// lock, so a release never reaches an address range that was unmapped (and
// perhaps reused by the Go heap) in the meantime.
var mappings struct {
	sync.RWMutex
	live [][]byte
}

// mapFile maps the first size bytes of f read-only. The mapping is shared,
// not private: nothing writes through it, and shared pages come straight
// from the page cache, so several processes reading one model share memory.
func mapFile(f *os.File, size int64) (data []byte, release func() error, err error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to map on this platform", size)
	}
	data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	mappings.Lock()
	mappings.live = append(mappings.live, data)
	mappings.Unlock()
	// A read past the end of a file truncated underneath us faults; the
	// registry lets that fault name the file (internal/mapfault).
	unregister := mapfault.Register(data, f.Name())
	return data, func() error {
		unregister()
		mappings.Lock()
		defer mappings.Unlock()
		mappings.live = slices.DeleteFunc(mappings.live, func(m []byte) bool { return unsafe.SliceData(m) == unsafe.SliceData(data) })
		return unix.Munmap(data)
	}, nil
}

// mappingOf returns the live mapping holding all of b and b's offset in it,
// or nil. The caller holds mappings' lock.
func mappingOf(b []byte) (m []byte, off int) {
	if len(b) == 0 {
		return nil, 0
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, m := range mappings.live {
		base := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
		if p >= base && p-base <= uintptr(len(m)) && uintptr(len(b)) <= uintptr(len(m))-(p-base) {
			return m, int(p - base)
		}
	}
	return nil, 0
}

// isMapped reports whether b lies inside a file mapping made by mapFile.
func isMapped(b []byte) bool {
	mappings.RLock()
	defer mappings.RUnlock()
	m, _ := mappingOf(b)
	return m != nil
}

// releasePages drops this process's resident pages of b (widened to whole
// pages) when b lies inside a file mapping made by mapFile, and does nothing
// otherwise. The data stays readable: the next read of a released page
// faults it back in from the page cache (or the file). It is how rq keeps
// models larger than memory out of its resident set: every page of a mapped
// file that was touched counts in the process's RSS until it is unmapped,
// and the kernel maps whole page-cache folios on a fault (about 1 MB per
// random read on Linux 6.18 and ext4; MADV_RANDOM does not change that), so
// a few hundred random table lookups make a whole table resident. Safe to
// call concurrently with readers of b.
func releasePages(b []byte) error { return adviseMapped(b, unix.MADV_DONTNEED) }

// adviseMapped applies madvise advice to b, widened to whole pages, when b
// lies inside a file mapping made by mapFile, and does nothing otherwise.
// The mapping starts on a page boundary, so rounding the offset down to a
// page rounds the address down too; madvise rounds the length up. Widening
// onto neighbouring data is harmless for the advice rq gives (release,
// read in).
func adviseMapped(b []byte, advice int) error {
	mappings.RLock()
	defer mappings.RUnlock()
	m, off := mappingOf(b)
	if m == nil {
		return nil
	}
	lo := off &^ (os.Getpagesize() - 1)
	return unix.Madvise(m[lo:off+len(b)], advice)
}
