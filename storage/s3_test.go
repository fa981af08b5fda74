package storage

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/internal/s3test"
)

// bound is how long a read or write against a stopped server may take to
// fail. It is a hang detector, not a speed requirement: the SDK's retries
// with backoff take seconds.
const bound = 2 * time.Minute

// server starts a real S3 server for t and points the AWS SDK at it.
func server(t *testing.T) (*s3test.Server, context.Context) {
	t.Helper()
	s := s3test.Start(t)
	s.SetEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return s, ctx
}

// within runs f and fails t if it has not returned after bound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("%s did not return within %v against a stopped server", what, bound)
	}
}

// write puts data at url with Create, Write (in 1 MiB pieces) and Commit.
func write(t *testing.T, ctx context.Context, url string, data []byte) {
	t.Helper()
	w, err := Create(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), BlockSize)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit %s: %v", url, err)
	}
}

func TestS3RoundTrip(t *testing.T) {
	s, ctx := server(t)
	// Sizes: empty, small (one PutObject), a few MiB with odd tails, and
	// past WriteBufferSize (a multipart upload of three parts).
	for i, size := range []int{0, 1, 4321, 2*BlockSize + 1, 3*BlockSize + 99991, 2*WriteBufferSize + 12345} {
		url := s.URL("rt/obj.bin")
		want := randomBytes(uint64(100+i), size)
		write(t, ctx, url, want)
		got, err := ReadFile(ctx, url)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: ReadFile gave %d bytes (%v), want the %d written", size, len(got), err, size)
		}
		r, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if r.Size() != int64(size) || r.Name() != url {
			t.Fatalf("Open: Size %d Name %q; want %d %q", r.Size(), r.Name(), size, url)
		}
		if size > 0 {
			checkReads(t, r, want, uint64(i))
		}
		r.Close()
	}
	// WriteFile/ReadFile, as for JSON states.
	doc := []byte(`{"shard":"1/4"}`)
	if err := WriteFile(ctx, s.URL("states/shard-1.json"), doc); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(ctx, s.URL("states/shard-1.json")); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("ReadFile: %q, %v", got, err)
	}
	// What is on the server's disk is what was written: the object is
	// really stored by the server, not held by the client.
	if got, err := os.ReadFile(filepath.Join(s.Root(), s.Bucket, "states", "shard-1.json")); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("server's file: %q, %v", got, err)
	}
}

// Reads are ranged: the tail of a 64 MiB object costs one block, and a
// large read costs exactly its bytes.
func TestS3RangedReads(t *testing.T) {
	s, ctx := server(t)
	const size = 64 << 20
	want := randomBytes(64, size)
	url := s.URL("big/model.safetensors")
	write(t, ctx, url, want)

	r, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Stats(); st.Requests != 0 || st.Bytes != 0 {
		t.Fatalf("Open fetched %+v; want nothing", st)
	}
	p := make([]byte, 100)
	if _, err := r.ReadAt(p, size-100); err != nil || !bytes.Equal(p, want[size-100:]) {
		t.Fatalf("ReadAt of the last 100 bytes: %v", err)
	}
	st := r.Stats()
	if st.Requests != 1 || st.Bytes > BlockSize {
		t.Fatalf("100 bytes at the end of a 64 MiB object fetched %+v; want 1 request of at most %d bytes", st, BlockSize)
	}
	// More small reads in the same block: served from the cache.
	for _, off := range []int64{size - 1000, size - BlockSize/2, size - 5000} {
		if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, want[off:off+100]) {
			t.Fatalf("ReadAt at %d: %v", off, err)
		}
	}
	if st2 := r.Stats(); st2 != st {
		t.Fatalf("reads within a cached block made requests: %+v, then %+v", st, st2)
	}
	// A large read in the middle: one request, exactly its bytes.
	big := make([]byte, 3*BlockSize+7)
	off := int64(20<<20 + 12345)
	if _, err := r.ReadAt(big, off); err != nil || !bytes.Equal(big, want[off:off+int64(len(big))]) {
		t.Fatalf("large ReadAt: %v", err)
	}
	st3 := r.Stats()
	if st3.Requests != st.Requests+1 || st3.Bytes != st.Bytes+int64(len(big)) {
		t.Fatalf("a %d-byte read fetched %+v after %+v", len(big), st3, st)
	}
	if st3.Bytes >= size/4 {
		t.Fatalf("fetched %d of %d bytes for three reads", st3.Bytes, size)
	}
}

