package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/metrics"
)

func TestFloatJSON(t *testing.T) {
	b, err := json.Marshal(struct{ A, B, C Float }{Float(math.NaN()), Float(math.Inf(1)), 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":null,"B":null,"C":0.25}` {
		t.Errorf("got %s", b)
	}
}

func TestEvalOutputs(t *testing.T) {
	r := metrics.Result{Examples: 10, CTR: 0.3, NE: 0.9, LogLoss: 0.5, AUC: 0.7, Calibration: 1.1, Accuracy: 0.8}
	b := r
	b.NE, b.AUC = 0.8, math.NaN()
	d := evaluate.Compare(r, b)
	rep := &evaluate.Report{Result: r, Baseline: &b, Delta: &d, ExamplesPerSec: 1234, MaxAbsPredDiff: 0.01}
	e := NewEval("m.pt", "d.npz", "0:10", 2, 64, "b.pt", rep)
	var buf bytes.Buffer
	if err := JSON(&buf, e); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["ne"] != 0.9 || got["examples_per_sec"] != 1234.0 || got["baseline"].(map[string]any)["auc"] != nil ||
		math.Abs(got["delta"].(map[string]any)["ne_pct"].(float64)-12.5) > 1e-9 {
		t.Errorf("json: %s", buf.String())
	}
	buf.Reset()
	if err := EvalTable(&buf, e); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.90000", "0.80000", "+12.500%", "n/a", "1234 examples/s", "m.pt on d.npz rows 0:10"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 6417764: "6.1 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1285: "1,285", 15429: "15,429",
		178274637: "178,274,637", -1234567: "-1,234,567", math.MinInt64: "-9,223,372,036,854,775,808"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
