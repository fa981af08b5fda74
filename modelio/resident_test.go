package modelio

import (
	"bytes"
	"hash/crc32"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/quantize"
)

// mapTestFile writes data to a file and maps it with mapFile.
func mapTestFile(t *testing.T, data []byte) (mapped []byte, release func() error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mapped, release, err = mapFile(f, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return mapped, release
}

// residentFileBytes is the process's resident file-backed memory (Linux
// /proc/self/statm "shared"), or -1 when it cannot be read.
func residentFileBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return -1
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return -1
	}
	return n * int64(os.Getpagesize())
}

// sink keeps the compiler from dropping reads done only to fault pages in.
var sink byte

// TestReleasePages: released ranges of a mapping (unaligned, partial,
// whole) still read back the file's bytes; on Linux the release really
// leaves the resident set; a slice of ordinary memory is left untouched.
func TestReleasePages(t *testing.T) {
	ps := os.Getpagesize()
	want := make([]byte, 8<<20+ps/2+3) // not a whole number of pages
	rand.New(rand.NewSource(1)).Read(want)
	m, release := mapTestFile(t, want)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	if !isMapped(m) && runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1" {
		t.Fatal("isMapped is false for a mapping mapFile made")
	}
	touch := func() (sum byte) {
		for i := 0; i < len(m); i += ps / 2 {
			sum += m[i]
		}
		return sum
	}
	sink += touch()
	before := residentFileBytes()
	for _, r := range [][2]int{{ps + 1, 3*ps - 1}, {0, 1}, {len(m) - 1, len(m)}, {5, 5}, {0, len(m)}} {
		if err := releasePages(m[r[0]:r[1]]); err != nil {
			t.Fatalf("releasePages(m[%d:%d]): %v", r[0], r[1], err)
		}
	}
	after := residentFileBytes()
	if !bytes.Equal(m, want) {
		t.Fatal("the mapping reads differently after releasePages")
	}
	if runtime.GOOS == "linux" && before >= 0 && after >= 0 && before-after < int64(len(m))*3/4 {
		t.Errorf("resident file memory went from %d to %d bytes: releasing the %d-byte mapping dropped too little", before, after, len(m))
	}

	heap := append([]byte(nil), want[:4*ps]...)
	if isMapped(heap) {
		t.Error("isMapped is true for ordinary memory")
	}
	if err := releasePages(heap[ps:]); err != nil || !bytes.Equal(heap, want[:4*ps]) {
		t.Errorf("releasePages on ordinary memory: err %v, or the memory changed", err)
	}

	released = true
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if isMapped(m) {
		t.Error("isMapped is still true after the mapping was released")
	}
}

// writeTestModel writes ts as a safetensors model file.
func writeTestModel(t *testing.T, ts []Tensor) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteSafetensors(p, TensorsSpec(ts), nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// randomBatch draws n examples with bags of 0 to 3 indices per table.
func randomBatch(net *model.Network, n int, rng *rand.Rand) *model.Batch {
	b := &model.Batch{N: n, NumDense: net.NumDense, Dense: make([]float32, n*net.NumDense)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32()
	}
	for _, tb := range net.Tables {
		off := []int32{0}
		var idx []int64
		for range n {
			for range rng.Intn(4) {
				idx = append(idx, rng.Int63n(tb.Rows))
			}
			off = append(off, int32(len(idx)))
		}
		b.Indices = append(b.Indices, idx)
		b.Offsets = append(b.Offsets, off)
	}
	return b
}

// samePredictions runs batches random batches of rows examples (drawn for
// ref) through got and want and fails unless every prediction agrees bit
// for bit; what names got's condition in the message.
func samePredictions(t *testing.T, got, want, ref *model.Network, batches, rows int, seed int64, what string) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	g, w := model.NewRunner(got, 2), model.NewRunner(want, 2)
	for range batches {
		b := randomBatch(ref, rows, rng)
		wp, err := w.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		gp, err := g.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wp {
			if gp[i] != wp[i] {
				t.Fatalf("example %d: %v %s, %v from memory", i, gp[i], what, wp[i])
			}
		}
	}
}

