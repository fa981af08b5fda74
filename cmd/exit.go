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
)

const exitCodesHelp = `Exit codes:
  0  success
  1  bad input (unreadable or malformed model or data) or a runtime error
  2  usage error (unknown command or flag, bad flag value)
  3  an accuracy budget was broken (eval --max-ne-delta/--max-auc-drop, search),
     or monitor raised an alert (RECALIBRATE or RESEARCH)`

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
