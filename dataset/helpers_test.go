package dataset

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/rqtools/rq/internal/testshared"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

// datasetSharedPath finds a file of /work/shared (../../shared from here):
// missing files fail the test under CI=true and skip it otherwise.
func datasetSharedPath(t testing.TB, rel string) string {
	t.Helper()
	return testshared.Path(t, rel)
}

// readResult is everything a reader handed out, flattened to rows.
type readResult struct {
	sizes  []int
	starts []int64 // Batch.Row of each batch
	rows   []int64 // source row of every example, when contiguous within batches
	dense  [][]float32
	idx    [][]int64
	labels []float32
}

// readAll drains r, checking every batch's invariants on the way.
func readAll(t testing.TB, r Reader) (readResult, error) {
	t.Helper()
	var res readResult
	for {
		b, err := r.Next()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		checkBatch(t, b)
		res.sizes = append(res.sizes, b.N)
		res.starts = append(res.starts, b.Row)
		for i := 0; i < b.N; i++ {
			res.rows = append(res.rows, b.Row+int64(i))
			res.dense = append(res.dense, append([]float32(nil), b.Dense[i*b.NumDense:(i+1)*b.NumDense]...))
			row := make([]int64, len(b.Indices))
			for t := range b.Indices {
				row[t] = b.Indices[t][i]
			}
			res.idx = append(res.idx, row)
			res.labels = append(res.labels, b.Labels[i])
		}
	}
}

func checkBatch(t testing.TB, b *model.Batch) {
	t.Helper()
	if b.N <= 0 || len(b.Dense) != b.N*b.NumDense || len(b.Labels) != b.N || len(b.Indices) != len(b.Offsets) {
		t.Fatalf("inconsistent batch: N=%d NumDense=%d len(Dense)=%d len(Labels)=%d tables %d/%d",
			b.N, b.NumDense, len(b.Dense), len(b.Labels), len(b.Indices), len(b.Offsets))
	}
	for tb := range b.Indices {
		if len(b.Indices[tb]) != b.N || len(b.Offsets[tb]) != b.N+1 {
			t.Fatalf("table %d: %d indices and %d offsets for %d examples", tb, len(b.Indices[tb]), len(b.Offsets[tb]), b.N)
		}
		for i, o := range b.Offsets[tb] {
			if o != int32(i) {
				t.Fatalf("table %d: offset %d is %d, want %d (bags of one)", tb, i, o, i)
			}
		}
	}
	if b.Weights != nil {
		t.Fatalf("Weights should be nil")
	}
}

func mustOpen(t testing.TB, path string, opts Options) Reader {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustReadAll(t testing.TB, path string, opts Options) readResult {
	t.Helper()
	r := mustOpen(t, path, opts)
	res, err := readAll(t, r)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return res
}

// wantErr checks err is non-nil and its message contains every part.
func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// openErr opens path and reads it to the end, returning the first error.
func openErr(t testing.TB, path string, opts Options) error {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = readAll(t, r)
	return err
}

// testArray describes one .npy array for writeNpz.
type testArray struct {
	name    string
	descr   string
	shape   []int64
	fortran bool
	vals    []float64 // logical values, row-major
	version int       // npy format major version; 0 means 1
	header  string    // when set, replaces the generated header dict
	cut     int       // bytes cut off the end of the data
}

// npyBytes encodes a as a .npy file.
func npyBytes(a testArray) []byte {
	var data bytes.Buffer
	order := binary.ByteOrder(binary.LittleEndian)
	if strings.HasPrefix(a.descr, ">") {
		order = binary.BigEndian
	}
	vals := a.vals
	if a.fortran && len(a.shape) == 2 {
		rows, cols := int(a.shape[0]), int(a.shape[1])
		vals = make([]float64, len(a.vals))
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				vals[j*rows+i] = a.vals[i*cols+j]
			}
		}
	}
	for _, v := range vals {
		var b [8]byte
		switch a.descr[1:] {
		case "f8":
			order.PutUint64(b[:], math.Float64bits(v))
			data.Write(b[:8])
		case "f4":
			order.PutUint32(b[:], math.Float32bits(float32(v)))
			data.Write(b[:4])
		case "i8", "u8":
			order.PutUint64(b[:], uint64(int64(v)))
			data.Write(b[:8])
		case "i4", "u4":
			order.PutUint32(b[:], uint32(int64(v)))
			data.Write(b[:4])
		case "i2", "u2":
			order.PutUint16(b[:], uint16(int64(v)))
			data.Write(b[:2])
		case "i1", "u1", "b1":
			data.WriteByte(byte(int64(v)))
		default:
			panic("test helper: descr " + a.descr)
		}
	}
	hdr := a.header
	if hdr == "" {
		dims := make([]string, len(a.shape))
		for i, d := range a.shape {
			dims[i] = fmt.Sprint(d)
		}
		shape := strings.Join(dims, ", ")
		if len(a.shape) == 1 {
			shape += ","
		}
		fo := "False"
		if a.fortran {
			fo = "True"
		}
		hdr = fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }", a.descr, fo, shape)
	}
	var out bytes.Buffer
	out.Write(npyMagic)
	version := a.version
	if version == 0 {
		version = 1
	}
	out.Write([]byte{byte(version), 0})
	pre := 10
	if version >= 2 {
		pre = 12
	}
	// Pad with spaces and a newline to a multiple of 64, as numpy does.
	total := (pre + len(hdr) + 1 + 63) / 64 * 64
	hdr += strings.Repeat(" ", total-pre-len(hdr)-1) + "\n"
	if version >= 2 {
		binary.Write(&out, binary.LittleEndian, uint32(len(hdr)))
	} else {
		binary.Write(&out, binary.LittleEndian, uint16(len(hdr)))
	}
	out.WriteString(hdr)
	d := data.Bytes()
	out.Write(d[:len(d)-a.cut])
	return out.Bytes()
}

