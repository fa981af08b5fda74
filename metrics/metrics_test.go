package metrics

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestHandComputed checks every figure against values worked out by hand.
func TestHandComputed(t *testing.T) {
	// Four examples: p = .9 (y=1), .2 (y=0), .6 (y=0), .6 (y=1).
	var a Accumulator
	if err := a.Add([]float32{0.9, 0.2}, []float32{1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add([]float32{0.6, 0.6}, []float32{0, 1}); err != nil {
		t.Fatal(err)
	}
	r, err := a.Result()
	if err != nil {
		t.Fatal(err)
	}
	p := func(x float32) float64 { return float64(x) }
	ll := -(math.Log(p(0.9)) + math.Log(1-p(0.2)) + math.Log(1-p(0.6)) + math.Log(p(0.6))) / 4
	if !near(r.LogLoss, ll, 1e-15) {
		t.Errorf("logloss %v, want %v", r.LogLoss, ll)
	}
	// CTR 0.5: entropy ln 2.
	if !near(r.NE, ll/math.Ln2, 1e-15) || r.CTR != 0.5 {
		t.Errorf("ne %v ctr %v", r.NE, r.CTR)
	}
	// Pairs (pos, neg): (.9,.2)=1 (.9,.6)=1 (.6,.2)=1 (.6,.6)=0.5 -> 3.5/4.
	if r.AUC != 0.875 {
		t.Errorf("auc %v, want 0.875", r.AUC)
	}
	// mean p = 2.3/4 = .575 over ctr .5.
	if !near(r.Calibration, (p(0.9)+p(0.2)+p(0.6)+p(0.6))/4/0.5, 1e-15) {
		t.Errorf("calibration %v", r.Calibration)
	}
	// Correct at 0.5: .9/1 yes, .2/0 yes, .6/0 no, .6/1 yes.
	if r.Accuracy != 0.75 || r.Examples != 4 {
		t.Errorf("accuracy %v examples %d", r.Accuracy, r.Examples)
	}
}

func TestClip(t *testing.T) {
	var a Accumulator
	a.Add([]float32{0, 1}, []float32{1, 0})
	r, _ := a.Result()
	if want := -math.Log(Clip); !near(r.LogLoss, want, 1e-8) { // 1-(1-1e-7) is not exactly 1e-7
		t.Errorf("clipped logloss %v, want %v", r.LogLoss, want)
	}
	if r.AUC != 0 {
		t.Errorf("auc %v, want 0", r.AUC)
	}
}

func TestAUCTiesAndDegenerate(t *testing.T) {
	// All scores tied: AUC 0.5 whatever the labels.
	if got := AUC([]float32{.3, .3, .3, .3}, []bool{true, false, false, true}); got != 0.5 {
		t.Errorf("all ties: %v", got)
	}
	if got := AUC([]float32{.1, .2}, []bool{true, true}); !math.IsNaN(got) {
		t.Errorf("one class: %v, want NaN", got)
	}
	// Brute force against the pair definition on a pseudo-random case with ties.
	var p []float32
	var y []bool
	s := uint32(7)
	for i := 0; i < 500; i++ {
		s = s*1664525 + 1013904223
		p = append(p, float32(s>>24)/32) // coarse: many ties
		y = append(y, s&0x100 != 0)
	}
	var num, den float64
	for i := range p {
		for j := range p {
			if y[i] && !y[j] {
				den++
				if p[i] > p[j] {
					num++
				} else if p[i] == p[j] {
					num += 0.5
				}
			}
		}
	}
	if got := AUC(p, y); !near(got, num/den, 1e-12) {
		t.Errorf("AUC %v, pairwise %v", got, num/den)
	}
}

func TestMergeEqualsOneRun(t *testing.T) {
	p := []float32{.1, .7, .4, .9, .3, .5}
	y := []float32{0, 1, 0, 1, 1, 0}
	var one, a, b Accumulator
	one.Add(p, y)
	a.Add(p[:2], y[:2])
	b.Add(p[2:], y[2:])
	a.Merge(&b)
	r1, _ := one.Result()
	r2, _ := a.Result()
	if !near(r1.NE, r2.NE, 1e-15) || r1.AUC != r2.AUC || r1.Examples != r2.Examples {
		t.Errorf("merged %+v != single %+v", r2, r1)
	}
}

func TestErrors(t *testing.T) {
	var a Accumulator
	if _, err := a.Result(); err != ErrNoExamples {
		t.Errorf("empty: %v", err)
	}
	if err := a.Add([]float32{1}, nil); err == nil {
		t.Error("length mismatch accepted")
	}
	if err := a.Add([]float32{float32(math.NaN())}, []float32{1}); err == nil {
		t.Error("NaN prediction accepted")
	}
}
