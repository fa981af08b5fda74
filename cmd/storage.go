package cmd

// Object-storage paths on the command line (issue 16): every input and
// output path may be an s3://, gs:// or azblob:// URL (package storage);
// this file holds what cmd does differently for them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rqtools/rq/monitor"
	"github.com/rqtools/rq/storage"
)

// isObject reports whether p names an object (not a local file: a plain
// path or a file:// URL).
func isObject(p string) bool {
	_, local := storage.LocalPath(p)
	return !local && storage.IsURL(p)
}

// localName is the file a plain path or a file:// URL names (p itself for
// anything else).
func localName(p string) string {
	if l, ok := storage.LocalPath(p); ok {
		return l
	}
	return p
}

// writeOutput writes an output. A local file goes through local, the
// package's own atomic writer (unchanged); an object is uploaded with write
// and appears only when complete: a failure, ctx ending (a stop signal
// cancels it) or a signal before the upload completes leaves any older
// object as it was.
func writeOutput(ctx context.Context, p string, local func(string) error, write func(io.Writer) error) error {
	if !isObject(p) {
		return local(localName(p))
	}
	w, err := storage.Create(ctx, p)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := write(w); err != nil {
		return err
	}
	return w.Commit()
}

// writeBytes is writeOutput for an output encoded whole in memory (plans,
// ranges, states, traces: documents of at most a few hundred MiB).
func writeBytes(ctx context.Context, p string, local func(string) error, encode func() ([]byte, error)) error {
	return writeOutput(ctx, p, local, func(w io.Writer) error {
		b, err := encode()
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// appendObject adds data at the end of an object (creating it), for
// --history: objects cannot be appended to, so the old content is read and
// the whole object written again, atomically. Two runs appending at once
// can lose one's lines (the last upload wins), where local appends do not
// interleave; a history kept in object storage wants one writer at a time.
func appendObject(ctx context.Context, p string, data []byte) error {
	old, err := storage.ReadFile(ctx, p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// A missing object is an empty history; a missing bucket fails the
	// upload below, naming it.
	return writeOutput(ctx, p, nil, func(w io.Writer) error {
		_, err := w.Write(append(old, data...))
		return err
	})
}

// objectID is an object URL in a canonical form, for telling whether two
// URLs name one object: scheme and bucket lower-cased, the key cleaned,
// the query (endpoint, region, ...) with its parameters sorted.
func objectID(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	key := u.Path
	if key != "" {
		key = path.Clean(key)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + key + "?" + u.Query().Encode()
}

// checkObjectURL refuses, as a usage error before any work, an object URL
// that cannot name an object: an unsupported scheme, no bucket, or (for an
// output) no key or a key ending in "/".
func checkObjectURL(np namedPath, output bool) error {
	u, err := url.Parse(np.path)
	if err != nil {
		return usageErrorf("%s: not a valid URL: %v", np, err)
	}
	if !slices.Contains(storage.Schemes, strings.ToLower(u.Scheme)) {
		return usageErrorf("%s: unsupported URL scheme %q (rq reads and writes s3://, gs://, azblob:// and file:// URLs)", np, u.Scheme)
	}
	if u.Host == "" {
		return usageErrorf("%s: no bucket in the URL (want %s://bucket/key)", np, u.Scheme)
	}
	if output && (u.Path == "" || strings.HasSuffix(u.Path, "/")) {
		return usageErrorf("%s names a bucket or a prefix; give an object name", np)
	}
	return nil
}

// expandPrefixes replaces each argument that names a directory or a
// prefix (a local directory, or a URL ending in "/") by the files or
// objects in it, sorted, for rq merge s3://bucket/run/states/. A prefix
// with nothing in it is an error: a merge of no shards is a mistake.
func expandPrefixes(ctx context.Context, args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if !isPrefix(a) {
			out = append(out, a)
			continue
		}
		files, err := storage.List(ctx, a)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no files to merge under this prefix", a)
		}
		out = append(out, files...)
	}
	return out, nil
}

// isPrefix reports whether a is a local directory or an object URL ending
// in "/" (or naming a bucket).
func isPrefix(a string) bool {
	if isObject(a) {
		u, err := url.Parse(a)
		return err == nil && (u.Path == "" || strings.HasSuffix(u.Path, "/"))
	}
	fi, err := os.Stat(localName(a))
	return err == nil && fi.IsDir()
}

// encoded adapts an encoder that cannot fail to writeBytes.
func encoded(encode func() []byte) func() ([]byte, error) {
	return func() ([]byte, error) { return encode(), nil }
}

// baseName is filepath.Base of a file, the last element of an object's key
// (without the URL's query).
func baseName(p string) string {
	if !isObject(p) {
		return filepath.Base(localName(p))
	}
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	return path.Base(u.Path)
}

// appendHistory appends monitor's history lines to a file (O_APPEND, as
// monitor.AppendHistory does) or to an object (appendObject).
func appendHistory(ctx context.Context, p string, now time.Time, points []*monitor.Point) error {
	if !isObject(p) {
		return monitor.AppendHistory(localName(p), now, points)
	}
	lines, err := monitor.HistoryLines(now, points)
	if err != nil {
		return fmt.Errorf("history %s: %w", p, err)
	}
	return appendObject(ctx, p, lines)
}

// snapshotObjects lists the model snapshots under a --snapshots prefix,
// in name order (--order mtime needs files: objects are listed by name).
func snapshotObjects(opts *monitorOptions) ([]string, error) {
	if opts.order == "mtime" {
		return nil, usageErrorf("--order mtime orders the files of a local directory; %s is listed by name (--order name)", opts.snapshotDir)
	}
	// List takes a prefix naming a "directory" with or without its "/".
	all, err := storage.List(context.Background(), opts.snapshotDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range all {
		switch strings.ToLower(path.Ext(baseName(u))) {
		case ".pt", ".pth", ".safetensors":
			out = append(out, u)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return baseName(out[i]) < baseName(out[j]) })
	if len(out) == 0 {
		return nil, fmt.Errorf("--snapshots %s: no .pt, .pth or .safetensors objects", opts.snapshotDir)
	}
	return out, nil
}
