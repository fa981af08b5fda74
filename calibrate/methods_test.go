package calibrate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// quantMSE is the mean squared error of an asymmetric quantizer with the
// given levels over [lo, hi] (scale (hi-lo)/(levels-1), rounded zero
// point, clamping) on the values v.
func quantMSE(v []float32, lo, hi float32, levels int) float64 {
	step := float64(hi-lo) / float64(levels-1)
	var e float64
	for _, x := range v {
		y := 0.0
		if step > 0 {
			zp := math.Round(-float64(lo) / step)
			q := min(max(math.Round(float64(x)/step)+zp, 0), float64(levels-1))
			y = (q - zp) * step
		}
		e += (float64(x) - y) * (float64(x) - y)
	}
	return e / float64(len(v))
}

func ranges(t *testing.T, v []float32, o RangeOptions) map[string][2]float32 {
	t.Helper()
	h := histOf(t, DefaultBins, v)
	out := map[string][2]float32{}
	for _, m := range Methods {
		lo, hi, err := ComputeRange(h, m, o)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if lo > 0 || hi < 0 || lo < h.Min() && lo < 0 || hi > h.Max() && hi > 0 {
			t.Fatalf("%s: [%v, %v] does not hold 0 or leaves [min, max] = [%v, %v]", m, lo, hi, h.Min(), h.Max())
		}
		out[m] = [2]float32{lo, hi}
	}
	return out
}

func near(a, b, tol float32) bool { return math.Abs(float64(a-b)) <= float64(tol) }

func TestMethodsUniform(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, 1<<20)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	r := ranges(t, v, RangeOptions{})
	mm := r[MethodMinMax]
	if !near(mm[0], -1, 1e-4) || !near(mm[1], 1, 1e-4) {
		t.Fatalf("minmax %v", mm)
	}
	// With no tails to clip, L2 keeps (nearly) the whole range: clipping a
	// uniform density costs more than the finer step saves.
	if l2 := r[MethodL2]; !near(l2[0], mm[0], 0.01) || !near(l2[1], mm[1], 0.01) {
		t.Errorf("l2 %v, want about minmax %v", l2, mm)
	}
	// 0.01% of a uniform [-1, 1] lies beyond ±0.9998.
	if p := r[MethodPercentile]; !near(p[0], -0.9998, 2e-3) || !near(p[1], 0.9998, 2e-3) {
		t.Errorf("percentile %v, want about ±0.9998", p)
	}
	if e := r[MethodEntropy]; !near(e[0], -1, 0.05) || !near(e[1], 1, 0.05) {
		t.Errorf("entropy %v, want about [-1, 1]", e)
	}
	t.Logf("%v", r)
}

func TestMethodsGaussianOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	v := make([]float32, 1<<21)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	// One outlier at 200 in 2M values. Clipping it at b costs (200-b)²,
	// widening the step to (b+3.5)/255 costs N·((b+3.5)/255)²/12: the L2
	// optimum is the compromise b = (200 - 3.5·N/780300)/(1 + N/780300)
	// ≈ 53.6, far below the outlier and well above the body.
	v[12345] = 200
	v[54321] = -3.5
	r := ranges(t, v, RangeOptions{})
	t.Logf("%v", r)
	if mm := r[MethodMinMax]; mm[1] != 200 {
		t.Errorf("minmax %v should reach the outlier", mm)
	}
	n := float64(len(v)) / (255 * 255 * 12)
	if opt := (200 - 3.5*n) / (1 + n); !near(r[MethodL2][1], float32(opt), 2) {
		t.Errorf("l2 %v, want hi about %.1f (the model's optimum)", r[MethodL2], opt)
	}
	if e := r[MethodEntropy]; e[1] > 100 || e[1] < 3 || e[0] > -3 {
		t.Errorf("entropy %v: want the outlier clipped and the body kept", e)
	}
	// 0.01% two-sided quantiles of N(0,1): ±3.719.
	if p := r[MethodPercentile]; !near(p[0], -3.719, 0.1) || !near(p[1], 3.719, 0.1) {
		t.Errorf("percentile %v, want about ±3.72", p)
	}
	// What the model predicts is what a real quantizer does: L2's range
	// beats minmax's by far, and no other method's by much.
	mse := map[string]float64{}
	for m, rg := range r {
		mse[m] = quantMSE(v, rg[0], rg[1], 256)
	}
	t.Logf("mse %v", mse)
	if mse[MethodL2] > mse[MethodMinMax]/3 {
		t.Errorf("l2 mse %g vs minmax %g", mse[MethodL2], mse[MethodMinMax])
	}
	for m, e := range mse {
		if mse[MethodL2] > 1.05*e {
			t.Errorf("l2 mse %g worse than %s's %g", mse[MethodL2], m, e)
		}
	}
	// Fewer levels, coarser steps: L2 clips at least as much.
	r128 := ranges(t, v, RangeOptions{Levels: 128})
	if r128[MethodL2][1] > r[MethodL2][1] || r128[MethodL2][0] < r[MethodL2][0] {
		t.Errorf("l2 with 128 levels %v is wider than with 256 %v", r128[MethodL2], r[MethodL2])
	}
}

func TestMethodsReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	v := make([]float32, 1<<20)
	for i := range v {
		v[i] = float32(max(0, rng.NormFloat64()))
	}
	r := ranges(t, v, RangeOptions{FollowsReLU: true})
	t.Logf("%v", r)
	mse := map[string]float64{}
	for m, rg := range r {
		if rg[0] != 0 || rg[1] < 2.5 {
			t.Errorf("%s: %v, want [0, >2.5]", m, rg)
		}
		mse[m] = quantMSE(v, rg[0], rg[1], 256)
	}
	// Half the values are exact zeros, which cost nothing: a model charging
	// them Δ²/12 would clip too much. L2's choice should be the best here.
	for m, e := range mse {
		if mse[MethodL2] > 1.02*e {
			t.Errorf("l2 mse %g worse than %s's %g", mse[MethodL2], m, e)
		}
	}
	// A ReLU flag forces lo to 0 even for data with negatives (clipped).
	w := []float32{-1, 0, 1, 2}
	for m, rg := range ranges(t, w, RangeOptions{FollowsReLU: true}) {
		if rg[0] != 0 {
			t.Errorf("%s: lo %v for a ReLU input", m, rg[0])
		}
	}
}

func TestMethodsHoldZero(t *testing.T) {
	pos := []float32{2, 2.5, 3}
	for m, rg := range ranges(t, pos, RangeOptions{}) {
		if m == MethodEntropy {
			continue
		}
		if rg[0] != 0 || rg[1] <= 2 || rg[1] > 3 {
			t.Errorf("%s on [2, 3]: %v, want [0, hi] with 2 < hi <= 3", m, rg)
		}
	}
	// (Entropy compares shapes, not values: with three values it may clip
	// them all onto one level at no divergence, so only L2 and the simple
	// methods are held to the data here.)
	neg := []float32{-3, -2.5, -2}
	for m, rg := range ranges(t, neg, RangeOptions{}) {
		if m == MethodEntropy {
			continue
		}
		if rg[1] != 0 || rg[0] >= -2 || rg[0] < -3 {
			t.Errorf("%s on [-3, -2]: %v, want [lo, 0]", m, rg)
		}
	}
	zero := []float32{0, 0, 0}
	for m, rg := range ranges(t, zero, RangeOptions{}) {
		if rg != [2]float32{0, 0} {
			t.Errorf("%s on zeros: %v", m, rg)
		}
	}
	one := []float32{1.5}
	for m, rg := range ranges(t, one, RangeOptions{}) {
		if rg != [2]float32{0, 1.5} {
			t.Errorf("%s on {1.5}: %v", m, rg)
		}
	}
}

func TestPercentileExact(t *testing.T) {
	// 10000 values 1..10000 (one per bin or so): p = 99 gives the 99th
	// percentile, about 9900; the lower end is 0 (the range must hold it).
	v := make([]float32, 10000)
	for i := range v {
		v[i] = float32(i + 1)
	}
	h := histOf(t, DefaultBins, v)
	lo, hi, err := ComputeRange(h, MethodPercentile, RangeOptions{Percentile: 99})
	if err != nil || lo != 0 || !near(hi, 9900, 10) {
		t.Errorf("p99 of 1..10000: [%v, %v] %v", lo, hi, err)
	}
	// p = 100 is minmax.
	if lo, hi, _ := ComputeRange(h, MethodPercentile, RangeOptions{Percentile: 100}); lo != 0 || hi != 10000 {
		t.Errorf("p100: [%v, %v]", lo, hi)
	}
	// Exact zeros are a point mass: with 90% zeros, the 95th percentile of
	// {0 x 9000, 1..1000} is about 500, not smeared into the zero bin.
	w := make([]float32, 10000)
	for i := 9000; i < 10000; i++ {
		w[i] = float32(i - 8999)
	}
	h = histOf(t, DefaultBins, w)
	if _, hi, _ := ComputeRange(h, MethodPercentile, RangeOptions{Percentile: 95, FollowsReLU: true}); !near(hi, 500, 2) {
		t.Errorf("p95 with 90%% zeros: %v, want about 500", hi)
	}
}

func TestComputeRangeErrors(t *testing.T) {
	h := histOf(t, 16, []float32{1, 2})
	for _, c := range []struct {
		method string
		o      RangeOptions
		want   string
	}{
		{"mse", RangeOptions{}, `unknown range method "mse"`},
		{MethodL2, RangeOptions{Levels: 1}, "levels"},
		{MethodL2, RangeOptions{Levels: MaxLevels + 1}, "levels"},
		{MethodPercentile, RangeOptions{Percentile: 50}, "percentile"},
		{MethodPercentile, RangeOptions{Percentile: 100.5}, "percentile"},
		{MethodPercentile, RangeOptions{Percentile: math.NaN()}, "percentile"},
	} {
		if _, _, err := ComputeRange(h, c.method, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.method, c.o, err, c.want)
		}
	}
}

// The histogram is coarser than the levels (16 bins, 256 levels): entropy
// cannot tell and falls back to minmax; the others still work.
func TestMethodsCoarseHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	v := make([]float32, 10000)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	h := histOf(t, 16, v)
	lo, hi, _ := ComputeRange(h, MethodEntropy, RangeOptions{})
	if lo != h.Min() || hi != h.Max() {
		t.Errorf("entropy on 16 bins: [%v, %v], want minmax [%v, %v]", lo, hi, h.Min(), h.Max())
	}
	if lo, hi, err := ComputeRange(h, MethodEntropy, RangeOptions{Levels: 4}); err != nil || lo >= 0 || hi <= 0 {
		t.Errorf("entropy with 4 levels on 16 bins: [%v, %v] %v", lo, hi, err)
	}
}

func BenchmarkRanges(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	v := make([]float32, 1<<18)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	h, _ := NewHistogram(DefaultBins)
	h.Observe(v)
	for _, m := range Methods {
		b.Run(m, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := ComputeRange(h, m, RangeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
