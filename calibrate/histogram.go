package calibrate

import (
	"fmt"
	"math"
	"math/bits"
)

// Histogram bounds: DefaultBins is PyTorch HistogramObserver's; MinBins keeps
// the growth argument valid (merging two bins per doubling needs room) and
// MaxBins keeps a ranges.json of a few layers within megabytes.
const (
	DefaultBins = 2048
	MinBins     = 8
	MaxBins     = 1 << 16
)

// The bin width is always 2^exp with exp in [minExp, maxExp]. 2^-149 is the
// smallest float32 denormal: finer bins could not separate float32 values,
// and every bin edge start*2^exp (|start| <= 2*MaxBins) stays exactly
// representable in float64. Float32 values are below 2^128, so a window of
// MinBins bins that must also hold 0 never needs a width above 2^127.
const (
	minExp = -149
	maxExp = 127
)

// Histogram counts float32 values in a fixed number of equal-width bins that
// widen as the data demands, in bounded memory.
//
// The grid is anchored at 0: bin i (an integer, possibly negative) holds the
// values x with floor(x / 2^exp) == i, and the histogram keeps the window of
// Bins() consecutive bins starting at index start. Widening doubles the width
// (exp++) as many times as needed, which maps old bin i exactly onto new bin
// floor(i/2): no count is ever split between bins. The window always covers
// 0 as well as the data, since a quantizer's range must contain 0 anyway.
//
// The state is a function of the multiset of finite values alone, not of the
// order they came in: exp is the smallest exponent (>= minExp) whose bins can
// hold [min(0,min), max(0,max)] in the window, start is the bin of
// min(0,min), and every count is the number of values in its bin. Growth only
// ever needs to coarsen, since a larger value set never fits a finer grid, so
// observing A then B, observing them interleaved, and merging Histogram(A)
// with Histogram(B) all give identical histograms.
//
// Values exactly 0 are also counted apart (they stay in their bin too).
// NaN and ±Inf are counted apart and kept out of the bins, min and max.
// Make one with NewHistogram (the zero value is not usable). A Histogram is
// not safe for concurrent use.
type Histogram struct {
	counts  []uint64
	scratch []uint64 // regrid's destination, kept so growth never allocates

	exp   int
	start int64
	// inv is 2^-exp; loIdx and hiIdx are start and start+Bins() as float64:
	// the fast path tests x*inv against them before any integer conversion.
	inv, loIdx, hiIdx float64

	count    uint64  // finite values
	zeros    uint64  // values exactly ±0, also counted in their bin
	min, max float32 // +Inf and -Inf while count == 0
	nan      uint64
	posInf   uint64
	negInf   uint64
}

// NewHistogram returns an empty histogram of the given number of bins
// (0 means DefaultBins).
func NewHistogram(bins int) (*Histogram, error) {
	if bins == 0 {
		bins = DefaultBins
	}
	if bins < MinBins || bins > MaxBins {
		return nil, fmt.Errorf("histogram of %d bins: want %d..%d", bins, MinBins, MaxBins)
	}
	h := &Histogram{
		counts:  make([]uint64, bins),
		scratch: make([]uint64, bins),
		min:     float32(math.Inf(1)),
		max:     float32(math.Inf(-1)),
	}
	h.setGrid(minExp, 0)
	return h, nil
}

func (h *Histogram) setGrid(exp int, start int64) {
	h.exp, h.start = exp, start
	h.inv = math.Ldexp(1, -exp)
	h.loIdx = float64(start)
	h.hiIdx = float64(start + int64(len(h.counts)))
}

