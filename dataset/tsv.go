package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/rqtools/rq/model"
)

// MaxLineBytes is the longest TSV line accepted (without its line ending). A
// Criteo line is about 250 bytes; anything near this is not a click log.
const MaxLineBytes = 1 << 20

// FieldError is a bad field of one TSV line, as ParseTSVRow reports it. Field
// is "label", "I5 (dense 5)" or "C3 (categorical 3)", or empty when the line
// as a whole is wrong. Readers wrap it in a RowError that adds file and line.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return "field " + e.Field + ": " + e.Msg
}

func denseName(j int) string  { return fmt.Sprintf("I%d (dense %d)", j+1, j+1) }
func sparseName(t int) string { return fmt.Sprintf("C%d (categorical %d)", t+1, t+1) }

// ParseTSVRow parses one Criteo line (without its line ending): a label (0 or
// 1), len(dense) decimal integer fields and len(idx) hexadecimal categorical
// fields, tab-separated. Missing trailing fields count as empty; an empty dense
// field is 0 and an empty categorical field is index 0 (as the DLRM reference
// converts an empty string to 0). A categorical field is up to 16 hex digits read as a
// uint64 and reduced modulo tableRows[t] (the reference's --max-ind-range);
// with tableRows nil it is used as is and must fit in an int64. Dense values
// go through transform (Log1p clamps negatives to 0 first). On error the
// contents of dense and idx are unspecified.
func ParseTSVRow(line []byte, tableRows []int64, transform DenseTransform, dense []float32, idx []int64) (label float32, err error) {
	nd, ns := len(dense), len(idx)
	if tableRows != nil && len(tableRows) != ns {
		return 0, &FieldError{Msg: fmt.Sprintf("%d table sizes given for %d categorical fields", len(tableRows), ns)}
	}
	want := 1 + nd + ns
	rest := line
	f := 0
	for {
		var field []byte
		i := bytes.IndexByte(rest, '\t')
		last := i < 0
		if last {
			field = rest
		} else {
			field, rest = rest[:i], rest[i+1:]
		}
		if f >= want {
			n := f + 1
			if !last {
				n += bytes.Count(rest, []byte{'\t'}) + 1
			}
			return 0, &FieldError{Msg: fmt.Sprintf("line has %d fields, want at most %d (label, %d dense, %d categorical)", n, want, nd, ns)}
		}
		switch {
		case f == 0:
			switch {
			case len(field) == 1 && field[0] == '0':
				label = 0
			case len(field) == 1 && field[0] == '1':
				label = 1
			case len(field) == 0:
				return 0, &FieldError{Field: "label", Msg: "empty, want 0 or 1"}
			default:
				return 0, &FieldError{Field: "label", Msg: quote(field) + " is not 0 or 1"}
			}
		case f <= nd:
			j := f - 1
			v, ok, ovf := parseDecimal(field)
			if !ok {
				if ovf {
					return 0, &FieldError{Field: denseName(j), Msg: quote(field) + " is out of the int64 range"}
				}
				return 0, &FieldError{Field: denseName(j), Msg: quote(field) + " is not an integer"}
			}
			dense[j] = denseValue(float32(v), transform)
		default:
			t := f - 1 - nd
			h, msg := parseHex(field)
			if msg != "" {
				return 0, &FieldError{Field: sparseName(t), Msg: quote(field) + msg}
			}
			if tableRows != nil {
				if tableRows[t] <= 0 {
					return 0, &FieldError{Field: sparseName(t), Msg: fmt.Sprintf("table emb_l.%d has %d rows", t, tableRows[t])}
				}
				h %= uint64(tableRows[t])
			} else if h > math.MaxInt64 {
				return 0, &FieldError{Field: sparseName(t), Msg: fmt.Sprintf("hash %#x does not fit in int64 (give the table sizes to reduce it)", h)}
			}
			idx[t] = int64(h)
		}
		f++
		if last {
			break
		}
	}
	// Pad the missing trailing fields as empty ones.
	for ; f < want; f++ {
		if f <= nd {
			dense[f-1] = 0 // log1p(0) is 0 too
		} else {
			idx[f-1-nd] = 0
		}
	}
	return label, nil
}

// parseDecimal reads an optionally signed decimal integer; empty is 0.
// ok is false for anything else; ovf tells an out-of-range number apart.
func parseDecimal(b []byte) (v int64, ok, ovf bool) {
	if len(b) == 0 {
		return 0, true, false
	}
	neg := false
	switch b[0] {
	case '-':
		neg = true
		b = b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		if u > (math.MaxUint64-9)/10 {
			ovf = true
		}
		u = u*10 + uint64(c-'0')
	}
	if ovf || (!neg && u > math.MaxInt64) || (neg && u > 1<<63) {
		return 0, false, true
	}
	if neg {
		return -int64(u), true, false // -(1<<63) wraps to itself, which is right
	}
	return int64(u), true, false
}

