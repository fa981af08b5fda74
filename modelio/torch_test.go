package modelio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rqtools/rq/internal/testshared"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// torchSharedPath finds a file of the shared reference data: a missing file
// skips the test locally but fails it in CI.
func torchSharedPath(t testing.TB, rel string) string {
	t.Helper()
	return testshared.Path(t, rel)
}

func torchFixture(name string) string { return filepath.Join("testdata", "torch", name) }

// safetensorsForTorchTest parses a safetensors file directly (8-byte header
// length, JSON header, data) so this test does not depend on the package's
// own safetensors reader.
func safetensorsForTorchTest(t *testing.T, path string) map[string]Tensor {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	data := b[8+n:]
	out := map[string]Tensor{}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		out[name] = Tensor{Name: name, DType: DType(e.DType), Shape: e.Shape, Data: data[e.Offsets[0]:e.Offsets[1]]}
	}
	return out
}

func checkDLRMCheckpoint(t *testing.T, c *Checkpoint, want map[string]Tensor) {
	t.Helper()
	if len(c.Tensors) != 40 || len(want) != 40 {
		t.Fatalf("%d tensors (safetensors has %d), want 40", len(c.Tensors), len(want))
	}
	byName := map[string]*Tensor{}
	for i := range c.Tensors {
		byName[c.Tensors[i].Name] = &c.Tensors[i]
	}
	if c.Tensors[0].Name != "emb_l.0.weight" || c.Tensors[39].Name != "top_l.4.bias" {
		t.Errorf("order: first %s, last %s", c.Tensors[0].Name, c.Tensors[39].Name)
	}
	for name, shape := range map[string][]int{"emb_l.0.weight": {254, 16}, "top_l.0.weight": {512, 367}} {
		tt := byName[name]
		if tt == nil || tt.DType != F32 || !slices.Equal(tt.Shape, shape) {
			t.Errorf("%s: got %v, want F32%v", name, tt, shape)
		}
	}
	for name, w := range want {
		g := byName[name]
		if g == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: got %v (%d bytes), want %v (%d bytes), bytes equal %v", name, g, len(g.Data), &w, len(w.Data), bytes.Equal(g.Data, w.Data))
		}
	}
	if v, ok := c.Meta["nepochs"].(int64); !ok || v != 2 {
		t.Errorf("Meta[nepochs] = %#v, want int64 2", c.Meta["nepochs"])
	}
	if v, ok := c.Meta["test_acc"].(float64); !ok || v < 0.77 || v > 0.78 {
		t.Errorf("Meta[test_acc] = %#v, want float64 0.7752...", c.Meta["test_acc"])
	}
	if v, ok := c.Meta["train_loss"].(float64); !ok || v < 0.39 || v > 0.40 {
		t.Errorf("Meta[train_loss] = %#v", c.Meta["train_loss"])
	}
	if _, ok := c.Meta["opt_state_dict"]; ok {
		t.Errorf("optimizer state in Meta")
	}
	if _, ok := c.Meta["state_dict"]; ok {
		t.Errorf("state dict in Meta")
	}
}

// The reference checkpoint reads, and every tensor's bytes equal the
// safetensors copy of the same state dict.
func TestReadTorchDLRM(t *testing.T) {
	pt := torchSharedPath(t, "criteo-18k/dlrm-criteo.pt")
	want := safetensorsForTorchTest(t, torchSharedPath(t, "criteo-18k/model.safetensors"))

	c, err := ReadTorch(pt)
	if err != nil {
		t.Fatal(err)
	}
	checkDLRMCheckpoint(t, c, want)
	if c.release == nil {
		t.Error("ReadTorch did not memory-map the file")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	b, err := os.ReadFile(pt)
	if err != nil {
		t.Fatal(err)
	}
	c, err = ParseTorch(pt, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	checkDLRMCheckpoint(t, c, want)
	// Buffers are ParseTorch's own, not views of the reader's bytes.
	keep := slices.Clone(c.Tensors[0].Data)
	clear(b)
	if !bytes.Equal(c.Tensors[0].Data, keep) {
		t.Error("ParseTorch aliases the reader's bytes")
	}
}

type torchExpectedTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Hex   string `json:"hex"`
}

func checkTorchTensors(t *testing.T, got []Tensor, want []torchExpectedTensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || string(g.DType) != w.DType || !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("tensor %d: got %v, want %s %s%v", i, &g, w.Name, w.DType, w.Shape)
			continue
		}
		if h := hex.EncodeToString(g.Data); h != w.Hex {
			t.Errorf("%s: data %s, want %s", w.Name, h, w.Hex)
		}
		if g.NumElements()*g.DType.Size() != len(g.Data) {
			t.Errorf("%s: %d bytes for %d elements", w.Name, len(g.Data), g.NumElements())
		}
	}
}

