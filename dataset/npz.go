package dataset

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/rqtools/rq/model"
)

// fortranMemLimit is the largest selection of a Fortran-order (column-major)
// array held in memory; a larger one is spilled to a temporary file. A
// variable so tests can exercise the spill path on small files.
var fortranMemLimit int64 = 256 << 20

// maxDeflateRatio is deflate's best possible compression ratio (a 258-byte
// match per ~2 bits is about 1032:1), so a zip entry claiming to inflate to
// more than this times its compressed size is lying, and the claim must not
// be trusted when sizing anything.
const maxDeflateRatio = 1032

// rowSource hands out consecutive rows of one array in row-major order.
type rowSource interface {
	// read fills dst (n rows of rowBytes) with the next n rows.
	read(n int, dst []byte) error
	close() error
}

// npzArray is one array of the archive.
type npzArray struct {
	name     string // "X_int", shown in errors
	h        npyHeader
	rows     int64
	cols     int // 1 for a 1-D array
	rowBytes int
	src      rowSource
	buf      []byte // the current chunk, row-major
}

type npzReader struct {
	path      string
	ra        io.ReaderAt
	closer    io.Closer // nil: nothing to close
	closed    bool
	cfg       config
	nd, ns    int
	xint      *npzArray
	xcat      *npzArray
	y         *npzArray
	counts    []int64
	total     int64 // rows in the file
	next, end int64 // source rows still to hand out: [next, end)
	stats     Stats
	err       error // sticky
	tmp       []*os.File
}

func (r *npzReader) Counts() []int64  { return r.counts }
func (r *npzReader) TotalRows() int64 { return r.total }

// SelectedRows is how many rows the reader hands out in all (the --rows selection).
func (r *npzReader) SelectedRows() int64 { return r.end - r.cfg.rows.Start }
func (r *npzReader) Stats() Stats        { return r.stats }

