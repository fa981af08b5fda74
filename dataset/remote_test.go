package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/rqtools/rq/internal/s3test"
	"github.com/rqtools/rq/storage"
)

// sameRows reads path and url with opts and checks they give the same rows,
// value for value, in the same batches; it returns the row count.
func sameRows(t *testing.T, path, url string, opts Options) int {
	t.Helper()
	local, err := readPq(t, mustOpen(t, path, opts))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r, err := OpenContext(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	defer r.Close()
	remote, err := readPq(t, r)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	if len(local) == 0 || fmt.Sprint(local) != fmt.Sprint(remote) {
		t.Fatalf("%s: %d rows from the object differ from the file's %d", url, len(remote), len(local))
	}
	return len(local)
}

func wideTables() []int64 {
	tables := make([]int64, 26)
	for i := range tables {
		tables[i] = math.MaxInt32
	}
	return tables
}

// TestObjectFormats reads every click-log format from the real S3 server
// and gets the rows the local files give: the criteo-18k npz (deflated
// arrays) and TSV, the TorchRec Parquet file, an MLPerf day by its dense
// file and by its prefix, and a prefix of Parquet parts.
func TestObjectFormats(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	npz := datasetSharedPath(t, "criteo-18k/dlrm-processed.npz")
	tsv := datasetSharedPath(t, "criteo-18k/criteo-18k.tsv")
	tr := datasetSharedPath(t, "criteo-torchrec")
	mh := datasetSharedPath(t, "criteo-torchrec/multi-hot")
	counts := sharedCounts(t, npz)

	t.Run("npz", func(t *testing.T) {
		u := s.PutFile(npz, "c18k/dlrm-processed.npz")
		if n := sameRows(t, npz, u, Options{TableRows: counts, Rows: Range{15429, 16715}, BatchSize: 500}); n != 1286 {
			t.Errorf("%d rows", n)
		}
		sameRows(t, npz, u, Options{TableRows: counts, BatchSize: 2048, Rows: AllRows, Shard: Shard{Index: 1, Count: 3}})
	})
	t.Run("tsv", func(t *testing.T) {
		u := s.PutFile(tsv, "c18k/criteo-18k.tsv")
		if n := sameRows(t, tsv, u, Options{TableRows: counts, NumDense: 13, Rows: AllRows}); n != 18000 {
			t.Errorf("%d rows", n)
		}
	})
	t.Run("parquet", func(t *testing.T) {
		p := filepath.Join(tr, "clicks.parquet")
		u := s.PutFile(p, "tr/clicks.parquet")
		o := Options{Rows: Range{15429, 16715}, BatchSize: 300, DenseTransform: None, NumDense: 13, TableRows: wideTables()}
		sameRows(t, p, u, o)
		if !IsParquet(u, "") || !ParquetDenseIsFloat(u, "", Columns{}) {
			t.Error("the object is Parquet with float dense columns")
		}
	})
	t.Run("mlperf", func(t *testing.T) {
		for _, name := range []string{"day_0_dense.npy", "day_0_labels.npy", "day_0_sparse_multi_hot.npz"} {
			s.PutFile(filepath.Join(mh, name), "mh/"+name)
		}
		o := Options{Rows: Range{15429, 16715}, BatchSize: 97, DenseTransform: None, NumDense: 13}
		dense := s.URL("mh/day_0_dense.npy")
		if !IsMLPerf(dense, "") || !IsMLPerf(s.URL("mh/"), "") {
			t.Error("IsMLPerf: the dense object and the prefix are MLPerf's layout")
		}
		days, err := MLPerfDays(dense)
		if err != nil || len(days) != 1 || days[0].Sparse != s.URL("mh/day_0_sparse_multi_hot.npz") {
			t.Fatalf("MLPerfDays(%s) = %v, %v", dense, days, err)
		}
		sameRows(t, mh, dense, o)
		sameRows(t, mh, s.URL("mh/"), o)
	})
	t.Run("parquet-parts", func(t *testing.T) {
		p := filepath.Join(tr, "clicks.parquet")
		dir := t.TempDir()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"part-00000.parquet", "part-00001.parquet", "_SUCCESS"} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			s.PutFile(filepath.Join(dir, name), "parts/"+name)
		}
		prefix := s.URL("parts/")
		if !IsParquetDir(prefix, "") || IsMLPerf(prefix, "") {
			t.Fatal("a prefix of *.parquet objects is a Parquet directory")
		}
		parts, err := ParquetParts(prefix)
		if err != nil || len(parts) != 2 || !strings.Contains(parts[1], "/parts/part-00001.parquet?") {
			t.Fatalf("parts %v, %v", parts, err)
		}
		o := Options{Rows: Range{17000, 19000}, BatchSize: 512, DenseTransform: None, NumDense: 13, TableRows: wideTables()}
		if n := sameRows(t, dir, prefix, o); n != 2000 {
			t.Errorf("%d rows across the two parts", n)
		}
	})
}

