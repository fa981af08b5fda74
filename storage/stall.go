package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// StallTimeout is how long an object request may go without progress
// (no response, no body bytes, no upload accepting data) before it is
// abandoned with a *StallError. Neither gocloud nor the AWS SDK bounds a
// server that stays connected but stops answering (a hung process, a
// half-dead load balancer): without this, rq would wait forever. A dead
// server is noticed sooner, by the SDK's own retries; a slow one that
// keeps sending is never cut off.
//
// RQ_STORAGE_STALL_TIMEOUT (a Go duration, "30s", "2m") overrides it for
// a process, e.g. for a slow link or a test.
var StallTimeout = stallTimeoutFromEnv(60 * time.Second)

func stallTimeoutFromEnv(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RQ_STORAGE_STALL_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return def
}

// StallError is an object read or write that made no progress for
// StallTimeout.
type StallError struct {
	For time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("the storage server sent or took nothing for %v (stalled): giving up", e.For)
}

// watchdog cancels its context with a *StallError once it has been armed
// for StallTimeout without progress. It is armed only while a request is
// in flight (a fetch, a Write or Commit call), so time rq spends computing
// between calls never counts.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	d      time.Duration
	mu     sync.Mutex
	timer  *time.Timer
}

func newWatchdog(parent context.Context) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{ctx: ctx, cancel: cancel, d: StallTimeout}
	w.timer = time.AfterFunc(time.Hour, func() { cancel(&StallError{For: w.d}) })
	w.timer.Stop()
	return w
}

// arm starts (or restarts) the countdown: progress and the start of a
// request call it.
func (w *watchdog) arm() {
	w.mu.Lock()
	w.timer.Reset(w.d)
	w.mu.Unlock()
}

// disarm stops the countdown between requests.
func (w *watchdog) disarm() {
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// stalled is the *StallError when the watchdog fired, else nil.
func (w *watchdog) stalled() error {
	if e, ok := context.Cause(w.ctx).(*StallError); ok {
		return e
	}
	return nil
}

// or returns the stall in place of err when the watchdog fired (err is
// then the SDK's "context canceled"), else err.
func (w *watchdog) or(err error) error {
	if err == nil {
		return nil
	}
	if s := w.stalled(); s != nil {
		return s
	}
	return err
}

// progressReader re-arms the watchdog on every read that returns bytes.
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.arm()
	}
	return n, err
}
