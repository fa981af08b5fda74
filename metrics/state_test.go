package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// Every malformed bin is refused at its place, with a path-like message.
func TestDecodeBinsRefuses(t *testing.T) {
	cases := []struct{ doc, want string }{
		{`[[1,1,0],[2,1,0,0]]`, "score_bins[1]: more than 3 elements, want 3: [key, positives, negatives]"},
		{`[[1,1,0],[2,1]]`, "score_bins[1]: 2 elements, want 3: [key, positives, negatives]"},
		{`[[1,1,0],[2,1,]]`, "score_bins[1]: 2 elements, want 3"},
		{`[[1,1.5,0]]`, `score_bins[0][1]: got a number "1.5", want a non-negative integer (no fraction or exponent)`},
		{`[[1,1e3,0]]`, `score_bins[0][1]: got a number "1e3", want a non-negative integer (no fraction or exponent)`},
		{`[[1,-1,0]]`, `score_bins[0][1]: got a negative number "-1", want a non-negative integer`},
		{`[[1,18446744073709551616,0]]`, `score_bins[0][1]: got a number "18446744073709551616": beyond 64 bits`},
		{`[[1,184467440737095516150,0]]`, `score_bins[0][1]: got a number "184467440737095516150": beyond 64 bits`},
		{`[[1,01,0]]`, `score_bins[0][1]: got a number "01": a leading zero is not JSON`},
		{`[[1,[1],0]]`, "score_bins[0][1]: got an array, want a non-negative integer"},
		{`[[1,{"a":1},0]]`, "score_bins[0][1]: got an object, want a non-negative integer"},
		{`[[1,"1",0]]`, "score_bins[0][1]: got a string, want a non-negative integer"},
		{`[[1,null,0]]`, "score_bins[0][1]: got null, want a non-negative integer"},
		{`[[1,+1,0]]`, `score_bins[0][1]: got text "+1", want a non-negative integer`},
		{`[[1,1 0]]`, `score_bins[0][1]: got a number "0" after the number, want ','`},
		{`[[1,1,0] [2,1,0]]`, "score_bins[1]: got an array after a bin, want ',' or ']'"},
		{`[[1,1,0],`, "score_bins[1]: got the end of the document (truncated?), want a [key, positives, negatives] triple"},
		{`[[1,1,0]] x`, `score_bins: got text "x" after the array`},
		{`[1,1,0]`, "score_bins[0]: got a number \"1\", want a [key, positives, negatives] triple"},
		{`{"a":1}`, "score_bins: got an object, want an array of [key, positives, negatives] triples"},
		{`null`, "score_bins: got null, want an array"},
		{`[[2,1,0],[1,1,0]]`, "score_bins[1]: key 1 does not follow key 2 (keys must increase)"},
		{`[[2,0,0]]`, "score_bins[0]: an empty bin"},
		{`[[4294967296,1,0]]`, "score_bins[0]: key 4294967296 is not below 4294967296"},
	}
	for _, c := range cases {
		_, err := DecodeBins([]byte(c.doc), 10, 0)
		var be *BinsError
		if err == nil || !errors.As(err, &be) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error\n %v\nwant\n %s...", c.doc, err, c.want)
		}
	}
}

// A state claiming more bins than it can hold is refused at the first bin
// past the bound: what follows (here, junk) is never read.
func TestDecodeBinsBound(t *testing.T) {
	doc := []byte(`[[1,1,0],[2,1,0],[3,0,1],[4,1,0],this is never read`)
	_, err := DecodeBins(doc, 3, 0)
	if err == nil || err.Error() != "score_bins: more than 3 bins: one bin per example at most, and an accumulator keeps at most 4194304 (65536 pages of 64 keys)" {
		t.Errorf("3 examples, 4 bins: %v", err)
	}
	// At the bound: accepted.
	if bins, err := DecodeBins([]byte(`[[1,1,0],[2,1,0],[3,0,1]]`), 3, 0); err != nil || len(bins) != 3 {
		t.Errorf("3 examples, 3 bins: %v %v", bins, err)
	}
	// Bins on more pages than an accumulator keeps.
	var b bytes.Buffer
	b.WriteString("[")
	for p := range maxScorePages + 1 {
		if p > 0 {
			b.WriteByte(',')
		}
		b.WriteString("[" + itoa(p*pageSize) + ",1,0]")
	}
	b.WriteString("]")
	if _, err := DecodeBins(b.Bytes(), 1<<40, 0); err == nil || !strings.Contains(err.Error(), "score_bins[65536]: the bins span more than 65536 pages") {
		t.Errorf("65537 pages: %v", err)
	}
	s := State{Examples: maxScorePages + 1, Positives: maxScorePages + 1, LossSum: zeroFixed, PredSum: zeroFixed}
	json.Unmarshal(b.Bytes(), &s.Bins)
	if _, err := FromState(s); err == nil || !strings.Contains(err.Error(), "pages") {
		t.Errorf("FromState of 65537 pages: %v", err)
	}
}

