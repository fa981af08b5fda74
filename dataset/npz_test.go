package dataset

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var smallFixtures = []string{"small_c.npz", "small_f.npz", "small_stored.npz", "small_dtypes.npz", "small_v2.npz", "small_v3.npz"}

// Every fixture holds the same rows in a different layout, dtype mix,
// compression or npy version: all must give the same batches.
func TestNpzFixturesAgree(t *testing.T) {
	for _, name := range smallFixtures {
		for _, tr := range []DenseTransform{Log1p, None} {
			t.Run(name+"/"+tr.String(), func(t *testing.T) {
				res := mustReadAll(t, filepath.Join("testdata", name), Options{BatchSize: 3, NumDense: 3, TableRows: smallTables, DenseTransform: tr})
				if !reflect.DeepEqual(res.sizes, []int{3, 3, 3, 1}) {
					t.Fatalf("batch sizes %v, want [3 3 3 1]", res.sizes)
				}
				checkSmall(t, res, tr)
			})
		}
	}
}

func TestNpzSniffAndCounts(t *testing.T) {
	r := mustOpen(t, filepath.Join("testdata", "small_c.npz"), Options{})
	cr, ok := r.(CountsReader)
	if !ok {
		t.Fatal("npz reader does not implement CountsReader")
	}
	if got := cr.Counts(); !reflect.DeepEqual(got, []int64{5, 7}) {
		t.Fatalf("Counts() = %v, want [5 7]", got)
	}
	if n := r.(RowsReader).TotalRows(); n != 10 {
		t.Fatalf("TotalRows() = %d", n)
	}
	res, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.sizes, []int{10}) {
		t.Fatalf("sizes %v", res.sizes)
	}
	r2 := mustOpen(t, filepath.Join("testdata", "small_stored.npz"), Options{})
	if got := r2.(CountsReader).Counts(); got != nil {
		t.Fatalf("Counts() = %v for a file without counts", got)
	}
	// A .npz named .bin is still sniffed by its magic.
	data, _ := os.ReadFile(filepath.Join("testdata", "small_f.npz"))
	p := filepath.Join(t.TempDir(), "data.bin")
	os.WriteFile(p, data, 0o644)
	checkSmall(t, mustReadAll(t, p, Options{}), Log1p)
}

// Row ranges starting and ending inside and at the edges of batches, over
// every layout (streamed, stored, column-major in memory).
func TestNpzRanges(t *testing.T) {
	ranges := []string{"0:3", "3:6", "2:9", "9:", ":1", "0:10", "5:", "1:2", "0:"}
	for _, name := range smallFixtures {
		path := filepath.Join("testdata", name)
		full := mustReadAll(t, path, Options{BatchSize: 4})
		for _, rs := range ranges {
			rg, err := ParseRange(rs)
			if err != nil {
				t.Fatal(err)
			}
			res := mustReadAll(t, path, Options{BatchSize: 3, Rows: rg})
			end := rg.End
			if end < 0 {
				end = 10
			}
			n := int(end - rg.Start)
			var sizes []int
			for left := n; left > 0; left -= 3 {
				sizes = append(sizes, min(left, 3))
			}
			if !reflect.DeepEqual(res.sizes, sizes) {
				t.Fatalf("%s %s: sizes %v, want %v", name, rs, res.sizes, sizes)
			}
			if !reflect.DeepEqual(res.dense, full.dense[rg.Start:end]) || !reflect.DeepEqual(res.idx, full.idx[rg.Start:end]) ||
				!reflect.DeepEqual(res.labels, full.labels[rg.Start:end]) || !reflect.DeepEqual(res.rows, full.rows[rg.Start:end]) {
				t.Fatalf("%s %s: rows differ from the full read", name, rs)
			}
		}
	}
}

