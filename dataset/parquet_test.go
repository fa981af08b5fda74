package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// pqRows writes rows (maps from column name to value) with schema as a
// Parquet file, rowsPerGroup rows per row group and tiny pages, so that
// reads cross pages and row groups.
func pqRows(t testing.TB, schema parquet.Group, rowsPerGroup int64, rows []map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, parquet.NewSchema("clicklog", schema), parquet.MaxRowsPerRowGroup(rowsPerGroup), parquet.PageBufferSize(64))
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writePq(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clicks.parquet")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// smallPqSchema: int label, integer and nullable float dense columns, a
// list column (bags of 0..2 ids) and a plain id column, in an order that
// is not the Criteo one (the reader matches names).
var smallPqSchema = parquet.Group{
	"C2":    parquet.Int(32),
	"label": parquet.Int(32),
	"I2":    parquet.Optional(parquet.Leaf(parquet.DoubleType)),
	"C1":    parquet.List(parquet.Int(64)),
	"I1":    parquet.Int(64),
}

// smallPqRow is row i of the small file; bag is its C1 bag.
func smallPqRow(i int) (map[string]any, []int64) {
	bag := []int64{int64(i % 7), int64((i + 3) % 7)}[:i%3]
	r := map[string]any{"label": int32(i % 2), "I1": int64(i), "I2": float64(i) / 4, "C1": bag, "C2": int32(i % 5)}
	if i%4 == 3 {
		r["I2"] = nil // a missing count reads as 0
	}
	return r, bag
}

func smallPq(t testing.TB, n int, perGroup int64) []byte {
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i], _ = smallPqRow(i)
	}
	return pqRows(t, smallPqSchema, perGroup, rows)
}

// pqExample is one example as a reader hands it out.
type pqExample struct {
	row   int64
	label float32
	dense []float32
	bags  [][]int64
}

// readPq drains r into examples, checking each batch's offsets (checkBags,
// from mlperf_test.go).
func readPq(t testing.TB, r Reader) ([]pqExample, error) {
	t.Helper()
	var out []pqExample
	for {
		b, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		checkBags(t, b)
		for i := range b.N {
			e := pqExample{row: b.Row + int64(i), label: b.Labels[i], dense: b.Dense[i*b.NumDense : (i+1)*b.NumDense]}
			for k := range b.Indices {
				e.bags = append(e.bags, b.Indices[k][b.Offsets[k][i]:b.Offsets[k][i+1]])
			}
			out = append(out, e)
		}
	}
}

