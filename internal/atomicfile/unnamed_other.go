//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

var errNoUnnamed = errors.New("unnamed temporary files are a Linux feature")

// openUnnamed is Linux's O_TMPFILE; elsewhere WriteFile uses a named
// temporary file.
func openUnnamed(dir string) (*os.File, error) { return nil, errNoUnnamed }

func linkUnnamed(f *os.File, name string) error { return errNoUnnamed }
