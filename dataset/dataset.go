package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// DenseTransform says what happens to the dense features before they reach the model.
type DenseTransform int

const (
	// Log1p is the DLRM reference's log(x+1), with negative values clamped to 0 first.
	Log1p DenseTransform = iota
	// None hands the raw values over, converted to float32.
	None
)

func (t DenseTransform) String() string {
	switch t {
	case Log1p:
		return "log1p"
	case None:
		return "none"
	}
	return fmt.Sprintf("DenseTransform(%d)", int(t))
}

// ParseDenseTransform reads "log1p" or "none" (the spellings String gives).
func ParseDenseTransform(s string) (DenseTransform, error) {
	switch strings.ToLower(s) {
	case "log1p", "log", "":
		return Log1p, nil
	case "none", "raw":
		return None, nil
	}
	return 0, fmt.Errorf("unknown dense transform %q: want log1p or none", s)
}

// BadRows says what a reader does with a row holding a bad value.
type BadRows int

const (
	// Fail stops at the first bad row with an error naming it.
	Fail BadRows = iota
	// Skip drops bad rows, counts them in Stats and keeps the first reason.
	Skip
)

func (b BadRows) String() string {
	switch b {
	case Fail:
		return "fail"
	case Skip:
		return "skip"
	}
	return fmt.Sprintf("BadRows(%d)", int(b))
}

// Range selects source rows [Start, End), 0-based, in the file's own numbering
// (for TSV, row r is line r+1). End < 0 means "to the end of the file". The zero
// Range selects every row: an empty selection is never useful, so ParseRange
// refuses one and the zero value is free to mean "all".
type Range struct{ Start, End int64 }

// AllRows selects every row of the file.
var AllRows = Range{0, -1}

// IsAll reports whether r selects the whole file.
func (r Range) IsAll() bool { return r.Start == 0 && (r.End < 0 || r.End == 0) }

func (r Range) String() string {
	if r.IsAll() {
		return "0:"
	}
	if r.End < 0 {
		return fmt.Sprintf("%d:", r.Start)
	}
	return fmt.Sprintf("%d:%d", r.Start, r.End)
}

// ParseRange reads "START:END", "START:", ":END", ":" or "" (0-based, END
// exclusive, like a Python slice without negative indices).
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == ":" {
		return AllRows, nil
	}
	bad := func(why string) (Range, error) {
		return Range{}, fmt.Errorf("bad row range %q: %s (want START:END, START: or :END, 0-based, END exclusive)", s, why)
	}
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return bad("no ':'")
	}
	r := Range{0, -1}
	if a != "" {
		v, err := strconv.ParseInt(a, 10, 64)
		if err != nil || v < 0 {
			return bad(fmt.Sprintf("START %q is not a non-negative integer", a))
		}
		r.Start = v
	}
	if b != "" {
		v, err := strconv.ParseInt(b, 10, 64)
		if err != nil || v < 0 {
			return bad(fmt.Sprintf("END %q is not a non-negative integer", b))
		}
		if v <= r.Start {
			return bad("END must be greater than START")
		}
		r.End = v
	}
	return r, nil
}

// Options configure Open.
type Options struct {
	// Rows selects source rows; the zero value means all of them.
	Rows Range
	// BatchSize is the number of examples per batch (default 2048, at most MaxBatchSize).
	BatchSize int
	// DenseTransform is applied to dense features (default Log1p).
	DenseTransform DenseTransform
	// BadRows says whether a bad row stops the read (default) or is skipped.
	BadRows BadRows
	// NumDense is the model's number of dense features; 0 takes the file's
	// (npz) or 13 (TSV, the Criteo layout).
	NumDense int
	// TableRows holds the row count of each embedding table of the model; its
	// length is the number of sparse columns. Indices are checked against it
	// (npz) or reduced modulo it (TSV hashes). Nil takes the file's column
	// count (npz) or 26 (TSV) and checks only that indices fit in int64.
	TableRows []int64
	// Format is "npz", "tsv", "mlperf", "parquet", or "" to sniff it from
	// the path (a directory or day_N_dense.npy is mlperf), the first bytes
	// ("PAR1" is parquet) and the file name extension.
	Format string
	// Shard, when set, keeps only one shard of the selection's batches.
	Shard Shard
	// Columns names a Parquet file's label, dense and sparse columns in
	// place of label, I1.. and C1..; other formats have no names and
	// refuse it.
	Columns Columns
}

// MaxBatchSize bounds Options.BatchSize so a typo cannot ask for gigabytes.
const MaxBatchSize = 1 << 20

// maxColumns bounds the column counts a file may declare when the model does not
// say how many it expects, so a hostile header cannot make a batch buffer huge.
const maxColumns = 1 << 14

