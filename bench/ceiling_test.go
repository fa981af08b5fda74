package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakePeer is testdata/fakepeer.sh in mode, a test of our parser of the
// peers' lines (the real onednn_matmul runs in TestRealOneDNNMatmul).
func fakePeer(t *testing.T, mode string) *Peer {
	t.Helper()
	t.Setenv("FAKE_PEER", mode)
	bin, err := filepath.Abs("testdata/fakepeer.sh")
	if err != nil {
		t.Fatal(err)
	}
	return NewPeer(context.Background(), bin)
}

// TestPeerColumns: each GEMM kernel gets the column of its math from
// either peer, the kind is told from the line, and kernels without a
// counterpart get nothing (and start no peer).
func TestPeerColumns(t *testing.T) {
	s := Shape{M: 7, N: 11, K: 13}
	cases := []struct {
		mode, kind string
		want       map[string]Ceiling
	}{
		{"matmul", PeerMatmul, map[string]Ceiling{
			"gemm-int8":         {GOPS: 1007.5, Name: "oneDNN matmul int8"},
			"gemm-int8-dynamic": {GOPS: 1007.5, Name: "oneDNN matmul int8"},
			"gemm-bf16":         {GOPS: 2011, Name: "oneDNN matmul bf16"},
			"gemm-fp32":         {GOPS: 3013, Name: "oneDNN matmul fp32"},
			"gemm-fp16":         {GOPS: 3013, Name: "oneDNN matmul fp32"},
			"interaction":       {},
			"bag-fp32":          {},
		}},
		{"flood", PeerMatmul, map[string]Ceiling{"gemm-bf16": {GOPS: 2011, Name: "oneDNN matmul bf16"}}},
		{"gemm", PeerGemm, map[string]Ceiling{
			"gemm-int8":         {GOPS: 1007.5, Name: "oneDNN u8s8s32"},
			"gemm-int8-dynamic": {GOPS: 1007.5, Name: "oneDNN u8s8s32"},
			"gemm-bf16":         {GOPS: 3013, Name: "oneDNN sgemm"},
			"gemm-fp32":         {GOPS: 3013, Name: "oneDNN sgemm"},
			"gemm-fp16":         {GOPS: 3013, Name: "oneDNN sgemm"},
		}},
	}
	for _, c := range cases {
		p := fakePeer(t, c.mode)
		if k := p.Kind(); k != "" {
			t.Errorf("%s: kind %q before any run", c.mode, k)
		}
		for kernel, want := range c.want {
			got, err := p.Ceiling(kernel, s, 1)
			if err != nil || got != want {
				t.Errorf("%s: %s: %+v %v, want %+v", c.mode, kernel, got, err, want)
			}
		}
		if k := p.Kind(); k != c.kind {
			t.Errorf("%s: kind %q, want %q", c.mode, k, c.kind)
		}
	}
	p := fakePeer(t, "fail")
	if got, err := p.Ceiling("interaction", s, 1); err != nil || got != (Ceiling{}) {
		t.Errorf("a kernel with no counterpart ran the peer: %+v %v", got, err)
	}
}

// TestPeerThreads: onednn_matmul's rows at a thread count oneDNN does not
// run say so instead of carrying a figure, and the probe that finds out is
// stopped as soon as oneDNN's header is read (the fake then hangs for 30 s).
func TestPeerThreads(t *testing.T) {
	s := Shape{M: 3, N: 4, K: 5}
	p := fakePeer(t, "matmul")
	t0 := time.Now()
	for _, th := range []int{1, 2, 3} {
		c, err := p.Ceiling("gemm-int8", s, th)
		if err != nil || c.GOPS != 1003.5 || c.Note != "" {
			t.Errorf("%d threads: %+v %v", th, c, err)
		}
	}
	if el := time.Since(t0); el > 15*time.Second {
		t.Errorf("three probes took %v: the probe waits for the peer instead of stopping it", el)
	}
	t.Setenv("FAKE_NTHR", "1") // a sequential oneDNN
	log := filepath.Join(t.TempDir(), "runs")
	t.Setenv("FAKE_LOG", log)
	p = fakePeer(t, "matmul")
	if c, err := p.Ceiling("gemm-bf16", s, 1); err != nil || c.GOPS != 2004 {
		t.Errorf("1 thread of a sequential oneDNN: %+v %v", c, err)
	}
	for _, kernel := range []string{"gemm-bf16", "gemm-int8", "gemm-fp32"} {
		c, err := p.Ceiling(kernel, s, 4)
		if err != nil || c.GOPS != 0 || c.Name != "oneDNN matmul "+strings.TrimPrefix(kernel, "gemm-") || !strings.Contains(c.Note, "ran 1 threads with OMP_NUM_THREADS=4") {
			t.Errorf("4 threads of a sequential oneDNN: %s: %+v %v", kernel, c, err)
		}
	}
	// One measurement and one probe at 1 thread, one probe at 4: nothing
	// is measured at a thread count found wanting.
	runs, err := os.ReadFile(log)
	if want := "3 4 5 1 0\n16 16 16 1 1\n16 16 16 4 1\n"; err != nil || string(runs) != want {
		t.Errorf("peer runs:\n%s(%v), want\n%s", runs, err, want)
	}
	// onednn_gemm prints no header: its thread count is taken on trust.
	p = fakePeer(t, "gemm")
	if c, err := p.Ceiling("gemm-int8", s, 4); err != nil || c.GOPS != 1003.5 || c.Note != "" {
		t.Errorf("onednn_gemm at 4 threads: %+v %v", c, err)
	}
}

