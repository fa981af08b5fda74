package evaluate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
