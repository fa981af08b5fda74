package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// State is an Accumulator written out, for merging evaluations run apart
// (rq eval --shard, rq merge). Its JSON form is stable: sums are 128-bit
// fixed-point integers in hex (units of 2^-58), bins are [key, positives,
// negatives] triples in key order, keys being ScoreKey >> DropBits.
//
// A State has no file of its own: evaluate.State holds it (and the
// baseline's), and that file's digest covers it, so a hand-edited sum is
// refused there. FromState checks what can be checked without one.
type State struct {
	Examples  int64       `json:"examples"`
	Positives int64       `json:"positives"`
	Correct   int64       `json:"correct"`
	LossSum   string      `json:"logloss_sum_fixed58"`
	PredSum   string      `json:"pred_sum_fixed58"`
	DropBits  int         `json:"score_drop_bits"`
	Bins      [][3]uint64 `json:"score_bins"`
}

// State returns a's state; FromState(a.State()) is a again.
func (a *Accumulator) State() State {
	s := State{Examples: a.n, Positives: a.pos, Correct: a.correct, LossSum: a.loss.hex(), PredSum: a.pred.hex(), DropBits: a.DropBits(), Bins: [][3]uint64{}}
	for _, b := range a.Bins() {
		s.Bins = append(s.Bins, [3]uint64{uint64(b.Key), b.Positives, b.Negatives})
	}
	return s
}

// FromState rebuilds an accumulator, checking that the state is consistent
// (keys in range and increasing, bin counts adding up to the examples and
// positives); an error says what is wrong.
func FromState(s State) (*Accumulator, error) {
	a := &Accumulator{n: s.Examples, pos: s.Positives, correct: s.Correct}
	if s.Examples < 0 || s.Positives < 0 || s.Correct < 0 || s.Positives > s.Examples || s.Correct > s.Examples {
		return nil, fmt.Errorf("examples %d, positives %d, correct %d: counts must be non-negative and at most the examples", s.Examples, s.Positives, s.Correct)
	}
	var err error
	if a.loss, err = parseFixed(s.LossSum); err != nil {
		return nil, fmt.Errorf("logloss_sum_fixed58: %v", err)
	}
	if a.pred, err = parseFixed(s.PredSum); err != nil {
		return nil, fmt.Errorf("pred_sum_fixed58: %v", err)
	}
	// A log loss term is at most -log(Clip) and a prediction at most 1.
	if maxLoss := float64(s.Examples) * (-math.Log(Clip)) * 1.0000001; a.loss.float() > maxLoss+1 {
		return nil, fmt.Errorf("logloss_sum_fixed58 is %g for %d examples, more than -log(%g) each", a.loss.float(), s.Examples, Clip)
	}
	if a.pred.float() > float64(s.Examples)+1 {
		return nil, fmt.Errorf("pred_sum_fixed58 is %g for %d examples, more than 1 each", a.pred.float(), s.Examples)
	}
	if s.DropBits < 0 || s.DropBits > maxDropBits {
		return nil, fmt.Errorf("score_drop_bits is %d, want 0 to %d", s.DropBits, maxDropBits)
	}
	a.scores.drop = uint8(s.DropBits)
	maxKey := uint64(1) << (32 - s.DropBits)
	var pos, neg uint64
	for i, b := range s.Bins {
		if b[0] >= maxKey {
			return nil, fmt.Errorf("score_bins[%d]: key %d is not below %d (2^(32-score_drop_bits))", i, b[0], maxKey)
		}
		if i > 0 && b[0] <= s.Bins[i-1][0] {
			return nil, fmt.Errorf("score_bins[%d]: key %d does not follow key %d (keys must increase)", i, b[0], s.Bins[i-1][0])
		}
		if b[1] == 0 && b[2] == 0 {
			return nil, fmt.Errorf("score_bins[%d]: an empty bin", i)
		}
		if b[1] > uint64(s.Examples) || b[2] > uint64(s.Examples) {
			return nil, fmt.Errorf("score_bins[%d]: counts %d, %d exceed the %d examples", i, b[1], b[2], s.Examples)
		}
		pos += b[1]
		neg += b[2]
		if pos > uint64(s.Examples) || neg > uint64(s.Examples) {
			return nil, fmt.Errorf("score_bins: the bins hold more than the %d examples", s.Examples)
		}
		a.scores.addBin(uint32(b[0]), uint8(s.DropBits), b[1], b[2])
	}
	if pos != uint64(s.Positives) || pos+neg != uint64(s.Examples) {
		return nil, fmt.Errorf("score_bins hold %d positives of %d examples, but the state says %d of %d", pos, pos+neg, s.Positives, s.Examples)
	}
	return a, nil
}

func (f fixed128) hex() string {
	return fmt.Sprintf("0x%016x%016x", f.hi, f.lo)
}

func parseFixed(s string) (fixed128, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || len(h) != 32 {
		return fixed128{}, fmt.Errorf("%q is not 0x and 32 hex digits", s)
	}
	hi, err1 := strconv.ParseUint(h[:16], 16, 64)
	lo, err2 := strconv.ParseUint(h[16:], 16, 64)
	if err1 != nil || err2 != nil {
		return fixed128{}, fmt.Errorf("%q is not 0x and 32 hex digits", s)
	}
	return fixed128{hi: hi, lo: lo}, nil
}
