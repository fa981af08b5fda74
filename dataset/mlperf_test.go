package dataset

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

// mlRow is one example as an MLPerf reader hands it out: its source row,
// dense features, one bag per table and the label.
type mlRow struct {
	row   int64
	dense []float32
	bags  [][]int64
	label float32
}

// readBags drains r, checking every batch's bag invariants, and returns the
// rows and the batch sizes.
func readBags(t testing.TB, r Reader) ([]mlRow, []int, error) {
	t.Helper()
	var rows []mlRow
	var sizes []int
	for {
		b, err := r.Next()
		if err == io.EOF {
			return rows, sizes, nil
		}
		if err != nil {
			return rows, sizes, err
		}
		checkBags(t, b)
		sizes = append(sizes, b.N)
		for i := range b.N {
			row := mlRow{row: b.Row + int64(i), dense: b.Dense[i*b.NumDense : (i+1)*b.NumDense], label: b.Labels[i]}
			for k := range b.Indices {
				row.bags = append(row.bags, b.Indices[k][b.Offsets[k][i]:b.Offsets[k][i+1]])
			}
			rows = append(rows, row)
		}
	}
}

// checkBags checks a batch is in the forward pass's form: N+1 offsets per
// table from 0 to the number of indices, non-decreasing.
func checkBags(t testing.TB, b *model.Batch) {
	t.Helper()
	if b.N <= 0 || len(b.Dense) != b.N*b.NumDense || len(b.Labels) != b.N || len(b.Indices) != len(b.Offsets) || b.Weights != nil {
		t.Fatalf("inconsistent batch: N=%d NumDense=%d len(Dense)=%d len(Labels)=%d tables %d/%d",
			b.N, b.NumDense, len(b.Dense), len(b.Labels), len(b.Indices), len(b.Offsets))
	}
	for k, o := range b.Offsets {
		if len(o) != b.N+1 || o[0] != 0 || int(o[b.N]) != len(b.Indices[k]) {
			t.Fatalf("table %d: %d offsets from %d to %d for %d examples and %d ids", k, len(o), o[0], o[len(o)-1], b.N, len(b.Indices[k]))
		}
		for i := range b.N {
			if o[i+1] < o[i] {
				t.Fatalf("table %d: offsets decrease at %d", k, i)
			}
		}
	}
}

// mlOpenErr opens path and reads it to the end, returning the first error.
func mlOpenErr(t testing.TB, path string, opts Options) error {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	_, _, err = readBags(t, r)
	return err
}

// mlDay is the logical content of one synthetic day: nd dense columns,
// bags of hs[k] ids for table k.
type mlDay struct {
	dense  [][]float64
	labels []float64
	sparse [][][]float64 // [table][row][h]
	hs     []int
}

func smallDay() mlDay {
	const n = 10
	d := mlDay{hs: []int{1, 3, 2}}
	for i := range n {
		d.dense = append(d.dense, []float64{float64(i) + 0.5, -float64(i), 1.25 * float64(i*i)})
		d.labels = append(d.labels, float64(i%3%2))
	}
	for k, h := range d.hs {
		var tbl [][]float64
		for i := range n {
			bag := make([]float64, h)
			for j := range bag {
				bag[j] = float64(int64(i*7+j*3+k) % smallDayTables[k])
			}
			tbl = append(tbl, bag)
		}
		d.sparse = append(d.sparse, tbl)
	}
	return d
}

var smallDayTables = []int64{11, 13, 5}

// arrays are the day's arrays as written: dense f4, labels i4 [N,1],
// sparse i4 [N,h] named "0", "1", ...
func (d mlDay) arrays() (dense, labels testArray, sparse []testArray) {
	n := int64(len(d.labels))
	dense = testArray{name: "dense", descr: "<f4", shape: []int64{n, int64(len(d.dense[0]))}, vals: flat(d.dense)}
	labels = testArray{name: "labels", descr: "<i4", shape: []int64{n, 1}, vals: d.labels}
	for k, tbl := range d.sparse {
		sparse = append(sparse, testArray{name: fmt.Sprint(k), descr: "<i4", shape: []int64{n, int64(d.hs[k])}, vals: flat(tbl)})
	}
	return dense, labels, sparse
}

