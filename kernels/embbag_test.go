package kernels

import (
	"math"
	"testing"
)

func TestEmbeddingBagF32(t *testing.T) {
	const rows, dim = 5, 3
	table := make([]float32, rows*dim)
	for i := range table {
		table[i] = float32(i) * 0.5
	}
	indices := []int64{4, 0, 0, 2, 1}
	offsets := []int32{0, 1, 1, 3, 5} // bags: {4}, {}, {0,0}, {2,1}
	weights := []float32{2, 1, 3, -1, 1}
	const ldo = 5 // wider than dim: a guard column between rows
	for _, weighted := range []bool{false, true} {
		out := make([]float32, 4*ldo)
		for i := range out {
			out[i] = float32(math.NaN())
		}
		var w []float32
		if weighted {
			w = weights
		}
		if p := EmbeddingBagF32(table, rows, dim, indices, offsets, w, out, ldo, 0, 4); p != -1 {
			t.Fatalf("reported bad index at %d", p)
		}
		for b := 0; b < 4; b++ {
			for j := 0; j < dim; j++ {
				var want float32
				for p := offsets[b]; p < offsets[b+1]; p++ {
					f := float32(1)
					if weighted {
						f = weights[p]
					}
					want += f * table[indices[p]*dim+int64(j)]
				}
				if got := out[b*ldo+j]; got != want {
					t.Errorf("weighted=%v bag %d col %d: %v, want %v", weighted, b, j, got, want)
				}
			}
			for j := dim; j < ldo; j++ {
				if !math.IsNaN(float64(out[b*ldo+j])) {
					t.Errorf("guard column %d of row %d written", j, b)
				}
			}
		}
	}
	out := make([]float32, 4*ldo)
	if p := EmbeddingBagF32(table, rows, dim, []int64{1, 5}, []int32{0, 1, 2}, nil, out, ldo, 0, 2); p != 1 {
		t.Errorf("index 5 of a 5-row table: reported position %d, want 1", p)
	}
	if p := EmbeddingBagF32(table, rows, dim, []int64{-1}, []int32{0, 1}, nil, out, ldo, 0, 1); p != 0 {
		t.Errorf("index -1: reported position %d, want 0", p)
	}
}

func TestCheckBags(t *testing.T) {
	cases := []struct {
		off     []int32
		n, nIdx int
		ok      bool
	}{
		{[]int32{0, 1, 2}, 2, 2, true},
		{[]int32{0, 0, 0}, 2, 0, true},
		{[]int32{0, 2, 1}, 2, 1, false}, // decreasing
		{[]int32{1, 2, 3}, 2, 3, false}, // not from 0
		{[]int32{0, 1, 2}, 2, 3, false}, // does not end at nIdx
		{[]int32{0, 1}, 2, 1, false},    // too short
	}
	for _, c := range cases {
		if got := CheckBags(c.off, c.n, c.nIdx); got != c.ok {
			t.Errorf("CheckBags(%v, %d, %d) = %v", c.off, c.n, c.nIdx, got)
		}
	}
}

func TestInteractDot(t *testing.T) {
	const f, d = 3, 2
	// One row: vectors (1,2), (3,4), (5,6).
	tt := []float32{1, 2, 3, 4, 5, 6}
	out := make([]float32, d+6)
	InteractDot(tt, f*d, f, d, false, out, len(out), 0, 1)
	want := []float32{1, 2, 1*3 + 2*4, 1*5 + 2*6, 3*5 + 4*6}
	for i, w := range want {
		if out[i] != w {
			t.Errorf("dot: out[%d] = %v, want %v", i, out[i], w)
		}
	}
	InteractDot(tt, f*d, f, d, true, out, len(out), 0, 1)
	want = []float32{1, 2, 1 + 4, 11, 9 + 16, 17, 39, 25 + 36}
	for i, w := range want {
		if out[i] != w {
			t.Errorf("self: out[%d] = %v, want %v", i, out[i], w)
		}
	}
}
