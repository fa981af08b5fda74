package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rqtools/rq/internal/filekind"
)

// A namedPath is a file a command reads or writes, with the flag that names
// it, for messages.
type namedPath struct {
	flag string // "--model", "-o", "argument 2"
	path string
}

func (p namedPath) String() string { return p.flag + " " + p.path }

// pathSet collects the files of one command line, to be checked before any work
// (check): an input that is not a regular file, or an output that is an
// input, would otherwise be found out only after minutes of work, or never.
type pathSet struct {
	in, out []namedPath
	dirs    []namedPath // inputs that are directories (monitor --snapshots)
}

// input adds an input file; an empty path (flag not given) is skipped.
func (f *pathSet) input(flag, path string) *pathSet {
	if path != "" {
		f.in = append(f.in, namedPath{flag, path})
	}
	return f
}

// inputDir adds an input directory.
func (f *pathSet) inputDir(flag, path string) *pathSet {
	if path != "" {
		f.dirs = append(f.dirs, namedPath{flag, path})
	}
	return f
}

// output adds an output file; an empty path is skipped.
func (f *pathSet) output(flag, path string) *pathSet {
	if path != "" {
		f.out = append(f.out, namedPath{flag, path})
	}
	return f
}

// check refuses, as usage errors:
//   - an input that is not a regular file (a FIFO or a device would hang or
//     never end; a directory is not a model). Missing inputs are left to the
//     readers, whose messages say what they expected.
//   - an output that is the same file as an input, through symbolic or hard
//     links (same device and inode): rq never modifies its inputs;
//   - two outputs that are the same file;
//   - an output that is a directory, or whose directory does not exist.
//
// Outputs that exist and are not regular files (/dev/null, /dev/stdout, a
// FIFO) are allowed: they are written through, never replaced (atomicfile).
func (f *pathSet) check() error {
	type seen struct {
		p  namedPath
		fi fs.FileInfo
	}
	var ins []seen
	for _, p := range f.in {
		fi, err := os.Stat(p.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("%s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return usageErrorf("%s: %s, not a regular file; rq reads models and data only from regular files", p, filekind.Of(fi.Mode()))
		}
		ins = append(ins, seen{p, fi})
	}
	for _, p := range f.dirs {
		fi, err := os.Stat(p.path)
		if err == nil && !fi.IsDir() {
			return usageErrorf("%s: not a directory", p)
		}
		if err == nil {
			ins = append(ins, seen{p, fi})
		}
	}
	var outs []seen
	for _, p := range f.out {
		fi, err := os.Stat(p.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			dir := filepath.Dir(p.path)
			if di, derr := os.Stat(dir); derr != nil || !di.IsDir() {
				return usageErrorf("%s: directory %s does not exist", p, dir)
			}
			continue
		case err != nil:
			return fmt.Errorf("%s: %w", p, err)
		case fi.IsDir():
			return usageErrorf("%s is a directory; give a file name", p)
		}
		for _, in := range ins {
			if os.SameFile(fi, in.fi) {
				return usageErrorf("%s is the same file as %s: rq never overwrites its inputs; write to another file", p, in.p)
			}
		}
		for _, o := range outs {
			if os.SameFile(fi, o.fi) && fi.Mode().IsRegular() {
				return usageErrorf("%s and %s are the same file", o.p, p)
			}
		}
		outs = append(outs, seen{p, fi})
	}
	// Two outputs not yet created can still collide by name.
	for i, a := range f.out {
		for _, b := range f.out[i+1:] {
			if filepath.Clean(a.path) == filepath.Clean(b.path) {
				return usageErrorf("%s and %s are the same file", a, b)
			}
		}
	}
	return nil
}
