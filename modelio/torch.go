package modelio

// Reading PyTorch checkpoints: the zip files torch.save writes since PyTorch
// 1.6. Layout: <folder>/data.pkl is a pickle of the saved object (a state
// dict, or a dict holding one) in which every tensor is a call to
// torch._utils._rebuild_tensor_v2 on a storage named by a persistent id
// ('storage', torch.FloatStorage, key, location, numel); the storage's bytes
// are the zip entry <folder>/data/<key>, little-endian, normally stored
// uncompressed. The folder is the file's stem at save time, so it varies.
//
// The pickle goes through the restricted unpickler in pickle.go with the
// torch allow-list below: nothing in the file is ever executed.

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/big"
	"os"
	"slices"
	"strings"
)

// Checkpoint is a PyTorch checkpoint's state dict and its other top-level
// entries. Tensor data may alias a read-only memory map of the file: call
// Close when done, and do not use the tensors afterwards.
type Checkpoint struct {
	Path string
	// Tensors is the state dict, in file order. Contiguous tensors alias the
	// file; non-contiguous ones (a transposed view saved as is) are copied
	// into C order.
	Tensors []Tensor
	// Meta holds the other top-level entries (epochs, accuracies, ...) as
	// plain Go values: nil, bool, int64, *big.Int, float64, string, []byte,
	// []any, map[string]any; numpy scalars become numbers. Entries holding
	// tensors or other objects, and optimizer state, are left out.
	Meta    map[string]any
	release func() error
}

// Close releases the file mapping the tensors may alias. It is safe to call
// more than once.
func (c *Checkpoint) Close() error {
	if c == nil || c.release == nil {
		return nil
	}
	r := c.release
	c.release = nil
	return r()
}

// torchLimits bounds what reading one checkpoint may allocate beyond the
// file itself (the documented values are in budget.go).
type torchLimits struct {
	maxPickle    int64 // bytes of data.pkl, counted as inflated
	inflateRatio int64 // deflated storages may inflate to this times the file size ...
	inflateFloor int64 // ... plus this, in total
	maxGather    int64 // bytes copied for views larger than their storage; other non-contiguous views may add the file size
}

func defaultTorchLimits() torchLimits {
	return torchLimits{
		maxPickle:    MaxPickleBytes,
		inflateRatio: 8,
		inflateFloor: MaxInflatedStorageBytes,
		maxGather:    MaxViewCopyBytes,
	}
}

// ReadTorch reads a torch.save checkpoint, memory-mapping the file so that
// stored (uncompressed) tensors are not copied: models can be tens of GB.
func ReadTorch(path string) (*Checkpoint, error) {
	return ReadTorchContext(context.Background(), path)
}

// ReadTorchContext is ReadTorch, stopping with ctx's error (wrapped, so
// errors.Is(err, context.Canceled) holds) when ctx is done before it ends.
func ReadTorchContext(ctx context.Context, path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // a mapping stays valid after its descriptor is closed
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &FormatError{File: path, Msg: "not a regular file"}
	}
	size := st.Size()
	if size == 0 {
		return nil, &FormatError{File: path, Msg: "empty file, not a PyTorch checkpoint"}
	}
	data, release, err := mapFile(f, size)
	if err != nil {
		// Some filesystems cannot be mapped: read the tensors instead.
		return parseTorchContext(ctx, path, f, size, nil, defaultTorchLimits())
	}
	c, err := parseTorchContext(ctx, path, bytes.NewReader(data), size, data, defaultTorchLimits())
	if err != nil {
		release()
		return nil, err
	}
	c.release = release
	return c, nil
}

// ParseTorch reads a torch.save checkpoint of size bytes from r; name is used
// in errors. Each storage is read into its own buffer.
func ParseTorch(name string, r io.ReaderAt, size int64) (*Checkpoint, error) {
	return parseTorch(name, r, size, nil, defaultTorchLimits())
}

// ParseTorchContext is ParseTorch, stopping with ctx's error when ctx is
// done before it ends.
func ParseTorchContext(ctx context.Context, name string, r io.ReaderAt, size int64) (*Checkpoint, error) {
	return parseTorchContext(ctx, name, r, size, nil, defaultTorchLimits())
}

// torchReader is one checkpoint being read.
type torchReader struct {
	ctx     context.Context
	name    string
	r       io.ReaderAt
	size    int64
	mapped  []byte // the whole file when memory-mapped, else nil
	lim     torchLimits
	prefix  string // "<folder>/"
	entries map[string]*zip.File
	pklName string

	storages     map[string]*torchStorage // persistent ids seen, by key and type
	storageBytes map[string][]byte        // storage contents read, by key
	readLeft     int64                    // bytes left to read into buffers (unmapped stored entries)
	inflateLeft  int64                    // bytes left to inflate for deflated storages
	gatherLeft   int64                    // bytes left for non-contiguous copies
	expandLeft   int64                    // bytes left for copies of views larger than their storage
}

