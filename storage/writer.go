package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"

	"gocloud.dev/blob"

	"github.com/rqtools/rq/internal/atomicfile"
)

const (
	// WriteBufferSize is the part size of an object upload (S3 multipart
	// part, GCS chunk, Azure block): nothing is sent before this much is
	// written or Commit is called.
	WriteBufferSize = 8 << 20
	// WriteConcurrency is how many parts upload at once. With the part
	// being filled, a Writer holds at most (WriteConcurrency+1) *
	// WriteBufferSize = 24 MiB (S3's upload manager).
	WriteConcurrency = 2
)

// Writer writes a local file or an object so that it appears whole or not
// at all: nothing is visible under the name until Commit returns nil, and
// Abort (or a failure, or a Writer dropped without either) leaves whatever
// was there before untouched.
//
// The usual pattern:
//
//	w, err := storage.Create(ctx, path)
//	if err != nil { return err }
//	defer w.Abort() // does nothing after a successful Commit
//	... write ...
//	return w.Commit()
type Writer struct {
	name string
	loc  location

	mu     sync.Mutex
	done   bool  // Commit or Abort was called
	result error // Commit's result, returned again by a second Commit

	// A local file: write's bytes go through a pipe to atomicfile.WriteFile
	// running in its own goroutine, which puts the file in place when the
	// pipe is closed cleanly and drops it when the pipe is closed with an
	// error.
	pw       *io.PipeWriter
	finished chan error

	// The writes' context: the caller's for a local file, one Abort
	// cancels for an object.
	ctx context.Context

	// An object: a blob writer whose context is cancelled by Abort, so
	// that closing it cannot complete the upload.
	cancel context.CancelCauseFunc
	wd     *watchdog // the upload's stall watchdog (objects only)
	bw     *blob.Writer

	cleanup runtime.Cleanup
}

// errAborted ends an aborted local write.
var errAborted = errors.New("aborted")

// errAbandoned ends the write of a Writer the program dropped without
// calling Commit or Abort.
var errAbandoned = errors.New("writer dropped without Commit or Abort")

// Create starts writing path: a local file (written through a temporary
// file and renamed into place, with internal/atomicfile) or an object
// (uploaded and published only by Commit). Cancelling ctx aborts the
// write: an upload stops at once, and Commit then fails, putting nothing in
// place.
//
// For a local file Create checks that the directory exists, so a mistyped
// output path fails before the work that would fill it; for an object,
// a missing bucket or refused credentials show at the first upload (once
// WriteBufferSize bytes are written) or at Commit.
func Create(ctx context.Context, p string) (*Writer, error) {
	l, err := locate(p)
	if err != nil {
		return nil, err
	}
	w := &Writer{name: p, loc: l}
	if l.isLocal() {
		dir := filepath.Dir(l.local)
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("create %s: %w", p, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("create %s: %s is not a directory", p, dir)
		}
		pr, pw := io.Pipe()
		// The goroutine must not refer to w: while it runs (until the pipe
		// is closed) w would stay reachable and its cleanup never run.
		finished := make(chan error, 1)
		w.ctx, w.pw, w.finished = ctx, pw, finished
		go func() {
			err := atomicfile.WriteFile(l.local, func(f io.Writer) error {
				_, err := io.Copy(f, pr)
				return err
			})
			// If WriteFile failed before reading everything (no room
			// for the temporary file, say), later writes fail with its
			// error instead of blocking on the pipe.
			if err != nil {
				pr.CloseWithError(err)
			} else {
				pr.Close()
			}
			finished <- err
		}()
		w.cleanup = runtime.AddCleanup(w, func(pw *io.PipeWriter) { pw.CloseWithError(errAbandoned) }, pw)
		return w, nil
	}
	if l.key == "" || l.key[len(l.key)-1] == '/' {
		return nil, fmt.Errorf("create %s: names a bucket or a prefix, not an object", p)
	}
	b, err := openBucket(ctx, l)
	if err != nil {
		return nil, err
	}
	// The upload runs under a watchdog armed during Write and Commit calls
	// (a hung server blocks them once the part buffers are full).
	wd := newWatchdog(ctx)
	wctx, cancel := wd.ctx, wd.cancel
	ct := mime.TypeByExtension(path.Ext(l.key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	bw, err := b.NewWriter(wctx, l.key, &blob.WriterOptions{
		ContentType:    ct,
		BufferSize:     WriteBufferSize,
		MaxConcurrency: WriteConcurrency,
	})
	if err != nil {
		cancel(nil)
		return nil, wrap("create", l, err)
	}
	w.ctx, w.cancel, w.bw, w.wd = wctx, cancel, bw, wd
	w.cleanup = runtime.AddCleanup(w, abandon, abandoned{cancel, bw})
	return w, nil
}

// abandoned is what a dropped Writer of an object must release: the
// upload is cancelled first, so that closing the blob writer (which ends
// its upload goroutine) cannot complete it.
type abandoned struct {
	cancel context.CancelCauseFunc
	bw     *blob.Writer
}

func abandon(a abandoned) {
	a.cancel(errAbandoned)
	a.bw.Close()
}

// Name is the path or URL being written.
func (w *Writer) Name() string { return w.name }

// Write writes p, as io.Writer. An error names the path or URL; after one,
// the only useful call is Abort.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	if done {
		return 0, fmt.Errorf("write %s: %w", w.name, os.ErrClosed)
	}
	if w.pw != nil {
		n, err := w.pw.Write(p)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", w.name, err)
		}
		return n, nil
	}
	w.wd.arm()
	n, err := w.bw.Write(p)
	w.wd.disarm()
	if err != nil {
		return n, w.writeError(w.wd.or(err))
	}
	return n, nil
}

