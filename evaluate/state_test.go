package evaluate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/metrics"
)

func testState(t testing.TB, index, count int, p, y []float32) *State {
	var acc metrics.Accumulator
	if err := acc.Add(p, y); err != nil {
		t.Fatal(err)
	}
	res, _ := acc.Result()
	s := NewState(&Report{Result: res, Acc: &acc, ForwardSeconds: 1}, index, count)
	s.Model, s.ModelSHA256, s.Data, s.Rows, s.Batch = "m.pt", "ab", "d.npz", "0:4", 2
	return s
}

func TestMergeStatesEqualsOneRun(t *testing.T) {
	p := []float32{0.1, 0.8, 0.3, 0.6, 0.55, 0.2}
	y := []float32{0, 1, 1, 0, 1, 0}
	one := testState(t, 0, 1, p, y)
	a := testState(t, 0, 3, p[:2], y[:2])
	b := testState(t, 1, 3, p[2:4], y[2:4])
	c := testState(t, 2, 3, p[4:], y[4:])
	m, err := MergeStates([]*State{c, a, b})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete() || len(m.Missing()) != 0 {
		t.Errorf("merged shards %v of %d", m.Shards, m.ShardCount)
	}
	r1, _ := one.Report()
	r2, err := m.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r1.Result != r2.Result {
		t.Errorf("merged %+v, one run %+v", r2.Result, r1.Result)
	}
	if _, err := MergeStates([]*State{a, a}); err == nil {
		t.Error("a shard merged with itself")
	}
	d := testState(t, 2, 4, p[4:], y[4:])
	if _, err := MergeStates([]*State{a, d}); err == nil {
		t.Error("different shard counts merged")
	}
}

