package modelio

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// Bounds the hostile-input tests assert. Loads measured here take 0.01-0.4 s
// and allocate at most ~300 MB in total; the bounds leave room for a loaded
// CI machine while still failing the unbudgeted readers (tens of seconds,
// 3-14 GB).
const (
	hostileTime  = 20 * time.Second
	hostileAlloc = 1 << 30 // bytes allocated in total, an upper bound on the peak heap
)

// hostileLoad loads path and checks that it fails with a *LimitError
// naming the file and containing want, within the time and allocation
// bounds.
func hostileLoad(t *testing.T, path, want string, limit int64) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	m, err := Load(path)
	took := time.Since(t0)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if err == nil {
		m.Close()
		t.Fatalf("%s loaded", path)
	}
	t.Logf("%s: %v, %d MB allocated: %v", filepath.Base(path), took.Round(time.Millisecond), alloc>>20, err)
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("got %T %v, want a *LimitError", err, err)
	}
	msg := err.Error()
	if le.File != path || !strings.HasPrefix(msg, path+": ") || strings.Contains(msg, "\n") {
		t.Errorf("message %q does not start with the file name on one line", msg)
	}
	if !strings.Contains(msg, want) || le.Limit != limit || !strings.Contains(msg, fmt.Sprint(limit)) {
		t.Errorf("message %q does not name %q and the limit %d", msg, want, limit)
	}
	if took > hostileTime {
		t.Errorf("took %v, more than %v", took, hostileTime)
	}
	if alloc > hostileAlloc {
		t.Errorf("allocated %d MB, more than %d MB", alloc>>20, hostileAlloc>>20)
	}
}

// --- building hostile files (as testdata/hostile/gen.go does) ---

type rseg struct {
	data  []byte
	times int
}

// deflateRepeated deflates the concatenation of the segments by deflating
// each once (a fresh compressor, flushed to a byte boundary, so its blocks
// refer only to itself) and repeating its blocks: 1 GiB in well under a
// second. It returns the stream, the CRC-32 and the inflated size.
func deflateRepeated(segs ...rseg) ([]byte, uint32, uint64) {
	var out bytes.Buffer
	var crc uint32
	var size uint64
	for _, s := range segs {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestCompression)
		w.Write(s.data)
		w.Flush()
		for range s.times {
			out.Write(b.Bytes())
			crc = crc32.Update(crc, crc32.IEEETable, s.data)
			size += uint64(len(s.data))
		}
	}
	out.Write([]byte{1, 0, 0, 0xff, 0xff}) // final empty stored block
	return out.Bytes(), crc, size
}

// dictsPickle is a protocol 2 pickle of n EMPTY_DICT opcodes, deflated.
func dictsPickle(n int) ([]byte, uint32, uint64) {
	const chunk = 1 << 20
	return deflateRepeated(rseg{[]byte("\x80\x02"), 1},
		rseg{bytes.Repeat([]byte("}"), chunk), n / chunk},
		rseg{append(bytes.Repeat([]byte("}"), n%chunk), '.'), 1})
}

// rawZip writes entries whose bytes are given as stored (method Store) or
// as a deflate stream, with the declared size and CRC given.
func rawZip(t testing.TB, path string, entries ...rawEntry) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: e.method, CRC32: e.crc,
			CompressedSize64: uint64(len(e.raw)), UncompressedSize64: e.size})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.raw)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type rawEntry struct {
	name   string
	method uint16
	raw    []byte
	crc    uint32
	size   uint64
}

func stored(name string, data []byte) rawEntry {
	return rawEntry{name, zip.Store, data, crc32.ChecksumIEEE(data), uint64(len(data))}
}

// --- the cases of issue 12 ---

// A 1 MB .pt whose data.pkl inflates to 1 GiB of '}' ran rq out of memory
// at 14 GB: its declared size is now refused before inflating.
func TestHostilePickleBomb(t *testing.T) {
	raw, crc, size := dictsPickle(1<<30 - 3)
	p := filepath.Join(t.TempDir(), "bomb.pt")
	rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
	if st, _ := os.Stat(p); st.Size() > 2<<20 {
		t.Fatalf("bomb is %d bytes", st.Size())
	}
	hostileLoad(t, p, "archive/data.pkl", MaxPickleBytes)
}

