package dataset

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// MLPerf dlrm-v2's click logs are three files per day: day_N_dense.npy
// (float32 [rows, 13], already transformed), day_N_labels.npy (int32
// [rows, 1]) and day_N_sparse_multi_hot.npz, whose arrays "0".."25" are
// int32 [rows, h_k]: row i's bag for table k is the h_k ids of row i of
// array k (h_k = 1 for one-hot files).

// mlperfDenseName matches the dense file of one day; the other two files
// share its day_N prefix.
var mlperfDenseName = regexp.MustCompile(`^day_[0-9]+_dense\.npy$`)

const (
	mlperfDenseSuffix  = "_dense.npy"
	mlperfLabelsSuffix = "_labels.npy"
	mlperfSparseSuffix = "_sparse_multi_hot.npz"
)

// IsMLPerf reports whether path (with the --data-format value format) is
// read as MLPerf dlrm-v2's layout: format "mlperf", or no format and a
// day_N_dense.npy file or a directory that is not one of Parquet parts
// (IsParquetDir; a directory holding neither is this layout's error).
// Commands use it to default --dense-transform to none, since those dense
// features are already transformed.
func IsMLPerf(path, format string) bool {
	switch strings.ToLower(format) {
	case "mlperf":
		return true
	case "":
	default:
		return false
	}
	if mlperfDenseName.MatchString(baseName(path)) {
		return true
	}
	return isDir(path) && dirKind(path) != "parquet"
}

// An MLPerfDay is the three files of one day of MLPerf dlrm-v2's layout.
type MLPerfDay struct {
	Dense, Labels, Sparse string
}

// MLPerfDays finds the days to read from a directory (every
// day_N_dense.npy in it, in the order of N: day_10 after day_9) or from
// one day's dense file; each day's labels and sparse files are named
// after its dense file.
func MLPerfDays(path string) ([]MLPerfDay, error) {
	dense := []string{path}
	if isDir(path) {
		names, paths, err := dirEntries(path)
		if err != nil {
			return nil, err
		}
		type day struct {
			n    uint64
			path string
		}
		var found []day
		for i, name := range names {
			if !mlperfDenseName.MatchString(name) {
				continue
			}
			num := strings.TrimSuffix(strings.TrimPrefix(name, "day_"), mlperfDenseSuffix)
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil {
				return nil, &FormatError{File: paths[i], Msg: fmt.Sprintf("day number %s: %v", num, err)}
			}
			found = append(found, day{n, paths[i]})
		}
		if len(found) == 0 {
			return nil, &FormatError{File: path, Msg: "no day_N_dense.npy in this directory: want MLPerf dlrm-v2's day_N_dense.npy, day_N_labels.npy and day_N_sparse_multi_hot.npz, or *.parquet parts (or give an .npz, Parquet or TSV file)"}
		}
		sort.Slice(found, func(i, j int) bool {
			if found[i].n != found[j].n {
				return found[i].n < found[j].n
			}
			return found[i].path < found[j].path
		})
		dense = dense[:0]
		for i, d := range found {
			if i > 0 && d.n == found[i-1].n {
				return nil, &FormatError{File: path, Msg: fmt.Sprintf("two files for day %d: %s and %s", d.n, baseName(found[i-1].path), baseName(d.path))}
			}
			dense = append(dense, d.path)
		}
	}
	days := make([]MLPerfDay, len(dense))
	for i, d := range dense {
		prefix, ok := strings.CutSuffix(baseName(d), mlperfDenseSuffix)
		if !ok {
			return nil, &FormatError{File: d, Msg: "the MLPerf layout's dense file is named day_N_dense.npy (its labels and sparse files are found by that name)"}
		}
		days[i] = MLPerfDay{Dense: d, Labels: withBase(d, prefix+mlperfLabelsSuffix), Sparse: withBase(d, prefix+mlperfSparseSuffix)}
	}
	return days, nil
}

// mlperfSource is one of the three files: its path, contents and size.
type mlperfSource struct {
	name string
	ra   io.ReaderAt
	size int64
}

// mlperfReader streams one day: the two .npy files are read in place
// (sections of the file, or by column for Fortran order), the npz's arrays
// through the npz reader's sources (stored members in place, deflated
// ones inflated as they go, CRCs checked when read to the end).
type mlperfReader struct {
	cfg       config
	closers   []io.Closer
	closed    bool
	dense     *npzArray
	labels    *npzArray
	sparse    []*npzArray // by table
	densePath string
	labelPath string
	sparseZ   *npzReader // the npz helper: path, source, temporary files
	nd, ns    int
	total     int64
	next, end int64
	stats     Stats
	err       error
}

