package evaluate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/metrics"
)

// A state's size is its score bins: up to 2^22 triples in each of
// metrics.score_bins and baseline_metrics.score_bins. Token by token
// (encoding/json's decoder, reflection per element) they cost seconds and
// gigabytes for a hostile state of 10 M bins, so ParseState takes them out
// of the document first: scanState finds the two arrays with a plain byte
// scan (counting their bins, so a state claiming more than any accumulator
// keeps is refused there), the rest of the document, a few hundred bytes
// with the arrays emptied, goes through strictjson's checks, and then
// metrics.DecodeBins reads each array with the counts and resolution the
// document gave.

// binsSpan is where one score_bins array is in a document.
type binsSpan struct {
	field      string // "metrics" or "baseline_metrics"
	start, end int    // data[start:end] is the array
	newlines   int    // kept in the emptied document, so its line numbers hold
}

// scanned is what scanState found.
type scanned struct {
	spans []binsSpan
	kind  string // the top-level "kind", when it is a string
	end   int    // where the scan stopped: the end of the object, or what it did not expect
}

// outside is how many bytes of data[:sc.end] are not in score_bins arrays.
func (sc scanned) outside() int {
	n := sc.end
	for _, s := range sc.spans {
		n -= s.end - s.start
	}
	return n
}

// badBins is a score_bins array refused while it was being scanned, before
// the rest of the document is read: its count passed metrics.MaxBins, or
// it holds something no bin array does (nesting, strings, objects, text,
// no end). metrics.DecodeBins says where and what.
type badBins struct {
	field   string
	start   int
	tooMany bool
}

// scanState finds the score_bins arrays of a state document: members of the
// objects at top-level keys "metrics" and "baseline_metrics". It follows
// the document's structure (strings, nesting) without checking its syntax:
// at anything it does not expect, or a key given twice, it stops and
// returns what it found before, and strictjson refuses the document where
// it went wrong (the arrays before that point are well delimited).
//
// It stops too when the document has more than maxOther bytes outside the
// arrays (scanned.outside says how many it saw).
//
// With untilKind, it stops at the top-level "kind" (for IsState).
func scanState(data []byte, maxOther int, untilKind bool) (scanned, *badBins) {
	var out scanned
	type frame struct {
		obj       bool
		wantKey   bool // object: a key (or the end) comes next
		haveValue bool // object: a member is complete, ',' or the end comes next
		key       string
		seen      map[string]bool // keys of the top two levels, for duplicates
	}
	stack := make([]frame, 0, 8)
	i := 0
	stop := func() (scanned, *badBins) {
		out.end = min(i, len(data))
		return out, nil
	}
	// valueDone moves past a complete value: false at the end of the
	// document's object.
	valueDone := func() bool {
		if len(stack) == 0 {
			return false
		}
		if top := &stack[len(stack)-1]; top.obj {
			top.haveValue = true
		}
		return true
	}
	i = skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return stop()
	}
	inSpans := 0
	for {
		i = skipWS(data, i)
		if i >= len(data) || i-inSpans > maxOther {
			return stop()
		}
		c := data[i]
		if len(stack) == 0 && c != '{' {
			return stop()
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch {
		case top != nil && top.obj && (top.wantKey || top.haveValue) || top != nil && !top.obj && c == ']':
			if c == '}' || c == ']' {
				if top.obj != (c == '}') {
					return stop()
				}
				stack = stack[:len(stack)-1]
				i++
				if !valueDone() {
					// The end of the document's object: what follows is
					// refused by strictjson, but counts as outside the
					// bins all the same.
					i = len(data)
					return stop()
				}
				continue
			}
			if top.haveValue {
				if c != ',' {
					return stop()
				}
				top.haveValue, top.wantKey = false, true
				i++
				continue
			}
			if c != '"' {
				return stop()
			}
			end, ok := skipString(data, i)
			if !ok {
				return stop()
			}
			key, ok := unquoteKey(data[i:end])
			if !ok {
				return stop()
			}
			if top.seen != nil {
				if top.seen[key] {
					return stop() // a duplicate: strictjson says so
				}
				top.seen[key] = true
			}
			i = skipWS(data, end)
			if i >= len(data) || data[i] != ':' {
				return stop()
			}
			i++
			top.key, top.wantKey = key, false
			continue
		case top != nil && !top.obj && c == ',':
			i++
			continue
		}
		// A value.
		switch c {
		case '"':
			end, ok := skipString(data, i)
			if !ok {
				return stop()
			}
			if len(stack) == 1 && top.key == "kind" {
				json.Unmarshal(data[i:end], &out.kind)
				if untilKind {
					return stop()
				}
			}
			i = end
			valueDone()
		case '[':
			if len(stack) == 2 && top.obj && top.key == "score_bins" &&
				(stack[0].key == "metrics" || stack[0].key == "baseline_metrics") {
				end, n, lines, ok := skipBins(data, i)
				if !ok {
					return out, &badBins{field: stack[0].key, start: i, tooMany: n > metrics.MaxBins}
				}
				out.spans = append(out.spans, binsSpan{field: stack[0].key, start: i, end: end, newlines: lines})
				inSpans += end - i
				i = end
				valueDone()
				continue
			}
			fallthrough
		case '{':
			if len(stack) >= strictjson.MaxDepth {
				return stop()
			}
			f := frame{obj: c == '{', wantKey: c == '{'}
			if f.obj && len(stack) < 2 {
				f.seen = map[string]bool{}
			}
			stack = append(stack, f)
			i++
		default: // a number, true, false, null, or junk strictjson refuses
			j := i
			for j < len(data) && !isDelim(data[j]) {
				j++
			}
			if j == i {
				return stop()
			}
			i = j
			valueDone()
		}
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	return i
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\n', '\r', '\t', ',', ':', '[', ']', '{', '}', '"':
		return true
	}
	return false
}

