//go:build linux

package cmd

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rqProcess starts the test binary as a real, supervised rq process.
func rqProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(append(os.Environ(), "RQ_TEST_AS_RQ=1", "RQ_TEST_ARGS="+strings.Join(args, "\n")), env...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c, &stderr
}

func exitOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestSupervisedExitCodes: a runtime death of the working process (an
// unrecovered panic exits 2 in Go) is reported as exit 1, and usage errors
// keep exit 2.
func TestSupervisedExitCodes(t *testing.T) {
	c, stderr := rqProcess(t, []string{"RQ_TEST_CRASH=boom in a worker"}, "inspect", "x")
	if code := exitOf(c.Wait()); code != ExitError || !strings.Contains(stderr.String(), "runtime failure") || !strings.Contains(stderr.String(), "boom in a worker") {
		t.Errorf("runtime death: exit %d, stderr %q; want 1, the panic and \"runtime failure\"", code, stderr.String())
	}
	// A closed stdout (rq inspect m | head): 141 and no "runtime failure".
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c = exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "RQ_TEST_AS_RQ=1", "RQ_TEST_ARGS="+strings.Join([]string{"inspect", filepath.Join("testdata", "demo", "model.safetensors")}, "\n"))
	c.Stdout = w
	var pipeErr bytes.Buffer
	c.Stderr = &pipeErr
	if code := exitOf(c.Run()); code != 141 || pipeErr.Len() != 0 {
		t.Errorf("closed stdout: exit %d, stderr %q; want 141 and nothing", code, pipeErr.String())
	}
	w.Close()
	c, stderr = rqProcess(t, nil, "eval", "--no-such-flag")
	if code := exitOf(c.Wait()); code != ExitUsage || !strings.Contains(stderr.String(), "unknown flag") {
		t.Errorf("usage error: exit %d, stderr %q", code, stderr.String())
	}
}

// writeNewlines writes a gzip of n empty lines: a click log whose every row
// is malformed, which rq eval --bad-rows skip reads for a long time.
func writeNewlines(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	line := bytes.Repeat([]byte("\n"), 1<<20)
	for i := 0; i < n; i += len(line) {
		zw.Write(line[:min(len(line), n-i)])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestStopSignals: SIGTERM or SIGINT during a long command (here a skip loop
// over 400 M malformed rows) stops rq within a second with 128+signal, and
// the previous output stays as it was.
func TestStopSignals(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "newlines.tsv.gz")
	writeNewlines(t, data, 400<<20)
	model := filepath.Join("testdata", "demo", "model.safetensors")
	for _, tc := range []struct {
		sigs []syscall.Signal
		code int
		want string
	}{
		{[]syscall.Signal{syscall.SIGTERM}, 143, "interrupted by SIGTERM"},
		{[]syscall.Signal{syscall.SIGINT}, 130, "interrupted by SIGINT"},
	} {
		state := filepath.Join(dir, "state.json")
		os.WriteFile(state, []byte("previous"), 0o644)
		c, stderr := rqProcess(t, nil, "eval", "--model", model, "--data", data, "--data-format", "tsv", "--bad-rows", "skip", "--state-out", state, "-q")
		// Wait until the working process reads the data: well into the
		// skip loop, its signal handler long installed.
		deadline := time.Now().Add(30 * time.Second)
		for !reading(c.Process.Pid, data) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		for _, sig := range tc.sigs {
			c.Process.Signal(sig)
		}
		code := exitOf(c.Wait())
		took := time.Since(start)
		t.Logf("%v: exit %d after %v", tc.sigs, code, took)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.sigs, code, stderr.String(), tc.code, tc.want)
		}
		// The bound is a second; 1.5 s leaves room for a loaded machine.
		if took > 1500*time.Millisecond {
			t.Errorf("%v: rq took %v to stop", tc.sigs, took)
		}
		if b, _ := os.ReadFile(state); string(b) != "previous" {
			t.Errorf("%v: the previous --state-out was changed", tc.sigs)
		}
	}
}

// reading reports whether process pid or a child of it has path open.
func reading(pid int, path string) bool {
	abs, _ := filepath.Abs(path)
	for _, p := range withChildren(pid) {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(p), "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "fd", fd.Name())); err == nil && l == abs {
				return true
			}
		}
	}
	return false
}