// The pre-1.6 format: a pickled magic number first.
var torchLegacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

func parseTorch(name string, r io.ReaderAt, size int64, mapped []byte, lim torchLimits) (*Checkpoint, error) {
	return parseTorchContext(context.Background(), name, r, size, mapped, lim)
}

func parseTorchContext(ctx context.Context, name string, r io.ReaderAt, size int64, mapped []byte, lim torchLimits) (*Checkpoint, error) {
	if err := ctxErr(ctx, name); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, &FormatError{File: name, Msg: "negative size"}
	}
	var head [16]byte
	n, err := r.ReadAt(head[:min(int64(len(head)), size)], 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == min(int64(len(head)), size)) {
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("reading: %v", err)}
	}
	h := head[:n]
	switch {
	case bytes.HasPrefix(h, torchLegacyMagic):
		return nil, &UnsupportedError{File: name, What: "the legacy (PyTorch < 1.6) non-zip checkpoint format; re-save with torch.save(..., _use_new_zipfile_serialization=True)"}
	case len(h) >= 2 && h[0] == 0x80 && h[1] <= 5:
		return nil, &UnsupportedError{File: name, What: "a bare pickle, not a torch.save zip archive; re-save with torch.save(..., _use_new_zipfile_serialization=True)"}
	case !bytes.HasPrefix(h, []byte("PK\x03\x04")) && !bytes.HasPrefix(h, []byte("PK\x05\x06")):
		return nil, &FormatError{File: name, Msg: "not a PyTorch checkpoint: torch.save writes a zip archive, and this file does not start like one"}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("reading the zip archive: %v (truncated or corrupt?)", err)}
	}
	if size > (math.MaxInt64-lim.inflateFloor)/max(lim.inflateRatio, 1) || size > math.MaxInt64-lim.maxGather {
		return nil, &FormatError{File: name, Msg: "file too large"}
	}
	tr := &torchReader{
		ctx: ctx, name: name, r: r, size: size, mapped: mapped, lim: lim,
		entries:      make(map[string]*zip.File, len(zr.File)),
		storages:     map[string]*torchStorage{},
		storageBytes: map[string][]byte{},
		readLeft:     size,
		inflateLeft:  lim.inflateFloor + lim.inflateRatio*size,
		gatherLeft:   lim.maxGather + size,
		expandLeft:   lim.maxGather,
	}
	var pkls []string
	for i, f := range zr.File {
		if i%ctxEvery == 0 {
			if err := ctxErr(ctx, name); err != nil {
				return nil, err
			}
		}
		if _, dup := tr.entries[f.Name]; dup {
			return nil, &FormatError{File: name, Msg: fmt.Sprintf("zip entry %s appears twice", quoteForMsg([]byte(f.Name)))}
		}
		tr.entries[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && dir != "" && !strings.Contains(dir, "/") {
			pkls = append(pkls, f.Name)
		}
	}
	switch len(pkls) {
	case 0:
		for n := range tr.entries {
			if strings.HasSuffix(n, "/constants.pkl") {
				return nil, &UnsupportedError{File: name, What: "a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead"}
			}
		}
		return nil, &FormatError{File: name, Msg: "zip archive has no <folder>/data.pkl entry, so it is not a torch.save checkpoint"}
	case 1:
	default:
		slices.Sort(pkls)
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("zip archive has %d data.pkl entries (%s), expected one", len(pkls), strings.Join(pkls[:min(len(pkls), 3)], ", "))}
	}
	tr.pklName = pkls[0]
	tr.prefix = strings.TrimSuffix(tr.pklName, "data.pkl")

	// Storages are read as little-endian; torch records the writer's byte
	// order since 1.12 (no record means little-endian).
	if f, ok := tr.entries[tr.prefix+"byteorder"]; ok {
		b, err := tr.readEntry(f, 16, -1, false)
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			return nil, &UnsupportedError{File: name, What: "a checkpoint written on a big-endian machine"}
		default:
			return nil, &FormatError{File: name, Msg: fmt.Sprintf("%s holds %s, expected \"little\" or \"big\"", f.Name, quoteForMsg(b))}
		}
	}

	pkl, err := tr.readEntry(tr.entries[tr.pklName], lim.maxPickle, -1, false)
	if err != nil {
		return nil, err
	}
	u := newUnpickler(pkl, torchGlobals)
	u.persistentLoad = tr.persistentLoad
	u.ctx, u.file, u.entry = ctx, name, tr.pklName
	obj, err := u.run()
	if err != nil {
		var ge *pickleGlobalError
		var fe *FormatError
		var ue *UnsupportedError
		var le *LimitError
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return nil, err
		case errors.As(err, &le):
			return nil, le
		case errors.As(err, &ge):
			hint := "; if the checkpoint holds a whole model object, re-save its state dict: torch.save(model.state_dict(), path)"
			if ge.module == "torch" || ge.module == "torch._utils" || ge.module == "torch._tensor" {
				hint = "; rq reads dense tensors only (not quantized, sparse or other tensor types)"
			}
			return nil, &UnsupportedError{File: name, What: ge.Error() + hint}
		case errors.As(err, &fe):
			return nil, fe
		case errors.As(err, &ue):
			return nil, ue
		}
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("%s: %v", tr.pklName, err)}
	}
	return tr.checkpoint(obj)
}