func TestS3List(t *testing.T) {
	s, ctx := server(t)
	for _, k := range []string{"run/states/shard-1.json", "run/states/shard-0.json", "run/states/sub/deep.json", "run/states/.hidden", "run/other.json", "run/statesque.json"} {
		if err := WriteFile(ctx, s.URL(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	urls := func(keys ...string) []string {
		var out []string
		for _, k := range keys {
			out = append(out, s.URL(k))
		}
		return out
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"run/states/", urls("run/states/shard-0.json", "run/states/shard-1.json")},
		{"run/states/shard-", urls("run/states/shard-0.json", "run/states/shard-1.json")},
		{"run/states/shard-1", urls("run/states/shard-1.json")},
		{"run/", urls("run/other.json", "run/statesque.json")},
		{"empty/", nil},
	} {
		got, err := List(ctx, s.URL(c.prefix))
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("List(%s) = %v, %v; want %v", c.prefix, got, err, c.want)
		}
	}
	// Each listed URL opens.
	got, err := List(ctx, s.URL("run/states/"))
	if err != nil || len(got) == 0 {
		t.Fatal(err)
	}
	if b, err := ReadFile(ctx, got[0]); err != nil || string(b) != "run/states/shard-0.json" {
		t.Errorf("ReadFile(%s) = %q, %v", got[0], b, err)
	}
}

// Abort, a cancelled context and a dropped Writer leave the old object;
// for a new key, no object.
func TestS3AbortKeepsOld(t *testing.T) {
	s, ctx := server(t)
	old := []byte("the old model")
	url := s.URL("models/q.safetensors")
	if err := WriteFile(ctx, url, old); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1000, WriteBufferSize + 3*BlockSize} { // a PutObject, a multipart upload
		w, err := Create(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randomBytes(5, size)); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		if got, err := ReadFile(ctx, url); err != nil || !bytes.Equal(got, old) {
			t.Fatalf("after aborting a %d-byte write: %d bytes (%v), want the old %d", size, len(got), err, len(old))
		}
		if err := w.Commit(); err == nil {
			t.Fatalf("Commit after Abort succeeded")
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	w, err := Create(cctx, url)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(6, WriteBufferSize+1))
	cancel()
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Commit after cancel: %v; want an error naming %s", err, url)
	}
	if got, err := ReadFile(ctx, url); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after a cancelled write: %d bytes (%v), want the old %d", len(got), err, len(old))
	}

	fresh := s.URL("models/never.safetensors")
	func() {
		w, err := Create(ctx, fresh)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(randomBytes(7, WriteBufferSize+1)) // an upload under way
	}()
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := Open(ctx, fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a dropped Writer: Open(%s) = %v; want no such object", fresh, err)
	}
}

// An object replaced after Open is not read as a splice of two versions:
// the ETag pins the GETs, even when the size is the same.
func TestS3ReplacedMidRead(t *testing.T) {
	s, ctx := server(t)
	url := s.URL("data/clicks.parquet")
	a := randomBytes(1, 3*BlockSize)
	write(t, ctx, url, a)
	r, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 10)
	if _, err := r.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, url, randomBytes(2, 3*BlockSize)) // same size, other bytes
	_, err = r.ReadAt(p, 2*BlockSize)
	if err == nil || !strings.Contains(err.Error(), "changed") || !strings.Contains(err.Error(), url) {
		t.Fatalf("reading a replaced object: %v; want an error naming %s and saying it changed", err, url)
	}
}

