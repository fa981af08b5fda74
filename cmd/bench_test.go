package cmd

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// TestBenchCeiling runs rq bench --ceiling with the fake peer of
// bench/testdata (a test of the parser and the plumbing; bench's
// TestRealOneDNNMatmul runs oneDNN itself): each GEMM row gets its column,
// a thread count oneDNN does not run gets a note, and a broken peer or
// selection is an error naming what is wrong.
func TestBenchCeiling(t *testing.T) {
	peer, err := filepath.Abs("../bench/testdata/fakepeer.sh")
	if err != nil {
		t.Fatal(err)
	}
	args := func(extra ...string) []string {
		return append([]string{"bench", "--shapes", "3,4,5", "--min-time", "1ms", "--trials", "1", "--ceiling", peer}, extra...)
	}
	t.Setenv("FAKE_PEER", "matmul")
	out, stderr, code := rq(t, args("--kernel", "gemm-int8", "--kernel", "gemm-bf16", "--kernel", "gemm-fp16", "--json")...)
	var rs []struct {
		Kernel      string  `json:"kernel"`
		GOPS        float64 `json:"gops"`
		Ceiling     float64 `json:"ceiling"`
		CeilingName string  `json:"ceiling_name"`
		Ratio       float64 `json:"ratio"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 3 {
		t.Fatalf("exit %d %s\n%s", code, stderr, out)
	}
	want := map[string]float64{"gemm-int8": 1003.5, "gemm-bf16": 2004, "gemm-fp16": 3005}
	for _, r := range rs {
		if r.Ceiling != want[r.Kernel] || !strings.HasPrefix(r.CeilingName, "oneDNN matmul ") || r.Ratio != r.GOPS/r.Ceiling {
			t.Errorf("%+v, want ceiling %v", r, want[r.Kernel])
		}
	}

	t.Setenv("FAKE_NTHR", "1")
	out, stderr, code = rq(t, args("--kernel", "gemm-fp32", "--threads", "1,2")...)
	if code != 0 || !strings.Contains(out, "3005.0 (oneDNN matmul fp32)") ||
		!strings.Contains(out, "no ceiling at 2 threads: oneDNN (runtime OpenMP) ran 1 threads with OMP_NUM_THREADS=2") {
		t.Errorf("sequential oneDNN at 1,2 threads: exit %d %s\n%s", code, stderr, out)
	}
	if strings.Contains(out, "no ceiling at 1 threads") {
		t.Errorf("a note at 1 thread:\n%s", out)
	}

	t.Setenv("FAKE_PEER", "garbage")
	_, stderr, code = rq(t, args("--kernel", "gemm-fp32")...)
	if code != ExitError || !strings.Contains(stderr, "fakepeer.sh 3 4 5") || !strings.Contains(stderr, "hello from a program that is not oneDNN") {
		t.Errorf("a garbage peer: exit %d %s", code, stderr)
	}
	_, stderr, code = rq(t, args("--kernel", "interaction")...)
	if code != ExitUsage || !strings.Contains(stderr, "GEMM kernels only") {
		t.Errorf("--ceiling with no GEMM kernel: exit %d %s", code, stderr)
	}
	_, stderr, code = rq(t, "bench", "--kernel", "gemm-fp32", "--ceiling", filepath.Join(t.TempDir(), "onednn_matmul"))
	if code != ExitUsage || !strings.Contains(stderr, "onednn_matmul") {
		t.Errorf("a missing peer: exit %d %s", code, stderr)
	}
}

// TestBenchSaysAMX: rq bench's header says whether the matrix units are
// in use, and why not, as kernels.AMX decides.
func TestBenchSaysAMX(t *testing.T) {
	out, stderr, code := rq(t, "bench", "--kernel", "gemm-fp32", "--shapes", "16,16,16", "--min-time", "1ms", "--trials", "1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "AMX: on"
	if ok, why := kernels.AMX(); !ok {
		want = "AMX: off (" + why + ")"
	}
	if first, _, _ := strings.Cut(out, "\n"); !strings.HasPrefix(first, "CPU features: ") || !strings.HasSuffix(first, want) {
		t.Errorf("first line %q, want the CPU features and %q", first, want)
	}
}
