package metrics

import (
	"bytes"
	"fmt"
	"io"
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
	// Allocated once: a histogram can hold millions of bins.
	s := State{Examples: a.n, Positives: a.pos, Correct: a.correct, LossSum: a.loss.hex(), PredSum: a.pred.hex(), DropBits: a.DropBits(),
		Bins: make([][3]uint64, 0, a.scores.occupied())}
	for _, id := range a.scores.ids() {
		for i, b := range a.scores.pages[id] {
			if b.pos != 0 || b.neg != 0 {
				s.Bins = append(s.Bins, [3]uint64{uint64(id<<pageBits | uint32(i)), b.pos, b.neg})
			}
		}
	}
	return s
}

// MergeState folds the examples of state s into a: the same as
// a.Merge(FromState(s)), checked as FromState checks, without building an
// accumulator for s (its pages alone can be 64 MiB).
func (a *Accumulator) MergeState(s State) error {
	if err := s.Check(); err != nil {
		return err
	}
	loss, _ := parseFixed(s.LossSum)
	pred, _ := parseFixed(s.PredSum)
	a.n += s.Examples
	a.pos += s.Positives
	a.correct += s.Correct
	a.loss.addFixed(loss)
	a.pred.addFixed(pred)
	// As scoreHist.merge: coarsen to the state's resolution, then add its
	// bins in key order.
	for a.scores.drop < uint8(s.DropBits) {
		a.scores.coarsen()
	}
	for _, b := range s.Bins {
		a.scores.addBin(uint32(b[0]), uint8(s.DropBits), b[1], b[2])
	}
	return nil
}

// MaxBins is the most occupied bins a State can legitimately hold, because
// it is the most an Accumulator keeps: a histogram allocates a new page of
// pageSize bins only while fewer than maxScorePages pages are in use (at
// maxDropBits every key fits in maxScorePages pages), so at most 2^16 pages
// of 64 bins, 2^22 bins, are ever occupied, whatever the examples and
// however they were split and merged.
const MaxBins = maxScorePages * pageSize

// BinLimit is the most bins a state of examples examples at dropBits can
// hold: MaxBins, one per key below 2^(32-dropBits), one per example.
// Out-of-range arguments (which FromState refuses) do not lower it.
func BinLimit(examples int64, dropBits int) int {
	n := int64(MaxBins)
	if dropBits >= 0 && dropBits <= maxDropBits {
		n = min(n, int64(1)<<(32-dropBits))
	}
	if examples >= 0 {
		n = min(n, examples)
	}
	return int(n)
}

// binCheck checks bins one at a time, as they are decoded: a state that
// breaks a rule is refused at the first bin that breaks it, before the
// rest is read.
type binCheck struct {
	examples, maxKey uint64
	limit            int
	pages            int
	prev, pos, neg   uint64
	why              string // why limit is what it is, for the message
}

func newBinCheck(examples int64, dropBits int) *binCheck {
	c := &binCheck{examples: math.MaxUint64, maxKey: 1 << 32, limit: BinLimit(examples, dropBits)}
	if examples >= 0 {
		c.examples = uint64(examples)
	}
	if dropBits >= 0 && dropBits <= maxDropBits {
		c.maxKey = uint64(1) << (32 - dropBits)
	}
	c.why = fmt.Sprintf("an accumulator keeps at most %d (%d pages of %d keys)", MaxBins, maxScorePages, pageSize)
	switch {
	case c.limit == int(c.examples):
		c.why = fmt.Sprintf("one bin per example at most, and %s", c.why)
	case uint64(c.limit) == c.maxKey:
		c.why = fmt.Sprintf("one bin per key below 2^(32-score_drop_bits) at most, and %s", c.why)
	}
	return c
}

// add checks bin i, b.
func (c *binCheck) add(i int, b [3]uint64) *BinsError {
	bad := func(format string, a ...any) *BinsError {
		return &BinsError{Bin: i, Elem: -1, Msg: fmt.Sprintf(format, a...)}
	}
	if i >= c.limit {
		return c.tooMany()
	}
	if b[0] >= c.maxKey {
		return bad("key %d is not below %d (2^(32-score_drop_bits))", b[0], c.maxKey)
	}
	if i > 0 && b[0] <= c.prev {
		return bad("key %d does not follow key %d (keys must increase)", b[0], c.prev)
	}
	if b[1] == 0 && b[2] == 0 {
		return bad("an empty bin")
	}
	if b[1] > c.examples || b[2] > c.examples {
		return bad("counts %d, %d exceed the %d examples", b[1], b[2], c.examples)
	}
	// Keys increase, so a new page starts wherever the page id changes.
	if i == 0 || b[0]>>pageBits != c.prev>>pageBits {
		c.pages++
		if c.pages > maxScorePages {
			return bad("the bins span more than %d pages of %d keys, and an accumulator coarsens before it uses more", maxScorePages, pageSize)
		}
	}
	c.pos += b[1]
	c.neg += b[2]
	if c.pos > c.examples || c.neg > c.examples {
		return &BinsError{Bin: -1, Elem: -1, Msg: fmt.Sprintf("the bins hold more than the %d examples", c.examples)}
	}
	c.prev = b[0]
	return nil
}

