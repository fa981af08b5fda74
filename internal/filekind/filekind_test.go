package filekind

import (
	"io/fs"
	"testing"
)

func TestOf(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		0o644:                             "a regular file",
		fs.ModeDir | 0o755:                "a directory",
		fs.ModeNamedPipe:                  "a FIFO (named pipe)",
		fs.ModeSocket:                     "a socket",
		fs.ModeDevice | fs.ModeCharDevice: "a character device",
		fs.ModeDevice:                     "a block device",
		fs.ModeSymlink:                    "a symbolic link",
		fs.ModeIrregular:                  "a file of type ?---------",
	} {
		if got := Of(m); got != want {
			t.Errorf("%v: %q, want %q", m, got, want)
		}
	}
}
