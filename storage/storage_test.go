package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"
)

// randomBytes returns n bytes from a seeded generator, so a failure
// reproduces.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// checkReads compares r's ReadAt, Read and Seek with want: reads at odd
// offsets, across block boundaries, at the end, past the end, and a
// sequential read of the whole in uneven pieces.
func checkReads(t *testing.T, r *Reader, want []byte, seed uint64) {
	t.Helper()
	size := int64(len(want))
	if r.Size() != size {
		t.Fatalf("%s: Size %d, want %d", r.Name(), r.Size(), size)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	type span struct{ off, n int64 }
	spans := []span{{0, 1}, {size - 1, 1}, {size - 100, 100}, {0, 0}}
	for b := int64(BlockSize); b < size; b += BlockSize {
		spans = append(spans, span{b - 3, 7}, span{b - 1, 1}, span{b, 1}) // across and at block edges
	}
	spans = append(spans, span{BlockSize/2 + 1, BlockSize}) // a direct read straddling two blocks
	for i := 0; i < 40; i++ {
		off := rng.Int64N(size)
		n := rng.Int64N(min(size-off, 3*BlockSize) + 1)
		spans = append(spans, span{off, n})
	}
	for _, s := range spans {
		if s.off < 0 || s.off+s.n > size {
			continue
		}
		got := make([]byte, s.n)
		n, err := r.ReadAt(got, s.off)
		if err != nil && !(err == io.EOF && s.off+s.n == size) {
			t.Fatalf("%s: ReadAt(%d bytes at %d): %v", r.Name(), s.n, s.off, err)
		}
		if int64(n) != s.n || !bytes.Equal(got, want[s.off:s.off+s.n]) {
			t.Fatalf("%s: ReadAt(%d bytes at %d): got %d bytes, differing from what was written", r.Name(), s.n, s.off, n)
		}
	}
	// Past the end: io.ReaderAt's contract.
	tail := make([]byte, 10)
	k := min(4, size)
	if n, err := r.ReadAt(tail, size-k); int64(n) != k || err != io.EOF || !bytes.Equal(tail[:k], want[size-k:]) {
		t.Fatalf("%s: ReadAt over the end: %d, %v; want %d, EOF", r.Name(), n, err, k)
	}
	if n, err := r.ReadAt(tail, size); n != 0 || err != io.EOF {
		t.Fatalf("%s: ReadAt at the end: %d, %v; want 0, EOF", r.Name(), n, err)
	}
	// Sequential reads in uneven pieces, after a Seek back to the start.
	if off, err := r.Seek(0, io.SeekStart); off != 0 || err != nil {
		t.Fatalf("%s: Seek: %d, %v", r.Name(), off, err)
	}
	var got bytes.Buffer
	buf := make([]byte, 3*BlockSize)
	for {
		n, err := r.Read(buf[:1+rng.IntN(len(buf))])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: Read at %d: %v", r.Name(), got.Len(), err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("%s: sequential Read gave %d bytes differing from the %d written", r.Name(), got.Len(), len(want))
	}
	if off, err := r.Seek(-k, io.SeekEnd); off != size-k || err != nil {
		t.Fatalf("%s: Seek(-%d, End): %d, %v", r.Name(), k, off, err)
	}
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, want[size-k:]) {
		t.Fatalf("%s: the last %d bytes after Seek: %v, %v", r.Name(), k, b, err)
	}
}

// entries lists a directory's names, hidden ones included, to show what a
// write left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i, size := range []int{0, 1, 5000, 3*BlockSize + 12345} {
		path := filepath.Join(dir, "f.bin")
		want := randomBytes(uint64(i), size)
		w, err := Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		// In uneven pieces, as an encoder writes.
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)/3)
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit %s: %v", path, err)
		}
		got, err := ReadFile(ctx, path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: ReadFile gave %d bytes (%v), want the %d written", size, len(got), err, size)
		}
		if size == 0 {
			continue
		}
		r, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name() != path {
			t.Errorf("Name %q, want %q", r.Name(), path)
		}
		checkReads(t, r, want, uint64(i))
		if st := r.Stats(); st != (Stats{}) {
			t.Errorf("a local file counts no requests, got %+v", st)
		}
		r.Close()
	}
	if names := entries(t, dir); !slices.Equal(names, []string{"f.bin"}) {
		t.Errorf("directory holds %v, want only f.bin", names)
	}
}

// file:// URLs are local files, with the same atomic writes.
func TestFileURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	u := "file://" + filepath.ToSlash(dir) + "/doc.json"
	if err := WriteFile(ctx, u, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "doc.json"))
	if err != nil || string(got) != `{"a":1}` {
		t.Fatalf("file written through %s: %q, %v", u, got, err)
	}
	if p, ok := LocalPath(u); !ok || p != filepath.Join(dir, "doc.json") {
		t.Errorf("LocalPath(%s) = %q, %v", u, p, ok)
	}
	l, err := List(ctx, "file://"+filepath.ToSlash(dir)+"/")
	if err != nil || !slices.Equal(l, []string{filepath.Join(dir, "doc.json")}) {
		t.Errorf("List: %v, %v", l, err)
	}
}

