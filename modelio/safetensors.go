package modelio

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/storage"
)

// Limits on safetensors headers. MaxSafetensorsHeader is the reference
// implementation's own limit (100 MB): a header any larger is hostile or
// corrupt, and refusing it bounds what parsing can allocate.
const (
	MaxSafetensorsHeader = 100_000_000
	MaxSafetensorsRank   = 16
	metadataKey          = "__metadata__"
)

// SafetensorsFile is a parsed safetensors file. Its tensors' Data slices alias
// the file's bytes: the memory mapping for OpenSafetensors, the caller's
// buffer for ParseSafetensors. They are read-only.
type SafetensorsFile struct {
	Path string
	// Tensors in data-offset order (header order among equal offsets),
	// which is the file's physical layout.
	Tensors []Tensor
	// Metadata is the header's "__metadata__" object, nil when absent.
	Metadata map[string]string
	// DataStart is the file offset of the data area (8 + header length).
	DataStart int64
	// Uncovered counts bytes of the data area that belong to no tensor.
	// The reference implementation rejects such files; rq accepts them
	// because the holes cannot change what any tensor means.
	Uncovered int64

	index   map[string]int
	release func() error // unmaps (or drops) the file's bytes; nil once closed
}

// Lookup returns the named tensor.
func (f *SafetensorsFile) Lookup(name string) (*Tensor, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Close releases the file's memory mapping. After Close the tensors' Data
// must not be used: on unix it points at unmapped memory and touching it
// crashes the process. Close is safe to call more than once.
func (f *SafetensorsFile) Close() error {
	if f.release == nil {
		return nil
	}
	rel := f.release
	f.release = nil
	for i := range f.Tensors {
		f.Tensors[i].Data = nil // turn a use after Close into an empty read, where possible
	}
	return rel()
}

// OpenSafetensors opens and validates a safetensors file. On unix the file is
// memory-mapped read-only, so opening costs no copy and tensors are paged in
// as they are read; elsewhere it is read into memory. The caller must Close
// it. The file must not be truncated while open (a mapped read past the new
// end raises SIGBUS); rq's own writers replace files by rename, which is safe.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	return OpenSafetensorsContext(context.Background(), path)
}

// OpenSafetensorsContext is OpenSafetensors, stopping with ctx's error
// (wrapped, so errors.Is(err, context.Canceled) holds) when ctx is done
// before the header is parsed.
func OpenSafetensorsContext(ctx context.Context, path string) (*SafetensorsFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close() // a mapping stays valid after its descriptor is closed
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &FormatError{File: path, Msg: "not a regular file"}
	}
	size := st.Size()
	if size < 8 {
		// Too small to map usefully (mapping 0 bytes is an error on unix);
		// let the parser report it.
		return ParseSafetensorsContext(ctx, path, nil)
	}
	data, release, err := mapFile(fh, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := ParseSafetensorsContext(ctx, path, data)
	if err != nil {
		release()
		return nil, err
	}
	f.release = release
	return f, nil
}

// ParseSafetensors parses and validates a safetensors file held in data;
// name identifies it in errors. The tensors' Data alias data. Every problem
// is reported as a *FormatError (or *UnsupportedError for a dtype rq does not
// handle) naming the file and, when one is at fault, the tensor.
func ParseSafetensors(name string, data []byte) (*SafetensorsFile, error) {
	return ParseSafetensorsContext(context.Background(), name, data)
}

