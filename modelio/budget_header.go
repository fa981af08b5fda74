package modelio

// A JSON tokenizer for safetensors headers that takes time linear in the
// header, with a small constant. encoding/json's Decoder.Token does the
// same job 20-100 times slower on hostile headers (it scans each value
// twice and builds an error value at the end of each): a 100 MB header of
// one long string took 3-9 s and 1.7 GB, and one of 8 M metadata keys 37 s.
// The header is capped at MaxSafetensorsHeader (100 MB), so linear time is
// bounded time.
//
// Tokens are what Decoder.Token (with UseNumber) returns, with the same
// strictness: json.Delim for [ ] { }, string, json.Number, bool and nil;
// commas and colons are checked and consumed, not returned; values may
// follow the top-level value, as in a stream. FuzzHeaderScanner checks both
// agree on every input.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// What the scanner expects next.
const (
	scanTopValue    = iota // the top-level value
	scanTopEnded           // nothing (the top-level value is complete)
	scanArrayStart         // a value or ]
	scanArrayValue         // a value (after a comma)
	scanArrayComma         // , or ]
	scanObjectStart        // a key or }
	scanObjectKey          // a key (after a comma)
	scanObjectColon        // :
	scanObjectValue        // a value
	scanObjectComma        // , or }
)

// headerScanner tokenizes one JSON document held in memory.
type headerScanner struct {
	b     []byte
	pos   int
	state int
	stack []byte // open '[' and '{'
}

// headerSyntaxError is malformed JSON: what was wrong, and the offset of
// the byte at fault.
type headerSyntaxError struct {
	msg    string
	Offset int64
}

func (e *headerSyntaxError) Error() string { return e.msg }

func (s *headerScanner) fail(format string, args ...any) error {
	return &headerSyntaxError{msg: fmt.Sprintf(format, args...), Offset: int64(s.pos)}
}

// unexpected reports the byte at s.pos in encoding/json's words.
func (s *headerScanner) unexpected(context string) error {
	r, _ := utf8.DecodeRune(s.b[s.pos:])
	return s.fail("invalid character %s %s", quoteRune(r), context)
}

func quoteRune(r rune) string {
	if r == '\'' {
		return `'\''`
	}
	if r == '"' {
		return `'"'`
	}
	q := fmt.Sprintf("%q", r)
	return "'" + q[1:len(q)-1] + "'"
}

func (s *headerScanner) skipSpace() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// valueAllowed: as for Decoder.Token, another top-level value may follow
// the first (a stream); the safetensors parser refuses it by name.
func (s *headerScanner) valueAllowed() bool {
	switch s.state {
	case scanTopValue, scanTopEnded, scanArrayStart, scanArrayValue, scanObjectValue:
		return true
	}
	return false
}

// endValue moves on after a complete value.
func (s *headerScanner) endValue() {
	switch {
	case len(s.stack) == 0:
		s.state = scanTopEnded
	case s.stack[len(s.stack)-1] == '[':
		s.state = scanArrayComma
	default:
		s.state = scanObjectComma
	}
}

