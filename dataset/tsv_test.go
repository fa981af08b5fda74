package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func tables(n int, rows int64) []int64 {
	t := make([]int64, n)
	for i := range t {
		t[i] = rows
	}
	return t
}

// The rows of testdata/small.tsv, parsed by hand.
func TestTSVSmall(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(readFile(t, "testdata/small.tsv"), "\n"), "\n")
	tr := tables(26, 1000)
	res := mustReadAll(t, "testdata/small.tsv", Options{TableRows: tr, BatchSize: 4})
	if !reflect.DeepEqual(res.sizes, []int{4, 2}) || !reflect.DeepEqual(res.starts, []int64{0, 4}) {
		t.Fatalf("sizes %v starts %v", res.sizes, res.starts)
	}
	for i, line := range lines {
		f := strings.Split(line, "\t")
		for len(f) < 40 {
			f = append(f, "")
		}
		if want, _ := strconv.ParseFloat(f[0], 32); res.labels[i] != float32(want) {
			t.Fatalf("line %d: label %v, want %v", i+1, res.labels[i], want)
		}
		for j := range 13 {
			v, _ := strconv.ParseInt(f[1+j], 10, 64) // "" -> 0
			want := float32(math.Log1p(float64(max(v, 0))))
			if res.dense[i][j] != want {
				t.Fatalf("line %d I%d: %v, want %v", i+1, j+1, res.dense[i][j], want)
			}
		}
		for c := range 26 {
			v, _ := strconv.ParseUint(f[14+c], 16, 64) // "" -> 0
			if want := int64(v % 1000); res.idx[i][c] != want {
				t.Fatalf("line %d C%d: %d, want %d", i+1, c+1, res.idx[i][c], want)
			}
		}
	}
	// Spot checks of the odd rows, so the loop above cannot agree with a
	// reader that ignores them.
	if res.dense[2][0] != float32(math.Log1p(5)) || res.dense[2][1] != 0 || res.dense[3][1] != 0 {
		t.Fatalf("short or negative row wrong: %v %v", res.dense[2], res.dense[3])
	}
	if res.idx[3][0] != 0xDEADBEEF%1000 || res.idx[3][1] != 615 || res.idx[3][25] != 0 {
		t.Fatalf("hex row wrong: %v", res.idx[3])
	}
	// None keeps negatives.
	raw := mustReadAll(t, "testdata/small.tsv", Options{TableRows: tr, DenseTransform: None})
	if raw.dense[2][0] != 5 || raw.dense[2][1] != -3 || raw.dense[3][1] != -2 || raw.dense[0][4] != 1382 {
		t.Fatalf("raw dense wrong: %v %v", raw.dense[2], raw.dense[3])
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// CRLF line endings (and no final newline) and gzip give the same rows.
func TestTSVCRLFAndGzip(t *testing.T) {
	opts := Options{TableRows: tables(26, 9973), BatchSize: 5}
	want := mustReadAll(t, "testdata/small.tsv", opts)
	for _, p := range []string{"testdata/small_crlf.tsv", "testdata/small.tsv.gz"} {
		if got := mustReadAll(t, p, opts); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s differs from small.tsv", p)
		}
	}
	// gzip is recognized by its magic, whatever the name, and a gzip of CRLF
	// lines is fine too.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(readFile(t, "testdata/small_crlf.tsv")))
	zw.Close()
	p := filepath.Join(t.TempDir(), "data.tsv")
	os.WriteFile(p, buf.Bytes(), 0o644)
	if got := mustReadAll(t, p, opts); !reflect.DeepEqual(got, want) {
		t.Fatal("gzip of CRLF differs")
	}
	// A truncated gzip is an error naming the file.
	os.WriteFile(p, buf.Bytes()[:buf.Len()-6], 0o644)
	wantErr(t, openErr(t, p, opts), p+":", "unexpected EOF")
}