// Both entry points (mapped and buffered) read every fixture the same way.
func readTorchBoth(t *testing.T, path string) []*Checkpoint {
	t.Helper()
	c1, err := ReadTorch(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c1.Close() })
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseTorch(path, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return []*Checkpoint{c1, c2}
}

func TestReadTorchFixtures(t *testing.T) {
	exp := readTorchExpected(t)
	var mixed []torchExpectedTensor
	if err := json.Unmarshal(exp["mixed"], &mixed); err != nil {
		t.Fatal(err)
	}
	// mixed.pt: every dtype, views with offsets, a transposed view, an
	// expanded view, a Parameter, a scalar, an empty tensor; deflate.pt: the
	// same re-zipped with deflate under another folder name.
	for _, f := range []string{"mixed.pt", "deflate.pt"} {
		t.Run(f, func(t *testing.T) {
			for _, c := range readTorchBoth(t, torchFixture(f)) {
				checkTorchTensors(t, c.Tensors, mixed)
				if len(c.Meta) != 0 {
					t.Errorf("Meta = %v, want empty", c.Meta)
				}
			}
		})
	}

	type nested struct {
		Tensors []torchExpectedTensor `json:"tensors"`
		Meta    map[string]any        `json:"meta"`
		Skipped []string              `json:"skipped"`
	}
	for _, f := range []string{"nested_p4", "model_key"} {
		t.Run(f, func(t *testing.T) {
			var want nested
			if err := json.Unmarshal(exp[f], &want); err != nil {
				t.Fatal(err)
			}
			for _, c := range readTorchBoth(t, torchFixture(f+".pt")) {
				checkTorchTensors(t, c.Tensors, want.Tensors)
				// Compare Meta through JSON, big ints as decimal strings.
				got := map[string]any{}
				for k, v := range c.Meta {
					if b, ok := v.(*big.Int); ok {
						v = b.String()
					}
					got[k] = v
				}
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want.Meta)
				if string(gb) != string(wb) {
					t.Errorf("Meta\n got  %s\n want %s", gb, wb)
				}
				for _, k := range want.Skipped {
					if _, ok := c.Meta[k]; ok {
						t.Errorf("Meta has %s, which should be left out", k)
					}
				}
			}
		})
	}
	// Plain Go types, as documented.
	c := readTorchBoth(t, torchFixture("nested_p4.pt"))[0]
	for k, want := range map[string]any{"epoch": int64(7), "lr": 0.01, "acc": 0.75, "acc32": 0.5, "n": int64(12), "flag": true, "name": "net"} {
		if c.Meta[k] != want {
			t.Errorf("Meta[%s] = %#v, want %#v", k, c.Meta[k], want)
		}
	}
}

func TestReadTorchRefusesHostileGlobal(t *testing.T) {
	_, err := ReadTorch(torchFixture("hostile.pt"))
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "os.system") || !strings.Contains(err.Error(), "hostile.pt") {
		t.Fatalf("got %v, want an UnsupportedError naming os.system and the file", err)
	}
}

func TestReadTorchLegacyFormat(t *testing.T) {
	_, err := ReadTorch(torchFixture("legacy.pt"))
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "_use_new_zipfile_serialization=True") {
		t.Fatalf("got %v", err)
	}
}

