package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// leftovers lists temporary files WriteFile may have left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteFileCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := WriteBytes(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB: several buffer flushes
	err := WriteFile(p, func(w io.Writer) error {
		for i := 0; i < len(big); i += 4096 {
			if _, err := w.Write(big[i:min(i+4096, len(big))]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("file has %d bytes, want %d identical bytes", len(got), len(big))
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

func TestWriteFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mode.bin")
	if err := WriteBytes(p, nil); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref.bin")
	rf, err := os.Create(ref)
	if err != nil {
		t.Fatal(err)
	}
	rf.Close()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	rst, err := os.Stat(ref)
	if err != nil {
		t.Fatal(err)
	}
	// os.Create uses 0666; we use 0644. Under the same umask ours must be the
	// same as os.Create's with group/other write removed.
	want := rst.Mode().Perm() &^ 0o022
	if st.Mode().Perm() != want {
		t.Fatalf("mode %v, want %v (os.Create gave %v)", st.Mode().Perm(), want, rst.Mode().Perm())
	}
	if st.Mode().Perm()&0o400 == 0 {
		t.Fatalf("mode %v: owner cannot read", st.Mode().Perm())
	}
}

func TestWriteFileFailingWriterKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keep.bin")
	if err := WriteBytes(p, []byte("old contents")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFile(p, func(w io.Writer) error {
		// Write more than the buffer so some bytes really reach the temp file.
		w.Write(make([]byte, 3*bufSize))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping boom", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Fatalf("error %q does not name the file", err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "old contents" {
		t.Fatalf("old file changed to %d bytes", len(got))
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

func TestWriteFileFailingWriterNoFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "new.bin")
	if err := WriteFile(p, func(w io.Writer) error { return errors.New("nope") }); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destination exists after a failed write: %v", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no-such-dir", "x.bin")
	err := WriteBytes(p, []byte("x"))
	if err == nil {
		t.Fatal("no error writing into a missing directory")
	}
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestWriteFileUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root ignores directory permissions; the missing-directory and
		// directory-is-a-file tests cover the error path instead.
		t.Skip("running as root: directory permissions are not enforced")
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o755)
	p := filepath.Join(ro, "x.bin")
	err := WriteBytes(p, []byte("x"))
	if err == nil || !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), p) {
		t.Fatalf("want a permission error naming %s, got %v", p, err)
	}
}

func TestWriteFileParentIsFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "plain")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f, "x.bin")
	err := WriteBytes(p, []byte("x"))
	if err == nil || !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want not-a-directory error, got %v", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Fatalf("error %q does not name the file", err)
	}
}

func TestWriteFileDestinationIsDir(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(filepath.Join(sub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "inside"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(sub, []byte("x")); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	if err := WriteBytes(dir+string(filepath.Separator), []byte("x")); err == nil {
		t.Fatal("a path ending in a separator was accepted")
	}
}

// TestUnnamedWhileWriting: on Linux the file being written has no name in
// the directory until it is complete, so a killed writer leaves nothing.
func TestUnnamedWhileWriting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_TMPFILE is Linux's")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	err := WriteFile(p, func(w io.Writer) error {
		if _, err := w.Write(bytes.Repeat([]byte{7}, 3<<20)); err != nil {
			return err
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("while writing, the directory holds %d entries, want none", len(entries))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); len(got) != 3<<20 {
		t.Errorf("wrote %d bytes", len(got))
	}
}
