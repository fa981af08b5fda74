package strictjson

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rqtools/rq/internal/filekind"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rqtools/rq/storage"
)

// DefaultMaxBytes is the size cap of a document when Options.MaxBytes is 0.
// rq's documents are far smaller (a plan or a trace is kilobytes, the
// largest ranges.json rq writes for a real model is a few hundred
// kilobytes); callers with larger documents (evaluation states with full
// prediction histograms) set their own cap.
const DefaultMaxBytes = 64 << 20

// MaxDepth is the deepest nesting of objects and arrays accepted. rq's
// documents nest at most 5 levels.
const MaxDepth = 64

// Options say what a document must be besides strict JSON.
type Options struct {
	// Kind names the document in messages ("plan", "ranges").
	Kind string
	// Versions, when not empty, are the values of the top-level "version"
	// this reader understands: a document without one, or with another,
	// is refused before any field is looked at.
	Versions []int
	// Unsupported adds an explanation to the refusal of a known version
	// that is no longer read (why, and what to do).
	Unsupported map[int]string
	// MaxBytes caps the document's size (0: DefaultMaxBytes).
	MaxBytes int64
}

func (o Options) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return DefaultMaxBytes
}

func (o Options) kind() string {
	if o.Kind != "" {
		return o.Kind
	}
	return "document"
}

// Step is one step of a path into a document: a struct field, a map key or
// an array index.
type Step struct {
	Name  string // field name or map key
	Index int    // array index, when IsIndex
	// IsKey: Name is a map key (shown as ["name"]), else a field (.name).
	IsKey   bool
	IsIndex bool
}

// Path locates a value in a document; empty for the document itself.
type Path []Step

// String renders the path as layers["top_l.0"].precision: fields dotted,
// map keys quoted in brackets, indices in brackets.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.IsIndex:
			fmt.Fprintf(&b, "[%d]", s.Index)
		case s.IsKey:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(s.Name))
			b.WriteByte(']')
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		}
	}
	return b.String()
}

// Error is a refused document: the file, where in it, and what was wrong.
type Error struct {
	File string
	Path Path
	Msg  string
	Err  error // the underlying encoding/json error, when there is one
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if len(e.Path) > 0 {
		b.WriteString(": ")
		b.WriteString(e.Path.String())
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ReadFile reads the document at path into v (a pointer), strictly. Only a
// regular file is read (a FIFO would block, a device never end), and no
// more than the size cap.
func ReadFile(path string, v any, o Options) error {
	data, err := ReadBytes(path, o)
	if err != nil {
		return err
	}
	return Decode(path, data, v, o)
}

// ReadBytes reads the document at path as ReadFile does (a regular file,
// within the size cap) without decoding it, for a caller that decodes part
// of it its own way before Decode.
//
// path may be an object-storage URL (s3://, gs://, azblob://): the object's
// size is checked against the cap before it is read.
func ReadBytes(path string, o Options) ([]byte, error) {
	local, ok := storage.LocalPath(path)
	if !ok {
		return readObject(path, o)
	}
	path = local
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{File: path, Msg: fmt.Sprintf("not a regular file (%s): want a %s file", filekind.Of(st.Mode()), o.kind())}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(path, f, o)
}

// readObject is ReadBytes for an object.
func readObject(url string, o Options) ([]byte, error) {
	r, err := storage.Open(context.Background(), url)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if max := o.maxBytes(); r.Size() > max {
		return nil, tooBig(url, r.Size(), max, o)
	}
	// One read of the whole (capped) object: a ranged request of exactly
	// its size when it is a block or more, else one cached block.
	data := make([]byte, r.Size())
	if _, err := r.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && len(data) == 0) {
		return nil, err
	}
	return data, nil
}

// Read reads a document from r into v, strictly; name is used in messages.
// It reads at most the size cap (plus one byte, to tell a document at the
// cap from a larger one).
func Read(name string, r io.Reader, v any, o Options) error {
	data, err := readCapped(name, r, o)
	if err != nil {
		return err
	}
	return Decode(name, data, v, o)
}

func readCapped(name string, r io.Reader, o Options) ([]byte, error) {
	max := o.maxBytes()
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > max {
			return nil, tooBig(name, st.Size(), max, o)
		}
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, tooBig(name, -1, max, o)
	}
	return data, nil
}

