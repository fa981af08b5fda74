package metrics

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Accumulator streams predictions and labels in constant memory; the zero
// value is ready to use. It is not safe for concurrent use.
//
// Everything it keeps is order-free, so accumulators over any split of the
// examples Merge into exactly (bit for bit) what one accumulator over all of
// them gives:
//   - sums (log loss, predictions) are fixed point, 2^-58 per unit, in 128
//     bits: each example's float64 term is rounded once to a multiple of
//     2^-58 (an error under 2e-18 per example) and the sum is then exact;
//   - AUC comes from a histogram of predictions over their float32 bit
//     patterns, counting positives and negatives per bin: exact (one bin per
//     float32 value) until 64 MiB of bins are in use, then coarsened a bit
//     at a time (see scoreHist). Predictions in one bin are treated as tied,
//     so a coarsened AUC is off only through pairs of a positive and a
//     negative in one bin; Result reports the bound that follows,
//     0.5 * sum over bins of pos*neg / (P*N), and 0 when the AUC is exact.
//     About 18 mantissa bits survive any number of predictions spread over
//     (0.001, 1), for a bound near 1e-6.
type Accumulator struct {
	n       int64
	pos     int64
	correct int64
	loss    fixed128 // sum of per-example log loss
	pred    fixed128 // sum of predictions
	scores  scoreHist
}

// Add records a batch of predictions p (probabilities, in [0, 1]) with
// labels y (0 or 1); a NaN or out-of-range prediction is an error and adds
// nothing.
func (a *Accumulator) Add(p []float32, y []float32) error {
	if len(p) != len(y) {
		return fmt.Errorf("metrics: %d predictions for %d labels", len(p), len(y))
	}
	for i, pi := range p {
		if !(pi >= 0 && pi <= 1) {
			return fmt.Errorf("metrics: prediction %d is %v, not a probability in [0, 1]", a.n+int64(i), pi)
		}
	}
	for i, pi := range p {
		label := y[i] >= 0.5
		q := min(max(float64(pi), Clip), 1-Clip)
		var l float64
		if label {
			l = -math.Log(q)
			a.pos++
		} else {
			l = -math.Log(1 - q)
		}
		a.loss.add(l)
		a.pred.add(float64(pi))
		if (pi >= 0.5) == label {
			a.correct++
		}
		a.scores.add(pi, label)
	}
	a.n += int64(len(p))
	return nil
}

// Merge folds b's examples into a: the result is the same as if a had been
// given all of b's examples too, in any order.
func (a *Accumulator) Merge(b *Accumulator) {
	a.n += b.n
	a.pos += b.pos
	a.correct += b.correct
	a.loss.addFixed(b.loss)
	a.pred.addFixed(b.pred)
	a.scores.merge(&b.scores)
}

// Count is the number of examples added.
func (a *Accumulator) Count() int64 { return a.n }

// ErrNoExamples is returned by Result when nothing was added.
var ErrNoExamples = errors.New("metrics: no examples")

// Result computes the figures. NE is undefined (NaN) when every label is the
// same, and AUC is NaN then too; both are reported as such rather than guessed.
func (a *Accumulator) Result() (Result, error) {
	if a.n == 0 {
		return Result{}, ErrNoExamples
	}
	n := float64(a.n)
	ctr := float64(a.pos) / n
	ll := a.loss.float() / n
	auc, bound := a.scores.auc()
	r := Result{
		Examples:      a.n,
		CTR:           ctr,
		LogLoss:       ll,
		NE:            ll / Entropy(ctr),
		AUC:           auc,
		AUCErrorBound: bound,
		Calibration:   (a.pred.float() / n) / ctr,
		Accuracy:      float64(a.correct) / n,
	}
	if a.pos == 0 {
		r.Calibration = math.Inf(1)
	}
	return r, nil
}

// fixedScale is the fixed-point unit of the sums: 2^58 per 1.0. A log loss
// term is at most -log(1e-7) ≈ 16.1 < 2^5, so a term fits in 63 bits and
// 128 bits hold the sum of 2^65 terms.
const fixedScale = 1 << 58

// fixed128 is an unsigned 128-bit fixed-point sum, hi:lo.
type fixed128 struct{ hi, lo uint64 }

// add adds x (0 <= x < 32: a log loss term or a probability), rounded
// to the nearest 2^-58.
func (f *fixed128) add(x float64) {
	f.addFixed(fixed128{lo: uint64(math.RoundToEven(x * fixedScale))})
}

func (f *fixed128) addFixed(g fixed128) {
	var c uint64
	f.lo, c = bits.Add64(f.lo, g.lo, 0)
	f.hi += g.hi + c
}

func (f fixed128) float() float64 {
	return (float64(f.hi)*0x1p64 + float64(f.lo)) / fixedScale
}

// The score histogram. A prediction's key is its float32 bit pattern mapped
// to an unsigned integer that sorts like the floats (sign flipped for
// positives, all bits flipped for negatives), then shifted right by the
// histogram's drop bits. Bins live in pages of pageSize, allocated when first
// used; when more than the page limit are in use, every key loses one more
// bit (adjacent bins merge, halving the resolution).
//
// That rule makes the final resolution a function of the set of examples
// alone, whatever their order or split: pages in use only grow as examples
// arrive and only shrink as bits drop, so a histogram ends at the fewest drop
// bits whose page count is within the limit. Merge coarsens both sides to the
// larger drop, adds, and drops more bits while over the limit, which lands on
// that same resolution: merged histograms equal one-pass histograms.
const (
	pageBits = 6 // bins per page: 64 (1 KiB)
	pageSize = 1 << pageBits
	// maxScorePages bounds the pages in use: 64 MiB of bins. With
	// predictions spread over (0.001, 1), that keeps about 18 of float32's
	// 23 mantissa bits (bins 2^-18 of a value wide) however many rows come.
	maxScorePages = 1 << 16
	// maxDropBits is where any histogram fits: 2^22 keys, 2^16 pages.
	maxDropBits = 10
)