// TestResidentBudget: a loaded model's mapped tables beyond
// ResidentTableBytes get a Release, which the runner calls after each batch,
// and predictions stay bit-identical to the same model held in memory.
func TestResidentBudget(t *testing.T) {
	rows := []int{3000, 5000, 4000}
	ts := dlrmTensors([]int{4, 8}, rows, nil, 8+6, []int{6, 1})
	path := writeTestModel(t, ts)
	ref, _, err := BuildNetwork("ref", ts) // ordinary memory
	if err != nil {
		t.Fatal(err)
	}

	defer func(b int64) { ResidentTableBytes = b }(ResidentTableBytes)
	ResidentTableBytes = 4 * 8 * int64(rows[0]+rows[1]/2) // the first table fits, the others not
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mapped := isMapped(kernels.F32Bytes(m.Net.Tables[0].Weight))
	for i, tb := range m.Net.Tables {
		if want := mapped && i > 0; (tb.Release != nil) != want {
			t.Errorf("%s: Release set %v, want %v", tb.Name, tb.Release != nil, want)
		}
	}
	calls := 0
	for _, tb := range m.Net.Tables {
		if r := tb.Release; r != nil {
			tb.Release = func() { calls++; r() }
		}
	}

	samePredictions(t, m.Net, ref, ref, 5, 64, 2, "from the released model")
	if mapped && calls != 5*2 {
		t.Errorf("Release called %d times, want once per batch for each of 2 tables", calls)
	}

	// Nothing is released when the tables fit.
	ResidentTableBytes = 1 << 40
	m2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for _, tb := range m2.Net.Tables {
		if tb.Release != nil {
			t.Errorf("%s: Release set although every table fits the budget", tb.Name)
		}
	}
}