// A zip header that understates data.pkl's size cannot get more than the
// limit inflated: inflating stops at the declared size (at most the limit)
// and the entry is refused.
func TestHostilePickleBombLyingHeader(t *testing.T) {
	raw, crc, _ := dictsPickle(1<<30 - 3)
	p := filepath.Join(t.TempDir(), "liar.pt")
	rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, MaxPickleBytes})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	_, err := Load(p)
	took := time.Since(t0)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%v, %d MB allocated: %v", took.Round(time.Millisecond), alloc>>20, err)
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "archive/data.pkl") {
		t.Fatalf("got %T %v", err, err)
	}
	if took > hostileTime || alloc > MaxPickleBytes+64<<20 {
		t.Errorf("took %v and %d MB: inflating did not stop at the declared size", took, alloc>>20)
	}
}

// 20 M empty dicts from a 20 KB file took 3.6 GB: charged what a dict
// costs, they stop at MaxPickleValueBytes, whatever the file's size.
func TestHostileManyDicts(t *testing.T) {
	raw, crc, size := dictsPickle(20_000_000)
	p := filepath.Join(t.TempDir(), "dicts.pt")
	rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
	hostileLoad(t, p, "values built by archive/data.pkl", MaxPickleValueBytes)
}

// Values that cost little (None, small ints, memo references) stop at
// MaxPickleObjects.
func TestHostileManyObjects(t *testing.T) {
	raw, crc, size := deflateRepeated(rseg{[]byte("\x80\x02N"), 1}, rseg{bytes.Repeat([]byte("2"), 1<<20), 8}, rseg{[]byte("."), 1})
	p := filepath.Join(t.TempDir(), "dups.pt")
	rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
	hostileLoad(t, p, "objects built by archive/data.pkl (at byte 2000002, opcode DUP)", MaxPickleObjects)
}

// Values are charged what they cost: dicts with one entry each stop at the
// byte budget before the object count.
func TestHostileDictEntries(t *testing.T) {
	// EMPTY_DICT, NONE, NONE, SETITEM (key None), repeated: 4 objects and
	// ~500 bytes of charges per dict.
	raw, crc, size := deflateRepeated(rseg{[]byte("\x80\x02"), 1},
		rseg{bytes.Repeat([]byte("}NNs"), 1<<18), 16}, rseg{[]byte("."), 1})
	p := filepath.Join(t.TempDir(), "entries.pt")
	rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
	hostileLoad(t, p, "values built by archive/data.pkl", MaxPickleValueBytes)
}

// A stride-0 fp16 view of 16 values as (2^25, 16) took 3.1 GB.
func TestHostileStrideZero(t *testing.T) {
	view := func(rows int64) string {
		p := filepath.Join(t.TempDir(), "stride0.pt")
		pkl := torchTestPickle(tspec{name: "emb_l.0.weight", stype: "torch.HalfStorage", key: "0", numel: 16,
			shape: []int64{rows, 16}, stride: []int64{0, 1}})
		rawZip(t, p, stored("archive/data.pkl", pkl), stored("archive/data/0", make([]byte, 32)))
		return p
	}
	hostileLoad(t, view(1<<25), `tensor "emb_l.0.weight"`, MaxViewCopyBytes)

	// Within the budget such a view is still read, as copies.
	c, err := ReadTorch(view(4))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Tensors[0]; len(got.Data) != 4*16*2 {
		t.Fatalf("%v: %d bytes", &got, len(got.Data))
	}
	// Many views of one storage share the budget.
	var specs []tspec
	for i := range 40 {
		specs = append(specs, tspec{name: fmt.Sprintf("v%d", i), stype: "torch.HalfStorage", key: "0", numel: 16,
			shape: []int64{1 << 20, 16}, stride: []int64{0, 1}}) // 32 MiB each
	}
	p := filepath.Join(t.TempDir(), "views.pt")
	rawZip(t, p, stored("archive/data.pkl", torchTestPickle(specs...)), stored("archive/data/0", make([]byte, 32)))
	hostileLoad(t, p, `tensor "v2"`, MaxViewCopyBytes)
}

// Deflated storages inflate to at most MaxInflatedStorageBytes beyond 8x
// the file's size.
func TestHostileStorageBomb(t *testing.T) {
	const n = 256 << 20
	raw, crc, size := deflateRepeated(rseg{make([]byte, 1<<20), n >> 20})
	pkl := torchTestPickle(tspec{name: "w", stype: "torch.FloatStorage", key: "0", numel: n / 4, shape: []int64{n / 4}, stride: []int64{1}})
	p := filepath.Join(t.TempDir(), "storage.pt")
	rawZip(t, p, stored("archive/data.pkl", pkl), rawEntry{"archive/data/0", zip.Deflate, raw, crc, size})
	st, _ := os.Stat(p)
	hostileLoad(t, p, "deflated storages", MaxInflatedStorageBytes+8*st.Size())
}