// ParseSafetensorsContext is ParseSafetensors, stopping with ctx's error
// when ctx is done before it ends. A header past the budgets in budget.go
// (MaxSafetensorsHeader, MaxSafetensorsTensors, the metadata caps) gives a
// *LimitError.
func ParseSafetensorsContext(ctx context.Context, name string, data []byte) (*SafetensorsFile, error) {
	if err := ctxErr(ctx, name); err != nil {
		return nil, err
	}
	bad := func(tensor, format string, args ...any) error {
		return &FormatError{File: name, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) < 8 {
		return nil, bad("", "file is %d bytes, shorter than the 8-byte safetensors header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if err := checkHeaderLen(name, n, int64(len(data))); err != nil {
		return nil, err
	}
	hdr := data[8 : 8+n]
	area := data[8+n:]
	f := &SafetensorsFile{Path: name, DataStart: int64(8 + n)}
	tensors, spans, err := parseHeader(ctx, name, hdr, int64(len(area)), f)
	if err != nil {
		return nil, err
	}
	// Sort into physical order, then check for overlaps between neighbours:
	// after sorting by begin, a tensor overlaps an earlier one exactly when
	// it begins before the furthest end seen so far.
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(spans[a].begin, spans[b].begin); c != 0 {
			return c
		}
		return cmp.Compare(spans[a].end, spans[b].end)
	})
	sorted := make([]Tensor, len(order))
	covered := int64(0)
	maxEnd, maxEndName := int64(0), ""
	for k, i := range order {
		t, s := tensors[i], spans[i]
		if s.end > s.begin { // empty tensors occupy no bytes and overlap nothing
			if s.begin < maxEnd {
				return nil, bad(t.Name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", s.begin, s.end, maxEndName, maxEnd)
			}
			covered += s.end - s.begin
			maxEnd, maxEndName = s.end, t.Name
		}
		t.Data = area[s.begin:s.end:s.end] // full slice: an append cannot scribble on the next tensor
		sorted[k] = t
	}
	f.Tensors = sorted
	f.Uncovered = int64(len(area)) - covered
	f.index = make(map[string]int, len(sorted))
	for i := range sorted {
		f.index[sorted[i].Name] = i
	}
	return f, nil
}

// checkHeaderLen checks the header length n that a file of size bytes
// declares in its first 8 bytes (size >= 8).
func checkHeaderLen(name string, n uint64, size int64) error {
	if n > MaxSafetensorsHeader && n <= uint64(size-8) {
		return &LimitError{File: name, What: fmt.Sprintf("the header's %d bytes", n), Limit: MaxSafetensorsHeader, Unit: "bytes"}
	}
	if n > MaxSafetensorsHeader {
		return &FormatError{File: name, Msg: fmt.Sprintf("header length %d exceeds the %d-byte limit (not a safetensors file, or corrupt)", n, MaxSafetensorsHeader)}
	}
	if n > uint64(size-8) {
		return &FormatError{File: name, Msg: fmt.Sprintf("header length %d runs past the end of the %d-byte file", n, size)}
	}
	return nil
}

// headerParser walks the header JSON token by token. encoding/json's
// Unmarshal would silently keep the last of duplicate keys and accept
// fields we don't know; the reader must refuse both, since either could
// make rq read a different tensor than the writer meant. The tokens come
// from headerScanner (budget_header.go), which reads a 100 MB header in
// well under a second, where encoding/json's Decoder took up to 37 s.
type headerParser struct {
	ctx  context.Context
	name string
	dec  *headerScanner
}

func (p *headerParser) errf(tensor, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if tensor == metadataKey { // not a tensor: say where in the message instead
		return &FormatError{File: p.name, Msg: metadataKey + ": " + msg}
	}
	return &FormatError{File: p.name, Tensor: tensor, Msg: msg}
}

// token reads the next token, turning a JSON syntax error into a FormatError.
func (p *headerParser) token(tensor string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		var se *headerSyntaxError
		if errors.As(err, &se) {
			return nil, p.errf(tensor, "header is not valid JSON: %v (at header byte %d)", err, se.Offset)
		}
		return nil, p.errf(tensor, "header is not valid JSON: %v", err)
	}
	return tok, nil
}

// beginObject reads a '{'; what names the value in the error.
func (p *headerParser) beginObject(tensor, what string) error {
	tok, err := p.token(tensor)
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p.errf(tensor, "%s is %s, want a JSON object", what, describeToken(tok))
	}
	return nil
}

