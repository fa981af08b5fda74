//go:build linux

package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openUnnamed opens an unnamed file in dir (O_TMPFILE): it has no directory
// entry until linkUnnamed gives it one, so a process killed while writing
// (SIGKILL, OOM, power loss) leaves nothing behind at all. The kernel applies
// the umask to mode as for a named file. File systems without O_TMPFILE
// support return an error, and the caller falls back to a named file.
func openUnnamed(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, unnamedSuffix)), nil
}

// linkUnnamed gives the unnamed file f the name name, through its
// /proc/self/fd link (linkat with AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH).
func linkUnnamed(f *os.File, name string) error {
	return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
}
