package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// clicks draws n predictions and labels with some signal; ties is the
// fraction of predictions rounded to 3 decimals, so exact ties occur.
func clicks(r *rand.Rand, n int, ties float64) ([]float32, []float32) {
	p := make([]float32, n)
	y := make([]float32, n)
	for i := range p {
		z := r.NormFloat64()
		if r.Float64() < 0.3+0.2*math.Tanh(z) {
			y[i] = 1
		}
		v := 1 / (1 + math.Exp(-(z - 1)))
		if r.Float64() < ties {
			v = math.Round(v*1000) / 1000
		}
		p[i] = float32(v)
	}
	return p, y
}

func TestAccumulatorAUCWithinBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 10, 1000, 100000} {
		for _, ties := range []float64{0, 0.5, 1} {
			p, y := clicks(r, n, ties)
			y[0], y[1] = 0, 1
			a := Accumulator{scores: scoreHist{limit: 300}}
			if err := a.Add(p, y); err != nil {
				t.Fatal(err)
			}
			res, err := a.Result()
			if err != nil {
				t.Fatal(err)
			}
			b := make([]bool, n)
			for i := range y {
				b[i] = y[i] == 1
			}
			exact := AUC(p, b)
			if d := math.Abs(res.AUC - exact); d > res.AUCErrorBound+1e-12 {
				t.Errorf("n=%d ties=%g: AUC %v, exact %v: off by %g, more than the bound %g", n, ties, res.AUC, exact, d, res.AUCErrorBound)
			}
			if res.AUCErrorBound > 1e-2 {
				t.Errorf("n=%d ties=%g: bound %g is loose", n, ties, res.AUCErrorBound)
			}
			if ties == 1 && math.Abs(res.AUC-exact) > 1e-12 {
				// Values on a 1e-3 grid never share a 2^-16-wide bin unless
				// equal, and equal values are ties either way: exact.
				t.Errorf("n=%d: predictions on a 1e-3 grid got AUC %v, want the exact %v", n, res.AUC, exact)
			}
			var full Accumulator // default limit: exact up to maxScorePages predictions
			if err := full.Add(p, y); err != nil {
				t.Fatal(err)
			}
			if fr, _ := full.Result(); n <= maxScorePages && (full.DropBits() != 0 || fr.AUCErrorBound != 0 || math.Abs(fr.AUC-exact) > 1e-12) ||
				math.Abs(fr.AUC-exact) > fr.AUCErrorBound+1e-12 || fr.AUCErrorBound > 1e-6 {
				t.Errorf("n=%d ties=%g: default limit: drop %d, AUC %v ± %v, want exact %v", n, ties, full.DropBits(), fr.AUC, fr.AUCErrorBound, exact)
			}
			if res.AUCErrorBound == 0 && math.Abs(res.AUC-exact) > 1e-12 {
				t.Errorf("n=%d ties=%g: bound 0 but AUC %v != exact %v", n, ties, res.AUC, exact)
			}
		}
	}
}