// nextKey reads the next key of an object, or reports the object's end.
// seen catches duplicates.
// At the top level (top) a repeated key is a tensor named twice.
func (p *headerParser) nextKey(tensor string, top bool, seen map[string]bool) (key string, end bool, err error) {
	tok, err := p.token(tensor)
	if err != nil {
		return "", false, err
	}
	if d, ok := tok.(json.Delim); ok && d == '}' {
		return "", true, nil
	}
	key, ok := tok.(string)
	if !ok { // the decoder only yields strings in key position; be safe anyway
		return "", false, p.errf(tensor, "header is not valid JSON: object key is %s", describeToken(tok))
	}
	if seen[key] {
		if top && key != metadataKey {
			return "", false, p.errf(key, "tensor name appears twice in the header")
		}
		return "", false, p.errf(tensor, "duplicate key %q", truncate(key))
	}
	seen[key] = true
	return key, false, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("the string %q", truncate(v))
	case json.Number:
		return "the number " + truncate(string(v))
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// truncate keeps hostile strings from flooding an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// parseHeader returns the header's tensors in header order (Data still
// unset) with their data offsets, each already checked against the data area
// and against its dtype and shape; it sets f.Metadata.
func parseHeader(ctx context.Context, name string, hdr []byte, areaLen int64, f *SafetensorsFile) (tensors []Tensor, spans []offsetSpan, err error) {
	p := &headerParser{ctx: ctx, name: name, dec: &headerScanner{b: hdr}}
	if !utf8.Valid(hdr) {
		// encoding/json would quietly turn bad bytes into U+FFFD, renaming
		// tensors; the format requires UTF-8.
		return nil, nil, p.errf("", "header is not valid UTF-8")
	}
	if err := p.beginObject("", "the header"); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for i := 0; ; i++ {
		if i%ctxEvery == 0 {
			if err := ctxErr(ctx, name); err != nil {
				return nil, nil, err
			}
		}
		key, end, err := p.nextKey("", true, seen)
		if err != nil {
			return nil, nil, err
		}
		if end {
			break
		}
		if key == metadataKey {
			if err := p.metadata(f); err != nil {
				return nil, nil, err
			}
			continue
		}
		if key == "" {
			return nil, nil, p.errf("", "a tensor has an empty name")
		}
		if len(tensors) == MaxSafetensorsTensors {
			return nil, nil, &LimitError{File: name, What: "the tensors the header describes", Limit: MaxSafetensorsTensors}
		}
		t, s, err := p.tensor(key, areaLen)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, t)
		spans = append(spans, s)
	}
	// Only whitespace may follow the object: writers pad the header with
	// spaces to align the data area.
	if tok, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, p.errf("", "header is not valid JSON: %v", err)
		}
		return nil, nil, p.errf("", "header has %s after the closing brace", describeToken(tok))
	}
	return tensors, spans, nil
}

func (p *headerParser) metadata(f *SafetensorsFile) error {
	tok, err := p.token("")
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // null: no metadata (the reference reads it as an absent Option)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p.errf("", "%s is %s, want an object of strings", metadataKey, describeToken(tok))
	}
	f.Metadata = map[string]string{}
	seen := map[string]bool{}
	size := 0
	for i := 0; ; i++ {
		if i%ctxEvery == 0 {
			if err := ctxErr(p.ctx, p.name); err != nil {
				return err
			}
		}
		key, end, err := p.nextKey(metadataKey, false, seen)
		if err != nil {
			return err
		}
		if end {
			return nil
		}
		if len(f.Metadata) == MaxSafetensorsMetadataEntries {
			return &LimitError{File: p.name, What: "the entries of the header's " + metadataKey, Limit: MaxSafetensorsMetadataEntries}
		}
		tok, err := p.token("")
		if err != nil {
			return err
		}
		v, ok := tok.(string)
		if !ok {
			return p.errf(metadataKey, "value for %q is %s, want a string", truncate(key), describeToken(tok))
		}
		if size += len(key) + len(v); size > MaxSafetensorsMetadataBytes {
			return &LimitError{File: p.name, What: "the bytes of the header's " + metadataKey + " (keys and values)", Limit: MaxSafetensorsMetadataBytes, Unit: "bytes"}
		}
		f.Metadata[key] = v
	}
}

// tensor parses one header entry {"dtype":..., "shape":[...], "data_offsets":[b,e]}.
func (p *headerParser) tensor(name string, areaLen int64) (Tensor, offsetSpan, error) {
	t := Tensor{Name: name}
	var s offsetSpan
	if err := p.beginObject(name, "the header entry"); err != nil {
		return t, s, err
	}
	seen := map[string]bool{}
	for {
		key, end, err := p.nextKey(name, false, seen)
		if err != nil {
			return t, s, err
		}
		if end {
			break
		}
		switch key {
		case "dtype":
			tok, err := p.token(name)
			if err != nil {
				return t, s, err
			}
			d, ok := tok.(string)
			if !ok {
				return t, s, p.errf(name, "dtype is %s, want a string such as \"F32\"", describeToken(tok))
			}
			t.DType = DType(d)
			if t.DType.Size() == 0 {
				return t, s, &UnsupportedError{File: p.name, What: fmt.Sprintf("tensor %q: dtype %q (rq reads F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)", name, truncate(d))}
			}
		case "shape":
			dims, err := p.intArray(name, "shape", MaxSafetensorsRank)
			if err != nil {
				return t, s, err
			}
			t.Shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return t, s, p.errf(name, "shape dimension %d is %d, too large for this platform", i, d)
				}
				t.Shape[i] = int(d)
			}
		case "data_offsets":
			offs, err := p.intArray(name, "data_offsets", 2)
			if err != nil {
				return t, s, err
			}
			if len(offs) != 2 {
				return t, s, p.errf(name, "data_offsets has %d entries, want 2 (begin, end)", len(offs))
			}
			s = offsetSpan{int64(offs[0]), int64(offs[1])}
		default:
			return t, s, p.errf(name, "unknown field %q in header entry (want dtype, shape, data_offsets)", truncate(key))
		}
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[k] {
			return t, s, p.errf(name, "header entry has no %q", k)
		}
	}
	if s.begin > s.end {
		return t, s, p.errf(name, "data_offsets [%d, %d]: begin is after end", s.begin, s.end)
	}
	if s.end > areaLen {
		return t, s, p.errf(name, "data_offsets [%d, %d] run past the end of the %d-byte data area", s.begin, s.end, areaLen)
	}
	nbytes, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return t, s, p.errf(name, "%v", err)
	}
	if nbytes != s.end-s.begin {
		return t, s, p.errf(name, "%s%v needs %d bytes but data_offsets [%d, %d] hold %d", t.DType, t.Shape, nbytes, s.begin, s.end, s.end-s.begin)
	}
	return t, s, nil
}

