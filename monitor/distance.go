package monitor

import (
	"errors"
	"math"

	"github.com/rqtools/rq/calibrate"
)

// DriftBins is the most bins the drift distance compares on.
const DriftBins = 64

// HistDistance is the total-variation distance (½ Σ|p−q|, in [0, 1])
// between two histograms' normalized bin counts, after re-binning both onto
// the coarsest common grid spanning both with at most maxBins bins.
//
// calibrate histograms have power-of-two widths with edges at multiples of
// the width, so every bin of the finer one lies inside exactly one bin of a
// grid of a larger power-of-two width: the re-binning moves no count across
// an edge. 0 means the same shape at that resolution; 1 disjoint supports.
// Two empty histograms are at distance 0, one empty and one not at 1.
func HistDistance(a, b *calibrate.Histogram, maxBins int) (float64, error) {
	if a == nil || b == nil {
		return 0, errors.New("histogram distance: missing histogram")
	}
	if maxBins < 1 {
		return 0, errors.New("histogram distance: want at least 1 bin")
	}
	na, nb := a.Count(), b.Count()
	switch {
	case na == 0 && nb == 0:
		return 0, nil
	case na == 0 || nb == 0:
		return 1, nil
	}
	w := math.Max(a.Width(), b.Width())
	lo, hi := math.Min(a.Lo(), b.Lo()), math.Max(a.Hi(), b.Hi())
	// Widths are powers of two, lo <= 0 < hi: doubling always ends.
	for math.Ceil(hi/w)-math.Floor(lo/w) > float64(maxBins) {
		w *= 2
	}
	start := math.Floor(lo / w)
	n := int(math.Ceil(hi/w) - start)
	p, q := make([]float64, n), make([]float64, n)
	add := func(h *calibrate.Histogram, dst []float64) {
		total := float64(h.Count())
		hl, hw := h.Lo(), h.Width()
		for j, c := range h.Counts() {
			if c == 0 {
				continue
			}
			k := int(math.Floor((hl+float64(j)*hw)/w) - start)
			k = min(max(k, 0), n-1) // cannot trigger; keeps a bad histogram from panicking
			dst[k] += float64(c) / total
		}
	}
	add(a, p)
	add(b, q)
	var d float64
	for i := range p {
		d += math.Abs(p[i] - q[i])
	}
	return math.Min(d/2, 1), nil
}
