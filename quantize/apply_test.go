package quantize

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

func TestQuantizeTableNonFinite(t *testing.T) {
	const rows, dim = 6, 4
	w := make([]float32, rows*dim)
	for i := range w {
		w[i] = float32(i%5) * 0.1
	}
	tb := &model.Table{Name: "emb_l.2", Rows: rows, Dim: dim, Weight: w}
	for _, prec := range []string{FP16, Int8Rowwise, Int4Rowwise} {
		if _, err := QuantizeTable(tb, LayerPlan{Precision: prec}); err != nil {
			t.Fatalf("%s, finite table: %v", prec, err)
		}
	}
	for _, v := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		w2 := append([]float32(nil), w...)
		w2[3*dim+1] = v
		bad := &model.Table{Name: "emb_l.2", Rows: rows, Dim: dim, Weight: w2}
		for _, lp := range []LayerPlan{{Precision: Int8Rowwise}, {Precision: Int4Rowwise, Greedy: true}, {Precision: FP16}} {
			_, err := QuantizeTable(bad, lp)
			var nf *NonFiniteRowError
			if !errors.As(err, &nf) || nf.Tensor != "emb_l.2.weight" || nf.Row != 3 || nf.Col != 1 {
				t.Errorf("%s with %v at row 3: %v", lp.Precision, v, err)
				continue
			}
			for _, s := range []string{`"emb_l.2.weight"`, "row 3", "column 1"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		}
	}
	// A block that starts further down the table numbers its rows from there.
	w[5*dim+3] = float32(math.NaN())
	var nf *NonFiniteRowError
	if err := CheckRows("emb_l.0.weight", w[4*dim:], 4, 2, dim); !errors.As(err, &nf) || nf.Row != 5 || nf.Col != 3 {
		t.Errorf("block from row 4: %v", err)
	}
	if err := CheckRows("emb_l.0.weight", w, 0, 5, dim); err != nil {
		t.Errorf("rows 0..4 are finite: %v", err)
	}
}
