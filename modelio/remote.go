package modelio

// Model files in object storage (s3://, gs://, azblob:// URLs, issue 16),
// read through package storage with ranged requests, never downloaded
// whole first:
//
//   - safetensors: the 8-byte length and the header first, then each
//     tensor's byte range into one anonymous memory region laid out as the
//     file is, so the tensors alias it exactly as they alias the mapping of
//     a local file and every check of the header runs on the same bytes
//     (ParseSafetensorsContext). Bytes no tensor covers are never fetched.
//   - PyTorch checkpoints: archive/zip over the storage.Reader (an
//     io.ReaderAt): the central directory, data.pkl and each storage entry
//     are ranged reads, through the same parser as a local file that cannot
//     be mapped.
//
// What is read is held in memory (a local file stays in the page cache and
// can be released table by table): a model in object storage must fit in
// memory. Local paths and file:// URLs keep the memory-mapped code.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"unsafe"

	"github.com/rqtools/rq/storage"
)

// remoteChunk is the largest ranged request reading tensor bytes, and
// remoteFetchers how many run at once: a single GET stream from S3 runs at
// roughly 100 MB/s, several in parallel at the link's speed; 16 MiB keeps
// the requests few and a failed one cheap to report.
const (
	remoteChunk    = 16 << 20
	remoteFetchers = 4
)

// sniffObject tells an object's model format from its first bytes, as Sniff
// does for a file.
func sniffObject(r *storage.Reader) (Format, error) {
	var head [9]byte
	n, err := r.ReadAt(head[:min(int64(len(head)), r.Size())], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return sniffHead(r.Name(), head[:n])
}

// openObject opens an object and tells its model format.
func openObject(ctx context.Context, path string) (*storage.Reader, Format, error) {
	r, err := storage.Open(ctx, path)
	if err != nil {
		return nil, "", err
	}
	format, err := sniffObject(r)
	if err != nil {
		r.Close()
		return nil, "", err
	}
	return r, format, nil
}

// openSafetensorsObject reads a safetensors object: its header, checked by
// the parser of local files, then every tensor's bytes.
func openSafetensorsObject(ctx context.Context, r *storage.Reader) (*SafetensorsFile, error) {
	name, size := r.Name(), r.Size()
	if size < 8 {
		b := make([]byte, size)
		if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return ParseSafetensorsContext(ctx, name, b)
	}
	if uint64(size) > math.MaxInt {
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("object of %d bytes is too large for this platform", size)}
	}
	var head [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("reading the safetensors header: %w", err)
	}
	n := binary.LittleEndian.Uint64(head[:])
	if err := checkHeaderLen(name, n, size); err != nil {
		return nil, err
	}
	data, release, err := anonRegion(size)
	if err != nil {
		return nil, fmt.Errorf("%s: holding the %d-byte model in memory: %w (a model in object storage is read into memory; copy a larger one to a local disk)", name, size, err)
	}
	ok := false
	defer func() {
		if !ok {
			release()
		}
	}()
	copy(data, head[:])
	if _, err := r.ReadAt(data[8:8+n], 8); err != nil {
		return nil, fmt.Errorf("reading the safetensors header: %w", err)
	}
	f, err := ParseSafetensorsContext(ctx, name, data)
	if err != nil {
		return nil, err
	}
	if err := fetchTensors(ctx, r, data, f.Tensors); err != nil {
		return nil, err
	}
	readOnly(data)
	f.release = release
	ok = true
	return f, nil
}

// A span is a run of file bytes to fetch, and the tensor it starts in
// (for messages).
type span struct {
	off, end int64
	tensor   string
}

// fetchTensors reads each tensor's bytes into its place in data (the
// object's layout): adjacent tensors are fetched together, in requests of
// at most remoteChunk bytes, remoteFetchers at a time.
func fetchTensors(ctx context.Context, r *storage.Reader, data []byte, tensors []Tensor) error {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	var runs []span
	for _, t := range tensors { // in physical order
		if len(t.Data) == 0 {
			continue
		}
		off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(t.Data))) - base)
		end := off + int64(len(t.Data))
		if k := len(runs) - 1; k >= 0 && runs[k].end == off {
			runs[k].end = end
			continue
		}
		runs = append(runs, span{off, end, t.Name})
	}
	// Cut the runs into requests, each named after the tensor holding its
	// first byte.
	var reqs []span
	ti := 0
	for _, run := range runs {
		for off := run.off; off < run.end; off += remoteChunk {
			for ti+1 < len(tensors) && tensorEnd(base, &tensors[ti]) <= off {
				ti++
			}
			reqs = append(reqs, span{off, min(off+remoteChunk, run.end), tensors[ti].Name})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan span)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	for range min(remoteFetchers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				if _, err := r.ReadAt(data[s.off:s.end], s.off); err != nil {
					fail(fmt.Errorf("reading tensor %q: %w", s.tensor, err))
					return
				}
			}
		}()
	}
send:
	for _, s := range reqs {
		select {
		case next <- s:
		case <-ctx.Done():
			break send
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctxErr(ctx, r.Name())
}

func tensorEnd(base uintptr, t *Tensor) int64 {
	if len(t.Data) == 0 {
		return -1
	}
	return int64(uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))-base) + int64(len(t.Data))
}

// readTorchObject reads a torch.save checkpoint from an object: zip's
// central directory, data.pkl and the storages the state dict uses, each
// a ranged read into its own buffer.
func readTorchObject(ctx context.Context, r *storage.Reader) (*Checkpoint, error) {
	if r.Size() == 0 {
		return nil, &FormatError{File: r.Name(), Msg: "empty file, not a PyTorch checkpoint"}
	}
	return parseTorchContext(ctx, r.Name(), r, r.Size(), nil, defaultTorchLimits())
}

// objectSHA256 is FileSHA256 of an object, read in large ranged requests.
func objectSHA256(path string) (string, error) {
	r, err := storage.Open(context.Background(), path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	// Reads of storage.BlockSize or more go straight to the server, one
	// request each, past the Reader's cache.
	if _, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, r.Size()), make([]byte, 8*storage.BlockSize)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeSafetensorsObject uploads a safetensors file to an object that
// appears only when complete: a failure, or a stop signal before the
// upload is completed, leaves any older object in place.
func writeSafetensorsObject(path string, specs []TensorSpec, metadata map[string]string) error {
	w, err := storage.Create(context.Background(), path)
	if err != nil {
		return err
	}
	defer w.Abort()
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := EncodeSafetensors(bw, specs, metadata); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit() // refuses after a stop signal (atomicfile.Freeze)
}

// loadObject is LoadWith for an object: one Open (its size, and that it
// exists and the credentials are accepted), the format from its first
// bytes, then the format's reader. The object is not needed once read.
func loadObject(ctx context.Context, path string, o LoadOptions) (*Model, error) {
	r, format, err := openObject(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var sf *SafetensorsFile
	var c *Checkpoint
	switch format {
	case FormatSafetensors:
		sf, err = openSafetensorsObject(ctx, r)
	case FormatTorch:
		c, err = readTorchObject(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	return build(path, format, sf, c, o)
}
