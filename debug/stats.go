package debug

import (
	"math"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/report"
)

// Error is how far a tensor is from its fp32 reference, over every value
// seen.
type Error struct {
	// SQNR is 10·log10(Σref² / Σ(q−ref)²) in dB: +Inf when q equals ref
	// exactly, −Inf when q holds a non-finite value where ref is finite.
	SQNR report.Float `json:"sqnr_db"`
	// RelL2 is ‖q−ref‖ / ‖ref‖.
	RelL2 report.Float `json:"rel_l2"`
	// MaxAbs is the largest |q−ref|, at row MaxRow (in the data file's
	// row numbering) and column MaxCol of the tensor.
	MaxAbs report.Float `json:"max_abs"`
	MaxRow int64        `json:"max_row"`
	MaxCol int          `json:"max_col"`
	// Cosine is ⟨q, ref⟩ / (‖q‖‖ref‖): 1 when both are all zero, NaN
	// (null) when only one is.
	Cosine report.Float `json:"cosine"`
	// Values compared, and how many of them were non-finite in q (or ref).
	Values    int64 `json:"values"`
	NonFinite int64 `json:"non_finite"`
}

// errAcc accumulates an Error in streaming sums (float64, so rounding in
// the sums stays far below the errors measured).
type errAcc struct {
	n, nonFinite        int64
	ref2, err2, q2, dot float64
	maxAbs              float64
	maxRow              int64
	maxCol              int
	seen                bool
}

// add compares q with ref, both rows x cols with their own strides; row
// numbers are reported from row0.
func (a *errAcc) add(q, ref model.Mat, row0 int64) {
	for i := 0; i < ref.Rows; i++ {
		qr, rr := q.Row(i), ref.Row(i)
		for j, r := range rr {
			x, y := float64(qr[j]), float64(r)
			a.n++
			if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
				if x != y { // identical infinities are no error
					a.nonFinite++
				}
				continue
			}
			d := x - y
			a.ref2 += y * y
			a.q2 += x * x
			a.dot += x * y
			a.err2 += d * d
			if ad := math.Abs(d); ad > a.maxAbs || !a.seen {
				a.maxAbs, a.maxRow, a.maxCol, a.seen = ad, row0+int64(i), j, true
			}
		}
	}
}

func (a *errAcc) result() Error {
	e := Error{Values: a.n, NonFinite: a.nonFinite, MaxAbs: report.Float(a.maxAbs), MaxRow: a.maxRow, MaxCol: a.maxCol}
	e.SQNR = report.Float(SQNR(a.ref2, a.err2))
	e.RelL2 = report.Float(math.Sqrt(a.err2 / a.ref2))
	switch {
	case a.err2 == 0:
		e.RelL2 = 0
	case a.ref2 == 0:
		e.RelL2 = report.Float(math.Inf(1))
	}
	switch {
	case a.q2 == 0 && a.ref2 == 0:
		e.Cosine = 1
	case a.q2 == 0 || a.ref2 == 0:
		e.Cosine = report.Float(math.NaN())
	default:
		e.Cosine = report.Float(a.dot / math.Sqrt(a.q2*a.ref2))
	}
	if a.nonFinite > 0 {
		e.SQNR, e.RelL2, e.MaxAbs = report.Float(math.Inf(-1)), report.Float(math.Inf(1)), report.Float(math.Inf(1))
		e.Cosine = report.Float(math.NaN())
	}
	return e
}

// SQNR is 10·log10(signal/noise) in dB from the sums of squares of the
// reference and of the error: +Inf without noise (even with no signal),
// −Inf with noise and no signal.
func SQNR(signal, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(signal/noise)
}

// Histogram is a 64-bin histogram over [Lo, Hi).
type Histogram struct {
	Lo     report.Float `json:"lo"`
	Hi     report.Float `json:"hi"`
	Counts []uint64     `json:"counts"`
}

// HistBins is the number of bins of the worst tensor's histograms.
const HistBins = 64

// accBins is the resolution the streaming histograms keep before they are
// folded into HistBins shared bins.
const accBins = 512

// sharedHists folds two streaming histograms into HistBins bins over one
// range covering both, so they can be drawn over each other. A source bin
// goes whole to the target bin holding its centre.
func sharedHists(a, b *calibrate.Histogram) (Histogram, Histogram) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, h := range []*calibrate.Histogram{a, b} {
		if h.Count() > 0 {
			lo, hi = math.Min(lo, float64(h.Min())), math.Max(hi, float64(h.Max()))
		}
	}
	if lo > hi { // both empty
		lo, hi = 0, 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	fold := func(h *calibrate.Histogram) Histogram {
		out := Histogram{Lo: report.Float(lo), Hi: report.Float(hi), Counts: make([]uint64, HistBins)}
		w := (hi - lo) / HistBins
		for i, c := range h.Counts() {
			if c == 0 {
				continue
			}
			centre := h.Lo() + (float64(i)+0.5)*h.Width()
			k := int(math.Floor((centre - lo) / w))
			out.Counts[min(max(k, 0), HistBins-1)] += c
		}
		return out
	}
	return fold(a), fold(b)
}

// medianOf is the median of a histogram's finite values, to within a bin.
func medianOf(h *calibrate.Histogram) float64 {
	if h.Count() == 0 {
		return math.NaN()
	}
	half := (h.Count() + 1) / 2
	var cum uint64
	for i, c := range h.Counts() {
		cum += c
		if cum >= half {
			return math.Min(math.Max(h.Lo()+(float64(i)+0.5)*h.Width(), float64(h.Min())), float64(h.Max()))
		}
	}
	return float64(h.Max())
}
