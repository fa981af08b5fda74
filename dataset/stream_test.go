package dataset

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/rqtools/rq/model"
)

// renamedPq writes the rows of smallPq under other names (so in another
// column order: parquet-go orders a Group's columns by name), with two
// Criteo-named columns that are not named by Columns and must be ignored.
func renamedPq(t testing.TB, n int, perGroup int64) []byte {
	schema := parquet.Group{
		"click":   parquet.Int(32),
		"zz_cnt":  parquet.Int(64),
		"a_ratio": parquet.Optional(parquet.Leaf(parquet.DoubleType)),
		"m_bag":   parquet.List(parquet.Int(64)),
		"b_cat":   parquet.Int(32),
		"I1":      parquet.Int(64), // ignored: not among the names given
		"C9":      parquet.String(),
	}
	rows := make([]map[string]any, n)
	for i := range rows {
		r, _ := smallPqRow(i)
		rows[i] = map[string]any{"click": r["label"], "zz_cnt": r["I1"], "a_ratio": r["I2"], "m_bag": r["C1"], "b_cat": r["C2"],
			"I1": int64(-1000 - i), "C9": "x"}
	}
	return pqRows(t, schema, perGroup, rows)
}

var renamedCols = Columns{Label: "click", Dense: []string{"zz_cnt", "a_ratio"}, Sparse: []string{"m_bag", "b_cat"}}

// TestParquetColumns: a file whose columns have other names, in another
// order, read with Columns gives the batches of the Criteo-named file; a
// named column missing names the file, the column and its flag; counts
// that are not the model's, repeated names, and names for formats that
// have none are refused.
func TestParquetColumns(t *testing.T) {
	const n = 17
	criteo := writePq(t, smallPq(t, n, 4))
	renamed := writePq(t, renamedPq(t, n, 3))
	for _, batch := range []int{1, 5, 100} {
		for _, rows := range []Range{{}, {3, 11}} {
			o := Options{BatchSize: batch, Rows: rows, NumDense: 2, TableRows: []int64{7, 5}}
			want, err := readPq(t, mustOpen(t, criteo, o))
			if err != nil {
				t.Fatal(err)
			}
			o.Columns = renamedCols
			got, err := readPq(t, mustOpen(t, renamed, o))
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("batch %d rows %v: renamed columns give %v, Criteo names %v", batch, rows, got, want)
			}
		}
	}
	// Only the label renamed: the Criteo names for the rest. The default
	// names do not fit the renamed file, so this is an error naming I2.
	o := Options{NumDense: 2, TableRows: []int64{7, 5}, Columns: Columns{Label: "click"}}
	wantErr(t, openErr(t, renamed, o), renamed, `no column "I2" (dense feature)`)
	// Without a model the named columns set the counts.
	if got, err := readPq(t, mustOpen(t, renamed, Options{Columns: renamedCols})); err != nil || len(got) != n || len(got[0].dense) != 2 || len(got[0].bags) != 2 {
		t.Fatalf("without a model: %d rows, %v", len(got), err)
	}
	// The dense transform default looks at the named columns: a_ratio is
	// a double but zz_cnt an integer; a_ratio alone is float.
	if ParquetDenseIsFloat(renamed, "", renamedCols) || !ParquetDenseIsFloat(renamed, "", Columns{Dense: []string{"a_ratio"}}) {
		t.Fatal("ParquetDenseIsFloat does not follow the named dense columns")
	}

	for _, c := range []struct {
		cols Columns
		want []string
	}{
		{Columns{Label: "clicked", Dense: renamedCols.Dense, Sparse: renamedCols.Sparse}, []string{renamed, `no column "clicked" (label, named by --label-col)`}},
		{Columns{Label: "click", Dense: []string{"zz_cnt", "nope"}, Sparse: renamedCols.Sparse}, []string{renamed, `no column "nope" (dense feature, named by --dense-cols)`}},
		{Columns{Label: "click", Dense: renamedCols.Dense, Sparse: []string{"m_bag", "b_catt"}}, []string{renamed, `no column "b_catt" (ids, named by --sparse-cols)`}},
		{Columns{Label: "click", Dense: renamedCols.Dense, Sparse: []string{"m_bag", "C9"}}, []string{renamed, `column "C9": type`, "want INT32 or INT64 (ids)"}},
		{Columns{Dense: []string{"zz_cnt"}}, []string{"1 dense columns named, but the model has 2 dense features"}},
		{Columns{Sparse: []string{"m_bag", "b_cat", "zz_cnt"}}, []string{"3 sparse columns named, but the model has 2 embedding tables"}},
		{Columns{Label: "click", Dense: []string{"zz_cnt", "click"}}, []string{`column "click" is named twice (as label and as dense)`}},
		{Columns{Sparse: []string{"m_bag", ""}}, []string{"an empty column name among the sparse columns"}},
	} {
		wantErr(t, openErr(t, renamed, Options{NumDense: 2, TableRows: []int64{7, 5}, Columns: c.cols}), c.want...)
	}

	// Formats without column names refuse them.
	tsv := filepath.Join("testdata", "small.tsv")
	wantErr(t, openErr(t, tsv, Options{Columns: Columns{Label: "y"}}), "small.tsv", "apply to Parquet only", "read as tsv")
	wantErr(t, openErr(t, filepath.Join("testdata", "small_c.npz"), Options{Columns: Columns{Dense: []string{"a"}}}), "apply to Parquet only", "read as npz")
	wantErr(t, openErr(t, smallDayDir(t, zip.Store, false), Options{Columns: Columns{Sparse: []string{"a"}}}), "apply to Parquet only", "MLPerf")
}

