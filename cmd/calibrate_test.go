package cmd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/calibrate"
)

// TestCalibrateAccessCountsCriteo: rq calibrate on criteo-18k's training
// rows counts every table's lookups: one id per row and table (the data
// is one-hot), all exact (no table has more than 2^20 rows), and the hot
// rows' counts add up to them.
func TestCalibrateAccessCountsCriteo(t *testing.T) {
	model, data := sharedFile(t, "dlrm-criteo.pt"), sharedFile(t, "dlrm-processed.npz")
	out := filepath.Join(t.TempDir(), "ranges.json")
	stdout, stderr, code := rq(t, "calibrate", "--model", model, "--data", data, "--rows", "0:15429", "-o", out)
	if code != 0 {
		t.Fatal(stderr)
	}
	const rows, tables = 15429, 26
	if !strings.Contains(stdout, "counted 401154 row lookups in 26 tables (26 counted exactly, 0 as a summary of the hottest rows)") {
		t.Errorf("summary line missing:\n%s", stdout)
	}
	r, err := calibrate.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tables) != tables {
		t.Fatalf("%d tables, want %d", len(r.Tables), tables)
	}
	var total uint64
	for name := range r.Tables {
		ta, ok := r.TableAccess(name)
		if !ok {
			t.Fatalf("TableAccess(%q) not found", name)
		}
		var sum uint64
		for _, h := range ta.HotRows {
			sum += h.Count
		}
		if ta.Lookups != rows || !ta.Exact || sum != rows {
			t.Errorf("%s: %d lookups (exact %v, hot rows sum to %d), want %d exact", name, ta.Lookups, ta.Exact, sum, rows)
		}
		// The hottest row of a Criteo table is looked up far more than
		// once: counts are real, not a row list.
		if len(ta.HotRows) == 0 || ta.HotRows[0].Count < 2 || len(ta.Hot(1)) != len(ta.HotRows) {
			t.Errorf("%s: %d hot rows, hottest %v", name, len(ta.HotRows), ta.HotRows[:min(1, len(ta.HotRows))])
		}
		total += ta.Lookups
	}
	if total != tables*rows {
		t.Errorf("%d lookups in all, want 26 x 15,429 = %d", total, tables*rows)
	}
}
