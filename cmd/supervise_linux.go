//go:build linux

package cmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// supervisedEnv marks the rq process that does the work; the process the
// user started only supervises it.
const supervisedEnv = "RQ_SUPERVISED"

// childUsageCode is the supervised process's exit code for a usage error:
// the Go runtime exits 2 when it dies (out of memory, a fault it cannot
// recover from, a bug), so the supervised process cannot use 2 itself.
const childUsageCode = 82

// killAfter: a supervised process still running this long after a stop
// signal is killed; its own deadline (gracePeriod) comes first.
const killAfter = 950 * time.Millisecond

// Execute runs rq with the process's arguments and returns its exit code.
// Errors are printed as one line on stderr.
//
// rq runs as two processes: this one starts the same executable again and
// waits. That is the only way a Go program can keep its exit codes when the
// runtime itself dies (out of memory, a fatal error: the runtime exits 2,
// which is rq's usage-error code) and can guarantee that a stop signal ends
// the work within a second, whatever it is doing. Set RQ_SUPERVISED=1 to
// run in one process.
func Execute() int {
	if os.Getenv(supervisedEnv) != "" {
		code := execute(os.Args[1:])
		if code == ExitUsage {
			code = childUsageCode
		}
		return code
	}
	exe, err := os.Executable()
	if err != nil {
		return execute(os.Args[1:])
	}
	return supervise(exe, os.Args)
}

func supervise(exe string, args []string) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)

	c := exec.Command(exe, args[1:]...)
	c.Args[0] = args[0]
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Env = append(os.Environ(), supervisedEnv+"=1")
	// The child dies with this process (SIGKILL of the supervisor included).
	// Pdeathsig follows the thread that started the child, so keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		return execute(args[1:])
	}
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()

	var stopped *interruptedError
	var kill <-chan time.Time
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			// Ctrl-C reaches the child too (same process group); kill(1)
			// and container runtimes signal only this process.
			c.Process.Signal(sig)
			if stopped == nil {
				stopped = &interruptedError{sig: sig}
				kill = time.After(killAfter)
			}
		case <-kill:
			c.Process.Kill()
			kill = nil
		case err := <-waited:
			return childExit(err, c.ProcessState, stopped)
		}
	}
}

// childExit maps how the supervised process ended to rq's exit code.
func childExit(err error, ps *os.ProcessState, stopped *interruptedError) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "rq: %s\n", oneLine(err.Error()))
		return ExitError
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && stopped != nil:
		fmt.Fprintf(os.Stderr, "rq: %s\n", stopped.Error())
		return stopped.exitCode()
	case ws.Signaled() && ws.Signal() == syscall.SIGPIPE:
		// Its output's reader went away (rq inspect m | head): quietly,
		// as a Go program writing to a closed pipe on stdout ends.
		return 128 + int(syscall.SIGPIPE)
	case ws.Signaled():
		fmt.Fprintf(os.Stderr, "rq: runtime failure: the process was killed by %s (out of memory? the kernel log says); no output was replaced\n", signalName(ws.Signal()))
		return ExitError
	}
	switch code := ps.ExitCode(); code {
	case childUsageCode:
		return ExitUsage
	case ExitUsage:
		// The Go runtime's own exit: its message is above.
		fmt.Fprintln(os.Stderr, "rq: runtime failure (the message above); no output was replaced")
		return ExitError
	default:
		return code
	}
}