// DefaultBatchSize is the batch size when Options.BatchSize is 0.
const DefaultBatchSize = 2048

// Criteo's layout: label, I1..I13, C1..C26.
const (
	criteoDense  = 13
	criteoSparse = 26
)

// Stats counts what a reader has done so far.
type Stats struct {
	// Rows is the number of examples handed out in batches.
	Rows int64
	// Skipped is the number of bad rows dropped (BadRows Skip only).
	Skipped int64
	// FirstSkipped is the first dropped row's error, naming file and row or line.
	FirstSkipped string
}

// Reader hands out batches of examples in file order.
type Reader interface {
	// Next returns the next batch, or io.EOF after the last one. Every batch
	// is freshly allocated: callers may keep it. Only the last batch is short.
	Next() (*model.Batch, error)
	Stats() Stats
	// Close releases the file and any temporary file. It is safe to call twice.
	Close() error
}

// CountsReader is implemented by readers whose file records the table sizes
// (the npz `counts` array). Counts returns nil when the file has none.
type CountsReader interface {
	Counts() []int64
}

// RowsReader is implemented by readers that know the file's row count before
// reading (npz). TotalRows is the count in the file; SelectedRows the count
// the reader hands out (after --rows).
type RowsReader interface {
	TotalRows() int64
	SelectedRows() int64
}

// RowError is a bad value in one row. For TSV files Line is the 1-based line
// number; for npz files Row is the 0-based row (the --rows numbering) and Line is 0.
type RowError struct {
	File  string
	Line  int64
	Row   int64
	Where string // "X_cat column 3", "field I5 (dense 5)", ...
	Msg   string
}

func (e *RowError) Error() string {
	if e.Line > 0 {
		if e.Where == "" {
			return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
		}
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Where, e.Msg)
	}
	if e.Where == "" {
		return fmt.Sprintf("%s: row %d: %s", e.File, e.Row, e.Msg)
	}
	return fmt.Sprintf("%s: row %d (%s): %s", e.File, e.Row, e.Where, e.Msg)
}

// FormatError is a malformed or inconsistent file: File, the part at fault
// (an npz array name, when known) and what was expected.
type FormatError struct {
	File string
	Part string
	Msg  string
}

