// Package filekind names what kind of file a mode describes, for the errors
// that refuse inputs which are not regular files (a FIFO would hang a
// reader; a device or a directory is not a model or a click log).
package filekind

import "io/fs"

// Of names the type of m: "a FIFO (named pipe)", "a character device", ...
func Of(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a file of type " + m.Type().String()
}