// With a zero memory limit, column-major compressed arrays spill to a
// temporary file, which Close removes.
func TestNpzSpill(t *testing.T) {
	old := fortranMemLimit
	fortranMemLimit = 0
	defer func() { fortranMemLimit = old }()
	for _, rs := range []Range{AllRows, {2, 9}} {
		r, err := Open(filepath.Join("testdata", "small_f.npz"), Options{BatchSize: 4, Rows: rs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() }) // also when the test fails midway
		nr := r.(*npzReader)
		if len(nr.tmp) != 2 { // X_int and X_cat are both column-major
			t.Fatalf("%d temp files, want 2", len(nr.tmp))
		}
		names := []string{nr.tmp[0].Name(), nr.tmp[1].Name()}
		res, err := readAll(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if rs.IsAll() {
			checkSmall(t, res, Log1p)
		} else if len(res.labels) != 7 || res.rows[0] != 2 || res.idx[0][1] != 4 || res.dense[5][2] != denseValue(89, Log1p) {
			t.Fatalf("range 2:9 read wrong: %+v", res)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if _, err := os.Stat(n); !os.IsNotExist(err) {
				t.Fatalf("temp file %s still there after Close (%v)", n, err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := r.Next(); err == nil {
			t.Fatal("Next after Close succeeded")
		}
	}
}

// Synthetic npz files written by the test helper, in both C and Fortran
// order, deflated and stored: the same batches.
func TestNpzSynthLayouts(t *testing.T) {
	var want readResult
	first := true
	for _, method := range []uint16{zip.Deflate, zip.Store} {
		for _, fortran := range []bool{false, true} {
			arrays := smallArrays()
			arrays[0].fortran = fortran
			arrays[1].fortran = fortran
			arrays[0].descr = "<i8"
			arrays[1].descr = "<u4"
			arrays[2].descr = "|u1"
			res := mustReadAll(t, writeNpz(t, "s.npz", method, arrays...), Options{BatchSize: 4, TableRows: smallTables})
			checkSmall(t, res, Log1p)
			if first {
				want, first = res, false
			} else if !reflect.DeepEqual(res, want) {
				t.Fatalf("method %d fortran %v: batches differ", method, fortran)
			}
		}
	}
}

func TestNpzRowErrors(t *testing.T) {
	cases := []struct {
		name   string
		change func(a []testArray)
		opts   Options
		parts  []string
	}{
		{"index beyond table", func(a []testArray) { a[1].vals[7*2+1] = 9 }, Options{TableRows: smallTables},
			[]string{"row 7 (X_cat column 1): index 9 is beyond table emb_l.1 with 7 rows"}},
		{"negative index", func(a []testArray) { a[1].descr = "<i8"; a[1].vals[3*2] = -3 }, Options{},
			[]string{"row 3 (X_cat column 0): index -3 is negative"}},
		{"negative float index", func(a []testArray) { a[1].vals[3*2] = -3 }, Options{},
			[]string{"row 3 (X_cat column 0): index -3 is negative"}},
		{"non-integral index", func(a []testArray) { a[1].vals[4*2] = 2.5 }, Options{},
			[]string{"row 4 (X_cat column 0): index 2.5 is not an integer"}},
		{"NaN index", func(a []testArray) { a[1].vals[4*2+1] = nanF64() }, Options{},
			[]string{"row 4 (X_cat column 1): index NaN is not a number"}},
		{"huge unsigned index", func(a []testArray) { a[1].descr = "<u8"; a[1].vals[2] = -1 }, Options{},
			[]string{"row 1 (X_cat column 0): index 18446744073709551615 does not fit in int64"}},
		{"bad label", func(a []testArray) { a[2].vals[5] = 2 }, Options{},
			[]string{"row 5 (y): label 2 is not 0 or 1"}},
		{"bad float label", func(a []testArray) { a[2].descr = "<f4"; a[2].vals[6] = 0.5 }, Options{},
			[]string{"row 6 (y): label 0.5 is not 0 or 1"}},
		{"bad bool label", func(a []testArray) { a[2].descr = "|b1"; a[2].vals[8] = 2 }, Options{},
			[]string{"row 8 (y): label 2 is not 0 or 1"}},
		{"NaN dense", func(a []testArray) { a[0].descr = "<f8"; a[0].vals[9*3+2] = nanF64() }, Options{},
			[]string{"row 9 (X_int column 2): value NaN is not a finite float32"}},
		{"dense beyond float32", func(a []testArray) { a[0].descr = "<f8"; a[0].vals[0] = 1e300 }, Options{},
			[]string{"row 0 (X_int column 0): value 1e+300 is not a finite float32"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []uint16{zip.Deflate, zip.Store} {
				arrays := smallArrays()
				c.change(arrays)
				path := writeNpz(t, "bad.npz", method, arrays...)
				err := openErr(t, path, c.opts)
				t.Log(err)
				wantErr(t, err, append([]string{path + ": "}, c.parts...)...)
				if !isType[*RowError](err) {
					t.Fatalf("%T is not a *RowError", err)
				}
				// Skip mode drops exactly that row.
				opts := c.opts
				opts.BadRows = Skip
				r := mustOpen(t, path, opts)
				res, err := readAll(t, r)
				if err != nil {
					t.Fatal(err)
				}
				st := r.Stats()
				if len(res.labels) != 9 || st.Rows != 9 || st.Skipped != 1 || !strings.Contains(st.FirstSkipped, c.parts[0]) {
					t.Fatalf("skip mode: %d rows, stats %+v", len(res.labels), st)
				}
			}
		})
	}
}

func nanF64() float64 {
	var z float64
	return z / z
}

// Skip mode counts every bad row, keeps the first reason, and fills whole
// batches from the rows after the bad ones.
func TestNpzSkipCounts(t *testing.T) {
	arrays := smallArrays()
	arrays[2].vals[1] = 7
	arrays[1].vals[4*2] = 0.25
	arrays[2].vals[8] = -1
	path := writeNpz(t, "skip.npz", zip.Deflate, arrays...)
	r := mustOpen(t, path, Options{BadRows: Skip, BatchSize: 3})
	res, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if !reflect.DeepEqual(res.sizes, []int{3, 3, 1}) || st.Rows != 7 || st.Skipped != 3 ||
		st.FirstSkipped != path+": row 1 (y): label 7 is not 0 or 1" {
		t.Fatalf("sizes %v stats %+v", res.sizes, st)
	}
	if res.labels[0] != 0 || res.idx[1][0] != 2 { // rows 0, 2, 3, ...
		t.Fatalf("wrong rows kept: %+v", res)
	}
}

func TestNpzFileErrors(t *testing.T) {
	small := smallArrays
	cases := []struct {
		name   string
		path   func(t *testing.T) string
		opts   Options
		parts  []string
		unsupp bool
	}{
		{"mismatched rows", func(t *testing.T) string {
			a := small()
			a[2].shape = []int64{9}
			a[2].vals = a[2].vals[:9]
			return writeNpz(t, "m.npz", zip.Deflate, a...)
		}, Options{}, []string{"y has 9 rows but X_int and X_cat have 10"}, false},
		{"mismatched X_cat rows", func(t *testing.T) string {
			a := small()
			a[1].shape = []int64{5, 4}
			return writeNpz(t, "m.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_cat has 5 rows but X_int and y have 10"}, false},
		{"wrong table count", func(t *testing.T) string { return writeNpz(t, "w.npz", zip.Deflate, small()...) },
			Options{TableRows: []int64{5, 7, 9}}, []string{"X_cat has 2 columns, the model has 3 embedding tables"}, false},
		{"wrong dense count", func(t *testing.T) string { return writeNpz(t, "w.npz", zip.Store, small()...) },
			Options{NumDense: 13}, []string{"X_int has 3 columns, the model has 13 dense features"}, false},
		{"big-endian", func(t *testing.T) string {
			a := small()
			a[0].descr = ">i4"
			return writeNpz(t, "be.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_int", "big-endian dtype \">i4\""}, true},
		{"complex dtype", func(t *testing.T) string {
			a := small()
			a[1].header = "{'descr': '<c16', 'fortran_order': False, 'shape': (10, 1), }"
			return writeNpz(t, "c.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_cat", "dtype \"<c16\""}, true},
		{"structured dtype", func(t *testing.T) string {
			a := small()
			a[2].header = "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (10,), }"
			return writeNpz(t, "s.npz", zip.Deflate, a...)
		}, Options{}, []string{"y", "structured dtype"}, true},
		{"bool features", func(t *testing.T) string {
			a := small()
			a[0].descr = "|b1"
			return writeNpz(t, "b.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_int", "dtype bool"}, true},
		{"npy version 4", func(t *testing.T) string {
			a := small()
			a[2].version = 4
			return writeNpz(t, "v.npz", zip.Deflate, a...)
		}, Options{}, []string{"y", "version 4.0"}, true},
		{"1-D X_int", func(t *testing.T) string {
			a := small()
			a[0].shape = []int64{30}
			return writeNpz(t, "d.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_int", "shape [30], want 2-D"}, false},
		{"truncated npy data", func(t *testing.T) string {
			a := small()
			a[1].cut = 8
			return writeNpz(t, "t.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_cat", "header says shape [10 2] of <f8 (160 bytes of data) but the entry holds 152"}, false},
		{"truncated npy data, stored", func(t *testing.T) string {
			a := small()
			a[0].cut = 3
			return writeNpz(t, "t.npz", zip.Store, a...)
		}, Options{}, []string{"X_int", "(120 bytes of data) but the entry holds 117"}, false},
		{"deflate stream ends early (C order)", func(t *testing.T) string {
			return writeLyingNpz(t, small(), "X_int", 128+60, false)
		}, Options{}, []string{"X_int", "data ends early in rows 0..9"}, false},
		{"deflate stream ends early (Fortran)", func(t *testing.T) string {
			return writeLyingNpz(t, small(), "X_cat", 128+100, false)
		}, Options{}, []string{"X_cat", "data ends early while reading column 1"}, false},
		{"CRC mismatch (C order)", func(t *testing.T) string {
			return writeLyingNpz(t, small(), "X_int", 128+120, true)
		}, Options{}, []string{"X_int", "CRC mismatch"}, false},
		{"CRC mismatch (Fortran)", func(t *testing.T) string {
			return writeLyingNpz(t, small(), "X_cat", 128+160, true)
		}, Options{Rows: Range{2, 4}}, []string{"X_cat", "CRC mismatch"}, false},
		{"header claims 2^40 rows", func(t *testing.T) string {
			a := small()
			a[1].header = "{'descr': '<f8', 'fortran_order': True, 'shape': (1099511627776, 2), }"
			return writeNpz(t, "h.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_cat", "shape [1099511627776 2]", "17592186044416 bytes of data"}, false},
		{"header overflows int64", func(t *testing.T) string {
			a := small()
			a[1].header = "{'descr': '<f8', 'fortran_order': True, 'shape': (4611686018427387904, 4611686018427387904), }"
			return writeNpz(t, "h.npz", zip.Store, a...)
		}, Options{}, []string{"X_cat", "more than 2^63 bytes of data"}, false},
		{"bad header", func(t *testing.T) string {
			a := small()
			a[0].header = "{'descr': '<i4', 'fortran_order': Maybe, 'shape': (10, 3), }"
			return writeNpz(t, "h.npz", zip.Deflate, a...)
		}, Options{}, []string{"X_int", "bad .npy header", "Maybe"}, false},
		{"missing y", func(t *testing.T) string { return writeNpz(t, "n.npz", zip.Deflate, small()[:2]...) },
			Options{}, []string{"no y array (the archive holds X_cat, X_int)"}, false},
		{"range beyond file", func(t *testing.T) string { return writeNpz(t, "r.npz", zip.Deflate, small()...) },
			Options{Rows: Range{5, 20}}, []string{"row range 5:20 goes beyond the end of the file, which has 10 rows"}, false},
		{"start beyond file", func(t *testing.T) string { return writeNpz(t, "r.npz", zip.Deflate, small()...) },
			Options{Rows: Range{11, -1}}, []string{"row range 11: goes beyond the end of the file, which has 10 rows"}, false},
		{"not a zip", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "junk.npz")
			os.WriteFile(p, []byte("this is not a zip file at all"), 0o644)
			return p
		}, Options{}, []string{"not a valid npz (zip) archive"}, false},
		{"zip cut in half", func(t *testing.T) string {
			data, _ := os.ReadFile(filepath.Join("testdata", "small_c.npz"))
			p := filepath.Join(t.TempDir(), "half.npz")
			os.WriteFile(p, data[:len(data)/2], 0o644)
			return p
		}, Options{}, []string{"not a valid npz (zip) archive"}, false},
		{"corrupt deflate data", func(t *testing.T) string { return corruptEntry(t, "small_c.npz", "X_cat.npy") },
			Options{}, []string{"X_cat", "flate: corrupt input"}, false},
		{"corrupt deflate data, Fortran", func(t *testing.T) string { return corruptEntry(t, "small_f.npz", "X_cat.npy") },
			Options{}, []string{"X_cat", "reading the .npy header: flate: corrupt input"}, false},
		{"corrupt deflate data deep in C-order rows", func(t *testing.T) string {
			return corruptBig(t, false)
		}, Options{}, []string{"X_cat"}, false}, // garbage rows or a flate error, whichever comes first
		{"corrupt deflate data deep in Fortran columns", func(t *testing.T) string {
			return corruptBig(t, true)
		}, Options{}, []string{"X_cat", "corrupt"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path(t)
			err := openErr(t, path, c.opts)
			t.Log(err)
			wantErr(t, err, append([]string{path}, c.parts...)...)
			if c.unsupp != isType[*UnsupportedError](err) {
				t.Fatalf("%T: UnsupportedError %v, want %v", err, !c.unsupp, c.unsupp)
			}
		})
	}
}

// The CRC is only checked when the stream is read to its end: a C-order
// array read for a range ending early is not (documented in doc.go).
func TestNpzCRCOnlyAtEnd(t *testing.T) {
	path := writeLyingNpz(t, smallArrays(), "X_int", 128+120, true)
	res := mustReadAll(t, path, Options{Rows: Range{0, 9}})
	if len(res.labels) != 9 {
		t.Fatalf("%d rows", len(res.labels))
	}
	wantErr(t, openErr(t, path, Options{Rows: Range{9, -1}}), "CRC mismatch")
}

// corruptEntry copies a fixture with bytes in the middle of one entry's
// compressed data flipped.
func corruptEntry(t *testing.T, fixture, entry string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == entry {
			off, _ := f.DataOffset()
			mid := off + int64(f.CompressedSize64)/2
			for i := mid; i < mid+4; i++ {
				data[i] ^= 0x5a
			}
		}
	}
	p := filepath.Join(t.TempDir(), "corrupt.npz")
	os.WriteFile(p, data, 0o644)
	return p
}

// corruptBig writes a 5000-row npz with pseudo-random X_cat and flips bytes
// three quarters into X_cat's compressed data, past the header.
func corruptBig(t *testing.T, fortran bool) string {
	t.Helper()
	const n = 5000
	a := []testArray{
		{name: "X_int", descr: "<i4", shape: []int64{n, 1}, vals: make([]float64, n)},
		{name: "X_cat", descr: "<i8", shape: []int64{n, 3}, fortran: fortran, vals: make([]float64, 3*n)},
		{name: "y", descr: "<i4", shape: []int64{n}, vals: make([]float64, n)},
	}
	x := uint64(1)
	for i := range a[1].vals {
		x = x*6364136223846793005 + 1442695040888963407
		a[1].vals[i] = float64(x >> 50)
	}
	p := writeNpz(t, "big.npz", zip.Deflate, a...)
	data, _ := os.ReadFile(p)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "X_cat.npy" {
			off, _ := f.DataOffset()
			mid := off + int64(f.CompressedSize64)*3/4
			for i := mid; i < mid+16; i++ {
				data[i] ^= 0x5a
			}
		}
	}
	os.WriteFile(p, data, 0o644)
	return p
}

func TestNpyHeaderParse(t *testing.T) {
	good := []struct {
		hdr   string
		shape []int64
		fo    bool
		descr string
	}{
		{"{'descr': '<f8', 'fortran_order': True, 'shape': (18000, 26), }", []int64{18000, 26}, true, "<f8"},
		{"{'descr':'|u1','fortran_order':False,'shape':(3L, 4L)}", []int64{3, 4}, false, "|u1"},
		{`{"shape": (), "fortran_order": False, "descr": "<i2"}`, nil, false, "<i2"},
		{"{'descr': '|b1', 'fortran_order': False, 'shape': (5,), 'extra': [1, 'x', None]}", []int64{5}, false, "|b1"},
	}
	for _, g := range good {
		for _, v := range []int{1, 2, 3} {
			b := npyBytes(testArray{descr: "<f8", header: g.hdr, version: v})
			h, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("%s (v%d): %v", g.hdr, v, err)
			}
			if !reflect.DeepEqual(h.shape, g.shape) || h.fortran != g.fo || h.dt.descr != g.descr || h.dataOff%64 != 0 {
				t.Fatalf("%s: got %+v", g.hdr, h)
			}
		}
	}
	bad := []struct{ hdr, msg string }{
		{"{'descr': '<f8', 'fortran_order': True}", "'shape' missing"},
		{"{'descr': '<f8', 'shape': (1,)}", "'fortran_order' missing"},
		{"{'fortran_order': True, 'shape': (1,)}", "no 'descr'"},
		{"{'descr': '<f8', 'fortran_order': True, 'shape': (-1,)}", "not a non-negative integer"},
		{"{'descr': '<f8', 'fortran_order': True, 'shape': (1, 'a')}", "not a non-negative integer"},
		{"{'descr': '<f8', 'fortran_order': True, 'shape': (99999999999999999999,)}", "bad integer"},
		{"{'descr': '<f8', 'descr': '<f8'}", "duplicate key"},
		{"['descr']", "not a dict"},
		{"{'descr': '<f8'", "want ',' or '}'"},
		{"{'descr: 1}", "unterminated string"},
		{"{'d\\'': 1}", "escapes"},
		{strings.Repeat("(", 100), "nested too deeply"},
		{"{'descr': '<U10', 'fortran_order': False, 'shape': (1,)}", "dtype \"<U10\""},
		{"{'descr': '|i4', 'fortran_order': False, 'shape': (1,)}", "without an explicit byte order"},
		{"{'descr': '<f2', 'fortran_order': False, 'shape': (1,)}", "dtype \"<f2\""},
		{"{} junk", "after the value"},
	}
	for _, c := range bad {
		b := npyBytes(testArray{descr: "<f8", header: c.hdr})
		_, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
		wantErr(t, err, c.msg)
	}
	// Framing errors.
	for _, c := range []struct {
		data []byte
		size int64
		msg  string
	}{
		{[]byte("\x93NUMP"), 5, "too short for the magic"},
		{[]byte("PK\x03\x04abcdefgh"), 12, "bad magic"},
		{[]byte("\x93NUMPY\x01\x00\xff"), 100, "truncated .npy header"},
		{[]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"), 1 << 40, "claims 4294967295 bytes"},
		{[]byte("\x93NUMPY\x01\x00\x00\x10{}"), 50, "but the array is only 50 bytes long"},
		{[]byte("\x93NUMPY\x01\x00\x10\x00{}"), 100, "truncated .npy header"},
	} {
		_, err := readNpyHeader(bytes.NewReader(c.data), c.size)
		wantErr(t, err, c.msg)
	}
}

func TestDtypeDecode(t *testing.T) {
	d, err := parseDescr("<i2")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.float32At([]byte{0xff, 0xff}); v != -1 {
		t.Fatalf("<i2 ffff = %v", v)
	}
	d, _ = parseDescr("<u8")
	if v, _ := d.float32At([]byte{0, 0, 0, 0, 0, 0, 0, 0x80}); v != 1<<63 {
		t.Fatalf("<u8 2^63 = %v", v)
	}
	for _, s := range []string{"|i1", "<i1", ">i1", "|u1", "|b1", "<f4", "<f8", "<u2", "<u4", "<i8"} {
		if _, err := parseDescr(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, s := range []string{">f8", ">u2", "=i4", "<i3", "<b2", "x", "<f16", "O", "<M8"} {
		if _, err := parseDescr(s); err == nil {
			t.Fatalf("%s accepted", s)
		}
	}
}

// corruptStored copies an npz with one byte of a stored entry flipped, at
// offset at of the entry's bytes (negative: from the end).
func corruptStored(t *testing.T, src, entry string, at int64) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		if zf.Name != entry {
			continue
		}
		if zf.Method != zip.Store {
			t.Fatalf("%s in %s is not stored", entry, src)
		}
		off, err := zf.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at += int64(zf.UncompressedSize64)
		}
		data[off+at] ^= 0x01
		p := filepath.Join(t.TempDir(), "corrupt_"+filepath.Base(src))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("no %s in %s", entry, src)
	return ""
}

// Stored (uncompressed) entries have their CRC-32 checked as deflated ones
// do (and as numpy's zipfile does): a flipped bit in a row was read as data.
func TestNpzStoredCRC(t *testing.T) {
	stored := filepath.Join("testdata", "small_stored.npz")
	for _, entry := range []string{"X_int.npy", "X_cat.npy", "y.npy"} {
		name := strings.TrimSuffix(entry, ".npy")
		// The last byte of the last row.
		p := corruptStored(t, stored, entry, -1)
		wantErr(t, openErr(t, p, Options{}), p, name, "CRC mismatch")
		// A byte of the .npy header, before a selection that reaches the
		// end: the bytes before it count too.
		p = corruptStored(t, stored, entry, 20)
		err := openErr(t, p, Options{Rows: Range{5, -1}})
		wantErr(t, err, p, name)
		if !strings.Contains(err.Error(), "CRC mismatch") && !strings.Contains(err.Error(), "header") {
			t.Fatalf("%s: header byte flipped: %v", entry, err)
		}
	}
	// A row before the selection (X_int is row-major: 10 rows of 12 bytes).
	p := corruptStored(t, stored, "X_int.npy", -50)
	wantErr(t, openErr(t, p, Options{Rows: Range{9, -1}}), p, "X_int", "CRC mismatch")
	// As for deflated entries, a row-major selection that ends before the
	// last row is not read to the end, so not checked (dataset/doc.go).
	if res := mustReadAll(t, p, Options{Rows: Range{0, 9}}); len(res.labels) != 9 {
		t.Fatalf("%d rows", len(res.labels))
	}
	// The intact file reads.
	mustReadAll(t, stored, Options{})

	// Column-major stored arrays (X_cat here) are checked whole at open,
	// whatever the rows, as deflated ones are inflated whole.
	p = corruptStored(t, stored, "X_cat.npy", -1)
	wantErr(t, openErr(t, p, Options{Rows: Range{0, 2}}), p, "X_cat", "CRC mismatch")
	arrays := smallArrays()
	arrays[0].fortran, arrays[1].fortran = true, true
	f := writeNpz(t, "f_stored.npz", zip.Store, arrays...)
	mustReadAll(t, f, Options{})
	p = corruptStored(t, f, "X_int.npy", -1)
	wantErr(t, openErr(t, p, Options{Rows: Range{2, 4}}), p, "X_int", "CRC mismatch")
}