// readEntry returns a zip entry's contents, at most limit bytes. want, when
// not negative, is the size the pickle says the entry must have. Stored
// entries of a mapped file are sliced from the mapping; others are read into
// a buffer. The CRC is checked either way: a flipped bit in a weight would
// otherwise go unnoticed. A deflated storage (storage set) is also charged
// to the checkpoint's inflate budget.
func (tr *torchReader) readEntry(f *zip.File, limit, want int64, storage bool) ([]byte, error) {
	usize, csize := f.UncompressedSize64, f.CompressedSize64
	if usize > math.MaxInt64 || csize > math.MaxInt64 {
		return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s has an impossible size", f.Name)}
	}
	if want >= 0 && int64(usize) != want {
		return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s holds %d bytes, the checkpoint expects %d", f.Name, usize, want)}
	}
	if int64(usize) > limit {
		return nil, &LimitError{File: tr.name, What: fmt.Sprintf("the %d bytes zip entry %s declares", usize, f.Name), Limit: limit, Unit: "bytes"}
	}
	switch f.Method {
	case zip.Store:
		if usize != csize {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("stored zip entry %s has compressed size %d but size %d", f.Name, csize, usize)}
		}
		off, err := f.DataOffset()
		if err != nil {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s: %v", f.Name, err)}
		}
		n := int64(usize)
		if off < 0 || off > tr.size || n > tr.size-off {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s (%d bytes at offset %d) runs past the end of the %d-byte file (truncated?)", f.Name, n, off, tr.size)}
		}
		var b []byte
		if tr.mapped != nil {
			b = tr.mapped[off : off+n : off+n]
		} else {
			// Stored entries of a well-formed zip do not overlap, so their
			// sum is at most the file size; a crafted zip pointing many
			// entries at the same bytes would otherwise multiply memory.
			if n > tr.readLeft {
				return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s: entries add up to more than the file size (overlapping entries?)", f.Name)}
			}
			tr.readLeft -= n
			b = make([]byte, n)
			if _, err := tr.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
				return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("reading zip entry %s: %v", f.Name, err)}
			}
		}
		// A checkpoint within the resident budget stays mapped after the
		// check, as the model will be used whole; a larger one is released
		// as it is checked (only part of it can stay resident anyway).
		sum, err := checksumContext(tr.ctx, tr.name, b, int64(len(tr.mapped)) > ResidentTableBytes)
		if err != nil {
			return nil, err
		}
		if sum != f.CRC32 {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s fails its CRC check (corrupt file)", f.Name)}
		}
		return b, nil
	case zip.Deflate:
		n := int64(usize)
		// Refuse zip bombs before inflating anything. The entry's declared
		// size is what is read (below) and at most limit.
		if storage {
			if n > tr.inflateLeft {
				return nil, &LimitError{File: tr.name, What: fmt.Sprintf("the bytes deflated storages inflate to (%d, up to zip entry %s of %d bytes compressed to %d)", tr.lim.inflateFloor+tr.lim.inflateRatio*tr.size-tr.inflateLeft+n, f.Name, n, csize), Limit: tr.lim.inflateFloor + tr.lim.inflateRatio*tr.size, Unit: "bytes"}
			}
			tr.inflateLeft -= n
		}
		rc, err := f.Open()
		if err != nil {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s: %v", f.Name, err)}
		}
		defer rc.Close()
		// Inflate exactly the declared size, in blocks so a cancelled load
		// stops here too; archive/zip fails an entry that inflates to more
		// than its header says, and the read of one byte more below makes
		// it check, so a lying header cannot get past limit either.
		b := make([]byte, n)
		for off := int64(0); off < n; {
			if err := ctxErr(tr.ctx, tr.name); err != nil {
				return nil, err
			}
			k := min(n-off, inflateBlock)
			if _, err := io.ReadFull(rc, b[off:off+k]); err != nil {
				return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("inflating zip entry %s: %v", f.Name, err)}
			}
			off += k
		}
		// Reading past the end makes archive/zip check the size and CRC.
		var one [1]byte
		if k, err := rc.Read(one[:]); k != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("more data than its declared size")
			}
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("zip entry %s: %v", f.Name, err)}
		}
		return b, nil
	}
	return nil, &UnsupportedError{File: tr.name, What: fmt.Sprintf("zip entry %s uses compression method %d (only stored and deflate are read)", f.Name, f.Method)}
}