// offsetSpan is a tensor's [begin, end) in the data area.
type offsetSpan struct{ begin, end int64 }

// intArray reads a JSON array of non-negative integers, at most limit of them
// (reading stops after limit, so a hostile array cannot make us allocate).
// Values are returned as uint64 below 2^63, so they fit an int64.
func (p *headerParser) intArray(tensor, what string, limit int) ([]uint64, error) {
	tok, err := p.token(tensor)
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, p.errf(tensor, "%s is %s, want an array of integers", what, describeToken(tok))
	}
	var out []uint64
	for {
		tok, err := p.token(tensor)
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			return out, nil
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, p.errf(tensor, "%s entry %d is %s, want a non-negative integer", what, len(out), describeToken(tok))
		}
		v, err := strconv.ParseUint(string(num), 10, 63)
		if err != nil {
			return nil, p.errf(tensor, "%s entry %d is %s, want an integer in [0, 2^63)", what, len(out), truncate(string(num)))
		}
		if len(out) == limit {
			if what == "shape" {
				return nil, p.errf(tensor, "shape has more than %d dimensions", limit)
			}
			return nil, p.errf(tensor, "%s has more than %d entries", what, limit)
		}
		out = append(out, v)
	}
}

// byteLen is the size in bytes of a tensor of dtype d and the given shape,
// or an error if the element count or the byte count overflows int64 or int.
// Dimensions are multiplied even when one is zero, so that no product of a
// subset of dimensions (a row size, say) that code later computes can overflow.
func byteLen(d DType, shape []int) (int64, error) {
	elems := int64(1)
	zero := false
	for i, n := range shape {
		if n < 0 {
			return 0, fmt.Errorf("shape dimension %d is negative (%d)", i, n)
		}
		if n == 0 {
			zero = true
			continue
		}
		if elems > math.MaxInt64/int64(n) {
			return 0, fmt.Errorf("shape %v: element count overflows", shape)
		}
		elems *= int64(n)
	}
	size := int64(d.Size())
	if size == 0 {
		return 0, fmt.Errorf("unknown dtype %q", d)
	}
	if elems > math.MaxInt64/size || elems*size > math.MaxInt {
		return 0, fmt.Errorf("shape %v of %s: byte count overflows", shape, d)
	}
	if zero {
		return 0, nil
	}
	return elems * size, nil
}

// TensorSpec describes one tensor to write. Write must write exactly the
// tensor's byte length (elements x dtype size), little-endian, row-major;
// writing more or less is an error. It lets a caller produce a tensor's bytes
// only when the writer reaches it, so a model larger than memory can be
// written table by table.
type TensorSpec struct {
	Name  string
	DType DType
	Shape []int
	Write func(w io.Writer) error
}

// TensorsSpec returns specs writing the given in-memory tensors.
func TensorsSpec(ts []Tensor) []TensorSpec {
	specs := make([]TensorSpec, len(ts))
	for i := range ts {
		data := ts[i].Data
		specs[i] = TensorSpec{
			Name:  ts[i].Name,
			DType: ts[i].DType,
			Shape: ts[i].Shape,
			Write: func(w io.Writer) error {
				_, err := w.Write(data)
				return err
			},
		}
	}
	return specs
}