// safetensorsFile writes a safetensors file with the given header.
func safetensorsFile(t *testing.T, name, header string) string {
	for (8+len(header))%8 != 0 {
		header += " "
	}
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(header)))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, header); err != nil {
		t.Fatal(err)
	}
	return p
}

// A 100 MB header of 8.3 M metadata keys took 37 s and 2.3 GB; other
// 100 MB headers (one long name, a long value, many tensors) took seconds.
func TestHostileSafetensorsHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB headers")
	}
	var b strings.Builder
	b.WriteString(`{"__metadata__":{`)
	for i := range 7_100_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%07d":""`, i)
	}
	b.WriteString("}}")
	hostileLoad(t, safetensorsFile(t, "keys.safetensors", b.String()), "entries of the header's __metadata__", MaxSafetensorsMetadataEntries)

	long := strings.Repeat("a", 99_000_000)
	hostileLoad(t, safetensorsFile(t, "value.safetensors", `{"__metadata__":{"k":"`+long+`"}}`), "bytes of the header's __metadata__", MaxSafetensorsMetadataBytes)

	b.Reset()
	b.WriteString("{")
	for i := range 1_650_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%07d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, i)
	}
	b.WriteString("}")
	hostileLoad(t, safetensorsFile(t, "tensors.safetensors", b.String()), "tensors the header describes", MaxSafetensorsTensors)

	hostileLoad(t, safetensorsFile(t, "big.safetensors", "{}"+strings.Repeat(" ", MaxSafetensorsHeader)), "header", MaxSafetensorsHeader)

	// One 99 MB tensor name is within every budget: it is read, quickly,
	// and refused for what it is (no DLRM network has such a tensor).
	p := safetensorsFile(t, "name.safetensors", `{"`+long+`":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`)
	t0 := time.Now()
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if took := time.Since(t0); took > hostileTime {
		t.Errorf("a 99 MB name took %v", took)
	}
}

// The committed seeds (testdata/hostile, written by gen.go) each fail with
// their limit.
func TestHostileSeeds(t *testing.T) {
	cases := []struct {
		file, want string
		limit      int64
	}{
		{"dicts.pt", "values built by archive/data.pkl", MaxPickleValueBytes},
		{"claims_1gib.pt", "1073741824 bytes zip entry archive/data.pkl declares", MaxPickleBytes},
		{"stride0.pt", `tensor "emb_l.0.weight": shape [33554432 16], strides [0 1] over 16 stored elements`, MaxViewCopyBytes},
		{"metadata_keys.safetensors", "entries of the header's __metadata__", MaxSafetensorsMetadataEntries},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join("testdata", "hostile", c.file)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() >= 64<<10 {
				t.Errorf("seed of %d bytes; seeds stay under 64 KB", st.Size())
			}
			hostileLoad(t, p, c.want, c.limit)
		})
	}
}

func TestLimitErrorMessage(t *testing.T) {
	err := fmt.Errorf("loading: %w", &LimitError{File: "m.pt", What: "the objects built by m/data.pkl", Limit: 2_000_000})
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != 2_000_000 {
		t.Fatalf("errors.As: %v", err)
	}
	want := "loading: m.pt: refused: the objects built by m/data.pkl exceed the limit of 2000000 (hostile or corrupt file? limits: docs/limits.md)"
	if err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}
	if s := (&LimitError{File: "f", What: "x", Limit: 64 << 20, Unit: "bytes"}).Error(); !strings.Contains(s, "64 MiB (67108864 bytes)") {
		t.Fatal(s)
	}
	if s := (&LimitError{File: "f", What: "x", Limit: 1000, Unit: "bytes"}).Error(); !strings.Contains(s, "limit of 1000 bytes") {
		t.Fatal(s)
	}
}

// --- what values cost ---

