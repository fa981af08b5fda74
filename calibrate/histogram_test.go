package calibrate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func newHist(t testing.TB, bins int) *Histogram {
	t.Helper()
	h, err := NewHistogram(bins)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func histOf(t testing.TB, bins int, chunks ...[]float32) *Histogram {
	t.Helper()
	h := newHist(t, bins)
	for _, c := range chunks {
		h.Observe(c)
	}
	return h
}

// checkExact verifies h against a direct count: its exponent is the
// smallest that fits the data and 0, its window starts at the bin of
// min(0, min), and every bin holds exactly the values with
// floor(x / 2^exp) == start + j.
func checkExact(t *testing.T, h *Histogram, vals []float32) {
	t.Helper()
	var finite []float64
	var nan, pinf, ninf, zeros uint64
	for _, x := range vals {
		f := float64(x)
		switch {
		case math.IsNaN(f):
			nan++
		case math.IsInf(f, 1):
			pinf++
		case math.IsInf(f, -1):
			ninf++
		default:
			finite = append(finite, f)
			if f == 0 {
				zeros++
			}
		}
	}
	if h.Count() != uint64(len(finite)) || h.NaN() != nan || h.PosInf() != pinf || h.NegInf() != ninf || h.Zeros() != zeros {
		t.Fatalf("count %d nan %d +inf %d -inf %d zeros %d, want %d %d %d %d %d", h.Count(), h.NaN(), h.PosInf(), h.NegInf(), h.Zeros(), len(finite), nan, pinf, ninf, zeros)
	}
	if len(finite) == 0 {
		return
	}
	mn, mx := math.Inf(1), math.Inf(-1)
	for _, f := range finite {
		mn, mx = min(mn, f), max(mx, f)
	}
	if float64(h.Min()) != mn+0 || float64(h.Max()) != mx+0 {
		t.Fatalf("min %v max %v, want %v %v", h.Min(), h.Max(), mn, mx)
	}
	a, b := min(0, mn), max(0, mx)
	n := h.Bins()
	if !fits(n, h.exp, a, b) || (h.exp > minExp && fits(n, h.exp-1, a, b)) {
		t.Fatalf("exponent %d is not the smallest fitting [%v, %v] in %d bins", h.exp, a, b, n)
	}
	if h.start != floorIdx(a, h.exp) {
		t.Fatalf("window starts at bin %d, want %d (the bin of %v)", h.start, floorIdx(a, h.exp), a)
	}
	want := make([]uint64, n)
	for _, f := range finite {
		i := int64(math.Floor(math.Ldexp(f, -h.exp))) - h.start
		if i < 0 || i >= int64(n) {
			t.Fatalf("value %v falls outside the window [%v, %v)", f, h.Lo(), h.Hi())
		}
		want[i]++
	}
	for j := range want {
		if want[j] != h.counts[j] {
			t.Fatalf("bin %d [%v, %v): %d values, want %d", j, h.Lo()+float64(j)*h.Width(), h.Lo()+float64(j+1)*h.Width(), h.counts[j], want[j])
		}
	}
	if h.Width() != math.Ldexp(1, h.exp) || h.Hi()-h.Lo() != float64(n)*h.Width() || h.Lo() > 0 || h.Hi() <= 0 {
		t.Fatalf("grid lo %v hi %v width %v", h.Lo(), h.Hi(), h.Width())
	}
}

// streams of values of very different scales and signs, with the odd
// NaN, infinity, zero and -0.
func randomStream(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	scale := math.Ldexp(1, rng.IntN(60)-30)
	shift := (rng.Float64() - 0.3) * scale * float64(rng.IntN(3))
	for i := range v {
		switch rng.IntN(50) {
		case 0:
			v[i] = float32(math.NaN())
		case 1:
			v[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
		case 2:
			v[i] = 0
		case 3:
			v[i] = float32(math.Copysign(0, -1))
		case 4:
			v[i] = float32(rng.NormFloat64() * scale * 1000) // outlier
		default:
			v[i] = float32(rng.NormFloat64()*scale + shift)
		}
	}
	return v
}

func TestHistogramGrowthExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		bins := []int{8, 9, 16, 100, 2048}[trial%5]
		var all []float32
		h := newHist(t, bins)
		for range 1 + rng.IntN(6) {
			c := randomStream(rng, rng.IntN(300))
			h.Observe(c)
			all = append(all, c...)
			checkExact(t, h, all)
		}
	}
}

