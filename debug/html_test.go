package debug

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/rqtools/rq/report"
)

// htmlTestReport is a small synthetic report with every kind of value the
// page must cope with: exact (+Inf) and −Inf SQNR, NaN, an output without
// an isolated error, a quantized table and a layer name that needs escaping.
func htmlTestReport() *Report {
	e := func(sqnr float64) Error {
		return Error{SQNR: report.Float(sqnr), RelL2: 0.01, MaxAbs: 0.2, MaxRow: 17, MaxCol: 3, Cosine: 0.9999, Values: 100}
	}
	ptr := func(x Error) *Error { return &x }
	ws := report.Float(38.5)
	counts := func(shift int) []uint64 {
		c := make([]uint64, HistBins)
		for i := range c {
			d := float64(i - 32 - shift)
			c[i] = uint64(1000 * math.Exp(-d*d/60))
		}
		return c
	}
	return &Report{
		Rows: 1286, NE: 0.81234, QuantizedNE: 0.81456, DeltaNEPct: 0.2733,
		Layers: []Layer{
			{Name: "bot_l.0", Kind: KindFC, Precision: "int8", Quantized: true, Isolated: ptr(e(41.2)), Propagated: e(41.2),
				Clip: &Clip{Lo: -1, Hi: 2, Clipped: 3, Values: 1000, Fraction: 0.003}, WeightSQNR: &ws, PerTensorWeights: true},
			{Name: "emb_l.0", Kind: KindTable, Precision: "int4", Quantized: true, Isolated: ptr(e(18.3)), Propagated: e(18.3)},
			{Name: "emb_l.1", Kind: KindTable, Precision: "fp32", Isolated: ptr(e(math.Inf(1))), Propagated: e(math.Inf(1))},
			{Name: "<script>alert(1)</script>", Kind: KindFC, Precision: "fp16", Quantized: true, Isolated: ptr(e(math.NaN())), Propagated: e(math.Inf(-1))},
			{Name: "interaction", Kind: KindInteraction, Precision: "fp32", Isolated: ptr(e(math.Inf(1))), Propagated: e(25.0)},
			{Name: "output", Kind: KindOutput, Precision: "fp32", Propagated: e(30.1)},
		},
		Tables: []TableRows{{Table: "emb_l.0", Precision: "int4", Rows: 20, MeanRowRMSE: 0.01, MaxRowRMSE: 0.05, MaxRow: 7,
			MedianRange: 0.5, MaxRange: 3.2, Outliers: []OutlierRow{{Row: 7, Range: 3.2, RMSE: 0.05}, {Row: 2, Range: 1.1, RMSE: 0.02}}}},
		Culprits: []Culprit{
			{Layer: "emb_l.0", Precision: "int4", DeltaNEPct: 0.2, Rule: RuleTableOutliers, Suggestion: "use int8 rows for emb_l.0 & friends"},
			{Layer: "bot_l.0", Precision: "int8", DeltaNEPct: -0.01, Rule: RuleHarmless, Suggestion: "keep it"},
		},
		Worst: &Worst{Layer: "emb_l.0", SQNR: 18.3,
			FP32:      Histogram{Lo: -2, Hi: 2, Counts: counts(0)},
			Quantized: Histogram{Lo: -2, Hi: 2, Counts: counts(3)}},
	}
}

func TestHTML(t *testing.T) {
	var a, b bytes.Buffer
	if err := HTML(&a, htmlTestReport()); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&b, htmlTestReport()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two renderings of the same report differ")
	}
	s := a.String()
	for _, want := range []string{
		"<!DOCTYPE html>", "SQNR per layer", "Worst tensor", "Culprits", "Layers", "Table row errors",
		"1286", "0.81234", "0.81456", "0.2733%", // header (html/template writes + as &#43;)
		"use int8 rows for emb_l.0 &amp; friends", "table-outliers", // culprit table, escaped
		"7: 3.2", // widest rows
		"capped", // the +Inf note
		"&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if n := strings.Count(s, "<svg"); n != 2 {
		t.Errorf("%d <svg elements, want 2 (SQNR bars and histogram)", n)
	}
	if strings.Contains(s, "<script>") || strings.Contains(s, "<?xml") {
		t.Error("unescaped script or an XML prolog in the page")
	}
	// Self-contained: the only URL is the SVG namespace name, never fetched.
	rest := strings.ReplaceAll(s, `xmlns="http://www.w3.org/2000/svg"`, "")
	if m := regexp.MustCompile(`(?i)https?://|src=|url\(|<link|@import`).FindString(rest); m != "" {
		t.Errorf("page references something external: %q", m)
	}
}

func TestHTMLEdgeCases(t *testing.T) {
	// An empty report, and a worst tensor with degenerate histograms,
	// render without error.
	for _, r := range []*Report{
		{},
		{Layers: []Layer{{Name: "output", Kind: KindOutput, Propagated: Error{SQNR: report.Float(math.Inf(1))}}},
			Worst: &Worst{Layer: "x", FP32: Histogram{Lo: 1, Hi: 1}, Quantized: Histogram{Lo: report.Float(math.NaN()), Hi: 2, Counts: []uint64{1}}}},
	} {
		var b bytes.Buffer
		if err := HTML(&b, r); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
		if !strings.Contains(b.String(), "</html>") {
			t.Errorf("%+v: incomplete page", r)
		}
	}
	if err := HTML(&bytes.Buffer{}, nil); err == nil {
		t.Error("nil report: no error")
	}
}