// TestPickleCharges measures the heap each kind of pickle value really
// takes and fails if the unpickler charges less: the byte budget bounds
// memory only if the charges are at least the real cost.
func TestPickleCharges(t *testing.T) {
	const n = 100_000
	rep := func(prefix, body, suffix string) []byte {
		return []byte("\x80\x02" + prefix + strings.Repeat(body, n) + suffix + ".")
	}
	bin := func(op byte, v uint32) string {
		return string(append([]byte{op}, binary.LittleEndian.AppendUint32(nil, v)...))
	}
	cases := []struct {
		name string
		pkl  []byte
	}{
		{"empty dicts", rep("(", "}", "t")},
		{"empty lists", rep("(", "]", "t")},
		{"empty sets", rep("(", "\x8f", "t")},
		{"empty tuples", rep("(", ")", "t")},
		{"dicts of one entry", rep("(", "}NNs", "t")},
		{"dicts of one int key", rep("(", "}"+bin('J', 1000)+"Ns", "t")},
		{"dicts of one tuple key", rep("(", "}NN\x86Ns", "t")},
		{"one dict, int keys", []byte("\x80\x02}(" + func() string {
			var b strings.Builder
			for i := range n {
				b.WriteString(bin('J', uint32(i)+1000) + "N")
			}
			return b.String()
		}() + "u.")},
		{"one set, int keys", []byte("\x80\x02\x8f(" + func() string {
			var b strings.Builder
			for i := range n {
				b.WriteString(bin('J', uint32(i)+1000))
			}
			return b.String()
		}() + "\x90.")},
		{"sets of one item", rep("(", "\x8f(N\x90", "t")},
		{"one list", rep("]", "Na", "")},
		{"lists by APPENDS", rep("(", "](NNe", "t")},
		{"ints", rep("(", bin('J', 1<<20), "t")},
		{"floats", rep("(", "G\x3f\xf0\x00\x00\x00\x00\x00\x00", "t")},
		{"strings", rep("(", "\x8c\x05hello", "t")},
		{"bytes", rep("(", "C\x05hello", "t")},
		{"tuples of 3", rep("(", "NNN\x87", "t")},
		{"memoized", rep("(", "N\x94", "t")},
		{"big ints", rep("(", "\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09", "t")},
		{"nested lists", rep("", "]", "") /* replaced below */},
	}
	// Lists nested by APPEND: each list inside the previous one.
	cases[len(cases)-1].pkl = []byte("\x80\x02" + strings.Repeat("]", n) + strings.Repeat("a", n-1) + ".")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUnpickler(c.pkl, nil)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v, err := u.run()
			if err != nil {
				t.Fatal(err)
			}
			// What stays live once garbage is collected: the values, and
			// the stack and memo at the largest size they reached. The
			// charges must cover it; the garbage of slices' growth on the
			// way is what the collector's headroom (GOGC) allows for.
			runtime.GC()
			runtime.ReadMemStats(&after)
			live := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			total := int64(after.TotalAlloc - before.TotalAlloc)
			runtime.KeepAlive(v)
			runtime.KeepAlive(u)
			t.Logf("charged %d B/value, live %d B/value, allocated %d B/value", u.alloc/n, live/n, total/n)
			if live > u.alloc {
				t.Errorf("live heap %d bytes, but only %d charged", live, u.alloc)
			}
		})
	}
}

// --- cancellation ---

// countdownCtx is a context that reports Canceled from the n-th call of
// Err on, so a test can cancel a parse at a known point in its loop.
type countdownCtx struct {
	context.Context
	left atomic.Int64
}

func cancelAfter(n int64) *countdownCtx {
	c := &countdownCtx{Context: context.Background()}
	c.left.Store(n)
	return c
}

func (c *countdownCtx) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func (c *countdownCtx) Done() <-chan struct{} { return nil }