// writeDay writes the three files of day 0 into a fresh directory.
func writeDay(t testing.TB, dense, labels testArray, method uint16, sparse ...testArray) string {
	t.Helper()
	dir := t.TempDir()
	for name, a := range map[string]testArray{"day_0_dense.npy": dense, "day_0_labels.npy": labels} {
		if err := os.WriteFile(filepath.Join(dir, name), npyBytes(a), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	z := writeNpz(t, "sparse.npz", method, sparse...)
	if err := os.Rename(z, filepath.Join(dir, "day_0_sparse_multi_hot.npz")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func smallDayDir(t testing.TB, method uint16, fortran bool) string {
	dense, labels, sparse := smallDay().arrays()
	dense.fortran = fortran
	return writeDay(t, dense, labels, method, sparse...)
}

// TestMLPerfSmall: every row comes out as written (dense as stored, one bag
// of h_k ids per table, labels), whatever the batch size, npz compression
// and dense array order, from the directory or the dense file's path.
func TestMLPerfSmall(t *testing.T) {
	want := smallDay()
	for _, method := range []uint16{zip.Store, zip.Deflate} {
		for _, fortran := range []bool{false, true} {
			dir := smallDayDir(t, method, fortran)
			for _, path := range []string{dir, filepath.Join(dir, "day_0_dense.npy")} {
				for _, batch := range []int{1, 3, 10, 97} {
					name := fmt.Sprintf("method%d/fortran=%v/%s/batch%d", method, fortran, filepath.Base(path), batch)
					r := mustOpen(t, path, Options{BatchSize: batch, DenseTransform: None, NumDense: 3, TableRows: smallDayTables})
					rows, sizes, err := readBags(t, r)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if len(rows) != 10 || sizes[0] != min(batch, 10) {
						t.Fatalf("%s: %d rows in batches %v", name, len(rows), sizes)
					}
					for i, got := range rows {
						if got.row != int64(i) || got.label != float32(want.labels[i]) {
							t.Fatalf("%s: row %d: source row %d label %v", name, i, got.row, got.label)
						}
						for j, v := range got.dense {
							if v != float32(want.dense[i][j]) {
								t.Fatalf("%s: row %d dense %d: %v, want %v", name, i, j, v, want.dense[i][j])
							}
						}
						for k, bag := range got.bags {
							if len(bag) != want.hs[k] {
								t.Fatalf("%s: row %d table %d: bag %v, want %d ids", name, i, k, bag, want.hs[k])
							}
							for j, id := range bag {
								if id != int64(want.sparse[k][i][j]) {
									t.Fatalf("%s: row %d table %d: bag %v, want %v", name, i, k, bag, want.sparse[k][i])
								}
							}
						}
					}
					if st := r.Stats(); st.Rows != 10 || st.Skipped != 0 {
						t.Fatalf("%s: stats %+v", name, st)
					}
					if rr := r.(RowsReader); rr.TotalRows() != 10 || rr.SelectedRows() != 10 {
						t.Fatalf("%s: rows %d selected %d", name, rr.TotalRows(), rr.SelectedRows())
					}
				}
			}
		}
	}
}

// TestMLPerfTransform: the dense transform applies when asked (the cmd
// package defaults it to none for this layout), and no model means the
// file's own widths.
func TestMLPerfTransform(t *testing.T) {
	dir := smallDayDir(t, zip.Store, false)
	r := mustOpen(t, dir, Options{DenseTransform: Log1p})
	rows, _, err := readBags(t, r)
	if err != nil {
		t.Fatal(err)
	}
	d := smallDay()
	for i, row := range rows {
		for j, v := range row.dense {
			if w := denseValue(float32(d.dense[i][j]), Log1p); v != w {
				t.Fatalf("row %d dense %d: %v, want log1p %v", i, j, v, w)
			}
		}
		if len(row.bags) != 3 {
			t.Fatalf("%d tables without a model, want the file's 3", len(row.bags))
		}
	}
}

// TestMLPerfRowsAndShard: --rows selects source rows, --shard deals whole
// batches of the selection round-robin.
func TestMLPerfRowsAndShard(t *testing.T) {
	dir := smallDayDir(t, zip.Deflate, false)
	sourceRows := func(opts Options) []int64 {
		r := mustOpen(t, dir, opts)
		rows, _, err := readBags(t, r)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, row := range rows {
			out = append(out, row.row)
			if row.bags[1][0] != int64(smallDay().sparse[1][row.row][0]) {
				t.Fatalf("row %d has row %v's ids", row.row, row.bags[1])
			}
		}
		if rr, ok := r.(RowsReader); !ok || rr.SelectedRows() != int64(len(out)) {
			t.Fatalf("SelectedRows does not match the %d rows handed out", len(out))
		}
		return out
	}
	for _, c := range []struct {
		opts Options
		want []int64
	}{
		{Options{Rows: Range{2, 9}, BatchSize: 4}, []int64{2, 3, 4, 5, 6, 7, 8}},
		{Options{Rows: Range{7, -1}, BatchSize: 4}, []int64{7, 8, 9}},
		{Options{Rows: Range{2, 9}, BatchSize: 2, Shard: Shard{1, 3}}, []int64{4, 5}},
		{Options{Rows: Range{2, 9}, BatchSize: 2, Shard: Shard{0, 3}}, []int64{2, 3, 8}},
		{Options{BatchSize: 3, Shard: Shard{1, 2}}, []int64{3, 4, 5, 9}},
	} {
		if got := sourceRows(c.opts); !reflect.DeepEqual(got, c.want) {
			t.Errorf("rows %v batch %d shard %v: rows %v, want %v", c.opts.Rows, c.opts.BatchSize, c.opts.Shard, got, c.want)
		}
	}
	wantErr(t, mlOpenErr(t, dir, Options{Rows: Range{5, 11}}), "row range 5:11 goes beyond the end", "10 rows")
}

// TestMLPerfDetect: a directory or a day_N_dense.npy path is this layout;
// --data-format mlperf forces it, any other format refuses it.
func TestMLPerfDetect(t *testing.T) {
	dir := smallDayDir(t, zip.Store, false)
	dense := filepath.Join(dir, "day_0_dense.npy")
	for _, c := range []struct {
		path, format string
		want         bool
	}{
		{dir, "", true}, {dense, "", true}, {"/nowhere/day_12_dense.npy", "", true},
		{dense, "npz", false}, {"x.npz", "", false}, {"x.npz", "MLPerf", true},
		{filepath.Join(dir, "day_0_labels.npy"), "", false}, {"other_dense.npy", "", false},
	} {
		if got := IsMLPerf(c.path, c.format); got != c.want {
			t.Errorf("IsMLPerf(%q, %q) = %v, want %v", c.path, c.format, got, c.want)
		}
	}
	// Forced on a dense file of another name: the siblings follow its prefix.
	other := t.TempDir()
	for _, f := range []string{"day_0_dense.npy", "day_0_labels.npy", "day_0_sparse_multi_hot.npz"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(other, strings.Replace(f, "day_0", "test", 1)), b, 0o644)
	}
	if rows, _, err := readBags(t, mustOpen(t, filepath.Join(other, "test_dense.npy"), Options{Format: "mlperf"})); err != nil || len(rows) != 10 {
		t.Fatalf("forced mlperf: %d rows, %v", len(rows), err)
	}
	wantErr(t, mlOpenErr(t, filepath.Join(other, "test_labels.npy"), Options{Format: "mlperf"}), "test_labels.npy", "named day_N_dense.npy")
	// The labels file alone is an .npy, refused with a pointer to the layout.
	wantErr(t, mlOpenErr(t, filepath.Join(dir, "day_0_labels.npy"), Options{}), "single .npy array", "day_N_dense.npy")
	// Two days in one directory are one stream (TestMLPerfDays); each day
	// can still be read alone by its dense file.
	for _, f := range []string{"day_0_dense.npy", "day_0_labels.npy", "day_0_sparse_multi_hot.npz"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(dir, strings.Replace(f, "day_0", "day_1", 1)), b, 0o644)
	}
	if rows, _, err := readBags(t, mustOpen(t, dir, Options{})); err != nil || len(rows) != 20 {
		t.Fatalf("two days: %d rows, %v", len(rows), err)
	}
	if rows, _, err := readBags(t, mustOpen(t, filepath.Join(dir, "day_1_dense.npy"), Options{})); err != nil || len(rows) != 10 {
		t.Fatalf("day 1 by name: %d rows, %v", len(rows), err)
	}
	wantErr(t, mlOpenErr(t, t.TempDir(), Options{}), "no day_N_dense.npy in this directory")
	// A missing sibling is named.
	os.Remove(filepath.Join(dir, "day_1_labels.npy"))
	wantErr(t, mlOpenErr(t, filepath.Join(dir, "day_1_dense.npy"), Options{}), "day_1_labels.npy", "MLPerf dlrm-v2 layout")
}

// TestMLPerfFileErrors: wrong shapes, disagreeing row counts, truncated
// files and corrupt npz members are FormatErrors naming the file and array.
func TestMLPerfFileErrors(t *testing.T) {
	d := smallDay()
	model := Options{NumDense: 3, TableRows: smallDayTables}
	type mut func(dense, labels *testArray, sparse []testArray) []testArray
	for _, c := range []struct {
		name  string
		opts  Options
		mut   mut
		parts []string
	}{
		{"dense 1-D", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			dn.shape = []int64{30}
			return s
		}, []string{"day_0_dense.npy", "dense array of shape [30], want 2-D"}},
		{"labels 2 wide", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			l.shape = []int64{5, 2}
			return s
		}, []string{"day_0_labels.npy", "labels array of shape [5 2]"}},
		{"labels short", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			l.shape, l.vals = []int64{9, 1}, l.vals[:9]
			return s
		}, []string{"day_0_labels.npy", "9 rows but day_0_dense.npy has 10"}},
		{"sparse 1-D", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			s[0].shape = []int64{10}
			return s
		}, []string{"day_0_sparse_multi_hot.npz", "0: shape [10], want 2-D"}},
		{"sparse rows", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			s[2].shape, s[2].vals = []int64{5, 2}, s[2].vals[:10]
			return s
		}, []string{"day_0_sparse_multi_hot.npz", "2: 5 rows but day_0_dense.npy has 10"}},
		{"dense width", model, func(dn, l *testArray, s []testArray) []testArray {
			dn.shape, dn.vals = []int64{10, 2}, dn.vals[:20]
			return s
		}, []string{"day_0_dense.npy", "2 dense columns, the model has 3"}},
		{"missing table", model, func(dn, l *testArray, s []testArray) []testArray { return s[:2] },
			[]string{"day_0_sparse_multi_hot.npz", `no array "2"`, "3 embedding tables"}},
		{"extra table", Options{TableRows: smallDayTables[:2]}, func(dn, l *testArray, s []testArray) []testArray { return s },
			[]string{"day_0_sparse_multi_hot.npz", `sparse array "2"`, "only 2 embedding tables"}},
		{"truncated dense", Options{}, func(dn, l *testArray, s []testArray) []testArray { dn.cut = 5; return s },
			[]string{"day_0_dense.npy", "shape [10 3] of <f4 (120 bytes of data) but the file holds 115", "truncated"}},
		{"truncated sparse member", Options{}, func(dn, l *testArray, s []testArray) []testArray { s[1].cut = 4; return s },
			[]string{"day_0_sparse_multi_hot.npz", "1: header says shape [10 3]"}},
		{"complex labels", Options{}, func(dn, l *testArray, s []testArray) []testArray {
			l.header = "{'descr': '<c8', 'fortran_order': False, 'shape': (10, 1), }"
			return s
		},
			[]string{"day_0_labels.npy", "unsupported", "c8"}},
	} {
		dense, labels, sparse := d.arrays()
		sparse = c.mut(&dense, &labels, sparse)
		dir := writeDay(t, dense, labels, zip.Deflate, sparse...)
		err := mlOpenErr(t, dir, c.opts)
		wantErr(t, err, c.parts...)
		var fe *FormatError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Errorf("%s: %T, want a FormatError or UnsupportedError", c.name, err)
		}
	}

	// A member whose deflated data ends early while its zip header claims
	// all of it: found while streaming, naming the array and the rows.
	dense, labels, sparse := d.arrays()
	dir := writeDay(t, dense, labels, zip.Store, sparse...)
	lying := writeLyingNpz(t, sparse, "1", 200, false)
	os.Rename(lying, filepath.Join(dir, "day_0_sparse_multi_hot.npz"))
	wantErr(t, mlOpenErr(t, dir, Options{BatchSize: 4}), "day_0_sparse_multi_hot.npz", "1: data ends early in rows")
	// A wrong CRC, found when the member is read to its end.
	lying = writeLyingNpz(t, sparse, "2", len(npyBytes(sparse[2])), true)
	os.Rename(lying, filepath.Join(dir, "day_0_sparse_multi_hot.npz"))
	wantErr(t, mlOpenErr(t, dir, Options{}), "day_0_sparse_multi_hot.npz", "2: ", "CRC mismatch")
	// A stored member with a flipped data byte: the CRC check of stored
	// entries catches it too.
	dir = writeDay(t, dense, labels, zip.Store, sparse...)
	z := filepath.Join(dir, "day_0_sparse_multi_hot.npz")
	b, _ := os.ReadFile(z)
	i := bytes.Index(b, []byte("0.npy")) + len("0.npy") + 128 + 8
	b[i] ^= 1
	os.WriteFile(z, b, 0o644)
	wantErr(t, mlOpenErr(t, dir, Options{}), "day_0_sparse_multi_hot.npz", "0: ", "CRC mismatch")
}