func TestHistogramDoublingByHand(t *testing.T) {
	h := newHist(t, 8)
	h.Observe([]float32{0.5, 0.25})
	// [0, 0.5] in 8 bins: width 1/8 (0.5 lands in bin 4; 1/16 would need 9 bins).
	if h.Width() != 0.125 || h.Lo() != 0 || h.Hi() != 1 {
		t.Fatalf("width %v [%v, %v)", h.Width(), h.Lo(), h.Hi())
	}
	if got := h.Counts(); got[2] != 1 || got[4] != 1 {
		t.Fatalf("counts %v", got)
	}
	// 3 needs width 1/2 (bin 6 of [0, 4)): two doublings, 0.25 and 0.5
	// move to bins 0 and 1, not smeared.
	h.Observe([]float32{3})
	if h.Width() != 0.5 || h.Lo() != 0 {
		t.Fatalf("after 3: width %v lo %v", h.Width(), h.Lo())
	}
	if got := h.Counts(); got[0] != 1 || got[1] != 1 || got[6] != 1 {
		t.Fatalf("after 3: counts %v", got)
	}
	// -0.5 shifts the window down without widening: [-0.5, 3] spans 8 half bins.
	h.Observe([]float32{-0.5})
	if h.Width() != 0.5 || h.Lo() != -0.5 {
		t.Fatalf("after -0.5: width %v lo %v", h.Width(), h.Lo())
	}
	if got := h.Counts(); got[0] != 1 || got[1] != 1 || got[2] != 1 || got[7] != 1 {
		t.Fatalf("after -0.5: counts %v", got)
	}
}

func TestHistogramExtremes(t *testing.T) {
	tiny := math.Float32frombits(1) // 2^-149
	big := float32(math.MaxFloat32)
	for _, vals := range [][]float32{
		{tiny}, {-tiny}, {tiny, -tiny}, {big}, {-big}, {big, -big}, {big, tiny, -tiny, 0},
		{0}, {float32(math.Copysign(0, -1))}, {1e-30, 1e30}, {-1e-40, 3},
	} {
		for _, bins := range []int{MinBins, 2048} {
			h := histOf(t, bins, vals)
			checkExact(t, h, vals)
			one := newHist(t, bins)
			for _, v := range vals {
				one.Observe([]float32{v})
			}
			if !one.equal(h) {
				t.Errorf("%v: one by one differs from all at once", vals)
			}
			for _, m := range Methods {
				for _, relu := range []bool{false, true} {
					lo, hi, err := ComputeRange(h, m, RangeOptions{FollowsReLU: relu})
					if err != nil || lo > 0 || hi < 0 || math.IsInf(float64(hi), 0) || math.IsInf(float64(lo), 0) {
						t.Errorf("%v %s: [%v, %v] %v", vals, m, lo, hi, err)
					}
				}
			}
		}
	}
}

func TestHistogramMergeEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		bins := []int{8, 13, 64, 2048}[trial%4]
		parts := make([][]float32, 1+rng.IntN(4))
		for i := range parts {
			parts[i] = randomStream(rng, rng.IntN(200))
		}
		whole := histOf(t, bins, parts...)
		// Merge the parts' histograms in a random order.
		merged := newHist(t, bins)
		for _, i := range rng.Perm(len(parts)) {
			if err := merged.Merge(histOf(t, bins, parts[i])); err != nil {
				t.Fatal(err)
			}
		}
		if !merged.equal(whole) {
			t.Fatalf("trial %d: merged histogram differs from observing all (exp %d/%d start %d/%d count %d/%d)",
				trial, merged.exp, whole.exp, merged.start, whole.start, merged.count, whole.count)
		}
		// And observing in another order gives the same too.
		var all []float32
		for _, p := range parts {
			all = append(all, p...)
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		if !histOf(t, bins, all).equal(whole) {
			t.Fatalf("trial %d: shuffled order differs", trial)
		}
	}
}

