package evaluate

import (
	"encoding/json"
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
	seed, _ := json.Marshal(s)
	f.Add(seed)
	f.Add([]byte(`{"kind":"rq-eval-state","version":1,"shard_count":2,"shards":[1,0]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState("fuzz.json", data)
		if err != nil {
			return
		}
		// An accepted state reports, re-encodes and re-parses to the same.
		if _, err := st.Report(); err != nil && st.Metrics.Examples > 0 {
			t.Fatalf("accepted state does not report: %v", err)
		}
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := ParseState("again.json", js)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		js2, _ := json.Marshal(st2)
		if string(js) != string(js2) {
			t.Fatal("state does not re-encode stably")
		}
	})
}