// TestMLPerfRowErrors: an id beyond its table, a negative id, a bad label
// or a non-finite dense value is a RowError naming file, array, row and
// column; --bad-rows skip drops and counts those rows.
func TestMLPerfRowErrors(t *testing.T) {
	d := smallDay()
	inf := 1e39 // beyond float32: +Inf once stored as <f4
	for _, c := range []struct {
		name  string
		mut   func(d *mlDay)
		row   int64
		parts []string
	}{
		{"id beyond table", func(d *mlDay) { d.sparse[1][6][2] = 13 }, 6,
			[]string{"day_0_sparse_multi_hot.npz: row 6 (array \"1\" column 2)", "id 13 is beyond embedding table 1, which has 13 rows"}},
		{"negative id", func(d *mlDay) { d.sparse[0][3][0] = -1 }, 3,
			[]string{"day_0_sparse_multi_hot.npz: row 3 (array \"0\" column 0)", "negative"}},
		{"label", func(d *mlDay) { d.labels[8] = 2 }, 8, []string{"day_0_labels.npy: row 8", "label 2 is not 0 or 1"}},
		{"dense", func(d *mlDay) { d.dense[4][1] = inf }, 4, []string{"day_0_dense.npy: row 4 (column 1)", "not a finite float32"}},
	} {
		day := smallDay()
		c.mut(&day)
		dense, labels, sparse := day.arrays()
		dir := writeDay(t, dense, labels, zip.Deflate, sparse...)
		opts := Options{BatchSize: 4, TableRows: smallDayTables, DenseTransform: None}
		err := mlOpenErr(t, dir, opts)
		wantErr(t, err, c.parts...)
		var re *RowError
		if !errors.As(err, &re) || re.Row != c.row {
			t.Fatalf("%s: %#v, want a RowError for row %d", c.name, err, c.row)
		}
		opts.BadRows = Skip
		r := mustOpen(t, dir, opts)
		rows, _, err := readBags(t, r)
		if err != nil || len(rows) != 9 {
			t.Fatalf("%s: skip: %d rows, %v", c.name, len(rows), err)
		}
		for i, row := range rows {
			// Batch.Row numbers a batch's first row only, and skipping makes
			// a batch's rows non-contiguous: dense column 0 (row + 0.5) says
			// which row this is.
			src := int64(row.dense[0])
			if want := int64(i) + int64(min(1, max(0, i-int(c.row)+1))); src != want {
				t.Fatalf("%s: example %d is row %d, want %d (bad row %d dropped)", c.name, i, src, want, c.row)
			}
			if row.label != float32(d.labels[src]) || row.bags[1][0] != int64(d.sparse[1][src][0]) {
				t.Fatalf("%s: row %d out of step: label %v bag %v", c.name, src, row.label, row.bags[1])
			}
		}
		if st := r.Stats(); st.Skipped != 1 || !strings.Contains(st.FirstSkipped, c.parts[0]) {
			t.Fatalf("%s: stats %+v", c.name, st)
		}
	}
}

