package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyFile copies src to a new file in dir, for tests that must not touch
// the originals.
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOutputOntoInput: an output that is one of the inputs (by name, through
// a symbolic link or a hard link) is a usage error before any work, and the
// input is left as it was.
func TestOutputOntoInput(t *testing.T) {
	dir := t.TempDir()
	model := copyFile(t, filepath.Join("testdata", "demo", "model.safetensors"), dir)
	data := copyFile(t, filepath.Join("testdata", "demo", "criteo-test.npz"), dir)
	orig, _ := os.ReadFile(model)
	origData, _ := os.ReadFile(data)
	sym := filepath.Join(dir, "sym.safetensors")
	hard := filepath.Join(dir, "hard.safetensors")
	os.Symlink(model, sym)
	os.Link(model, hard)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"quantize", "--model", model, "--preset", "int8-dynamic", "-o", model}, "-o " + model + " is the same file as --model"},
		{[]string{"quantize", "--model", model, "--preset", "int8-dynamic", "-o", sym}, "is the same file as --model"},
		{[]string{"quantize", "--model", sym, "--preset", "int8-dynamic", "-o", hard}, "is the same file as --model"},
		{[]string{"calibrate", "--model", model, "--data", data, "-o", model}, "is the same file as --model"},
		{[]string{"eval", "--model", model, "--data", data, "--state-out", data}, "--state-out " + data + " is the same file as --data"},
		{[]string{"eval", "--model", model, "--data", data, "--summary-md", hard}, "is the same file as --model"},
		{[]string{"debug", "--model", model, "--quantized", model, "--data", data, "--html", data}, "is the same file as --data"},
		{[]string{"eval", "--model", model, "--data", data, "--summary-md", filepath.Join(dir, "s"), "--state-out", filepath.Join(dir, "s")}, "are the same file"},
		{[]string{"quantize", "--model", model, "--preset", "fp16", "-o", filepath.Join(dir, "no", "such", "dir", "q.safetensors")}, "does not exist"},
		{[]string{"quantize", "--model", model, "--preset", "fp16", "-o", dir}, "is a directory"},
	} {
		_, stderr, code := rq(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q on one line", tc.args, code, stderr, tc.want)
		}
	}
	if b, _ := os.ReadFile(model); !bytes.Equal(b, orig) {
		t.Error("the model was modified")
	}
	if b, _ := os.ReadFile(data); !bytes.Equal(b, origData) {
		t.Error("the data was modified")
	}
}

// TestOutputDevNull: -o /dev/null runs and leaves /dev/null a device (as
// root a rename over it would succeed).
func TestOutputDevNull(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /dev/null")
	}
	model := filepath.Join("testdata", "demo", "model.safetensors")
	if _, stderr, code := rq(t, "quantize", "--model", model, "--preset", "int8-dynamic", "-o", "/dev/null"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a character device: %v %v", fi.Mode(), err)
	}
}

// TestInputFIFO: a FIFO (or any file that is not regular) given as an input
// is refused at once instead of hanging.
func TestInputFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	model := filepath.Join("testdata", "demo", "model.safetensors")
	data := filepath.Join("testdata", "demo", "criteo-test.npz")
	for _, args := range [][]string{
		{"inspect", fifo},
		{"eval", "--model", fifo, "--data", data},
		{"eval", "--model", model, "--data", fifo},
		{"quantize", "--model", model, "--plan", fifo, "-o", filepath.Join(dir, "q")},
		{"quantize", "--model", model, "--preset", "int8", "--ranges", fifo, "-o", filepath.Join(dir, "q")},
		{"eval", "--model", model, "--data", dir},
	} {
		done := make(chan struct{})
		var stderr string
		var code int
		go func() { _, stderr, code = rq(t, args...); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: still running after 10 s (reading the FIFO?)", args)
		}
		if code != ExitUsage || !strings.Contains(stderr, "not a regular file") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