func TestLocalAbortKeepsOld(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(ctx, path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	w, err := Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(1, 2*BlockSize)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // twice is harmless
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after Abort the file holds %d bytes, want the old 3", len(got))
	}
	if err := w.Commit(); err == nil {
		t.Errorf("Commit after Abort succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Errorf("Write after Abort succeeded")
	}
	if names := entries(t, dir); !slices.Equal(names, []string{"model.safetensors"}) {
		t.Errorf("directory holds %v after Abort", names)
	}
}

func TestLocalCancelledContext(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteFile(context.Background(), path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("new"))
	cancel()
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Commit after cancel: %v; want an error naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a cancelled write the file holds %q, want old", got)
	}
}

// A Writer dropped without Commit or Abort publishes nothing, and its
// cleanup ends the write (the pipe's goroutine would otherwise wait
// forever).
func TestAbandonedWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	func() {
		w, err := Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("never committed"))
	}()
	before := runtime.NumGoroutine()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() >= before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if runtime.NumGoroutine() >= before {
		t.Errorf("the dropped Writer's goroutine still runs (%d goroutines, %d before)", runtime.NumGoroutine(), before)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dropped Writer published %s (%v)", path, err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %v", names)
	}
}

func TestCreateMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "out.json")
	if _, err := Create(context.Background(), path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Create in a missing directory: %v; want an error naming %s", err, path)
	}
	if _, err := Open(context.Background(), path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}

func TestLocalList(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, n := range []string{"shard-1.json", "shard-0.json", "other.txt", ".rq-tmp-123"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	j := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(dir, n))
		}
		return out
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{dir, j("other.txt", "shard-0.json", "shard-1.json")},
		{dir + "/", j("other.txt", "shard-0.json", "shard-1.json")},
		{filepath.Join(dir, "shard-"), j("shard-0.json", "shard-1.json")},
		{filepath.Join(dir, "none-"), nil},
		{filepath.Join(dir, "sub"), nil},
	} {
		got, err := List(ctx, c.prefix)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("List(%s) = %v, %v; want %v", c.prefix, got, err, c.want)
		}
	}
	if _, err := List(ctx, filepath.Join(dir, "missing")+"/"); err == nil {
		t.Errorf("List of a missing directory succeeded")
	}
}

func TestParsing(t *testing.T) {
	for _, c := range []struct {
		path  string
		isURL bool
		local string // "" when not local
	}{
		{"model.pt", false, "model.pt"},
		{"/data/clicks.parquet", false, "/data/clicks.parquet"},
		{"C://x", false, "C://x"},
		{"s3://b/k", true, ""},
		{"S3://b/k", true, ""},
		{"gs://b/k", true, ""},
		{"azblob://c/k", true, ""},
		{"file:///tmp/a", true, "/tmp/a"},
		{"http://host/x", true, ""},
	} {
		if got := IsURL(c.path); got != c.isURL {
			t.Errorf("IsURL(%q) = %v", c.path, got)
		}
		p, ok := LocalPath(c.path)
		if ok != (c.local != "") || p != c.local {
			t.Errorf("LocalPath(%q) = %q, %v; want %q", c.path, p, ok, c.local)
		}
	}
	l, err := locate("s3://bkt/run/states/shard%201.json?endpoint=http%3A%2F%2F127.0.0.1%3A9&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if l.bucket != "bkt" || l.key != "run/states/shard 1.json" || l.bucketURL != "s3://bkt?endpoint=http%3A%2F%2F127.0.0.1%3A9&region=us-east-1" {
		t.Errorf("locate: bucket %q key %q bucketURL %q", l.bucket, l.key, l.bucketURL)
	}
	if u := l.withKey("run/x y"); u != "s3://bkt/run/x%20y?endpoint=http%3A%2F%2F127.0.0.1%3A9&region=us-east-1" {
		t.Errorf("withKey: %s", u)
	}
	for _, bad := range []string{"http://host/x", "s3:///key", "s3://user:pw@b/k", "file://otherhost/x", "gs://b/k#frag"} {
		if _, err := locate(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("locate(%q): %v; want an error naming it", bad, err)
		}
	}
	for _, bad := range []string{"s3://b", "s3://b/dir/"} {
		if _, err := Open(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "not an object") {
			t.Errorf("Open(%q): %v", bad, err)
		}
		if _, err := Create(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "not an object") {
			t.Errorf("Create(%q): %v", bad, err)
		}
	}
}