// TestMLPerfCancel: a done context stops the reader with its error.
func TestMLPerfCancel(t *testing.T) {
	dir := smallDayDir(t, zip.Deflate, false)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := OpenContext(ctx, dir, Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != errClosed {
		t.Fatalf("after Close: %v", err)
	}
}

// TestSharedMLPerf reads the test rows of the shared one-hot and multi-hot
// days: 1,286 rows, bags of the declared widths, every id within the
// model's tables (the file's own maxima + 1 stand in for them here), and
// the same rows whatever the batch size.
func TestSharedMLPerf(t *testing.T) {
	for _, c := range []struct {
		dir     string
		maxBag  int
		anyWide bool
	}{{"criteo-torchrec", 1, false}, {"criteo-torchrec/multi-hot", 3, true}} {
		dir := datasetSharedPath(t, c.dir)
		var ref []mlRow
		for _, batch := range []int{1, 97, 2048} {
			r := mustOpen(t, dir, Options{Rows: Range{15429, 16715}, BatchSize: batch, DenseTransform: None, NumDense: 13})
			rows, _, err := readBags(t, r)
			if err != nil {
				t.Fatalf("%s batch %d: %v", c.dir, batch, err)
			}
			if len(rows) != 1286 || rows[0].row != 15429 {
				t.Fatalf("%s batch %d: %d rows from %d", c.dir, batch, len(rows), rows[0].row)
			}
			wide := false
			for _, row := range rows {
				if len(row.bags) != 26 {
					t.Fatalf("%s: %d tables", c.dir, len(row.bags))
				}
				for _, bag := range row.bags {
					if len(bag) < 1 || len(bag) > c.maxBag {
						t.Fatalf("%s row %d: bag %v", c.dir, row.row, bag)
					}
					wide = wide || len(bag) > 1
				}
			}
			if wide != c.anyWide {
				t.Fatalf("%s: multi-hot bags %v, want %v", c.dir, wide, c.anyWide)
			}
			if ref == nil {
				ref = rows
			} else if !reflect.DeepEqual(rows, ref) {
				t.Fatalf("%s: batch %d reads other rows than batch 1", c.dir, batch)
			}
		}
	}
}

// FuzzMLPerf: hostile dense, labels and sparse members never panic, hang
// or hand out a batch that breaks the forward pass's invariants (ids
// within the tables, labels 0/1, offsets well formed).
func FuzzMLPerf(f *testing.F) {
	d := smallDay()
	dense, labels, sparse := d.arrays()
	f.Add(npyBytes(dense), npyBytes(labels), npyBytes(sparse[0]), npyBytes(sparse[1]), uint8(0))
	f.Add(npyBytes(dense), npyBytes(labels), npyBytes(sparse[0]), npyBytes(sparse[1]), uint8(0x1f))
	dense.fortran = true
	f.Add(npyBytes(dense), npyBytes(labels), npyBytes(sparse[2]), npyBytes(sparse[1]), uint8(0x0a))
	f.Fuzz(func(t *testing.T, dn, lb, s0, s1 []byte, mode uint8) {
		method := zip.Deflate
		if mode&16 != 0 {
			method = zip.Store
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, b := range [][]byte{s0, s1} {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%d.npy", i), Method: method})
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
			opts.TableRows = smallDayTables[:2]
			opts.NumDense = 3
		}
		if mode&4 != 0 {
			opts.Rows = Range{2, 9}
		}
		cfg, err := opts.resolve()
		if err != nil {
			t.Fatal(err)
		}
		src := func(name string, b []byte) mlperfSource {
			return mlperfSource{name: name, ra: bytes.NewReader(b), size: int64(len(b))}
		}
		r, err := newMLPerfReader(src("d.npy", dn), src("l.npy", lb), src("s.npz", buf.Bytes()), cfg)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
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
			checkBags(t, b)
			if b.N > opts.BatchSize {
				t.Fatalf("batch of %d", b.N)
			}
			for k, ix := range b.Indices {
				for _, v := range ix {
					if v < 0 || (opts.TableRows != nil && v >= opts.TableRows[k]) {
						t.Fatalf("id %d in table %d", v, k)
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
	})
}
