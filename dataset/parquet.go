package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/rqtools/rq/model"
)

// Parquet click logs (NVTabular/Merlin, Spark and BigQuery exports) hold
// the Criteo columns by name: "label", "I1".."I13" (dense: integer counts,
// or floats already transformed) and "C1".."C26" (ids: int64, or a
// list<int64> holding a bag of any length). Columns are matched by name,
// never by position: writers order them as they like (pandas and Spark
// keep the frame's order, some tools sort them). The file is read row
// group by row group, page by page, so memory stays bounded by a page.

var parquetMagic = []byte("PAR1")

// Columns names a Parquet click log's columns when they are not Criteo's
// (--label-col, --dense-cols, --sparse-cols): Label replaces "label",
// Dense "I1".."In" and Sparse "C1".."Ck", each matched by name. An empty
// field keeps the Criteo names; columns not named are not read.
type Columns struct {
	Label  string
	Dense  []string
	Sparse []string
}

func (c Columns) empty() bool { return c.Label == "" && c.Dense == nil && c.Sparse == nil }

// check refuses empty or repeated names, and name lists whose length is not
// the model's (numDense > 0, numSparse >= 0 when a model is given).
func (c Columns) check(numDense, numSparse int) error {
	seen := map[string]string{}
	add := func(what, name string) error {
		if name == "" {
			return fmt.Errorf("an empty column name among the %s columns", what)
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("column %q is named twice (as %s and as %s)", name, prev, what)
		}
		seen[name] = what
		return nil
	}
	if c.Label != "" {
		if err := add("label", c.Label); err != nil {
			return err
		}
	}
	for _, n := range c.Dense {
		if err := add("dense", n); err != nil {
			return err
		}
	}
	for _, n := range c.Sparse {
		if err := add("sparse", n); err != nil {
			return err
		}
	}
	if c.Dense != nil && numDense > 0 && len(c.Dense) != numDense {
		return fmt.Errorf("%d dense columns named, but the model has %d dense features", len(c.Dense), numDense)
	}
	if c.Sparse != nil && numSparse >= 0 && len(c.Sparse) != numSparse {
		return fmt.Errorf("%d sparse columns named, but the model has %d embedding tables", len(c.Sparse), numSparse)
	}
	if len(c.Dense) > maxColumns || len(c.Sparse) > maxColumns {
		return fmt.Errorf("more than %d columns named", maxColumns)
	}
	return nil
}

// parquetDenseName matches a dense column's name; its number is 1-based.
var parquetDenseName = regexp.MustCompile(`^I[1-9][0-9]*$`)

// IsParquet reports whether path (with the --data-format value format) is
// read as Parquet: format "parquet", or no format and a ".parquet" name,
// the "PAR1" magic or a directory of parts (IsParquetDir).
func IsParquet(path, format string) bool {
	switch strings.ToLower(format) {
	case "parquet":
		return true
	case "":
	default:
		return false
	}
	if IsParquetDir(path, format) {
		return true
	}
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	return bytes.Equal(head[:n], parquetMagic)
}

// IsParquetDir reports whether path is a directory read as one Parquet
// stream: with format "parquet" any directory (an empty one is the
// reader's error), with no format a directory holding *.parquet parts and
// no MLPerf day (the shared criteo-torchrec directory holds both: it is
// an MLPerf day beside a clicks.parquet).
func IsParquetDir(path, format string) bool {
	switch strings.ToLower(format) {
	case "parquet":
		st, err := os.Stat(path)
		return err == nil && st.IsDir()
	case "":
		return dirKind(path) == "parquet"
	}
	return false
}

// dirKind tells what a directory holds: "mlperf" for a day_N_dense.npy,
// else "parquet" for a *.parquet part, else "" (also for a non-directory).
func dirKind(path string) string {
	es, err := os.ReadDir(path)
	if err != nil {
		return ""
	}
	kind := ""
	for _, e := range es {
		switch {
		case mlperfDenseName.MatchString(e.Name()):
			return "mlperf"
		case isParquetPart(e.Name()):
			kind = "parquet"
		}
	}
	return kind
}

