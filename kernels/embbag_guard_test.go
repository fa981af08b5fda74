//go:build linux

package kernels

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// TestEmbeddingBagPageEnd places tables so that their last row ends exactly
// at an inaccessible page and pools that row: the SIMD kernels' masked
// loads of partial units must not touch a byte past the table (a fault
// here crashes the test binary). Tables memory-mapped from files end like
// this whenever a file's size is a multiple of the page size.
func TestEmbeddingBagPageEnd(t *testing.T) {
	ps := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 4*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[3*ps:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	usable := mem[:3*ps]
	forEachImplOf(t, bagPools, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 9))
		for _, f := range allFormats {
			for dim := 1; dim <= 300; dim++ {
				rb := f.RowBytes(dim)
				const rows = 3
				if rows*rb > len(usable) {
					continue
				}
				src := randomTable(rng, f, rows, dim)
				table := usable[len(usable)-rows*rb:]
				copy(table, src)
				indices := []int64{2, 0, 2, 1, 2}
				offsets := []int32{0, 1, 3, 5}
				weights := []float32{0.5, -1, 2, 3, 0.25}
				for _, w := range [][]float32{nil, weights} {
					got := make([]float32, 3*dim)
					fillGuard(got)
					want := make([]float32, 3*dim)
					mag := make([]float32, 3*dim)
					bagRef(f, table, dim, indices, offsets, w, false, want, mag, dim, 0, 3)
					EmbeddingBag(f, table, rows, dim, indices, offsets, w, false, got, dim, 0, 3)
					checkBagOutput(t, f, dim, dim, 0, 3, offsets, got, want, mag, fmt.Sprintf("%v dim %d at page end", f, dim))
				}
			}
		}
	})
}