// TestWriteQuantizedFromMapping: quantizing a memory-mapped model (whose
// source pages the writer releases block by block) writes the same bytes
// as quantizing the same model held in ordinary memory, for streamed,
// fp32 and in-memory quantized tables alike.
func TestWriteQuantizedFromMapping(t *testing.T) {
	rows := []int{2*encodeRowsBlock + 7, 1000}
	ts := dlrmTensors([]int{4, 8}, rows, nil, 8+3, []int{6, 1})
	path := writeTestModel(t, ts)
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref, _, err := BuildNetwork("ref", ts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, preset := range []string{"int8-dynamic", "pytorch-dynamic", "fp16"} {
		write := func(net *model.Network, name string, stream bool) []byte {
			plan, err := quantize.Preset(preset, net)
			if err != nil {
				t.Fatal(err)
			}
			var q *model.Network
			tables := map[string]TableEncoding{}
			if stream {
				q, err = quantize.ApplyFC(net, plan, nil)
				for _, tb := range net.Tables {
					lp := plan.Layer(tb.Name)
					f, _ := quantize.TableFormat(lp.Precision)
					tables[tb.Name] = TableEncoding{Format: f, Encode: func(w []float32, rows, dim int, dst []byte) {
						quantize.QuantizeTableRows(f, lp.Greedy, w, rows, dim, dst)
					}}
				}
			} else {
				q, err = quantize.Apply(net, plan, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, name)
			if err := WriteQuantized(p, q, tables, QuantInfo{SourceSHA256: "00", Plan: plan.Encode()}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		want := write(ref, preset+".ref", true)
		for _, stream := range []bool{true, false} {
			if got := write(m.Net, preset+".mapped", stream); !bytes.Equal(got, want) {
				t.Errorf("%s (streamed %v): the mapped model quantizes to different bytes", preset, stream)
			}
		}
		// A quantized file read back (mapped) and written again is unchanged.
		q, err := Load(filepath.Join(dir, preset+".ref"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, preset+".again")
		if err := WriteQuantized(p, q.Net, nil, QuantInfo{SourceSHA256: "00", Plan: []byte(q.Meta["rq.plan"].(string))}); err != nil {
			t.Fatal(err)
		}
		q.Close()
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s: a mapped quantized file writes back differently", preset)
		}
	}
}

// TestChecksumReleasing: the CRC of a mapping checked block by block with
// releases is the plain CRC, and the mapping still reads the same.
func TestChecksumReleasing(t *testing.T) {
	want := make([]byte, 2*crcBlock+12345)
	rand.New(rand.NewSource(3)).Read(want)
	m, release := mapTestFile(t, want)
	defer release()
	for _, r := range []bool{false, true} {
		if got := checksum(m, r); got != crc32.ChecksumIEEE(want) {
			t.Errorf("checksum(release %v) = %08x, want %08x", r, got, crc32.ChecksumIEEE(want))
		}
	}
	if !bytes.Equal(m, want) {
		t.Error("the mapping reads differently after checksum")
	}
}

// TestLoadTorchReleased: a checkpoint larger than the resident budget,
// released while its CRCs are checked and run with released tables, gives
// the same tensors and predictions as one kept resident.
func TestLoadTorchReleased(t *testing.T) {
	pt := torchSharedPath(t, "criteo-18k/dlrm-criteo.pt")
	defer func(b int64) { ResidentTableBytes = b }(ResidentTableBytes)
	load := func(budget int64) *Model {
		ResidentTableBytes = budget
		m, err := Load(pt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	kept, released := load(1<<40), load(0)
	for _, tb := range released.Net.Tables {
		if tb.Release == nil && isMapped(kernels.F32Bytes(tb.Weight)) {
			t.Errorf("%s: no Release with a budget of 0", tb.Name)
		}
	}
	if len(kept.Tensors) != len(released.Tensors) {
		t.Fatalf("%d tensors, want %d", len(released.Tensors), len(kept.Tensors))
	}
	for i := range kept.Tensors {
		if !bytes.Equal(kept.Tensors[i].Data, released.Tensors[i].Data) {
			t.Errorf("%s differs", kept.Tensors[i].Name)
		}
	}
	samePredictions(t, released.Net, kept.Net, kept.Net, 3, 300, 4, "released")
}

// TestPrepareTables: tables within the budget move to anonymous memory
// (huge pages where the kernel gives them), those beyond it stay mapped,
// predictions do not change, and Close unmaps the copies.
func TestPrepareTables(t *testing.T) {
	rows := []int{70000, 3000, 90000} // 2.2 MB, 96 KB (under a huge page), 2.9 MB of fp32
	ts := dlrmTensors([]int{4, 8}, rows, nil, 8+6, []int{6, 1})
	path := writeTestModel(t, ts)
	ref, _, err := BuildNetwork("ref", ts)
	if err != nil {
		t.Fatal(err)
	}
	defer func(b int64) { ResidentTableBytes = b }(ResidentTableBytes)
	ResidentTableBytes = 4 * 8 * int64(rows[0]+rows[1]) // the third is beyond
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	mapped := isMapped(kernels.F32Bytes(m.Net.Tables[0].Weight))
	// The first table moves only when the lookups pay for its copy.
	need := int64(len(kernels.F32Bytes(m.Net.Tables[0].Weight)) / hugeBytesPerLookup)
	for _, lookups := range []int64{need - 1, need} {
		lm, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		lm.PrepareTables(lookups)
		want := mapped && (lookups < need || runtime.GOOS != "linux")
		if still := isMapped(kernels.F32Bytes(lm.Net.Tables[0].Weight)); still != want {
			t.Errorf("%d lookups: %s mapped %v after PrepareTables, want %v", lookups, lm.Net.Tables[0].Name, still, want)
		}
		if err := lm.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m.PrepareTables(-1) // unknown: every table within the budget
	for i, tb := range m.Net.Tables {
		still := isMapped(kernels.F32Bytes(tb.Weight))
		want := mapped && (i != 0 || runtime.GOOS != "linux")
		if still != want {
			t.Errorf("%s: mapped %v after PrepareTables, want %v", tb.Name, still, want)
		}
	}
	samePredictions(t, m.Net, ref, ref, 3, 64, 3, "on huge pages")
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestResidentMX: an MX table's codes and scales are both the table's
// memory: beyond ResidentTableBytes both are released after each batch,
// within it the codes move onto huge pages when the lookups pay (the small
// scales are read in instead), and predictions stay bit for bit those of
// the same file loaded plainly.
func TestResidentMX(t *testing.T) {
	rows := []int{600000, 3000, 600000} // mxfp4 at dim 8: 2.4 MB of codes, 0.6 MB of scales
	ts := dlrmTensors([]int{4, 8}, rows, nil, 8+6, []int{6, 1})
	net, _, err := BuildNetwork("ref", ts)
	if err != nil {
		t.Fatal(err)
	}
	enc := map[string]TableEncoding{}
	for _, tb := range net.Tables {
		enc[tb.Name] = TableEncoding{MX: kernels.MXFP4E2M1}
	}
	path := filepath.Join(t.TempDir(), "mx.safetensors")
	if err := os.WriteFile(path, encodeQuantized(t, net, enc, QuantInfo{}), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	k0, ok := plain.Net.Tables[0].Kernel.(*kernels.MXBagTable)
	if !ok {
		t.Fatalf("table kernel %T, want an MX table", plain.Net.Tables[0].Kernel)
	}
	mapped := isMapped(k0.Codes)

	defer func(b int64) { ResidentTableBytes = b }(ResidentTableBytes)
	ResidentTableBytes = k0.Bytes() + 3000*5 // tables 0 and 1 fit, table 2 not
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, tb := range m.Net.Tables {
		if want := mapped && i == 2; (tb.Release != nil) != want {
			t.Errorf("%s: Release set %v, want %v", tb.Name, tb.Release != nil, want)
		}
	}
	m.PrepareTables(-1)
	k := m.Net.Tables[0].Kernel.(*kernels.MXBagTable)
	wantCodesMapped := mapped && runtime.GOOS != "linux"
	if isMapped(k.Codes) != wantCodesMapped || isMapped(k.Scales) != mapped {
		t.Errorf("after PrepareTables: codes mapped %v (want %v), scales mapped %v (want %v)", isMapped(k.Codes), wantCodesMapped, isMapped(k.Scales), mapped)
	}
	samePredictions(t, m.Net, plain.Net, plain.Net, 3, 64, 4, "with MX tables released and on huge pages")
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