func TestReadTorchNotACheckpoint(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("PK"), []byte("hello world, not a zip"), []byte("\x08\x00\x00\x00\x00\x00\x00\x00{}      ")} {
		_, err := ParseTorch("x.pt", bytes.NewReader(b), int64(len(b)))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != "x.pt" {
			t.Errorf("%q: got %v, want a FormatError", b, err)
		}
	}
	p := filepath.Join(t.TempDir(), "empty.pt")
	os.WriteFile(p, nil, 0o644)
	if _, err := ReadTorch(p); err == nil {
		t.Error("empty file accepted")
	}
	if _, err := ReadTorch(filepath.Join(t.TempDir(), "nope.pt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// Every truncation of a checkpoint is an error, never a panic.
func TestReadTorchTruncated(t *testing.T) {
	b, err := os.ReadFile(torchFixture("mixed.pt"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n += 7 {
		_, err := ParseTorch("mixed.pt", bytes.NewReader(b[:n]), int64(n))
		var fe *FormatError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Fatalf("truncated to %d bytes: got %v", n, err)
		}
	}
}

// A flipped bit in a weight is caught by the zip CRC.
func TestReadTorchCorruptStorage(t *testing.T) {
	b, err := os.ReadFile(torchFixture("mixed.pt"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var off int64 = -1
	for _, f := range zr.File {
		if f.Name == "mixed/data/0" {
			off, _ = f.DataOffset()
		}
	}
	if off < 0 {
		t.Fatal("no mixed/data/0")
	}
	b[off+5] ^= 0x10
	_, err = ParseTorch("mixed.pt", bytes.NewReader(b), int64(len(b)))
	if err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("ParseTorch: %v", err)
	}
	p := filepath.Join(t.TempDir(), "corrupt.pt")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = ReadTorch(p); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("ReadTorch: %v", err)
	}
}

// --- hand-built checkpoints ---

// tspec describes one tensor of a hand-built state dict.
type tspec struct {
	name, rebuild, stype, key string
	numel, offset             int64
	shape, stride             []int64
	dtype                     string // for _rebuild_tensor_v3
}

func pklUnicode(b []byte, s string) []byte {
	b = append(b, 'X')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func pklInt(b []byte, v int64) []byte {
	b = append(b, 0x8a, 8)
	return binary.LittleEndian.AppendUint64(b, uint64(v))
}

func pklInts(b []byte, vs []int64) []byte {
	b = append(b, '(')
	for _, v := range vs {
		b = pklInt(b, v)
	}
	return append(b, 't')
}

// torchTestPickle writes a protocol 2 pickle of a dict name -> tensor the way
// torch.save does.
func torchTestPickle(specs ...tspec) []byte {
	b := []byte("\x80\x02}(")
	for _, s := range specs {
		b = pklUnicode(b, s.name)
		rb := s.rebuild
		if rb == "" {
			rb = "_rebuild_tensor_v2"
		}
		b = append(b, "ctorch._utils\n"+rb+"\n("...)
		b = append(b, '(')
		b = pklUnicode(b, "storage")
		i := strings.LastIndexByte(s.stype, '.')
		b = append(b, "c"+s.stype[:i]+"\n"+s.stype[i+1:]+"\n"...)
		b = pklUnicode(b, s.key)
		b = pklUnicode(b, "cpu")
		b = pklInt(b, s.numel)
		b = append(b, "tQ"...)
		b = pklInt(b, s.offset)
		b = pklInts(b, s.shape)
		b = pklInts(b, s.stride)
		b = append(b, "\x89ccollections\nOrderedDict\n)R"...)
		if s.dtype != "" {
			b = append(b, "ctorch\n"+s.dtype+"\n"...)
		}
		b = append(b, "tR"...)
	}
	return append(b, "u."...)
}

type zentry struct {
	name    string
	data    []byte
	deflate bool
}

func torchTestZip(t testing.TB, entries ...zentry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		m := zip.Store
		if e.deflate {
			m = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func f32Bytes(vs ...float32) []byte {
	var b []byte
	for i := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(vs[i]))
	}
	return b
}

func TestParseTorchHandBuilt(t *testing.T) {
	six := f32Bytes(0, 1, 2, 3, 4, 5)
	parse := func(b []byte) (*Checkpoint, error) {
		return ParseTorch("hand.pt", bytes.NewReader(b), int64(len(b)))
	}
	mk := func(specs ...tspec) []byte {
		return torchTestZip(t, zentry{name: "archive/data.pkl", data: torchTestPickle(specs...)}, zentry{name: "archive/data/0", data: six})
	}
	f := func(name string, off int64, shape, stride []int64) tspec {
		return tspec{name: name, stype: "torch.FloatStorage", key: "0", numel: 6, offset: off, shape: shape, stride: stride}
	}

	t.Run("views", func(t *testing.T) {
		c, err := parse(mk(
			f("tail", 2, []int64{4}, []int64{1}),         // contiguous with offset
			f("t", 0, []int64{3, 2}, []int64{1, 3}),      // transpose of [2,3]
			f("every_other", 1, []int64{3}, []int64{2}),  // stride 2
			f("col", 1, []int64{2, 1}, []int64{3, 7}),    // size-1 dim: any stride
			f("bcast", 0, []int64{2, 3}, []int64{0, 1}),  // expanded rows
			f("scalar", 5, []int64{}, []int64{}),         // 0-d
			f("none", 100, []int64{0, 3}, []int64{3, 1}), // empty: offset irrelevant
		))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]float32{
			"tail": {2, 3, 4, 5}, "t": {0, 3, 1, 4, 2, 5}, "every_other": {1, 3, 5},
			"col": {1, 4}, "bcast": {0, 1, 2, 0, 1, 2}, "scalar": {5}, "none": {},
		}
		for _, tt := range c.Tensors {
			if !bytes.Equal(tt.Data, f32Bytes(want[tt.Name]...)) {
				t.Errorf("%s: got % x, want %v", tt.Name, tt.Data, want[tt.Name])
			}
		}
	})

	t.Run("view beyond storage", func(t *testing.T) {
		for _, s := range []tspec{
			f("w", 0, []int64{2, 4}, []int64{4, 1}),
			f("w", 3, []int64{4}, []int64{1}),
			f("w", 0, []int64{2, 3}, []int64{4, 1}),
			f("w", 6, []int64{1}, []int64{1}),
			f("w", 0, []int64{3, 1 << 20}, []int64{1 << 62, 1}), // overflows int64
		} {
			_, err := parse(mk(s))
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Tensor != "w" || !strings.Contains(err.Error(), "beyond its storage") {
				t.Errorf("%v: got %v", s, err)
			}
		}
	})

	t.Run("storage key missing", func(t *testing.T) {
		s := f("w", 0, []int64{2}, []int64{1})
		s.key = "7"
		_, err := parse(mk(s))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Tensor != "w" || !strings.Contains(err.Error(), "archive/data/7") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("storage size mismatch", func(t *testing.T) {
		s := f("w", 0, []int64{2}, []int64{1})
		s.numel = 8
		_, err := parse(mk(s))
		if err == nil || !strings.Contains(err.Error(), "expects 32") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("bad shapes", func(t *testing.T) {
		for _, s := range []tspec{
			f("w", 0, []int64{1 << 30, 1 << 30, 1 << 30}, []int64{0, 0, 0}), // too many elements
			f("w", -1, []int64{2}, []int64{1}),
			f("w", 0, []int64{-2}, []int64{1}),
			f("w", 0, []int64{2}, []int64{-1}),
			f("w", 0, []int64{2, 2}, []int64{1}),
			f("w", 0, make([]int64, 65), make([]int64, 65)),
		} {
			if _, err := parse(mk(s)); err == nil {
				t.Errorf("%v accepted", s)
			}
		}
	})

	t.Run("huge broadcast refused without allocating", func(t *testing.T) {
		_, err := parse(mk(f("w", 0, []int64{1 << 24, 1 << 24}, []int64{0, 0})))
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != MaxViewCopyBytes || !strings.Contains(err.Error(), `tensor "w"`) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("storage dtypes", func(t *testing.T) {
		cases := []struct {
			stype string
			want  DType
		}{
			{"torch.DoubleStorage", F64}, {"torch.HalfStorage", F16}, {"torch.BFloat16Storage", BF16},
			{"torch.LongStorage", I64}, {"torch.IntStorage", I32}, {"torch.ShortStorage", I16},
			{"torch.CharStorage", I8}, {"torch.ByteStorage", U8}, {"torch.BoolStorage", Bool},
			{"torch.float32", F32}, {"torch.storage.UntypedStorage", U8},
		}
		for _, cs := range cases {
			es := int64(cs.want.Size())
			b := torchTestZip(t,
				zentry{name: "a/data.pkl", data: torchTestPickle(tspec{name: "w", stype: cs.stype, key: "k", numel: 24 / es, shape: []int64{24 / es}, stride: []int64{1}})},
				zentry{name: "a/data/k", data: make([]byte, 24)})
			c, err := parse(b)
			if err != nil {
				t.Errorf("%s: %v", cs.stype, err)
				continue
			}
			if c.Tensors[0].DType != cs.want || len(c.Tensors[0].Data) != 24 {
				t.Errorf("%s: got %v", cs.stype, &c.Tensors[0])
			}
		}
	})

	t.Run("unsupported dtype", func(t *testing.T) {
		b := torchTestZip(t,
			zentry{name: "a/data.pkl", data: torchTestPickle(tspec{name: "z", stype: "torch.ComplexFloatStorage", key: "k", numel: 3, shape: []int64{3}, stride: []int64{1}})},
			zentry{name: "a/data/k", data: make([]byte, 24)})
		_, err := parse(b)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ComplexFloatStorage") || !strings.Contains(err.Error(), `"z"`) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("rebuild v3 with dtype", func(t *testing.T) {
		b := torchTestZip(t,
			zentry{name: "a/data.pkl", data: torchTestPickle(tspec{name: "h", rebuild: "_rebuild_tensor_v3", stype: "torch.UntypedStorage", key: "k", numel: 8, offset: 1, shape: []int64{3}, stride: []int64{1}, dtype: "float16"})},
			zentry{name: "a/data/k", data: []byte{0, 1, 2, 3, 4, 5, 6, 7}})
		c, err := parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if tt := c.Tensors[0]; tt.DType != F16 || !bytes.Equal(tt.Data, []byte{2, 3, 4, 5, 6, 7}) {
			t.Fatalf("got %v % x", &tt, tt.Data)
		}
	})

	t.Run("rebuild from type and parameter", func(t *testing.T) {
		// {'w': _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, (...), {})}
		inner := torchTestPickle(f("w", 0, []int64{6}, []int64{1}))
		// Splice: replace the outer call with the wrapped form.
		i := bytes.Index(inner, []byte("ctorch._utils\n_rebuild_tensor_v2\n("))
		wrapped := append([]byte(nil), inner[:i]...)
		wrapped = append(wrapped, "ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\nctorch.nn.parameter\nParameter\n("...)
		j := bytes.LastIndex(inner, []byte("tRu."))
		wrapped = append(wrapped, inner[i+len("ctorch._utils\n_rebuild_tensor_v2\n("):j]...)
		wrapped = append(wrapped, "t}tRu."...)
		c, err := parse(torchTestZip(t, zentry{name: "a/data.pkl", data: wrapped}, zentry{name: "a/data/0", data: six}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Tensors[0].Data, six) {
			t.Fatal("wrong data")
		}
	})

	t.Run("no state dict", func(t *testing.T) {
		b := torchTestZip(t, zentry{name: "a/data.pkl", data: []byte("\x80\x02}(X\x05\x00\x00\x00epochK\x01X\x03\x00\x00\x00netK\x02u.")})
		_, err := parse(b)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "[epoch, net]") {
			t.Fatalf("got %v", err)
		}
		b = torchTestZip(t, zentry{name: "a/data.pkl", data: []byte("\x80\x02]K\x01a.")})
		if _, err := parse(b); !errors.As(err, &fe) || !strings.Contains(err.Error(), "holds a list") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("archive layout", func(t *testing.T) {
		pk := torchTestPickle(f("w", 0, []int64{6}, []int64{1}))
		cases := map[string][]zentry{
			"no data.pkl":  {{name: "a/data/0", data: six}},
			"two data.pkl": {{name: "a/data.pkl", data: pk}, {name: "b/data.pkl", data: pk}},
			"torchscript":  {{name: "a/constants.pkl", data: pk}},
			"big endian":   {{name: "a/data.pkl", data: pk}, {name: "a/byteorder", data: []byte("big")}, {name: "a/data/0", data: six}},
			"bad order":    {{name: "a/data.pkl", data: pk}, {name: "a/byteorder", data: []byte("middle")}},
			"duplicate":    {{name: "a/data.pkl", data: pk}, {name: "a/data/0", data: six}, {name: "a/data/0", data: six}},
		}
		for name, es := range cases {
			if _, err := parse(torchTestZip(t, es...)); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		c, err := parse(torchTestZip(t, zentry{name: "a/data.pkl", data: pk}, zentry{name: "a/byteorder", data: []byte("little")}, zentry{name: "a/data/0", data: six}))
		if err != nil || len(c.Tensors) != 1 {
			t.Fatalf("byteorder little: %v", err)
		}
	})
}

// A compressed storage that expands far beyond its compressed size is refused
// before it is inflated; within the limits it reads.
func TestParseTorchZipBomb(t *testing.T) {
	const n = 1 << 20 // 1 MiB of zeros deflates to about 1 KiB
	b := torchTestZip(t,
		zentry{name: "a/data.pkl", data: torchTestPickle(tspec{name: "w", stype: "torch.FloatStorage", key: "0", numel: n / 4, shape: []int64{n / 4}, stride: []int64{1}})},
		zentry{name: "a/data/0", data: make([]byte, n), deflate: true})
	lim := defaultTorchLimits()
	c, err := parseTorch("bomb.pt", bytes.NewReader(b), int64(len(b)), nil, lim)
	if err != nil || len(c.Tensors[0].Data) != n {
		t.Fatalf("default limits: %v", err)
	}
	lim.inflateFloor = 64 << 10
	_, err = parseTorch("bomb.pt", bytes.NewReader(b), int64(len(b)), nil, lim)
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "deflated storages") {
		t.Fatalf("small limits: %v", err)
	}
	// A declared size that does not match the pickle is refused before
	// inflating, too.
	b2 := torchTestZip(t,
		zentry{name: "a/data.pkl", data: torchTestPickle(tspec{name: "w", stype: "torch.FloatStorage", key: "0", numel: 1 << 40, shape: []int64{4}, stride: []int64{1}})},
		zentry{name: "a/data/0", data: make([]byte, 16), deflate: true})
	if _, err := ParseTorch("bomb.pt", bytes.NewReader(b2), int64(len(b2))); err == nil || !strings.Contains(err.Error(), "expects") {
		t.Fatalf("mismatched size: %v", err)
	}
}

// Tensors sharing a storage (views of one tensor) read it once and agree.
func TestParseTorchSharedStorage(t *testing.T) {
	c := readTorchBoth(t, torchFixture("mixed.pt"))[0]
	var sliced, row *Tensor
	for i := range c.Tensors {
		switch c.Tensors[i].Name {
		case "sliced":
			sliced = &c.Tensors[i]
		case "row":
			row = &c.Tensors[i]
		}
	}
	// big = arange(20).reshape(4,5)*0.5; sliced = big[1:3,1:]; row = big[2].
	// sliced[1] is big[2][1:] = row[1:].
	if !bytes.Equal(sliced.Data[16:32], row.Data[4:20]) {
		t.Fatalf("sliced %x row %x", sliced.Data, row.Data)
	}
	if !reflect.DeepEqual(sliced.Shape, []int{2, 4}) {
		t.Fatal(sliced.Shape)
	}
}

func FuzzParseTorch(f *testing.F) {
	for _, name := range []string{"mixed.pt", "nested_p4.pt", "model_key.pt", "deflate.pt", "hostile.pt"} {
		b, err := os.ReadFile(torchFixture(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hostileSeeds(f, ".pt") {
		f.Add(b)
	}
	// Tight limits keep each run's memory small however the sizes are mangled.
	lim := torchLimits{maxPickle: 1 << 20, inflateRatio: 64, inflateFloor: 1 << 20, maxGather: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err1 := parseTorch("fuzz.pt", bytes.NewReader(data), int64(len(data)), nil, lim)
		c2, err2 := parseTorch("fuzz.pt", bytes.NewReader(data), int64(len(data)), data, lim)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("buffered and mapped reads disagree: %v / %v", err1, err2)
		}
		for _, err := range []error{err1, err2} {
			if err == nil {
				continue
			}
			var fe *FormatError
			var ue *UnsupportedError
			var le *LimitError
			if !errors.As(err, &fe) && !errors.As(err, &ue) && !errors.As(err, &le) {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
		if err1 != nil {
			return
		}
		if len(c1.Tensors) != len(c2.Tensors) {
			t.Fatalf("%d vs %d tensors", len(c1.Tensors), len(c2.Tensors))
		}
		for i := range c1.Tensors {
			a, b := c1.Tensors[i], c2.Tensors[i]
			if a.Name != b.Name || a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("tensor %d differs: %v / %v", i, &a, &b)
			}
			if a.NumElements()*a.DType.Size() != len(a.Data) {
				t.Fatalf("%v: %d bytes", &a, len(a.Data))
			}
		}
		_ = fmt.Sprint(c1.Meta)
	})
}

// FuzzParseTorchPickle fuzzes data.pkl inside an otherwise valid archive
// (mixed.pt's storages), so mutations reach tensor rebuilding and the
// storage checks instead of stopping at the zip CRC.
func FuzzParseTorchPickle(f *testing.F) {
	seeds, _ := filepath.Glob(torchFixture("seed_*.pkl"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hostilePickles(f) {
		f.Add(b)
	}
	b, err := os.ReadFile(torchFixture("mixed.pt"))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.Fatal(err)
	}
	var storages []zentry
	for _, zf := range zr.File {
		if strings.HasPrefix(zf.Name, "mixed/data/") {
			r, _ := zf.Open()
			data, _ := io.ReadAll(r)
			storages = append(storages, zentry{name: zf.Name, data: data})
		}
	}
	lim := torchLimits{maxPickle: 1 << 20, inflateRatio: 64, inflateFloor: 1 << 20, maxGather: 1 << 20}
	f.Fuzz(func(t *testing.T, pkl []byte) {
		z := torchTestZip(t, append([]zentry{{name: "mixed/data.pkl", data: pkl}}, storages...)...)
		c, err := parseTorch("fuzz.pt", bytes.NewReader(z), int64(len(z)), z, lim)
		if err != nil {
			var fe *FormatError
			var ue *UnsupportedError
			var le *LimitError
			if !errors.As(err, &fe) && !errors.As(err, &ue) && !errors.As(err, &le) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, tt := range c.Tensors {
			if tt.NumElements()*tt.DType.Size() != len(tt.Data) {
				t.Fatalf("%v: %d bytes", &tt, len(tt.Data))
			}
		}
	})
}

// hostileSeeds returns the committed hostile inputs (testdata/hostile, see
// gen.go there) whose names end in ext.
func hostileSeeds(f *testing.F, ext string) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*"+ext))
	if len(paths) == 0 {
		f.Fatalf("no testdata/hostile/*%s seeds", ext)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// hostilePickles returns the data.pkl of each hostile .pt seed that inflates
// to at most 4 MiB (claims_1gib.pt's stream is cut short: it is skipped).
func hostilePickles(f *testing.F) [][]byte {
	var out [][]byte
	for _, b := range hostileSeeds(f, ".pt") {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if !strings.HasSuffix(zf.Name, "/data.pkl") || zf.UncompressedSize64 > 4<<20 {
				continue
			}
			r, err := zf.Open()
			if err != nil {
				f.Fatal(err)
			}
			pkl, err := io.ReadAll(r)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, pkl)
		}
	}
	return out
}