func (r *npzReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var first error
	for _, a := range []*npzArray{r.xint, r.xcat, r.y} {
		if a != nil && a.src != nil {
			// An inflater's Close repeats any corruption it met, which Next
			// has already reported (or which lies past the selection).
			a.src.close()
		}
	}
	for _, t := range r.tmp {
		t.Close()
		if err := os.Remove(t.Name()); err != nil && first == nil {
			first = err
		}
	}
	r.tmp = nil
	if r.closer != nil {
		if err := r.closer.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newNpzReader reads an npz from ra (size bytes). On failure it releases what
// it made but leaves closer to the caller.
func newNpzReader(path string, ra io.ReaderAt, size int64, closer io.Closer, cfg config) (_ *npzReader, err error) {
	r := &npzReader{path: path, ra: ra, cfg: cfg}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return nil, &FormatError{File: path, Msg: "not a valid npz (zip) archive: " + err.Error()}
	}
	entries := map[string]*zip.File{}
	var names []string
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, ".npy")
		if _, dup := entries[name]; dup {
			return nil, &FormatError{File: path, Part: name, Msg: "the archive holds this array twice"}
		}
		entries[name] = zf
		names = append(names, name)
	}
	sort.Strings(names)
	get := func(name string) (*zip.File, error) {
		zf := entries[name]
		if zf == nil {
			return nil, &FormatError{File: path, Msg: fmt.Sprintf("no %s array (the archive holds %s); want X_int, X_cat and y as the DLRM reference's preprocessing writes them",
				name, listOrNone(names))}
		}
		return zf, nil
	}
	var zfs [3]*zip.File
	for i, name := range []string{"X_int", "X_cat", "y"} {
		if zfs[i], err = get(name); err != nil {
			return nil, err
		}
	}
	// Parse all three headers before opening any data stream, so shape errors
	// come first and cheaply.
	arrays := make([]*npzArray, 3)
	streams := make([]io.ReadCloser, 3)
	defer func() {
		for _, s := range streams {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i, name := range []string{"X_int", "X_cat", "y"} {
		a, rc, err := r.openArray(zfs[i], name, size)
		if err != nil {
			return nil, err
		}
		arrays[i], streams[i] = a, rc
	}
	r.xint, r.xcat, r.y = arrays[0], arrays[1], arrays[2]
	if zf := entries["counts"]; zf != nil {
		r.counts = readCounts(r, zf, size)
	}

	for _, a := range arrays {
		if a.h.dt.kind == 'b' && a.name != "y" {
			return nil, &UnsupportedError{File: path, Part: a.name, What: "dtype bool (features must be integers or floats)"}
		}
	}
	if n := r.xint.rows; n != r.xcat.rows || n != r.y.rows {
		return nil, &FormatError{File: path, Msg: rowMismatch(r.xint, r.xcat, r.y)}
	}
	r.total = r.xint.rows
	r.nd, r.ns = r.xint.cols, r.xcat.cols
	if cfg.numDense > 0 && r.nd != cfg.numDense {
		return nil, &FormatError{File: path, Msg: fmt.Sprintf("X_int has %d columns, the model has %d dense features", r.nd, cfg.numDense)}
	}
	if cfg.numSparse >= 0 && r.ns != cfg.numSparse {
		return nil, &FormatError{File: path, Msg: fmt.Sprintf("X_cat has %d columns, the model has %d embedding tables", r.ns, cfg.numSparse)}
	}
	r.next, r.end = cfg.rows.Start, cfg.rows.End
	if r.end < 0 {
		r.end = r.total
	}
	if r.next > r.total || r.end > r.total {
		return nil, fmt.Errorf("%s: the row range %v goes beyond the end of the file, which has %d rows", path, cfg.rows, r.total)
	}
	chunk := int64(cfg.batch)
	if sel := r.end - r.next; sel < chunk {
		chunk = sel
	}
	for i, a := range arrays {
		if err := r.startSource(a, zfs[i], streams[i]); err != nil {
			return nil, err
		}
		streams[i] = nil // owned by the source now
		a.buf = make([]byte, chunk*int64(a.rowBytes))
	}
	r.closer = closer
	return r, nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

func rowMismatch(a, b, c *npzArray) string {
	switch {
	case a.rows == b.rows:
		return fmt.Sprintf("%s has %d rows but %s and %s have %d", c.name, c.rows, a.name, b.name, a.rows)
	case a.rows == c.rows:
		return fmt.Sprintf("%s has %d rows but %s and %s have %d", b.name, b.rows, a.name, c.name, a.rows)
	case b.rows == c.rows:
		return fmt.Sprintf("%s has %d rows but %s and %s have %d", a.name, a.rows, b.name, c.name, b.rows)
	}
	return fmt.Sprintf("the arrays disagree on the row count: %s has %d, %s has %d, %s has %d",
		a.name, a.rows, b.name, b.rows, c.name, c.rows)
}

// entryBounds checks a zip entry's claimed sizes against the file before any
// of them is used, and returns where its data starts.
func (r *npzReader) entryBounds(zf *zip.File, name string, fileSize int64) (int64, error) {
	fail := func(msg string) (int64, error) { return 0, &FormatError{File: r.path, Part: name, Msg: msg} }
	off, err := zf.DataOffset()
	if err != nil {
		return fail("bad zip entry: " + err.Error())
	}
	csize, usize := zf.CompressedSize64, zf.UncompressedSize64
	if off < 0 || csize > uint64(fileSize) || uint64(off) > uint64(fileSize)-csize {
		return fail(fmt.Sprintf("zip entry claims %d bytes at offset %d, beyond the end of the %d-byte file", csize, off, fileSize))
	}
	switch zf.Method {
	case zip.Store:
		if csize != usize {
			return fail(fmt.Sprintf("stored zip entry has compressed size %d but uncompressed size %d", csize, usize))
		}
	case zip.Deflate:
		if usize/maxDeflateRatio > csize+1 {
			return fail(fmt.Sprintf("zip entry claims to inflate %d bytes to %d, more than deflate can", csize, usize))
		}
	default:
		return 0, &UnsupportedError{File: r.path, Part: name, What: fmt.Sprintf("zip compression method %d (rq reads stored and deflated entries)", zf.Method)}
	}
	return off, nil
}

// openArray parses the header of one array and checks its shape against the
// entry's size. For a deflated entry it returns the inflating stream,
// positioned at the data; for a stored one, nil (data is read in place).
func (r *npzReader) openArray(zf *zip.File, name string, fileSize int64) (a *npzArray, rc io.ReadCloser, err error) {
	a = &npzArray{name: name}
	off, err := r.entryBounds(zf, name, fileSize)
	if err != nil {
		return nil, nil, err
	}
	usize := int64(zf.UncompressedSize64)
	var hr io.Reader
	if zf.Method == zip.Store {
		hr = io.NewSectionReader(r.ra, off, usize)
	} else {
		if rc, err = zf.Open(); err != nil {
			return nil, nil, &FormatError{File: r.path, Part: name, Msg: "bad zip entry: " + err.Error()}
		}
		hr = rc
	}
	defer func() {
		if err != nil && rc != nil {
			rc.Close()
			rc = nil
		}
	}()
	a.h, err = readNpyHeader(hr, usize)
	if err != nil {
		var u errUnsupported
		if errors.As(err, &u) {
			return nil, nil, &UnsupportedError{File: r.path, Part: name, What: err.Error()}
		}
		return nil, nil, &FormatError{File: r.path, Part: name, Msg: err.Error()}
	}
	h := &a.h
	data, ok := h.dataBytes()
	if !ok || data != usize-h.dataOff {
		return nil, nil, &FormatError{File: r.path, Part: name, Msg: fmt.Sprintf(
			"header says shape %v of %s (%s bytes of data) but the entry holds %d bytes of data",
			h.shape, h.dt, bytesOrOverflow(data, ok), usize-h.dataOff)}
	}
	switch {
	case name == "y" && len(h.shape) == 1:
		a.rows, a.cols = h.shape[0], 1
	case name == "y" && len(h.shape) == 2 && h.shape[1] == 1:
		a.rows, a.cols = h.shape[0], 1
	case name != "y" && len(h.shape) == 2:
		if h.shape[1] > maxColumns {
			return nil, nil, &UnsupportedError{File: r.path, Part: name, What: fmt.Sprintf("%d columns (at most %d)", h.shape[1], maxColumns)}
		}
		a.rows, a.cols = h.shape[0], int(h.shape[1])
	default:
		want := "2-D [rows, columns]"
		if name == "y" {
			want = "1-D [rows]"
		}
		return nil, nil, &FormatError{File: r.path, Part: name, Msg: fmt.Sprintf("shape %v, want %s", h.shape, want)}
	}
	a.rowBytes = a.cols * h.dt.size
	if a.cols <= 1 || a.rows <= 1 {
		h.fortran = false // the two layouts coincide
	}
	return a, rc, nil
}

func bytesOrOverflow(n int64, ok bool) string {
	if !ok {
		return "more than 2^63"
	}
	return fmt.Sprint(n)
}

// readCounts reads the optional `counts` array (table sizes). It is only
// informative, so a malformed one is ignored rather than failing the read.
func readCounts(r *npzReader, zf *zip.File, fileSize int64) []int64 {
	off, err := r.entryBounds(zf, "counts", fileSize)
	if err != nil {
		return nil
	}
	usize := int64(zf.UncompressedSize64)
	var hr io.Reader
	if zf.Method == zip.Store {
		hr = io.NewSectionReader(r.ra, off, usize)
	} else {
		rc, err := zf.Open()
		if err != nil {
			return nil
		}
		defer rc.Close()
		hr = rc
	}
	h, err := readNpyHeader(hr, usize)
	if err != nil || len(h.shape) != 1 || h.shape[0] > maxColumns || (h.dt.kind != 'i' && h.dt.kind != 'u') {
		return nil
	}
	n := int(h.shape[0])
	if int64(n*h.dt.size) != usize-h.dataOff {
		return nil
	}
	buf := make([]byte, n*h.dt.size)
	if _, err := io.ReadFull(hr, buf); err != nil {
		return nil
	}
	out := make([]int64, n)
	for i := range out {
		v, msg := h.dt.indexAt(buf[i*h.dt.size:])
		if msg != "" {
			return nil
		}
		out[i] = v
	}
	return out
}

// startSource positions array a at the first selected row.
func (r *npzReader) startSource(a *npzArray, zf *zip.File, rc io.ReadCloser) error {
	start, end := r.next, r.end
	item := int64(a.h.dt.size)
	rb := int64(a.rowBytes)
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return &FormatError{File: r.path, Part: a.name, Msg: err.Error()}
		}
		data := off + a.h.dataOff
		if !a.h.fortran {
			src := &streamSource{r: section(r.ra, data+start*rb, (end-start)*rb), rowBytes: a.rowBytes, file: r.path, name: a.name, pos: start}
			if end == a.rows && storedCRCSet(zf) {
				// As for a deflated entry, whose prefix must be inflated
				// anyway: the CRC covers the whole entry, so the bytes
				// before the selection are read once to start it.
				src.crc = crc32.NewIEEE()
				if err := r.hashSection(src.crc, off, a.h.dataOff+start*rb); err != nil {
					if r.cfg.ctx.Err() != nil {
						return err
					}
					return &FormatError{File: r.path, Part: a.name, Msg: fmt.Sprintf("reading the entry for its CRC: %v", err)}
				}
				src.wantCRC, src.checkEOF = zf.CRC32, true
			}
			a.src = src
			return nil
		}
		// Column-major: a deflated entry is always inflated whole (and its
		// CRC checked); check a stored one's CRC the same way, in one
		// sequential pass, before its columns are read in place.
		if storedCRCSet(zf) {
			h := crc32.NewIEEE()
			if err := r.hashSection(h, off, int64(zf.UncompressedSize64)); err != nil {
				if r.cfg.ctx.Err() != nil {
					return err
				}
				return &FormatError{File: r.path, Part: a.name, Msg: fmt.Sprintf("reading the entry for its CRC: %v", err)}
			}
			if h.Sum32() != zf.CRC32 {
				return &FormatError{File: r.path, Part: a.name, Msg: "stored entry: " + zipErr(zip.ErrChecksum).Error()}
			}
		}
		a.src = &columnSource{ra: r.ra, base: data + start*item, stride: a.rows * item, cols: a.cols, item: a.h.dt.size, file: r.path, name: a.name, pos: start}
		return nil
	}
	fail := func(what string, err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &FormatError{File: r.path, Part: a.name, Msg: fmt.Sprintf("data ends early while %s (truncated file?)", what)}
		}
		return &FormatError{File: r.path, Part: a.name, Msg: fmt.Sprintf("%s: %v", what, zipErr(err))}
	}
	if !a.h.fortran {
		if n, err := io.CopyN(io.Discard, rc, start*rb); err != nil {
			rc.Close()
			return fail(fmt.Sprintf("skipping to row %d (at row %d)", start, n/rb), err)
		}
		a.src = &streamSource{r: rc, c: rc, rowBytes: a.rowBytes, file: r.path, name: a.name, pos: start, checkEOF: end == a.rows}
		return nil
	}
	// Column-major and compressed: the selected rows are a slice of every
	// column, spread over the whole stream. Inflate it once, keeping only
	// those slices, in memory or in a temporary file.
	defer rc.Close()
	sel := (end - start) * item
	var w io.Writer
	var mem *bytes.Buffer
	var tmp *os.File
	if sel*int64(a.cols) <= fortranMemLimit {
		// bytes.Buffer grows with the data actually inflated, so a lying
		// header costs no more memory than the stream really holds.
		mem = &bytes.Buffer{}
		w = mem
	} else {
		var err error
		if tmp, err = os.CreateTemp("", "rq-npz-*.bin"); err != nil {
			return fmt.Errorf("%s: %s: spilling the column-major array to a temporary file: %w", r.path, a.name, err)
		}
		r.tmp = append(r.tmp, tmp)
		w = tmp
	}
	for c := 0; c < a.cols; c++ {
		if _, err := io.CopyN(io.Discard, rc, start*item); err != nil {
			return fail(fmt.Sprintf("reading column %d", c), err)
		}
		if _, err := io.CopyN(w, rc, sel); err != nil {
			return fail(fmt.Sprintf("reading column %d", c), err)
		}
		if _, err := io.CopyN(io.Discard, rc, (a.rows-end)*item); err != nil {
			return fail(fmt.Sprintf("reading column %d", c), err)
		}
	}
	if err := expectEOF(rc); err != nil {
		return &FormatError{File: r.path, Part: a.name, Msg: err.Error()}
	}
	var ra io.ReaderAt = tmp
	if mem != nil {
		ra = bytes.NewReader(mem.Bytes())
	}
	a.src = &columnSource{ra: ra, base: 0, stride: sel, cols: a.cols, item: a.h.dt.size, file: r.path, name: a.name, pos: start}
	return nil
}

