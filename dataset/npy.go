package dataset

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// dtype is a numpy element type rq can read: little-endian (or single-byte)
// bool, signed and unsigned integers of 1..8 bytes, float32 and float64.
type dtype struct {
	kind  byte // 'b' bool, 'i' signed, 'u' unsigned, 'f' float
	size  int
	descr string
}

func (d dtype) String() string { return d.descr }

// errUnsupported marks header problems that are well-formed numpy but outside
// what rq reads, so the caller can report an UnsupportedError.
type errUnsupported string

func (e errUnsupported) Error() string { return string(e) }

func parseDescr(s string) (dtype, error) {
	if len(s) < 2 {
		return dtype{}, errUnsupported(fmt.Sprintf("dtype %q (rq reads bool, integer and float arrays)", s))
	}
	order, kind := s[0], s[1]
	size, err := strconv.Atoi(s[2:])
	d := dtype{kind: kind, size: size, descr: s}
	ok := err == nil
	switch kind {
	case 'b':
		ok = ok && size == 1
	case 'i', 'u':
		ok = ok && (size == 1 || size == 2 || size == 4 || size == 8)
	case 'f':
		ok = ok && (size == 4 || size == 8)
	default:
		ok = false
	}
	if !ok || !strings.ContainsRune("<>|=", rune(order)) {
		return dtype{}, errUnsupported(fmt.Sprintf("dtype %q (rq reads bool, integer, float32 and float64 arrays)", s))
	}
	if size > 1 {
		switch order {
		case '>':
			return dtype{}, errUnsupported(fmt.Sprintf("big-endian dtype %q (convert with arr.astype('<%c%d'))", s, kind, size))
		case '=', '|':
			// numpy always writes an explicit '<' or '>' for multi-byte types;
			// '=' (native) would make the file's meaning depend on the writer.
			return dtype{}, errUnsupported(fmt.Sprintf("dtype %q without an explicit byte order", s))
		}
	}
	return d, nil
}

// npyHeader is the parsed header of one .npy array.
type npyHeader struct {
	dt      dtype
	fortran bool
	shape   []int64
	dataOff int64 // bytes before the data: magic, version, length, header text
}

// maxHeaderBytes bounds the header text (numpy itself refuses more than 10000
// bytes by default); a version 2 header may claim up to 4 GiB.
const maxHeaderBytes = 1 << 16

// readNpyHeader parses an .npy header from r. size is the whole array's size
// in bytes (header and data), so the header can be checked against it
// before anything is allocated. Errors of type errUnsupported are numpy
// features rq does not read; the rest are malformed headers.
func readNpyHeader(r io.Reader, size int64) (npyHeader, error) {
	var h npyHeader
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		if isEOF(err) {
			return h, fmt.Errorf("not an .npy array: too short for the magic")
		}
		return h, fmt.Errorf("reading the .npy header: %v", err)
	}
	if string(pre[:6]) != string(npyMagic) {
		return h, fmt.Errorf("not an .npy array: bad magic %q", pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen int64
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return h, headerReadError(err)
		}
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
		h.dataOff = 10 + hlen
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return h, headerReadError(err)
		}
		hlen = int64(binary.LittleEndian.Uint32(l[:]))
		h.dataOff = 12 + hlen
	default:
		return h, errUnsupported(fmt.Sprintf(".npy format version %d.%d (rq reads 1.0, 2.0 and 3.0)", major, minor))
	}
	if hlen > maxHeaderBytes {
		return h, fmt.Errorf(".npy header claims %d bytes, more than the %d allowed", hlen, maxHeaderBytes)
	}
	if h.dataOff > size {
		return h, fmt.Errorf(".npy header claims %d bytes but the array is only %d bytes long", hlen, size)
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(r, text); err != nil {
		return h, headerReadError(err)
	}
	// Versions 1 and 2 are latin-1 and 3 is UTF-8; the keys and values rq
	// needs are plain ASCII either way.
	v, err := parsePyLiteral(string(text))
	if err != nil {
		return h, fmt.Errorf("bad .npy header %s: %v", quote(text), err)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		return h, fmt.Errorf("bad .npy header %s: not a dict", quote(text))
	}
	descr, ok := dict["descr"]
	if !ok {
		return h, fmt.Errorf("bad .npy header: no 'descr'")
	}
	ds, ok := descr.(string)
	if !ok {
		return h, errUnsupported("a structured dtype (rq reads plain bool, integer and float arrays)")
	}
	if h.dt, err = parseDescr(ds); err != nil {
		return h, err
	}
	fo, ok := dict["fortran_order"].(bool)
	if !ok {
		return h, fmt.Errorf("bad .npy header: 'fortran_order' missing or not True/False")
	}
	h.fortran = fo
	shape, ok := dict["shape"].([]any)
	if !ok {
		return h, fmt.Errorf("bad .npy header: 'shape' missing or not a tuple")
	}
	for _, d := range shape {
		n, ok := d.(int64)
		if !ok || n < 0 {
			return h, fmt.Errorf("bad .npy header: shape %v has an entry that is not a non-negative integer", shape)
		}
		h.shape = append(h.shape, n)
	}
	return h, nil
}

