package s3test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// setProcAttr puts the server in a process group of its own, so Stop can
// kill it and anything it started, and has the kernel kill it if the test
// process dies first (a crashed or killed `go test` must not leave servers
// listening behind it).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the server's process group.
func killGroup(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		cmd.Process.Kill()
	}
}

type syscallSignal = syscall.Signal

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// signalGroup sends sig to the server's process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// waitStopped waits until every thread of the server is stopped (state T
// in /proc/PID/task/*/stat): kill(2) returns before a SIGSTOP takes
// effect, and a thread still running could answer one more request.
func waitStopped(cmd *exec.Cmd, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	dir := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
	for {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		stopped := len(tasks) > 0
		for _, tk := range tasks {
			b, err := os.ReadFile(dir + "/" + tk.Name() + "/stat")
			if err != nil {
				continue // the thread exited
			}
			// The state follows the command name's closing parenthesis.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || b[i+2] != 'T' && b[i+2] != 't' {
				stopped = false
				break
			}
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw (pid %d) not stopped after %v", cmd.Process.Pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
