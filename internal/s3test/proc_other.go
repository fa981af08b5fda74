//go:build !linux

package s3test

import "os/exec"

// setProcAttr: process groups and parent-death signals are Linux-specific
// here; elsewhere the server is a plain child process.
func setProcAttr(cmd *exec.Cmd) {}

// killGroup kills the server process.
func killGroup(cmd *exec.Cmd) { cmd.Process.Kill() }