// WriteSafetensors writes a safetensors file atomically (a temporary file
// renamed into place, so readers never see a partial file). See
// EncodeSafetensors for the layout.
//
// path may also be an object-storage URL (s3://, gs://, azblob://): the
// object is uploaded and appears only when complete.
func WriteSafetensors(path string, specs []TensorSpec, metadata map[string]string) error {
	local, isLocal := storage.LocalPath(path)
	if !isLocal {
		return writeSafetensorsObject(path, specs, metadata)
	}
	return atomicfile.WriteFile(local, func(w io.Writer) error {
		return EncodeSafetensors(w, specs, metadata)
	})
}

// EncodeSafetensors writes a safetensors file to w. The output depends only on
// the arguments: tensors appear in the header and in the data area in the
// order given, each header entry's keys in the order dtype, shape,
// data_offsets, with "__metadata__" first and its keys sorted (omitted when
// metadata is empty). The header is padded with spaces so the data area
// starts at a multiple of 8 bytes, as the Hugging Face writer does, letting
// readers of a mapped file use tensors in place.
// Everything is validated before the first byte is written.
func EncodeSafetensors(w io.Writer, specs []TensorSpec, metadata map[string]string) error {
	hdr, sizes, err := encodeHeader(specs, metadata)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for i, s := range specs {
		if s.Write == nil {
			if sizes[i] == 0 {
				continue
			}
			return fmt.Errorf("safetensors: tensor %q: no Write function for %d bytes", s.Name, sizes[i])
		}
		cw := &exactWriter{w: w, left: sizes[i], name: s.Name}
		if err := s.Write(cw); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", s.Name, err)
		}
		if cw.left != 0 {
			return fmt.Errorf("safetensors: tensor %q: %s%v needs %d bytes, Write wrote %d", s.Name, s.DType, s.Shape, sizes[i], sizes[i]-cw.left)
		}
	}
	return nil
}

// exactWriter passes through at most left bytes and fails a write that would
// go past them, so a wrong-sized tensor cannot shift every later tensor.
type exactWriter struct {
	w    io.Writer
	left int64
	name string
}

func (e *exactWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > e.left {
		return 0, fmt.Errorf("wrote more than the tensor's byte length (%d bytes over)", int64(len(b))-e.left)
	}
	n, err := e.w.Write(b)
	e.left -= int64(n)
	return n, err
}

// encodeHeader validates specs and metadata and builds the padded header
// JSON; sizes are the tensors' byte lengths.
func encodeHeader(specs []TensorSpec, metadata map[string]string) (hdr []byte, sizes []int64, err error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("safetensors: metadata %q: key or value is not valid UTF-8", k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	seen := make(map[string]bool, len(specs))
	sizes = make([]int64, len(specs))
	off := int64(0)
	for i, s := range specs {
		switch {
		case s.Name == "":
			return nil, nil, fmt.Errorf("safetensors: tensor %d has an empty name", i)
		case s.Name == metadataKey:
			return nil, nil, fmt.Errorf("safetensors: tensor name %q is reserved", s.Name)
		case !utf8.ValidString(s.Name):
			return nil, nil, fmt.Errorf("safetensors: tensor %q: name is not valid UTF-8", s.Name)
		case seen[s.Name]:
			return nil, nil, fmt.Errorf("safetensors: tensor %q appears twice", s.Name)
		case s.DType.Size() == 0:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", s.Name, s.DType)
		case len(s.Shape) > MaxSafetensorsRank:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: rank %d exceeds %d", s.Name, len(s.Shape), MaxSafetensorsRank)
		}
		seen[s.Name] = true
		n, err := byteLen(s.DType, s.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", s.Name, err)
		}
		if off > math.MaxInt64-n {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: data area exceeds 2^63 bytes", s.Name)
		}
		sizes[i] = n
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		writeJSONString(&b, s.Name)
		b.WriteString(`:{"dtype":`)
		writeJSONString(&b, string(s.DType))
		b.WriteString(`,"shape":[`)
		for j, d := range s.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, off+n)
		off += n
	}
	b.WriteByte('}')
	// Pad so 8 + len(header) is a multiple of 8.
	if pad := (8 - b.Len()%8) % 8; pad > 0 {
		b.WriteString(strings.Repeat(" ", pad))
	}
	if b.Len() > MaxSafetensorsHeader {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit readers enforce", b.Len(), MaxSafetensorsHeader)
	}
	return b.Bytes(), sizes, nil
}

// writeJSONString writes s as a JSON string. It does not escape <, > and &
// (json.Marshal would, as \u003c...): the output stays readable and matches
// what Python's json module writes.
func writeJSONString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	b.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
}