// ScoreKey is the histogram bin of prediction p (not NaN) at full float32
// resolution: keys sort like the predictions; -0 and +0 share a key.
func ScoreKey(p float32) uint32 {
	if p == 0 {
		p = 0 // -0 to +0: they are equal, so they tie
	}
	b := math.Float32bits(p)
	if b&(1<<31) != 0 {
		return ^b
	}
	return b | 1<<31
}

type scoreBin struct{ pos, neg uint64 }

type scorePage [pageSize]scoreBin

type scoreHist struct {
	drop  uint8                 // key bits dropped: bins are 2^drop float32 values wide
	pages map[uint32]*scorePage // by key >> pageBits
	limit int                   // pages allowed (0: maxScorePages); tests lower it
	// last caches the most recent page: predictions cluster.
	lastID   uint32
	lastPage *scorePage
}

func (h *scoreHist) maxPages() int {
	if h.limit > 0 {
		return h.limit
	}
	return maxScorePages
}

// bin returns the bin of a key (already shifted by h.drop), allocating its
// page. It may coarsen the histogram first, so the caller passes the
// unshifted key.
func (h *scoreHist) bin(full uint32) *scoreBin {
	k := full >> h.drop
	id := k >> pageBits
	if h.lastPage != nil && h.lastID == id {
		return &h.lastPage[k&(pageSize-1)]
	}
	if h.pages == nil {
		h.pages = map[uint32]*scorePage{}
	}
	pg := h.pages[id]
	if pg == nil {
		if len(h.pages) >= h.maxPages() && h.drop < maxDropBits {
			h.coarsen()
			return h.bin(full)
		}
		pg = new(scorePage)
		h.pages[id] = pg
	}
	h.lastID, h.lastPage = id, pg
	return &pg[k&(pageSize-1)]
}

// coarsen drops one more key bit, merging pairs of adjacent bins.
func (h *scoreHist) coarsen() {
	old := h.pages
	h.pages = make(map[uint32]*scorePage, len(old)/2+1)
	h.lastPage = nil
	h.drop++
	for id, pg := range old {
		for i, b := range pg {
			if b.pos == 0 && b.neg == 0 {
				continue
			}
			k := (id<<pageBits | uint32(i)) >> 1
			dst := h.pages[k>>pageBits]
			if dst == nil {
				dst = new(scorePage)
				h.pages[k>>pageBits] = dst
			}
			dst[k&(pageSize-1)].pos += b.pos
			dst[k&(pageSize-1)].neg += b.neg
		}
	}
}

func (h *scoreHist) add(p float32, positive bool) {
	b := h.bin(ScoreKey(p))
	if positive {
		b.pos++
	} else {
		b.neg++
	}
}

// addBin adds counts to the bin of key k, given at drop bits drop <= h.drop.
func (h *scoreHist) addBin(k uint32, drop uint8, pos, neg uint64) {
	b := h.bin(k << drop)
	b.pos += pos
	b.neg += neg
}

func (h *scoreHist) merge(o *scoreHist) {
	for h.drop < o.drop {
		h.coarsen()
	}
	for _, id := range o.ids() {
		for i, b := range o.pages[id] {
			if b.pos != 0 || b.neg != 0 {
				h.addBin(id<<pageBits|uint32(i), o.drop, b.pos, b.neg)
			}
		}
	}
}

// ids returns the occupied page ids in increasing order.
func (h *scoreHist) ids() []uint32 {
	ids := make([]uint32, 0, len(h.pages))
	for id := range h.pages {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// auc is the Mann-Whitney AUC with each bin's predictions tied, and the bound
// on its distance from the exact AUC. The sums run in key order, so equal
// histograms give equal bits.
func (h *scoreHist) auc() (auc, bound float64) {
	var pos, neg float64
	var u, ties float64 // sum over bins of pos*(neg below + neg/2); of pos*neg
	for _, id := range h.ids() {
		for _, b := range h.pages[id] {
			if b.pos == 0 && b.neg == 0 {
				continue
			}
			p, q := float64(b.pos), float64(b.neg)
			u += p * (neg + q/2)
			if h.drop > 0 {
				ties += p * q // at full resolution a bin's values are equal: true ties
			}
			pos += p
			neg += q
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN(), math.NaN()
	}
	return u / (pos * neg), ties / 2 / (pos * neg)
}

// ScoreBin is one occupied bin of an Accumulator's prediction histogram.
type ScoreBin struct {
	Key       uint32 // ScoreKey of the predictions in the bin >> DropBits
	Positives uint64
	Negatives uint64
}

// DropBits is how many low bits of ScoreKey the prediction histogram has
// dropped to stay within its memory limit (0: full float32 resolution).
func (a *Accumulator) DropBits() int { return int(a.scores.drop) }

// Bins lists the occupied bins of the prediction histogram in key order.
func (a *Accumulator) Bins() []ScoreBin {
	var out []ScoreBin
	for _, id := range a.scores.ids() {
		for i, b := range a.scores.pages[id] {
			if b.pos != 0 || b.neg != 0 {
				out = append(out, ScoreBin{Key: id<<pageBits | uint32(i), Positives: b.pos, Negatives: b.neg})
			}
		}
	}
	return out
}
