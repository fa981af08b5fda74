package cmd

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rqtools/rq/modelio"
)

// TestMain lets the test binary stand in for rq itself (RQ_TEST_AS_RQ=1,
// arguments one per line in RQ_TEST_ARGS), so tests can signal a real rq
// process.
func TestMain(m *testing.M) {
	if os.Getenv("RQ_TEST_AS_RQ") == "1" {
		if os.Getenv("RQ_TEST_CRASH") != "" && os.Getenv(supervisedEnv) != "" {
			// A runtime death in the process doing the work: an unrecovered
			// panic on another goroutine, as a bug would cause.
			go func() { panic(os.Getenv("RQ_TEST_CRASH")) }()
			select {}
		}
		os.Args = append(os.Args[:1], strings.Split(os.Getenv("RQ_TEST_ARGS"), "\n")...)
		os.Exit(Execute())
	}
	os.Exit(m.Run())
}

// writeWideModel writes a DLRM state dict with 4 tables of rows x 32 fp32
// (rows*512 bytes): big enough that quantizing it takes a while.
func writeWideModel(t *testing.T, path string, rows int) {
	t.Helper()
	const dim, tables = 32, 4
	fill := func(n int, scale float32) func(w io.Writer) error {
		return func(w io.Writer) error {
			buf := make([]byte, 4*4096)
			for i := 0; i < n; {
				k := min(4096, n-i)
				for j := range k {
					binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(scale*float32((i+j)%97-48)/48))
				}
				if _, err := w.Write(buf[:4*k]); err != nil {
					return err
				}
				i += k
			}
			return nil
		}
	}
	specs := []modelio.TensorSpec{
		{Name: "bot_l.0.weight", DType: modelio.F32, Shape: []int{dim, 13}, Write: fill(dim*13, 0.3)},
		{Name: "bot_l.0.bias", DType: modelio.F32, Shape: []int{dim}, Write: fill(dim, 0.1)},
	}
	for i := range tables {
		specs = append(specs, modelio.TensorSpec{Name: "emb_l." + strconv.Itoa(i) + ".weight", DType: modelio.F32, Shape: []int{rows, dim}, Write: fill(rows*dim, 0.01)})
	}
	in := dim + (tables+1)*tables/2
	specs = append(specs,
		modelio.TensorSpec{Name: "top_l.0.weight", DType: modelio.F32, Shape: []int{16, in}, Write: fill(16*in, 0.2)},
		modelio.TensorSpec{Name: "top_l.0.bias", DType: modelio.F32, Shape: []int{16}, Write: fill(16, 0.1)},
		modelio.TensorSpec{Name: "top_l.2.weight", DType: modelio.F32, Shape: []int{1, 16}, Write: fill(16, 0.2)},
		modelio.TensorSpec{Name: "top_l.2.bias", DType: modelio.F32, Shape: []int{1}, Write: fill(1, 0.1)},
	)
	if err := modelio.WriteSafetensors(path, specs, nil); err != nil {
		t.Fatal(err)
	}
}

// writingIn reports whether process pid, or a process it started (the
// supervised rq), has a file open in dir: the output being written (an
// unnamed O_TMPFILE shows as "dir/#inode (deleted)").
func writingIn(pid int, dir string) bool {
	for _, p := range withChildren(pid) {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(p), "fd"))
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "fd", fd.Name()))
			if err == nil && strings.HasPrefix(l, dir+string(filepath.Separator)) {
				return true
			}
		}
	}
	return false
}

// withChildren is pid and its child processes.
func withChildren(pid int) []int {
	out := []int{pid}
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// TestQuantizeSignals: a real rq quantize process interrupted (SIGINT) or
// killed (SIGKILL) while writing its output leaves the previous output as it
// was and no partial or temporary file in the directory.
func TestQuantizeSignals(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watching a process's open files needs /proc")
	}
	model := filepath.Join(t.TempDir(), "wide.safetensors")
	writeWideModel(t, model, 400000) // 205 MB of tables
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		outDir := t.TempDir()
		out := filepath.Join(outDir, "q.safetensors")
		if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
			t.Fatal(err)
		}
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "RQ_TEST_AS_RQ=1", "RQ_TEST_ARGS="+strings.Join([]string{"quantize", "--model", model, "--preset", "fp16", "-o", out, "-q"}, "\n"))
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for !writingIn(c.Process.Pid, outDir) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		if err := c.Process.Signal(sig); err != nil {
			t.Fatalf("%v: %v (did rq finish before it was signalled? %s)", sig, err, stderr.String())
		}
		err := c.Wait()
		ee, _ := err.(*exec.ExitError)
		switch {
		case ee == nil:
			t.Errorf("%v: rq exited 0: it finished before the signal, so the test proved nothing", sig)
		case sig == syscall.SIGINT && (ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted by SIGINT")):
			t.Errorf("SIGINT: exit %d, stderr %q; want exit 130 and \"interrupted by SIGINT\"", ee.ExitCode(), stderr.String())
		}
		if got, _ := os.ReadFile(out); string(got) != "previous" {
			t.Errorf("%v: the previous output was changed (%d bytes)", sig, len(got))
		}
		entries, _ := os.ReadDir(outDir)
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%v: files left in the output directory: %v", sig, names)
		}
	}
}
