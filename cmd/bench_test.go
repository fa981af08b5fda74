package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/bench"
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

// TestBenchBagFlags checks the bag flags of rq bench apart from measuring
// (TestBenchFlags in cmd_test.go has the GEMM ones).
func TestBenchBagFlags(t *testing.T) {
	var got *benchOptions
	g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	c := newBenchCmd(g, func(_ context.Context, o *benchOptions) error { got = o; return nil })
	c.SetArgs([]string{"--kernel", "bag-int4", "--kernel", "bag-mxfp4,bag-mxint8", "--shapes", "1,2,3", "--threads", "1,2",
		"--min-time", "5ms", "--trials", "2", "--table-mib", "64", "--json"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.kernels, []string{"bag-int4", "bag-mxfp4", "bag-mxint8"}) || got.shapes != "1,2,3" || !slices.Equal(got.threads, []int{1, 2}) ||
		got.minTime != 5*time.Millisecond || got.trials != 2 || got.tableMiB != 64 || !got.json {
		t.Errorf("parsed %+v", got)
	}
	c = newBenchCmd(g, func(_ context.Context, o *benchOptions) error { got = o; return nil })
	c.SetArgs(nil)
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.tableMiB != 1024 || got.kernels != nil {
		t.Errorf("defaults: table %d MiB, kernels %v; want 1024 and all", got.tableMiB, got.kernels)
	}
	for _, bad := range [][]string{{"--table-mib", "0"}, {"--table-mib", "2000000"}, {"--kernel", "bag-mxfp9"}} {
		_, stderr, code := rq(t, append([]string{"bench", "--min-time", "1ms", "--trials", "1"}, bad...)...)
		if code != ExitUsage || !strings.Contains(stderr, bad[0]) {
			t.Errorf("%v: exit %d %s", bad, code, stderr)
		}
	}
}

// TestBenchMXBags: the MX bags are listed and measured beside the
// row-wise ones, at the same points, in the table and in --json, each
// naming its implementation.
func TestBenchMXBags(t *testing.T) {
	all := bench.Kernels()
	for _, f := range kernels.MXFormats {
		if n := "bag-" + f.Precision().String(); !slices.Contains(all, n) {
			t.Errorf("rq bench does not offer %s: %v", n, all)
		}
	}
	ks := []string{"bag-int4", "bag-mxfp4", "bag-mxfp6_e2m3", "bag-mxint8"}
	args := []string{"bench", "--table-mib", "1", "--min-time", "1ms", "--trials", "1"}
	for _, k := range ks {
		args = append(args, "--kernel", k)
	}
	out, stderr, code := rq(t, append(args, "--json")...)
	var rs []struct {
		Kernel     string  `json:"kernel"`
		Impl       string  `json:"impl"`
		GBps       float64 `json:"gbps"`
		RowsPerSec float64 `json:"rows_per_sec"`
		GOPS       float64 `json:"gops"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &rs) != nil {
		t.Fatalf("exit %d %s\n%s", code, stderr, out)
	}
	points := map[string]int{}
	for _, r := range rs {
		points[r.Kernel]++
		if r.GBps <= 0 || r.RowsPerSec <= 0 || r.GOPS != 0 || r.Impl == "" {
			t.Errorf("%+v: want GB/s, rows/s and an impl, no GOPS", r)
		}
	}
	for _, k := range ks {
		if points[k] == 0 || points[k] != points["bag-int4"] {
			t.Errorf("%s at %d points, bag-int4 at %d", k, points[k], points["bag-int4"])
		}
	}
	out, stderr, code = rq(t, args...)
	if code != ExitOK {
		t.Fatalf("exit %d %s", code, stderr)
	}
	rows := map[string]int{}
	fig := regexp.MustCompile(`^[0-9.]+ GB/s, [0-9.]+M rows/s$`)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "│")
		if len(f) < 8 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if slices.Contains(ks, f[1]) && f[2] != "" && fig.MatchString(f[7]) {
			rows[f[1]]++
		}
	}
	for _, k := range ks {
		if rows[k] != points[k] {
			t.Errorf("%s: %d table rows with an impl, GB/s and rows/s, %d in --json:\n%s", k, rows[k], points[k], out)
		}
	}
}