// TestParquetSmall: every value of a file of 3-row groups and tiny pages
// arrives, by name, with log1p on the integer dense column, nulls as 0,
// bags of 0..2 ids; any --rows window and batch size gives the same rows.
func TestParquetSmall(t *testing.T) {
	const n = 23
	p := writePq(t, smallPq(t, n, 3))
	opts := Options{BatchSize: 4, NumDense: 2, TableRows: []int64{7, 5}}
	all, err := readPq(t, mustOpen(t, p, opts))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d rows, want %d", len(all), n)
	}
	for i, e := range all {
		_, bag := smallPqRow(i)
		want2 := float32(0)
		if i%4 != 3 {
			want2 = denseValue(float32(float64(i)/4), Log1p)
		}
		if e.row != int64(i) || e.label != float32(i%2) || e.dense[0] != logPlus1(float32(i)) || e.dense[1] != want2 ||
			!slices.Equal(e.bags[0], bag) || !slices.Equal(e.bags[1], []int64{int64(i % 5)}) {
			t.Fatalf("row %d: %+v, want bag %v", i, e, bag)
		}
	}
	for _, rows := range []Range{{5, 11}, {0, 1}, {22, 23}, {3, 6}, {7, -1}} {
		for _, batch := range []int{1, 2, 5, 100} {
			o := opts
			o.Rows, o.BatchSize = rows, batch
			got, err := readPq(t, mustOpen(t, p, o))
			if err != nil {
				t.Fatal(err)
			}
			end := rows.End
			if end < 0 {
				end = n
			}
			want := all[rows.Start:end]
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("rows %v batch %d: %v, want %v", rows, batch, got, want)
			}
		}
	}
	// Shards deal whole batches; together they are the file.
	var merged []pqExample
	for i := range 3 {
		o := opts
		o.Shard = Shard{Index: i, Count: 3}
		got, err := readPq(t, mustOpen(t, p, o))
		if err != nil {
			t.Fatal(err)
		}
		merged = append(merged, got...)
	}
	slices.SortFunc(merged, func(a, b pqExample) int { return int(a.row - b.row) })
	if fmt.Sprint(merged) != fmt.Sprint(all) {
		t.Fatalf("shards merged differ from the whole file")
	}
	// Without a model the columns present are taken: I1, I2 and C1, C2.
	r := mustOpen(t, p, Options{})
	if got, err := readPq(t, r); err != nil || len(got) != n || len(got[0].dense) != 2 || len(got[0].bags) != 2 {
		t.Fatalf("without a model: %d rows, err %v", len(got), err)
	}
	if rr, ok := r.(RowsReader); !ok || rr.TotalRows() != n {
		t.Fatalf("TotalRows not %d", n)
	}
	// The sniffing: by magic with no extension, by --data-format.
	noExt := filepath.Join(t.TempDir(), "clicks")
	data, _ := os.ReadFile(p)
	os.WriteFile(noExt, data, 0o644)
	if !IsParquet(noExt, "") || IsParquet(noExt, "tsv") || !IsParquet(noExt, "parquet") {
		t.Fatal("IsParquet")
	}
	if got, err := readPq(t, mustOpen(t, noExt, opts)); err != nil || len(got) != n {
		t.Fatalf("sniffed by magic: %d rows, %v", len(got), err)
	}
	if ParquetDenseIsFloat(p, "", Columns{}) {
		t.Fatal("I1 is int64: dense columns are not all float")
	}
}

// TestParquetDenseFloat: all-float dense columns make the default transform
// none (ParquetDenseIsFloat) and are handed over as they are.
func TestParquetDenseFloat(t *testing.T) {
	p := writePq(t, pqRows(t, parquet.Group{"label": parquet.Leaf(parquet.BooleanType), "I1": parquet.Leaf(parquet.FloatType), "C1": parquet.Int(64)}, 10,
		[]map[string]any{{"label": true, "I1": float32(2.5), "C1": int64(1)}, {"label": false, "I1": float32(-1), "C1": int64(0)}}))
	if !ParquetDenseIsFloat(p, "", Columns{}) || ParquetDenseIsFloat(p, "tsv", Columns{}) {
		t.Fatal("ParquetDenseIsFloat")
	}
	got, err := readPq(t, mustOpen(t, p, Options{DenseTransform: None, NumDense: 1, TableRows: []int64{2}}))
	if err != nil || len(got) != 2 || got[0].dense[0] != 2.5 || got[1].dense[0] != -1 || got[0].label != 1 || got[1].label != 0 {
		t.Fatalf("%v %v", got, err)
	}
}

