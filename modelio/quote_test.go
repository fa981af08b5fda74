package modelio

import (
	"strings"
	"testing"
)

// TestQuoteForMsg: a key holding a NUL is quoted once in messages (it was
// quoted twice: "\"a\\x00b\"").
func TestQuoteForMsg(t *testing.T) {
	u := newUnpickler(nil, nil)
	err := u.errf("storage %s claims %d elements", quoteForMsg([]byte("a\x00b")), 3)
	if msg := err.Error(); !strings.Contains(msg, `storage "a\x00b" claims`) {
		t.Errorf("got %s", msg)
	}
	if got := quoteForMsg([]byte(strings.Repeat("x", 100))); got != `"`+strings.Repeat("x", 80)+`"...` {
		t.Errorf("long key: %s", got)
	}
}
