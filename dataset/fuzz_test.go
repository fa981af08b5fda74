package dataset

import (
	"archive/zip"
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// For every integer a Criteo count can be (and beyond, to 2^24 where float32
// stops being exact), the torch-mirroring log1p equals the float64 log1p
// rounded once to float32: the formula the design asks for.
func TestLog1pFormula(t *testing.T) {
	step := 1
	if testing.Short() {
		step = 97
	}
	for x := 0; x <= 1<<24; x += step {
		f := float32(x)
		if got, want := denseValue(f, Log1p), float32(math.Log1p(float64(f))); got != want {
			t.Fatalf("log1p(%d) = %v, want %v", x, got, want)
		}
	}
	for _, x := range []float32{-1, -1e30, float32(math.Copysign(0, -1))} {
		if v := denseValue(x, Log1p); v != 0 || math.Signbit(float64(v)) {
			t.Fatalf("log1p(%v) = %v, want +0", x, v)
		}
	}
	if v := denseValue(-5, None); v != -5 {
		t.Fatalf("None changed -5 to %v", v)
	}
}

func tsvSeedLines(f *testing.F) {
	for _, p := range []string{"testdata/small.tsv", "testdata/odd.tsv", "testdata/small_crlf.tsv"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add([]byte(l))
		}
	}
	f.Add([]byte("1\t-9223372036854775808\t\t\t\t\t\t\t\t\t\t\t\t\tFFFFFFFFFFFFFFFF"))
}

// FuzzTSVRow: ParseTSVRow never panics, and what it accepts is in range.
func FuzzTSVRow(f *testing.F) {
	tsvSeedLines(f)
	tr := []int64{254, 440, 9936, 6873, 71, 9, 4393, 121, 3, 4496, 2605, 9497, 2118, 23, 2782, 8358, 10, 1536, 727, 4, 9015, 8, 12, 4023, 43, 3120}
	f.Fuzz(func(t *testing.T, line []byte) {
		dense := make([]float32, 13)
		idx := make([]int64, 26)
		label, err := ParseTSVRow(line, tr, Log1p, dense, idx)
		if err != nil {
			if !isType[*FieldError](err) || err.Error() == "" {
				t.Fatalf("error %T %q", err, err)
			}
			return
		}
		if label != 0 && label != 1 {
			t.Fatalf("label %v", label)
		}
		for j, v := range dense {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				t.Fatalf("dense %d = %v", j, v)
			}
		}
		for c, v := range idx {
			if v < 0 || v >= tr[c] {
				t.Fatalf("index %d = %d", c, v)
			}
		}
		// Without table sizes, parsing must agree or fail only on the int64 bound.
		idx2 := make([]int64, 26)
		label2, err := ParseTSVRow(line, nil, Log1p, dense, idx2)
		if err != nil {
			if !strings.Contains(err.Error(), "does not fit in int64") {
				t.Fatalf("accepted with tables, refused without: %v", err)
			}
			return
		}
		for c := range idx {
			if idx2[c]%tr[c] != idx[c] || label2 != label {
				t.Fatalf("table %d: %d mod %d != %d", c, idx2[c], tr[c], idx[c])
			}
		}
	})
}

// FuzzTSVFile: whole files (plain or gzip), in both bad-row modes.
func FuzzTSVFile(f *testing.F) {
	for _, p := range []string{"testdata/small.tsv", "testdata/odd.tsv", "testdata/small_crlf.tsv", "testdata/small.tsv.gz",
		// The hostile corpus's logs (cmd/testdata/hostile/gen.go).
		"../cmd/testdata/hostile/tiny.tsv", "../cmd/testdata/hostile/allbad.tsv.gz"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := Options{BatchSize: 3, Format: "tsv", TableRows: tables(4, 7), NumDense: 2, BadRows: BadRows(mode & 1)}
		if mode&2 != 0 {
			opts.Rows = Range{1, 5}
		}
		drain(t, "f.tsv", data, opts)
	})
}