func FuzzParseState(f *testing.F) {
	s := testState(f, 1, 3, []float32{0.1, 0.8, 0.3}, []float32{0, 1, 1})
	seed, err := s.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"kind":"rq-eval-state","version":1,"shard_count":2,"shards":[1,0]}`))
	f.Add([]byte(strings.Replace(string(seed), `"examples":3`, `"examples":4`, 1)))
	f.Add([]byte(strings.Replace(string(seed), `"examples":3`, `"examples":3,"examples":4`, 1)))
	f.Add([]byte(strings.Replace(string(seed), `"examples":3`, `"Examples":3`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// An accepted state reports, re-encodes and re-parses to the same.
		if _, err := st.Report(); err != nil && st.Metrics.Examples > 0 {
			t.Fatalf("accepted state does not report: %v", err)
		}
		js, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		st2, err := ParseState("again.json", js)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		js2, _ := st2.Encode()
		if string(js) != string(js2) {
			t.Fatal("state does not re-encode stably")
		}
	})
}

// A state written and read back is the same state; its digest survives
// reformatting (it is over the content, not the bytes).
func TestStateRoundTrip(t *testing.T) {
	s := testState(t, 1, 3, []float32{0.1, 0.8, 0.3}, []float32{0, 1, 1})
	p := filepath.Join(t.TempDir(), "state.json")
	if err := s.Write(p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadState(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Encode()
	b, _ := back.Encode()
	if string(a) != string(b) {
		t.Fatalf("read back\n%s\nwrote\n%s", b, a)
	}
	var doc any
	if err := json.Unmarshal(a, &doc); err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(doc, "", "\t") // keys sorted, indented
	if _, err := ParseState("pretty.json", pretty); err != nil {
		t.Fatalf("a reformatted state: %v", err)
	}
}

// Every edit of a written state is refused: the figures by the digest (an
// edited logloss_sum_fixed58 merged silently into a wrong NE), the JSON
// tricks by the strict reader, old states by the version.
func TestParseStateRefuses(t *testing.T) {
	s := testState(t, 1, 3, []float32{0.1, 0.8, 0.3}, []float32{0, 1, 1})
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	text := string(enc)
	edit := func(old, new string) string {
		if !strings.Contains(text, old) {
			t.Fatalf("%q not in %s", old, text)
		}
		return strings.Replace(text, old, new, 1)
	}
	loss := s.Metrics.LossSum
	lossEdited := loss[:len(loss)-1] + "f"
	if lossEdited == loss {
		lossEdited = loss[:len(loss)-1] + "e"
	}
	var noDigest State = *s
	noDigestJS, _ := json.Marshal(&noDigest)
	cases := []struct{ name, doc, want string }{
		{"logloss edited", edit(loss, lossEdited), "s.json: edited or corrupted: digest mismatch (the file records sha256:"},
		{"rows edited", edit(`"rows":"0:4"`, `"rows":"0:5"`), "s.json: edited or corrupted: digest mismatch"},
		{"digest edited", edit(`"digest":"sha256:`, `"digest":"sha256:0`), "s.json: edited or corrupted: digest mismatch"},
		{"no digest", string(noDigestJS), `s.json: missing "digest"`},
		{"version 1", edit(`"version":2`, `"version":1`),
			"s.json: version 1: this rq reads evaluation state version 2; version 1 states carry no digest: evaluation states are short-lived intermediates, re-run rq eval --state-out with this rq"},
		{"duplicate key", edit(`"examples":3`, `"examples":3,"examples":4`), "s.json: metrics.examples: duplicate key"},
		{"case-folded key", edit(`"logloss_sum_fixed58"`, `"LogLoss_Sum_Fixed58"`),
			`s.json: metrics.LogLoss_Sum_Fixed58: unknown key: field names are case-sensitive, did you mean "logloss_sum_fixed58"?`},
		{"trailing data", text + "{}", "s.json: line 2, column 1: data after the end of the JSON object"},
	}
	for _, c := range cases {
		_, err := ParseState("s.json", []byte(c.doc))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error\n %v\nwant\n %s...", c.name, err, c.want)
		}
	}
	// The file reader: the same, and a size cap.
	p := filepath.Join(t.TempDir(), "edited.json")
	os.WriteFile(p, []byte(edit(loss, lossEdited)), 0o644)
	if _, err := ReadState(p); err == nil || !strings.Contains(err.Error(), p+": edited or corrupted: digest mismatch") {
		t.Errorf("ReadState of an edited state: %v", err)
	}
}

// States written by rq before the digest was streamed (one with a
// baseline) still verify, and encode to the same bytes.
func TestOldStatesVerify(t *testing.T) {
	for _, f := range []string{"testdata/state-v2.json", "testdata/state-v2-baseline.json"} {
		s, err := ReadState(f)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := os.ReadFile(f)
		enc, err := s.Encode()
		if err != nil || string(enc) != string(old) {
			t.Errorf("%s re-encodes differently (%v):\n%s\n%s", f, err, enc, old)
		}
		if _, err := s.Report(); err != nil {
			t.Error(err)
		}
	}
}

// A malformed bin is refused with the file, its JSON path and what was
// wrong.
func TestParseStateRefusesBins(t *testing.T) {
	s := testState(t, 1, 3, []float32{0.1, 0.8, 0.3}, []float32{0, 1, 1})
	enc, _ := s.Encode()
	text := string(enc)
	i := strings.Index(text, `"score_bins":[`) + len(`"score_bins":`)
	j := i + strings.Index(text[i:], "]]") + 2
	cases := []struct{ bins, want string }{
		{`[[1,1,0,0]]`, "s.json: metrics.score_bins[0]: more than 3 elements, want 3: [key, positives, negatives]"},
		{`[[1,1.5,0]]`, `s.json: metrics.score_bins[0][1]: got a number "1.5", want a non-negative integer (no fraction or exponent)`},
		{`[[1,-1,0]]`, `s.json: metrics.score_bins[0][1]: got a negative number "-1", want a non-negative integer`},
		{`[[1,99999999999999999999,0]]`, `s.json: metrics.score_bins[0][1]: got a number "99999999999999999999": beyond 64 bits`},
		{`[[1,[[1]],0]]`, "s.json: metrics.score_bins[0][1]: got an array, want a non-negative integer"},
		{`[[1,{"x":1},0]]`, "s.json: metrics.score_bins[0][1]: got an object, want a non-negative integer"},
		{`[[1,1,0],[0,1,0],[3,0,1]]`, "s.json: metrics.score_bins[1]: key 0 does not follow key 1 (keys must increase)"},
		{`[[1,1,0],[2,1,0],[3,0,1],[4,0,1]]`, "s.json: metrics.score_bins: more than 3 bins: one bin per example at most"},
		{`[[1,1,0],[2,1,0],[3,0,1]`, "s.json: metrics.score_bins[3]: got '}' after a bin, want ',' or ']'"},
	}
	for _, c := range cases {
		doc := text[:i] + c.bins + text[j:]
		_, err := ParseState("s.json", []byte(doc))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error\n %v\nwant\n %s...", c.bins, err, c.want)
		}
	}
	// Keys are what encoding/json decodes them to: an escaped score_bins
	// is score_bins, and its bins are checked all the same.
	doc := strings.Replace(text[:i], `"score_bins"`, `"score\u005fbins"`, 1) + `[[1,1.5,0]]` + text[j:]
	if _, err := ParseState("s.json", []byte(doc)); err == nil || !strings.Contains(err.Error(), "metrics.score_bins[0][1]") {
		t.Errorf("escaped key: %v", err)
	}
	// A score_bins given twice is a duplicate key, not two histograms.
	doc = text[:j] + `,"score_bins":[]` + text[j:]
	if _, err := ParseState("s.json", []byte(doc)); err == nil || !strings.Contains(err.Error(), "metrics.score_bins: duplicate key") {
		t.Errorf("score_bins twice: %v", err)
	}
	// Line numbers of errors after the bins hold.
	doc = text[:i] + "[[1,1,0],\n[2,1,0],\n[3,0,1]]" + text[j:len(text)-1] + "\n,"
	if _, err := ParseState("s.json", []byte(doc)); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("error after the bins: %v", err)
	}
}

// boundState is a state of n bins, keys 0..n-1 at full resolution, one
// positive each: at n = metrics.MaxBins, every key of 2^16 pages.
func boundState(n int) *State {
	m := metrics.State{Examples: int64(n), Positives: int64(n), LossSum: "0x" + strings.Repeat("0", 32), PredSum: "0x" + strings.Repeat("0", 32),
		Bins: make([][3]uint64, n)}
	for k := range m.Bins {
		m.Bins[k] = [3]uint64{uint64(k), 1, 0}
	}
	return &State{Kind: StateKind, Version: StateVersion, Model: "m", ModelSHA256: "ab", Data: "d", ShardCount: 1, Shards: []int{0}, Metrics: m}
}

// A state at the bin bound (the most an accumulator keeps) is read; one bin
// more is refused while its bins are counted, naming the file and bound.
func TestParseStateBinBound(t *testing.T) {
	if testing.Short() {
		t.Skip("states of 4 M bins")
	}
	dir := t.TempDir()
	at := filepath.Join(dir, "at.json")
	if err := boundState(metrics.MaxBins).Write(at); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := ReadState(at)
	if err != nil {
		t.Fatalf("a state at the bound: %v", err)
	}
	t.Logf("%d bins read in %v", len(s.Metrics.Bins), time.Since(start))
	over := filepath.Join(dir, "over.json")
	if err := boundState(metrics.MaxBins + 1).Write(over); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = ReadState(over)
	want := over + ": metrics.score_bins: more than 4194304 bins: an accumulator keeps at most that many"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("one bin over the bound: %v", err)
	}
	t.Logf("refused in %v: %v", time.Since(start), err)
}

// Hostile states: 10 M bins (the count passes the bound part way), and a
// shard list of 4 M entries (the document outside the bins passes its
// cap), each refused with the file and the bound; the time is logged.
func TestParseStateHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("documents of 170 MB")
	}
	good, _ := testState(t, 0, 2, []float32{0.1, 0.8, 0.3}, []float32{0, 1, 1}).Encode()
	text := string(good)
	i := strings.Index(text, `"score_bins":[`) + len(`"score_bins":[`)
	dir := t.TempDir()
	write := func(name, head string, body func(*bufio.Writer), tail string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		w.WriteString(head)
		body(w)
		w.WriteString(tail)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	bins := write("bins.json", text[:i], func(w *bufio.Writer) {
		for k := range 10_000_000 {
			fmt.Fprintf(w, "[%d,1,0],", 1_000_000_000+k)
		}
	}, text[i:])
	j := strings.Index(text, `"shards":[0`) + len(`"shards":[0`)
	shards := write("shards.json", text[:j], func(w *bufio.Writer) {
		for range 1 << 22 {
			w.WriteString(",0000")
		}
	}, text[j:])
	for _, c := range []struct{ path, want string }{
		{bins, bins + ": metrics.score_bins: more than 4194304 bins"},
		{shards, shards + ": 1677"}, // 16 MiB and a few bytes "besides the score_bins arrays, more than the 16777216 ..."
	} {
		start := time.Now()
		_, err := ReadState(c.path)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !strings.Contains(err.Error(), "more than") {
			t.Errorf("%s: %v", filepath.Base(c.path), err)
		}
		st, _ := os.Stat(c.path)
		t.Logf("%s, %d MB: refused in %v", filepath.Base(c.path), st.Size()>>20, time.Since(start))
	}
}

// Shards written to files, read back and merged give the figures of one
// run over all the rows, with a baseline too; the merged state written
// and read again gives them as well.
func TestMergeFilesEqualsOneRun(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n := 3000
	p, q, y := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range p {
		p[i], q[i], y[i] = r.Float32(), r.Float32(), float32(r.IntN(2))
	}
	state := func(index, count int, lo, hi int) *State {
		var acc, base metrics.Accumulator
		acc.Add(p[lo:hi], y[lo:hi])
		base.Add(q[lo:hi], y[lo:hi])
		res, _ := acc.Result()
		bres, _ := base.Result()
		s := NewState(&Report{Result: res, Acc: &acc, Baseline: &bres, BaselineAcc: &base}, index, count)
		s.Model, s.ModelSHA256, s.Baseline, s.BaselineSHA256, s.Data, s.Batch = "m", "ab", "b", "cd", "d", 2
		return s
	}
	dir := t.TempDir()
	var read []*State
	for k, cut := range [][2]int{{0, 1000}, {1000, 2500}, {2500, n}} {
		f := filepath.Join(dir, fmt.Sprint(k, ".json"))
		if err := state(k, 3, cut[0], cut[1]).Write(f); err != nil {
			t.Fatal(err)
		}
		s, err := ReadState(f)
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, s)
	}
	m, err := MergeStates([]*State{read[2], read[0], read[1]})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := state(0, 1, 0, n).Report()
	got, err := m.Report()
	if err != nil {
		t.Fatal(err)
	}
	if got.Result != one.Result || *got.Baseline != *one.Baseline {
		t.Errorf("merged %+v %+v\none run %+v %+v", got.Result, *got.Baseline, one.Result, *one.Baseline)
	}
	f := filepath.Join(dir, "merged.json")
	if err := m.Write(f); err != nil {
		t.Fatal(err)
	}
	back, err := ReadState(f)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Report()
	if again.Result != one.Result || *again.Baseline != *one.Baseline {
		t.Errorf("merged state read back: %+v, one run %+v", again.Result, one.Result)
	}
}

func TestIsState(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"kind":"rq-eval-state","version":2}`:               true,
		`{"version":2,"shards":[1,2],"kind":"rq-eval-state"`: true, // truncated after the kind: still a state, refused later
		`{"kind":"rq-ranges"}`:                               false,
		`{"metrics":{"kind":"rq-eval-state"}}`:               false,
		`["kind","rq-eval-state"]`:                           false,
		`{"kind":"rq-eval-state"`:                            true,
		``:                                                   false,
	} {
		if IsState([]byte(doc)) != want {
			t.Errorf("IsState(%s) = %v", doc, !want)
		}
	}
}

func TestMissingShards(t *testing.T) {
	s := &State{ShardCount: 6, Shards: []int{4, 1, 2}}
	if got := fmt.Sprint(s.Missing()); got != "[0 3 5]" {
		t.Errorf("missing %s", got)
	}
}
