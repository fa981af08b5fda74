package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/pierrec/lz4/v4"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/storage"
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
	if strings.EqualFold(extOf(path), ".parquet") {
		return true
	}
	ra, _, c, err := openInput(context.Background(), path)
	if err != nil {
		return false
	}
	defer c.Close()
	var head [4]byte
	n, _ := ra.ReadAt(head[:], 0)
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
		return isDir(path)
	case "":
		return dirKind(path) == "parquet"
	}
	return false
}

// dirKind tells what a directory holds: "mlperf" for a day_N_dense.npy,
// else "parquet" for a *.parquet part, else "" (also for a non-directory).
func dirKind(path string) string {
	if !isDir(path) {
		return ""
	}
	names, _, err := dirEntries(path)
	if err != nil {
		return ""
	}
	kind := ""
	for _, name := range names {
		switch {
		case mlperfDenseName.MatchString(name):
			return "mlperf"
		case isParquetPart(name):
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
//
// dir may be an object URL ending in "/": the objects under that prefix.
func ParquetParts(dir string) ([]string, error) {
	names, paths, err := dirEntries(dir) // sorted by name, files only
	if err != nil {
		return nil, err
	}
	var parts []string
	for i, name := range names {
		if !isParquetPart(name) {
			continue
		}
		parts = append(parts, paths[i])
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
	if isDir(path) {
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
	f, size, c, err := openInput(context.Background(), path)
	if err != nil {
		return false
	}
	defer c.Close()
	if checkParquetFooter(path, f, size) != nil {
		return false // what parquet-go must not see; the reader says why
	}
	pf, err := parquet.OpenFile(f, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
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
	ra        io.ReaderAt
	size      int64
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
	r := &parquetReader{cfg: cfg, path: name, g: -1, ra: ra, size: size}
	if err := checkParquetFooter(name, ra, size); err != nil {
		return nil, err
	}
	// The page index is not read: its lengths are more claims to check,
	// and without it a seek to --rows decodes the pages before the
	// selection, which costs what reading them would.
	popts := []parquet.FileOption{parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true)}
	if isObjectReader(ra) {
		// Each column chunk is read through its own buffer: at the
		// default 4 KiB, the columns' interleaved reads would evict each
		// other from the object reader's cache (see remote.go).
		popts = append(popts, parquet.ReadBufferSize(storage.BlockSize))
	}
	pf, err := parquet.OpenFile(ra, size, popts...)
	if err != nil {
		return nil, &FormatError{File: name, Msg: "not a valid Parquet file: " + err.Error()}
	}
	r.file, r.groups = pf, pf.RowGroups()
	var sum int64
	for i, g := range r.groups {
		if g.NumRows() < 0 || sum+g.NumRows() < sum {
			return nil, &FormatError{File: name, Part: fmt.Sprintf("row group %d", i), Msg: fmt.Sprintf("%d rows (after %d in the groups before it)", g.NumRows(), sum)}
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
			md := r.file.Metadata().RowGroups
			var open int64
			for _, c := range r.all {
				if c.leaf.ColumnIndex < 0 || c.leaf.ColumnIndex >= len(chunks) || g >= len(md) || c.leaf.ColumnIndex >= len(md[g].Columns) {
					return &FormatError{File: r.path, Part: fmt.Sprintf("row group %d", g), Msg: fmt.Sprintf("no column chunk for %q", c.name)}
				}
				where := fmt.Sprintf("row group %d, column %q", g, c.name)
				mem, err := checkChunk(r.path, r.ra, r.size, &md[g].Columns[c.leaf.ColumnIndex].MetaData, where)
				if err != nil {
					return err
				}
				if open += mem; open > MaxParquetOpenPages {
					return &LimitError{File: r.path, What: fmt.Sprintf("row group %d: the largest pages of the columns read, decoded together,", g), Limit: MaxParquetOpenPages, Unit: "bytes"}
				}
			}
			for _, c := range r.all {
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
			err = r.cfg.rowError(err)
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
			return nil, &FormatError{File: p, Msg: fmt.Sprintf("the parts of a directory must share one schema: %s in %s (the first part)", d, baseName(names[0]))}
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
	f, size, c, err := openInput(cfg.ctx, path)
	if err != nil {
		return nil, err
	}
	r, err := newParquetReader(path, f, size, c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return r, nil
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
			if len(s.parts) > 1 {
				// Bad rows, failing or skipped, say where they are in the
				// whole stream too.
				start, name := p.start, s.name
				c.where = func(row int64) string { return fmt.Sprintf("row %d of %s", row+start, name) }
			}
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

// Budgets for reading Parquet files from strangers (docs/limits.md).
// parquet-go trusts the sizes a file claims: a 20-byte footer whose list
// of row groups claims 2^31 entries makes it allocate 1.2 TB (a fatal
// out-of-memory, which no recover catches), a page header claiming 2 GiB
// makes it allocate 2 GiB before reading, and its LZ4 decoder doubles its
// buffer for as long as a corrupt block fails. So rq checks what a file
// claims before parquet-go acts on it: the footer's Thrift is walked and
// its lists charged at the memory their Go structs take, and every page
// header of the column chunks read is walked, each page's compressed data
// kept within its chunk and its decoded size and value count bounded.
// Every number is absolute: none grows with the file.
const (
	// MaxParquetFooterBytes caps the footer (the file's metadata). A
	// footer takes some hundreds of bytes per column chunk: 1,000 row
	// groups of 40 columns is about 4 MiB.
	MaxParquetFooterBytes = 16 << 20

	// MaxParquetFooterMemory caps the Go memory the footer decodes to,
	// charged per list element at the size of the largest Thrift struct
	// (a ColumnChunk, 560 bytes) or 16 bytes for a value, plus strings'
	// bytes: the 4 MiB footer above charges about 90 MiB.
	MaxParquetFooterMemory = 256 << 20

	// MaxParquetPageBytes caps one page's decoded (uncompressed) size.
	// Writers cut pages at about 1 MiB (Spark, pyarrow, parquet-go);
	// NVTabular and BigQuery likewise.
	MaxParquetPageBytes = 128 << 20

	// MaxParquetPageValues caps the values (and levels) of one page: a
	// run-length encoded page can claim millions of values in a few
	// bytes, and each decodes to 8-10 bytes. Writers cut pages at 20,000
	// rows (Spark, pyarrow) or by size.
	MaxParquetPageValues = 1 << 24

	// MaxParquetOpenPages caps the memory of the pages decoded at once:
	// one page per column read (their compressed and decoded bytes and 16
	// bytes per value, for the largest page of each column in the row
	// group). 40 columns of 1 MiB pages take about 100 MiB.
	MaxParquetOpenPages = 768 << 20
)

// LimitError is a file refused because reading it would pass one of the
// budgets above: it may be valid, but it claims far more than any real
// click log's metadata or pages need, which is what a hostile or corrupt
// file looks like.
type LimitError struct {
	File  string
	What  string // what was counted
	Limit int64
	Unit  string // "bytes", or "" for a count
}

func (e *LimitError) Error() string {
	lim := fmt.Sprint(e.Limit)
	switch {
	case e.Unit == "bytes" && e.Limit%(1<<20) == 0:
		lim = fmt.Sprintf("%d MiB (%d bytes)", e.Limit>>20, e.Limit)
	case e.Unit != "":
		lim += " " + e.Unit
	}
	return fmt.Sprintf("%s: refused: %s exceed the limit of %s (hostile or corrupt file? limits: docs/limits.md)", e.File, e.What, lim)
}

// checkParquetFooter reads the footer of a Parquet file and walks its
// Thrift before parquet-go decodes it (see the budgets above).
func checkParquetFooter(name string, ra io.ReaderAt, size int64) error {
	if size < 12 {
		return &FormatError{File: name, Msg: fmt.Sprintf("%d bytes: too short for Parquet (PAR1, footer, PAR1)", size)}
	}
	var tail [8]byte
	if _, err := ra.ReadAt(tail[:], size-8); err != nil {
		return &FormatError{File: name, Msg: "reading the footer: " + err.Error()}
	}
	switch string(tail[4:]) {
	case "PAR1":
	case "PARE":
		return &UnsupportedError{File: name, What: "an encrypted Parquet footer"}
	default:
		return &FormatError{File: name, Msg: fmt.Sprintf("not a valid Parquet file: it ends in %q, not the magic \"PAR1\" (truncated?)", tail[4:])}
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 {
		return &FormatError{File: name, Msg: fmt.Sprintf("not a valid Parquet file: a footer of %d bytes in a file of %d bytes (truncated?)", n, size)}
	}
	if n > MaxParquetFooterBytes {
		return &LimitError{File: name, What: fmt.Sprintf("its footer's %d bytes", n), Limit: MaxParquetFooterBytes, Unit: "bytes"}
	}
	footer := make([]byte, n)
	if _, err := ra.ReadAt(footer, size-8-n); err != nil {
		return &FormatError{File: name, Msg: "reading the footer: " + err.Error()}
	}
	w := thriftWalk{b: footer}
	if err := w.structure(0, nil); err != nil {
		return &FormatError{File: name, Msg: "not a valid Parquet file: its footer: " + err.Error()}
	}
	if w.charged > MaxParquetFooterMemory {
		return &LimitError{File: name, What: "the structures its footer decodes to", Limit: MaxParquetFooterMemory, Unit: "bytes"}
	}
	return nil
}

// thriftWalk checks Thrift compact-protocol bytes without building
// anything: every length fits in the bytes left, nesting is shallow, and
// the memory a decoder would spend is charged. onInt, when set, sees
// every integer field with its path of field ids.
type thriftWalk struct {
	b       []byte
	pos     int
	charged int64
	onInt   func(path []int16, v int64)
}

// Thrift compact types.
const (
	tcTrue, tcFalse, tcByte, tcI16, tcI32, tcI64, tcDouble, tcBinary, tcList, tcSet, tcMap, tcStruct, tcUUID = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
)

// structBytes is what a decoder spends on one struct of a list: the size
// of parquet-go's largest footer struct, format.ColumnChunk (560 bytes).
const structBytes = 576

var errThriftEnd = errors.New("the Thrift data ends early")

func (w *thriftWalk) byte1() (byte, error) {
	if w.pos >= len(w.b) {
		return 0, errThriftEnd
	}
	w.pos++
	return w.b[w.pos-1], nil
}

func (w *thriftWalk) uvarint() (uint64, error) {
	v, n := binary.Uvarint(w.b[w.pos:])
	if n <= 0 {
		return 0, errThriftEnd
	}
	w.pos += n
	return v, nil
}

// length reads a size that counts items of at least one byte each.
func (w *thriftWalk) length(what string) (int, error) {
	v, err := w.uvarint()
	if err != nil {
		return 0, err
	}
	if v > uint64(len(w.b)-w.pos) {
		return 0, fmt.Errorf("%s of %d at byte %d, but only %d bytes follow", what, v, w.pos, len(w.b)-w.pos)
	}
	return int(v), nil
}

func (w *thriftWalk) structure(depth int, path []int16) error {
	id := int16(0)
	for {
		h, err := w.byte1()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil
		}
		if d := h >> 4; d != 0 {
			id += int16(d)
		} else {
			v, err := w.uvarint()
			if err != nil {
				return err
			}
			id = int16(int64(v>>1) ^ -int64(v&1))
		}
		if err := w.value(h&0x0f, depth, append(path, id)); err != nil {
			return err
		}
	}
}

func (w *thriftWalk) value(t byte, depth int, path []int16) error {
	if depth > 32 {
		return fmt.Errorf("values nested over 32 deep at byte %d", w.pos)
	}
	switch t {
	case tcTrue, tcFalse:
		if w.onInt != nil {
			w.onInt(path, int64(t&1)) // TRUE is 1, FALSE 2
		}
		return nil
	case tcByte:
		_, err := w.byte1()
		return err
	case tcI16, tcI32, tcI64:
		v, err := w.uvarint()
		if err == nil && w.onInt != nil {
			w.onInt(path, int64(v>>1)^-int64(v&1))
		}
		return err
	case tcDouble:
		if len(w.b)-w.pos < 8 {
			return errThriftEnd
		}
		w.pos += 8
		return nil
	case tcUUID:
		if len(w.b)-w.pos < 16 {
			return errThriftEnd
		}
		w.pos += 16
		return nil
	case tcBinary:
		n, err := w.length("a string")
		w.pos += n
		w.charged += int64(n)
		return err
	case tcList, tcSet:
		h, err := w.byte1()
		if err != nil {
			return err
		}
		n, et := int(h>>4), h&0x0f
		if n == 15 {
			if n, err = w.length("a list"); err != nil {
				return err
			}
		} else if n > len(w.b)-w.pos {
			return errThriftEnd
		}
		w.charge(n, et)
		for range n {
			if et == tcTrue || et == tcFalse { // a list's booleans take a byte each
				if _, err := w.byte1(); err != nil {
					return err
				}
				continue
			}
			if err := w.value(et, depth+1, path); err != nil {
				return err
			}
		}
		return nil
	case tcMap:
		n, err := w.length("a map")
		if err != nil || n == 0 {
			return err
		}
		kv, err := w.byte1()
		if err != nil {
			return err
		}
		w.charge(2*n, tcI64)
		for range n {
			for _, et := range []byte{kv >> 4, kv & 0x0f} {
				if err := w.value(et, depth+1, path); err != nil {
					return err
				}
			}
		}
		return nil
	case tcStruct:
		return w.structure(depth+1, path)
	}
	return fmt.Errorf("unknown Thrift type %d at byte %d", t, w.pos)
}

func (w *thriftWalk) charge(n int, elem byte) {
	per := int64(16)
	if elem == tcStruct {
		per = structBytes
	}
	w.charged += int64(n) * per
}

// pageHeaderRead is how many bytes are read for a page header at first;
// one with larger statistics is read again, up to maxPageHeader.
const (
	pageHeaderRead = 512
	maxPageHeader  = 1 << 20
)

// checkChunk walks the page headers of one column chunk before parquet-go
// reads it (see the budgets above): each header must be valid Thrift, its
// page's compressed bytes must lie within the chunk, and its decoded size
// and value count within the limits; pages of codecs whose decoders
// parquet-go lets grow without bound (gzip, zstd, brotli) or retry
// forever (LZ4_RAW) are decoded here once into a bounded buffer. It
// returns the memory the chunk's largest page takes decoded.
func checkChunk(name string, ra io.ReaderAt, size int64, md *format.ColumnMetaData, where string) (int64, error) {
	bad := func(format string, a ...any) error {
		return &FormatError{File: name, Part: where, Msg: fmt.Sprintf(format, a...)}
	}
	start := md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
		start = md.DictionaryPageOffset
	}
	end := start + md.TotalCompressedSize
	if start < 4 || md.TotalCompressedSize < 0 || end < start || end > size-8 {
		return 0, bad("its column chunk claims bytes %d to %d of a file of %d bytes", start, end, size)
	}
	var worst int64
	buf := make([]byte, pageHeaderRead)
	for pos := start; pos < end; {
		var hdr struct {
			typ, uncompressed, compressed, values, v2levels int64
			plain                                           bool // a v2 page stored uncompressed
		}
		hdr.values = -1
		var n int
		for want := pageHeaderRead; ; want *= 4 {
			k := int(min(int64(want), end-pos))
			if cap(buf) < k {
				buf = make([]byte, k)
			}
			buf = buf[:k]
			if _, err := ra.ReadAt(buf, pos); err != nil {
				return 0, bad("reading the page header at byte %d: %v", pos, err)
			}
			w := thriftWalk{b: buf, onInt: func(path []int16, v int64) {
				switch {
				case len(path) == 1 && path[0] == 1:
					hdr.typ = v
				case len(path) == 1 && path[0] == 2:
					hdr.uncompressed = v
				case len(path) == 1 && path[0] == 3:
					hdr.compressed = v
				case len(path) == 2 && path[1] == 1 && (path[0] == 5 || path[0] == 7 || path[0] == 8):
					hdr.values = max(hdr.values, v)
				case len(path) == 2 && path[0] == 8 && (path[1] == 5 || path[1] == 6):
					hdr.v2levels += max(v, 0)
				case len(path) == 2 && path[0] == 8 && path[1] == 7:
					hdr.plain = v == 0
				}
			}}
			err := w.structure(0, nil)
			if err == nil {
				n = w.pos
				break
			}
			if err != errThriftEnd || int64(k) == end-pos || k >= maxPageHeader {
				return 0, bad("the page header at byte %d: %v", pos, err)
			}
			hdr.typ, hdr.uncompressed, hdr.compressed, hdr.values, hdr.v2levels, hdr.plain = 0, 0, 0, -1, 0, false
		}
		left := end - pos - int64(n)
		switch {
		case hdr.compressed < 0 || hdr.compressed > left:
			return 0, bad("the page at byte %d claims %d bytes of data, but its column chunk has %d left", pos, hdr.compressed, left)
		case hdr.uncompressed < 0 || hdr.values < -1 || hdr.v2levels > hdr.compressed:
			return 0, bad("the page at byte %d claims %d decoded bytes, %d values and %d bytes of levels", pos, hdr.uncompressed, hdr.values, hdr.v2levels)
		case hdr.uncompressed > MaxParquetPageBytes:
			return 0, &LimitError{File: name, What: fmt.Sprintf("%s: the page at byte %d: its %d decoded bytes", where, pos, hdr.uncompressed), Limit: MaxParquetPageBytes, Unit: "bytes"}
		case hdr.values > MaxParquetPageValues:
			return 0, &LimitError{File: name, What: fmt.Sprintf("%s: the page at byte %d: its %d values", where, pos, hdr.values), Limit: MaxParquetPageValues, Unit: "values"}
		}
		data := pos + int64(n)
		if md.Codec != format.Uncompressed && !hdr.plain && hdr.compressed > 0 {
			if err := checkPageCodec(ra, md.Codec, data+hdr.v2levels, hdr.compressed-hdr.v2levels, hdr.uncompressed-hdr.v2levels); err != nil {
				return 0, bad("the page at byte %d (%s): %v", pos, md.Codec, err)
			}
		}
		worst = max(worst, hdr.compressed+hdr.uncompressed+16*max(hdr.values, 0))
		pos = data + hdr.compressed
	}
	return worst, nil
}

// checkPageCodec checks that a page's compressed bytes decode to at most
// want bytes, so that parquet-go's decoder cannot be led past it.
func checkPageCodec(ra io.ReaderAt, codec format.CompressionCodec, off, n, want int64) error {
	if want < 0 {
		return fmt.Errorf("levels longer than the page")
	}
	src := io.NewSectionReader(ra, off, n)
	switch codec {
	case format.Snappy:
		// The decoded length leads the block; klauspost's decoder
		// allocates it.
		var head [binary.MaxVarintLen64]byte
		k, _ := src.ReadAt(head[:min(n, int64(len(head)))], 0)
		v, m := binary.Uvarint(head[:k])
		if m <= 0 || int64(v) != want {
			return fmt.Errorf("its snappy block decodes to %d bytes, the header says %d", v, want)
		}
		return nil
	case format.Gzip, format.Zstd, format.Brotli:
		var r io.Reader
		var err error
		switch codec {
		case format.Gzip:
			var g *gzip.Reader
			if g, err = gzip.NewReader(src); err == nil {
				g.Multistream(true)
				r = g
			}
		case format.Zstd:
			var z *zstd.Decoder
			if z, err = zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20)); err == nil {
				defer z.Close()
				r = z
			}
		default:
			r = brotli.NewReader(src)
		}
		if err != nil {
			return err
		}
		got, err := io.Copy(io.Discard, io.LimitReader(r, want+1))
		if err != nil {
			return err
		}
		if got > want {
			return fmt.Errorf("it decodes to more than the %d bytes its header says", want)
		}
		if got != want {
			return fmt.Errorf("it decodes to %d bytes, its header says %d", got, want)
		}
		return nil
	case format.Lz4Raw:
		b := make([]byte, n)
		if _, err := src.ReadAt(b, 0); err != nil {
			return err
		}
		got, err := lz4.UncompressBlock(b, make([]byte, want))
		if err != nil {
			return fmt.Errorf("its LZ4 block does not decode to the %d bytes the header says", want)
		}
		if int64(got) != want {
			return fmt.Errorf("its LZ4 block decodes to %d bytes, the header says %d", got, want)
		}
		return nil
	}
	return fmt.Errorf("compression codec %s is not read by rq (none, snappy, gzip, zstd, brotli and lz4_raw are)", codec)
}
