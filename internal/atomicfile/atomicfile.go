package atomicfile

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// bufSize is the write buffer: large enough that a model written tensor by
// tensor reaches the kernel in big sequential writes.
const bufSize = 1 << 20

// tempPrefix starts every temporary file's name; the leading dot keeps it out
// of plain directory listings, and the fixed prefix lets a person recognize
// (and delete) leftovers of a killed run.
const tempPrefix = ".rq-tmp-"

// WriteFile creates or replaces path with whatever write writes to the
// io.Writer it is given. The new file has mode 0644 less the umask, as
// os.Create would give. If write returns an error, or flushing, syncing or
// renaming fails, WriteFile returns that error, removes its temporary file and
// leaves any existing file at path as it was.
func WriteFile(path string, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("atomicfile: %q names a directory, not a file", path)
	}
	// An unnamed file first (Linux): nothing to leave behind if killed.
	unnamed := true
	f, err := openUnnamed(dir)
	if err != nil {
		unnamed = false
		if f, err = createTemp(dir, base); err != nil {
			return fmt.Errorf("writing %s: cannot create a temporary file in %s: %w", path, dir, err)
		}
	}
	tmp := f.Name()
	named := !unnamed // whether tmp is a directory entry to clean up
	done := false
	defer func() {
		// Any exit before the rename succeeded (an error, or a panic in write
		// unwinding through here) must not leave the temporary file behind.
		if !done {
			f.Close()
			if named {
				os.Remove(tmp)
			}
		}
	}()

	bw := bufio.NewWriterSize(f, bufSize)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// Sync before rename: otherwise a crash soon after could leave the new
	// name pointing at a file whose data never reached the disk.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: sync: %w", path, err)
	}
	if unnamed {
		// Name it, then rename the name over path: linkat cannot replace
		// an existing file, rename can, atomically. Only a kill in the
		// microseconds between the two leaves a named temporary file.
		if tmp, err = linkTemp(f, dir, base); err != nil {
			return fmt.Errorf("writing %s: naming the temporary file: %w", path, err)
		}
		named = true
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		done = true
		return fmt.Errorf("writing %s: %w", path, err)
	}
	done = true
	syncDir(dir)
	return nil
}

// linkTemp links the unnamed file f into dir under a fresh temporary name.
func linkTemp(f *os.File, dir, base string) (string, error) {
	var lastErr error
	for range 100 {
		name, err := tempName(dir, base)
		if err != nil {
			return "", err
		}
		err = linkUnnamed(f, name)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		lastErr = err
	}
	return "", lastErr
}

func tempName(dir, base string) (string, error) {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return filepath.Join(dir, tempPrefix+base+"-"+hex.EncodeToString(r[:])), nil
}

// WriteBytes is WriteFile for data already in memory.
func WriteBytes(path string, b []byte) error {
	return WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// createTemp makes a new file ".rq-tmp-<base>-<random>" in dir. It does not
// use os.CreateTemp because that creates mode 0600; opening with 0644 lets the
// kernel apply the umask exactly as os.Create does, without reading the umask
// (which on unix can only be read by changing it, racing other goroutines).
func createTemp(dir, base string) (*os.File, error) {
	var lastErr error
	for range 10000 {
		name, err := tempName(dir, base)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// syncDir makes the rename itself durable on file systems that need the
// directory fsynced. It is best effort: some systems (Windows, some network
// file systems) cannot open or sync a directory, and the rename has already
// happened, so a failure here is not worth failing the write for.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