// TestParquetErrors: malformed files and bad values name the file, the row
// group, the row and the column; --bad-rows skip counts bad values.
func TestParquetErrors(t *testing.T) {
	good := smallPq(t, 12, 4)
	opts := Options{BatchSize: 5, NumDense: 2, TableRows: []int64{7, 5}}
	open := func(data []byte, o Options) error {
		t.Helper()
		p := writePq(t, data)
		r, err := Open(p, o)
		if err == nil {
			_, err = readPq(t, r)
			r.Close()
		}
		if err != nil && !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "row range") {
			t.Errorf("error %q does not name the file", err)
		}
		return err
	}
	// An id beyond its table: C1's ids go to 5 (rows 2 and 5), a table
	// of 5 rows.
	small := opts
	small.TableRows = []int64{5, 5}
	err := open(good, small)
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("%v: not a RowError", err)
	}
	wantErr(t, err, "row 2 (row group 0, column \"C1\")", "id 5 is beyond embedding table 0, which has 5 rows")
	// Skipped, the bad rows are counted and the rest read.
	small.BadRows = Skip
	r := mustOpen(t, writePq(t, good), small)
	got, err := readPq(t, r)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Skipped != 2 || len(got) != 10 || st.Rows != 10 || !strings.Contains(st.FirstSkipped, "row 2") {
		t.Fatalf("skip: %d rows, stats %+v", len(got), st)
	}
	// Batch.Row numbers only a batch's first example, so the source row
	// is told by I1, which is the row number.
	var kept []int
	for _, e := range got {
		i := int(math.Round(math.Expm1(float64(e.dense[0]))))
		kept = append(kept, i)
		if _, bag := smallPqRow(i); !slices.Equal(e.bags[0], bag) || e.label != float32(i%2) {
			t.Fatalf("row %d: %+v, want bag %v (a skipped row's ids leaked?)", i, e, bag)
		}
	}
	if want := []int{0, 1, 3, 4, 6, 7, 8, 9, 10, 11}; !slices.Equal(kept, want) {
		t.Fatalf("skip kept rows %v, want %v", kept, want)
	}

	// Missing columns, by name; an extra table column.
	wantErr(t, open(good, Options{NumDense: 3, TableRows: []int64{7, 5}}), `no column "I3" (dense feature)`)
	wantErr(t, open(good, Options{NumDense: 2, TableRows: []int64{7, 5, 3}}), `no column "C3" (ids)`)
	wantErr(t, open(good, Options{NumDense: 2, TableRows: []int64{7}}), "a sparse column C2 but the model has only 1 embedding tables")
	noLabel := pqRows(t, parquet.Group{"I1": parquet.Int(64), "C1": parquet.Int(64)}, 4, []map[string]any{{"I1": int64(1), "C1": int64(1)}})
	wantErr(t, open(noLabel, Options{NumDense: 1, TableRows: []int64{2}}), `no column "label"`)

	// Wrong column types.
	strIDs := pqRows(t, parquet.Group{"label": parquet.Int(32), "I1": parquet.Int(64), "C1": parquet.String()}, 4,
		[]map[string]any{{"label": int32(1), "I1": int64(1), "C1": "a9"}})
	wantErr(t, open(strIDs, Options{NumDense: 1, TableRows: []int64{2}}), `column "C1": type`, "want INT32 or INT64 (ids)")
	listLabel := pqRows(t, parquet.Group{"label": parquet.List(parquet.Int(32)), "I1": parquet.Int(64), "C1": parquet.Int(64)}, 4,
		[]map[string]any{{"label": []int32{1}, "I1": int64(1), "C1": int64(1)}})
	wantErr(t, open(listLabel, Options{NumDense: 1, TableRows: []int64{2}}), `column "label": a list`)

	// Bad values: a label of 2, a negative id, a NaN.
	badVals := pqRows(t, parquet.Group{"label": parquet.Int(32), "I1": parquet.Leaf(parquet.FloatType), "C1": parquet.Int(64)}, 4,
		[]map[string]any{{"label": int32(2), "I1": float32(1), "C1": int64(1)}})
	wantErr(t, open(badVals, Options{NumDense: 1, TableRows: []int64{2}}), "row 0 (row group 0, column \"label\"): label 2 is not 0 or 1")
	negID := pqRows(t, parquet.Group{"label": parquet.Int(32), "I1": parquet.Leaf(parquet.FloatType), "C1": parquet.Int(64)}, 4,
		[]map[string]any{{"label": int32(0), "I1": float32(1), "C1": int64(1)}, {"label": int32(0), "I1": float32(1), "C1": int64(-3)}})
	wantErr(t, open(negID, Options{NumDense: 1, TableRows: []int64{2}}), "row 1 (row group 0, column \"C1\"): id -3 is negative")
	nan := pqRows(t, parquet.Group{"label": parquet.Int(32), "I1": parquet.Leaf(parquet.FloatType), "C1": parquet.Int(64)}, 4,
		[]map[string]any{{"label": int32(0), "I1": float32(math.NaN()), "C1": int64(1)}})
	wantErr(t, open(nan, Options{NumDense: 1, TableRows: []int64{2}}), `column "I1"`, "not a finite float32")

	// Truncated files, at every length (footer gone, data cut): an
	// error, never a panic, never rows that are not in the file.
	for cut := 0; cut < len(good); cut += max(1, len(good)/97) {
		if err := open(good[:cut], opts); err == nil {
			t.Fatalf("cut to %d of %d bytes: no error", cut, len(good))
		}
	}
	wantErr(t, open(good[:len(good)-1], opts), "Parquet")
	// Rows beyond the end.
	o := opts
	o.Rows = Range{10, 13}
	wantErr(t, open(good, o), "goes beyond the end of the data, which has 12 rows")
}