func TestHistogramMergeKeepsOther(t *testing.T) {
	a := histOf(t, 16, []float32{1, 2, 3})
	b := histOf(t, 16, []float32{-100, 7})
	bc := b.Clone()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !b.equal(bc) {
		t.Error("Merge changed its argument")
	}
	if a.Count() != 5 || a.Min() != -100 || a.Max() != 7 {
		t.Errorf("merged count %d min %v max %v", a.Count(), a.Min(), a.Max())
	}
	// Merging an empty histogram, or into one, changes nothing / copies.
	e := newHist(t, 16)
	before := a.Clone()
	if err := a.Merge(e); err != nil || !a.equal(before) {
		t.Errorf("merging an empty histogram: %v", err)
	}
	if err := e.Merge(a); err != nil || !e.equal(a) {
		t.Errorf("merging into an empty histogram: %v", err)
	}
	if err := a.Merge(newHist(t, 32)); err == nil || !strings.Contains(err.Error(), "32 bins into one of 16") {
		t.Errorf("bin mismatch: %v", err)
	}
}

func TestHistogramNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	h := histOf(t, 16, []float32{nan, 1, -inf, inf, 2, nan, 0, float32(math.Copysign(0, -1))})
	if h.Count() != 4 || h.NaN() != 2 || h.PosInf() != 1 || h.NegInf() != 1 || h.NonFinite() != 4 || h.Zeros() != 2 {
		t.Fatalf("count %d nan %d +inf %d -inf %d zeros %d", h.Count(), h.NaN(), h.PosInf(), h.NegInf(), h.Zeros())
	}
	if h.Min() != 0 || math.Signbit(float64(h.Min())) || h.Max() != 2 {
		t.Errorf("min %v max %v: want 0 (not -0) and 2", h.Min(), h.Max())
	}
	var sum uint64
	for _, c := range h.Counts() {
		sum += c
	}
	if sum != 4 {
		t.Errorf("bins hold %d values, want the 4 finite ones", sum)
	}
	// Only non-finite: empty histogram, no range.
	e := histOf(t, 16, []float32{nan, inf})
	if e.Count() != 0 || e.Min() != 0 || e.Max() != 0 {
		t.Errorf("all non-finite: count %d min %v max %v", e.Count(), e.Min(), e.Max())
	}
	if _, _, err := ComputeRange(e, MethodL2, RangeOptions{}); err == nil {
		t.Error("a range from no finite values")
	}
}

func TestNewHistogramBins(t *testing.T) {
	if h := newHist(t, 0); h.Bins() != DefaultBins {
		t.Errorf("default bins %d", h.Bins())
	}
	for _, n := range []int{-1, 1, MinBins - 1, MaxBins + 1} {
		if _, err := NewHistogram(n); err == nil {
			t.Errorf("NewHistogram(%d) accepted", n)
		}
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	v := randomStream(rng, 4096)
	h := newHist(t, 2048)
	// Growth included: each run sees a wider value.
	wide := float32(1)
	allocs := testing.AllocsPerRun(50, func() {
		wide *= 3
		v[0] = wide
		h.Observe(v)
	})
	if allocs != 0 {
		t.Errorf("Observe allocates %v times per call", allocs)
	}
}

func BenchmarkObserve(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	v := make([]float32, 1<<16)
	for i := range v {
		x := rng.NormFloat64()
		if x < 0 && i%2 == 0 {
			x = 0 // ReLU-like: many exact zeros
		}
		v[i] = float32(x)
	}
	h, _ := NewHistogram(DefaultBins)
	h.Observe(v)
	b.SetBytes(int64(4 * len(v)))
	b.ResetTimer()
	for b.Loop() {
		h.Observe(v)
	}
	b.ReportMetric(float64(b.N)*float64(len(v))/b.Elapsed().Seconds(), "values/s")
}