// Observe adds the values of v. It does not allocate.
func (h *Histogram) Observe(v []float32) {
	counts, inv, lo, hi, start := h.counts, h.inv, h.loIdx, h.hiIdx, h.start
	mn, mx := h.min, h.max
	nonFinite, zeros := 0, 0
	for _, x := range v {
		// x*2^-exp is exact in float64 for every float32 x and exponent in
		// range, so the bin is exactly floor(t). NaN fails both comparisons.
		t := float64(x) * inv
		if t >= lo && t < hi {
			// math.Floor is an instruction on amd64 and arm64; |t| is at most
			// 2*MaxBins here, so the conversion is exact.
			counts[int64(math.Floor(t))-start]++
			// Branch-free zero count (ReLU outputs are zero about half the
			// time, at random): the sign-less bits are 0 only for ±0.
			zeros += int((uint64(math.Float32bits(x)<<1) - 1) >> 63)
			if x < mn {
				mn = x
			}
			if x > mx {
				mx = x
			}
			continue
		}
		h.min, h.max = mn, mx
		if !h.addSlow(x) {
			nonFinite++
		} else if x == 0 {
			zeros++
		}
		counts, inv, lo, hi, start = h.counts, h.inv, h.loIdx, h.hiIdx, h.start
		mn, mx = h.min, h.max
	}
	h.min, h.max = mn, mx
	h.count += uint64(len(v) - nonFinite)
	h.zeros += uint64(zeros)
}

// addSlow handles a value outside the window: counts it if it is not finite,
// otherwise widens or shifts the window to take it. It reports whether x was
// finite. It leaves h.count to the caller.
func (h *Histogram) addSlow(x float32) bool {
	f := float64(x)
	switch {
	case f != f:
		h.nan++
		return false
	case math.IsInf(f, 1):
		h.posInf++
		return false
	case math.IsInf(f, -1):
		h.negInf++
		return false
	}
	h.min = min(h.min, x)
	h.max = max(h.max, x)
	a, b := h.extent()
	exp := fitExp(len(h.counts), h.exp, a, b)
	h.regrid(exp, floorIdx(a, exp))
	h.counts[floorIdx(f, h.exp)-h.start]++
	return true
}

// extent is the interval the window must cover: the data and 0.
func (h *Histogram) extent() (a, b float64) {
	a, b = 0, 0
	if h.min <= h.max { // false only before the first finite value
		a = min(0, float64(h.min))
		b = max(0, float64(h.max))
	}
	return a, b
}

// floorIdx is the index of x's bin at width 2^exp (exact: scaling by a power
// of two is exact, and the callers keep |result| within the window).
func floorIdx(x float64, exp int) int64 {
	return int64(math.Floor(math.Ldexp(x, -exp)))
}

// fits reports whether [a, b] spans at most n bins of width 2^exp.
func fits(n, exp int, a, b float64) bool {
	ia := math.Floor(math.Ldexp(a, -exp))
	ib := math.Floor(math.Ldexp(b, -exp))
	return ib-ia+1 <= float64(n)
}

// fitExp is the smallest exponent >= exp at which [a, b] fits n bins. Since a
// set that fits at some width fits at every wider one (doubling halves the
// span, rounded up by at most one bin), this is also the smallest overall
// when exp is at most that: what makes the grid canonical.
func fitExp(n, exp int, a, b float64) int {
	if d := b - a; d > 0 {
		// n bins of 2^e can only cover a span below n*2^e: skip the widths
		// that are certainly too fine (math.Ilogb is floor(log2)).
		if e := math.Ilogb(d/float64(n)) - 1; e > exp {
			exp = e
		}
	}
	for exp < maxExp && !fits(n, exp, a, b) {
		exp++
	}
	return exp
}

// regrid moves the counts to width 2^exp (exp >= h.exp) and window start.
// The caller guarantees every non-empty bin lands in the new window.
func (h *Histogram) regrid(exp int, start int64) {
	if exp == h.exp && start == h.start {
		return
	}
	d := uint(exp - h.exp)
	dst := h.scratch
	clear(dst)
	for j, c := range h.counts {
		if c != 0 {
			// Arithmetic shift is floor division by 2^d, negatives included.
			dst[((h.start+int64(j))>>d)-start] += c
		}
	}
	h.counts, h.scratch = dst, h.counts
	h.setGrid(exp, start)
}