// crcBlock is how many bytes checksum reads between releases and checks
// of the context; inflateBlock likewise for inflating.
const (
	crcBlock     = 8 << 20
	inflateBlock = 1 << 20
)

// checksum is crc32.ChecksumIEEE(b). With release, b's pages are released
// block by block as they are read, when b is memory-mapped (releasePages):
// checking the CRC reads every byte of the checkpoint at load time, and
// without the releases a model of 8 GB would sit wholly in the resident
// set before any work began, although each command then needs only a part
// of it at a time.
func checksum(b []byte, release bool) uint32 {
	sum, _ := checksumContext(context.Background(), "", b, release)
	return sum
}

// checksumContext is checksum, checking ctx between blocks: the CRC of a
// model of many GB takes seconds.
func checksumContext(ctx context.Context, file string, b []byte, release bool) (uint32, error) {
	var sum uint32
	for len(b) > 0 {
		if err := ctxErr(ctx, file); err != nil {
			return 0, err
		}
		k := min(len(b), crcBlock)
		sum = crc32.Update(sum, crc32.IEEETable, b[:k])
		if release {
			releasePages(b[:k])
		}
		b = b[k:]
	}
	return sum, nil
}

// --- pickle values for torch objects ---

// torchStorage is a storage named by a persistent id; its bytes are read
// only if a tensor of the state dict uses it.
type torchStorage struct {
	key      string
	dtype    DType  // element type; "" when rq does not handle it
	typeName string // the storage type as the pickle names it
	numel    int64  // elements of dtype (bytes for an untyped storage)
	location string
}

func (*torchStorage) pyTypeName() string { return "torch storage" }

// torchTensor is a rebuilt tensor: a strided view of a storage.
type torchTensor struct {
	storage   *torchStorage
	dtype     DType
	dtypeName string
	offset    int64 // in elements of dtype
	shape     []int
	stride    []int64
	param     bool // an nn.Parameter
}

func (*torchTensor) pyTypeName() string { return "torch tensor" }

// costTensor is a torchTensor's struct, as charged to the unpickler.
const costTensor = 128

// The torch storage classes and dtypes, with rq's DType ("" = known to torch
// but not read by rq: refused only if a state-dict tensor uses it).
var (
	torchStorageTypes = map[string]DType{
		"FloatStorage": F32, "DoubleStorage": F64, "HalfStorage": F16, "BFloat16Storage": BF16,
		"LongStorage": I64, "IntStorage": I32, "ShortStorage": I16, "CharStorage": I8,
		"ByteStorage": U8, "BoolStorage": Bool,
		"ComplexFloatStorage": "", "ComplexDoubleStorage": "", "QInt8Storage": "",
		"QUInt8Storage": "", "QInt32Storage": "", "QUInt4x2Storage": "", "QUInt2x4Storage": "",
	}
	torchDTypes = map[string]DType{
		"float32": F32, "float": F32, "float64": F64, "double": F64, "float16": F16, "half": F16,
		"bfloat16": BF16, "int64": I64, "long": I64, "int32": I32, "int": I32, "int16": I16,
		"short": I16, "int8": I8, "uint8": U8, "bool": Bool,
		"complex64": "", "complex128": "", "cfloat": "", "cdouble": "", "complex32": "",
		"uint16": "", "uint32": "", "uint64": "", "float8_e4m3fn": "", "float8_e5m2": "",
		"float8_e4m3fnuz": "", "float8_e5m2fnuz": "", "qint8": "", "quint8": "", "qint32": "",
		"quint4x2": "", "quint2x4": "",
	}
	// Untyped storages hold bytes; newer torch pairs them with an explicit
	// dtype in _rebuild_tensor_v3.
	torchUntypedStorages = []string{"torch.UntypedStorage", "torch.storage.UntypedStorage", "torch.storage._UntypedStorage"}
)

// torchGlobals is the allow-list for checkpoints: plain data, numpy scalars,
// and torch's tensor rebuild functions, storage types and dtypes.
var torchGlobals = func() map[string]*pyGlobal {
	m := pickleBaseGlobals()
	add := func(full string, call func(u *unpickler, args pyTuple) (any, error)) {
		i := strings.LastIndexByte(full, '.')
		m[full] = &pyGlobal{module: full[:i], name: full[i+1:], call: call}
	}
	for n := range torchStorageTypes {
		add("torch."+n, nil)
	}
	for _, n := range torchUntypedStorages {
		add(n, nil)
	}
	add("torch.storage.TypedStorage", nil)
	add("torch.storage._TypedStorage", nil)
	for n := range torchDTypes {
		add("torch."+n, nil)
	}
	add("torch._utils._rebuild_tensor", func(u *unpickler, a pyTuple) (any, error) { return rebuildTensor(u, a, 4, false) })
	add("torch._utils._rebuild_tensor_v2", func(u *unpickler, a pyTuple) (any, error) { return rebuildTensor(u, a, 6, false) })
	add("torch._utils._rebuild_tensor_v3", func(u *unpickler, a pyTuple) (any, error) { return rebuildTensor(u, a, 7, true) })
	add("torch._utils._rebuild_parameter", rebuildParameter)
	add("torch._utils._rebuild_parameter_with_state", rebuildParameter)
	add("torch._tensor._rebuild_from_type_v2", rebuildFromType)
	for _, n := range []string{"torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter", "torch.nn.Parameter"} {
		add(n, nil)
	}
	add("torch.Size", callTuple)
	add("torch.device", callTorchDevice)
	return m
}()

