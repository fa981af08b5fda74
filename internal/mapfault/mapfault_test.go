//go:build linux

package mapfault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// readAfterTruncate maps a two-page file, truncates it to one page and reads
// the second page: SIGBUS, which must come back as a *FaultError.
func readAfterTruncate(t *testing.T, path string, register bool) (err error) {
	page := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, 2*page), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Mmap(int(f.Fd()), 0, 2*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	if register {
		defer Register(data, path)()
	}
	if err := os.Truncate(path, int64(page)); err != nil {
		t.Fatal(err)
	}
	defer Guard()()
	defer Catch(&err)
	sink += data[page+100] // faults
	return nil
}

func TestCatchNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	err := readAfterTruncate(t, path, true)
	var fe *FaultError
	if !errors.As(err, &fe) || fe.File != path || fe.Offset != int64(os.Getpagesize()+100) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
}

// TestCatchOtherFaults: a fault outside every registered mapping is not
// turned into an error (it is a bug, not a changed file).
func TestCatchOtherFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("a fault outside the registered mappings was swallowed")
		}
	}()
	readAfterTruncate(t, path, false)
}

var sink byte