// The object reader's ranges, cache and counters, over gocloud's file
// driver (a real driver, not a mock; the S3 tests repeat this against a
// real server). This runs where no S3 server can.
func TestObjectReaderOverFileDriver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := randomBytes(7, 5*BlockSize+777)
	if err := b.WriteAll(ctx, "obj", want, nil); err != nil {
		t.Fatal(err)
	}
	l := location{name: "file-driver://obj", bucket: "test", key: "obj", scheme: "s3"}
	r, err := openObject(ctx, b, l)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// Small reads within one block: one request, one block fetched.
	p := make([]byte, 100)
	for _, off := range []int64{10, 2000, BlockSize - 100} {
		if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, want[off:off+100]) {
			t.Fatalf("ReadAt at %d: %v", off, err)
		}
	}
	if st := r.Stats(); st.Requests != 1 || st.Bytes != BlockSize {
		t.Errorf("three small reads in block 0 made %+v, want 1 request of %d bytes", st, BlockSize)
	}
	// A large read goes around the cache with exactly its bytes.
	big := make([]byte, 2*BlockSize+5)
	if _, err := r.ReadAt(big, 3); err != nil || !bytes.Equal(big, want[3:3+len(big)]) {
		t.Fatalf("large ReadAt: %v", err)
	}
	if st := r.Stats(); st.Requests != 2 || st.Bytes != BlockSize+int64(len(big)) {
		t.Errorf("after a direct read: %+v", st)
	}
	checkReads(t, r, want, 7)

	// A replaced object is noticed (size or time differ here; S3 also
	// checks the ETag).
	if err := b.WriteAll(ctx, "obj", want[:len(want)-1], nil); err != nil {
		t.Fatal(err)
	}
	r2, err := openObject(ctx, b, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, "obj", want, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ReadAt(p, 0); err == nil || !strings.Contains(err.Error(), "changed") || !strings.Contains(err.Error(), l.name) {
		t.Errorf("reading a replaced object: %v; want an error saying it changed", err)
	}
}

// Concurrent ReadAt calls share fetched blocks and all get the right bytes.
func TestConcurrentReadAt(t *testing.T) {
	ctx := context.Background()
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := randomBytes(9, 3*BlockSize+1)
	if err := b.WriteAll(ctx, "obj", want, nil); err != nil {
		t.Fatal(err)
	}
	r, err := openObject(ctx, b, location{name: "obj", key: "obj"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			p := make([]byte, 4096)
			for i := 0; i < 200; i++ {
				off := rng.Int64N(int64(len(want) - len(p)))
				if _, err := r.ReadAt(p, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(p, want[off:off+int64(len(p))]) {
					errs <- fmt.Errorf("wrong bytes at %d", off)
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Requests > 8*4 {
		t.Errorf("8 readers of 4 blocks made %d requests", st.Requests)
	}
}

// The cache holds CacheBlocks blocks: one more evicts the least recently
// used, which is then fetched again, while a recently used one is not.
func TestCacheBound(t *testing.T) {
	ctx := context.Background()
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := randomBytes(3, (CacheBlocks+2)*BlockSize)
	if err := b.WriteAll(ctx, "obj", want, nil); err != nil {
		t.Fatal(err)
	}
	r, err := openObject(ctx, b, location{name: "obj", key: "obj"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 1)
	read := func(block int64) {
		t.Helper()
		off := block*BlockSize + 17
		if _, err := r.ReadAt(p, off); err != nil || p[0] != want[off] {
			t.Fatalf("ReadAt block %d: %v", block, err)
		}
	}
	for i := int64(0); i < CacheBlocks; i++ {
		read(i)
	}
	read(0) // block 0 is now the most recent, block 1 the least
	if got := r.Stats().Requests; got != CacheBlocks {
		t.Fatalf("%d blocks read with %d requests", CacheBlocks, got)
	}
	read(CacheBlocks) // evicts block 1
	read(0)
	if got := r.Stats().Requests; got != CacheBlocks+1 {
		t.Errorf("block 0, recently used, was fetched again (%d requests)", got)
	}
	read(1)
	if got := r.Stats().Requests; got != CacheBlocks+2 {
		t.Errorf("block 1, evicted, was not fetched again (%d requests)", got)
	}
	r.cache.mu.Lock()
	n := len(r.cache.blocks)
	r.cache.mu.Unlock()
	if n > CacheBlocks {
		t.Errorf("cache holds %d blocks, bound %d", n, CacheBlocks)
	}
}

// TestBucketsOpenedOnce: a bucket is opened once per process and
// credentials (the drivers' environment), so a run's many objects of one
// bucket pay the SDK's configuration once, and changed credentials open it
// again. Opening an S3 bucket connects to nothing, so no server is needed.
func TestBucketsOpenedOnce(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "one")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	loc := func(p string) location {
		l, err := locate(p)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	q := "?endpoint=http%3A%2F%2F127.0.0.1%3A9&region=us-east-1&use_path_style=true"
	a, b := loc("s3://bkt/model.safetensors"+q), loc("s3://bkt/run/clicks.parquet"+q)
	ctx := context.Background()
	b1, err := openBucket(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := openBucket(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if b1 != b2 {
		t.Error("two objects of one bucket opened the bucket twice")
	}
	other, err := openBucket(ctx, loc("s3://other/x"+q))
	if err != nil {
		t.Fatal(err)
	}
	if other == b1 {
		t.Error("another bucket shares the first one's handle")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "two")
	b3, err := openBucket(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if b3 == b1 {
		t.Error("changed credentials reuse the bucket opened with the old ones")
	}
}