// isParquetPart: a *.parquet name that Hadoop's readers would not skip
// (Spark and Hive ignore names starting "_" or "."; their metadata and
// checksum files are named so).
func isParquetPart(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".parquet") && !strings.HasPrefix(name, "_") && !strings.HasPrefix(name, ".")
}

// ParquetParts lists the parts of a directory of Parquet files (as Spark,
// BigQuery and NVTabular write them: part-00000-*.parquet, ...) in lexical
// order of their names, which is the order they are read in. Names
// starting "_" or "." are skipped, as Spark and Hive skip them;
// subdirectories are not read.
func ParquetParts(dir string) ([]string, error) {
	es, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, e := range es {
		if !isParquetPart(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			continue
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return nil, &FormatError{File: dir, Msg: "no *.parquet files in this directory (a directory is read as the Parquet parts in it, or as MLPerf dlrm-v2's day_N_dense.npy, day_N_labels.npy and day_N_sparse_multi_hot.npz)"}
	}
	sort.Strings(parts) // ReadDir's order already; said here because it is the reading order
	return parts, nil
}

// ParquetDenseIsFloat reports whether path is a Parquet click log (for a
// directory, its first part) whose dense columns (cols.Dense, or "I1",
// "I2", ...) are all floating point: such files hold features already
// transformed (NVTabular's LogOp, MLPerf's log(x+3)), so commands default
// --dense-transform to none for them, as for MLPerf's layout; integer
// columns are raw counts and keep the log1p default. It is false for
// anything it cannot read, leaving the error to the reader.
func ParquetDenseIsFloat(path, format string, cols Columns) (isFloat bool) {
	if !IsParquet(path, format) {
		return false
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		parts, err := ParquetParts(path)
		if err != nil {
			return false
		}
		path = parts[0]
	}
	defer func() {
		if recover() != nil { // a hostile footer: the reader reports it
			isFloat = false
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return false
	}
	want := map[string]bool{}
	for _, n := range cols.Dense {
		want[n] = true
	}
	n := 0
	for _, fd := range pf.Schema().Fields() {
		if cols.Dense != nil && !want[fd.Name()] || cols.Dense == nil && !parquetDenseName.MatchString(fd.Name()) {
			continue
		}
		if !fd.Leaf() {
			return false
		}
		if k := fd.Type().Kind(); k != parquet.Float && k != parquet.Double {
			return false
		}
		n++
	}
	return n > 0
}

// pqColumn reads one leaf column of the current row group row by row.
type pqColumn struct {
	name     string // the top-level field: "C3"
	leaf     parquet.LeafColumn
	kind     parquet.Kind
	repeated bool // a list: a bag of any length per row
	pages    parquet.Pages
	vr       parquet.ValueReader // the current page's values; nil between pages
	buf      []parquet.Value
	pos, n   int
}

// fill makes buf[pos] the next value; io.EOF at the end of the chunk.
func (c *pqColumn) fill() error {
	for c.pos >= c.n {
		if c.vr == nil {
			p, err := c.pages.ReadPage()
			if err != nil {
				return err
			}
			c.vr = p.Values()
		}
		n, err := c.vr.ReadValues(c.buf)
		c.pos, c.n = 0, n
		if err == io.EOF {
			c.vr = nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// row appends the values of the next row to dst: one for a plain column,
// the bag's values (or one null for an empty or null list) for a list.
func (c *pqColumn) row(dst []parquet.Value) ([]parquet.Value, error) {
	if err := c.fill(); err != nil {
		return dst, err
	}
	if c.buf[c.pos].RepetitionLevel() != 0 {
		return dst, fmt.Errorf("a value continues a list but no row is open (repetition level %d)", c.buf[c.pos].RepetitionLevel())
	}
	dst = append(dst, c.buf[c.pos])
	c.pos++
	if !c.repeated {
		return dst, nil
	}
	for {
		if err := c.fill(); err == io.EOF {
			return dst, nil
		} else if err != nil {
			return dst, err
		}
		if c.buf[c.pos].RepetitionLevel() == 0 {
			return dst, nil
		}
		dst = append(dst, c.buf[c.pos])
		c.pos++
	}
}

func (c *pqColumn) close() {
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
	c.vr, c.pos, c.n = nil, 0, 0
}

// parquetReader streams the selected rows of a Parquet click log.
type parquetReader struct {
	cfg       config
	path      string
	closer    io.Closer
	closed    bool
	file      *parquet.File
	groups    []parquet.RowGroup
	label     *pqColumn
	dense     []*pqColumn
	sparse    []*pqColumn
	all       []*pqColumn
	nd, ns    int
	total     int64
	next, end int64
	g         int   // the open row group, -1 before the first
	gStart    int64 // its first row
	gEnd      int64 // one past its last row
	scratch   []parquet.Value
	stats     Stats
	err       error
}

func (r *parquetReader) TotalRows() int64    { return r.total }
func (r *parquetReader) SelectedRows() int64 { return r.end - r.cfg.rows.Start }
func (r *parquetReader) Stats() Stats        { return r.stats }

func (r *parquetReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	for _, c := range r.all {
		c.close()
	}
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// newParquetReader reads the footer, finds the columns by name and checks
// their types. A malformed file is a FormatError; the library's panics on
// hostile input become one too, so a bad file never crashes rq.
func newParquetReader(name string, ra io.ReaderAt, size int64, closer io.Closer, cfg config) (_ *parquetReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &FormatError{File: name, Msg: fmt.Sprintf("malformed Parquet file (%v)", p)}
		}
	}()
	r := &parquetReader{cfg: cfg, path: name, g: -1}
	if size < 12 {
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("%d bytes: too short for Parquet (PAR1, footer, PAR1)", size)}
	}
	pf, err := parquet.OpenFile(ra, size, parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, &FormatError{File: name, Msg: "not a valid Parquet file: " + err.Error()}
	}
	r.file, r.groups = pf, pf.RowGroups()
	var sum int64
	for _, g := range r.groups {
		if g.NumRows() < 0 {
			return nil, &FormatError{File: name, Msg: fmt.Sprintf("a row group of %d rows", g.NumRows())}
		}
		sum += g.NumRows()
	}
	r.total = sum
	fields := map[string]parquet.Field{}
	for _, f := range pf.Schema().Fields() {
		fields[f.Name()] = f
	}
	has := func(s string) bool { _, ok := fields[s]; return ok }

	cols := cfg.columns
	labelName := cols.Label
	if labelName == "" {
		labelName = "label"
	}
	denseNames, sparseNames := cols.Dense, cols.Sparse
	if denseNames == nil {
		r.nd = cfg.numDense
		if r.nd == 0 {
			for r.nd < maxColumns && has("I"+strconv.Itoa(r.nd+1)) {
				r.nd++
			}
			if r.nd == 0 {
				r.nd = criteoDense // reported below as a missing I1
			}
		}
		if cfg.numDense > 0 && has("I"+strconv.Itoa(r.nd+1)) {
			return nil, &FormatError{File: name, Msg: fmt.Sprintf("a dense column I%d but the model has %d dense features", r.nd+1, r.nd)}
		}
		for j := range r.nd {
			denseNames = append(denseNames, "I"+strconv.Itoa(j+1))
		}
	}
	if sparseNames == nil {
		r.ns = cfg.numSparse
		if r.ns < 0 {
			for r.ns = 0; r.ns < maxColumns && has("C"+strconv.Itoa(r.ns+1)); r.ns++ {
			}
			if r.ns == 0 {
				r.ns = criteoSparse
			}
		}
		if cfg.numSparse >= 0 && has("C"+strconv.Itoa(r.ns+1)) {
			return nil, &FormatError{File: name, Msg: fmt.Sprintf("a sparse column C%d but the model has only %d embedding tables", r.ns+1, r.ns)}
		}
		for k := range r.ns {
			sparseNames = append(sparseNames, "C"+strconv.Itoa(k+1))
		}
	}
	r.nd, r.ns = len(denseNames), len(sparseNames)
	// missing says which column was not found and where its name came
	// from: a flag's list, or Criteo's names.
	missing := func(field, what, flag string) error {
		if flag != "" {
			return &FormatError{File: name, Msg: fmt.Sprintf("no column %q (%s, named by %s)", field, what, flag)}
		}
		return &FormatError{File: name, Msg: fmt.Sprintf("no column %q (%s): rq reads the Criteo columns label, I1..I%d and C1..C%d by name (--label-col, --dense-cols and --sparse-cols name others)", field, what, r.nd, r.ns)}
	}
	flagOf := func(named bool, flag string) string {
		if named {
			return flag
		}
		return ""
	}

	col := func(field, what, flag string, kinds ...parquet.Kind) (*pqColumn, error) {
		f, ok := fields[field]
		if !ok {
			return nil, missing(field, what, flag)
		}
		path, repeated := []string{field}, false
		var n parquet.Node = f
		for !n.Leaf() {
			// A list: LIST's group/list/element, or an older writer's
			// group/array; any chain of single-field groups to one leaf.
			if n.Repeated() {
				repeated = true
			}
			sub := n.Fields()
			if len(sub) != 1 {
				return nil, &FormatError{File: name, Part: fmt.Sprintf("column %q", field), Msg: fmt.Sprintf("a group of %d fields; want a value or a list of values (%s)", len(sub), what)}
			}
			path = append(path, sub[0].Name())
			n = sub[0]
		}
		if n.Repeated() {
			repeated = true
		}
		leaf, ok := pf.Schema().Lookup(path...)
		if !ok {
			return nil, &FormatError{File: name, Part: fmt.Sprintf("column %q", field), Msg: "its leaf column is not in the schema"}
		}
		k := n.Type().Kind()
		okKind := false
		for _, want := range kinds {
			okKind = okKind || k == want
		}
		if !okKind {
			names := make([]string, len(kinds))
			for i, w := range kinds {
				names[i] = w.String()
			}
			return nil, &FormatError{File: name, Part: fmt.Sprintf("column %q", field), Msg: fmt.Sprintf("type %s, want %s (%s)", n.Type(), strings.Join(names, " or "), what)}
		}
		if repeated && what != "ids" {
			return nil, &FormatError{File: name, Part: fmt.Sprintf("column %q", field), Msg: fmt.Sprintf("a list; the %s is one value per row", what)}
		}
		if leaf.MaxRepetitionLevel > 1 {
			return nil, &FormatError{File: name, Part: fmt.Sprintf("column %q", field), Msg: "a list of lists; want a value or a list of ids per row"}
		}
		c := &pqColumn{name: field, leaf: leaf, kind: k, repeated: repeated, buf: make([]parquet.Value, 256)}
		r.all = append(r.all, c)
		return c, nil
	}
	if r.label, err = col(labelName, "label", flagOf(cols.Label != "", "--label-col"), parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Float, parquet.Double); err != nil {
		return nil, err
	}
	for _, n := range denseNames {
		c, err := col(n, "dense feature", flagOf(cols.Dense != nil, "--dense-cols"), parquet.Int32, parquet.Int64, parquet.Float, parquet.Double)
		if err != nil {
			return nil, err
		}
		r.dense = append(r.dense, c)
	}
	for _, n := range sparseNames {
		c, err := col(n, "ids", flagOf(cols.Sparse != nil, "--sparse-cols"), parquet.Int32, parquet.Int64)
		if err != nil {
			return nil, err
		}
		r.sparse = append(r.sparse, c)
	}
	r.next, r.end = cfg.rows.Start, cfg.rows.End
	if r.end < 0 {
		r.end = r.total
	}
	if r.next > r.total || r.end > r.total {
		return nil, fmt.Errorf("%s: the row range %v goes beyond the end of the data, which has %d rows", name, cfg.rows, r.total)
	}
	r.closer = closer
	return r, nil
}

// openGroup positions every column at row r.next, in the row group that
// holds it.
func (r *parquetReader) openGroup() error {
	for _, c := range r.all {
		c.close()
	}
	start := int64(0)
	for g, rg := range r.groups {
		if r.next < start+rg.NumRows() {
			r.g, r.gStart, r.gEnd = g, start, start+rg.NumRows()
			chunks := rg.ColumnChunks()
			for _, c := range r.all {
				if c.leaf.ColumnIndex < 0 || c.leaf.ColumnIndex >= len(chunks) {
					return &FormatError{File: r.path, Part: fmt.Sprintf("row group %d", g), Msg: fmt.Sprintf("no column chunk for %q", c.name)}
				}
				c.pages = chunks[c.leaf.ColumnIndex].Pages()
				if skip := r.next - start; skip > 0 {
					if err := c.pages.SeekToRow(skip); err != nil {
						return &FormatError{File: r.path, Part: fmt.Sprintf("row group %d, column %q", g, c.name), Msg: fmt.Sprintf("seeking to row %d: %v", r.next, err)}
					}
				}
			}
			return nil
		}
		start += rg.NumRows()
	}
	return &FormatError{File: r.path, Msg: fmt.Sprintf("no row group holds row %d", r.next)}
}

func (r *parquetReader) Next() (b *model.Batch, err error) {
	if r.closed {
		return nil, errClosed
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.next >= r.end {
		return nil, io.EOF
	}
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, &FormatError{File: r.path, Part: fmt.Sprintf("row group %d", r.g), Msg: fmt.Sprintf("malformed Parquet data (%v)", p)}
		}
		if err != nil && err != io.EOF {
			r.err = err
		}
	}()
	capN := int(min(int64(r.cfg.batch), r.end-r.next))
	b = &model.Batch{
		NumDense: r.nd,
		Dense:    make([]float32, capN*r.nd),
		Labels:   make([]float32, capN),
		Indices:  make([][]int64, r.ns),
		Offsets:  make([][]int32, r.ns),
	}
	for k := range r.sparse {
		b.Indices[k] = make([]int64, 0, capN)
		b.Offsets[k] = append(make([]int32, 0, capN+1), 0)
	}
	if err := r.cfg.ctx.Err(); err != nil {
		return nil, err
	}
	n := 0
	for n < capN && r.next < r.end {
		if r.next%checkEvery == 0 {
			if err := r.cfg.ctx.Err(); err != nil {
				return nil, err
			}
		}
		if r.g < 0 || r.next >= r.gEnd {
			if err := r.openGroup(); err != nil {
				return nil, err
			}
		}
		row := r.next
		if err := r.decodeRow(b, n, row); err != nil {
			if _, ok := err.(*RowError); !ok || r.cfg.badRows != Skip {
				return nil, err
			}
			recordSkip(&r.stats, err)
			for k := range b.Indices { // drop what the row appended
				b.Indices[k] = b.Indices[k][:b.Offsets[k][n]]
			}
		} else {
			if n == 0 {
				b.Row = row
			}
			n++
			for k := range b.Indices {
				b.Offsets[k] = append(b.Offsets[k], int32(len(b.Indices[k])))
			}
		}
		r.next++
	}
	if n == 0 {
		return nil, io.EOF
	}
	b.N = n
	b.Dense = b.Dense[:n*r.nd]
	b.Labels = b.Labels[:n]
	r.stats.Rows += int64(n)
	return b, nil
}

// decodeRow reads row `row` of every column into example n of b. Every
// column advances past the row even when a value is bad, so a skipped
// row leaves them all at the next one. A RowError is a bad value (--bad-rows
// skip may drop it); any other error is a malformed file.
func (r *parquetReader) decodeRow(b *model.Batch, n int, row int64) error {
	var bad error
	where := func(c *pqColumn) string { return fmt.Sprintf("row group %d, column %q", r.g, c.name) }
	rowErr := func(c *pqColumn, msg string) {
		if bad == nil {
			bad = &RowError{File: r.path, Row: row, Where: where(c), Msg: msg}
		}
	}
	read := func(c *pqColumn) ([]parquet.Value, error) {
		vs, err := c.row(r.scratch[:0])
		r.scratch = vs[:0]
		if err == io.EOF {
			return nil, &FormatError{File: r.path, Part: where(c), Msg: fmt.Sprintf("the column ends at row %d, before the row group's last row %d", row, r.gEnd-1)}
		}
		if err != nil {
			return nil, &FormatError{File: r.path, Part: where(c), Msg: fmt.Sprintf("row %d: %v", row, err)}
		}
		return vs, nil
	}

	vs, err := read(r.label)
	if err != nil {
		return err
	}
	if l, msg := pqLabel(vs[0]); msg != "" {
		rowErr(r.label, msg)
	} else {
		b.Labels[n] = l
	}
	dense := b.Dense[n*r.nd : (n+1)*r.nd]
	for j, c := range r.dense {
		vs, err := read(c)
		if err != nil {
			return err
		}
		v := vs[0]
		var x float32
		switch {
		case v.IsNull(): // a missing count, as TSV's empty field
		case c.kind == parquet.Float:
			x = v.Float()
		case c.kind == parquet.Double:
			x = float32(v.Double())
		case c.kind == parquet.Int32:
			x = float32(v.Int32())
		default:
			x = float32(v.Int64())
		}
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			rowErr(c, fmt.Sprintf("value %v is not a finite float32", v))
			continue
		}
		dense[j] = denseValue(x, r.cfg.transform)
	}
	for k, c := range r.sparse {
		vs, err := read(c)
		if err != nil {
			return err
		}
		for _, v := range vs {
			// A null (an empty or null list, a null id) adds nothing:
			// the bag is empty and pools to zeros, as a feature missing
			// from TorchRec's KeyedJaggedTensor (length 0).
			if v.IsNull() {
				continue
			}
			id := v.Int64()
			if c.kind == parquet.Int32 {
				id = int64(v.Int32())
			}
			switch {
			case id < 0:
				rowErr(c, fmt.Sprintf("id %d is negative", id))
			case r.cfg.tableRows != nil && id >= r.cfg.tableRows[k]:
				rowErr(c, fmt.Sprintf("id %d is beyond embedding table %d, which has %d rows", id, k, r.cfg.tableRows[k]))
			default:
				b.Indices[k] = append(b.Indices[k], id)
			}
		}
		if len(b.Indices[k]) > math.MaxInt32 {
			return &FormatError{File: r.path, Part: where(c), Msg: "more ids in one batch than an int32 offset holds"}
		}
	}
	return bad
}

// pqLabel reads a click label, which must be 0 or 1.
func pqLabel(v parquet.Value) (float32, string) {
	switch v.Kind() {
	case parquet.Boolean:
		if v.Boolean() {
			return 1, ""
		}
		return 0, ""
	case parquet.Int32, parquet.Int64:
		i := v.Int64()
		if v.Kind() == parquet.Int32 {
			i = int64(v.Int32())
		}
		if i == 0 || i == 1 {
			return float32(i), ""
		}
		return 0, fmt.Sprintf("label %d is not 0 or 1", i)
	case parquet.Float, parquet.Double:
		f := v.Double()
		if v.Kind() == parquet.Float {
			f = float64(v.Float())
		}
		if f == 0 || f == 1 {
			return float32(f), ""
		}
		return 0, fmt.Sprintf("label %v is not 0 or 1", f)
	}
	return 0, "the label is null, want 0 or 1"
}

// columnTypes describes the columns r reads, for comparing the parts of a
// directory: name, physical type and whether it is a list.
func (r *parquetReader) columnTypes() []string {
	var out []string
	for _, c := range r.all {
		t := c.kind.String()
		if c.repeated {
			t = "list<" + t + ">"
		}
		out = append(out, fmt.Sprintf("%q %s", c.name, t))
	}
	return out
}

// openParquetDir reads the Parquet parts of dir (ParquetParts) as one
// stream. Every part's footer is read and its columns checked against
// the first part's when the stream is opened, so a mismatch is found
// before any work; then one part at a time is open.
func openParquetDir(ctx context.Context, dir string, opts Options) (Reader, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	cfg.ctx = ctx
	names, err := ParquetParts(dir)
	if err != nil {
		return nil, err
	}
	parts := make([]streamPart, len(names))
	var first []string
	for i, p := range names {
		parts[i] = streamPart{name: p, open: func(c config) (Reader, error) { return openParquetPart(p, c) }}
		all := cfg
		all.rows = AllRows
		rd, err := openParquetPart(p, all)
		if err != nil {
			return nil, err
		}
		pr := rd.(*parquetReader)
		parts[i].rows = pr.total
		types := pr.columnTypes()
		pr.Close()
		if i == 0 {
			first = types
			continue
		}
		if d := diffColumns(first, types); d != "" {
			return nil, &FormatError{File: p, Msg: fmt.Sprintf("the parts of a directory must share one schema: %s in %s (the first part)", d, filepath.Base(names[0]))}
		}
	}
	return newStream(dir, parts, cfg)
}

// diffColumns says how the columns b differ from a ("" when they agree).
func diffColumns(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("column %s here, %s", b[i], a[i])
		}
	}
	switch {
	case len(b) > len(a):
		return fmt.Sprintf("column %s here, not", b[len(a)])
	case len(a) > len(b):
		return fmt.Sprintf("no column %s here, but it is", a[len(b)])
	}
	return ""
}