func TestS3ServerStoppedMidRead(t *testing.T) {
	s, ctx := server(t)
	url := s.URL("data/day0.parquet")
	want := randomBytes(3, 6*BlockSize)
	write(t, ctx, url, want)
	r, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 4096)
	if _, err := r.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	for _, c := range []struct {
		what string
		buf  []byte
		off  int64
	}{{"a small read", p, 3 * BlockSize}, {"a large read", make([]byte, 2*BlockSize), BlockSize}} {
		var err error
		within(t, c.what, func() { _, err = r.ReadAt(c.buf, c.off) })
		if err == nil || !strings.Contains(err.Error(), url) {
			t.Errorf("%s with the server stopped: %v; want an error naming %s", c.what, err, url)
		}
	}
	// What was cached is still right; nothing wrong was cached.
	if _, err := r.ReadAt(p, 0); err != nil || !bytes.Equal(p, want[:len(p)]) {
		t.Errorf("cached block after the failure: %v", err)
	}
	s.Restart()
	if _, err := r.ReadAt(p, 3*BlockSize); err != nil || !bytes.Equal(p, want[3*BlockSize:3*BlockSize+len(p)]) {
		t.Errorf("after a restart the read succeeds again: %v", err)
	}
}

func TestS3ServerStoppedMidWrite(t *testing.T) {
	s, ctx := server(t)
	old := []byte("old state")
	oldURL, newURL := s.URL("states/shard-0.json"), s.URL("models/new.safetensors")
	if err := WriteFile(ctx, oldURL, old); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{oldURL, newURL} {
		w, err := Create(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		// One part sent (a multipart upload begun), then the server dies.
		if _, err := w.Write(randomBytes(8, WriteBufferSize+BlockSize)); err != nil {
			t.Fatal(err)
		}
		s.Stop()
		var werr, cerr error
		within(t, "writing and committing", func() {
			_, werr = w.Write(randomBytes(9, 2*WriteBufferSize))
			cerr = w.Commit()
		})
		if cerr == nil || !strings.Contains(cerr.Error(), url) {
			t.Errorf("Commit with the server stopped: %v (write: %v); want an error naming %s", cerr, werr, url)
		}
		s.Restart()
	}
	if got, err := ReadFile(ctx, oldURL); err != nil || !bytes.Equal(got, old) {
		t.Errorf("after an interrupted write %s holds %q (%v), want %q", oldURL, got, err, old)
	}
	if _, err := Open(ctx, newURL); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after an interrupted write Open(%s) = %v; want no such object", newURL, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), s.Bucket, "models", "new.safetensors")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the server's disk holds the interrupted object: %v", err)
	}
	if got, err := List(ctx, s.URL("models/")); err != nil || len(got) != 0 {
		t.Errorf("List after the interrupted write: %v, %v; want nothing", got, err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	s, ctx := server(t)
	url := s.URL("models/m.safetensors")
	if err := WriteFile(ctx, url, []byte("m")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-"+s.SecretKey)
	bucket := `"` + s.Bucket + `"`
	_, oerr := Open(ctx, url)
	_, rerr := ReadFile(ctx, url)
	werr := WriteFile(ctx, s.URL("models/out.safetensors"), []byte("x"))
	_, lerr := List(ctx, s.URL("models/"))
	for what, err := range map[string]error{"Open": oerr, "ReadFile": rerr, "WriteFile": werr, "List": lerr} {
		if err == nil || !strings.Contains(err.Error(), "bucket "+bucket) || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s with a wrong secret: %v; want a permission error naming bucket %s", what, err, bucket)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_ACCESS_KEY_ID", "nosuchkey")
	if _, err := Open(ctx, url); err == nil || !strings.Contains(err.Error(), "bucket "+bucket) {
		t.Errorf("Open with an unknown access key: %v; want an error naming bucket %s", err, bucket)
	}
}

func TestS3Missing(t *testing.T) {
	s, ctx := server(t)
	url := s.URL("no/such.safetensors")
	_, err := Open(ctx, url)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), url) {
		t.Errorf("Open of a missing object: %v; want not-exist naming %s", err, url)
	}
	other := s.BucketURL("no-such-bucket", "k")
	_, err = Open(ctx, other)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), other) {
		t.Errorf("Open in a missing bucket: %v; want not-exist naming %s", err, other)
	}
	if err := WriteFile(ctx, other, []byte("x")); err == nil || !strings.Contains(err.Error(), `"no-such-bucket"`) {
		t.Errorf("WriteFile to a missing bucket: %v", err)
	}
}