// TestParquetCancel: a cancelled context stops Next.
func TestParquetCancel(t *testing.T) {
	p := writePq(t, smallPq(t, 40, 8))
	ctx, cancel := context.WithCancel(context.Background())
	rd, err := OpenContext(ctx, p, Options{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rd.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v, want context.Canceled", err)
	}
}

// TestParquetSharedMatchesMLPerf: the shared clicks.parquet holds the rows
// of the MLPerf-layout day beside it: the test rows read the same from
// both, value for value.
func TestParquetSharedMatchesMLPerf(t *testing.T) {
	dir := datasetSharedPath(t, "criteo-torchrec")
	tables := make([]int64, 26)
	for i := range tables {
		tables[i] = math.MaxInt32
	}
	o := Options{Rows: Range{15429, 16715}, BatchSize: 300, DenseTransform: None, NumDense: 13, TableRows: tables}
	pq, err := readPq(t, mustOpen(t, filepath.Join(dir, "clicks.parquet"), o))
	if err != nil {
		t.Fatal(err)
	}
	ml, err := readPq(t, mustOpen(t, dir, o))
	if err != nil {
		t.Fatal(err)
	}
	if len(pq) != 1286 || fmt.Sprint(pq) != fmt.Sprint(ml) {
		t.Fatalf("%d Parquet rows differ from the MLPerf day's %d", len(pq), len(ml))
	}
	if !ParquetDenseIsFloat(filepath.Join(dir, "clicks.parquet"), "", Columns{}) {
		t.Fatal("the shared file's dense columns are float")
	}
}

// pqSeeds are small valid files: int and float columns, lists of int64
// and int32 ids, several row groups, and the Parquet files of testdata
// (compressed with each codec: gen_parquet.go).
func pqSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{smallPq(t, 9, 4), smallPq(t, 2, 1),
		pqRows(t, parquet.Group{"label": parquet.Leaf(parquet.BooleanType), "I1": parquet.Leaf(parquet.FloatType), "C1": parquet.Int(64), "C2": parquet.List(parquet.Int(32))}, 2,
			[]map[string]any{{"label": true, "I1": float32(2.5), "C1": int64(1), "C2": []int32{1, 0}}, {"label": false, "I1": float32(-1), "C1": int64(0), "C2": []int32{}}})}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.parquet"))
	if len(files) < 3 {
		t.Fatalf("testdata holds %d Parquet files (gen_parquet.go writes them)", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// checkPqError: an error from reading fuzz.parquet is typed (a
// FormatError, UnsupportedError, LimitError or RowError; or the row range
// beyond the end) and names the file.
func checkPqError(t *testing.T, err error) {
	var fe *FormatError
	var ue *UnsupportedError
	var le *LimitError
	var re *RowError
	typed := errors.As(err, &fe) || errors.As(err, &ue) || errors.As(err, &le) || errors.As(err, &re) || strings.Contains(err.Error(), "goes beyond the end of the data")
	if !typed || !strings.Contains(err.Error(), "fuzz.parquet") {
		t.Fatalf("%T %q: not a typed error naming the file", err, err)
	}
}

// checkPqBytes reads data as Parquet in three ways: it must give rows or
// a typed error naming the file (checkPqError) within 5 seconds and 256
// MiB of allocations, never a panic, an id beyond its table or a label
// other than 0 or 1.
func checkPqBytes(t *testing.T, data []byte, batch int) {
	wd := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("a %d-byte input takes over 5s", len(data))) })
	defer wd.Stop()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	defer func() {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
			t.Fatalf("a %d-byte input allocated %d MiB", len(data), d>>20)
		}
	}()
	// Format "parquet": the bytes go to the Parquet reader whatever they
	// start with (sniffing sends a gzip magic to the TSV reader).
	for _, o := range []Options{
		{BatchSize: batch&7 + 1, NumDense: 2, TableRows: []int64{7, 5}, Format: "parquet"},
		{BatchSize: batch&7 + 1, BadRows: Skip, NumDense: 1, TableRows: []int64{3, 2}, Format: "parquet"},
		{BatchSize: 3, Rows: Range{1, 3}, Format: "parquet"},
	} {
		r, err := openFrom("fuzz.parquet", bytes.NewReader(data), int64(len(data)), nil, o)
		if err != nil {
			checkPqError(t, err)
			continue
		}
		total := 0
		for range 1000 {
			b, err := r.Next()
			if err != nil {
				if err != io.EOF {
					checkPqError(t, err)
				}
				break
			}
			checkBags(t, b)
			for k, ix := range b.Indices {
				for _, v := range ix {
					if v < 0 || (o.TableRows != nil && v >= o.TableRows[k]) {
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
		r.Close()
	}
}

// FuzzParquet: any bytes give rows or a typed error naming the file, in
// bounded time and memory (checkPqBytes). The shared multi-hot
// clicks.parquet (jagged bags, real footer) is a seed when it is there;
// the corpus does not need it.
func FuzzParquet(f *testing.F) {
	for i, s := range pqSeeds(f) {
		f.Add(s, i)
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "shared", "criteo-torchrec", "multi-hot", "clicks.parquet")); err == nil {
		f.Add(b, 7)
	}
	f.Fuzz(checkPqBytes)
}

// TestParquetMutations runs checkPqBytes on 3,000 fixed mutations of the
// seeds (bytes set, bits flipped, 8-byte counts planted, bytes inserted
// and cut), which reach the footer's Thrift, page headers, levels and
// encodings on every run, not only when fuzzing.
func TestParquetMutations(t *testing.T) {
	seeds := pqSeeds(t)
	rng := rand.New(rand.NewPCG(13, 3))
	for it := range 3000 {
		d := slices.Clone(seeds[it%len(seeds)])
		for range 1 + rng.IntN(4) {
			i := rng.IntN(len(d) - 8)
			switch rng.IntN(5) {
			case 0:
				d[i] = byte(rng.IntN(256))
			case 1:
				d[i] ^= 1 << rng.IntN(8)
			case 2:
				v := []uint64{0, 1 << 31, 1<<63 - 1, 1 << 40, 0xffffffff}[rng.IntN(5)]
				for k := range 8 {
					d[i+k] = byte(v >> (8 * k))
				}
			case 3:
				d = slices.Insert(d, i, make([]byte, 1+rng.IntN(8))...)
			case 4:
				d = slices.Delete(d, i, i+1+rng.IntN(8))
			}
		}
		checkPqBytes(t, d, it)
	}
}