// storedCRCSet reports whether a stored entry's CRC is to be checked: as
// archive/zip does for deflated entries (and Python's zipfile for all), a
// CRC of 0 without a data descriptor means the writer did not record one.
func storedCRCSet(zf *zip.File) bool {
	const dataDescriptor = 0x8
	return zf.CRC32 != 0 || zf.Flags&dataDescriptor != 0
}

// hashSection feeds n bytes of the file from off to h, looking at the
// reader's context between chunks (a prefix can be gigabytes). A stop is
// returned as the context's error itself.
func (r *npzReader) hashSection(h hash.Hash32, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for done := int64(0); done < n; {
		if err := r.cfg.ctx.Err(); err != nil {
			return err
		}
		k := int(min(int64(len(buf)), n-done))
		m, err := r.ra.ReadAt(buf[:k], off+done)
		if m < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		h.Write(buf[:k])
		done += int64(k)
	}
	return nil
}

// expectEOF reads past the end of a zip entry's data, which is when
// archive/zip checks the CRC.
func expectEOF(rc io.Reader) error {
	var one [1]byte
	n, err := rc.Read(one[:])
	for n == 0 && err == nil {
		n, err = rc.Read(one[:])
	}
	if n > 0 {
		return errors.New("the entry has data after the array")
	}
	if err != io.EOF {
		return fmt.Errorf("at the end of the data: %v", zipErr(err))
	}
	return nil
}

