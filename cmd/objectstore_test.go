package cmd

// rq on object storage (issue 16), against a real S3 server on loopback
// (internal/s3test: versitygw), never a mock.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rqtools/rq/internal/s3test"
	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/storage"
)

// startS3 starts the server with its credentials in this process's
// environment (inherited by the rq processes the tests start).
func startS3(t *testing.T) *s3test.Server {
	t.Helper()
	s := s3test.Start(t)
	s.SetEnv(t)
	return s
}

// figures are rq eval's JSON without what names the inputs or measures
// speed: what must be the same, bit for bit, wherever the inputs live.
func figures(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"model", "data", "examples_per_sec", "shards", "baseline"} {
		delete(m, k)
	}
	if _, ok := m["ne"].(float64); !ok {
		t.Fatalf("no NE in %s", out)
	}
	return m
}

func sameFigures(t *testing.T, what string, want, got map[string]any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if !bytes.Equal(w, g) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// TestObjectEval is the must-show: rq eval of a model and a click
// log in object storage gives the local files' figures bit for bit, for
// TorchRec's DLRM on the Parquet log and criteo-18k's model on its npz.
func TestObjectEval(t *testing.T) {
	s := startS3(t)
	for _, c := range []struct{ model, data, rows string }{
		{"criteo-torchrec/dlrm.safetensors", "criteo-torchrec/clicks.parquet", "15429:16715"},
		{"criteo-18k/model.safetensors", "criteo-18k/dlrm-processed.npz", "15429:16715"},
		{"criteo-18k/dlrm-criteo.pt", "criteo-18k/dlrm-processed.npz", ""},
	} {
		m, d := testshared.Path(t, c.model), testshared.Path(t, c.data)
		mu, du := s.PutFile(m, "in/"+c.model), s.PutFile(d, "in/"+c.data)
		args := func(model, data string) []string {
			a := []string{"eval", "--json", "-q", "--model", model, "--data", data}
			if c.rows != "" {
				a = append(a, "--rows", c.rows)
			}
			return a
		}
		out, stderr, code := rq(t, args(m, d)...)
		if code != 0 {
			t.Fatalf("local: exit %d: %s", code, stderr)
		}
		want := figures(t, out)
		out, stderr, code = rq(t, args(mu, du)...)
		if code != 0 {
			t.Fatalf("rq eval --model %s --data %s: exit %d: %s", mu, du, code, stderr)
		}
		sameFigures(t, c.model+" on "+c.data+" from S3", want, figures(t, out))
		t.Logf("%s on %s: NE %v AUC %v from the files and from S3", c.model, c.data, want["ne"], want["auc"])
	}
}

// TestObjectQuantize: rq quantize from an object to an object writes the
// bytes a local quantize writes, and the plan, ranges and search outputs
// go to objects too and read back.
func TestObjectQuantize(t *testing.T) {
	s := startS3(t)
	m := testshared.Path(t, "criteo-18k/model.safetensors")
	d := testshared.Path(t, "criteo-18k/dlrm-processed.npz")
	mu := s.PutFile(m, "models/model.safetensors")
	du := s.PutFile(d, "data/dlrm-processed.npz")
	dir := t.TempDir()
	local := filepath.Join(dir, "q.safetensors")

	// Calibrate, to objects and to a file: the same ranges.json.
	if _, stderr, code := rq(t, "calibrate", "-q", "--model", m, "--data", d, "--rows", "0:4000", "-o", filepath.Join(dir, "ranges.json")); code != 0 {
		t.Fatal(stderr)
	}
	ru := s.URL("run/ranges.json")
	if _, stderr, code := rq(t, "calibrate", "-q", "--model", mu, "--data", du, "--rows", "0:4000", "-o", ru); code != 0 {
		t.Fatal(stderr)
	}
	// The same ranges; the document names its data file and digests it.
	sameDoc(t, filepath.Join(dir, "ranges.json"), ru, "data", "digest")

	if _, stderr, code := rq(t, "quantize", "-q", "--model", m, "--preset", "int8", "--ranges", filepath.Join(dir, "ranges.json"), "-o", local); code != 0 {
		t.Fatal(stderr)
	}
	qu := s.URL("out/q.safetensors")
	out, stderr, code := rq(t, "quantize", "-q", "--model", mu, "--preset", "int8", "--ranges", ru, "-o", qu)
	if code != 0 {
		t.Fatalf("quantize to S3: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "wrote "+qu) {
		t.Errorf("quantize says %q", out)
	}
	sameObject(t, local, qu)

	// The quantized object evaluates as the file does.
	lo, stderr, code := rq(t, "eval", "--json", "-q", "--model", local, "--data", d, "--rows", "15429:16715")
	if code != 0 {
		t.Fatal(stderr)
	}
	ro, stderr, code := rq(t, "eval", "--json", "-q", "--model", qu, "--data", du, "--rows", "15429:16715")
	if code != 0 {
		t.Fatal(stderr)
	}
	sameFigures(t, "the quantized model from S3", figures(t, lo), figures(t, ro))

	// A search's plan and trace to objects, then quantize with the plan
	// object.
	pu, tu := s.URL("run/plan.json"), s.URL("run/trace.json")
	if _, stderr, code := rq(t, "search", "-q", "--model", mu, "--data", du, "--rows", "15429:16715", "--max-evals", "3", "--max-ne-delta", "1", "-o", pu, "--trace", tu); code != 0 && code != ExitBudget {
		t.Fatalf("search to S3: exit %d: %s", code, stderr)
	}
	for _, u := range []string{pu, tu} {
		if b, err := storage.ReadFile(context.Background(), u); err != nil || !json.Valid(b) {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if _, stderr, code := rq(t, "quantize", "-q", "--model", mu, "--plan", pu, "-o", s.URL("out/planned.safetensors")); code != 0 {
		t.Fatalf("quantize --plan %s: %s", pu, stderr)
	}
	// rq never overwrites an input, an object included.
	if _, stderr, code := rq(t, "quantize", "-q", "--model", mu, "--preset", "fp16", "-o", mu); code != ExitUsage || !strings.Contains(stderr, "same object") {
		t.Errorf("-o the input object: exit %d: %s", code, stderr)
	}
	if _, stderr, code := rq(t, "quantize", "-q", "--model", mu, "--preset", "fp16", "-o", s.URL("out/")); code != ExitUsage {
		t.Errorf("-o a prefix: exit %d: %s", code, stderr)
	}
}

// sameObject checks that an object holds a local file's bytes.
func sameObject(t *testing.T, local, u string) {
	t.Helper()
	want, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	got, err := storage.ReadFile(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not the %d bytes of %s", u, len(got), len(want), local)
	}
}

// sameDoc checks that an object holds a local JSON document's content but
// for the named top-level keys (those naming the inputs).
func sameDoc(t *testing.T, local, u string, except ...string) {
	t.Helper()
	var docs [2]map[string]any
	for i, b := range [][]byte{mustReadFile(t, local), mustRead(t, u)} {
		if err := json.Unmarshal(b, &docs[i]); err != nil {
			t.Fatal(err)
		}
		for _, k := range except {
			delete(docs[i], k)
		}
	}
	a, _ := json.Marshal(docs[0])
	b, _ := json.Marshal(docs[1])
	if len(docs[0]) < 3 || !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s beyond %v", u, local, except)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestObjectShardedJob runs rq as a Kubernetes Indexed Job would: N rq
// processes, each with JOB_COMPLETION_INDEX set and --shard
// $(JOB_COMPLETION_INDEX)/N expanded by the kubelet, reading the model and
// the log from S3 and writing its state to a prefix; then rq merge of the
// prefix gives the unsharded run's figures bit for bit. A missing shard is
// refused, as for files.
func TestObjectShardedJob(t *testing.T) {
	const n = 3
	s := startS3(t)
	for _, c := range []struct{ model, data string }{
		{"criteo-torchrec/dlrm.safetensors", "criteo-torchrec/clicks.parquet"},
		{"criteo-18k/model.safetensors", "criteo-18k/dlrm-processed.npz"},
	} {
		m, d := testshared.Path(t, c.model), testshared.Path(t, c.data)
		mu, du := s.PutFile(m, "in/"+c.model), s.PutFile(d, "in/"+c.data)
		out, stderr, code := rq(t, "eval", "--json", "-q", "--model", mu, "--data", du, "--batch", "1024")
		if code != 0 {
			t.Fatal(stderr)
		}
		want := figures(t, out)

		run := "run-" + strings.ReplaceAll(filepath.Dir(c.model), "/", "-") + "/states/"
		procs := make([]*exec.Cmd, n)
		errs := make([]*bytes.Buffer, n)
		for i := range n {
			idx := strconv.Itoa(i)
			args := []string{"eval", "-q", "--model", mu, "--data", du, "--batch", "1024",
				"--shard", idx + "/" + strconv.Itoa(n), "--state-out", s.URL(run + "shard-" + idx + ".json")}
			procs[i], errs[i] = rqProcess(t, []string{"JOB_COMPLETION_INDEX=" + idx}, args...)
		}
		for i, p := range procs {
			if code := exitOf(p.Wait()); code != 0 {
				t.Fatalf("shard %d: exit %d: %s", i, code, errs[i])
			}
		}
		out, stderr, code = rq(t, "merge", "--json", s.URL(run))
		if code != 0 {
			t.Fatalf("rq merge %s: exit %d: %s", s.URL(run), code, stderr)
		}
		sameFigures(t, c.model+": merge of "+strconv.Itoa(n)+" shards from S3", want, figures(t, out))

		// A shard missing from the prefix is refused, naming it.
		if err := storage.WriteFile(context.Background(), s.URL("partial/shard-0.json"), mustRead(t, s.URL(run+"shard-0.json"))); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := rq(t, "merge", s.URL("partial/")); code != ExitError || !strings.Contains(stderr, "shards 1,2 of 3 are missing") {
			t.Errorf("merge of a partial prefix: exit %d: %s", code, stderr)
		}
		if _, stderr, code := rq(t, "merge", s.URL("nothing-here/")); code != ExitError || !strings.Contains(stderr, "no files") {
			t.Errorf("merge of an empty prefix: exit %d: %s", code, stderr)
		}
	}
}

func mustRead(t *testing.T, u string) []byte {
	t.Helper()
	b, err := storage.ReadFile(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestObjectWrongCredentials: refused credentials are an error naming the
// bucket (exit 1), for a read and for a write.
func TestObjectWrongCredentials(t *testing.T) {
	s := startS3(t)
	m := testshared.Path(t, "criteo-18k/model.safetensors")
	mu := s.PutFile(m, "models/model.safetensors")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	_, stderr, code := rq(t, "inspect", mu)
	if code != ExitError || !strings.Contains(stderr, `bucket "`+s.Bucket+`"`) || !strings.Contains(stderr, "refused") {
		t.Errorf("read with a wrong secret: exit %d: %s", code, stderr)
	}
	_, stderr, code = rq(t, "quantize", "-q", "--model", m, "--preset", "fp16", "-o", s.URL("out/q.safetensors"))
	if code != ExitError || !strings.Contains(stderr, `bucket "`+s.Bucket+`"`) {
		t.Errorf("write with a wrong secret: exit %d: %s", code, stderr)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "nobody")
	_, stderr, code = rq(t, "inspect", mu)
	if code != ExitError || !strings.Contains(stderr, `bucket "`+s.Bucket+`"`) {
		t.Errorf("read with an unknown key: exit %d: %s", code, stderr)
	}
}

// ioBytes is what process pid and its children (the supervised rq) have
// read and written through system calls, sockets included (/proc/pid/io).
func ioBytes(pid int) (read, written int64) {
	for _, p := range withChildren(pid) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "io"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "rchar":
				read += n
			case "wchar":
				written += n
			}
		}
	}
	return read, written
}

// stopWhen waits until cond holds for the running process c, then stops
// the server (SIGKILL, as a crash would); it fails the test if c ends
// first.
func stopWhen(t *testing.T, s *s3test.Server, c *exec.Cmd, stderr *bytes.Buffer, cond func(read, written int64) bool) (stoppedAt time.Time) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, w := ioBytes(c.Process.Pid)
		if cond(r, w) {
			s.Stop()
			return time.Now()
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("the process never got there (read %d, wrote %d): %s", r, w, stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestObjectServerStops: the server killed while rq reads a click log from
// it, or while rq uploads a quantized model to it, gives a one-line error
// naming the URL and exit 1 within bounded time (the SDK's retries, not a
// hang), and no partial object: the older object under the name is kept,
// whole, and nothing else appears.
func TestObjectServerStops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watching a process's I/O needs /proc")
	}
	s := startS3(t)

	t.Run("mid-read", func(t *testing.T) {
		// One object: criteo-18k's TSV 24 times over (105 MB, 432,000
		// rows), read by ranged GETs; and a prefix of 60 copies of the
		// Parquet log (1.08 M rows), each part opened as the stream gets
		// to it.
		tsv := mustReadFile(t, testshared.Path(t, "criteo-18k/criteo-18k.tsv"))
		if err := storage.WriteFile(context.Background(), s.URL("read/big.tsv"), bytes.Repeat(tsv, 24)); err != nil {
			t.Fatal(err)
		}
		m18 := s.PutFile(testshared.Path(t, "criteo-18k/model.safetensors"), "read/model.safetensors")
		mtr := s.PutFile(testshared.Path(t, "criteo-torchrec/dlrm.safetensors"), "read/dlrm.safetensors")
		pq := testshared.Path(t, "criteo-torchrec/clicks.parquet")
		for i := range 60 {
			s.PutFile(pq, fmt.Sprintf("read/log/part-%05d.parquet", i))
		}
		for _, c := range []struct{ model, data, key string }{
			{m18, s.URL("read/big.tsv"), "read/big.tsv"},
			{mtr, s.URL("read/log/"), "read/log/part-"},
		} {
			cmd, stderr := rqProcess(t, nil, "eval", "-q", "--model", c.model, "--data", c.data)
			stopped := stopWhen(t, s, cmd, stderr, func(r, _ int64) bool { return r > 30<<20 })
			code := exitOf(cmd.Wait())
			took := time.Since(stopped)
			msg := strings.TrimSpace(stderr.String())
			t.Logf("exit %d %.1fs after the server stopped: %s", code, took.Seconds(), msg)
			// The kill lands either between requests (the next one is
			// refused) or inside one (its body ends early): both are one
			// clear line.
			if code != ExitError || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.key) || !strings.Contains(msg, "connection refused") && !strings.Contains(msg, "the connection ended mid-transfer") {
				t.Errorf("exit %d: %s", code, msg)
			}
			if took > 60*time.Second {
				t.Errorf("rq took %v to give up on a stopped server", took)
			}
			s.Restart()
		}
	})

	t.Run("mid-write", func(t *testing.T) {
		model := filepath.Join(t.TempDir(), "wide.safetensors")
		writeWideModel(t, model, 400000) // 205 MB of tables: a 205 MB fp32 output, a multipart upload
		key := "write/q.safetensors"
		u := s.URL(key)
		if err := storage.WriteFile(context.Background(), u, []byte("the older object")); err != nil {
			t.Fatal(err)
		}
		before := bucketFiles(t, s)
		c, stderr := rqProcess(t, nil, "quantize", "-q", "--model", model, "--preset", "fp16", "-o", u)
		// Stop once some 8 MiB parts went out: the upload is under way.
		stopped := stopWhen(t, s, c, stderr, func(_, w int64) bool { return w > 40<<20 })
		code := exitOf(c.Wait())
		took := time.Since(stopped)
		msg := strings.TrimSpace(stderr.String())
		t.Logf("exit %d %.1fs after the server stopped: %s", code, took.Seconds(), msg)
		if code != ExitError || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, key) {
			t.Errorf("exit %d: %s", code, msg)
		}
		s.Restart()
		got, err := storage.ReadFile(context.Background(), u)
		if err != nil || string(got) != "the older object" {
			t.Errorf("after the failed upload %s holds %d bytes (%v), want the older object", key, len(got), err)
		}
		// No object appeared or changed. The parts uploaded before the
		// server died stay in the backend as an upload never completed,
		// invisible to readers and listings, until the bucket's lifecycle
		// rule (AbortIncompleteMultipartUpload) removes them: the SDK's
		// abort could not reach a dead server.
		after := bucketFiles(t, s)
		if after != before {
			t.Errorf("the bucket's objects changed: before %s, after %s", before, after)
		}
		if objs, err := storage.List(context.Background(), s.URL("write/")); err != nil || len(objs) != 1 {
			t.Errorf("listing write/: %v, %v", objs, err)
		}
	})

	t.Run("signal-mid-write", func(t *testing.T) {
		model := filepath.Join(t.TempDir(), "wide.safetensors")
		writeWideModel(t, model, 400000)
		u := s.URL("signal/q.safetensors")
		if err := storage.WriteFile(context.Background(), u, []byte("the older object")); err != nil {
			t.Fatal(err)
		}
		c, stderr := rqProcess(t, nil, "quantize", "-q", "--model", model, "--preset", "fp16", "-o", u)
		deadline := time.Now().Add(2 * time.Minute)
		for _, w := ioBytes(c.Process.Pid); w < 40<<20; _, w = ioBytes(c.Process.Pid) {
			if time.Now().After(deadline) {
				t.Fatalf("never wrote: %s", stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Process.Signal(syscall.SIGINT)
		if code := exitOf(c.Wait()); code != 130 {
			t.Errorf("SIGINT mid-upload: exit %d: %s", code, stderr)
		}
		got, err := storage.ReadFile(context.Background(), u)
		if err != nil || string(got) != "the older object" {
			t.Errorf("after SIGINT the object holds %d bytes (%v), want the older object", len(got), err)
		}
	})
}

// bucketFiles lists the objects' files under the server's bucket directory,
// with their sizes, as one string; the backend's own directory of uploads
// in progress (.sgwtmp) is left out.
func bucketFiles(t *testing.T, s *s3test.Server) string {
	t.Helper()
	var names []string
	root := filepath.Join(s.Root(), s.Bucket)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".sgwtmp" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			names = append(names, fmt.Sprintf("%s(%d)", rel, fi.Size()))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}

// TestObjectServerHangs: a server that stays connected and answers nothing
// (SIGSTOP) while rq reads a click log from it stops rq after the stall
// timeout (RQ_STORAGE_STALL_TIMEOUT, 3s here) with a one-line error naming
// the URL, exit 1, instead of waiting forever.
func TestObjectServerHangs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watching a process's I/O and pausing the server need Linux")
	}
	s := startS3(t)
	tsv := mustReadFile(t, testshared.Path(t, "criteo-18k/criteo-18k.tsv"))
	if err := storage.WriteFile(context.Background(), s.URL("hang/big.tsv"), bytes.Repeat(tsv, 24)); err != nil {
		t.Fatal(err)
	}
	model := testshared.Path(t, "criteo-18k/model.safetensors")
	c, stderr := rqProcess(t, []string{"RQ_STORAGE_STALL_TIMEOUT=3s"}, "eval", "-q", "--model", model, "--data", s.URL("hang/big.tsv"))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if r, _ := ioBytes(c.Process.Pid); r > 20<<20 {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("rq never read 20 MiB: %s", stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Pause()
	paused := time.Now()
	done := make(chan int, 1)
	go func() { done <- exitOf(c.Wait()) }()
	select {
	case code := <-done:
		msg := strings.TrimSpace(stderr.String())
		t.Logf("exit %d %.1fs after the server hung: %s", code, time.Since(paused).Seconds(), msg)
		if code != ExitError || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "hang/big.tsv") || !strings.Contains(msg, "stalled") {
			t.Errorf("exit %d: %s", code, msg)
		}
	case <-time.After(90 * time.Second):
		c.Process.Kill()
		t.Fatalf("rq still waiting 90s after the server hung: %s", stderr)
	}
}
