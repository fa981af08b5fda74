//go:build linux

package kernels

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// guardedBytes returns n bytes that end exactly where an inaccessible page
// begins, and a function that unmaps them.
func guardedBytes(t *testing.T, n int) ([]byte, func()) {
	t.Helper()
	ps := syscall.Getpagesize()
	np := (n + ps - 1) / ps
	mem, err := syscall.Mmap(-1, 0, (np+1)*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if err := syscall.Mprotect(mem[np*ps:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	return mem[np*ps-n : np*ps], func() { syscall.Munmap(mem) }
}

// TestEmbeddingBagMXPageEnd places MX tables so that the last row's codes
// and its scales each end exactly at an inaccessible page, and pools that
// row (first, alone, and last in a bag): the kernels' loads of whole
// blocks and the masked load of the short one must not touch a byte past
// the table (a fault crashes the test binary), as for row-wise tables in
// TestEmbeddingBagPageEnd. Results must be mxBagGo's bits.
func TestEmbeddingBagMXPageEnd(t *testing.T) {
	forEachImplOf(t, mxBagPools, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, f := range MXFormats {
			for dim := 1; dim <= 200; dim++ {
				const rows = 3
				rb, ns := MXCodeBytes(f, dim), MXScales(dim)
				codes, freeC := guardedBytes(t, rows*rb)
				scales, freeS := guardedBytes(t, rows*ns)
				for i := range codes {
					codes[i] = byte(rng.Uint32())
				}
				for i := range scales {
					scales[i] = byte(120 + rng.IntN(16))
				}
				indices := []int64{2, 0, 2, 1, 2}
				offsets := []int32{0, 1, 3, 5}
				weights := []float32{0.5, -1, 2, 3, 0.25}
				for _, w := range [][]float32{nil, weights} {
					got, want := make([]float32, 3*dim), make([]float32, 3*dim)
					mxBagGo(f, codes, scales, rb, ns, dim, indices, offsets, w, false, want, dim, 0, 3)
					EmbeddingBagMX(f, codes, scales, rows, dim, indices, offsets, w, false, got, dim, 0, 3)
					for i := range got {
						if !sameF32(got[i], want[i]) {
							t.Fatalf("%s: out[%d][%d] = %g, Go bag %g", fmt.Sprintf("%v dim %d at page end, weights %v", f, dim, w != nil), i/dim, i%dim, got[i], want[i])
						}
					}
				}
				freeC()
				freeS()
			}
		}
	})
}