func tooBig(name string, size, max int64, o Options) error {
	what := "more than"
	if size >= 0 {
		what = fmt.Sprintf("%d bytes,", size)
		what += " more than"
	}
	return &Error{File: name, Msg: fmt.Sprintf("%s %d bytes, the limit for a file of kind %q (hostile or corrupt file?)", what, max, o.kind())}
}

// Decode decodes data, a document named name in messages, into v (a
// pointer to the document's struct), refusing what the package doc lists.
// Every error is an *Error.
func Decode(name string, data []byte, v any, o Options) error {
	if int64(len(data)) > o.maxBytes() {
		return tooBig(name, int64(len(data)), o.maxBytes(), o)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &Error{File: name, Msg: fmt.Sprintf("internal error: decoding into %T, want a non-nil pointer", v)}
	}
	root := rv.Type().Elem()
	w := walk(data, root, true, -1)
	if w.fatal != nil {
		// The fast walk skips number arrays whole; walk again token by
		// token to say where in them the fault is.
		if slow := walk(data, root, false, -1); slow.fatal != nil {
			w = slow
		}
	}
	if w.fatal != nil {
		w.fatal.File = name
		return w.fatal
	}
	if len(o.Versions) > 0 {
		if err := checkVersion(w, o); err != nil {
			err.File = name
			return err
		}
	}
	if w.keyErr != nil {
		w.keyErr.File = name
		return w.keyErr
	}
	// The walk refused every key the target does not have (a type that
	// decodes itself checks its own), so plain Unmarshal, which decodes
	// in place without copying the document, is as strict here.
	if err := json.Unmarshal(data, v); err != nil {
		e := &Error{File: name, Msg: err.Error(), Err: err}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			e.Path = walk(data, root, false, te.Offset).at
			e.Msg = fmt.Sprintf("got a JSON %s, want %s", te.Value, WantType(te.Type))
		}
		return e
	}
	return nil
}

func checkVersion(w *walked, o Options) *Error {
	list := make([]string, len(o.Versions))
	for i, v := range o.Versions {
		list[i] = strconv.Itoa(v)
	}
	reads := fmt.Sprintf("this rq reads %s version %s", o.kind(), list[0])
	if len(list) > 1 {
		reads = fmt.Sprintf("this rq reads %s versions %s and %s", o.kind(), strings.Join(list[:len(list)-1], ", "), list[len(list)-1])
	}
	if !w.hasVersion {
		return &Error{Msg: fmt.Sprintf("no \"version\" (%s): not a %s written by rq", reads, o.kind())}
	}
	num, ok := w.version.(json.Number)
	if !ok {
		return &Error{Path: Path{{Name: "version"}}, Msg: fmt.Sprintf("got a JSON %s, want an integer", jsonKind(w.version))}
	}
	v, err := strconv.Atoi(string(num))
	if err != nil {
		return &Error{Path: Path{{Name: "version"}}, Msg: fmt.Sprintf("got a JSON number %s, want an integer", num)}
	}
	if slices.Contains(o.Versions, v) {
		return nil
	}
	msg := fmt.Sprintf("version %d: %s", v, reads)
	if why := o.Unsupported[v]; why != "" {
		msg += "; " + why
	}
	return &Error{Msg: msg}
}

func jsonKind(tok any) string {
	switch tok.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case nil:
		return "null"
	case json.Delim:
		if tok == json.Delim('[') {
			return "array"
		}
		return "object"
	}
	return "number"
}

