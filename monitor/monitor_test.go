package monitor

import (
	"math"
	"strings"
	"testing"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/report"
)

func hist(t *testing.T, vals ...float32) *calibrate.Histogram {
	t.Helper()
	h, err := calibrate.NewHistogram(0)
	if err != nil {
		t.Fatal(err)
	}
	h.Observe(vals)
	return h
}

func TestHistDistance(t *testing.T) {
	a := hist(t, 0.1, 0.2, 0.3, 0.4)
	if d, err := HistDistance(a, a.Clone(), DriftBins); err != nil || d != 0 {
		t.Errorf("same histogram: %g %v, want 0", d, err)
	}
	// Disjoint supports, at any resolution that separates them.
	b := hist(t, 5, 6, 7, 7.5)
	if d, _ := HistDistance(a, b, DriftBins); d != 1 {
		t.Errorf("disjoint: %g, want 1", d)
	}
	// Half the mass moved: 0.5, whatever the widths (a's grid is much finer).
	c := hist(t, 0.1, 0.2, 6, 7)
	if d, _ := HistDistance(a, c, DriftBins); math.Abs(d-0.5) > 1e-12 {
		t.Errorf("half moved: %g, want 0.5", d)
	}
	// Symmetric.
	if d1, d2 := mustDist(t, a, c), mustDist(t, c, a); d1 != d2 {
		t.Errorf("asymmetric: %g vs %g", d1, d2)
	}
	// One bin: everything is in it, so no distance can show.
	if d, _ := HistDistance(a, b, 1); d != 0 {
		t.Errorf("one bin: %g, want 0", d)
	}
	// Empty histograms.
	e := hist(t)
	if d, _ := HistDistance(e, e, DriftBins); d != 0 {
		t.Errorf("both empty: %g", d)
	}
	if d, _ := HistDistance(e, a, DriftBins); d != 1 {
		t.Errorf("one empty: %g", d)
	}
	if _, err := HistDistance(nil, a, DriftBins); err == nil {
		t.Error("nil histogram: no error")
	}
	// Negative values land on their own side of 0.
	n := hist(t, -0.1, -0.2, -0.3, -0.4)
	if d := mustDist(t, a, n); d != 1 {
		t.Errorf("mirrored: %g, want 1", d)
	}
}

func mustDist(t *testing.T, a, b *calibrate.Histogram) float64 {
	t.Helper()
	d, err := HistDistance(a, b, DriftBins)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecide(t *testing.T) {
	th := DefaultThresholds()
	acc := func(ne, auc float64) Accuracy { return Accuracy{NEPct: report.Float(ne), AUC: report.Float(auc)} }
	fresh := func(ne float64) *Accuracy { a := acc(ne, 0); return &a }
	cases := []struct {
		name string
		p    Point
		want Verdict
		in   string
	}{
		{"ok", Point{Production: acc(0.01, 0), MaxClip: 0.001, Drift: 0.02}, OK, "within budget"},
		{"budget, fresh fixes", Point{Production: acc(0.2, 0), Fresh: fresh(0.01)}, Recalibrate, "ΔNE +0.2000% > 0.05%"},
		{"clip, fresh fixes", Point{Production: acc(0, 0), MaxClip: 0.05, MaxClipLayer: "bot_l.0", Fresh: fresh(0)}, Recalibrate, "bot_l.0 input clipped 5.00%"},
		{"drift, fresh fixes", Point{Production: acc(0, 0), Drift: 0.3, DriftLayer: "top_l.0", Fresh: fresh(0)}, Recalibrate, "top_l.0 input drift 0.300"},
		{"budget, fresh fails", Point{Production: acc(0.2, 0), Fresh: fresh(0.1)}, Research, "still break"},
		{"drift, fresh fails, production holds", Point{Production: acc(0, 0), Drift: 0.3, Fresh: fresh(0.1)}, OK, "keep them"},
		{"unverified", Point{Production: acc(0.2, 0)}, Research, "not verified"},
		{"NaN ΔNE breaks", Point{Production: acc(math.NaN(), 0), Fresh: fresh(0)}, Recalibrate, "ΔNE"},
		{"at the budget is OK", Point{Production: acc(0.05, 0), MaxClip: 0.01, Drift: 0.1}, OK, ""},
	}
	for _, c := range cases {
		v, why := Decide(&c.p, th)
		if v != c.want || !strings.Contains(why, c.in) {
			t.Errorf("%s: %s %q, want %s containing %q", c.name, v, why, c.want, c.in)
		}
	}
	// The AUC budget, when set.
	th.MaxAUCDrop = 0.001
	p := Point{Production: acc(0, -0.002), Fresh: &Accuracy{AUC: -0.0005}}
	if v, why := Decide(&p, th); v != Recalibrate || !strings.Contains(why, "AUC drop 0.00200") {
		t.Errorf("auc: %s %q", v, why)
	}
	p.Fresh = &Accuracy{AUC: -0.003}
	if v, _ := Decide(&p, th); v != Research {
		t.Errorf("auc, fresh fails: %s", v)
	}
	// needsFresh agrees with Decide's OK.
	if needsFresh(&Point{Production: acc(0.01, 0)}, th) {
		t.Error("needsFresh on a healthy point")
	}
}
