package cmd

import (
	"context"
	"errors"
	"fmt"
)

// Exit codes, documented in rq's help.
const (
	ExitOK     = 0 // success
	ExitError  = 1 // bad input or a runtime error
	ExitUsage  = 2 // bad flags or arguments
	ExitBudget = 3 // an accuracy budget was broken
	// A stop signal gives 128 + its number: 130 SIGINT, 143 SIGTERM, 129
	// SIGHUP (interrupt.go).
)

const exitCodesHelp = `Exit codes:
  0  success
  1  bad input (unreadable, malformed or over-limit model or data) or a runtime
     failure (out of memory, a model file changed while read, an internal error)
  2  usage error (unknown command or flag, bad flag value, an output that is one
     of the inputs, an input that is not a regular file)
  3  an accuracy budget was broken (eval --max-ne-delta/--max-auc-drop, search),
     or monitor raised an alert (RECALIBRATE or RESEARCH)
  130, 143, 129  stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP: within a second,
     with no output put in place after the signal; a second signal stops at once
  141  standard output was closed early (rq ... | head), as for any program`

// exitError carries an exit code with its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is an error in the command line itself (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the process's exit code.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		return ExitError
	}
	return ExitError
}