func (c *binCheck) tooMany() *BinsError {
	return &BinsError{Bin: -1, Elem: -1, Msg: fmt.Sprintf("more than %d bins: %s", c.limit, c.why)}
}

// Check says whether s is a state an Accumulator could have written (keys
// in range and increasing, no more bins or pages than an accumulator keeps,
// bin counts adding up to the examples and positives), without building one.
func (s State) Check() error {
	if s.Examples < 0 || s.Positives < 0 || s.Correct < 0 || s.Positives > s.Examples || s.Correct > s.Examples {
		return fmt.Errorf("examples %d, positives %d, correct %d: counts must be non-negative and at most the examples", s.Examples, s.Positives, s.Correct)
	}
	loss, err := parseFixed(s.LossSum)
	if err != nil {
		return fmt.Errorf("logloss_sum_fixed58: %v", err)
	}
	pred, err := parseFixed(s.PredSum)
	if err != nil {
		return fmt.Errorf("pred_sum_fixed58: %v", err)
	}
	// A log loss term is at most -log(Clip) and a prediction at most 1.
	if maxLoss := float64(s.Examples) * (-math.Log(Clip)) * 1.0000001; loss.float() > maxLoss+1 {
		return fmt.Errorf("logloss_sum_fixed58 is %g for %d examples, more than -log(%g) each", loss.float(), s.Examples, Clip)
	}
	if pred.float() > float64(s.Examples)+1 {
		return fmt.Errorf("pred_sum_fixed58 is %g for %d examples, more than 1 each", pred.float(), s.Examples)
	}
	if s.DropBits < 0 || s.DropBits > maxDropBits {
		return fmt.Errorf("score_drop_bits is %d, want 0 to %d", s.DropBits, maxDropBits)
	}
	c := newBinCheck(s.Examples, s.DropBits)
	for i, b := range s.Bins {
		if err := c.add(i, b); err != nil {
			return err
		}
	}
	if c.pos != uint64(s.Positives) || c.pos+c.neg != uint64(s.Examples) {
		return fmt.Errorf("score_bins hold %d positives of %d examples, but the state says %d of %d", c.pos, c.pos+c.neg, s.Positives, s.Examples)
	}
	return nil
}

// FromState rebuilds an accumulator, checking that the state is consistent
// (see Check); an error says what is wrong.
func FromState(s State) (*Accumulator, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	a := &Accumulator{n: s.Examples, pos: s.Positives, correct: s.Correct}
	a.loss, _ = parseFixed(s.LossSum)
	a.pred, _ = parseFixed(s.PredSum)
	a.scores.drop = uint8(s.DropBits)
	// Check bounded the pages, so no bin coarsens the histogram: it is
	// the state's, at the state's resolution.
	for _, b := range s.Bins {
		a.scores.addBin(uint32(b[0]), uint8(s.DropBits), b[1], b[2])
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

// BinsError is a refused score_bins array: the bin (-1: the array as a
// whole) and the element of the bin (-1: the bin as a whole) at fault.
type BinsError struct {
	Bin, Elem int
	Msg       string
}

func (e *BinsError) Error() string {
	s := "score_bins"
	if e.Bin >= 0 {
		s += "[" + strconv.Itoa(e.Bin) + "]"
	}
	if e.Elem >= 0 {
		s += "[" + strconv.Itoa(e.Elem) + "]"
	}
	return s + ": " + e.Msg
}

// DecodeBins decodes the JSON text of State.Bins, data being the array and
// nothing else (whitespace aside), for a state of examples examples at
// dropBits: what Check checks bin by bin is checked as each bin is read,
// so a state claiming more bins than BinLimit, or an inconsistent one, is
// refused at the first bin at fault, before the rest is read or kept.
//
// It is a hand-written scanner rather than encoding/json because the array
// can hold millions of bins: it allocates the result and nothing per bin,
// and accepts exactly [key, positives, negatives] triples of non-negative
// JSON integers (no fraction, exponent, sign or leading zero, nothing
// beyond 64 bits, no fourth element). Errors are *BinsError.
func DecodeBins(data []byte, examples int64, dropBits int) ([][3]uint64, error) {
	c := newBinCheck(examples, dropBits)
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return nil, &BinsError{Bin: -1, Elem: -1, Msg: "got " + describeJSON(data, i) + ", want an array of [key, positives, negatives] triples"}
	}
	// One '[' per bin and one for the array: an exact count for a well-formed
	// array, counted at memory speed, so the result is allocated at its
	// size, but only once the first bins have been read well (a hostile
	// array of nothing but '[' is refused at its first bin, not after 96 MiB).
	hint := min(max(bytes.Count(data, []byte{'['})-1, 0), c.limit)
	bins := make([][3]uint64, 0, min(hint, 1024))
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return bins, trailing(data, i+1)
	}
	for {
		n := len(bins)
		if n >= c.limit {
			return nil, c.tooMany()
		}
		if i == len(data) || data[i] != '[' {
			return nil, &BinsError{Bin: n, Elem: -1, Msg: "got " + describeJSON(data, i) + ", want a [key, positives, negatives] triple"}
		}
		i++
		var b [3]uint64
		for e := range 3 {
			i = skipSpace(data, i)
			v, j, msg := scanUint(data, i)
			if msg != "" {
				if e > 0 && i < len(data) && data[i] == ']' {
					msg = fmt.Sprintf("%d elements, want 3: [key, positives, negatives]", e)
					e = -1
				}
				return nil, &BinsError{Bin: n, Elem: e, Msg: msg}
			}
			b[e] = v
			i = skipSpace(data, j)
			want := byte(',')
			if e == 2 {
				want = ']'
			}
			if i < len(data) && data[i] == want {
				i++
				continue
			}
			switch {
			case i < len(data) && data[i] == ']':
				return nil, &BinsError{Bin: n, Elem: -1, Msg: fmt.Sprintf("%d elements, want 3: [key, positives, negatives]", e+1)}
			case i < len(data) && data[i] == ',':
				return nil, &BinsError{Bin: n, Elem: -1, Msg: "more than 3 elements, want 3: [key, positives, negatives]"}
			}
			return nil, &BinsError{Bin: n, Elem: e, Msg: fmt.Sprintf("got %s after the number, want %q", describeJSON(data, i), want)}
		}
		if err := c.add(n, b); err != nil {
			return nil, err
		}
		if len(bins) == cap(bins) && cap(bins) < hint {
			bins = append(make([][3]uint64, 0, hint), bins...)
		}
		bins = append(bins, b)
		i = skipSpace(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
			continue
		}
		if i < len(data) && data[i] == ']' {
			return bins, trailing(data, i+1)
		}
		return nil, &BinsError{Bin: n + 1, Elem: -1, Msg: "got " + describeJSON(data, i) + " after a bin, want ',' or ']'"}
	}
}

