package cmd

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
)

func TestSearchHoldoutFlag(t *testing.T) {
	for _, tc := range []struct {
		rows, holdout string
		ok            bool
	}{
		{"15429:16715", "16715:18000", true},
		{"15429:16715", "0:15429", true},
		{"15429:16715", "16715:", true},
		{"100:", "0:100", true},
		{"15429:16715", "16000:17000", false}, // overlaps the end
		{"15429:16715", "15000:15430", false}, // overlaps the start
		{"15429:16715", "15500:15600", false}, // inside
		{"15429:16715", ":", false},           // every row
		{"", "16715:18000", false},            // the search sees every row
		{"100:", "50:", false},
		{"15429:16715", "5:3", false}, // not a range
	} {
		err := checkHoldout(tc.holdout, tc.rows)
		if (err == nil) != tc.ok {
			t.Errorf("--rows %q --holdout %q: %v, want ok %v", tc.rows, tc.holdout, err, tc.ok)
		}
		if err != nil && exitCode(err) != ExitUsage {
			t.Errorf("--rows %q --holdout %q: exit %d, want usage (%d)", tc.rows, tc.holdout, exitCode(err), ExitUsage)
		}
	}
	_, stderr, code := rq(t, "search", "--model", "m.pt", "--data", "d.npz", "--rows", "0:100", "--holdout", "50:150", "--max-ne-delta", "0.05", "-o", "p.json")
	if code != ExitUsage || !strings.Contains(stderr, "--holdout 50:150 overlaps") {
		t.Errorf("overlapping --holdout: exit %d, %q", code, stderr)
	}
}

// TestSearchHoldout runs the search on the DCN with held-out rows: the
// held-out figures must be rq eval's on those rows for the plan written,
// and the exit code must follow the held-out verdict.
func TestSearchHoldout(t *testing.T) {
	dir := testshared.Path(t, "criteo-torchrec")
	src := filepath.Join(dir, "dcn.safetensors")
	data := filepath.Join(dir, "day_0_dense.npy")
	tmp := t.TempDir()
	ranges, plan, q := filepath.Join(tmp, "ranges.json"), filepath.Join(tmp, "plan.json"), filepath.Join(tmp, "q.safetensors")
	if _, stderr, code := rq(t, "calibrate", "--model", src, "--data", data, "--rows", "0:15429", "-o", ranges); code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, stderr)
	}
	out, stderr, code := rq(t, "search", "--model", src, "--ranges", ranges, "--data", data, "--rows", "15429:16715",
		"--holdout", "16715:18000", "--max-ne-delta", "0.05", "-o", plan, "--json")
	var res struct {
		Attained bool
		Holdout  *struct {
			Rows     int
			DeltaNE  struct{ Point, Lo, Hi float64 } `json:"delta_ne_pct"`
			DeltaAUC struct{ Point float64 }         `json:"delta_auc"`
			Verdict  string
			Bytes    int64
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("search --json: %v\n%s", err, out)
	}
	h := res.Holdout
	if !res.Attained || h == nil || h.Rows != 1285 {
		t.Fatalf("attained %v, holdout %+v", res.Attained, h)
	}
	t.Logf("held out: ΔNE %+v, %s", h.DeltaNE, h.Verdict)
	switch {
	case h.Verdict == "pass" && code != 0, h.Verdict != "pass" && code != ExitBudget:
		t.Errorf("held-out verdict %s, exit %d: %s", h.Verdict, code, stderr)
	case h.Verdict != "pass" && !strings.Contains(stderr, "held-out rows 16715:18000"):
		t.Errorf("exit 3 without naming the held-out rows: %s", stderr)
	}
	if _, stderr, code := rq(t, "quantize", "--model", src, "--plan", plan, "--ranges", ranges, "-o", q); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr)
	}
	out, _, _ = rq(t, "eval", "--model", q, "--baseline", src, "--data", data, "--rows", "16715:18000", "--json")
	e := evalOut(t, out)
	if math.Abs(e.Delta.NEPct-h.DeltaNE.Point) > 1e-9 || e.Bytes != h.Bytes || h.DeltaNE.Lo > h.DeltaNE.Point || h.DeltaNE.Hi < h.DeltaNE.Point {
		t.Errorf("held-out ΔNE %+v, %d B; rq eval on those rows: %+.6f%%, %d B", h.DeltaNE, h.Bytes, e.Delta.NEPct, e.Bytes)
	}
}