// writeParts writes the rows of smallPq split at the given row numbers
// into part files of dir, with the files Spark writes beside them.
func writeParts(t testing.TB, dir string, n int, cuts ...int) []string {
	t.Helper()
	var names []string
	bounds := append(append([]int{0}, cuts...), n)
	for i := range len(bounds) - 1 {
		rows := make([]map[string]any, 0)
		for r := bounds[i]; r < bounds[i+1]; r++ {
			row, _ := smallPqRow(r)
			rows = append(rows, row)
		}
		name := filepath.Join(dir, fmt.Sprintf("part-%05d-3f2a.snappy.parquet", i))
		if err := os.WriteFile(name, pqRows(t, smallPqSchema, 3, rows), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	// Spark's marker, checksums and metadata files are not parts.
	for _, f := range []string{"_SUCCESS", ".part-00000-3f2a.snappy.parquet.crc", "_metadata", "_common_metadata.parquet", ".hidden.parquet"} {
		os.WriteFile(filepath.Join(dir, f), []byte("not parquet"), 0o644)
	}
	return names
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestParquetDir: a directory of parts reads as the one file holding their
// rows, in the order of the part names, for any --rows, batch size and
// shard; batches run on across parts; one part is open at a time.
func TestParquetDir(t *testing.T) {
	const n = 23
	whole := writePq(t, smallPq(t, n, 3))
	dir := t.TempDir()
	// An empty part (0 rows) in the middle; parts of 1 row.
	parts := writeParts(t, dir, n, 7, 7, 8, 16)
	if got, err := ParquetParts(dir); err != nil || !slices.Equal(got, parts) {
		t.Fatalf("ParquetParts = %v, %v; want %v", got, err, parts)
	}
	if !IsParquetDir(dir, "") || !IsParquet(dir, "") || IsMLPerf(dir, "") || IsParquetDir(dir, "mlperf") {
		t.Fatal("a directory of parts is not sniffed as Parquet")
	}
	if ParquetDenseIsFloat(dir, "", Columns{}) {
		t.Fatal("I1 is int64 in the parts: not all float")
	}
	base := Options{NumDense: 2, TableRows: []int64{7, 5}}
	for _, batch := range []int{1, 4, 5, 100} {
		for _, rows := range []Range{{}, {5, 11}, {7, 9}, {0, 1}, {22, 23}, {8, -1}} {
			o := base
			o.BatchSize, o.Rows = batch, rows
			want, err := readPq(t, mustOpen(t, whole, o))
			if err != nil {
				t.Fatal(err)
			}
			r := mustOpen(t, dir, o)
			var sizes []int
			var got []pqExample
			for {
				e, err := readPq(t, &oneBatch{r: r})
				if err != nil {
					t.Fatal(err)
				}
				if len(e) == 0 {
					break
				}
				sizes = append(sizes, len(e))
				got = append(got, e...)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("batch %d rows %v: the directory gives %v, the one file %v", batch, rows, got, want)
			}
			for i, s := range sizes[:max(0, len(sizes)-1)] {
				if s != batch {
					t.Fatalf("batch %d rows %v: batch %d of %d examples is short, not the last (%v)", batch, rows, i, s, sizes)
				}
			}
			if rr := r.(RowsReader); rr.TotalRows() != n {
				t.Fatalf("TotalRows %d, want %d", rr.TotalRows(), n)
			}
		}
	}
	// Shards of the directory are the shards of the file.
	for i := range 3 {
		o := base
		o.BatchSize, o.Shard = 4, Shard{Index: i, Count: 3}
		want, _ := readPq(t, mustOpen(t, whole, o))
		got, err := readPq(t, mustOpen(t, dir, o))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("shard %d/3: %v (%v), want %v", i, got, err, want)
		}
	}
	// Bounded: at most one part open while reading (the directory's fds
	// before and during).
	if runtime.GOOS == "linux" {
		before := openFDs(t)
		o := base
		o.BatchSize = 1
		r := mustOpen(t, dir, o)
		for range n {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if now := openFDs(t); now > before+1 {
				t.Fatalf("%d files open while reading, %d before", now, before)
			}
		}
		r.Close()
	}
}

// oneBatch hands out one batch of r and then io.EOF.
type oneBatch struct {
	r    Reader
	done bool
}

func (o *oneBatch) Next() (b *model.Batch, err error) {
	if o.done {
		return nil, io.EOF
	}
	o.done = true
	return o.r.Next()
}
func (o *oneBatch) Stats() Stats { return o.r.Stats() }
func (o *oneBatch) Close() error { return nil }

// TestParquetDirErrors: a bad row names its part, its row group and row
// in the part and its row in the stream; --bad-rows skip counts over the
// parts; parts whose columns differ name both files; an empty directory
// read as Parquet says there are no parts.
func TestParquetDirErrors(t *testing.T) {
	const n = 12
	dir := t.TempDir()
	parts := writeParts(t, dir, n, 4, 8)
	// C1's ids reach 5 (rows 2 and 5): beyond a table of 5 rows.
	o := Options{BatchSize: 5, NumDense: 2, TableRows: []int64{5, 5}}
	err := openErr(t, dir, o)
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("%v: not a RowError", err)
	}
	wantErr(t, err, parts[0], `row 2 (row group 0, column "C1"; row 2 of `+dir+`)`, "id 5 is beyond embedding table 0")
	o.Rows = Range{4, n}
	wantErr(t, openErr(t, dir, o), parts[1], `row 1 (row group 0, column "C1"; row 5 of `+dir+`)`)
	o.Rows, o.BadRows = Range{}, Skip
	r := mustOpen(t, dir, o)
	got, err := readPq(t, r)
	if st := r.Stats(); err != nil || len(got) != n-2 || st.Skipped != 2 || st.Rows != n-2 || !strings.Contains(st.FirstSkipped, parts[0]) {
		t.Fatalf("skip: %d rows, %v, stats %+v", len(got), err, r.Stats())
	}
	// A skipped row of a later part says where it is in the directory too.
	o.Rows = Range{4, n}
	r = mustOpen(t, dir, o)
	if _, err := readPq(t, r); err != nil || !strings.Contains(r.Stats().FirstSkipped, parts[1]) || !strings.Contains(r.Stats().FirstSkipped, "row 5 of "+dir) {
		t.Fatalf("skip from row 4: %v, first skipped %q", err, r.Stats().FirstSkipped)
	}
	o.Rows = Range{}
	o.BadRows = Fail
	o.Rows = Range{10, 13}
	wantErr(t, openErr(t, dir, o), dir, "goes beyond the end of the data, which has 12 rows")

	// A part whose C2 is int64, not int32: both files named.
	odd := pqRows(t, parquet.Group{"label": parquet.Int(32), "I1": parquet.Int(64), "I2": parquet.Optional(parquet.Leaf(parquet.DoubleType)),
		"C1": parquet.List(parquet.Int(64)), "C2": parquet.Int(64)}, 3, []map[string]any{{"label": int32(0), "I1": int64(1), "I2": 0.5, "C1": []int64{1}, "C2": int64(1)}})
	os.WriteFile(filepath.Join(dir, "part-00001-3f2a.snappy.parquet"), odd, 0o644)
	wantErr(t, openErr(t, dir, Options{NumDense: 2, TableRows: []int64{7, 5}}), parts[1], filepath.Base(parts[0]), `column "C2" INT64 here, "C2" INT32`, "one schema")
	// A damaged part is named.
	os.WriteFile(filepath.Join(dir, "part-00001-3f2a.snappy.parquet"), odd[:len(odd)/2], 0o644)
	wantErr(t, openErr(t, dir, Options{NumDense: 2, TableRows: []int64{7, 5}}), parts[1], "Parquet")

	// Read as Parquet, a directory without parts says so.
	empty := t.TempDir()
	wantErr(t, openErr(t, empty, Options{Format: "parquet"}), empty, "no *.parquet files")
	if IsParquetDir(empty, "") || !IsMLPerf(empty, "") {
		t.Fatal("an empty directory is still the MLPerf layout's error")
	}
	// A directory holding an MLPerf day and a Parquet file (as the shared
	// criteo-torchrec does) is the MLPerf day.
	day := smallDayDir(t, zip.Store, false)
	os.WriteFile(filepath.Join(day, "clicks.parquet"), smallPq(t, 3, 3), 0o644)
	if IsParquetDir(day, "") || !IsMLPerf(day, "") || !IsParquetDir(day, "parquet") {
		t.Fatal("a directory with an MLPerf day is MLPerf unless told")
	}
}

// writeDayAt writes day d of a small layout into dir: smallDay's rows,
// with d added to every dense value and ids shifted by d (so each day's
// rows differ), rows rows of them.
func writeDayAt(t testing.TB, dir string, d, rows int) mlDay {
	t.Helper()
	day := smallDay()
	day.dense, day.labels = day.dense[:rows], day.labels[:rows]
	for i := range day.dense {
		for j := range day.dense[i] {
			day.dense[i][j] += float64(d)
		}
	}
	for k := range day.sparse {
		day.sparse[k] = day.sparse[k][:rows]
		for i := range day.sparse[k] {
			for j := range day.sparse[k][i] {
				day.sparse[k][i][j] = float64((int64(day.sparse[k][i][j]) + int64(d)) % smallDayTables[k])
			}
		}
	}
	dense, labels, sparse := day.arrays()
	src := writeDay(t, dense, labels, zip.Store, sparse...)
	for _, f := range []string{"day_0_dense.npy", "day_0_labels.npy", "day_0_sparse_multi_hot.npz"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, strings.Replace(f, "day_0", fmt.Sprintf("day_%d", d), 1)), b, 0o644)
	}
	return day
}

