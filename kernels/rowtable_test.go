package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

var (
	_ RowTable = (*BagTable)(nil)
	_ RowTable = (*MXBagTable)(nil)
)

// TestBagTableDequantizeRows: a row-wise table reads back any range of
// rows as DequantizeRows does on those rows' bytes, refuses ranges
// outside it, and says when its bytes are short.
func TestBagTableDequantizeRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, dim = 7, 19
	for _, f := range []TableFormat{TableF32, TableF16, TableQ8, TableQ4, TableQ2} {
		rb := f.RowBytes(dim)
		data := make([]byte, rows*rb) // any bytes: the test is about which rows
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		bt, err := NewBagTable(f, rows, dim, data)
		if err != nil {
			t.Fatal(err)
		}
		if r, d := bt.Shape(); r != rows || d != dim || !bt.Whole() {
			t.Fatalf("%v: shape %d x %d, whole %v", f, r, d, bt.Whole())
		}
		want := make([]float32, rows*dim)
		DequantizeRows(f, data, rows, dim, want)
		got := make([]float32, 3*dim)
		bt.DequantizeRows(2, 3, got)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[2*dim+i]) {
				t.Fatalf("%v: rows 2..4 element %d = %v, want %v", f, i, got[i], want[2*dim+i])
			}
		}
		short := &BagTable{Format: f, Rows: rows, Dim: dim, Data: data[:len(data)-1]}
		if short.Whole() {
			t.Errorf("%v: a table one byte short says it is whole", f)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%v: rows past the table did not panic", f)
				}
			}()
			bt.DequantizeRows(5, 3, make([]float32, 3*dim))
		}()
	}
}