const zeroFixed = "0x00000000000000000000000000000000"

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// MaxBins is what an accumulator holds at most: every key of 2^16 pages at
// full resolution, and one key more coarsens the histogram.
func TestMaxBinsIsTheAccumulatorsMost(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB of pages")
	}
	var h scoreHist
	for k := range uint32(MaxBins) {
		h.addBin(k, 0, 1, 0)
	}
	if h.drop != 0 || h.occupied() != MaxBins {
		t.Fatalf("2^22 keys: drop %d, %d bins", h.drop, h.occupied())
	}
	h.addBin(MaxBins, 0, 1, 0)
	if h.drop != 1 || h.occupied() > MaxBins {
		t.Fatalf("one more key: drop %d, %d bins", h.drop, h.occupied())
	}
}

// DecodeBins reads what encoding/json reads, WriteBins writes what it
// writes (the digest of a state depends on it).
func TestBinsAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 50 {
		var bins [][3]uint64
		k := uint64(r.IntN(1000))
		for range n * 7 {
			k += 1 + uint64(r.IntN(5))
			bins = append(bins, [3]uint64{k, uint64(r.IntN(3)), 1 + uint64(r.IntN(1e6))})
		}
		if n == 0 {
			bins = [][3]uint64{}
		}
		want, _ := json.Marshal(bins)
		var b bytes.Buffer
		if err := WriteBins(&b, bins); err != nil || b.String() != string(want) {
			t.Fatalf("WriteBins %s, json %s (%v)", b.String(), want, err)
		}
		spaced := strings.ReplaceAll(string(want), ",", " ,\n\t")
		got, err := DecodeBins([]byte(spaced), -1, -1)
		if err != nil || len(got) != len(bins) || (len(bins) > 0 && got[len(got)-1] != bins[len(bins)-1]) {
			t.Fatalf("DecodeBins: %v", err)
		}
		for i := range got {
			if got[i] != bins[i] {
				t.Fatalf("bin %d: %v, want %v", i, got[i], bins[i])
			}
		}
	}
	var b bytes.Buffer
	WriteBins(&b, nil)
	if b.String() != "null" {
		t.Errorf("nil bins: %s", b.String())
	}
	big := `[[18446744073709551615,0,1]]`
	if got, err := DecodeBins([]byte(big), -1, -1); err == nil {
		t.Errorf("key 2^64-1 accepted: %v", got)
	} else if !strings.Contains(err.Error(), "not below") {
		t.Errorf("key 2^64-1: %v", err)
	}
	if got, err := DecodeBins([]byte(`[[0,18446744073709551615,0]]`), -1, -1); err != nil || got[0][1] != 1<<64-1 {
		t.Errorf("count 2^64-1: %v %v", got, err)
	}
}

// MergeState is Merge(FromState(s)), also when the target coarsens.
func TestMergeStateIsMergeFromState(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	mk := func(n int) *Accumulator {
		var a Accumulator
		p := make([]float32, n)
		y := make([]float32, n)
		for i := range p {
			p[i] = r.Float32()
			y[i] = float32(r.IntN(2))
		}
		a.Add(p, y)
		return &a
	}
	for _, limit := range []int{0, 3} {
		a, b := mk(5000), mk(3000)
		a2 := &Accumulator{}
		a2.Merge(a)
		a.scores.limit, a2.scores.limit = limit, limit
		fb, err := FromState(b.State())
		if err != nil {
			t.Fatal(err)
		}
		a.Merge(fb)
		if err := a2.MergeState(b.State()); err != nil {
			t.Fatal(err)
		}
		x, _ := json.Marshal(a.State())
		y, _ := json.Marshal(a2.State())
		if string(x) != string(y) {
			t.Errorf("limit %d: MergeState differs from Merge(FromState)", limit)
		}
	}
	bad := mk(10).State()
	bad.Positives++
	var a Accumulator
	if err := a.MergeState(bad); err == nil || a.Count() != 0 {
		t.Errorf("an inconsistent state merged: %v, %d examples", err, a.Count())
	}
}

// Whatever DecodeBins accepts, encoding/json reads the same.
func FuzzDecodeBins(f *testing.F) {
	for _, s := range []string{`[]`, `[[1,2,3]]`, `[[1,1,0],[2,0,1]]`, ` [ [ 1 , 1 , 0 ] ] `, `[[1,1.0,0]]`, `[[1,1,0,0]]`, `[[01,1,0]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bins, err := DecodeBins(data, -1, -1)
		if err != nil {
			var be *BinsError
			if !errors.As(err, &be) {
				t.Fatalf("not a BinsError: %v", err)
			}
			return
		}
		var want [][3]uint64
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("DecodeBins accepted what encoding/json refuses (%v): %q", err, data)
		}
		if len(want) != len(bins) {
			t.Fatalf("%d bins, encoding/json %d", len(bins), len(want))
		}
		for i := range want {
			if want[i] != bins[i] {
				t.Fatalf("bin %d: %v, encoding/json %v", i, bins[i], want[i])
			}
		}
	})
}