// TestPeerErrors: a peer that fails or prints something else is an error
// naming the binary and quoting its line; a figure of 0.0 is a note.
func TestPeerErrors(t *testing.T) {
	s := Shape{M: 3, N: 4, K: 5}
	for mode, want := range map[string][]string{
		"fail":       {"fakepeer.sh 3 4 5", "exit status 127", "libdnnl.so.2"},
		"garbage":    {"fakepeer.sh 3 4 5", `"hello from a program that is not oneDNN"`, "not a oneDNN peer's line"},
		"wrongshape": {"fakepeer.sh 3 4 5", "M=1 N=4 K=5, not the shape asked"},
	} {
		_, err := fakePeer(t, mode).Ceiling("gemm-fp32", s, 1)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", mode, err, w)
			}
		}
	}
	p := fakePeer(t, "switch")
	if _, err := p.Ceiling("gemm-fp32", s, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ceiling("gemm-fp32", Shape{M: 4, N: 4, K: 5}, 1); err == nil || !strings.Contains(err.Error(), "onednn_gemm's line, after printing onednn_matmul's") {
		t.Errorf("a peer changing its format: %v", err)
	}
	c, err := fakePeer(t, "zero").Ceiling("gemm-int8", s, 1)
	if err != nil || c.GOPS != 0 || c.Note == "" {
		t.Errorf("a figure of 0.0: %+v %v", c, err)
	}
	if c, err := fakePeer(t, "zero").Ceiling("gemm-fp32", s, 1); err != nil || c.GOPS != 7 {
		t.Errorf("fp32 beside a 0.0: %+v %v", c, err)
	}
	if _, err := NewPeer(context.Background(), filepath.Join(t.TempDir(), "missing")).Ceiling("gemm-fp32", s, 1); err == nil || !strings.Contains(err.Error(), "missing 3 4 5") {
		t.Errorf("a missing binary: %v", err)
	}
	// Run ends on the peer's error rather than printing rows without it.
	_, err = Run(context.Background(), Options{Kernels: []string{"gemm-fp32"}, Shapes: []Shape{s}, MinTime: time.Millisecond, Trials: 1},
		fakePeer(t, "garbage").Ceiling)
	if err == nil || !strings.Contains(err.Error(), "not a oneDNN peer's line") {
		t.Errorf("Run with a broken peer: %v", err)
	}
}

// TestRealOneDNNMatmul builds ../shared/bench/onednn_matmul.cpp (beside
// the repository) and runs it through Peer, where a C++ compiler and
// oneDNN's headers are installed; elsewhere it skips. It reads no data, so
// it is not a shared-data test that CI must not skip.
func TestRealOneDNNMatmul(t *testing.T) {
	src := "../../shared/bench/onednn_matmul.cpp"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no %s: %v", src, err)
	}
	cxx, err := exec.LookPath("c++")
	if err != nil {
		t.Skip("no c++ compiler")
	}
	probe := exec.Command(cxx, "-E", "-x", "c++", "-")
	probe.Stdin = strings.NewReader("#include <dnnl.hpp>\n")
	if err := probe.Run(); err != nil {
		t.Skip("no oneDNN headers (apt-get install libdnnl-dev)")
	}
	bin := filepath.Join(t.TempDir(), "onednn_matmul")
	if out, err := exec.Command(cxx, "-O2", src, "-ldnnl", "-o", bin).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", src, err, out)
	}
	p := NewPeer(context.Background(), bin)
	s := Shape{M: 32, N: 48, K: 64}
	names := map[string]string{"gemm-int8": "oneDNN matmul int8", "gemm-bf16": "oneDNN matmul bf16", "gemm-fp32": "oneDNN matmul fp32"}
	for kernel, name := range names {
		c, err := p.Ceiling(kernel, s, 1)
		if err != nil || c.GOPS <= 0 || c.Name != name || c.Note != "" {
			t.Errorf("%s: %+v %v", kernel, c, err)
		}
	}
	if p.Kind() != PeerMatmul {
		t.Errorf("kind %q", p.Kind())
	}
	tc, err := p.probeThreads(2)
	if err != nil || !tc.checked || tc.runtime == "" {
		t.Errorf("thread probe at 2: %+v %v (oneDNN's verbose header not read)", tc, err)
	}
	// OpenMP takes OMP_NUM_THREADS; a sequential build runs one.
	if tc.checked && tc.nthr != 2 && !(tc.nthr == 1 && strings.Contains(strings.ToLower(tc.runtime), "seq")) {
		t.Errorf("oneDNN (runtime %s) reports %d threads for OMP_NUM_THREADS=2", tc.runtime, tc.nthr)
	}
	t.Logf("oneDNN runtime %s, %d threads at OMP_NUM_THREADS=2", tc.runtime, tc.nthr)
}
