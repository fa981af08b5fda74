package debug

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// TestTableRowsMixed: a mixed table's row error is split by part: the
// rows add up to the table's, the hot int8 rows err far less than the
// cold int2 ones, the worst row is the cold part's; Suggest names both
// parts' errors; a table that is not mixed has no parts.
func TestTableRowsMixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	ref := &model.Table{Name: "emb_l.0", Rows: 500, Dim: 16, Weight: make([]float32, 500*16)}
	for i := range ref.Weight {
		ref.Weight[i] = float32(rng.NormFloat64())
	}
	hot := []int64{3, 77, 140, 141, 499}
	q, err := quantize.QuantizeMixedTable(ref, quantize.MixedPlan(precision.Int8, precision.Int2, 0.01), hot)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tableRows(ref, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Parts) != 2 {
		t.Fatalf("parts %+v", tr.Parts)
	}
	h, c := tr.Parts[0], tr.Parts[1]
	if h.Part != "hot" || c.Part != "cold" || h.Rows != 5 || c.Rows != 495 || h.Precision != "int8-rowwise" || c.Precision != "int2-rowwise" {
		t.Errorf("parts %+v", tr.Parts)
	}
	if !(float64(h.MeanRowRMSE)*10 < float64(c.MeanRowRMSE)) || c.MaxRow != tr.MaxRow || c.MaxRowRMSE != tr.MaxRowRMSE {
		t.Errorf("hot %+v cold %+v table max %v @%d", h, c, tr.MaxRowRMSE, tr.MaxRow)
	}
	found := false
	for _, id := range hot {
		found = found || id == h.MaxRow
	}
	if !found {
		t.Errorf("hot part's worst row %d is not hot", h.MaxRow)
	}
	l := &Layer{Name: "emb_l.0", Kind: KindTable, Precision: q.Label(), prec: precision.Mixed}
	rule, text := Suggest(l, tr, 0.1)
	if rule != RuleTableBits || !strings.Contains(text, "495 cold int2-rowwise rows") || !strings.Contains(text, "5 hot int8-rowwise rows") || !strings.Contains(text, "hot_share") {
		t.Errorf("suggestion %s: %s", rule, text)
	}
	plain, err := quantize.QuantizeTable(ref, quantize.LayerPlan{Precision: precision.Int4})
	if err != nil {
		t.Fatal(err)
	}
	if tr, err := tableRows(ref, plain, 3); err != nil || tr.Parts != nil {
		t.Errorf("int4 table: parts %+v, %v", tr.Parts, err)
	}
}
