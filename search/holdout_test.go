package search

import (
	"context"
	"testing"
)

// TestVerifyIsTheSearchsJudgement: on the search's own rows, Verify gives
// the chosen plan's entry exactly (same bootstrap, same rows), so a
// held-out figure differs from the search's only by the rows.
func TestVerifyIsTheSearchsJudgement(t *testing.T) {
	f := sensitive(t)
	opts := Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 200, Ladders: issue5Ladders}
	res := run(t, f, opts)
	if !res.Attained {
		t.Fatal("search did not attain the budget")
	}
	h, err := Verify(context.Background(), f, res.Plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if h.Stats != res.Summary.Stats || h.Verdict != res.Summary.Verdict || h.Rows != 800 || h.Bytes != res.Summary.Bytes {
		t.Errorf("Verify on the search rows: %+v %s %d rows %d B; the search: %+v %s %d B", h.Stats, h.Verdict, h.Rows, h.Bytes, res.Summary.Stats, res.Summary.Verdict, res.Summary.Bytes)
	}
}

// TestVerifyCatchesAPlanWorseElsewhere: held-out rows on which the plan
// costs more than on the search's rows fail it, and Verify's verdicts
// follow the budget (pass, inconclusive on few noisy rows, fail).
func TestVerifyCatchesAPlanWorseElsewhere(t *testing.T) {
	search := newFake(2, 2, 600, 5)
	uniform(search, 0.005)
	opts := Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}}
	res := run(t, search, opts)
	if !res.Attained {
		t.Fatal("search did not attain the budget")
	}
	for _, tc := range []struct {
		name  string
		rows  int
		cost  float64 // ΔNE % per layer on the held-out rows
		noise float64
		want  Verdict
	}{
		{"same behaviour", 600, 0.005, 0, Pass},
		{"worse", 600, 0.03, 0, Fail},
		{"few noisy rows", 40, 0.01, 5, Inconclusive},
	} {
		held := newFake(2, 2, tc.rows, 9)
		uniform(held, tc.cost)
		held.noise = tc.noise
		h, err := Verify(context.Background(), held, res.Plan, opts)
		if err != nil {
			t.Fatal(err)
		}
		if h.Verdict != tc.want || h.Rows != tc.rows {
			t.Errorf("%s: %s on %d rows (ΔNE %+v), want %s on %d", tc.name, h.Verdict, h.Rows, h.DeltaNE, tc.want, tc.rows)
		}
	}
	if _, err := Verify(context.Background(), search, res.Plan, Options{Budget: Budget{MaxNEDelta: noAUC}}); err == nil {
		t.Error("Verify took a NaN budget")
	}
}