// openParquetPart opens one file of a directory.
func openParquetPart(path string, cfg config) (Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		var r *parquetReader
		if r, err = newParquetReader(path, f, st.Size(), f, cfg); err == nil {
			return r, nil
		}
	}
	f.Close()
	return nil, err
}

// A streamPart is one file (or MLPerf day) of a stream: its rows, and how
// to open it for a selection of them.
type streamPart struct {
	name  string
	rows  int64
	start int64 // its first row in the stream
	open  func(config) (Reader, error)
}

// batchLimiter is a reader whose batch size can be lowered between calls
// to Next, so that a stream fills a batch from the end of one part and
// the start of the next.
type batchLimiter interface {
	limitBatch(n int)
}

func (r *parquetReader) limitBatch(n int) { r.cfg.batch = n }

// stream reads parts one after the other as one click log: rows are
// numbered across the parts (for --rows, --shard and Batch.Row), batches
// run on across a part's end as they would in one file (only the last is
// short), and one part is open at a time. A bad row's error names its
// part, its row in the part and its row in the stream.
type stream struct {
	name      string
	cfg       config
	parts     []streamPart
	k         int    // the part open or to open next
	cur       Reader // nil between parts
	total     int64
	next, end int64 // the selection, in stream rows
	rows      int64
	skipped   Stats // skips of the parts closed
	closed    bool
	err       error
}

