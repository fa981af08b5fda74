package cmd

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// exitRecorder stands in for os.Exit.
type exitRecorder struct {
	mu   sync.Mutex
	code int
	at   time.Time
	done chan struct{}
}

func (e *exitRecorder) exit(code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done == nil {
		return
	}
	e.code, e.at = code, time.Now()
	close(e.done)
	e.done = nil
}

// TestInterruptContext: the first signal cancels the context with its cause;
// the same signal again within sameSignalWindow is the same event; a second
// one later exits at once with 128+signal; with no second signal the exit
// comes after gracePeriod.
func TestInterruptContext(t *testing.T) {
	defer func(f func()) { freezeOutputs = f }(freezeOutputs)
	freezeOutputs = func() {}
	for _, second := range []bool{true, false} {
		rec := &exitRecorder{done: make(chan struct{})}
		done := rec.done
		var stderr syncBuffer
		ctx, release := interruptContext(context.Background(), &stderr, rec.exit)
		start := time.Now()
		syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the context was not cancelled by SIGTERM")
		}
		if ie, ok := interruptCause(ctx); !ok || ie.exitCode() != 143 {
			t.Fatalf("cause %v", context.Cause(ctx))
		}
		syscall.Kill(syscall.Getpid(), syscall.SIGTERM) // the same event, delivered twice
		if second {
			time.Sleep(sameSignalWindow + 50*time.Millisecond)
			syscall.Kill(syscall.Getpid(), syscall.SIGINT)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("no exit")
		}
		took := rec.at.Sub(start)
		release()
		switch {
		case rec.code != 143:
			t.Errorf("second=%v: exit %d, want 143 (the first signal's)", second, rec.code)
		case second && (took > gracePeriod || !strings.Contains(stderr.String(), "SIGINT again")):
			t.Errorf("second signal: exit after %v, stderr %q; want at once and \"SIGINT again\"", took, stderr.String())
		case !second && took < gracePeriod:
			t.Errorf("no second signal: exit after %v, before the grace period %v", took, gracePeriod)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