// WantType says what JSON a Go type takes, for messages.
func WantType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return WantType(t.Elem())
	case reflect.Slice, reflect.Array:
		switch e := WantType(t.Elem()); {
		case strings.Contains(e, "number") || strings.Contains(e, "integer"):
			return "an array of numbers"
		case e == "a string":
			return "an array of strings"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32:
		return "a number within float32 range"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// frame is an open object or array during the walk.
type frame struct {
	obj     bool
	typ     reflect.Type // the container's target type; nil: not checked
	fields  *fields      // typ's fields when it is a struct
	keys    map[string]struct{}
	wantKey bool
	key     string
	child   reflect.Type // the current member's target type
	n       int          // array: elements so far
}

type walked struct {
	fatal      *Error // not well-formed: syntax, duplicates, depth, trailing data
	keyErr     *Error // the first unknown or case-folded key
	hasVersion bool
	version    any  // the top-level "version" token
	at         Path // stopAt: the path of the value ending there
}

// walk checks data token by token against root. fast skips values whose
// type holds no object (they cannot hide a key). stopAt >= 0 asks for the
// path of the value whose text ends at or after that offset (for decode
// errors, which give an offset), without the checks' errors.
func walk(data []byte, root reflect.Type, fast bool, stopAt int64) *walked {
	w := &walked{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	done := false
	var sink discard
	path := func() Path {
		var p Path
		for _, f := range stack {
			switch {
			case !f.obj:
				p = append(p, Step{Index: f.n, IsIndex: true})
			case !f.wantKey:
				p = append(p, Step{Name: f.key, IsKey: f.fields == nil})
			}
		}
		return p
	}
	fail := func(msg string, err error) *walked {
		w.fatal = &Error{Path: path(), Msg: msg, Err: err}
		return w
	}
	// valueDone moves the enclosing container past a finished value.
	valueDone := func() {
		if len(stack) == 0 {
			done = true
			return
		}
		if f := stack[len(stack)-1]; f.obj {
			f.wantKey = true
		} else {
			f.n++
		}
	}
	for {
		var top *frame
		want := root
		if len(stack) > 0 {
			top = stack[len(stack)-1]
			want = top.child
		}
		atValue := !done && (top == nil || !top.obj || !top.wantKey)
		if fast && stopAt < 0 && atValue && top != nil && keyless(want) && !(len(stack) == 1 && top.key == "version") && (top.obj || dec.More()) {
			if err := dec.Decode(&sink); err != nil {
				return fail("unreadable value", err) // the slow walk says where
			}
			valueDone()
			continue
		}
		prev := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if done {
				return w
			}
			if len(stack) == 0 {
				return fail("empty document: want a JSON object", err)
			}
			return fail("unexpected end of file (truncated?)", err)
		}
		if done {
			for prev < int64(len(data)) && strings.IndexByte(" \t\r\n", data[prev]) >= 0 {
				prev++
			}
			return fail(lineCol(data, prev)+": data after the end of the JSON object", err)
		}
		if err != nil {
			return fail(syntaxMsg(err, data), err)
		}
		if top == nil {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return fail(fmt.Sprintf("want a JSON object, found %s", describe(tok)), nil)
			}
		}
		if top != nil && top.obj && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			top.key, top.wantKey = key, false
			if _, dup := top.keys[key]; dup {
				return fail("duplicate key", nil)
			}
			top.keys[key] = struct{}{}
			top.child = nil
			switch {
			case top.fields != nil:
				if t, ok := top.fields.byName[key]; ok {
					top.child = t
				} else if w.keyErr == nil && stopAt < 0 {
					w.keyErr = &Error{Path: path(), Msg: top.fields.unknown(key)}
				}
			case top.typ != nil && top.typ.Kind() == reflect.Map:
				top.child = top.typ.Elem()
			}
			continue
		}
		// A value, or the end of an array.
		if d, ok := tok.(json.Delim); ok && d == ']' {
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if stopAt >= 0 && dec.InputOffset() >= stopAt {
			w.at = path()
			return w
		}
		if len(stack) == 1 && top.key == "version" {
			w.hasVersion, w.version = true, tok
		}
		d, isDelim := tok.(json.Delim)
		if !isDelim {
			valueDone()
			continue
		}
		if len(stack) >= MaxDepth {
			return fail(fmt.Sprintf("nested deeper than %d levels", MaxDepth), nil)
		}
		t := resolve(want)
		f := &frame{obj: d == '{', wantKey: d == '{'}
		if f.obj {
			f.keys = map[string]struct{}{}
			if t != nil && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map) {
				f.typ = t
			}
			if t != nil && t.Kind() == reflect.Struct {
				f.fields = structFields(t)
			}
		} else if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			f.typ, f.child = t, t.Elem()
		}
		stack = append(stack, f)
	}
}