func trailing(data []byte, i int) error {
	if i = skipSpace(data, i); i < len(data) {
		return &BinsError{Bin: -1, Elem: -1, Msg: "got " + describeJSON(data, i) + " after the array"}
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	return i
}

// scanUint reads a non-negative JSON integer at data[i:]; msg says why
// there is none.
func scanUint(data []byte, i int) (v uint64, end int, msg string) {
	j := i
	for j < len(data) {
		d := data[j] - '0'
		if d > 9 {
			break
		}
		// Wraps only past 20 digits, refused below; a 20-digit number
		// not above the largest uint64 has no larger prefix.
		v = v*10 + uint64(d)
		j++
	}
	switch {
	case j == i:
		return 0, 0, "got " + describeJSON(data, i) + ", want a non-negative integer"
	case data[i] == '0' && j > i+1:
		return 0, 0, "got " + describeJSON(data, i) + ": a leading zero is not JSON, want a non-negative integer"
	case j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E'):
		return 0, 0, "got " + describeJSON(data, i) + ", want a non-negative integer (no fraction or exponent)"
	case j-i > 20 || j-i == 20 && string(data[i:j]) > "18446744073709551615":
		return 0, 0, "got " + describeJSON(data, i) + ": beyond 64 bits (the largest count or key is 18446744073709551615)"
	}
	return v, j, ""
}

// describeJSON names the JSON value (or other text) at data[i:] in a
// message: its kind, and its first characters when it is a number or junk.
func describeJSON(data []byte, i int) string {
	if i >= len(data) {
		return "the end of the document (truncated?)"
	}
	switch data[i] {
	case '[':
		return "an array"
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	case ',', ']', '}', ':':
		return strconv.QuoteRune(rune(data[i]))
	}
	j := i
	for j < len(data) && j-i < 24 && !strings.ContainsRune(" \t\r\n,[]{}:\"", rune(data[j])) {
		j++
	}
	if j == i {
		j = i + 1
	}
	what := "a number"
	if c := data[i]; !(c == '-' || c >= '0' && c <= '9') {
		what = "text"
	} else if c == '-' {
		what = "a negative number"
	}
	return what + " " + strconv.Quote(string(data[i:j]))
}

// WriteBins writes bins to w as encoding/json writes them ("null" for nil),
// the canonical form a state's digest is over, a buffer at a time: a state
// of millions of bins is hashed or written without a copy of its JSON.
func WriteBins(w io.Writer, bins [][3]uint64) error {
	if bins == nil {
		_, err := io.WriteString(w, "null")
		return err
	}
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, '[')
	for i, b := range bins {
		if len(buf) > cap(buf)-80 { // room for a bin: 3 numbers of at most 20 digits
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '[')
		buf = strconv.AppendUint(buf, b[0], 10)
		buf = append(buf, ',')
		buf = strconv.AppendUint(buf, b[1], 10)
		buf = append(buf, ',')
		buf = strconv.AppendUint(buf, b[2], 10)
		buf = append(buf, ']')
	}
	buf = append(buf, ']')
	_, err := w.Write(buf)
	return err
}

// occupied counts the histogram's occupied bins.
func (h *scoreHist) occupied() int {
	n := 0
	for _, pg := range h.pages {
		for _, b := range pg {
			if b.pos != 0 || b.neg != 0 {
				n++
			}
		}
	}
	return n
}
