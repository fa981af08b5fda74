package bench

import (
	"context"
	"testing"
	"time"
)

// TestRunSmall runs every kernel once at a small shape: it must produce a
// positive figure, VsFP32 for non-fp32 kernels of a family, and a ceiling
// when one is given.
func TestRunSmall(t *testing.T) {
	ceil := func(k string, s Shape, th int) (float64, string, bool) { return 1, "fake", true }
	var names []string
	for _, k := range registry {
		if k.family == "gemm" {
			names = append(names, k.name)
		}
	}
	rs, err := Run(context.Background(), Options{Kernels: names, Shapes: []Shape{{M: 13, N: 7, K: 5}}, Threads: []int{1, 2},
		MinTime: time.Millisecond, Trials: 1}, ceil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2*len(names) {
		t.Fatalf("%d results for %d kernels x 2 thread counts", len(rs), len(names))
	}
	for _, r := range rs {
		if r.GOPS <= 0 || r.Ceiling != 1 || r.Ratio != r.GOPS || r.Impl == "" {
			t.Errorf("%+v", r)
		}
	}
	if _, err := Run(context.Background(), Options{Kernels: []string{"nope"}}, nil); err == nil {
		t.Error("unknown kernel accepted")
	}
}

func TestParallelCoversRows(t *testing.T) {
	for _, n := range []int{1, 11, 12, 13, 100} {
		for _, th := range []int{1, 2, 3, 8} {
			seen := make([]int, n)
			parallel(th, n, 12, func(lo, hi int) {
				if lo%12 != 0 {
					t.Errorf("chunk starts at %d, not a multiple of 12", lo)
				}
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d threads=%d: row %d covered %d times", n, th, i, c)
				}
			}
		}
	}
}