// Without table sizes hashes are used as is and must fit in int64.
func TestTSVNoTables(t *testing.T) {
	err := openErr(t, "testdata/small.tsv", Options{})
	wantErr(t, err, "testdata/small.tsv:4: field C2 (categorical 2): hash 0xffffffffffffffff does not fit in int64")
	res := mustReadAll(t, "testdata/small.tsv", Options{Rows: Range{0, 3}})
	if res.idx[0][0] != 0x68fd1e64 {
		t.Fatalf("C1 of line 1 = %#x", res.idx[0][0])
	}
}

// Every bad line of testdata/odd.tsv, on its own after one good line, fails
// with the file, line 2, the field and the problem.
func TestTSVErrors(t *testing.T) {
	odd := strings.Split(strings.TrimSuffix(readFile(t, "testdata/odd.tsv"), "\n"), "\n")
	good := odd[0]
	cases := []struct {
		line int // of odd.tsv, 1-based
		msg  string
	}{
		{2, `field label: "2" is not 0 or 1`},
		{4, `field C3 (categorical 3): "zz12" is not hexadecimal`},
		{5, `line has 41 fields, want at most 40 (label, 13 dense, 26 categorical)`},
		{7, `field I5 (dense 5): "x3" is not an integer`},
		{8, `field label: empty, want 0 or 1`},
		{9, `field C7 (categorical 7): "11111111111111111" has more than 16 hex digits`},
		{10, `field I3 (dense 3): "99999999999999999999" is out of the int64 range`},
	}
	dir := t.TempDir()
	for _, c := range cases {
		p := filepath.Join(dir, "criteo-18k.tsv")
		os.WriteFile(p, []byte(good+"\n"+odd[c.line-1]+"\n"+good+"\n"), 0o644)
		err := openErr(t, p, Options{TableRows: tables(26, 100)})
		wantErr(t, err, p+":2: "+c.msg)
		var re *RowError
		if !errors.As(err, &re) || re.Line != 2 || re.Row != 1 {
			t.Fatalf("%v: not a RowError for line 2", err)
		}
	}
}

func TestTSVSkipAndFail(t *testing.T) {
	opts := Options{TableRows: tables(26, 100), BatchSize: 3}
	wantErr(t, openErr(t, "testdata/odd.tsv", opts), `testdata/odd.tsv:2: field label: "2" is not 0 or 1`)

	opts.BadRows = Skip
	r := mustOpen(t, "testdata/odd.tsv", opts)
	res, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	// Good lines: 1, 3, 6, 11.
	if st.Rows != 4 || st.Skipped != 7 || st.FirstSkipped != `testdata/odd.tsv:2: field label: "2" is not 0 or 1` {
		t.Fatalf("stats %+v", st)
	}
	if !reflect.DeepEqual(res.sizes, []int{3, 1}) || !reflect.DeepEqual(res.starts, []int64{0, 10}) {
		t.Fatalf("sizes %v starts %v", res.sizes, res.starts)
	}
	if res.labels[1] != 1 || res.dense[1][0] != float32(math.Log1p(5)) || res.labels[2] != 0 || res.labels[3] != 1 {
		t.Fatalf("wrong rows kept: %v", res.labels)
	}
}

func TestTSVLongLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "long.tsv")
	long := "1\t" + strings.Repeat("7", MaxLineBytes)
	os.WriteFile(p, []byte("0\t1\n"+long+"\n1\t2\r\n"+long), 0o644)
	wantErr(t, openErr(t, p, Options{}), p+":2: line is longer than 1048576 bytes")
	r := mustOpen(t, p, Options{BadRows: Skip})
	res, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.labels) != 2 || res.labels[1] != 1 || r.Stats().Skipped != 2 || res.starts[0] != 0 {
		t.Fatalf("rows %v stats %+v", res.labels, r.Stats())
	}
	// A line of exactly the limit, with CRLF, is fine.
	ok := "1\t" + strings.Repeat("0", MaxLineBytes-3) + "8"
	os.WriteFile(p, []byte(ok+"\r\n"+ok), 0o644)
	if res := mustReadAll(t, p, Options{}); len(res.labels) != 2 {
		t.Fatalf("%d rows", len(res.labels))
	}
}

