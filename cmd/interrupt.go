package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rqtools/rq/internal/atomicfile"
)

// How rq stops on SIGINT, SIGTERM and SIGHUP:
//
//  1. The first signal cancels the command's context (every long loop checks
//     it: batch loops, readers' skip loops, parsers) and freezes outputs:
//     from then on no output is renamed into place, so whatever the command
//     was writing is dropped whole and every earlier output stays as it was.
//  2. A command that has not returned within gracePeriod is ended by
//     os.Exit: with outputs frozen, stopping anywhere is safe.
//  3. A second signal ends it at once.
//
// The exit code is 128 + the signal's number (130 for SIGINT, 143 for
// SIGTERM, 129 for SIGHUP), as shells report a process killed by it.
const gracePeriod = 700 * time.Millisecond

// sameSignalWindow: a signal of the kind already received, this soon after
// it, is the same event delivered twice (Ctrl-C reaches both rq processes of
// a supervised run, and the supervisor forwards it too), not a second
// request to stop.
const sameSignalWindow = 250 * time.Millisecond

// freezeOutputs is atomicfile.Freeze; tests that send signals to their own
// process replace it, so that later tests can still write files.
var freezeOutputs = atomicfile.Freeze

// interruptedError is the cause of a context cancelled by a signal.
type interruptedError struct{ sig syscall.Signal }

func (e *interruptedError) Error() string {
	return fmt.Sprintf("interrupted by %s: stopped; no output was put in place after the signal (outputs are renamed into place only when complete)", signalName(e.sig))
}

// exitCode is the shell convention for a process ended by sig.
func (e *interruptedError) exitCode() int { return 128 + int(e.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// stopSignals are the signals that stop rq gracefully.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// interruptContext returns a context cancelled, with an *interruptedError
// cause, by the first stop signal, and arranges the forced exit described
// above, writing its one line to stderr. release stops listening.
func interruptContext(parent context.Context, stderr io.Writer, exit func(int)) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, stopSignals...)
	done := make(chan struct{})
	var once sync.Once
	go func() {
		var first *interruptedError
		var firstAt time.Time
		var force <-chan time.Time
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				sig := s.(syscall.Signal)
				if first == nil {
					first, firstAt = &interruptedError{sig: sig}, time.Now()
					freezeOutputs()
					cancel(first)
					force = time.After(gracePeriod)
					continue
				}
				if sig == first.sig && time.Since(firstAt) < sameSignalWindow {
					continue
				}
				fmt.Fprintf(stderr, "rq: %s again: stopping now; no output was put in place after the first signal\n", signalName(sig))
				exit(first.exitCode())
			case <-force:
				fmt.Fprintf(stderr, "rq: %s\n", first.Error())
				exit(first.exitCode())
			}
		}
	}()
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel(nil)
		})
	}
}

// interruptCause is the signal that cancelled ctx, if one did.
func interruptCause(ctx context.Context) (*interruptedError, bool) {
	var ie *interruptedError
	if errors.As(context.Cause(ctx), &ie) {
		return ie, true
	}
	return nil, false
}