// zipErr rewords archive/zip's integrity errors, whose own text ("not a
// valid zip file") does not say what went wrong with an entry.
func zipErr(err error) error {
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return fmt.Errorf("CRC mismatch, the archive is corrupt (%w)", err)
	case errors.Is(err, zip.ErrFormat):
		return fmt.Errorf("the entry inflates to more bytes than its zip header says, the archive is corrupt (%w)", err)
	}
	return err
}

// streamSource reads row-major data sequentially.
type streamSource struct {
	r        io.Reader
	c        io.Closer // nil for a section of the file itself
	rowBytes int
	file     string
	name     string
	pos      int64 // next row
	checkEOF bool  // the selection ends at the array's end: verify the CRC there
	// A stored entry read to its end: the CRC of the entry so far (its
	// bytes before the selection, then every row read) and the recorded one.
	crc     hash.Hash32
	wantCRC uint32
}

func (s *streamSource) read(n int, dst []byte) error {
	if _, err := io.ReadFull(s.r, dst[:n*s.rowBytes]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return &FormatError{File: s.file, Part: s.name, Msg: fmt.Sprintf("data ends early in rows %d..%d (truncated file?)", s.pos, s.pos+int64(n)-1)}
		}
		return &FormatError{File: s.file, Part: s.name, Msg: fmt.Sprintf("reading rows %d..%d: %v", s.pos, s.pos+int64(n)-1, zipErr(err))}
	}
	if s.crc != nil {
		s.crc.Write(dst[:n*s.rowBytes])
	}
	s.pos += int64(n)
	return nil
}

