package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeFlags(t *testing.T) {
	var got *mergeOptions
	g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	c := newMergeCmd(g, func(_ context.Context, o *mergeOptions) error { got = o; return nil })
	c.SetArgs([]string{"a.json", "b.json", "-o", "out.json", "--json", "--partial", "--max-ne-delta", "0.05", "--summary-md", "s.md"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.files, ",") != "a.json,b.json" || got.output != "out.json" || !got.json || !got.partial ||
		got.maxNEDelta != 0.05 || !math.IsNaN(got.maxAUCDrop) || got.summaryMD != "s.md" {
		t.Errorf("parsed %+v", got)
	}
	c = newMergeCmd(g, func(context.Context, *mergeOptions) error { return nil })
	c.SetArgs(nil)
	if err := c.Execute(); err == nil {
		t.Error("merge with no files accepted")
	}
}

// TestMergeEvalShards: an evaluation (with a baseline and a per-batch
// dynamic quantization, so batches matter) split into shards and merged
// gives exactly the figures of one run, and bad merges are refused.
func TestMergeEvalShards(t *testing.T) {
	model, data, dir, q := quantizedCriteo(t, "pytorch-dynamic")
	common := []string{"eval", "--model", q, "--baseline", model, "--data", data, "--rows", "10000:16715", "--batch", "500", "--json", "-q"}
	full, stderr, code := rq(t, common...)
	if code != 0 {
		t.Fatal(stderr)
	}
	const n = 3
	var states []string
	for i := range n {
		s := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		if _, stderr, code := rq(t, append(common, "--shard", fmt.Sprintf("%d/%d", i, n), "--state-out", s)...); code != 0 {
			t.Fatal(stderr)
		}
		states = append(states, s)
	}
	merged, stderr, code := rq(t, "merge", states[2], states[0], states[1], "--json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var a, b map[string]any
	if err := json.Unmarshal([]byte(full), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(merged), &b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"examples", "ne", "logloss", "auc", "auc_error_bound", "calibration", "accuracy", "ctr", "baseline", "delta", "max_abs_pred_diff", "bytes", "baseline_bytes"} {
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if a[k] == nil || string(ja) != string(jb) {
			t.Errorf("%s: merged %s, one run %s", k, jb, ja)
		}
	}
	if b["shards"] != "all 3" {
		t.Errorf("shards %v", b["shards"])
	}
	// A budget on the merged result gates like rq eval's.
	if _, _, code := rq(t, "merge", states[0], states[1], states[2], "--max-ne-delta", "0.0001"); code != ExitBudget {
		t.Errorf("broken budget: exit %d, want %d", code, ExitBudget)
	}
	// A tree of merges gives the same.
	part := filepath.Join(dir, "part.json")
	if _, stderr, code := rq(t, "merge", states[0], states[1], "--partial", "-o", part); code != 0 {
		t.Fatal(stderr)
	}
	tree, _, code := rq(t, "merge", part, states[2], "--json")
	if code != 0 || !sameKeys(t, tree, merged, "ne", "auc", "delta") {
		t.Errorf("tree merge differs: %s", tree)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{states[0], states[1]}, "shards 2 of 3 are missing"},
		{[]string{states[0], states[0], states[1], states[2]}, "is in both"},
		{[]string{states[0], sharedFile(t, "peer-test.json")}, "not an evaluation state"},
	} {
		_, stderr, code := rq(t, append([]string{"merge"}, tc.args...)...)
		if code != ExitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("merge %v: exit %d, %q; want 1 and %q", tc.args, code, stderr, tc.want)
		}
	}
	// Another model's shard is refused.
	other := filepath.Join(dir, "other.json")
	if _, stderr, code := rq(t, "eval", "--model", model, "--baseline", model, "--data", data, "--rows", "10000:16715", "--batch", "500", "-q", "--shard", "1/3", "--state-out", other); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := rq(t, "merge", states[0], other, states[2]); code != ExitError || !strings.Contains(stderr, "model sha256") {
		t.Errorf("other model: exit %d, %q", code, stderr)
	}
	// A corrupt state is an error naming the file.
	bad := filepath.Join(dir, "bad.json")
	raw, _ := os.ReadFile(states[1])
	if err := os.WriteFile(bad, bytes.Replace(raw, []byte(`"examples":`), []byte(`"examples":9`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := rq(t, "merge", states[0], bad, states[2]); code != ExitError || !strings.Contains(stderr, "bad.json") {
		t.Errorf("corrupt state: exit %d, %q", code, stderr)
	}
}

func sameKeys(t *testing.T, x, y string, keys ...string) bool {
	t.Helper()
	var a, b map[string]any
	if json.Unmarshal([]byte(x), &a) != nil || json.Unmarshal([]byte(y), &b) != nil {
		return false
	}
	for _, k := range keys {
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if string(ja) != string(jb) {
			return false
		}
	}
	return true
}

// TestMergeCalibrationShards: shards of a calibration merge into the very
// bytes of one run's ranges.json, in any order and in a tree.
func TestMergeCalibrationShards(t *testing.T) {
	model, data := sharedFile(t, "dlrm-criteo.pt"), sharedFile(t, "dlrm-processed.npz")
	dir := t.TempDir()
	common := []string{"calibrate", "--model", model, "--data", data, "--rows", "0:6000", "--batch", "700", "-q"}
	want := filepath.Join(dir, "full.json")
	if _, stderr, code := rq(t, append(common, "-o", want)...); code != 0 {
		t.Fatal(stderr)
	}
	var parts []string
	for i := range 4 {
		p := filepath.Join(dir, fmt.Sprintf("r%d.json", i))
		if _, stderr, code := rq(t, append(common, "--shard", fmt.Sprintf("%d/4", i), "-o", p)...); code != 0 {
			t.Fatal(stderr)
		}
		parts = append(parts, p)
	}
	got := filepath.Join(dir, "merged.json")
	if _, stderr, code := rq(t, "merge", parts[3], parts[1], parts[0], parts[2], "-o", got); code != 0 {
		t.Fatal(stderr)
	}
	wb, _ := os.ReadFile(want)
	gb, _ := os.ReadFile(got)
	if !bytes.Equal(wb, gb) {
		t.Error("merged shards differ from one run's ranges.json")
	}
	half := filepath.Join(dir, "half.json")
	if _, stderr, code := rq(t, "merge", parts[2], parts[0], "-o", half); code != ExitError || !strings.Contains(stderr, "give every shard") {
		t.Errorf("partial merge without --partial: exit %d, %q", code, stderr)
	}
	if _, stderr, code := rq(t, "merge", parts[2], parts[0], "-o", half, "--partial"); code != 0 {
		t.Fatal(stderr)
	}
	tree := filepath.Join(dir, "tree.json")
	if _, stderr, code := rq(t, "merge", parts[1], half, parts[3], "-o", tree); code != 0 {
		t.Fatal(stderr)
	}
	if tb, _ := os.ReadFile(tree); !bytes.Equal(wb, tb) {
		t.Error("a tree of merges differs from one run's ranges.json")
	}
	if _, stderr, code := rq(t, "merge", parts[0], half, "-o", tree); code != ExitError || !strings.Contains(stderr, "both hold shard 0") {
		t.Errorf("overlapping shards: exit %d, %q", code, stderr)
	}
	if _, stderr, code := rq(t, "merge", parts[0], parts[1]); code != ExitUsage || !strings.Contains(stderr, "-o") {
		t.Errorf("no -o: exit %d, %q", code, stderr)
	}
}