func (e *FormatError) Error() string {
	if e.Part != "" {
		return fmt.Sprintf("%s: %s: %s", e.File, e.Part, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// UnsupportedError is a well-formed file using something rq does not read
// (a big-endian or complex dtype, a newer npy version).
type UnsupportedError struct {
	File string
	Part string
	What string
}

func (e *UnsupportedError) Error() string {
	if e.Part != "" {
		return fmt.Sprintf("%s: %s: unsupported: %s", e.File, e.Part, e.What)
	}
	return fmt.Sprintf("%s: unsupported: %s", e.File, e.What)
}

// errClosed is returned by Next after Close.
var errClosed = errors.New("dataset: reader is closed")

// config is Options with the defaults filled in and checked.
type config struct {
	rows      Range // End < 0: to the end
	batch     int
	transform DenseTransform
	badRows   BadRows
	numDense  int // 0: take the file's
	tableRows []int64
	numSparse int // -1: take the file's
	columns   Columns
	// ctx stops long loops inside one Next (skipping malformed rows or
	// rows before --rows): a log of millions of bad rows must not hold a
	// stop signal for minutes.
	ctx context.Context
	// where, when set, says where a bad row is in the whole stream (a
	// file of a directory: "row N of DIR"), for errors and skip notes.
	where func(row int64) string
}

// rowError adds the stream's place of a bad row to its error (see
// config.where).
func (c config) rowError(err error) error {
	var re *RowError
	if c.where != nil && errors.As(err, &re) {
		re.Where = strings.TrimPrefix(re.Where+"; "+c.where(re.Row), "; ")
	}
	return err
}

func (o Options) resolve() (config, error) {
	c := config{rows: o.Rows, batch: o.BatchSize, transform: o.DenseTransform, badRows: o.BadRows,
		numDense: o.NumDense, tableRows: o.TableRows, numSparse: -1, columns: o.Columns, ctx: context.Background()}
	if c.rows.IsAll() {
		c.rows = AllRows
	}
	if c.rows.Start < 0 {
		return c, fmt.Errorf("row range %v: START is negative", o.Rows)
	}
	if c.rows.End >= 0 && c.rows.End < c.rows.Start {
		return c, fmt.Errorf("row range %d:%d: END is before START", o.Rows.Start, o.Rows.End)
	}
	if c.batch == 0 {
		c.batch = DefaultBatchSize
	}
	if err := o.Shard.check(); err != nil {
		return c, err
	}
	if c.batch < 0 || c.batch > MaxBatchSize {
		return c, fmt.Errorf("batch size %d: want 1..%d", o.BatchSize, MaxBatchSize)
	}
	if c.transform != Log1p && c.transform != None {
		return c, fmt.Errorf("unknown dense transform %d", int(c.transform))
	}
	if c.badRows != Fail && c.badRows != Skip {
		return c, fmt.Errorf("unknown bad-rows mode %d", int(c.badRows))
	}
	if c.numDense < 0 || c.numDense > maxColumns {
		return c, fmt.Errorf("number of dense features %d: want 0..%d", c.numDense, maxColumns)
	}
	if len(c.tableRows) > maxColumns {
		return c, fmt.Errorf("%d embedding tables: at most %d supported", len(c.tableRows), maxColumns)
	}
	for t, n := range c.tableRows {
		if n <= 0 {
			return c, fmt.Errorf("embedding table emb_l.%d has %d rows: table sizes must be positive", t, n)
		}
	}
	if c.tableRows != nil {
		c.numSparse = len(c.tableRows)
	}
	if err := c.columns.check(c.numDense, c.numSparse); err != nil {
		return c, err
	}
	return c, nil
}

// Open opens a click log for streaming. The format is Options.Format or, when
// that is empty, sniffed: a directory of *.parquet parts is one Parquet
// stream (see IsParquetDir), another directory or a day_N_dense.npy path is
// MLPerf dlrm-v2's layout (see IsMLPerf), a zip (npz) by its "PK" magic, Parquet
// by its "PAR1" magic, gzip and anything else as Criteo TSV, with a ".npz"
// or ".parquet" name forcing that format so a damaged file gets its own
// format's error rather than a TSV one.
func Open(path string, opts Options) (Reader, error) {
	return OpenContext(context.Background(), path, opts)
}

// OpenContext is Open whose reader stops, with ctx's error, when ctx is done:
// also inside one Next, in the loops that skip rows.
func OpenContext(ctx context.Context, path string, opts Options) (Reader, error) {
	batch := opts.BatchSize
	if batch == 0 {
		batch = DefaultBatchSize
	}
	if IsParquetDir(path, opts.Format) {
		// Parts read in name order as one stream, one open at a time.
		r, err := openParquetDir(ctx, path, opts)
		if err != nil {
			return nil, err
		}
		return Sharded(r, opts.Shard, batch), nil
	}
	if IsMLPerf(path, opts.Format) {
		// Three files, found from a directory or the dense file's name.
		r, err := openMLPerf(ctx, path, opts)
		if err != nil {
			return nil, err
		}
		return Sharded(r, opts.Shard, batch), nil
	}
	f, size, c, err := openInput(ctx, path)
	if err != nil {
		return nil, err
	}
	r, err := openFromContext(ctx, path, f, size, c, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return Sharded(r, opts.Shard, batch), nil
}

// openFrom is Open on any random-access source; name is used for errors and
// the extension. closer, if not nil, is closed by the reader's Close (but not
// when openFrom fails).
func openFrom(name string, ra io.ReaderAt, size int64, closer io.Closer, opts Options) (Reader, error) {
	return openFromContext(context.Background(), name, ra, size, closer, opts)
}

func openFromContext(ctx context.Context, name string, ra io.ReaderAt, size int64, closer io.Closer, opts Options) (Reader, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg.ctx = ctx
	format := strings.ToLower(opts.Format)
	if format == "" {
		format = sniff(name, ra)
	}
	if !cfg.columns.empty() && format != "parquet" {
		return nil, fmt.Errorf("%s: column names (label, dense, sparse) apply to Parquet only; this file is read as %s", name, format)
	}
	switch format {
	case "npz":
		return newNpzReader(name, ra, size, closer, cfg)
	case "tsv", "txt", "criteo":
		src, c, stop := sequential(ra, size, closer)
		r, err := newTSVReader(name, src, c, cfg)
		if err != nil {
			stop() // the read-ahead; closer stays the caller's
		}
		return r, err
	case "npy":
		return nil, &UnsupportedError{File: name, What: "a single .npy array; rq reads an .npz holding X_int, X_cat and y, or MLPerf dlrm-v2's day_N_dense.npy beside its day_N_labels.npy and day_N_sparse_multi_hot.npz"}
	case "parquet":
		return newParquetReader(name, ra, size, closer, cfg)
	case "mlperf":
		// Reached only from openFrom: the layout is three files, which
		// OpenContext finds by path.
		return nil, fmt.Errorf("%s: the mlperf format is three files: open the directory or day_N_dense.npy by path", name)
	}
	return nil, fmt.Errorf("%s: unknown data format %q: want npz, tsv, mlperf or parquet", name, opts.Format)
}

var (
	zipMagic  = []byte("PK\x03\x04")
	zipEmpty  = []byte("PK\x05\x06") // an archive with no entries
	gzipMagic = []byte{0x1f, 0x8b}
	npyMagic  = []byte("\x93NUMPY")
)

func sniff(name string, ra io.ReaderAt) string {
	var head [8]byte
	n, _ := ra.ReadAt(head[:], 0) // a short or failing read just sniffs less
	h := head[:n]
	switch {
	case bytes.HasPrefix(h, zipMagic), bytes.HasPrefix(h, zipEmpty):
		return "npz"
	case bytes.HasPrefix(h, npyMagic):
		return "npy"
	case bytes.HasPrefix(h, parquetMagic):
		return "parquet"
	}
	// A name that says npz or Parquet settles what no magic did, before
	// gzip's two bytes (which a damaged file may start with by chance):
	// a damaged file gets its own format's error, not a TSV one.
	switch {
	case strings.EqualFold(extOf(name), ".npz"):
		return "npz"
	case strings.EqualFold(extOf(name), ".parquet"):
		return "parquet"
	}
	return "tsv" // gzip (Criteo's .tsv.gz) and anything else
}

// denseValue applies the transform to one dense feature. Log1p mirrors the DLRM
// reference's torch.log(torch.tensor(X_int, dtype=torch.float) + 1): the value
// is first a float32, 1 is added in float32 (which rounds for x >= 2^24, as in
// PyTorch), and the log of that float32 is taken in float64 and rounded once to
// float32. For the integer inputs Criteo has this equals
// float32(math.Log1p(float64(x))), and it matches the reference's golden
// dense_in bit for bit (see TestGoldenDense).
func denseValue(x float32, t DenseTransform) float32 {
	if t == None {
		return x
	}
	if !(x > 0) { // negatives (and -0) clamp to 0; NaN is rejected before this
		return 0
	}
	if x < log1pTableSize {
		if i := int(x); float32(i) == x {
			return log1pTable[i]
		}
	}
	return logPlus1(x)
}

func logPlus1(x float32) float32 {
	y := float32(x + 1) // the explicit conversion forces float32 rounding, as torch's add
	return float32(math.Log(float64(y)))
}

// Criteo counts are mostly small integers: a table of their logs (exactly
// what logPlus1 gives) saves a math.Log per feature.
const log1pTableSize = 4096

var log1pTable = func() (t [log1pTableSize]float32) {
	for i := range t {
		t[i] = logPlus1(float32(i))
	}
	return t
}()

// newBatch allocates a batch for up to n examples: the per-table index and
// offset slices share one backing array each to keep allocations few.
func newBatch(n, numDense, numSparse int) *model.Batch {
	b := &model.Batch{
		NumDense: numDense,
		Dense:    make([]float32, n*numDense),
		Labels:   make([]float32, n),
		Indices:  make([][]int64, numSparse),
		Offsets:  make([][]int32, numSparse),
	}
	idx := make([]int64, n*numSparse)
	off := make([]int32, numSparse*(n+1))
	for t := range numSparse {
		b.Indices[t] = idx[t*n : (t+1)*n : (t+1)*n]
		b.Offsets[t] = off[t*(n+1) : (t+1)*(n+1) : (t+1)*(n+1)]
	}
	return b
}

// finishBatch trims b to its first n examples and writes the bag-of-one offsets.
func finishBatch(b *model.Batch, n int) {
	b.N = n
	b.Dense = b.Dense[:n*b.NumDense]
	b.Labels = b.Labels[:n]
	for t := range b.Indices {
		b.Indices[t] = b.Indices[t][:n]
		o := b.Offsets[t][:n+1]
		for i := range o {
			o[i] = int32(i)
		}
		b.Offsets[t] = o
	}
}

// recordSkip notes a skipped row in s.
func recordSkip(s *Stats, err error) {
	if s.Skipped == 0 {
		s.FirstSkipped = err.Error()
	}
	s.Skipped++
}

// quote shows a field in an error message, cut short if it is long garbage.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

// NoRowsError is the error for a reader that handed out no rows at all:
// when --bad-rows skip dropped every row it says so, with the first bad
// row, rather than blaming the row range.
func NoRowsError(rd Reader, what string) error {
	st := rd.Stats()
	if st.Skipped > 0 {
		return fmt.Errorf("no rows to %s: all %d rows read were malformed and skipped (--bad-rows skip); the first: %s", what, st.Skipped, st.FirstSkipped)
	}
	return fmt.Errorf("no rows to %s: the data has no rows in the selected range (check --rows and --shard)", what)
}

// checkEvery is how many rows a loop inside Next goes between looks at
// its context (a look costs about as much as one row).
const checkEvery = 1 << 14