// drain reads in-memory file data to its end (or the first error, or 1000 batches),
// checking batch invariants; it must not panic.
func drain(t *testing.T, name string, data []byte, opts Options) {
	r, err := openFrom(name, bytes.NewReader(data), int64(len(data)), nil, opts)
	if err != nil {
		return
	}
	defer r.Close()
	total := 0
	for range 1000 {
		b, err := r.Next()
		if err != nil {
			if err != io.EOF && err.Error() == "" {
				t.Fatal("empty error")
			}
			break
		}
		checkBatch(t, b)
		if b.N > max(opts.BatchSize, 1) {
			t.Fatalf("batch of %d", b.N)
		}
		for tb, ix := range b.Indices {
			for _, v := range ix {
				if v < 0 || (opts.TableRows != nil && v >= opts.TableRows[tb]) {
					t.Fatalf("index %d in table %d", v, tb)
				}
			}
		}
		for _, l := range b.Labels {
			if l != 0 && l != 1 {
				t.Fatalf("label %v", l)
			}
		}
		total += b.N
	}
	if st := r.Stats(); st.Rows != int64(total) {
		t.Fatalf("Stats.Rows %d, handed out %d", st.Rows, total)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// FuzzNpyHeader: the header parser never panics or over-reads, and what it
// accepts is consistent.
func FuzzNpyHeader(f *testing.F) {
	for _, name := range smallFixtures {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			rc, err := zf.Open()
			if err != nil {
				f.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			f.Add(b)
		}
	}
	f.Add(npyBytes(testArray{descr: "<f8", header: "{'descr': '<f8', 'fortran_order': True, 'shape': (1099511627776, 26), }"}))
	f.Add(npyBytes(testArray{descr: "<f8", version: 2, header: "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (3L,), }"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readNpyHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if h.dataOff > int64(len(data)) || h.dataOff < 10 {
			t.Fatalf("dataOff %d of %d bytes", h.dataOff, len(data))
		}
		if s := h.dt.size; s != 1 && s != 2 && s != 4 && s != 8 {
			t.Fatalf("dtype size %d", s)
		}
		for _, d := range h.shape {
			if d < 0 {
				t.Fatalf("shape %v", h.shape)
			}
		}
		h.dataBytes()
	})
}

// FuzzNpz: whole archives; never panic, bounded memory (a fuzzed header can
// claim any shape), spill path included.
func FuzzNpz(f *testing.F) {
	for _, name := range smallFixtures {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0))
		f.Add(data, uint8(7))
	}
	// The hostile corpus's npz files (cmd/testdata/hostile/gen.go): stored
	// members, one failing its CRC.
	for _, name := range []string{"tiny.npz", "badcrc.npz"} {
		data, err := os.ReadFile(filepath.Join("..", "cmd", "testdata", "hostile", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := Options{BatchSize: 4, Format: "npz", BadRows: BadRows(mode & 1)}
		if mode&2 != 0 {
			opts.TableRows = smallTables
			opts.NumDense = 3
		}
		if mode&4 != 0 {
			opts.Rows = Range{2, 9}
		}
		if mode&8 != 0 {
			old := fortranMemLimit
			fortranMemLimit = 16
			defer func() { fortranMemLimit = old }()
		}
		drain(t, "f.npz", data, opts)
	})
}

// FuzzNpzArrays: three .npy payloads (X_int, X_cat, y) wrapped in a valid
// archive, stored or deflated, so mutations reach headers and data rather
// than dying on the zip's structure and CRCs.
func FuzzNpzArrays(f *testing.F) {
	for _, name := range smallFixtures {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			f.Fatal(err)
		}
		entries := map[string][]byte{}
		for _, zf := range zr.File {
			rc, err := zf.Open()
			if err != nil {
				f.Fatal(err)
			}
			entries[zf.Name], _ = io.ReadAll(rc)
			rc.Close()
		}
		f.Add(entries["X_int.npy"], entries["X_cat.npy"], entries["y.npy"], uint8(0))
		f.Add(entries["X_int.npy"], entries["X_cat.npy"], entries["y.npy"], uint8(0x1f))
	}
	f.Fuzz(func(t *testing.T, xint, xcat, y []byte, mode uint8) {
		method := zip.Deflate
		if mode&16 != 0 {
			method = zip.Store
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, b := range [][]byte{xint, xcat, y} {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: []string{"X_int", "X_cat", "y"}[i] + ".npy", Method: method})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(b)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		opts := Options{BatchSize: 4, BadRows: BadRows(mode & 1)}
		if mode&2 != 0 {
			opts.TableRows = smallTables
			opts.NumDense = 3
		}
		if mode&4 != 0 {
			opts.Rows = Range{2, 9}
		}
		if mode&8 != 0 {
			old := fortranMemLimit
			fortranMemLimit = 16
			defer func() { fortranMemLimit = old }()
		}
		drain(t, "f.npz", buf.Bytes(), opts)
	})
}
