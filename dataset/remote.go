package dataset

// Click logs in object storage (s3://, gs://, azblob:// URLs, issue 16),
// read through package storage: every format reads from an io.ReaderAt,
// which a storage.Reader is, so an object goes through the same parsers
// and checks as a file, by ranged reads, never downloaded whole first.
//
// What differs is how the reads are sized. A storage.Reader serves reads
// under storage.BlockSize from a cache of storage.CacheBlocks blocks of 1
// MiB; a few sequential streams (an npz's three arrays, a TSV) share it
// well, but many streams interleaved in small reads (Parquet's columns,
// MLPerf's 26 sparse arrays) would evict each other's blocks and fetch a
// MiB for every few KiB. Those streams read objects through buffers of
// storage.BlockSize instead (reads that size go straight to the server, one
// request each): at most one MiB per stream, a bounded buffer.
//
// A URL whose path ends in "/" names a directory (a prefix): Parquet parts
// or MLPerf days are listed with storage.List, in name order.

import (
	"bufio"
	"context"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rqtools/rq/storage"
)

// urlKey is the key part of an object URL: its path, without the query
// (which holds an endpoint, and dots).
func urlKey(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	return u.Path
}

// baseName is filepath.Base for a file, the last element of the key for an
// object URL.
func baseName(p string) string {
	if _, isLocal := storage.LocalPath(p); !isLocal {
		return path.Base(urlKey(p))
	}
	return filepath.Base(p)
}

// extOf is filepath.Ext of the file's or the object's name.
func extOf(p string) string {
	return path.Ext(baseName(p))
}

// withBase replaces the last element of a file's or an object's name,
// keeping an object URL's query (its endpoint and region).
func withBase(p, base string) string {
	if _, isLocal := storage.LocalPath(p); isLocal {
		return filepath.Join(filepath.Dir(p), base)
	}
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	u.Path = path.Join(path.Dir(u.Path), base)
	u.RawPath = ""
	return u.String()
}

// isDir reports whether p is a local directory, or an object URL naming a
// prefix (its path ends in "/", or it names the bucket).
func isDir(p string) bool {
	local, isLocal := storage.LocalPath(p)
	if !isLocal {
		k := urlKey(p)
		return k == "" || strings.HasSuffix(k, "/")
	}
	st, err := os.Stat(local)
	return err == nil && st.IsDir()
}

// dirEntries lists a directory's (or prefix's) file names, sorted, and
// their paths (URLs keep the query). Subdirectories are not listed.
func dirEntries(p string) (names, paths []string, err error) {
	local, isLocal := storage.LocalPath(p)
	if !isLocal {
		urls, err := storage.List(context.Background(), p)
		if err != nil {
			return nil, nil, err
		}
		// List sorts the URLs, whose query follows the name; sort by
		// the names themselves, as a directory is read.
		sort.SliceStable(urls, func(i, j int) bool { return baseName(urls[i]) < baseName(urls[j]) })
		for _, u := range urls {
			names = append(names, baseName(u))
		}
		return names, urls, nil
	}
	es, err := os.ReadDir(local) // sorted by name
	if err != nil {
		return nil, nil, err
	}
	for _, e := range es {
		fp := filepath.Join(local, e.Name())
		if e.IsDir() {
			continue
		}
		if !e.Type().IsRegular() {
			// A link to a directory is not a part either.
			if st, err := os.Stat(fp); err == nil && st.IsDir() {
				continue
			}
		}
		names = append(names, e.Name())
		paths = append(paths, fp)
	}
	return names, paths, nil
}

// openInput opens a file or an object for reading: its bytes, its size and
// what to close.
func openInput(ctx context.Context, p string) (io.ReaderAt, int64, io.Closer, error) {
	local, isLocal := storage.LocalPath(p)
	if !isLocal {
		if ctx == nil {
			ctx = context.Background()
		}
		r, err := storage.Open(ctx, p)
		if err != nil {
			return nil, 0, nil, err
		}
		return r, r.Size(), r, nil
	}
	f, err := os.Open(local)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, st.Size(), f, nil
}

// isObjectReader reports whether ra reads an object (not a local file).
func isObjectReader(ra io.ReaderAt) bool {
	_, ok := ra.(*storage.Reader)
	return ok
}

// section is io.NewSectionReader for a stream of rows; on an object, read
// through a buffer of storage.BlockSize so that streams interleaved with
// others cost one request per MiB (see the top of this file).
func section(ra io.ReaderAt, off, n int64) io.Reader {
	s := io.NewSectionReader(ra, off, n)
	if isObjectReader(ra) && n > 0 {
		return bufio.NewReaderSize(s, int(min(n, storage.BlockSize)))
	}
	return s
}

// Read-ahead of one sequential stream from an object (a TSV log): chunks
// of prefetchChunk bytes are fetched by a goroutine, up to prefetchDepth
// ahead of the reader, so that the next request is under way while the
// rows of the last one are parsed and evaluated, instead of each block's
// request waiting for the parser to need it. At most (prefetchDepth+2) *
// prefetchChunk = 8 MiB is held: the chunks ready, the one being fetched
// and the one being read.
const (
	prefetchChunk = 2 * storage.BlockSize // a ranged GET of its own, past the Reader's cache
	prefetchDepth = 2
)

type fetched struct {
	b   []byte
	err error
}

// prefetcher is an io.ReadCloser over bytes [off, end) of ra.
type prefetcher struct {
	ch   chan fetched
	free chan []byte // chunks read, for the fetcher to fill again
	done chan struct{}
	buf  []byte // the chunk being read
	cur  []byte // what is left of it
	err  error
}

func newPrefetcher() *prefetcher {
	return &prefetcher{ch: make(chan fetched, prefetchDepth), free: make(chan []byte, prefetchDepth+2), done: make(chan struct{})}
}

// sequential returns a reader of the first size bytes of ra, what closes
// it and closer, and what stops it alone: a read-ahead for an object, a
// plain section for a file.
func sequential(ra io.ReaderAt, size int64, closer io.Closer) (io.Reader, io.Closer, func()) {
	if !isObjectReader(ra) {
		return io.NewSectionReader(ra, 0, size), closer, func() {}
	}
	p := newPrefetcher()
	go p.run(ra, 0, size)
	return p, closers{p, closer}, func() { p.Close() }
}

func (p *prefetcher) run(ra io.ReaderAt, off, end int64) {
	defer close(p.ch)
	for off < end {
		// Chunks are reused, so a stream of any length allocates a few:
		// no garbage for the collector to let the heap grow with.
		var b []byte
		select {
		case b = <-p.free:
		default:
			b = make([]byte, prefetchChunk)
		}
		b = b[:min(prefetchChunk, end-off)]
		n, err := ra.ReadAt(b, off)
		if err == io.EOF && n == len(b) {
			err = nil
		}
		select {
		case p.ch <- fetched{b[:n], err}:
		case <-p.done:
			return
		}
		if err != nil {
			return
		}
		off += int64(n)
	}
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.buf != nil {
			select {
			case p.free <- p.buf[:cap(p.buf)]:
			default:
			}
			p.buf = nil
		}
		f, ok := <-p.ch
		if !ok {
			p.err = io.EOF
			continue
		}
		p.buf, p.cur, p.err = f.b, f.b, f.err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops the read-ahead (a request under way ends with it, or with
// the Reader's context).
func (p *prefetcher) Close() error {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	return nil
}

// closers closes each in turn, returning the first error.
type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