func TestTSVRanges(t *testing.T) {
	opts := Options{TableRows: tables(26, 1000), BatchSize: 2}
	full := mustReadAll(t, "testdata/small.tsv", opts)
	for _, c := range []struct {
		rs    string
		sizes []int
	}{{"2:5", []int{2, 1}}, {"4:", []int{2}}, {":1", []int{1}}, {"0:6", []int{2, 2, 2}}, {"5:6", []int{1}}, {"1:", []int{2, 2, 1}}} {
		rg, _ := ParseRange(c.rs)
		opts.Rows = rg
		res := mustReadAll(t, "testdata/small.tsv", opts)
		end := rg.End
		if end < 0 {
			end = 6
		}
		if !reflect.DeepEqual(res.sizes, c.sizes) || !reflect.DeepEqual(res.dense, full.dense[rg.Start:end]) ||
			!reflect.DeepEqual(res.idx, full.idx[rg.Start:end]) || !reflect.DeepEqual(res.rows, full.rows[rg.Start:end]) {
			t.Fatalf("%s: sizes %v rows %v", c.rs, res.sizes, res.rows)
		}
	}
	for _, rs := range []Range{{3, 10}, {7, -1}, {6, 7}} {
		opts.Rows = rs
		wantErr(t, openErr(t, "testdata/small.tsv", opts), "testdata/small.tsv has 6 rows, but the row range "+rs.String()+" goes beyond that")
	}
	// Rows before the range are not parsed, so a bad line there is fine.
	opts.Rows = Range{2, 3}
	if res := mustReadAll(t, "testdata/odd.tsv", opts); res.labels[0] != 1 || res.rows[0] != 2 {
		t.Fatalf("%+v", res)
	}
}

func TestParseTSVRow(t *testing.T) {
	dense := make([]float32, 2)
	idx := make([]int64, 2)
	label, err := ParseTSVRow([]byte("1\t-7\t+3\tA\t10"), []int64{7, 3}, None, dense, idx)
	if err != nil || label != 1 || dense[0] != -7 || dense[1] != 3 || idx[0] != 3 || idx[1] != 1 {
		t.Fatalf("got %v %v %v %v", label, dense, idx, err)
	}
	// Padding overwrites stale values.
	dense[1], idx[1] = 9, 9
	if _, err := ParseTSVRow([]byte("0\t1"), nil, Log1p, dense, idx); err != nil || dense[1] != 0 || idx[1] != 0 || idx[0] != 0 {
		t.Fatalf("padding: %v %v %v", dense, idx, err)
	}
	if _, err := ParseTSVRow([]byte("0\t-9223372036854775808\t9223372036854775807"), nil, None, dense, idx); err != nil ||
		dense[0] != -9223372036854775808 || dense[1] != 9223372036854775807 {
		t.Fatalf("int64 limits: %v %v", dense, err)
	}
	for _, c := range []struct{ line, msg string }{
		{"0\t1\t2\t3\t4\t5", "line has 6 fields, want at most 5 (label, 2 dense, 2 categorical)"},
		{"0\t1\t2\t3\t4\t", "line has 6 fields"},
		{"0\t-\t", `field I1 (dense 1): "-" is not an integer`},
		{"0\t1.5", `field I1 (dense 1): "1.5" is not an integer`},
		{"0\t9223372036854775808", `field I1 (dense 1): "9223372036854775808" is out of the int64 range`},
		{"0\t-9223372036854775809", `out of the int64 range`},
		{"0\t\t\t0x1", `field C1 (categorical 1): "0x1" is not hexadecimal`},
		{" 1", `field label: " 1" is not 0 or 1`},
		{"1\t" + strings.Repeat("x", 100), `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... is not an integer`},
	} {
		_, err := ParseTSVRow([]byte(c.line), nil, Log1p, dense, idx)
		wantErr(t, err, c.msg)
		if !isType[*FieldError](err) {
			t.Fatalf("%T is not a *FieldError", err)
		}
	}
	_, err = ParseTSVRow([]byte("0"), []int64{1}, Log1p, dense, idx)
	wantErr(t, err, "1 table sizes given for 2 categorical fields")
	_, err = ParseTSVRow([]byte("0\t\t\t1"), []int64{0, 1}, Log1p, dense, idx)
	wantErr(t, err, "table emb_l.0 has 0 rows")
}