func newStream(name string, parts []streamPart, cfg config) (*stream, error) {
	s := &stream{name: name, cfg: cfg, parts: parts}
	for i := range parts {
		parts[i].start = s.total
		s.total += parts[i].rows
		if s.total < 0 {
			return nil, &FormatError{File: parts[i].name, Msg: "the parts hold more rows than an int64 counts"}
		}
	}
	s.next, s.end = cfg.rows.Start, cfg.rows.End
	if s.end < 0 {
		s.end = s.total
	}
	if s.next > s.total || s.end > s.total {
		return nil, fmt.Errorf("%s: the row range %v goes beyond the end of the data, which has %d rows", name, cfg.rows, s.total)
	}
	return s, nil
}

func (s *stream) TotalRows() int64    { return s.total }
func (s *stream) SelectedRows() int64 { return s.end - s.cfg.rows.Start }

func (s *stream) Stats() Stats {
	st := s.skipped
	st.Rows = s.rows
	if s.cur != nil {
		c := s.cur.Stats()
		if st.Skipped == 0 {
			st.FirstSkipped = c.FirstSkipped
		}
		st.Skipped += c.Skipped
	}
	return st
}

// closePart closes the open part, keeping its count of skipped rows.
func (s *stream) closePart() error {
	if s.cur == nil {
		return nil
	}
	c := s.cur.Stats()
	if s.skipped.Skipped == 0 {
		s.skipped.FirstSkipped = c.FirstSkipped
	}
	s.skipped.Skipped += c.Skipped
	err := s.cur.Close()
	s.cur = nil
	s.k++
	return err
}

