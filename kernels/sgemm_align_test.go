package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestGemmRowAlign checks the promise of GemmRowAlign: splitting M at its
// multiples gives bit-identical rows, for every implementation and for the
// dot-product path (N <= 4) too.
func TestGemmRowAlign(t *testing.T) {
	forEachImplOf(t, sgemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		for _, nk := range [][2]int{{17, 45}, {9, 17}, {1, 9}, {8, 5}, {1, 256}, {4, 100}, {5, 100}, {64, 256}} {
			n, k := nk[0], nk[1]
			const m = 61
			w := make([]float32, n*k)
			for i := range w {
				w[i] = rng.Float32()*2 - 1
			}
			a := make([]float32, m*k)
			for i := range a {
				a[i] = rng.Float32()*2 - 1
			}
			p := PackF32(w, n, k)
			full := make([]float32, m*n)
			p.Gemm(m, a, k, full, n, nil, false)
			for lo := GemmRowAlign; lo < m; lo += GemmRowAlign {
				for _, hi := range []int{m, min(lo+GemmRowAlign, m), min(lo+3*GemmRowAlign, m)} {
					part := make([]float32, (hi-lo)*n)
					p.Gemm(hi-lo, a[lo*k:], k, part, n, nil, false)
					for i := range part {
						if part[i] != full[lo*n+i] {
							t.Fatalf("n=%d k=%d rows [%d,%d) element %d: %v, whole call %v", n, k, lo, hi, i, part[i], full[lo*n+i])
						}
					}
				}
			}
		}
	})
}