// After atomicfile.Freeze (rq's first stop signal) no object is put in
// place, as no local output is. Freeze is for good in a process, so this
// runs in a child process: the test binary itself.
func TestS3CommitAfterFreeze(t *testing.T) {
	if url := os.Getenv("RQ_STORAGE_FREEZE_CHILD"); url != "" {
		ctx := context.Background()
		w, err := Create(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("new"))
		atomicfile.Freeze()
		if err := w.Commit(); !errors.Is(err, atomicfile.ErrFrozen) || !strings.Contains(err.Error(), url) {
			t.Fatalf("Commit after Freeze: %v; want ErrFrozen naming %s", err, url)
		}
		return
	}
	s, ctx := server(t)
	url := s.URL("states/frozen.json")
	if err := WriteFile(ctx, url, []byte("old")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestS3CommitAfterFreeze$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), s.Env()...), "RQ_STORAGE_FREEZE_CHILD="+url)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got, err := ReadFile(ctx, url); err != nil || string(got) != "old" {
		t.Errorf("after a Commit under Freeze the object holds %q (%v), want old", got, err)
	}
}

// TestS3ServerHangs: a server that stays connected but answers nothing
// (SIGSTOP) costs a read, an open, a list and an upload StallTimeout, then
// a *StallError naming the URL; nothing is published, and the older object
// is kept. Without the watchdog each of these waits forever.
func TestS3ServerHangs(t *testing.T) {
	s, ctx := server(t)
	defer func(d time.Duration) { StallTimeout = d }(StallTimeout)
	StallTimeout = 2 * time.Second
	url, old := s.URL("hang/model.safetensors"), []byte("old model")
	write(t, ctx, url, old)
	big := s.URL("hang/big.bin")
	write(t, ctx, big, randomBytes(5, 4*BlockSize))
	r, err := Open(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := Create(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(6, BlockSize)); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	stalled := func(what, name string, f func() error) {
		t.Helper()
		start := time.Now()
		var err error
		within(t, what, func() { err = f() })
		var se *StallError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "stalled") {
			t.Errorf("%s on a hung server: %v; want a StallError naming %s", what, err, name)
		}
		if took := time.Since(start); took < StallTimeout {
			t.Errorf("%s gave up after %v, before StallTimeout %v", what, took, StallTimeout)
		}
	}
	stalled("a read", big, func() error { _, err := r.ReadAt(make([]byte, 2*BlockSize), 0); return err })
	stalled("an open", url, func() error { _, err := Open(ctx, url); return err })
	stalled("a list", s.URL("hang/"), func() error { _, err := List(ctx, s.URL("hang/")); return err })
	stalled("an upload", url, func() error {
		if _, err := w.Write(randomBytes(7, 3*WriteBufferSize)); err != nil {
			w.Abort()
			return err
		}
		return w.Commit()
	})
	s.Resume()
	if got, err := ReadFile(ctx, url); err != nil || !bytes.Equal(got, old) {
		t.Errorf("after a stalled upload %s holds %q (%v), want %q", url, got, err, old)
	}
}