// bigPqRow is a row of a Parquet file whose column chunks are each larger
// than a storage block, so that reading them interleaved would thrash a
// block cache.
type bigPqRow struct {
	Label int32 `parquet:"label"`
	I1    int64 `parquet:"I1"`
	I2    int64 `parquet:"I2"`
	C1    int64 `parquet:"C1"`
	C2    int64 `parquet:"C2"`
	C3    int64 `parquet:"C3"`
	C4    int64 `parquet:"C4"`
	C5    int64 `parquet:"C5"`
	C6    int64 `parquet:"C6"`
	C7    int64 `parquet:"C7"`
	C8    int64 `parquet:"C8"`
}

// TestObjectParquetReads: a Parquet object is read by ranges, its column
// chunks through buffers of BlockSize, so eleven columns of 1.5 MiB read
// interleaved cost under three times the file in bytes fetched (the
// page-header checks read every block once, then the pages are read, the
// end of each chunk through a cached block), not a MiB per small read: with
// parquet-go's 4 KiB buffers it was 6.5 times.
func TestObjectParquetReads(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	const n = 200_000
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[bigPqRow](&buf)
	rows := make([]bigPqRow, 1000)
	for i := 0; i < n; i += len(rows) {
		for j := range rows {
			k := int64(i + j)
			rows[j] = bigPqRow{int32(k % 2), k, k * 7, k * 11 % 1000003, k * 13 % 1000003, k * 17 % 1000003, k * 19 % 1000003,
				k * 23 % 1000003, k * 29 % 1000003, k * 31 % 1000003, k * 37 % 1000003}
		}
		if _, err := w.Write(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	u := s.URL("big.parquet")
	if err := storage.WriteFile(context.Background(), u, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	size := int64(buf.Len())
	r, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Options{BatchSize: 2048, NumDense: 2, TableRows: wideTables()[:8], Rows: AllRows}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ctx = context.Background()
	pr, err := newParquetReader(u, r, size, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	got, err := readPq(t, pr)
	if err != nil || len(got) != n || got[n-1].bags[7][0] != (n-1)*37%1000003 {
		t.Fatalf("%d rows, %v", len(got), err)
	}
	st := r.Stats()
	t.Logf("%d rows: %d requests, %d bytes fetched for a %d-byte file", n, st.Requests, st.Bytes, size)
	if st.Bytes > 3*size {
		t.Errorf("fetched %d bytes in %d requests for a %d-byte file", st.Bytes, st.Requests, size)
	}
}

// TestObjectMissing: a missing object is fs.ErrNotExist, naming the URL.
func TestObjectMissing(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	u := s.URL("nope/day.npz")
	_, err := Open(u, Options{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope/day.npz") {
		t.Fatalf("missing object: %v", err)
	}
	_, err = Open(s.URL("empty-prefix/"), Options{Format: "parquet"})
	if err == nil || !strings.Contains(err.Error(), "no *.parquet files") {
		t.Fatalf("empty prefix: %v", err)
	}
}

// failingAt is a ReaderAt of n bytes (byte i is i%251) failing every read
// that reaches past bad.
type failingAt struct{ n, bad int64 }

func (f failingAt) ReadAt(p []byte, off int64) (int, error) {
	k := 0
	for ; k < len(p) && off+int64(k) < f.n; k++ {
		if off+int64(k) >= f.bad {
			return k, errors.New("connection reset")
		}
		p[k] = byte((off + int64(k)) % 251)
	}
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// TestPrefetcher: the read-ahead hands out the bytes in order, then the
// error of the request that failed (never bytes after it), and its Close
// ends the goroutine even when nobody reads.
func TestPrefetcher(t *testing.T) {
	for _, c := range []struct{ n, bad int64 }{{5*prefetchChunk + 17, 1 << 62}, {5 * prefetchChunk, 3*prefetchChunk + 5}, {0, 1 << 62}} {
		p := newPrefetcher()
		go p.run(failingAt{c.n, c.bad}, 0, c.n)
		got, err := io.ReadAll(p)
		want := min(c.n, c.bad)
		if c.bad < c.n {
			// Whole chunks before the failing one arrive; the failing
			// chunk's own bytes may too.
			if err == nil || !strings.Contains(err.Error(), "connection reset") || int64(len(got)) > want || int64(len(got)) < want/prefetchChunk*prefetchChunk {
				t.Fatalf("%+v: %d bytes, %v", c, len(got), err)
			}
		} else if err != nil || int64(len(got)) != want {
			t.Fatalf("%+v: %d bytes, %v", c, len(got), err)
		}
		for i, b := range got {
			if b != byte(i%251) {
				t.Fatalf("%+v: byte %d is %d", c, i, b)
			}
		}
		p.Close()
	}
	before := runtime.NumGoroutine()
	for range 20 {
		p := newPrefetcher()
		go p.run(failingAt{1 << 30, 1 << 62}, 0, 1<<30)
		p.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left running after Close (%d before)", n, before)
	}
}