// parseHex reads up to 16 hex digits; empty is 0. msg describes a failure and
// is appended to the quoted field.
func parseHex(b []byte) (uint64, string) {
	if len(b) > 16 {
		return 0, " has more than 16 hex digits"
	}
	var v uint64
	for _, c := range b {
		d := hexDigit[c]
		if d > 15 {
			return 0, " is not hexadecimal"
		}
		v = v<<4 | uint64(d)
	}
	return v, ""
}

// hexDigit maps a byte to its hex digit value, or 0xff: a table lookup is
// much faster than a chain of range tests on the hot path.
var hexDigit = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := byte(0); i < 10; i++ {
		t['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		t['a'+i] = 10 + i
		t['A'+i] = 10 + i
	}
	return t
}()

type tsvReader struct {
	path   string
	closer io.Closer // nil: nothing to close
	closed bool
	gz     *gzip.Reader
	br     *bufio.Reader
	cfg    config
	nd     int
	ns     int
	lines  int64 // lines read so far
	stats  Stats
	err    error // sticky
	done   bool
	row    []int64 // one row's indices, before scattering into per-table slices
}

// newTSVReader reads TSV lines from src. On failure it leaves closer to the caller.
func newTSVReader(path string, src io.Reader, closer io.Closer, cfg config) (*tsvReader, error) {
	r := &tsvReader{path: path, closer: closer, cfg: cfg, nd: cfg.numDense, ns: cfg.numSparse}
	if r.nd == 0 {
		r.nd = criteoDense
	}
	if r.ns < 0 {
		r.ns = criteoSparse
	}
	r.row = make([]int64, r.ns)
	// Room for the longest line plus "\r\n", so ReadSlice sees whole lines.
	r.br = bufio.NewReaderSize(src, MaxLineBytes+2)
	head, _ := r.br.Peek(2)
	if bytes.Equal(head, gzipMagic) {
		gz, err := gzip.NewReader(r.br)
		if err != nil {
			return nil, &FormatError{File: path, Msg: "bad gzip header: " + err.Error()}
		}
		r.gz = gz
		r.br = bufio.NewReaderSize(gz, MaxLineBytes+2)
	}
	return r, nil
}

var errLineTooLong = fmt.Errorf("line is longer than %d bytes", MaxLineBytes)

// readLine returns the next line without its ending, errLineTooLong (the
// line is consumed), io.EOF, or a read error.
func (r *tsvReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		for err == bufio.ErrBufferFull {
			_, err = r.br.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, errLineTooLong
	}
	if err == io.EOF {
		if len(line) == 0 {
			return nil, io.EOF
		}
		err = nil // a last line without a newline
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > MaxLineBytes {
		return nil, errLineTooLong
	}
	return line, nil
}

func (r *tsvReader) Next() (*model.Batch, error) {
	if r.closed {
		return nil, errClosed
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.done {
		return nil, io.EOF
	}
	cfg := &r.cfg
	b := newBatch(cfg.batch, r.nd, r.ns)
	n := 0
	for n < cfg.batch {
		if cfg.rows.End >= 0 && r.lines >= cfg.rows.End {
			r.done = true
			break
		}
		line, err := r.readLine()
		if err == io.EOF {
			r.done = true
			if r.lines < cfg.rows.Start || (cfg.rows.End >= 0 && r.lines < cfg.rows.End) {
				r.err = fmt.Errorf("%s has %d rows, but the row range %v goes beyond that", r.path, r.lines, cfg.rows)
				return nil, r.err
			}
			break
		}
		if err != nil && err != errLineTooLong {
			r.err = fmt.Errorf("%s:%d: %w", r.path, r.lines+1, err)
			return nil, r.err
		}
		r.lines++
		if r.lines%checkEvery == 0 {
			if err := cfg.ctx.Err(); err != nil {
				return nil, err
			}
		}
		src := r.lines - 1
		if src < cfg.rows.Start {
			continue // not selected: not even parsed
		}
		if err == nil {
			var label float32
			label, err = ParseTSVRow(line, cfg.tableRows, cfg.transform, b.Dense[n*r.nd:(n+1)*r.nd], r.row)
			if err == nil {
				b.Labels[n] = label
				for t, v := range r.row {
					b.Indices[t][n] = v
				}
				if n == 0 {
					b.Row = src
				}
				n++
				continue
			}
		}
		re := &RowError{File: r.path, Line: r.lines, Row: src, Msg: err.Error()}
		var fe *FieldError
		if errors.As(err, &fe) {
			re.Msg = fe.Msg
			if fe.Field != "" {
				re.Where = "field " + fe.Field
			}
		}
		if cfg.badRows == Skip {
			recordSkip(&r.stats, re)
			continue
		}
		r.err = re
		return nil, re
	}
	if n == 0 {
		return nil, io.EOF
	}
	finishBatch(b, n)
	r.stats.Rows += int64(n)
	return b, nil
}

func (r *tsvReader) Stats() Stats { return r.stats }

func (r *tsvReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}
