package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestWriteFileDevNull: /dev/null stays a device (rq is often run as root,
// where a rename over it would succeed and break the machine's /dev/null).
func TestWriteFileDevNull(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/null")
	}
	if err := WriteBytes("/dev/null", []byte("discarded")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat("/dev/null")
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a character device: %v %v", fi.Mode(), err)
	}
	// And through a symbolic link to it.
	link := filepath.Join(t.TempDir(), "null")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(link, []byte("discarded")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link to /dev/null was replaced: %v %v", fi.Mode(), err)
	}
}

// TestWriteFileFIFO: a FIFO is written through (a reader gets the bytes),
// not replaced by a regular file.
func TestWriteFileFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	got := make(chan string)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	if err := WriteBytes(fifo, []byte("through")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "through" {
		t.Fatalf("reader got %q", s)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}
}

// TestWriteFileSymlinkKept: an output reached through a symbolic link
// replaces the file it points to and keeps the link.
func TestWriteFileSymlinkKept(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "sub", "real.json")
	os.Mkdir(filepath.Dir(real), 0o755)
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(real); string(b) != "new" {
		t.Fatalf("target holds %q", b)
	}
	if l := leftovers(t, filepath.Dir(real)); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestFreeze: after Freeze no output is put in place and the old file stays.
func TestFreeze(t *testing.T) {
	defer func() { commitMu.Lock(); frozen = false; commitMu.Unlock() }()
	p := filepath.Join(t.TempDir(), "out")
	os.WriteFile(p, []byte("previous"), 0o644)
	Freeze()
	err := WriteBytes(p, []byte("new"))
	if !errors.Is(err, ErrFrozen) {
		t.Fatalf("WriteBytes after Freeze: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "previous" {
		t.Fatalf("output replaced after Freeze: %q", b)
	}
	if l := leftovers(t, filepath.Dir(p)); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestUnpath: errors name the output, not the temporary file (a full disk
// gave "write dir//(unnamed): no space left on device" before).
func TestUnpath(t *testing.T) {
	for _, name := range []string{filepath.Join("dir", unnamedSuffix), filepath.Join("dir", tempPrefix+"x-0123")} {
		err := unpath(&os.PathError{Op: "write", Path: name, Err: syscall.ENOSPC})
		if strings.Contains(err.Error(), name) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: %v", name, err)
		}
	}
	other := &os.PathError{Op: "open", Path: "/x/in.pt", Err: syscall.ENOENT}
	if unpath(other) != error(other) {
		t.Errorf("a path that is not a temporary file was dropped")
	}
}