// writeNpz writes the arrays as an npz into t's temp dir, deflated or stored.
func writeNpz(t testing.TB, name string, method uint16, arrays ...testArray) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, a := range arrays {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: a.name + ".npy", Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(npyBytes(a))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLyingNpz writes one entry (name) whose zip header claims the full
// uncompressed size of full while the deflated data holds only its first keep
// bytes: a file truncated inside the compressed stream, or an archive
// lying about its sizes.
// With badCRC the data is whole but the recorded CRC is wrong.
func writeLyingNpz(t testing.TB, arrays []testArray, name string, keep int, badCRC bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lying.npz")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, a := range arrays {
		full := npyBytes(a)
		if a.name != name {
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: a.name + ".npy", Method: zip.Deflate})
			w.Write(full)
			continue
		}
		crc := crc32.ChecksumIEEE(full)
		if badCRC {
			crc++
		}
		var comp bytes.Buffer
		fw, _ := flate.NewWriter(&comp, flate.BestCompression)
		fw.Write(full[:keep])
		fw.Close()
		w, err := zw.CreateRaw(&zip.FileHeader{Name: a.name + ".npy", Method: zip.Deflate,
			CRC32: crc, CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(len(full))})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The logical content of testdata/small_*.npz (see gen_npz.py).
var (
	smallXInt = [][]float64{{0, 1, 2}, {3, 4, 5}, {-1, 7, 100}, {9, 0, 0}, {1, 1, 1},
		{2, 3, 5}, {8, 13, 21}, {34, 55, 89}, {0, 0, 0}, {1618112, 2, 3}}
	smallXCat   = [][]float64{{0, 6}, {1, 5}, {2, 4}, {3, 3}, {4, 2}, {0, 1}, {1, 0}, {2, 6}, {3, 5}, {4, 4}}
	smallY      = []float64{0, 1, 0, 0, 1, 1, 0, 0, 0, 1}
	smallTables = []int64{5, 7}
)

func flat(m [][]float64) []float64 {
	var out []float64
	for _, r := range m {
		out = append(out, r...)
	}
	return out
}

// smallArrays is the small fixture as testArrays, for tests to alter.
func smallArrays() []testArray {
	return []testArray{
		{name: "X_int", descr: "<i4", shape: []int64{10, 3}, vals: flat(smallXInt)},
		{name: "X_cat", descr: "<f8", shape: []int64{10, 2}, fortran: true, vals: flat(smallXCat)},
		{name: "y", descr: "<i4", shape: []int64{10}, vals: append([]float64(nil), smallY...)},
	}
}

// checkSmall checks a read of the whole small fixture against its values.
func checkSmall(t testing.TB, res readResult, transform DenseTransform) {
	t.Helper()
	if len(res.labels) != 10 {
		t.Fatalf("%d rows, want 10", len(res.labels))
	}
	for i := range 10 {
		for j, x := range smallXInt[i] {
			want := denseValue(float32(x), transform)
			if res.dense[i][j] != want {
				t.Fatalf("row %d dense %d: %v, want %v", i, j, res.dense[i][j], want)
			}
		}
		for tb, x := range smallXCat[i] {
			if res.idx[i][tb] != int64(x) {
				t.Fatalf("row %d table %d: %d, want %v", i, tb, res.idx[i][tb], x)
			}
		}
		if res.labels[i] != float32(smallY[i]) {
			t.Fatalf("row %d label %v, want %v", i, res.labels[i], smallY[i])
		}
		if res.rows[i] != int64(i) {
			t.Fatalf("example %d has source row %d", i, res.rows[i])
		}
	}
}

func isType[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
