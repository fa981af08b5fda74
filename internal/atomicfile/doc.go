// Package atomicfile writes files so that a reader (or a crash) sees either the
// old file or the complete new one, never a half-written file.
//
// The data goes to a temporary file in the destination's own directory (so
// the final rename stays on one file system and is atomic), is flushed and
// fsynced, and is then renamed over the destination. On Linux the temporary
// file is unnamed (O_TMPFILE) until it is complete, so even a process killed
// outright (SIGKILL, the OOM killer) leaves no partial file behind; elsewhere,
// or on file systems without O_TMPFILE, it is a named ".rq-tmp-" file. On any error the
// temporary file is removed and an existing file at the destination is left
// untouched. Because the rename replaces the directory entry rather than
// rewriting the old file in place, readers that still hold the old file open
// (or memory-mapped) keep seeing the old contents.
package atomicfile