// skipString returns the end of the string starting at data[i] ('"').
func skipString(data []byte, i int) (int, bool) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// unquoteKey decodes a key as encoding/json does (so "score\u005fbins" is
// score_bins to both).
func unquoteKey(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// skipBins finds the end of the array at data[i] ('['), counting the arrays
// directly in it (the bins) and its newlines. It stops, not ok, as soon as
// the count passes metrics.MaxBins or it meets what no array of triples of
// integers holds: deeper nesting, a string, an object, a letter.
func skipBins(data []byte, i int) (end, bins, newlines int, ok bool) {
	depth := 0
	for j := i; j < len(data); j++ {
		// Digits, commas and blanks, nearly all of the array: a tight loop.
		for j < len(data) && binText[data[j]] {
			j++
		}
		if j == len(data) {
			break
		}
		switch data[j] {
		case '[':
			depth++
			if depth == 2 {
				if bins++; bins > metrics.MaxBins {
					return 0, bins, newlines, false
				}
			} else if depth > 2 {
				return 0, bins, newlines, false
			}
		case ']':
			if depth--; depth == 0 {
				return j + 1, bins, newlines, true
			}
		case '\n':
			newlines++
		default:
			return 0, bins, newlines, false
		}
	}
	return 0, bins, newlines, false
}

// binText marks the bytes of an array of triples other than brackets and
// newlines.
var binText = func() (t [256]bool) {
	for _, c := range []byte("0123456789, \t\r") {
		t[c] = true
	}
	return t
}()

// emptied is data with each span's array replaced by [] and its newlines.
func emptied(data []byte, spans []binsSpan) []byte {
	if len(spans) == 0 {
		return data
	}
	n := len(data)
	for _, s := range spans {
		n -= s.end - s.start - 2 - s.newlines
	}
	out := make([]byte, 0, n)
	prev := 0
	for _, s := range spans {
		out = append(out, data[prev:s.start]...)
		out = append(out, '[')
		out = append(out, bytes.Repeat([]byte{'\n'}, s.newlines)...)
		out = append(out, ']')
		prev = s.end
	}
	return append(out, data[prev:]...)
}

// decodeBins fills s's score bins from the spans, checked against the
// counts and resolution s gives; name is used in errors.
func (s *State) decodeBins(name string, data []byte, spans []binsSpan) error {
	for _, sp := range spans {
		m := &s.Metrics
		if sp.field == "baseline_metrics" {
			m = s.BaselineMetrics
		}
		if m == nil {
			return &strictjson.Error{File: name, Path: strictjson.Path{{Name: sp.field}}, Msg: "internal error: score_bins found in a null object"}
		}
		bins, err := metrics.DecodeBins(data[sp.start:sp.end], m.Examples, m.DropBits)
		if err != nil {
			return binsError(name, sp.field, err)
		}
		m.Bins = bins
	}
	return nil
}

// binsError turns a *metrics.BinsError into a *strictjson.Error, so that a
// refused bin reads like any refused value: file, JSON path, what was wrong.
func binsError(name, field string, err error) error {
	be, ok := err.(*metrics.BinsError)
	if !ok {
		return fmt.Errorf("%s: %s.score_bins: %w", name, field, err)
	}
	p := strictjson.Path{{Name: field}, {Name: "score_bins"}}
	if be.Bin >= 0 {
		p = append(p, strictjson.Step{Index: be.Bin, IsIndex: true})
	}
	if be.Elem >= 0 {
		p = append(p, strictjson.Step{Index: be.Elem, IsIndex: true})
	}
	return &strictjson.Error{File: name, Path: p, Msg: be.Msg, Err: err}
}
