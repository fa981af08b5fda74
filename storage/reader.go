package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

const (
	// BlockSize is the unit of the read cache: a read smaller than this is
	// served from the block(s) containing it, fetched whole with one ranged
	// request; a read of BlockSize or more goes straight to the server as
	// one ranged request of exactly its own length, into the caller's
	// buffer, and is not cached.
	BlockSize = 1 << 20
	// CacheBlocks is how many blocks a Reader keeps (least recently used
	// first out), so a Reader's cache holds at most CacheBlocks*BlockSize
	// = 8 MiB, plus one block per ReadAt running concurrently on a miss.
	CacheBlocks = 8
)

// Reader reads a local file or an object. It is an io.ReaderAt (safe for
// concurrent use, as io.ReaderAt requires), and an io.ReadSeeker (not safe
// for concurrent use, as with os.File). Reads of an object are ranged
// requests; see BlockSize for which go through the cache.
type Reader struct {
	name string
	size int64

	file *os.File // a local file; nil for an object

	// For an object:
	loc     location
	ctx     context.Context
	bucket  *blob.Bucket
	modTime time.Time
	etag    string
	cache   blockCache
	stats   struct{ requests, bytes atomic.Int64 }

	off int64 // Read and Seek's offset
}

var (
	_ io.ReaderAt   = (*Reader)(nil)
	_ io.ReadSeeker = (*Reader)(nil)
	_ io.Closer     = (*Reader)(nil)
)

// Open opens a local file or an object for reading. For an object it asks
// for its attributes (one request: its size, and that it exists and the
// credentials are accepted) and reads nothing yet. Reads of an object use
// ctx: cancelling it stops them.
func Open(ctx context.Context, path string) (*Reader, error) {
	l, err := locate(path)
	if err != nil {
		return nil, err
	}
	if l.isLocal() {
		f, err := os.Open(l.local)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, fmt.Errorf("open %s: is a directory", path)
		}
		return &Reader{name: path, size: fi.Size(), file: f}, nil
	}
	if l.key == "" || l.key[len(l.key)-1] == '/' {
		return nil, fmt.Errorf("open %s: names a bucket or a prefix, not an object", path)
	}
	b, err := openBucket(ctx, l)
	if err != nil {
		return nil, err
	}
	r, err := openObject(ctx, b, l)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// openObject opens the object at l in b (a bucket of the process's, see
// openBucket).
func openObject(ctx context.Context, b *blob.Bucket, l location) (*Reader, error) {
	wd := newWatchdog(ctx)
	defer wd.cancel(nil)
	defer wd.disarm()
	wd.arm()
	attrs, err := b.Attributes(wd.ctx, l.key)
	err = wd.or(err)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			// A HEAD response has no body, so S3's 404 cannot say whether
			// the object or the bucket is missing (and some servers answer
			// an unknown access key with a bare 404 too). A GET's error
			// document can: ask once more, on this error path only.
			if rr, gerr := b.NewRangeReader(wd.ctx, l.key, 0, 1, &blob.ReaderOptions{BeforeRead: quiet}); gerr != nil {
				gerr = wd.or(gerr)
				err = gerr
			} else {
				rr.Close()
			}
		}
		return nil, wrap("open", l, err)
	}
	return &Reader{
		name:    l.name,
		size:    attrs.Size,
		loc:     l,
		ctx:     ctx,
		bucket:  b,
		modTime: attrs.ModTime,
		etag:    attrs.ETag,
	}, nil
}

// Name is the path or URL the Reader was opened with.
func (r *Reader) Name() string { return r.name }

// Size is the file's or object's size when it was opened.
func (r *Reader) Size() int64 { return r.size }

// Stats counts what a Reader of an object has fetched.
type Stats struct {
	Requests int64 // ranged GET requests made (Open's attribute request excluded)
	Bytes    int64 // bytes received in them
}

// Stats reports the requests and bytes fetched so far; zero for a local
// file. Tests use it to show that reads are ranged; rq can report it.
func (r *Reader) Stats() Stats {
	return Stats{Requests: r.stats.requests.Load(), Bytes: r.stats.bytes.Load()}
}

// Close releases the file, or drops the cache of an object (its bucket
// stays open for the process, see openBucket).
func (r *Reader) Close() error {
	if r.file != nil {
		return r.file.Close()
	}
	r.cache.drop()
	r.bucket = nil
	return nil
}

// Read reads from the current offset, as io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.file != nil {
		return r.file.Read(p)
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if int64(len(p)) > r.size-r.off {
		p = p[:r.size-r.off]
	}
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the offset of the next Read, as io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	if r.file != nil {
		return r.file.Seek(offset, whence)
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", r.name, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek %s: negative offset %d", r.name, offset)
	}
	r.off = offset
	return offset, nil
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: fewer only at the end
// of the object (with io.EOF) or on an error, which names the URL.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.file != nil {
		return r.file.ReadAt(p, off)
	}
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.name, off)
	}
	if r.bucket == nil {
		return 0, fmt.Errorf("read %s: %w", r.name, os.ErrClosed)
	}
	if off >= r.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	if int64(len(want)) > r.size-off {
		want = want[:r.size-off]
	}
	var n int
	var err error
	if len(want) >= BlockSize {
		n, err = r.fetch(want, off)
	} else {
		n, err = r.cached(want, off)
	}
	if err != nil {
		return n, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// cached serves a read smaller than a block from the cache.
func (r *Reader) cached(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		idx := (off + int64(n)) / BlockSize
		data, err := r.cache.get(idx, r.loadBlock)
		if err != nil {
			return n, err
		}
		start := off + int64(n) - idx*BlockSize
		n += copy(p[n:], data[start:])
	}
	return n, nil
}