// finish is called once the last selected row has been read.
func (s *streamSource) finish() error {
	if s.checkEOF && s.crc != nil {
		s.checkEOF = false
		if s.crc.Sum32() != s.wantCRC {
			return &FormatError{File: s.file, Part: s.name, Msg: "at the end of the data: stored entry: " + zipErr(zip.ErrChecksum).Error()}
		}
		return nil
	}
	if !s.checkEOF || s.c == nil {
		return nil
	}
	s.checkEOF = false
	if err := expectEOF(s.r); err != nil {
		return &FormatError{File: s.file, Part: s.name, Msg: err.Error()}
	}
	return nil
}

func (s *streamSource) close() error {
	if s.c != nil {
		return s.c.Close()
	}
	return nil
}

// columnSource reads rows out of column-major data through ReadAt: column c of
// relative row i is at base + c*stride + i*item.
type columnSource struct {
	ra      io.ReaderAt
	base    int64
	stride  int64
	cols    int
	item    int
	file    string
	name    string
	pos     int64 // next row (source numbering)
	rel     int64 // next row relative to base
	scratch []byte
}

func (s *columnSource) read(n int, dst []byte) error {
	need := n * s.item
	if cap(s.scratch) < need {
		s.scratch = make([]byte, need)
	}
	col := s.scratch[:need]
	rb := s.cols * s.item
	for c := 0; c < s.cols; c++ {
		if _, err := s.ra.ReadAt(col, s.base+int64(c)*s.stride+s.rel*int64(s.item)); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return &FormatError{File: s.file, Part: s.name, Msg: fmt.Sprintf("data ends early in column %d, rows %d..%d (truncated file?)", c, s.pos, s.pos+int64(n)-1)}
			}
			return &FormatError{File: s.file, Part: s.name, Msg: fmt.Sprintf("reading column %d, rows %d..%d: %v", c, s.pos, s.pos+int64(n)-1, err)}
		}
		for i := 0; i < n; i++ {
			copy(dst[i*rb+c*s.item:i*rb+(c+1)*s.item], col[i*s.item:(i+1)*s.item])
		}
	}
	s.pos += int64(n)
	s.rel += int64(n)
	return nil
}

func (s *columnSource) close() error { return nil }