// persistentLoad resolves ('storage', storage_type, key, location, numel).
func (tr *torchReader) persistentLoad(u *unpickler, pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) != 5 {
		return nil, u.errf("persistent id is a %s, expected a 5-tuple ('storage', type, key, location, numel)", pyTypeName(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, u.errf("persistent id of kind %s, expected 'storage'", pyTypeName(t[0]))
	}
	key, ok1 := t[2].(string)
	loc, ok2 := t[3].(string)
	numel, ok3 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || numel < 0 || len(key) > 256 {
		return nil, u.errf("persistent id %s is not ('storage', type, str key, str location, int numel)", pyTypeName(pid))
	}
	st := &torchStorage{key: key, location: loc, numel: numel}
	switch g := t[1].(type) {
	case *pyGlobal:
		st.typeName = g.String()
		if g.module == "torch" {
			if d, ok := torchStorageTypes[g.name]; ok {
				st.dtype = d
				break
			}
			// A dtype in place of the storage class.
			if d, ok := torchDTypes[g.name]; ok {
				st.dtype = d
				break
			}
		}
		if slices.Contains(torchUntypedStorages, g.String()) {
			st.dtype = U8
			break
		}
		return nil, u.errf("storage %s has type %s, which carries no element type", quoteForMsg([]byte(key)), g)
	default:
		return nil, u.errf("storage %s has a %s for its type", quoteForMsg([]byte(key)), pyTypeName(t[1]))
	}
	if st.dtype != "" && numel > math.MaxInt64/int64(st.dtype.Size()) {
		return nil, u.errf("storage %s claims %d elements", quoteForMsg([]byte(key)), numel)
	}
	// The same storage is named once per tensor using it: share one value.
	ck := key + "\x00" + st.typeName
	if prev, ok := tr.storages[ck]; ok {
		if prev.numel != numel {
			return nil, u.errf("storage %s is named with %d and %d elements", quoteForMsg([]byte(key)), prev.numel, numel)
		}
		return prev, nil
	}
	if len(tr.storages) >= len(tr.entries) {
		return nil, u.errf("more distinct storages than the archive has entries")
	}
	tr.storages[ck] = st
	return st, nil
}

func pyInt(v any) (int64, bool) {
	i, ok := v.(int64)
	return i, ok
}

// intTuple reads a shape or stride: a tuple (or torch.Size, also a tuple) of
// non-negative ints, at most 64 long.
func intTuple(v any, what string) ([]int64, error) {
	items, ok := iterItems(v)
	if !ok {
		return nil, fmt.Errorf("%s is a %s, not a tuple", what, pyTypeName(v))
	}
	if len(items) > 64 {
		return nil, fmt.Errorf("%s has %d dimensions", what, len(items))
	}
	out := make([]int64, len(items))
	for i, x := range items {
		n, ok := pyInt(x)
		if !ok || n < 0 {
			return nil, fmt.Errorf("%s[%d] is not a non-negative int", what, i)
		}
		out[i] = n
	}
	return out, nil
}

// rebuildTensor implements _rebuild_tensor(storage, offset, size, stride),
// _v2 (..., requires_grad, backward_hooks[, metadata]) and _v3 (...,
// backward_hooks, dtype[, metadata]). Only the structure is checked here; the
// view is checked against the storage when its bytes are read.
func rebuildTensor(u *unpickler, a pyTuple, nargs int, hasDType bool) (any, error) {
	if len(a) < nargs || len(a) > nargs+1 {
		return nil, fmt.Errorf("takes %d or %d arguments, got %d", nargs, nargs+1, len(a))
	}
	st, ok := a[0].(*torchStorage)
	if !ok {
		return nil, fmt.Errorf("storage argument is a %s", pyTypeName(a[0]))
	}
	off, ok := pyInt(a[1])
	if !ok || off < 0 {
		return nil, fmt.Errorf("storage offset is not a non-negative int")
	}
	shape, err := intTuple(a[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(a[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(stride) != len(shape) {
		return nil, fmt.Errorf("size has %d dimensions but stride has %d", len(shape), len(stride))
	}
	// The tensor's struct and its shape and stride (two copies of the
	// shape: intTuple's and t.shape).
	if err := u.charge(costTensor + 24*int64(len(shape))); err != nil {
		return nil, err
	}
	t := &torchTensor{storage: st, dtype: st.dtype, dtypeName: st.typeName, offset: off, stride: stride}
	t.shape = make([]int, len(shape))
	numel := int64(1)
	for i, d := range shape {
		if d > math.MaxInt32*int64(256) {
			return nil, fmt.Errorf("dimension %d of %d is too large", i, d)
		}
		t.shape[i] = int(d)
		if d != 0 && numel > (1<<50)/d {
			return nil, fmt.Errorf("size %v has too many elements", shape)
		}
		numel *= d
	}
	if hasDType {
		dt, ok := a[6].(*pyGlobal)
		if !ok {
			return nil, fmt.Errorf("dtype argument is a %s", pyTypeName(a[6]))
		}
		d, known := torchDTypes[dt.name]
		if dt.module != "torch" || !known {
			return nil, fmt.Errorf("dtype argument %s is not a torch dtype", dt)
		}
		t.dtype, t.dtypeName = d, dt.String()
		if st.dtype == "" {
			t.dtype = "" // the storage itself is not readable
		}
	}
	return t, nil
}

// rebuildParameter implements _rebuild_parameter(data, requires_grad,
// backward_hooks) and _rebuild_parameter_with_state(..., state).
func rebuildParameter(u *unpickler, a pyTuple) (any, error) {
	if len(a) != 3 && len(a) != 4 {
		return nil, fmt.Errorf("takes 3 or 4 arguments, got %d", len(a))
	}
	t, ok := a[0].(*torchTensor)
	if !ok {
		return nil, fmt.Errorf("data argument is a %s, not a tensor", pyTypeName(a[0]))
	}
	if err := u.charge(costTensor); err != nil {
		return nil, err
	}
	p := *t
	p.param = true
	return &p, nil
}

// rebuildFromType implements _rebuild_from_type_v2(func, type, args, state),
// written for tensor subclasses and tensors with Python attributes: func must
// itself be an allowed rebuild function and type a tensor type.
func rebuildFromType(u *unpickler, a pyTuple) (any, error) {
	if len(a) != 4 {
		return nil, fmt.Errorf("takes 4 arguments, got %d", len(a))
	}
	fn, ok := a[0].(*pyGlobal)
	if !ok || fn.call == nil || !strings.HasPrefix(fn.String(), "torch._utils._rebuild_") {
		return nil, fmt.Errorf("rebuild function is a %s", pyTypeName(a[0]))
	}
	typ, ok := a[1].(*pyGlobal)
	if !ok || !slices.Contains([]string{"torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter", "torch.nn.Parameter"}, typ.String()) {
		return nil, fmt.Errorf("tensor type %s is not supported", pyTypeName(a[1]))
	}
	args, ok := a[2].(pyTuple)
	if !ok {
		return nil, fmt.Errorf("arguments are a %s, not a tuple", pyTypeName(a[2]))
	}
	v, err := fn.call(u, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	t, ok := v.(*torchTensor)
	if !ok {
		return nil, fmt.Errorf("%s did not build a tensor", fn)
	}
	if strings.HasSuffix(typ.name, "Parameter") {
		p := *t
		p.param = true
		t = &p
	}
	return t, nil
}

// callTorchDevice implements torch.device('cpu') / torch.device('cuda', 0)
// as the device's name.
func callTorchDevice(u *unpickler, a pyTuple) (any, error) {
	if len(a) < 1 || len(a) > 2 {
		return nil, fmt.Errorf("takes 1 or 2 arguments, got %d", len(a))
	}
	s, ok := a[0].(string)
	if !ok {
		return nil, fmt.Errorf("device type is a %s", pyTypeName(a[0]))
	}
	if len(a) == 2 {
		if i, ok := pyInt(a[1]); ok {
			return fmt.Sprintf("%s:%d", s, i), nil
		}
	}
	return s, nil
}

// --- from pickle values to a Checkpoint ---

// torchStateDictKeys are the top-level keys training scripts keep a state
// dict under, in the order they are tried.
var torchStateDictKeys = []string{"state_dict", "model_state_dict", "model"}

func hasTensor(d *pyDict) bool {
	for _, v := range d.vals {
		if _, ok := v.(*torchTensor); ok {
			return true
		}
	}
	return false
}

func (tr *torchReader) checkpoint(obj any) (*Checkpoint, error) {
	top, ok := obj.(*pyDict)
	if !ok {
		return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("the checkpoint holds a %s, expected a dict (a state dict, or a dict with one under %s)", pyTypeName(obj), strings.Join(torchStateDictKeys, ", "))}
	}
	var sd *pyDict
	sdKey := ""
	for _, k := range torchStateDictKeys {
		if v, ok := top.get(k); ok {
			if d, ok := v.(*pyDict); ok && hasTensor(d) {
				sd, sdKey = d, k
				break
			}
		}
	}
	if sd == nil && hasTensor(top) {
		sd = top
	}
	if sd == nil {
		keys := make([]string, 0, 20)
		for i, k := range top.keys {
			if i == 20 {
				keys = append(keys, "...")
				break
			}
			if s, ok := k.(string); ok {
				keys = append(keys, truncForMsg([]byte(s)))
			} else {
				keys = append(keys, pyTypeName(k))
			}
		}
		return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("no state dict of tensors found: the top-level dict has keys [%s], and none of %s holds a dict of tensors", strings.Join(keys, ", "), strings.Join(torchStateDictKeys, ", "))}
	}

	c := &Checkpoint{Path: tr.name, Meta: map[string]any{}}
	// Metadata is converted entry by entry, each within toPlain's node cap;
	// entries share values through the memo, so the conversions also
	// share a total, or 100,000 references to one large list would be
	// converted 100,000 times.
	metaNodes := 0
	plain := func(v any) (any, bool) {
		if metaNodes >= maxMetaNodes {
			return nil, false
		}
		n := 0
		p, ok := toPlain(v, 0, &n)
		metaNodes += n
		return p, ok
	}
	for i, k := range sd.keys {
		name, ok := k.(string)
		if !ok {
			return nil, &FormatError{File: tr.name, Msg: fmt.Sprintf("state dict key %d is a %s, not a name", i, pyTypeName(k))}
		}
		t, ok := sd.vals[i].(*torchTensor)
		if !ok {
			if sd == top {
				// A bare dict mixing tensors and other values: the others are
				// metadata.
				if v, ok := plain(sd.vals[i]); ok {
					c.Meta[name] = v
				}
				continue
			}
			return nil, &FormatError{File: tr.name, Tensor: name, Msg: fmt.Sprintf("state dict entry is a %s, not a tensor", pyTypeName(sd.vals[i]))}
		}
		data, err := tr.tensorData(name, t)
		if err != nil {
			return nil, err
		}
		c.Tensors = append(c.Tensors, Tensor{Name: name, DType: t.dtype, Shape: slices.Clone(t.shape), Data: data})
	}
	if sd != top {
		for i, k := range top.keys {
			name, ok := k.(string)
			if !ok || name == sdKey || isOptimizerKey(name) {
				continue
			}
			if v, ok := plain(top.vals[i]); ok {
				c.Meta[name] = v
			}
		}
	}
	return c, nil
}

// isOptimizerKey tells optimizer state (momentum buffers, step counts:
// training-only and often as large as the model) from metadata.
func isOptimizerKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "optim") || strings.HasPrefix(k, "opt_") || k == "opt" || strings.HasPrefix(k, "scheduler") || strings.HasPrefix(k, "lr_scheduler")
}

// maxMetaNodes caps the values converted for a checkpoint's Meta in total;
// entries past it are left out, like entries too large on their own.
const maxMetaNodes = 100_000

// toPlain converts a pickle value to plain Go data; ok is false when it
// holds a tensor or an object, or is too large or deep to be metadata
// (shared references could otherwise make the walk exponential). Bytes
// and big integers are shared with the pickle's values, not copied: the
// unpickler made them (they alias no input), and a copy per reference
// would let one 64 MiB value referenced 10,000 times cost 640 GB.
//
// Long strings and bytes count one node per 64 bytes, so an entry holds at
// most ~640 KB and all of Meta ~6.4 MB: commands print Meta (rq inspect
// formats every value), and a large value printed once per reference
// would cost what copying it did. Integers longer than Python prints
// (4300 digits) are left out: formatting one is quadratic.
func toPlain(v any, depth int, nodes *int) (any, bool) {
	*nodes++
	switch x := v.(type) {
	case string:
		*nodes += len(x) / 64
	case []byte:
		*nodes += len(x) / 64
	case *big.Int:
		if x.BitLen() > maxDecimalDigits*10/3 {
			return nil, false
		}
	}
	if depth > 32 || *nodes > 10000 {
		return nil, false
	}
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
		return x, true
	case *big.Int, []byte:
		return x, true
	case pyTuple, *pyList, *pySet:
		items, _ := iterItems(x)
		out := make([]any, len(items))
		for i, it := range items {
			p, ok := toPlain(it, depth+1, nodes)
			if !ok {
				return nil, false
			}
			out[i] = p
		}
		return out, true
	case *pyDict:
		out := make(map[string]any, x.len())
		for i, k := range x.keys {
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			p, ok := toPlain(x.vals[i], depth+1, nodes)
			if !ok {
				return nil, false
			}
			out[s] = p
		}
		return out, true
	}
	return nil, false
}

// tensorData returns a tensor's elements in C order: a slice of its storage
// when the view is contiguous, else a gathered copy.
func (tr *torchReader) tensorData(name string, t *torchTensor) ([]byte, error) {
	if t.dtype == "" {
		return nil, &UnsupportedError{File: tr.name, What: fmt.Sprintf("tensor %q has element type %s, which rq does not read", name, t.dtypeName)}
	}
	st := t.storage
	stBytes, err := tr.storageData(name, st)
	if err != nil {
		return nil, err
	}
	es := int64(t.dtype.Size())
	avail := int64(len(stBytes)) / es // elements of the tensor's dtype
	numel := int64(1)
	for _, d := range t.shape {
		numel *= int64(d) // bounded by 1<<50 in rebuildTensor
	}
	if numel == 0 {
		return []byte{}, nil
	}
	// The last element the view touches must lie inside the storage.
	last := t.offset
	for i, d := range t.shape {
		if int64(d) > 1 {
			if t.stride[i] > (math.MaxInt64-last)/(int64(d)-1) {
				last = math.MaxInt64
				break
			}
			last += (int64(d) - 1) * t.stride[i]
		}
	}
	if last >= avail {
		return nil, &FormatError{File: tr.name, Tensor: name, Msg: fmt.Sprintf("view (offset %d, shape %v, stride %v) reaches element %d, beyond its storage %q of %d elements", t.offset, t.shape, t.stride, last, st.key, avail)}
	}
	contiguous := true
	expect := int64(1)
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.stride[i] != expect {
			contiguous = false
			break
		}
		expect *= int64(t.shape[i])
	}
	if contiguous {
		return stBytes[t.offset*es : (t.offset+numel)*es : (t.offset+numel)*es], nil
	}
	// A non-contiguous view is copied. One with more elements than its
	// storage (a stride-0 or overlapping view: x.expand(), as_strided)
	// makes data the file does not hold, from a few bytes of pickle: those
	// copies share a small absolute budget. Other views copy at most what
	// the file holds, unless several share a storage; all copies together
	// stay within that budget plus the file's size.
	n := numel * es
	if numel > avail {
		if n > tr.expandLeft {
			return nil, &LimitError{File: tr.name, What: fmt.Sprintf("copies of tensor views larger than their storage (tensor %q: shape %v, strides %v over %d stored elements, %d bytes)", name, t.shape, t.stride, avail, n), Limit: tr.lim.maxGather, Unit: "bytes"}
		}
		tr.expandLeft -= n
	}
	if n > tr.gatherLeft {
		return nil, &LimitError{File: tr.name, What: fmt.Sprintf("copies of non-contiguous tensor views (tensor %q: %d bytes, with those before it; re-save it with .contiguous())", name, n), Limit: tr.lim.maxGather + tr.size, Unit: "bytes"}
	}
	tr.gatherLeft -= n
	return gatherStrided(tr.ctx, tr.name, stBytes, es, t.offset, t.shape, t.stride, n)
}

