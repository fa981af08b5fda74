package search

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/rqtools/rq/metrics"
)

// Interval is a point estimate with its bootstrap confidence interval.
type Interval struct {
	Point float64 `json:"point"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
}

// Stats compare a plan's predictions with the baseline's on the same rows.
type Stats struct {
	// DeltaNE is 100*(NE_plan - NE_base)/NE_base, in percent (higher is worse).
	DeltaNE Interval `json:"delta_ne_pct"`
	// DeltaAUC is AUC_plan - AUC_base (negative is a drop).
	DeltaAUC Interval `json:"delta_auc"`
}

// Verdict is a plan's standing against the budget.
type Verdict string

const (
	Pass Verdict = "pass"
	// Inconclusive: the point estimate meets the budget but the interval's
	// upper end does not: too few rows to tell.
	Inconclusive Verdict = "inconclusive"
	Fail         Verdict = "fail"
)

// Budget is the accuracy budget. MaxAUCDrop NaN means no AUC budget.
type Budget struct {
	MaxNEDelta float64 // largest ΔNE%, e.g. 0.05
	MaxAUCDrop float64 // largest AUC drop, e.g. 0.0005; NaN: none
}

func (b Budget) hasAUC() bool { return !math.IsNaN(b.MaxAUCDrop) }

// Judge gives s's verdict. NaN figures never pass: a budget must not
// pass what it cannot measure.
func (b Budget) Judge(s Stats) Verdict {
	upperOK := s.DeltaNE.Hi <= b.MaxNEDelta && (!b.hasAUC() || -s.DeltaAUC.Lo <= b.MaxAUCDrop)
	if upperOK {
		return Pass
	}
	pointOK := s.DeltaNE.Point <= b.MaxNEDelta && (!b.hasAUC() || -s.DeltaAUC.Point <= b.MaxAUCDrop)
	if pointOK {
		return Inconclusive
	}
	return Fail
}

// Default statistics settings.
const (
	DefaultConfidence = 0.95
	DefaultResamples  = 1000
	DefaultSeed       = 1
)

// bootstrap holds the baseline's per-row figures and its statistic on each
// resample, so a plan costs one pass per resample. Resample r is drawn by
// its own PCG(seed, r) stream: the same rows for every plan (paired), and
// the same results on every run.
type bootstrap struct {
	labels    []bool
	pos, neg  int
	resamples int
	seed      uint64
	alpha     float64 // (1 - confidence) / 2

	baseLoss  []float64
	baseOrder []int32 // row order by baseline prediction
	baseSum   float64
	baseAUC   float64
	rsSum     []float64 // baseline loss sum on each resample
	rsAUC     []float64
}

func rowLoss(p float32, y bool) float64 {
	q := min(max(float64(p), metrics.Clip), 1-metrics.Clip)
	if y {
		return -math.Log(q)
	}
	return -math.Log(1 - q)
}

func newBootstrap(labels []float32, base []float32, resamples int, confidence float64, seed uint64) (*bootstrap, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("no rows to judge plans on")
	}
	if len(base) != len(labels) {
		return nil, fmt.Errorf("baseline gave %d predictions for %d rows", len(base), len(labels))
	}
	if !(confidence > 0 && confidence < 1) {
		return nil, fmt.Errorf("confidence %g: want a level between 0 and 1 (e.g. 0.95)", confidence)
	}
	if resamples < 10 {
		return nil, fmt.Errorf("%d bootstrap resamples: want at least 10", resamples)
	}
	b := &bootstrap{resamples: resamples, seed: seed, alpha: (1 - confidence) / 2, labels: make([]bool, len(labels))}
	for i, y := range labels {
		b.labels[i] = y >= 0.5
		if b.labels[i] {
			b.pos++
		} else {
			b.neg++
		}
	}
	if b.pos == 0 || b.neg == 0 {
		return nil, fmt.Errorf("the %d rows all have the same label: NE and AUC are undefined, so no plan can be judged (select more rows)", len(labels))
	}
	b.baseLoss, b.baseOrder, b.baseSum, b.baseAUC = b.prepare(base)
	b.rsSum = make([]float64, resamples)
	b.rsAUC = make([]float64, resamples)
	w := make([]int32, len(labels))
	for r := range resamples {
		b.draw(r, w)
		b.rsSum[r] = weightedSum(b.baseLoss, w)
		b.rsAUC[r] = b.weightedAUC(b.baseOrder, base, w)
	}
	return b, nil
}

// prepare computes per-row losses, the order by prediction, and the
// full-sample loss sum and AUC.
func (b *bootstrap) prepare(p []float32) ([]float64, []int32, float64, float64) {
	loss := make([]float64, len(p))
	var sum float64
	for i, v := range p {
		loss[i] = rowLoss(v, b.labels[i])
		sum += loss[i]
	}
	ord := make([]int32, len(p))
	for i := range ord {
		ord[i] = int32(i)
	}
	slices.SortStableFunc(ord, func(x, y int32) int {
		switch {
		case p[x] < p[y]:
			return -1
		case p[x] > p[y]:
			return 1
		}
		return 0
	})
	return loss, ord, sum, metrics.AUC(p, b.labels)
}

// draw fills w with resample r's multiplicities (n draws with replacement).
func (b *bootstrap) draw(r int, w []int32) {
	clear(w)
	rng := rand.New(rand.NewPCG(b.seed, uint64(r)))
	n := uint64(len(w))
	for range w {
		w[rng.Uint64N(n)]++
	}
}

func weightedSum(x []float64, w []int32) float64 {
	var s float64
	for i, v := range x {
		s += v * float64(w[i])
	}
	return s
}

// weightedAUC is the AUC with row multiplicities w, tied predictions
// counting half, in one pass over the rows in prediction order.
func (b *bootstrap) weightedAUC(ord []int32, p []float32, w []int32) float64 {
	var pos, neg, negBelow, acc float64
	for i := 0; i < len(ord); {
		j := i
		var gp, gn float64
		for j < len(ord) && p[ord[j]] == p[ord[i]] {
			k := ord[j]
			if b.labels[k] {
				gp += float64(w[k])
			} else {
				gn += float64(w[k])
			}
			j++
		}
		acc += gp * (negBelow + gn/2)
		negBelow += gn
		pos += gp
		neg += gn
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return acc / (pos * neg)
}

// compare gives the paired statistics of predictions p against the baseline.
func (b *bootstrap) compare(p []float32) (Stats, error) {
	if len(p) != len(b.labels) {
		return Stats{}, fmt.Errorf("plan gave %d predictions for %d rows", len(p), len(b.labels))
	}
	for i, v := range p {
		if math.IsNaN(float64(v)) {
			return Stats{}, fmt.Errorf("plan's prediction for row %d is NaN", i)
		}
	}
	loss, ord, sum, auc := b.prepare(p)
	var s Stats
	s.DeltaNE.Point = 100 * (sum - b.baseSum) / b.baseSum
	s.DeltaAUC.Point = auc - b.baseAUC
	ne := make([]float64, 0, b.resamples)
	da := make([]float64, 0, b.resamples)
	w := make([]int32, len(p))
	for r := range b.resamples {
		b.draw(r, w)
		// NE's entropy term is the same for both (same labels): it cancels.
		if d := 100 * (weightedSum(loss, w) - b.rsSum[r]) / b.rsSum[r]; !math.IsNaN(d) {
			ne = append(ne, d)
		}
		if d := b.weightedAUC(ord, p, w) - b.rsAUC[r]; !math.IsNaN(d) {
			da = append(da, d)
		}
	}
	s.DeltaNE.Lo, s.DeltaNE.Hi = percentiles(ne, b.alpha)
	s.DeltaAUC.Lo, s.DeltaAUC.Hi = percentiles(da, b.alpha)
	return s, nil
}

// percentiles returns the alpha and 1-alpha quantiles (linear
// interpolation); NaN for no values.
func percentiles(x []float64, alpha float64) (lo, hi float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(x)
	q := func(f float64) float64 {
		pos := f * float64(len(x)-1)
		i := int(pos)
		if i >= len(x)-1 {
			return x[len(x)-1]
		}
		fr := pos - float64(i)
		return x[i] + fr*(x[i+1]-x[i])
	}
	return q(alpha), q(1 - alpha)
}