func TestLoadContextCancelled(t *testing.T) {
	dir := t.TempDir()
	// A pickle of 1 M empty lists in a tuple (within budgets).
	pklPath := filepath.Join(dir, "lists.pt")
	raw, crc, size := deflateRepeated(rseg{[]byte("\x80\x02("), 1}, rseg{bytes.Repeat([]byte("]"), 1<<20), 1}, rseg{[]byte("t."), 1})
	rawZip(t, pklPath, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
	// A checkpoint with a 64 MiB stored storage (CRC loop) and a 32 MiB
	// deflated one (inflate loop).
	big := torchTestPickle(
		tspec{name: "a", stype: "torch.FloatStorage", key: "0", numel: 16 << 20, shape: []int64{16 << 20}, stride: []int64{1}},
		tspec{name: "b", stype: "torch.FloatStorage", key: "1", numel: 8 << 20, shape: []int64{8 << 20}, stride: []int64{1}})
	zeros := make([]byte, 64<<20)
	draw, dcrc, dsize := deflateRepeated(rseg{make([]byte, 1<<20), 32})
	crcPath := filepath.Join(dir, "crc.pt")
	rawZip(t, crcPath, stored("archive/data.pkl", big), stored("archive/data/0", zeros), rawEntry{"archive/data/1", zip.Deflate, draw, dcrc, dsize})
	// A transposed 8192 x 512 view (gather loop: a check every 4096 rows).
	gatherPath := filepath.Join(dir, "gather.pt")
	rawZip(t, gatherPath, stored("archive/data.pkl", torchTestPickle(tspec{name: "w", stype: "torch.FloatStorage", key: "0",
		numel: 8192 * 512, shape: []int64{8192, 512}, stride: []int64{1, 8192}})), stored("archive/data/0", make([]byte, 4*8192*512)))
	// A safetensors header of 90,000 tensors.
	var b strings.Builder
	b.WriteString("{")
	for i := range 90_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, i)
	}
	b.WriteString("}")
	stPath := safetensorsFile(t, "many.safetensors", b.String())

	// The checks a load makes, in order: LoadContext, parseTorch, the zip
	// entries (one per 4096), data.pkl's CRC, the opcode loop (one per
	// 4096 opcodes), then per storage its CRC (one per 8 MiB) or its
	// inflating (one per MiB), then the gather loop (one per 4096 rows).
	for _, c := range []struct {
		name, path string
		checks     int64 // context checks the load passes before it is cancelled
	}{
		{"before anything", pklPath, 0},
		{"pickle opcodes", pklPath, 100},   // 256 checks in the opcode loop
		{"CRC", crcPath, 6},                // checks 6-13: CRC of 64 MiB
		{"inflate", crcPath, 20},           // checks 14-45: inflating 32 MiB
		{"gather", gatherPath, 8},          // checks 6-7: CRC; 8-9: gather
		{"safetensors header", stPath, 10}, // 22 checks in the header loop
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := cancelAfter(c.checks)
			_, err := LoadContext(ctx, c.path)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if !strings.HasPrefix(err.Error(), c.path+": ") {
				t.Errorf("error %q does not name the file", err)
			}
			if left := ctx.left.Load(); left != -1 {
				t.Errorf("the load checked its context %d times, not %d", c.checks-left-1, c.checks)
			}
		})
	}
	// The same files load (or fail for their own reasons) without
	// cancellation, so the tests above stopped real work mid-way.
	for _, p := range []string{pklPath, crcPath, gatherPath, stPath} {
		ctx := cancelAfter(1 << 40)
		_, err := LoadContext(ctx, p)
		if errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if used := 1<<40 - ctx.left.Load(); used < 2 {
			t.Errorf("%s: only %d context checks", p, used)
		}
	}
	// A context cancelled by another goroutine while the load runs.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadContext(cctx, crcPath); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// --- the header tokenizer ---

// FuzzHeaderScanner checks that headerScanner yields what encoding/json's
// Decoder.Token (UseNumber) yields, and fails where it fails.
func FuzzHeaderScanner(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}`, `{"__metadata__":{"k":"v"}}`,
		`[1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"]`, `{"a":1,}`, `{"a" 1}`, `[1 2]`, `{} {}`, `"\ud800x"`,
		`"\ud800\u0041"`, `01`, `-`, `1.`, `1e`, `[`, `{"a":`, `tru`, `nul`, `"\x"`, "\"\x01\"", `{"a":1}]`, ` `,
	} {
		f.Add([]byte(s))
	}
	if entries, err := os.ReadDir(seedDir()); err == nil {
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(seedDir(), e.Name())); err == nil && len(b) > 8 {
				f.Add(b[8:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // refused before tokenizing; encoding/json would substitute U+FFFD
		}
		ours, errOurs := allTokens(&headerScanner{b: b})
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		theirs, errTheirs := allTokens(dec)
		// Decoder.Token says io.EOF wherever the input ends; the scanner
		// says io.ErrUnexpectedEOF inside a value (the parser treats both
		// alike there).
		ended := func(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }
		if ended(errOurs) != ended(errTheirs) || errOurs == io.EOF && errTheirs != io.EOF {
			t.Fatalf("%q: scanner ends with %v, encoding/json with %v", b, errOurs, errTheirs)
		}
		// encoding/json may report an error one token earlier (it checks
		// the byte after a number or literal with the value).
		n := min(len(ours), len(theirs))
		if ended(errOurs) && len(ours) != len(theirs) || len(ours)-n > 1 || len(theirs)-n > 1 {
			t.Fatalf("%q: %d tokens, encoding/json %d", b, len(ours), len(theirs))
		}
		for i := range n {
			if fmt.Sprintf("%T %v", ours[i], ours[i]) != fmt.Sprintf("%T %v", theirs[i], theirs[i]) {
				t.Fatalf("%q: token %d is %T %v, encoding/json %T %v", b, i, ours[i], ours[i], theirs[i], theirs[i])
			}
		}
	})
}