// gatherStrided copies a strided view (already bounds-checked) into C order.
func gatherStrided(ctx context.Context, file string, src []byte, es, offset int64, shape []int, stride []int64, n int64) ([]byte, error) {
	out := make([]byte, 0, n)
	nd := len(shape)
	inner, innerStride := int64(shape[nd-1]), stride[nd-1]
	idx := make([]int, nd) // odometer over all but the last dimension
	for rows := 0; ; rows++ {
		if rows%ctxEvery == 0 {
			if err := ctxErr(ctx, file); err != nil {
				return nil, err
			}
		}
		base := offset
		for i := 0; i < nd-1; i++ {
			base += int64(idx[i]) * stride[i]
		}
		if innerStride == 1 {
			out = append(out, src[base*es:(base+inner)*es]...)
		} else {
			for j := int64(0); j < inner; j++ {
				p := (base + j*innerStride) * es
				out = append(out, src[p:p+es]...)
			}
		}
		i := nd - 2
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}

// storageData returns a storage's bytes, reading its zip entry once.
func (tr *torchReader) storageData(name string, st *torchStorage) ([]byte, error) {
	if b, ok := tr.storageBytes[st.key]; ok {
		if int64(len(b))%int64(st.dtype.Size()) != 0 || int64(len(b))/int64(st.dtype.Size()) != st.numel {
			return nil, &FormatError{File: tr.name, Tensor: name, Msg: fmt.Sprintf("storage %q is used as %d elements of %s and as %d bytes elsewhere", st.key, st.numel, st.dtype, len(b))}
		}
		return b, nil
	}
	entry := tr.prefix + "data/" + st.key
	f, ok := tr.entries[entry]
	if !ok {
		return nil, &FormatError{File: tr.name, Tensor: name, Msg: fmt.Sprintf("storage %s is missing: the archive has no entry %s", quoteForMsg([]byte(st.key)), quoteForMsg([]byte(entry)))}
	}
	want := st.numel * int64(st.dtype.Size()) // no overflow: checked in persistentLoad
	b, err := tr.readEntry(f, math.MaxInt64, want, true)
	if err != nil {
		if fe, ok := err.(*FormatError); ok && fe.Tensor == "" {
			fe.Tensor = name
		}
		return nil, err
	}
	tr.storageBytes[st.key] = b
	return b, nil
}
