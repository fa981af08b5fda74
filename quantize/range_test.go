package quantize

import (
	"errors"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// TestTableBeyondHalf: a finite table value beyond fp16's range is refused
// for the formats that would store it (or its row's scale and bias) as
// fp16, instead of becoming Inf; int8 rows (fp32 scale and bias) take it.
func TestTableBeyondHalf(t *testing.T) {
	w := make([]float32, 6*4)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	w[3*4+2] = 1e6
	tb := &model.Table{Name: "emb_l.0", Rows: 6, Dim: 4, Weight: w}
	for _, c := range []struct {
		prec    precision.Precision
		refused bool
	}{{precision.FP16, true}, {precision.Int4, true}, {precision.Int8, false}, {precision.FP32, false}} {
		_, err := QuantizeTable(tb, LayerPlan{Precision: c.prec})
		var re *RangeRowError
		if got := errors.As(err, &re); got != c.refused || (got && (re.Row != 3 || re.Col != 2)) {
			t.Errorf("%s: %v", c.prec, err)
		}
	}
	if err := CheckRowsFor(kernels.TableF16, "x", []float32{65504, -65504}, 0, 1, 2); err != nil {
		t.Errorf("fp16's own largest values refused: %v", err)
	}
}