func (r *mlperfReader) TotalRows() int64    { return r.total }
func (r *mlperfReader) SelectedRows() int64 { return r.end - r.cfg.rows.Start }
func (r *mlperfReader) Stats() Stats        { return r.stats }

func (r *mlperfReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	for _, a := range append([]*npzArray{r.dense, r.labels}, r.sparse...) {
		if a != nil && a.src != nil {
			a.src.close()
		}
	}
	var first error
	if r.sparseZ != nil {
		first = r.sparseZ.Close() // its temporary files
	}
	for _, c := range r.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// openMLPerf opens the days of path (a directory or a dense file). Several
// days are one stream, in the order of their numbers; every day's files
// are opened and checked against the first day's shape before any row is
// read, then one day at a time is open.
func openMLPerf(ctx context.Context, path string, opts Options) (Reader, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !cfg.columns.empty() {
		return nil, fmt.Errorf("%s: column names (label, dense, sparse) apply to Parquet only; MLPerf dlrm-v2's files have none", path)
	}
	cfg.ctx = ctx
	days, err := MLPerfDays(path)
	if err != nil {
		return nil, err
	}
	if len(days) == 1 {
		return openMLPerfDay(days[0], cfg)
	}
	parts := make([]streamPart, len(days))
	var first string
	for i, d := range days {
		parts[i] = streamPart{name: d.Dense, open: func(c config) (Reader, error) { return openMLPerfDay(d, c) }}
		all := cfg
		all.rows = AllRows
		rd, err := openMLPerfDay(d, all)
		if err != nil {
			return nil, err
		}
		mr := rd.(*mlperfReader)
		parts[i].rows = mr.total
		shape := fmt.Sprintf("%d dense columns and %d sparse arrays", mr.nd, mr.ns)
		mr.Close()
		if i == 0 {
			first = shape
		} else if shape != first {
			return nil, &FormatError{File: d.Dense, Msg: fmt.Sprintf("the days of a directory must have one shape: %s here, %s in %s", shape, first, baseName(days[0].Dense))}
		}
	}
	return newStream(path, parts, cfg)
}

// openMLPerfDay opens the three files of one day.
func openMLPerfDay(day MLPerfDay, cfg config) (Reader, error) {
	var srcs [3]mlperfSource
	var files []io.Closer
	for i, p := range []string{day.Dense, day.Labels, day.Sparse} {
		ra, size, f, err := openInput(cfg.ctx, p)
		if err == nil {
			if isDir(p) {
				err = fmt.Errorf("%s is a directory", p)
			}
			if err == nil {
				srcs[i] = mlperfSource{name: p, ra: ra, size: size}
			}
			files = append(files, f)
		}
		if err != nil {
			for _, c := range files {
				c.Close()
			}
			return nil, fmt.Errorf("MLPerf dlrm-v2 layout (day_N_dense.npy, day_N_labels.npy, day_N_sparse_multi_hot.npz): %w", err)
		}
	}
	r, err := newMLPerfReader(srcs[0], srcs[1], srcs[2], cfg)
	if err != nil {
		for _, c := range files {
			c.Close()
		}
		return nil, err
	}
	r.closers = files
	return r, nil
}

func (r *mlperfReader) limitBatch(n int) { r.cfg.batch = n }

// newMLPerfReader checks the three files against each other and the model
// and positions them at the first selected row. On failure it releases what
// it made but not the sources.
func newMLPerfReader(dense, labels, sparse mlperfSource, cfg config) (_ *mlperfReader, err error) {
	r := &mlperfReader{cfg: cfg, densePath: dense.name, labelPath: labels.name}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.dense, err = openNpy(dense, "dense", 2); err != nil {
		return nil, err
	}
	if r.labels, err = openNpy(labels, "labels", 1); err != nil {
		return nil, err
	}
	if k := r.dense.h.dt.kind; k == 'b' {
		return nil, &UnsupportedError{File: dense.name, What: "dtype bool (dense features must be numbers)"}
	}
	r.nd = r.dense.cols
	if cfg.numDense > 0 && r.nd != cfg.numDense {
		return nil, &FormatError{File: dense.name, Msg: fmt.Sprintf("%d dense columns, the model has %d dense features", r.nd, cfg.numDense)}
	}
	if r.labels.rows != r.dense.rows {
		return nil, &FormatError{File: labels.name, Msg: fmt.Sprintf("%d rows but %s has %d", r.labels.rows, baseName(dense.name), r.dense.rows)}
	}
	r.total = r.dense.rows
	r.next, r.end = cfg.rows.Start, cfg.rows.End
	if r.end < 0 {
		r.end = r.total
	}
	if r.next > r.total || r.end > r.total {
		return nil, fmt.Errorf("%s: the row range %v goes beyond the end of the data, which has %d rows", dense.name, cfg.rows, r.total)
	}

	// The sparse npz: arrays "0".."K-1", read with the npz reader's code
	// (zip checks, headers, sources, CRCs).
	z := &npzReader{path: sparse.name, ra: sparse.ra, cfg: cfg, next: r.next, end: r.end}
	r.sparseZ = z
	zr, err := zip.NewReader(sparse.ra, sparse.size)
	if err != nil {
		return nil, &FormatError{File: sparse.name, Msg: "not a valid npz (zip) archive: " + err.Error()}
	}
	entries := map[string]*zip.File{}
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, ".npy")
		if _, dup := entries[name]; dup {
			return nil, &FormatError{File: sparse.name, Part: name, Msg: "the archive holds this array twice"}
		}
		entries[name] = zf
	}
	ns := cfg.numSparse
	if ns < 0 { // no model: the arrays "0", "1", ... present
		for ns = 0; entries[strconv.Itoa(ns)] != nil && ns < maxColumns; ns++ {
		}
	}
	if extra := entries[strconv.Itoa(ns)]; extra != nil && cfg.numSparse >= 0 {
		return nil, &FormatError{File: sparse.name, Msg: fmt.Sprintf("the archive has a sparse array %q but the model has only %d embedding tables", strconv.Itoa(ns), ns)}
	}
	r.ns = ns
	zfs := make([]*zip.File, ns)
	streams := make([]io.ReadCloser, ns)
	defer func() {
		for _, s := range streams {
			if s != nil {
				s.Close()
			}
		}
	}()
	for k := range ns {
		name := strconv.Itoa(k)
		if zfs[k] = entries[name]; zfs[k] == nil {
			return nil, &FormatError{File: sparse.name, Msg: fmt.Sprintf("no array %q: the model has %d embedding tables and the archive must hold arrays \"0\"..\"%d\"", name, ns, ns-1)}
		}
		a, rc, err := z.openArray(zfs[k], name, sparse.size)
		if err != nil {
			return nil, err
		}
		streams[k] = rc
		r.sparse = append(r.sparse, a)
		if a.h.dt.kind == 'b' {
			return nil, &UnsupportedError{File: sparse.name, Part: name, What: "dtype bool (ids must be integers)"}
		}
		if a.rows != r.total {
			return nil, &FormatError{File: sparse.name, Part: name, Msg: fmt.Sprintf("%d rows but %s has %d", a.rows, baseName(dense.name), r.total)}
		}
	}

	chunk := min(int64(cfg.batch), r.end-r.next)
	for i, a := range []*npzArray{r.dense, r.labels} {
		a.src = npySource(a, []mlperfSource{dense, labels}[i], r.next, r.end)
		a.buf = make([]byte, chunk*int64(a.rowBytes))
	}
	for k, a := range r.sparse {
		if err := z.startSource(a, zfs[k], streams[k]); err != nil {
			return nil, err
		}
		streams[k] = nil // owned by the source now
		a.buf = make([]byte, chunk*int64(a.rowBytes))
	}
	return r, nil
}

