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
//   - an output that is a directory, or whose directory does not exist;
//   - an object URL (s3://, gs://, azblob://) that names no object (an
//     unsupported scheme, no bucket; for an output, no key), and an output
//     object that is an input object (same bucket, key and endpoint).
//
// Objects are not looked up here: a missing input or bucket, or refused
// credentials, are the readers' and writers' errors, naming the bucket.
//
// Outputs that exist and are not regular files (/dev/null, /dev/stdout, a
// FIFO) are allowed: they are written through, never replaced (atomicfile).
func (f *pathSet) check() error {
	type seen struct {
		p  namedPath
		fi fs.FileInfo
	}
	var ins []seen
	objects := map[string]namedPath{} // input objects, by objectID
	for _, p := range append(append([]namedPath(nil), f.in...), f.dirs...) {
		if isObject(p.path) {
			if err := checkObjectURL(p, false); err != nil {
				return err
			}
			objects[objectID(p.path)] = p
		}
	}
	for _, p := range f.in {
		if isObject(p.path) {
			continue
		}
		fi, err := os.Stat(localName(p.path))
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
		if isObject(p.path) {
			continue
		}
		fi, err := os.Stat(localName(p.path))
		if err == nil && !fi.IsDir() {
			return usageErrorf("%s: not a directory", p)
		}
		if err == nil {
			ins = append(ins, seen{p, fi})
		}
	}
	var outs []seen
	for _, p := range f.out {
		if isObject(p.path) {
			if err := checkObjectURL(p, true); err != nil {
				return err
			}
			if in, ok := objects[objectID(p.path)]; ok {
				return usageErrorf("%s is the same object as %s: rq never overwrites its inputs; write to another key", p, in)
			}
			continue
		}
		fi, err := os.Stat(localName(p.path))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			dir := filepath.Dir(localName(p.path))
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
	same := func(a, b string) bool {
		if isObject(a) || isObject(b) {
			return isObject(a) && isObject(b) && objectID(a) == objectID(b)
		}
		return filepath.Clean(localName(a)) == filepath.Clean(localName(b))
	}
	for i, a := range f.out {
		for _, b := range f.out[i+1:] {
			if same(a.path, b.path) {
				return usageErrorf("%s and %s are the same file", a, b)
			}
		}
	}
	return nil
}