// discard takes a JSON value without keeping it.
type discard struct{}

func (*discard) UnmarshalJSON([]byte) error { return nil }

func describe(tok any) string {
	switch v := tok.(type) {
	case json.Delim:
		return "an " + jsonKind(v)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a bool"
	}
	return "null"
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// resolve is the type whose JSON shape the walk checks for t: pointers
// followed; nil for interfaces and types that decode themselves (their
// shape is theirs to check).
func resolve(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) ||
			(t.Kind() != reflect.Pointer && (reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType))) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

// keyless reports whether no value of t can be a JSON object: scalars and
// arrays of them. A keyless value in a document holds no key to check.
func keyless(t reflect.Type) bool {
	t = resolve(t)
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice, reflect.Array:
		return keyless(t.Elem())
	}
	return false
}

// fields are a struct's JSON field names, as encoding/json sees them.
type fields struct {
	byName map[string]reflect.Type
	names  []string // sorted, for messages
}

var fieldCache sync.Map // reflect.Type -> *fields

func structFields(t reflect.Type) *fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fields)
	}
	f := &fields{byName: map[string]reflect.Type{}}
	depth := map[string]int{}
	var add func(t reflect.Type, d int)
	add = func(t reflect.Type, d int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					add(et, d+1) // promoted fields, as encoding/json does
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if old, ok := depth[name]; ok && old <= d {
				continue // the shallower field wins
			}
			depth[name] = d
			f.byName[name] = ft
		}
	}
	add(t, 0)
	for n := range f.byName {
		f.names = append(f.names, n)
	}
	slices.Sort(f.names)
	fieldCache.Store(t, f)
	return f
}

// unknown says why key is not one of the fields.
func (f *fields) unknown(key string) string {
	for _, n := range f.names {
		if strings.EqualFold(n, key) {
			// encoding/json would fill the field: refuse, so that the
			// document means what it says to a reader who trusts case.
			return fmt.Sprintf("unknown key: field names are case-sensitive, did you mean %q?", n)
		}
	}
	return fmt.Sprintf("unknown key (want one of %s)", strings.Join(f.names, ", "))
}

// syntaxMsg phrases a JSON syntax error with its line and column, and says
// why NaN and Infinity (which Python's json module writes) are refused.
func syntaxMsg(err error, data []byte) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err.Error()
	}
	// The token decoder's offsets can be relative to the value it was
	// reading: a whole-document check gives the absolute one.
	if e2 := json.Unmarshal(data, new(json.RawMessage)); e2 != nil {
		var se2 *json.SyntaxError
		if errors.As(e2, &se2) {
			se = se2
		}
	}
	msg := lineCol(data, se.Offset-1) + ": " + se.Error()
	if strings.Contains(msg, "'N'") || strings.Contains(msg, "'I'") || strings.Contains(msg, "in numeric literal") {
		msg += " (NaN and Infinity are not JSON numbers: every number must be finite)"
	}
	return msg
}

// lineCol gives a byte offset as "line L, column C" (1-based).
func lineCol(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}