// openNpy parses a standalone .npy file's header and checks its size and
// shape: dims 2 wants [rows, cols]; dims 1 wants [rows] or [rows, 1].
func openNpy(s mlperfSource, what string, dims int) (*npzArray, error) {
	a := &npzArray{name: baseName(s.name)}
	h, err := readNpyHeader(io.NewSectionReader(s.ra, 0, s.size), s.size)
	if err != nil {
		var u errUnsupported
		if errors.As(err, &u) {
			return nil, &UnsupportedError{File: s.name, What: err.Error()}
		}
		return nil, &FormatError{File: s.name, Msg: err.Error()}
	}
	data, ok := h.dataBytes()
	if !ok || data != s.size-h.dataOff {
		return nil, &FormatError{File: s.name, Msg: fmt.Sprintf("header says shape %v of %s (%s bytes of data) but the file holds %d bytes of data (truncated?)",
			h.shape, h.dt, bytesOrOverflow(data, ok), s.size-h.dataOff)}
	}
	switch {
	case dims == 1 && len(h.shape) == 1:
		a.rows, a.cols = h.shape[0], 1
	case dims == 1 && len(h.shape) == 2 && h.shape[1] == 1:
		a.rows, a.cols = h.shape[0], 1
	case dims == 2 && len(h.shape) == 2:
		if h.shape[1] > maxColumns {
			return nil, &UnsupportedError{File: s.name, What: fmt.Sprintf("%d columns (at most %d)", h.shape[1], maxColumns)}
		}
		a.rows, a.cols = h.shape[0], int(h.shape[1])
	default:
		want := "2-D [rows, columns]"
		if dims == 1 {
			want = "[rows, 1] or [rows]"
		}
		return nil, &FormatError{File: s.name, Msg: fmt.Sprintf("%s array of shape %v, want %s", what, h.shape, want)}
	}
	if a.cols <= 1 || a.rows <= 1 {
		h.fortran = false // the two layouts coincide
	}
	a.h = h
	a.rowBytes = a.cols * h.dt.size
	return a, nil
}