func allTokens(d interface{ Token() (json.Token, error) }) ([]json.Token, error) {
	var out []json.Token
	for len(out) < 100_000 {
		tok, err := d.Token()
		if err != nil {
			return out, err
		}
		out = append(out, tok)
	}
	return out, errors.New("too many tokens")
}

// Metadata entries that all refer to one large value (through the memo)
// are not converted once per reference: a 1 MiB bytes object named by
// 50,000 keys used to be copied 50,000 times (50 GB), a 9,000-item list
// converted 50,000 times. What is kept stays small enough to print (rq
// inspect formats every value).
func TestHostileSharedMetadata(t *testing.T) {
	for _, c := range []struct{ name, blob string }{
		{"bytes", "B" + string(binary.LittleEndian.AppendUint32(nil, 1<<20)) + strings.Repeat("x", 1<<20)},
		{"64 KiB bytes", "B" + string(binary.LittleEndian.AppendUint32(nil, 64<<10)) + strings.Repeat("x", 64<<10)},
		{"list", "(" + strings.Repeat("N", 9000) + "l"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkl := torchTestPickle(tspec{name: "w", stype: "torch.FloatStorage", key: "0", numel: 1, shape: []int64{1}, stride: []int64{1}})
			pkl = append(pkl[:len(pkl)-2:len(pkl)-2], pklUnicode(nil, "blob")...)
			pkl = append(pkl, c.blob+"r\xe8\x03\x00\x00"...) // LONG_BINPUT 1000
			for i := range 50_000 {
				pkl = pklUnicode(pkl, fmt.Sprintf("m%d", i))
				pkl = append(pkl, "j\xe8\x03\x00\x00"...) // LONG_BINGET 1000
			}
			pkl = append(pkl, "u."...)
			p := filepath.Join(t.TempDir(), "shared.pt")
			rawZip(t, p, stored("archive/data.pkl", pkl), stored("archive/data/0", make([]byte, 4)))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			t0 := time.Now()
			c, err := ReadTorch(p)
			took := time.Since(t0)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			t.Logf("%v, %d MB allocated, %d metadata entries", took.Round(time.Millisecond), alloc>>20, len(c.Meta))
			if took > hostileTime || alloc > hostileAlloc {
				t.Errorf("took %v and %d MB", took, alloc>>20)
			}
			if len(c.Tensors) != 1 || len(c.Meta) > 50_001 {
				t.Errorf("%d tensors, %d metadata entries", len(c.Tensors), len(c.Meta))
			}
			printed := 0
			for _, v := range c.Meta {
				printed += len(fmt.Sprint(v))
			}
			if printed > 64<<20 {
				t.Errorf("metadata prints as %d MB", printed>>20)
			}
		})
	}
}

// Protocol 0 integers cost time quadratic in their digits: a 64 MiB pickle
// of 100,000-digit INT lines took about 10 s. Lines past Python's own 4300
// digits are refused, and the work of shorter ones is charged.
func TestHostileDecimalIntegers(t *testing.T) {
	for _, c := range []struct {
		digits int
		want   string
	}{{4300, "steps"}, {99_999, "99999 digits"}} {
		line := "I" + strings.Repeat("9", c.digits) + "\n"
		raw, crc, size := deflateRepeated(rseg{[]byte("\x80\x02("), 1}, rseg{[]byte(line), (64<<20 - 16) / len(line)}, rseg{[]byte("t."), 1})
		p := filepath.Join(t.TempDir(), "ints.pt")
		rawZip(t, p, rawEntry{"archive/data.pkl", zip.Deflate, raw, crc, size})
		t0 := time.Now()
		_, err := Load(p)
		took := time.Since(t0)
		t.Logf("%d digits: %v: %v", c.digits, took.Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), p+": ") {
			t.Errorf("got %v, want an error naming %q", err, c.want)
		}
		if took > hostileTime {
			t.Errorf("took %v", took)
		}
	}
}