func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cur != nil {
		err := s.cur.Close()
		s.cur = nil
		return err
	}
	return nil
}

func (s *stream) Next() (*model.Batch, error) {
	if s.closed {
		return nil, errClosed
	}
	if s.err != nil {
		return nil, s.err
	}
	var b *model.Batch
	for b == nil || b.N < s.cfg.batch {
		if s.cur == nil {
			// The next part holding selected rows.
			for s.k < len(s.parts) && s.parts[s.k].start+s.parts[s.k].rows <= s.next {
				s.k++
			}
			if s.k >= len(s.parts) || s.next >= s.end {
				break
			}
			p := s.parts[s.k]
			c := s.cfg
			c.rows = Range{Start: s.next - p.start, End: min(s.end, p.start+p.rows) - p.start}
			rd, err := p.open(c)
			if err != nil {
				s.err = err
				return nil, err
			}
			s.cur = rd
		}
		need := s.cfg.batch
		if b != nil {
			need -= b.N
		}
		s.cur.(batchLimiter).limitBatch(need)
		pb, err := s.cur.Next()
		if err == io.EOF {
			p := s.parts[s.k]
			s.next = min(s.end, p.start+p.rows)
			if err := s.closePart(); err != nil {
				s.err = err
				return nil, err
			}
			continue
		}
		if err != nil {
			var re *RowError
			if errors.As(err, &re) && len(s.parts) > 1 {
				re.Where = strings.TrimPrefix(re.Where+fmt.Sprintf("; row %d of %s", re.Row+s.parts[s.k].start, s.name), "; ")
			}
			s.err = err
			return nil, err
		}
		pb.Row += s.parts[s.k].start
		if b == nil {
			b = pb
		} else if !appendBatch(b, pb) {
			s.err = &FormatError{File: s.parts[s.k].name, Msg: "more ids in one batch than an int32 offset holds"}
			return nil, s.err
		}
	}
	if b == nil {
		return nil, io.EOF
	}
	s.rows += int64(b.N)
	return b, nil
}

// appendBatch appends the examples of src to dst; false if a table's ids
// would overflow the batch's int32 offsets.
func appendBatch(dst, src *model.Batch) bool {
	for k := range dst.Indices {
		if int64(len(dst.Indices[k]))+int64(len(src.Indices[k])) > math.MaxInt32 {
			return false
		}
	}
	dst.Dense = append(dst.Dense, src.Dense...)
	dst.Labels = append(dst.Labels, src.Labels...)
	for k := range dst.Indices {
		base := dst.Offsets[k][dst.N]
		for _, o := range src.Offsets[k][1:] {
			dst.Offsets[k] = append(dst.Offsets[k], base+o)
		}
		dst.Indices[k] = append(dst.Indices[k], src.Indices[k]...)
	}
	dst.N += src.N
	return true
}