// npySource reads rows [start, end) of a standalone .npy in place.
func npySource(a *npzArray, f mlperfSource, start, end int64) rowSource {
	item, rb := int64(a.h.dt.size), int64(a.rowBytes)
	if !a.h.fortran {
		return &streamSource{r: section(f.ra, a.h.dataOff+start*rb, (end-start)*rb), rowBytes: a.rowBytes, file: f.name, name: a.name, pos: start}
	}
	return &columnSource{ra: f.ra, base: a.h.dataOff + start*item, stride: a.rows * item, cols: a.cols, item: a.h.dt.size, file: f.name, name: a.name, pos: start}
}

func (r *mlperfReader) Next() (*model.Batch, error) {
	if r.closed {
		return nil, errClosed
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.next >= r.end {
		return nil, io.EOF
	}
	capN := int(min(int64(r.cfg.batch), r.end-r.next))
	b := &model.Batch{
		NumDense: r.nd,
		Dense:    make([]float32, capN*r.nd),
		Labels:   make([]float32, capN),
		Indices:  make([][]int64, r.ns),
		Offsets:  make([][]int32, r.ns),
	}
	for k, a := range r.sparse {
		b.Indices[k] = make([]int64, capN*a.cols)
	}
	n, first, err := fillRows(r.cfg, append([]*npzArray{r.dense, r.labels}, r.sparse...), &r.next, r.end, capN, &r.stats,
		func(n, i int, row int64) error { return r.decodeRow(b, n, i, row) })
	if err != nil {
		r.err = err
		return nil, err
	}
	b.Row = first
	if n == 0 {
		return nil, io.EOF
	}
	b.N = n
	b.Dense = b.Dense[:n*r.nd]
	b.Labels = b.Labels[:n]
	for k, a := range r.sparse {
		h := a.cols
		b.Indices[k] = b.Indices[k][:n*h]
		o := make([]int32, n+1)
		for i := range o {
			o[i] = int32(i * h)
		}
		b.Offsets[k] = o
	}
	r.stats.Rows += int64(n)
	return b, nil
}

// decodeRow converts row i of the current chunks into example n of b.
func (r *mlperfReader) decodeRow(b *model.Batch, n, i int, row int64) error {
	d := r.dense
	src := d.buf[i*d.rowBytes : (i+1)*d.rowBytes]
	dense := b.Dense[n*r.nd : (n+1)*r.nd]
	dt := d.h.dt
	for j := range dense {
		v, ok := dt.float32At(src[j*dt.size:])
		if !ok {
			_, _, fv := dt.raw(src[j*dt.size:])
			return &RowError{File: r.densePath, Row: row, Where: fmt.Sprintf("column %d", j), Msg: fmt.Sprintf("value %v is not a finite float32", fv)}
		}
		dense[j] = denseValue(v, r.cfg.transform)
	}
	for k, a := range r.sparse {
		h, st := a.cols, a.h.dt
		src := a.buf[i*a.rowBytes : (i+1)*a.rowBytes]
		dst := b.Indices[k][n*h : (n+1)*h]
		for j := range dst {
			v, msg := st.indexAt(src[j*st.size:])
			if msg == "" && r.cfg.tableRows != nil && v >= r.cfg.tableRows[k] {
				msg = fmt.Sprintf("id %d is beyond embedding table %d, which has %d rows", v, k, r.cfg.tableRows[k])
			}
			if msg != "" {
				return &RowError{File: r.sparseZ.path, Row: row, Where: fmt.Sprintf("array %q column %d", a.name, j), Msg: msg}
			}
			dst[j] = v
		}
	}
	l, msg := r.labels.h.dt.labelAt(r.labels.buf[i*r.labels.rowBytes:])
	if msg != "" {
		return &RowError{File: r.labelPath, Row: row, Msg: msg}
	}
	b.Labels[n] = l
	return nil
}
