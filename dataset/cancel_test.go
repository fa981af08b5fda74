package dataset

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNextStopsOnCancel: a cancelled context stops Next inside its skip
// loops (malformed rows with --bad-rows skip, rows before --rows), which can
// otherwise run for minutes within one call.
func TestNextStopsOnCancel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.tsv")
	if err := os.WriteFile(p, []byte(strings.Repeat("\n", 4*checkEvery)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{BadRows: Skip},
		{Rows: Range{Start: 3 * checkEvery, End: -1}, BadRows: Skip},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rd, err := OpenContext(ctx, p, o)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rd.Next()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%+v: Next = %v, want context.Canceled", o, err)
		}
		if st := rd.Stats(); st.Skipped >= 4*checkEvery-1 {
			t.Errorf("%+v: skipped all %d rows before looking at the context", o, st.Skipped)
		}
		rd.Close()
	}
	// npz: between chunks.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rd, err := OpenContext(ctx, filepath.Join("testdata", "small_v2.npz"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("npz: Next = %v, want context.Canceled", err)
	}
}

// TestNoRowsError: when every row was skipped the message says so and shows
// the first bad row, instead of blaming --rows.
func TestNoRowsError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.tsv")
	os.WriteFile(p, []byte("x\ty\n\n"), 0o644)
	rd, err := Open(p, Options{BadRows: Skip})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want EOF", err)
	}
	msg := NoRowsError(rd, "evaluate").Error()
	if !strings.Contains(msg, "all 2 rows read were malformed") || !strings.Contains(msg, "bad.tsv:1") || strings.Contains(msg, "check --rows") {
		t.Errorf("got %q", msg)
	}
}