// loadBlock fetches block idx whole.
func (r *Reader) loadBlock(idx int64) ([]byte, error) {
	off := idx * BlockSize
	n := min(int64(BlockSize), r.size-off)
	buf := make([]byte, n)
	if _, err := r.fetch(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// fetch reads exactly len(p) bytes at off with one ranged request.
func (r *Reader) fetch(p []byte, off int64) (int, error) {
	r.stats.requests.Add(1)
	opts := &blob.ReaderOptions{BeforeRead: r.pin}
	wd := newWatchdog(r.ctx)
	defer wd.cancel(nil)
	defer wd.disarm()
	wd.arm()
	rr, err := r.bucket.NewRangeReader(wd.ctx, r.loc.key, off, int64(len(p)), opts)
	if err != nil {
		return 0, r.readError(off, len(p), wd.or(err))
	}
	defer rr.Close()
	// The object must be the one Open saw: a writer may have replaced it
	// since, and bytes of two versions spliced together would be parsed
	// as one file. S3 checks the ETag itself (pin); for the others, the
	// size and modification time are compared here.
	if rr.Size() != r.size || (!r.modTime.IsZero() && !rr.ModTime().IsZero() && !rr.ModTime().Equal(r.modTime)) {
		return 0, &Error{Op: "read", URL: r.name, Bucket: r.loc.bucket,
			Msg: fmt.Sprintf("the object changed while it was being read (size %d, modified %s when opened; now size %d, modified %s)",
				r.size, r.modTime.Format(time.RFC3339), rr.Size(), rr.ModTime().Format(time.RFC3339))}
	}
	n, err := io.ReadFull(progressReader{rr, wd}, p)
	r.stats.bytes.Add(int64(n))
	if s := wd.stalled(); err != nil && s != nil {
		return n, r.readError(off, len(p), s)
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			err = fmt.Errorf("connection ended after %d of %d bytes: %w", n, len(p), io.ErrUnexpectedEOF)
		}
		return n, r.readError(off, len(p), err)
	}
	return n, nil
}

// pin makes an S3 GET conditional on the ETag seen at Open, so a replaced
// object fails with PreconditionFailed instead of returning new bytes.
func (r *Reader) pin(as func(any) bool) error {
	var in *s3.GetObjectInput
	if r.etag != "" && as(&in) {
		in.IfMatch = aws.String(r.etag)
	}
	return quiet(as)
}

// quiet stops the S3 SDK from printing "Response has no supported
// checksum. Not validating response payload." on stderr for every ranged
// GET: a range has no stored checksum to validate against (whole-object
// reads are still validated when the object has one), and the SDK's
// default logger prints debug lines.
func quiet(as func(any) bool) error {
	var opts *[]func(*s3.Options)
	if as(&opts) {
		*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	}
	return nil
}

func (r *Reader) readError(off int64, n int, err error) error {
	e := wrap("read", r.loc, err)
	if se, ok := e.(*Error); ok && se.Op == "read" {
		se.Msg = fmt.Sprintf("bytes %d-%d: %s", off, off+int64(n)-1, se.Msg)
	}
	return e
}

// blockCache keeps the last CacheBlocks blocks read. A block being fetched
// is in the cache already, so concurrent readers of one block wait for one
// request instead of each making their own.
type blockCache struct {
	mu     sync.Mutex
	blocks []*block
	tick   uint64
}

type block struct {
	idx   int64
	ready chan struct{} // closed when data or err is set
	data  []byte
	err   error
	used  uint64
}

func (c *blockCache) get(idx int64, load func(int64) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	c.tick++
	for _, b := range c.blocks {
		if b.idx == idx {
			b.used = c.tick
			c.mu.Unlock()
			<-b.ready
			return b.data, b.err
		}
	}
	b := &block{idx: idx, ready: make(chan struct{}), used: c.tick}
	c.evict()
	c.blocks = append(c.blocks, b)
	c.mu.Unlock()

	b.data, b.err = load(idx)
	close(b.ready)
	if b.err != nil {
		// A failed fetch is not remembered: the next read tries again.
		c.mu.Lock()
		c.remove(b)
		c.mu.Unlock()
	}
	return b.data, b.err
}

// evict makes room for one block by dropping the least recently used
// block that is not being fetched. c.mu is held.
func (c *blockCache) evict() {
	for len(c.blocks) >= CacheBlocks {
		var lru *block
		for _, b := range c.blocks {
			select {
			case <-b.ready:
			default:
				continue // being fetched: someone is waiting for it
			}
			if lru == nil || b.used < lru.used {
				lru = b
			}
		}
		if lru == nil {
			return // all in flight; the bound is exceeded by these only
		}
		c.remove(lru)
	}
}

func (c *blockCache) remove(b *block) {
	for i, x := range c.blocks {
		if x == b {
			c.blocks = append(c.blocks[:i], c.blocks[i+1:]...)
			return
		}
	}
}

func (c *blockCache) drop() {
	c.mu.Lock()
	c.blocks = nil
	c.mu.Unlock()
}