func isEOF(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

func headerReadError(err error) error {
	if isEOF(err) {
		return fmt.Errorf("truncated .npy header")
	}
	return fmt.Errorf("reading the .npy header: %v", err)
}

// dataBytes is the size of the array's data, or ok=false if it overflows int64.
func (h *npyHeader) dataBytes() (int64, bool) {
	n := uint64(h.dt.size)
	for _, d := range h.shape {
		if d != 0 && n > math.MaxInt64/uint64(d) {
			return 0, false
		}
		n *= uint64(d)
	}
	return int64(n), true
}

// parsePyLiteral parses the subset of Python literals numpy writes in .npy
// headers: dicts, tuples, lists, strings, integers (with Python 2's L suffix)
// and True/False/None.
func parsePyLiteral(s string) (any, error) {
	p := &pyParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q after the value", p.s[p.i:min(len(p.s), p.i+10)])
	}
	return v, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

// maxDepth bounds nesting so a hostile header cannot exhaust the stack.
const maxDepth = 16

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested too deeply")
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	c := p.s[p.i]
	switch {
	case c == '{':
		p.i++
		m := map[string]any{}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return m, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", k)
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("want ':' after dict key %q", ks)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[ks]; dup {
				return nil, fmt.Errorf("duplicate key %q", ks)
			}
			m[ks] = v
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case c == '(' || c == '[':
		end := byte(')')
		if c == '[' {
			end = ']'
		}
		p.i++
		l := []any{}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == end {
				p.i++
				return l, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if err := p.sep(end); err != nil {
				return nil, err
			}
		}
	case c == '\'' || c == '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, fmt.Errorf("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+j]
		if strings.IndexByte(v, '\\') >= 0 {
			return nil, fmt.Errorf("escapes in strings are not supported")
		}
		p.i += j + 2
		return v, nil
	case c >= '0' && c <= '9' || c == '-':
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[p.i:j])
		}
		p.i = j
		if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
			p.i++
		}
		return v, nil
	}
	for _, w := range [...]struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) {
			p.i += len(w.word)
			return w.v, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", p.s[p.i:min(len(p.s), p.i+10)])
}

// sep consumes the ',' between items or sees the closing bracket coming.
func (p *pyParser) sep(end byte) error {
	p.space()
	if p.i < len(p.s) {
		if p.s[p.i] == ',' {
			p.i++
			return nil
		}
		if p.s[p.i] == end {
			return nil
		}
	}
	return fmt.Errorf("want ',' or %q", end)
}

// Element decoders. They take exactly d.size bytes.

func (d dtype) raw(b []byte) (i int64, u uint64, f float64) {
	switch d.kind {
	case 'f':
		if d.size == 4 {
			return 0, 0, float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		}
		return 0, 0, math.Float64frombits(binary.LittleEndian.Uint64(b))
	case 'u', 'b':
		switch d.size {
		case 1:
			u = uint64(b[0])
		case 2:
			u = uint64(binary.LittleEndian.Uint16(b))
		case 4:
			u = uint64(binary.LittleEndian.Uint32(b))
		default:
			u = binary.LittleEndian.Uint64(b)
		}
		return int64(u), u, 0
	default:
		switch d.size {
		case 1:
			i = int64(int8(b[0]))
		case 2:
			i = int64(int16(binary.LittleEndian.Uint16(b)))
		case 4:
			i = int64(int32(binary.LittleEndian.Uint32(b)))
		default:
			i = int64(binary.LittleEndian.Uint64(b))
		}
		return i, uint64(i), 0
	}
}

// float32At converts a dense feature as torch.tensor(x, dtype=float32) does:
// one rounding from the stored value. ok is false for NaN and infinities.
func (d dtype) float32At(b []byte) (float32, bool) {
	if d.kind == 'f' && d.size == 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b))
		return v, !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
	}
	i, u, f := d.raw(b)
	switch d.kind {
	case 'f':
		return float32(f), !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) <= math.MaxFloat32
	case 'u', 'b':
		return float32(u), true
	}
	return float32(i), true
}

// indexAt reads an embedding index: integral, non-negative and within int64.
// msg describes a failure.
func (d dtype) indexAt(b []byte) (int64, string) {
	i, u, f := d.raw(b)
	switch d.kind {
	case 'f':
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return 0, fmt.Sprintf("index %v is not a number", f)
		case f != math.Trunc(f):
			return 0, fmt.Sprintf("index %v is not an integer", f)
		case f < 0:
			return 0, fmt.Sprintf("index %v is negative", f)
		case f >= 1<<63:
			return 0, fmt.Sprintf("index %v does not fit in int64", f)
		}
		return int64(f), ""
	case 'u', 'b':
		if u > math.MaxInt64 {
			return 0, fmt.Sprintf("index %d does not fit in int64", u)
		}
		return int64(u), ""
	}
	if i < 0 {
		return 0, fmt.Sprintf("index %d is negative", i)
	}
	return i, ""
}

// labelAt reads a click label, which must be exactly 0 or 1.
func (d dtype) labelAt(b []byte) (float32, string) {
	i, _, f := d.raw(b)
	if d.kind == 'f' {
		if f == 0 || f == 1 {
			return float32(f), ""
		}
		return 0, fmt.Sprintf("label %v is not 0 or 1", f)
	}
	if d.kind == 'u' || d.kind == 'b' {
		_, u, _ := d.raw(b)
		if u <= 1 {
			return float32(u), ""
		}
		return 0, fmt.Sprintf("label %d is not 0 or 1", u)
	}
	if i == 0 || i == 1 {
		return float32(i), ""
	}
	return 0, fmt.Sprintf("label %d is not 0 or 1", i)
}