// TestMLPerfDays: a directory of several days reads them in the order of
// their numbers (day_10 after day_2) as one stream: the rows of each day
// read alone, one after the other, for any --rows, batch and shard; a bad
// row names its day's file and its row in the day and in the stream;
// days of different shapes are refused naming both.
func TestMLPerfDays(t *testing.T) {
	dir := t.TempDir()
	lens := map[int]int{0: 10, 1: 3, 2: 7, 10: 5}
	for d, n := range lens {
		writeDayAt(t, dir, d, n)
	}
	days, err := MLPerfDays(dir)
	if err != nil || len(days) != 4 || filepath.Base(days[3].Dense) != "day_10_dense.npy" || filepath.Base(days[2].Sparse) != "day_2_sparse_multi_hot.npz" {
		t.Fatalf("MLPerfDays = %+v, %v", days, err)
	}
	model := Options{NumDense: 3, TableRows: smallDayTables, DenseTransform: None}
	var all []mlRow
	for _, d := range days {
		rows, _, err := readBags(t, mustOpen(t, d.Dense, model))
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			rows[i].row = int64(len(all))
			all = append(all, rows[i])
		}
	}
	if len(all) != 25 || all[10].dense[0] != 1.5 || all[13].dense[0] != 2.5 || all[20].dense[0] != 10.5 {
		t.Fatalf("days in the wrong order: %d rows, dense %v %v %v", len(all), all[10].dense, all[13].dense, all[20].dense)
	}
	for _, batch := range []int{1, 4, 7, 100} {
		for _, rows := range []Range{{}, {9, 14}, {10, 13}, {24, 25}, {3, -1}} {
			o := model
			o.BatchSize, o.Rows = batch, rows
			got, sizes, err := readBags(t, mustOpen(t, dir, o))
			if err != nil {
				t.Fatal(err)
			}
			end := rows.End
			if end <= 0 {
				end = 25
			}
			if fmt.Sprint(got) != fmt.Sprint(all[rows.Start:end]) {
				t.Fatalf("batch %d rows %v: %v, want %v", batch, rows, got, all[rows.Start:end])
			}
			for _, s := range sizes[:len(sizes)-1] {
				if s != batch {
					t.Fatalf("batch %d rows %v: a short batch before the last: %v", batch, rows, sizes)
				}
			}
		}
	}
	var merged []mlRow
	for i := range 2 {
		o := model
		o.BatchSize, o.Shard = 6, Shard{Index: i, Count: 2}
		got, _, err := readBags(t, mustOpen(t, dir, o))
		if err != nil {
			t.Fatal(err)
		}
		merged = append(merged, got...)
	}
	slices.SortFunc(merged, func(a, b mlRow) int { return int(a.row - b.row) })
	if fmt.Sprint(merged) != fmt.Sprint(all) {
		t.Fatal("the shards of the days are not the days")
	}

	// An id beyond its table in day 10's row 2: stream row 22.
	small := model
	small.TableRows = []int64{11, 13, 1}
	small.Rows = Range{Start: 20, End: -1}
	err = mlOpenErr(t, dir, small)
	wantErr(t, err, "day_10_sparse_multi_hot.npz: row ", "of "+dir+")", "beyond embedding table 2")
	var re *RowError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), fmt.Sprintf("row %d of %s", re.Row+20, dir)) {
		t.Fatalf("%v: the stream row is not the day's row + 20", err)
	}
	// A day with 2 dense columns among days of 3.
	d := smallDay()
	for i := range d.dense {
		d.dense[i] = d.dense[i][:2]
	}
	dense, labels, sparse := d.arrays()
	odd := writeDay(t, dense, labels, zip.Store, sparse...)
	for _, f := range []string{"day_0_dense.npy", "day_0_labels.npy", "day_0_sparse_multi_hot.npz"} {
		b, _ := os.ReadFile(filepath.Join(odd, f))
		os.WriteFile(filepath.Join(dir, strings.Replace(f, "day_0", "day_3", 1)), b, 0o644)
	}
	wantErr(t, mlOpenErr(t, dir, Options{}), "day_3_dense.npy", "2 dense columns and 3 sparse arrays here, 3 dense columns and 3 sparse arrays in day_0_dense.npy")
	// A day missing its labels is named.
	os.Remove(filepath.Join(dir, "day_3_labels.npy"))
	wantErr(t, mlOpenErr(t, dir, Options{}), "day_3_labels.npy")
}
