//go:build unix

package modelio

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO given as a model is refused at once: opening it would block until
// something wrote to it (rq hung until SIGKILL).
func TestLoadRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p); done <- err }()
	select {
	case err := <-done:
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "a FIFO") || !strings.HasPrefix(err.Error(), p+": ") {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Fatalf("directory: %v", err)
	}
}