// Token returns the next token; io.EOF after the top-level value when only
// whitespace is left, io.ErrUnexpectedEOF when the input ends early.
func (s *headerScanner) Token() (json.Token, error) {
	for {
		s.skipSpace()
		if s.pos == len(s.b) {
			if s.state == scanTopEnded {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		c := s.b[s.pos]
		switch c {
		case ',':
			switch s.state {
			case scanArrayComma:
				s.state = scanArrayValue
			case scanObjectComma:
				s.state = scanObjectKey
			default:
				return nil, s.unexpected(s.where())
			}
			s.pos++
			continue
		case ':':
			if s.state != scanObjectColon {
				return nil, s.unexpected(s.where())
			}
			s.state = scanObjectValue
			s.pos++
			continue
		case '[', '{':
			if !s.valueAllowed() {
				return nil, s.unexpected(s.where())
			}
			s.stack = append(s.stack, c)
			s.pos++
			if c == '[' {
				s.state = scanArrayStart
			} else {
				s.state = scanObjectStart
			}
			return json.Delim(c), nil
		case ']':
			if s.state != scanArrayStart && s.state != scanArrayComma {
				return nil, s.unexpected(s.where())
			}
			s.stack = s.stack[:len(s.stack)-1]
			s.pos++
			s.endValue()
			return json.Delim(c), nil
		case '}':
			if s.state != scanObjectStart && s.state != scanObjectComma {
				return nil, s.unexpected(s.where())
			}
			s.stack = s.stack[:len(s.stack)-1]
			s.pos++
			s.endValue()
			return json.Delim(c), nil
		case '"':
			if s.state == scanObjectStart || s.state == scanObjectKey {
				str, err := s.str()
				if err != nil {
					return nil, err
				}
				s.state = scanObjectColon
				return str, nil
			}
			if !s.valueAllowed() {
				return nil, s.unexpected(s.where())
			}
			str, err := s.str()
			if err != nil {
				return nil, err
			}
			s.endValue()
			return str, nil
		}
		if !s.valueAllowed() {
			return nil, s.unexpected(s.where())
		}
		var tok json.Token
		var err error
		switch {
		case c == '-' || ('0' <= c && c <= '9'):
			tok, err = s.number()
		case c == 't':
			tok, err = s.literal("true", true)
		case c == 'f':
			tok, err = s.literal("false", false)
		case c == 'n':
			tok, err = s.literal("null", nil)
		default:
			return nil, s.unexpected("looking for beginning of value")
		}
		if err != nil {
			return nil, err
		}
		s.endValue()
		return tok, nil
	}
}

// where describes the position for an unexpected character, as
// encoding/json does.
func (s *headerScanner) where() string {
	switch s.state {
	case scanArrayComma:
		return "after array element"
	case scanObjectStart, scanObjectKey:
		return "looking for beginning of object key string"
	case scanObjectColon:
		return "after object key"
	case scanObjectComma:
		return "after object key:value pair"
	}
	return "looking for beginning of value"
}

func (s *headerScanner) literal(word string, v json.Token) (json.Token, error) {
	for i := 0; i < len(word); i++ {
		if s.pos == len(s.b) {
			return nil, io.ErrUnexpectedEOF
		}
		if s.b[s.pos] != word[i] {
			return nil, s.unexpected("in literal " + word + " (expecting " + quoteRune(rune(word[i])) + ")")
		}
		s.pos++
	}
	return v, s.delimited()
}

// delimited checks that a number or literal in a container is not run
// into the next token (encoding/json reads [1x] as an error at the 1; at
// the top level it reads 01 as a stream of two values).
func (s *headerScanner) delimited() error {
	if s.pos == len(s.b) || len(s.stack) == 0 {
		return nil
	}
	switch s.b[s.pos] {
	case ' ', '\t', '\n', '\r', ',', ']', '}', ':':
		return nil
	}
	return s.unexpected("after value")
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *headerScanner) number() (json.Token, error) {
	start := s.pos
	digits := func() (int, error) {
		n := 0
		for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
			s.pos++
			n++
		}
		if n == 0 {
			if s.pos == len(s.b) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, s.unexpected("in numeric literal")
		}
		return n, nil
	}
	if s.b[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.b) && s.b[s.pos] == '0' {
		s.pos++
	} else if _, err := digits(); err != nil {
		return nil, err
	}
	if s.pos < len(s.b) && s.b[s.pos] == '.' {
		s.pos++
		if _, err := digits(); err != nil {
			return nil, err
		}
	}
	if s.pos < len(s.b) && (s.b[s.pos] == 'e' || s.b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.b) && (s.b[s.pos] == '+' || s.b[s.pos] == '-') {
			s.pos++
		}
		if _, err := digits(); err != nil {
			return nil, err
		}
	}
	if err := s.delimited(); err != nil {
		return nil, err
	}
	return json.Number(s.b[start:s.pos]), nil
}

// str reads a string at s.pos (a '"'). Without escapes it costs one copy.
func (s *headerScanner) str() (string, error) {
	s.pos++ // the opening quote
	start := s.pos
	for i := s.pos; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.pos = i + 1
			return string(s.b[start:i]), nil
		case c == '\\':
			return s.escapedStr(start, i)
		case c < 0x20:
			s.pos = i
			return "", s.unexpected("in string literal")
		}
	}
	s.pos = len(s.b)
	return "", io.ErrUnexpectedEOF
}

// escapedStr finishes a string whose first escape is at i, decoding escapes
// as encoding/json does (a lone UTF-16 surrogate becomes U+FFFD).
func (s *headerScanner) escapedStr(start, i int) (string, error) {
	var sb strings.Builder
	sb.Write(s.b[start:i])
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return sb.String(), nil
		case c < 0x20:
			s.pos = i
			return "", s.unexpected("in string literal")
		case c != '\\':
			sb.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s.b) {
			s.pos = len(s.b)
			return "", io.ErrUnexpectedEOF
		}
		switch e := s.b[i+1]; e {
		case '"', '\\', '/':
			sb.WriteByte(e)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, n, err := s.hex4(i + 2)
			if err != nil {
				return "", err
			}
			i += 2 + n
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by an escaped low one is one
				// code point; anything else is U+FFFD.
				if r2, n2, err := s.hex4(i + 2); err == nil && i+1 < len(s.b) && s.b[i] == '\\' && s.b[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						sb.WriteRune(dec)
						i += 2 + n2
						continue
					}
				}
				r = utf8.RuneError
			}
			sb.WriteRune(r)
			continue
		default:
			s.pos = i + 1
			return "", s.unexpected("in string escape code")
		}
		i += 2
	}
	s.pos = len(s.b)
	return "", io.ErrUnexpectedEOF
}

// hex4 reads four hex digits at i.
func (s *headerScanner) hex4(i int) (rune, int, error) {
	var r rune
	for k := 0; k < 4; k++ {
		if i+k >= len(s.b) {
			s.pos = len(s.b)
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := s.b[i+k]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			s.pos = i + k
			return 0, 0, s.unexpected("in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(d)
	}
	return r, 4, nil
}