// fillRows is the chunk loop of the readers backed by arrays of rows (npz,
// MLPerf's layout): up to capN rows from *next (not past end) are read, k
// at a time, into every array's buffer (stream sources are finished, their
// CRCs checked, at end), and decode(n, i, row) turns row i of the chunk,
// source row row, into example n. A bad row is skipped and counted under
// --bad-rows skip. It returns the examples filled and the first one's
// source row; *next moves past what was read. ctx is looked at before
// every chunk.
func fillRows(cfg config, arrays []*npzArray, next *int64, end int64, capN int, stats *Stats, decode func(n, i int, row int64) error) (n int, first int64, err error) {
	for n < capN && *next < end {
		if err := cfg.ctx.Err(); err != nil {
			return 0, 0, err
		}
		k := int(min(int64(capN-n), end-*next))
		for _, a := range arrays {
			if err := a.src.read(k, a.buf); err != nil {
				return 0, 0, err
			}
			if *next+int64(k) == end {
				if s, ok := a.src.(*streamSource); ok {
					if err := s.finish(); err != nil {
						return 0, 0, err
					}
				}
			}
		}
		for i := 0; i < k; i++ {
			row := *next + int64(i)
			if err := decode(n, i, row); err != nil {
				err = cfg.rowError(err)
				if cfg.badRows == Skip {
					recordSkip(stats, err)
					continue
				}
				return 0, 0, err
			}
			if n == 0 {
				first = row
			}
			n++
		}
		*next += int64(k)
	}
	return n, first, nil
}

func (r *npzReader) Next() (*model.Batch, error) {
	if r.closed {
		return nil, errClosed
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.next >= r.end {
		return nil, io.EOF
	}
	capN := int64(r.cfg.batch)
	if left := r.end - r.next; left < capN {
		capN = left
	}
	b := newBatch(int(capN), r.nd, r.ns)
	n, first, err := fillRows(r.cfg, []*npzArray{r.xint, r.xcat, r.y}, &r.next, r.end, int(capN), &r.stats,
		func(n, i int, row int64) error { return r.decodeRow(b, n, i, row) })
	if err != nil {
		r.err = err
		return nil, err
	}
	b.Row = first
	if n == 0 {
		return nil, io.EOF
	}
	finishBatch(b, n)
	r.stats.Rows += int64(n)
	return b, nil
}

// decodeRow converts row i of the current chunks into example n of b.
func (r *npzReader) decodeRow(b *model.Batch, n, i int, row int64) error {
	xi, xc, y := r.xint, r.xcat, r.y
	di, dc, dy := xi.h.dt, xc.h.dt, y.h.dt
	src := xi.buf[i*xi.rowBytes : (i+1)*xi.rowBytes]
	dense := b.Dense[n*r.nd : (n+1)*r.nd]
	if di.kind == 'i' && di.size == 4 { // the reference's int32 X_int: the common case, kept fast
		for j := range dense {
			dense[j] = denseValue(float32(int32(binary.LittleEndian.Uint32(src[j*4:]))), r.cfg.transform)
		}
	} else {
		if err := r.decodeDense(src, dense, row); err != nil {
			return err
		}
	}
	src = xc.buf[i*xc.rowBytes : (i+1)*xc.rowBytes]
	for t := 0; t < r.ns; t++ {
		v, msg := dc.indexAt(src[t*dc.size:])
		if msg == "" && r.cfg.tableRows != nil && v >= r.cfg.tableRows[t] {
			msg = fmt.Sprintf("index %d is beyond table emb_l.%d with %d rows", v, t, r.cfg.tableRows[t])
		}
		if msg != "" {
			return &RowError{File: r.path, Row: row, Where: fmt.Sprintf("X_cat column %d", t), Msg: msg}
		}
		b.Indices[t][n] = v
	}
	l, msg := dy.labelAt(y.buf[i*y.rowBytes:])
	if msg != "" {
		return &RowError{File: r.path, Row: row, Where: "y", Msg: msg}
	}
	b.Labels[n] = l
	return nil
}

func (r *npzReader) decodeDense(src []byte, dense []float32, row int64) error {
	di := r.xint.h.dt
	for j := range dense {
		v, ok := di.float32At(src[j*di.size:])
		if !ok {
			_, _, fv := di.raw(src[j*di.size:])
			return &RowError{File: r.path, Row: row, Where: fmt.Sprintf("X_int column %d", j), Msg: fmt.Sprintf("value %v is not a finite float32", fv)}
		}
		dense[j] = denseValue(v, r.cfg.transform)
	}
	return nil
}