// Merge adds o's values to h, giving exactly the histogram that observing
// both value streams would (o is not changed). Both must have the same
// number of bins.
func (h *Histogram) Merge(o *Histogram) error {
	if len(o.counts) != len(h.counts) {
		return fmt.Errorf("cannot merge a histogram of %d bins into one of %d (the grids would not line up)", len(o.counts), len(h.counts))
	}
	count, c1 := bits.Add64(h.count, o.count, 0)
	zeros := h.zeros + o.zeros // <= count: cannot overflow if count did not
	nan, c2 := bits.Add64(h.nan, o.nan, 0)
	posInf, c3 := bits.Add64(h.posInf, o.posInf, 0)
	negInf, c4 := bits.Add64(h.negInf, o.negInf, 0)
	if c1|c2|c3|c4 != 0 {
		return fmt.Errorf("merged histogram would count more than 2^64 values")
	}
	if o.count > 0 {
		mn, mx := min(h.min, o.min), max(h.max, o.max)
		a, b := min(0, float64(mn)), max(0, float64(mx))
		exp := fitExp(len(h.counts), max(h.exp, o.exp), a, b)
		start := floorIdx(a, exp)
		// Bins can overflow only if the totals did, checked above.
		h.regrid(exp, start)
		d := uint(exp - o.exp)
		for j, c := range o.counts {
			if c != 0 {
				h.counts[((o.start+int64(j))>>d)-start] += c
			}
		}
		h.min, h.max = mn, mx
	}
	h.count, h.zeros, h.nan, h.posInf, h.negInf = count, zeros, nan, posInf, negInf
	return nil
}

// Clone returns an independent copy.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	c.scratch = make([]uint64, len(h.scratch))
	return &c
}

// Bins is the number of bins.
func (h *Histogram) Bins() int { return len(h.counts) }

// Counts returns a copy of the bin counts; bin j holds [Lo()+j*Width(), Lo()+(j+1)*Width()).
func (h *Histogram) Counts() []uint64 { return append([]uint64(nil), h.counts...) }

// Width is the bin width, a power of two.
func (h *Histogram) Width() float64 { return math.Ldexp(1, h.exp) }

// Lo is the lower edge of the first bin (<= 0).
func (h *Histogram) Lo() float64 { return math.Ldexp(float64(h.start), h.exp) }

// Hi is the upper edge of the last bin (> 0).
func (h *Histogram) Hi() float64 { return math.Ldexp(float64(h.start+int64(len(h.counts))), h.exp) }

// Count is the number of finite values observed.
func (h *Histogram) Count() uint64 { return h.count }

// Min is the smallest finite value observed (0 when there was none).
func (h *Histogram) Min() float32 {
	if h.count == 0 {
		return 0
	}
	return h.min + 0 // +0 turns -0 into 0
}

// Max is the largest finite value observed (0 when there was none).
func (h *Histogram) Max() float32 {
	if h.count == 0 {
		return 0
	}
	return h.max + 0
}

// Zeros is the number of values exactly 0 (or -0) observed: a quantizer
// represents them exactly, so the range methods treat them apart from the
// rest of their bin.
func (h *Histogram) Zeros() uint64 { return h.zeros }

// NaN is the number of NaN values observed.
func (h *Histogram) NaN() uint64 { return h.nan }

// PosInf is the number of +Inf values observed.
func (h *Histogram) PosInf() uint64 { return h.posInf }

// NegInf is the number of -Inf values observed.
func (h *Histogram) NegInf() uint64 { return h.negInf }

// NonFinite is NaN() + PosInf() + NegInf().
func (h *Histogram) NonFinite() uint64 { return h.nan + h.posInf + h.negInf }

// equal reports whether two histograms are identical in every observable
// way (the grid, every count, min, max and the non-finite counts).
func (h *Histogram) equal(o *Histogram) bool {
	if h.exp != o.exp || h.start != o.start || len(h.counts) != len(o.counts) ||
		h.count != o.count || h.zeros != o.zeros || h.nan != o.nan || h.posInf != o.posInf || h.negInf != o.negInf {
		return false
	}
	if h.count > 0 && (h.Min() != o.Min() || h.Max() != o.Max()) {
		return false
	}
	for i := range h.counts {
		if h.counts[i] != o.counts[i] {
			return false
		}
	}
	return true
}
