//go:build !linux

package s3test

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

// setProcAttr: process groups and parent-death signals are Linux-specific
// here; elsewhere the server is a plain child process.
func setProcAttr(cmd *exec.Cmd) {}

// killGroup kills the server process.
func killGroup(cmd *exec.Cmd) { cmd.Process.Kill() }

type syscallSignal = os.Signal

var sigStop, sigCont os.Signal

// signalGroup: pausing the server needs SIGSTOP, which this system's tests
// do not send.
func signalGroup(cmd *exec.Cmd, sig os.Signal) error {
	return errors.New("pausing the server is supported on Linux only")
}

func waitStopped(cmd *exec.Cmd, timeout time.Duration) error {
	return errors.New("pausing the server is supported on Linux only")
}