func TestAccumulatorBinnedTiesCounted(t *testing.T) {
	// Over the page limit, the histogram coarsens: two predictions one
	// float32 ulp apart then share a bin, and the AUC counts them tied (0.5)
	// with a bound that says by how much that may be off (0.5).
	a := Accumulator{scores: scoreHist{limit: 1}}
	p := []float32{0.5, math.Nextafter32(0.5, 1), 0.25}
	if err := a.Add(p, []float32{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	res, _ := a.Result()
	if a.DropBits() == 0 || res.AUC != 0.75 || res.AUCErrorBound != 0.25 {
		t.Errorf("drop %d: AUC %v ± %v, want 0.75 ± 0.25", a.DropBits(), res.AUC, res.AUCErrorBound)
	}
	// At full resolution they are told apart: exact.
	var b Accumulator
	if err := b.Add(p, []float32{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.Result(); b.DropBits() != 0 || res.AUC != 1 || res.AUCErrorBound != 0 {
		t.Errorf("full resolution: AUC %v ± %v, want 1 ± 0", res.AUC, res.AUCErrorBound)
	}
}

func TestScoreKeyOrder(t *testing.T) {
	vals := []float32{float32(math.Inf(-1)), -2, -1e-30, 0, 1e-30, 1e-7, 0.25, 0.5, 1, 3, float32(math.Inf(1))}
	for i := 1; i < len(vals); i++ {
		if ScoreKey(vals[i-1]) >= ScoreKey(vals[i]) {
			t.Errorf("key(%g)=%d not below key(%g)=%d", vals[i-1], ScoreKey(vals[i-1]), vals[i], ScoreKey(vals[i]))
		}
	}
	if ScoreKey(float32(math.Copysign(0, -1))) != ScoreKey(0) {
		t.Error("-0 and +0 in different bins")
	}
}

// TestMergeAnySplit: accumulators over any split of the examples, merged in
// any order, give bit-identical results to one accumulator (the property
// rq merge relies on).
func TestMergeAnySplit(t *testing.T) {
	for _, limit := range []int{0, 1, 7, 300} {
		testMergeAnySplit(t, limit)
	}
}

func testMergeAnySplit(t *testing.T, limit int) {
	r := rand.New(rand.NewPCG(3, uint64(limit)))
	p, y := clicks(r, 50000, 0.2)
	one := Accumulator{scores: scoreHist{limit: limit}}
	if err := one.Add(p, y); err != nil {
		t.Fatal(err)
	}
	want, _ := one.Result()
	if limit > 0 && one.DropBits() == 0 {
		t.Fatalf("limit %d: no coarsening", limit)
	}
	for trial := range 5 {
		parts := make([]Accumulator, 1+trial*2)
		for i := range parts {
			parts[i].scores.limit = limit
		}
		for i := 0; i < len(p); {
			j := min(len(p), i+1+r.IntN(3000))
			if err := parts[r.IntN(len(parts))].Add(p[i:j], y[i:j]); err != nil {
				t.Fatal(err)
			}
			i = j
		}
		merged := Accumulator{scores: scoreHist{limit: limit}}
		for _, k := range r.Perm(len(parts)) {
			merged.Merge(&parts[k])
		}
		got, _ := merged.Result()
		if got != want || merged.DropBits() != one.DropBits() {
			t.Errorf("limit %d split %d: merged %+v (drop %d)\nwant %+v (drop %d)", limit, trial, got, merged.DropBits(), want, one.DropBits())
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p, y := clicks(r, 20000, 0.3)
	var a Accumulator
	if err := a.Add(p, y); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(a.State())
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatal(err)
	}
	b, err := FromState(s)
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := a.Result()
	rb, _ := b.Result()
	if ra != rb {
		t.Errorf("round trip: %+v != %+v", rb, ra)
	}
	js2, _ := json.Marshal(b.State())
	if string(js) != string(js2) {
		t.Error("state does not re-encode to the same bytes")
	}
}

func TestFromStateRejects(t *testing.T) {
	var a Accumulator
	if err := a.Add([]float32{0.2, 0.7, 0.7}, []float32{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	good := a.State()
	for _, tc := range []struct {
		name string
		edit func(*State)
		want string
	}{
		{"negative", func(s *State) { s.Examples = -1 }, "non-negative"},
		{"positives", func(s *State) { s.Positives = 2 }, "state says"},
		{"bad hex", func(s *State) { s.LossSum = "12" }, "hex"},
		{"huge loss", func(s *State) { s.LossSum = "0x7fffffffffffffff0000000000000000" }, "more than -log"},
		{"key range", func(s *State) { s.Bins[0][0] = 1 << 32 }, "not below"},
		{"drop bits", func(s *State) { s.DropBits = 11 }, "score_drop_bits"},
		{"key order", func(s *State) { s.Bins[0], s.Bins[1] = s.Bins[1], s.Bins[0] }, "must increase"},
		{"empty bin", func(s *State) { s.Bins[0][1], s.Bins[0][2] = 0, 0 }, "empty bin"},
		{"overfull", func(s *State) { s.Bins[0][2] = 1 << 62 }, "exceed"},
	} {
		s := good
		s.Bins = slices.Clone(good.Bins)
		tc.edit(&s)
		if _, err := FromState(s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestAddRejectsOutOfRange(t *testing.T) {
	for _, v := range []float32{-0.1, 1.5, float32(math.NaN()), float32(math.Inf(1))} {
		var a Accumulator
		if err := a.Add([]float32{0.5, v}, []float32{0, 1}); err == nil {
			t.Errorf("prediction %v accepted", v)
		}
		if a.Count() != 0 {
			t.Errorf("prediction %v: a failed Add kept %d examples", v, a.Count())
		}
	}
}

func FuzzFromState(f *testing.F) {
	var a Accumulator
	_ = a.Add([]float32{0.2, 0.7, 0.7, 0.01}, []float32{0, 1, 0, 1})
	seed, _ := json.Marshal(a.State())
	f.Add(seed)
	f.Add([]byte(`{"examples":1,"positives":1,"correct":0,"logloss_sum_fixed58":"0x00000000000000000000000000000000","pred_sum_fixed58":"0x00000000000000000000000000000000","score_bins":[[5,1,0]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if json.Unmarshal(data, &s) != nil {
			return
		}
		b, err := FromState(s)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to a state that is accepted and equal.
		c, err := FromState(b.State())
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if b.n > 0 {
			rb, _ := b.Result()
			rc, _ := c.Result()
			if !sameResult(rb, rc) {
				t.Fatalf("round trip changed %+v to %+v", rb, rc)
			}
		}
	})
}

func sameResult(a, b Result) bool {
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	return a.Examples == b.Examples && eq(a.CTR, b.CTR) && eq(a.NE, b.NE) && eq(a.LogLoss, b.LogLoss) &&
		eq(a.AUC, b.AUC) && eq(a.AUCErrorBound, b.AUCErrorBound) && eq(a.Calibration, b.Calibration) && eq(a.Accuracy, b.Accuracy)
}