// Commit finishes the write and puts the file or object in place. It
// returns nil only if the whole content is now visible under the name;
// on an error nothing new is visible and what was there before is kept.
// A second Commit returns the first one's result; Commit after Abort is
// an error.
func (w *Writer) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.result
	}
	w.done = true
	w.cleanup.Stop()
	if w.pw != nil {
		if err := context.Cause(w.ctx); err != nil {
			// Stopping (a signal, say): drop the file as Abort would.
			w.pw.CloseWithError(err)
			<-w.finished
			w.result = fmt.Errorf("write %s: stopped (%v): nothing was written; an existing file is kept", w.name, err)
			return w.result
		}
		w.pw.Close()
		w.result = <-w.finished
		return w.result
	}
	if atomicfile.Frozen() {
		// rq is stopping on a signal: like local outputs, no object is
		// put in place from now on.
		w.cancel(atomicfile.ErrFrozen)
		w.bw.Close()
		w.result = fmt.Errorf("write %s: %w", w.name, atomicfile.ErrFrozen)
		return w.result
	}
	if err := context.Cause(w.ctx); err != nil {
		// The caller's context ended (a signal, say): the upload must not
		// be completed, even though Close might still manage to.
		w.cancel(err)
		w.bw.Close()
		w.result = w.writeError(err)
		return w.result
	}
	w.wd.arm()
	err := w.bw.Close()
	w.wd.disarm()
	err = w.wd.or(err)
	w.cancel(nil)
	if err != nil {
		w.result = w.writeError(err)
	}
	return w.result
}

// Abort drops what was written: nothing new appears under the name, and
// what was there before is kept. It does nothing after Commit (so a
// deferred Abort is safe) or a previous Abort.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	w.result = fmt.Errorf("commit %s: %w", w.name, errAborted)
	w.cleanup.Stop()
	if w.pw != nil {
		w.pw.CloseWithError(errAborted)
		<-w.finished
		return
	}
	// Cancel before Close: Close must end the upload goroutine without
	// completing the upload (S3 then aborts its multipart upload).
	w.cancel(errAborted)
	w.bw.Close()
}

func (w *Writer) writeError(err error) error {
	e := wrap("write", w.loc, err)
	if se, ok := e.(*Error); ok {
		se.Msg += " (nothing was written; an older object under this name is kept)"
	}
	return e
}
