//go:build !linux

package cmd

import "os"

// Execute runs rq with the process's arguments and returns its exit code.
// Errors are printed as one line on stderr. (On Linux rq supervises itself
// from a second process; see supervise_linux.go.)
func Execute() int { return execute(os.Args[1:]) }
