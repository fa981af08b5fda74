package calibrate

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: Parse never panics, and whatever it accepts encodes, parses
// back to the same bytes, merges with itself and recomputes its ranges.
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		s := string(b)
		// A few near misses to start the mutator off in interesting places.
		f.Add([]byte(strings.Replace(s, `"version": 1`, `"version": 2`, 1)))
		f.Add([]byte(strings.Replace(s, `"lo":-3,"hi":5`, `"lo":-6,"hi":10`, 1)))
		f.Add([]byte(strings.Replace(s, `"zeros": 90`, `"zeros": 91`, 1)))
		f.Add([]byte(s[:len(s)/3]))
		// Hostile edits: a range far beyond the data, a case-folded and a
		// duplicated key, an edited number under a digest.
		f.Add([]byte(strings.Replace(s, `"l2":[0,7.451978]`, `"l2":[0,1e38]`, 1)))
		f.Add([]byte(strings.Replace(s, `"count": 240,`, `"Count": 240,`, 1)))
		f.Add([]byte(strings.Replace(s, `"count": 240,`, `"count": 240, "count": 1,`, 1)))
		f.Add([]byte(strings.Replace(s, `"rows": "0:48"`, `"rows": "0:49"`, 1)))
		// The tables' access counts (version 3): out-of-table rows, order,
		// sums, a summary, a pair of three, no digest.
		f.Add([]byte(strings.Replace(s, `[4, 9]]`, `[5, 9]]`, 1)))
		f.Add([]byte(strings.Replace(s, `[[0, 10], [1, 10]`, `[[1, 10], [0, 10]`, 1)))
		f.Add([]byte(strings.Replace(s, `"lookups": 48`, `"lookups": 4800000000000000000000`, 1)))
		f.Add([]byte(strings.Replace(strings.Replace(s, `"exact": true,`, `"exact": false,`, 1), `"error_bound": 0`, `"error_bound": 9`, 1)))
		f.Add([]byte(strings.Replace(s, `[4, 9]]`, `[4, 9, 1]]`, 1)))
		if i := strings.Index(s, `  "digest"`); i >= 0 {
			j := strings.Index(s[i:], "\n")
			f.Add([]byte(s[:i] + s[i+j+1:]))
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"layers":{"a":{"histogram":{"bins":[1e400]}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out, err := r.Encode()
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		r2, err := Parse("again.json", out)
		if err != nil {
			t.Fatalf("encoded document does not parse: %v\n%s", err, out)
		}
		out2, err := r2.Encode()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("read -> write -> read -> write is not stable (%v)", err)
		}
		for _, name := range r.LayerNames() {
			for _, m := range Methods {
				if _, _, err := r.Range(name, m); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = r.CheckNetwork(smallNet())
		if bins := r.Layers[r.LayerNames()[0]].Hist.Bins(); bins > 256 {
			return // recomputing entropy over thousands of bins is slow for a fuzzer
		}
		m, err := Merge(r, r2)
		if err != nil {
			if strings.Contains(err.Error(), "bins into one of") || strings.Contains(err.Error(), "2^64") {
				return
			}
			t.Fatalf("merging a document with itself: %v", err)
		}
		if _, err := m.Encode(); err != nil {
			t.Fatalf("merged document does not encode: %v", err)
		}
		for name, l := range m.Layers {
			if l.Hist.Count() != 2*r.Layers[name].Hist.Count() {
				t.Fatalf("%s: merged count %d, want twice %d", name, l.Hist.Count(), r.Layers[name].Hist.Count())
			}
		}
		for name, ta := range r.Tables {
			mt, ok := m.TableAccess(name)
			if !ok || mt.Lookups != 2*ta.Lookups || (ta.Exact && len(ta.HotRows) > 0 && len(mt.HotRows) == len(ta.HotRows) && mt.HotRows[0].Count != 2*ta.HotRows[0].Count) {
				t.Fatalf("table %s: merged %+v from %+v", name, mt, ta)
			}
			_ = mt.Hot(0.5)
		}
	})
}

// FuzzHistogram: any float32 stream, split anywhere, observed in one go or
// merged from parts, gives the same histogram, with every count in place,
// and every method gives a finite range holding 0.
func FuzzHistogram(f *testing.F) {
	enc := func(v ...float32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	f.Add(enc(1, 2, 3, -4, 0), uint8(2), uint8(0))
	f.Add(enc(float32(math.NaN()), float32(math.Inf(1)), 1e-45, -1e38, 3e38), uint8(1), uint8(1))
	f.Add(enc(0, 0, 0, 0.5, 0.25, 3, -0.5), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split, binSel uint8) {
		v := make([]float32, len(data)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		bins := []int{MinBins, 9, 64, 2048}[binSel%4]
		k := 0
		if len(v) > 0 {
			k = int(split) % (len(v) + 1)
		}
		whole := histOf(t, bins, v)
		checkExact(t, whole, v)
		a, b := histOf(t, bins, v[:k]), histOf(t, bins, v[k:])
		if err := b.Merge(a); err != nil {
			t.Fatal(err)
		}
		if !b.equal(whole) {
			t.Fatalf("merge of the split at %d differs from the whole", k)
		}
		if whole.Count() == 0 {
			return
		}
		for _, m := range Methods {
			for _, relu := range []bool{false, true} {
				lo, hi, err := ComputeRange(whole, m, RangeOptions{FollowsReLU: relu, Levels: 16})
				if err != nil {
					t.Fatal(err)
				}
				if !finite(float64(lo)) || !finite(float64(hi)) || lo > 0 || hi < 0 || (relu && lo != 0) ||
					(lo < 0 && lo < whole.Min()) || (hi > 0 && hi > whole.Max()) {
					t.Fatalf("%s relu=%v: [%v, %v] for data [%v, %v]", m, relu, lo, hi, whole.Min(), whole.Max())
				}
			}
		}
	})
}
