package atomicfile

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// bufSize is the write buffer: large enough that a model written tensor by
// tensor reaches the kernel in big sequential writes.
const bufSize = 1 << 20

// tempPrefix starts every temporary file's name; the leading dot keeps it out
// of plain directory listings, and the fixed prefix lets a person recognize
// (and delete) leftovers of a killed run.
const tempPrefix = ".rq-tmp-"

// ErrFrozen is returned by WriteFile for an output that would have been put
// in place after Freeze: the process is stopping on a signal.
var ErrFrozen = errors.New("interrupted: output not written (rq is stopping on a signal)")

var (
	// commitMu is held while a finished file is put in place, so that
	// Freeze returns only when no output is half-renamed.
	commitMu sync.Mutex
	frozen   bool
)

// Freeze stops every later WriteFile from putting its output in place. It
// waits for a rename under way to finish, so that once it returns the
// process may exit at any moment without leaving a temporary file or a
// half-replaced output: rq calls it on the first SIGINT or SIGTERM.
func Freeze() {
	commitMu.Lock()
	frozen = true
	commitMu.Unlock()
}

// Frozen reports whether Freeze was called: writers of outputs that do not
// go through WriteFile (uploads to object storage) check it before they
// publish, so no output of any kind appears after a stop signal.
func Frozen() bool {
	commitMu.Lock()
	defer commitMu.Unlock()
	return frozen
}

// WriteFile creates or replaces path with whatever write writes to the
// io.Writer it is given. The new file has mode 0644 less the umask, as
// os.Create would give. If write returns an error, or flushing, syncing or
// renaming fails, WriteFile returns that error, removes its temporary file and
// leaves any existing file at path as it was.
//
// A path that is a symbolic link keeps the link: the file it points to is
// replaced. A path that names an existing file that is not a regular file
// (a character device such as /dev/null, a FIFO, /dev/stdout on a pipe or a
// terminal) is written through, opened and written as it is, never replaced;
// a directory is an error.
func WriteFile(path string, write func(w io.Writer) error) (err error) {
	target := path
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return fmt.Errorf("writing %s: it is a directory", path)
		case !fi.Mode().IsRegular():
			return writeThrough(path, write)
		}
		// A regular file, maybe behind symbolic links: replace the file
		// itself, in its own directory, and leave the links alone.
		if t, err := filepath.EvalSymlinks(path); err == nil {
			if strings.HasPrefix(t, "/proc/") {
				// /dev/stdout -> /proc/self/fd/1 -> the shell's file:
				// renaming over a /proc link fails; write through.
				return writeThrough(path, write)
			}
			target = t
		}
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("writing %s: it names a directory, not a file", path)
	}
	// An unnamed file first (Linux): nothing to leave behind if killed.
	unnamed := true
	f, err := openUnnamed(dir)
	if err != nil {
		unnamed = false
		if f, err = createTemp(dir, base); err != nil {
			return fmt.Errorf("writing %s: cannot create a temporary file in %s: %w", path, dir, unpath(err))
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
		return fmt.Errorf("writing %s: %w", path, unpath(err))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, unpath(err))
	}
	// Sync before rename: otherwise a crash soon after could leave the new
	// name pointing at a file whose data never reached the disk.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: sync: %w", path, unpath(err))
	}
	commitMu.Lock()
	defer commitMu.Unlock()
	if frozen {
		return fmt.Errorf("writing %s: %w", path, ErrFrozen)
	}
	if unnamed {
		// Name it, then rename the name over path: linkat cannot replace
		// an existing file, rename can, atomically. Only a kill in the
		// microseconds between the two leaves a named temporary file.
		if tmp, err = linkTemp(f, dir, base); err != nil {
			return fmt.Errorf("writing %s: naming the temporary file: %w", path, unpath(err))
		}
		named = true
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: close: %w", path, unpath(err))
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		done = true
		return fmt.Errorf("writing %s: %w", path, unpath(err))
	}
	done = true
	syncDir(dir)
	return nil
}

// writeThrough writes to an existing file that is not a regular file (a
// device, a FIFO, a terminal): there is nothing to replace atomically, and
// replacing it would turn /dev/null into a regular file.
func writeThrough(path string, write func(w io.Writer) error) error {
	commitMu.Lock()
	stop := frozen
	commitMu.Unlock()
	if stop {
		return fmt.Errorf("writing %s: %w", path, ErrFrozen)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, unpath(err))
	}
	bw := bufio.NewWriterSize(f, bufSize)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, unpath(err))
	}
	return nil
}

// unpath drops the file name from an *fs.PathError: the temporary file's
// name ("dir/(unnamed)", ".rq-tmp-...") means nothing to a user, and every
// message here already names the output.
func unpath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && (strings.Contains(pe.Path, tempPrefix) || strings.HasSuffix(pe.Path, unnamedSuffix)) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
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

// unnamedSuffix names an unnamed temporary file (it has no name of its own).
const unnamedSuffix = "(unnamed)"