func TestParseRange(t *testing.T) {
	for s, want := range map[string]Range{
		"15429:16715": {15429, 16715}, "100:": {100, -1}, ":500": {0, 500}, "": AllRows, ":": AllRows, " 0:1 ": {0, 1},
	} {
		got, err := ParseRange(s)
		if err != nil || got != want {
			t.Fatalf("ParseRange(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, msg := range map[string]string{
		"100":   "no ':'",
		"5:5":   "END must be greater than START",
		"9:3":   "END must be greater than START",
		"-1:":   `START "-1" is not a non-negative integer`,
		"a:b":   `START "a" is not`,
		"1:x":   `END "x" is not`,
		"1:2:3": `END "2:3" is not`,
	} {
		_, err := ParseRange(s)
		wantErr(t, err, `bad row range "`+s+`"`, msg, "want START:END")
	}
	if s := (Range{15429, 16715}).String(); s != "15429:16715" {
		t.Fatal(s)
	}
	if s := (Range{}).String(); s != "0:" {
		t.Fatal(s)
	}
}

func TestOptionsErrors(t *testing.T) {
	p := "testdata/small.tsv"
	for _, c := range []struct {
		opts Options
		msg  string
	}{
		{Options{BatchSize: -1}, "batch size -1"},
		{Options{BatchSize: MaxBatchSize + 1}, "batch size"},
		{Options{TableRows: []int64{5, 0}}, "emb_l.1 has 0 rows"},
		{Options{DenseTransform: 7}, "unknown dense transform"},
		{Options{BadRows: 3}, "unknown bad-rows mode"},
		{Options{Rows: Range{-2, 5}}, "START is negative"},
		{Options{Rows: Range{5, 2}}, "END is before START"},
		{Options{Format: "orc"}, `unknown data format "orc"`},
		{Options{NumDense: -1}, "number of dense features -1"},
	} {
		_, err := Open(p, c.opts)
		wantErr(t, err, p, c.msg)
	}
	if _, err := Open("testdata/does-not-exist.tsv", Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	// A bare .npy is recognized and refused clearly.
	p = filepath.Join(t.TempDir(), "x.npy")
	os.WriteFile(p, npyBytes(testArray{descr: "<i4", shape: []int64{1}, vals: []float64{1}}), 0o644)
	_, err := Open(p, Options{})
	wantErr(t, err, p, "a single .npy array")
	if !isType[*UnsupportedError](err) {
		t.Fatalf("%T", err)
	}
	for _, s := range []string{"log1p", "none", "LOG1P"} {
		tr, err := ParseDenseTransform(s)
		if err != nil || !strings.EqualFold(tr.String(), s) {
			t.Fatalf("%s: %v %v", s, tr, err)
		}
	}
	if _, err := ParseDenseTransform("sqrt"); err == nil {
		t.Fatal("sqrt accepted")
	}
}

// The npz format can be forced, and a TSV forced as npz fails as a zip.
func TestFormatOverride(t *testing.T) {
	_, err := Open("testdata/small.tsv", Options{Format: "npz"})
	wantErr(t, err, "testdata/small.tsv", "not a valid npz (zip) archive")
	res := mustReadAll(t, "testdata/small.tsv.gz", Options{Format: "tsv", TableRows: tables(26, 10)})
	if len(res.labels) != 6 {
		t.Fatalf("%d rows", len(res.labels))
	}
	// Empty files: a TSV with no rows is an empty read, not an error.
	p := filepath.Join(t.TempDir(), "empty.tsv")
	os.WriteFile(p, nil, 0o644)
	if res := mustReadAll(t, p, Options{}); len(res.labels) != 0 {
		t.Fatal("rows from an empty file")
	}
}
