package modelio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"github.com/rqtools/rq/internal/testshared"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateSafetensorsSeeds = flag.Bool("update-safetensors-seeds", false, "rewrite modelio/testdata/safetensors seed files")

// stSharedPath locates a file under ../../shared, failing under CI and
// skipping elsewhere when it is missing.
func stSharedPath(t testing.TB, rel string) string {
	t.Helper()
	return testshared.Path(t, rel)
}

// allDTypes lists every dtype rq reads and writes.
var allDTypes = []DType{F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool}

// patternTensor makes a tensor of dtype d and shape whose bytes follow a
// fixed pattern (BOOL gets valid 0/1 bytes).
func patternTensor(name string, d DType, shape []int, seed byte) Tensor {
	t := Tensor{Name: name, DType: d, Shape: shape}
	n, err := byteLen(d, shape)
	if err != nil {
		panic(err)
	}
	t.Data = make([]byte, n)
	for i := range t.Data {
		t.Data[i] = byte(i)*31 + seed
		if d == Bool {
			t.Data[i] &= 1
		}
	}
	return t
}

// seedFiles returns the safetensors seed files kept in testdata, by name.
// They are built by our writer (so TestSafetensorsSeedFiles also checks that
// the writer's output is stable) except where noted.
func seedFiles() map[string][]byte {
	var all []Tensor
	for i, d := range allDTypes {
		all = append(all, patternTensor("t."+strings.ToLower(string(d)), d, []int{2, 3}, byte(i)))
	}
	all = append(all,
		patternTensor("scalar", F32, []int{}, 7),
		patternTensor("empty_rows", F32, []int{0, 4}, 0),
		patternTensor("odd", U8, []int{3}, 1),
		patternTensor("after_odd", F64, []int{2}, 2),
	)
	enc := func(ts []Tensor, md map[string]string) []byte {
		var b bytes.Buffer
		if err := EncodeSafetensors(&b, TensorsSpec(ts), md); err != nil {
			panic(err)
		}
		return b.Bytes()
	}
	return map[string][]byte{
		"all_dtypes.safetensors": enc(all, map[string]string{"format": "pt", "rows": "15429:16715", "note": "quote \" & <tag> é"}),
		"empty.safetensors":      enc(nil, nil),
		"metadata_only.safetensors": enc(nil, map[string]string{
			"k": "v",
		}),
		"one_i64.safetensors": enc([]Tensor{I64Tensor("sparse_in", []int{2, 3}, []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 42})}, nil),
		// Hand-made: header order differs from data order, a hole between
		// tensors, unpadded header, metadata last, extra whitespace.
		"handmade.safetensors": rawSafetensors(`{ "b": {"shape": [2], "dtype": "I16", "data_offsets": [6, 10]},
			"a": {"data_offsets": [0, 4], "dtype": "F32", "shape": []},
			"__metadata__": {"x": "y"} }`, 12),
	}
}

// rawSafetensors assembles a file from a literal header and dataLen bytes of
// data (0, 1, 2, ...).
func rawSafetensors(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	for i := range dataLen {
		b = append(b, byte(i))
	}
	return b
}

func seedDir() string { return filepath.Join("testdata", "safetensors") }

// TestSafetensorsSeedFiles checks the committed seed files are exactly what
// the writer produces today: a change in our output bytes shows up here.
// Run with -update-safetensors-seeds to rewrite them.
func TestSafetensorsSeedFiles(t *testing.T) {
	seeds := seedFiles()
	if *updateSafetensorsSeeds {
		if err := os.MkdirAll(seedDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(seedDir(), name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range seeds {
		got, err := os.ReadFile(filepath.Join(seedDir(), name))
		if err != nil {
			t.Fatalf("%v (run go test -run TestSafetensorsSeedFiles -update-safetensors-seeds)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: committed bytes differ from the writer's output", name)
		}
		if _, err := ParseSafetensors(name, got); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func sameTensors(t *testing.T, what string, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: tensor %d is %v (%d bytes), want %v (%d bytes)", what, i, &g, len(g.Data), &w, len(w.Data))
		}
	}
}

func TestSafetensorsRoundTripEveryDType(t *testing.T) {
	var ts []Tensor
	for i, d := range allDTypes {
		ts = append(ts, patternTensor("x."+string(d), d, []int{3, 1, 5}, byte(i)))
		ts = append(ts, patternTensor("s."+string(d), d, []int{}, byte(i)))  // scalar
		ts = append(ts, patternTensor("z."+string(d), d, []int{0}, byte(i))) // empty
	}
	md := map[string]string{"b": "2", "a": "1", "unicode ключ": "значение\n\t\x01"}
	var b1, b2 bytes.Buffer
	if err := EncodeSafetensors(&b1, TensorsSpec(ts), md); err != nil {
		t.Fatal(err)
	}
	if err := EncodeSafetensors(&b2, TensorsSpec(ts), maps.Clone(md)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("two encodings of the same input differ")
	}
	f, err := ParseSafetensors("mem", b1.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "parsed", f.Tensors, ts) // data order = given order
	if !maps.Equal(f.Metadata, md) {
		t.Fatalf("metadata %v, want %v", f.Metadata, md)
	}
	if f.DataStart%8 != 0 {
		t.Fatalf("data area starts at %d, not a multiple of 8", f.DataStart)
	}
	if f.Uncovered != 0 {
		t.Fatalf("Uncovered = %d, want 0", f.Uncovered)
	}
	for _, w := range ts {
		g, ok := f.Lookup(w.Name)
		if !ok || g.Name != w.Name || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("Lookup(%q) = %v, %v", w.Name, g, ok)
		}
	}
	if _, ok := f.Lookup("nope"); ok {
		t.Fatal("Lookup found a missing tensor")
	}

	// Through a file, memory-mapped.
	p := filepath.Join(t.TempDir(), "rt.safetensors")
	if err := WriteSafetensors(p, TensorsSpec(ts), md); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, b1.Bytes()) {
		t.Fatal("WriteSafetensors and EncodeSafetensors differ")
	}
	mf, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "mapped", mf.Tensors, ts)
	if mf.Path != p {
		t.Fatalf("Path = %q", mf.Path)
	}
	if err := mf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mf.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if mf.Tensors[0].Data != nil {
		t.Fatal("Data still set after Close")
	}
}

func TestSafetensorsHeaderLayout(t *testing.T) {
	ts := []Tensor{
		F32Tensor("w", []int{2}, []float32{1, 2}),
		I64Tensor("a<b>", []int{1, 1}, []int64{3}),
	}
	var b bytes.Buffer
	if err := EncodeSafetensors(&b, TensorsSpec(ts), map[string]string{"z": "1", "a": "&"}); err != nil {
		t.Fatal(err)
	}
	want := `{"__metadata__":{"a":"&","z":"1"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a<b>":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]}}`
	want += strings.Repeat(" ", (8-len(want)%8)%8)
	out := b.Bytes()
	n := binary.LittleEndian.Uint64(out)
	if got := string(out[8 : 8+n]); got != want {
		t.Fatalf("header\n%q\nwant\n%q", got, want)
	}
	if len(out) != 8+len(want)+16 {
		t.Fatalf("file is %d bytes, want %d", len(out), 8+len(want)+16)
	}

	// No metadata: no __metadata__ key at all; empty file is "{}" padded.
	b.Reset()
	if err := EncodeSafetensors(&b, nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "\x08\x00\x00\x00\x00\x00\x00\x00{}      " {
		t.Fatalf("empty file %q", got)
	}
}

func TestSafetensorsHandmade(t *testing.T) {
	f, err := ParseSafetensors("handmade", seedFiles()["handmade.safetensors"])
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Tensors[0].Name != "a" || f.Tensors[1].Name != "b" {
		t.Fatalf("tensors not in data order: %v", f.Tensors)
	}
	if !bytes.Equal(f.Tensors[1].Data, []byte{6, 7, 8, 9}) || !slices.Equal(f.Tensors[1].Shape, []int{2}) {
		t.Fatalf("b = %v %v", f.Tensors[1].Data, f.Tensors[1].Shape)
	}
	// Data area is 12 bytes, tensors cover [0,4) and [6,10).
	if f.Uncovered != 4 {
		t.Fatalf("Uncovered = %d, want 4", f.Uncovered)
	}
	if f.Metadata["x"] != "y" {
		t.Fatalf("metadata %v", f.Metadata)
	}
	if cap(f.Tensors[0].Data) != 4 {
		t.Fatalf("tensor data capacity %d lets appends overwrite the next bytes", cap(f.Tensors[0].Data))
	}
}

// hostileCases are malformed files: each must give the error type named,
// and the message must contain every string in want.
var hostileCases = []struct {
	name        string
	file        []byte
	unsupported bool
	want        []string
}{
	{"empty file", nil, false, []string{"shorter than"}},
	{"7 bytes", []byte{1, 0, 0, 0, 0, 0, 0}, false, []string{"shorter than"}},
	{"header past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), false, []string{"past the end"}},
	{"header 2^63", append(binary.LittleEndian.AppendUint64(nil, 1<<63), "{}"...), false, []string{"exceeds"}},
	{"header 2^64-1", append(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "{}"...), false, []string{"exceeds"}},
	{"header over limit", append(binary.LittleEndian.AppendUint64(nil, MaxSafetensorsHeader+1), "{}"...), false, []string{"exceeds"}},
	{"not json", rawSafetensors(`{"a":`, 0), false, []string{"not valid JSON"}},
	{"non-object json", rawSafetensors(`[1,2]`, 0), false, []string{"want a JSON object"}},
	{"string json", rawSafetensors(`"x"`, 0), false, []string{"want a JSON object"}},
	{"trailing garbage", rawSafetensors(`{}{}`, 0), false, []string{"after the closing brace"}},
	{"bad utf8", rawSafetensors("{\"\xff\":{}}", 0), false, []string{"UTF-8"}},
	{"duplicate names", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"wt":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), false, []string{`"wt"`, "twice"}},
	{"duplicate field", rawSafetensors(`{"wt":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "duplicate"}},
	{"unknown field", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"strides":[1]}}`, 1), false, []string{`"wt"`, "strides"}},
	{"missing field", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1]}}`, 1), false, []string{`"wt"`, "data_offsets"}},
	{"entry not object", rawSafetensors(`{"wt":[1]}`, 1), false, []string{`"wt"`, "JSON object"}},
	{"bad dtype", rawSafetensors(`{"wt":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, 1), true, []string{`"wt"`, "F8_E4M3"}},
	{"lowercase dtype", rawSafetensors(`{"wt":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, 4), true, []string{`"wt"`, "f32"}},
	{"dtype not string", rawSafetensors(`{"wt":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), false, []string{`"wt"`, "dtype"}},
	{"negative dim", rawSafetensors(`{"wt":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "shape"}},
	{"fractional dim", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "shape"}},
	{"dim 2^63", rawSafetensors(`{"wt":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "shape"}},
	{"element overflow", rawSafetensors(`{"wt":{"dtype":"U8","shape":[4611686018427387904,4],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "overflow"}},
	{"byte overflow", rawSafetensors(`{"wt":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "overflow"}},
	{"overflow hidden by zero", rawSafetensors(`{"wt":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, 0), false, []string{`"wt"`, "overflow"}},
	{"rank 17", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, 1), false, []string{`"wt"`, "16 dimensions"}},
	{"offsets 3", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 2), false, []string{`"wt"`, "data_offsets"}},
	{"offsets 1", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1],"data_offsets":[0]}}`, 2), false, []string{`"wt"`, "2 (begin, end)"}},
	{"begin after end", rawSafetensors(`{"wt":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}}`, 2), false, []string{`"wt"`, "begin is after end"}},
	{"offsets past end", rawSafetensors(`{"wt":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 3), false, []string{`"wt"`, "past the end"}},
	{"offset 2^64", rawSafetensors(`{"wt":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,18446744073709551616]}}`, 3), false, []string{`"wt"`, "data_offsets"}},
	{"wrong byte length", rawSafetensors(`{"wt":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8), false, []string{`"wt"`, "needs 8 bytes"}},
	{"overlap", rawSafetensors(`{"first":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"second":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}`, 12), false, []string{`"second"`, `"first"`, "overlap"}},
	{"same range", rawSafetensors(`{"first":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"second":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}}`, 8), false, []string{"overlap"}},
	{"nested overlap", rawSafetensors(`{"big":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},"in1":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 12), false, []string{`"in1"`, `"big"`, "overlap"}},
	{"empty name", rawSafetensors(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), false, []string{"empty name"}},
	{"metadata not strings", rawSafetensors(`{"__metadata__":{"k":1}}`, 0), false, []string{"__metadata__", `"k"`}},
	{"metadata not object", rawSafetensors(`{"__metadata__":"x"}`, 0), false, []string{"__metadata__"}},
	{"metadata duplicate key", rawSafetensors(`{"__metadata__":{"k":"1","k":"2"}}`, 0), false, []string{"__metadata__", `"k"`}},
	{"metadata twice", rawSafetensors(`{"__metadata__":{},"__metadata__":{}}`, 0), false, []string{"__metadata__"}},
}

func TestSafetensorsHostile(t *testing.T) {
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseSafetensors("bad.safetensors", c.file)
			if err == nil {
				t.Fatalf("parsed: %v", f.Tensors)
			}
			var fe *FormatError
			var ue *UnsupportedError
			if c.unsupported && !errors.As(err, &ue) {
				t.Fatalf("got %T %v, want *UnsupportedError", err, err)
			}
			if !c.unsupported && !errors.As(err, &fe) {
				t.Fatalf("got %T %v, want *FormatError", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bad.safetensors: ") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestSafetensorsAccepted(t *testing.T) {
	cases := []struct {
		name string
		file []byte
		n    int
	}{
		{"empty tensors share an offset", rawSafetensors(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"c":{"dtype":"F64","shape":[0,3],"data_offsets":[2,2]}}`, 4), 3},
		{"metadata null", rawSafetensors(`{"__metadata__":null}`, 0), 0},
		{"whitespace padding", rawSafetensors("{} \t\r\n", 0), 0},
		{"trailing data area", rawSafetensors(`{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}`, 9), 1},
	}
	for _, c := range cases {
		f, err := ParseSafetensors(c.name, c.file)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(f.Tensors) != c.n {
			t.Errorf("%s: %d tensors, want %d", c.name, len(f.Tensors), c.n)
		}
	}
}

func TestOpenSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenSafetensors(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	var fe *FormatError
	if _, err := OpenSafetensors(dir); !errors.As(err, &fe) || !strings.Contains(err.Error(), "regular file") {
		t.Fatalf("directory: %v", err)
	}
	for _, size := range []int{0, 5} {
		p := filepath.Join(dir, fmt.Sprint("short", size))
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenSafetensors(p); !errors.As(err, &fe) || !strings.Contains(err.Error(), p) {
			t.Fatalf("%d-byte file: %v", size, err)
		}
	}
	p := filepath.Join(dir, "overlap")
	var overlap []byte
	for _, c := range hostileCases {
		if c.name == "overlap" {
			overlap = c.file
		}
	}
	if err := os.WriteFile(p, overlap, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSafetensors(p); !errors.As(err, &fe) || fe.File != p {
		t.Fatalf("bad file: %v", err)
	}
}

func TestEncodeSafetensorsErrors(t *testing.T) {
	ok := func(w io.Writer) error { _, err := w.Write(make([]byte, 4)); return err }
	cases := []struct {
		name  string
		specs []TensorSpec
		md    map[string]string
		want  string
	}{
		{"short write", []TensorSpec{{Name: "t", DType: F32, Shape: []int{2}, Write: ok}}, nil, `"t"`},
		{"long write", []TensorSpec{{Name: "t", DType: F32, Shape: []int{}, Write: func(w io.Writer) error {
			_, err := w.Write(make([]byte, 5))
			return err
		}}}, nil, `"t"`},
		{"write error", []TensorSpec{{Name: "t", DType: F32, Shape: []int{1}, Write: func(w io.Writer) error { return errors.New("disk on fire") }}}, nil, "disk on fire"},
		{"nil write", []TensorSpec{{Name: "t", DType: F32, Shape: []int{1}}}, nil, `"t"`},
		{"duplicate", []TensorSpec{{Name: "t", DType: F32, Shape: []int{1}, Write: ok}, {Name: "t", DType: F32, Shape: []int{1}, Write: ok}}, nil, "twice"},
		{"empty name", []TensorSpec{{Name: "", DType: F32, Shape: []int{1}, Write: ok}}, nil, "empty name"},
		{"reserved name", []TensorSpec{{Name: "__metadata__", DType: F32, Shape: []int{1}, Write: ok}}, nil, "reserved"},
		{"bad dtype", []TensorSpec{{Name: "t", DType: "F8", Shape: []int{1}, Write: ok}}, nil, `"F8"`},
		{"negative dim", []TensorSpec{{Name: "t", DType: F32, Shape: []int{-1}, Write: ok}}, nil, "negative"},
		{"rank", []TensorSpec{{Name: "t", DType: F32, Shape: make([]int, 17), Write: ok}}, nil, "rank"},
		{"overflow", []TensorSpec{{Name: "t", DType: F32, Shape: []int{math.MaxInt / 2}, Write: ok}}, nil, "overflow"},
		{"bad utf8 name", []TensorSpec{{Name: "\xff", DType: F32, Shape: []int{1}, Write: ok}}, nil, "UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		err := EncodeSafetensors(&b, c.specs, c.md)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// A nil Write is fine for an empty tensor.
	var b bytes.Buffer
	if err := EncodeSafetensors(&b, []TensorSpec{{Name: "e", DType: F32, Shape: []int{0, 3}}}, nil); err != nil {
		t.Fatal(err)
	}
	// A failing WriteSafetensors keeps the old file.
	p := filepath.Join(t.TempDir(), "keep.safetensors")
	if err := WriteSafetensors(p, TensorsSpec([]Tensor{F32Tensor("a", []int{1}, []float32{1})}), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	bad := TensorsSpec([]Tensor{F32Tensor("a", []int{2}, []float32{1})})
	if err := WriteSafetensors(p, bad, nil); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name %s", err, p)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Fatal("failed write changed the file")
	}
}

func TestSafetensorsSharedModel(t *testing.T) {
	p := stSharedPath(t, "criteo-18k/model.safetensors")
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]int{
		"emb_l.0.weight": {254, 16}, "emb_l.2.weight": {9936, 16}, "top_l.0.weight": {512, 367},
		"top_l.4.weight": {1, 256}, "top_l.4.bias": {1}, "bot_l.0.weight": {512, 13},
	}
	for name, shape := range want {
		tn, ok := f.Lookup(name)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		if tn.DType != F32 || !slices.Equal(tn.Shape, shape) {
			t.Fatalf("%s is %v, want F32%v", name, tn, shape)
		}
		v, ok := Float32View(tn)
		if !ok {
			t.Fatalf("%s: no zero-copy view of a mapped F32 tensor", name)
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) > 100 {
				t.Fatalf("%s[%d] = %v, not a trained weight", name, i, x)
			}
		}
	}
	if len(f.Tensors) != 26+8+6 {
		t.Fatalf("%d tensors, want 40", len(f.Tensors))
	}
	if f.Uncovered != 0 {
		t.Fatalf("Uncovered = %d", f.Uncovered)
	}
	// The Python writer's layout (no metadata, tensors contiguous in
	// header order, compact JSON, space padding) is exactly ours, so
	// re-encoding must reproduce the file byte for byte.
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := EncodeSafetensors(&b, TensorsSpec(f.Tensors), f.Metadata); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), orig) {
		t.Fatalf("re-encoding model.safetensors gives %d bytes that differ from the original %d", b.Len(), len(orig))
	}
}

func TestSafetensorsSharedGolden(t *testing.T) {
	p := stSharedPath(t, "criteo-18k/golden.safetensors")
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["rows"] != "15429:16715" {
		t.Fatalf("metadata %v", f.Metadata)
	}
	sp, ok := f.Lookup("sparse_in")
	if !ok || sp.DType != I64 || !slices.Equal(sp.Shape, []int{8, 26}) {
		t.Fatalf("sparse_in = %v", sp)
	}
	ids, err := Int64s(sp)
	if err != nil {
		t.Fatal(err)
	}
	pred, ok := f.Lookup("pred")
	if !ok || !slices.Equal(pred.Shape, []int{1286}) {
		t.Fatalf("pred = %v", pred)
	}
	pv, err := Float32s(pred)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range pv {
		if !(x > 0 && x < 1) {
			t.Fatalf("pred[%d] = %v, not a probability", i, x)
		}
	}
	// Every id must index its table in the model: a cross-check of both
	// readers on real data.
	mp := stSharedPath(t, "criteo-18k/model.safetensors")
	m, err := OpenSafetensors(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for r := range 8 {
		for c := range 26 {
			emb, ok := m.Lookup(fmt.Sprintf("emb_l.%d.weight", c))
			if !ok {
				t.Fatalf("emb_l.%d.weight missing", c)
			}
			if id := ids[r*26+c]; id < 0 || id >= int64(emb.Shape[0]) {
				t.Fatalf("sparse_in[%d][%d] = %d outside table of %d rows", r, c, id, emb.Shape[0])
			}
		}
	}
	// Round trip through our writer keeps every tensor and the metadata.
	out := filepath.Join(t.TempDir(), "golden.safetensors")
	if err := WriteSafetensors(out, TensorsSpec(f.Tensors), f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sameTensors(t, "golden round trip", g.Tensors, f.Tensors)
	if !maps.Equal(g.Metadata, f.Metadata) {
		t.Fatalf("metadata %v, want %v", g.Metadata, f.Metadata)
	}
}

// TestSafetensorsPythonCrossCheck has the Python safetensors library read a
// file we wrote, when the library is installed (it is not by default).
func TestSafetensorsPythonCrossCheck(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import safetensors.numpy").Run() != nil {
		t.Skip("python3 with the safetensors package is not installed")
	}
	var ts []Tensor
	for i, d := range allDTypes {
		if d == BF16 {
			continue // numpy has no bfloat16
		}
		ts = append(ts, patternTensor("t"+string(d), d, []int{2, 3}, byte(i)))
	}
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteSafetensors(p, TensorsSpec(ts), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	script := `import sys
from safetensors.numpy import load_file
from safetensors import safe_open
d = load_file(sys.argv[1])
with safe_open(sys.argv[1], "np") as f: md = f.metadata()
for k in sorted(d): print(k, d[k].dtype, list(d[k].shape), d[k].tobytes().hex())
print("meta", md)
`
	out, err := exec.Command(py, "-c", script, p).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	text := string(out)
	for _, tn := range ts {
		if !strings.Contains(text, fmt.Sprintf("%s ", tn.Name)) || !strings.Contains(text, fmt.Sprintf("%x", tn.Data)) {
			t.Errorf("python output lacks %s:\n%s", tn.Name, text)
		}
	}
	if !strings.Contains(text, "'k': 'v'") {
		t.Errorf("python did not see the metadata:\n%s", text)
	}
}

// FuzzParseSafetensors checks that no input makes the parser panic, that
// every rejection is a *FormatError or *UnsupportedError, and that anything
// accepted re-encodes into a file that parses to the same tensors, and whose
// re-encoding is byte-identical (the writer is a fixed point after one pass).
func FuzzParseSafetensors(f *testing.F) {
	entries, err := os.ReadDir(seedDir())
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(seedDir(), e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// Mutated headers: length off by one either way, truncated file.
		if len(b) > 9 {
			n := binary.LittleEndian.Uint64(b)
			for _, d := range []int64{-1, 1} {
				m := bytes.Clone(b)
				binary.LittleEndian.PutUint64(m, uint64(int64(n)+d))
				f.Add(m)
			}
			f.Add(b[:len(b)-1])
		}
	}
	for _, c := range hostileCases {
		f.Add(c.file)
	}
	for _, b := range hostileSeeds(f, ".safetensors") {
		f.Add(b)
	}
	// cmd's hostile corpus: models with a NaN weight, an Inf table row and
	// an ambiguous interaction (cmd/testdata/hostile/gen.go).
	cmdHostile, _ := filepath.Glob(filepath.Join("..", "cmd", "testdata", "hostile", "*.safetensors"))
	if len(cmdHostile) == 0 {
		f.Fatal("no cmd/testdata/hostile/*.safetensors seeds")
	}
	for _, p := range cmdHostile {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := ParseSafetensors("fuzz", data)
		if err != nil {
			var fe *FormatError
			var ue *UnsupportedError
			var le *LimitError
			if !errors.As(err, &fe) && !errors.As(err, &ue) && !errors.As(err, &le) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var b1 bytes.Buffer
		if err := EncodeSafetensors(&b1, TensorsSpec(sf.Tensors), sf.Metadata); err != nil {
			t.Fatalf("re-encoding a parsed file: %v", err)
		}
		sf2, err := ParseSafetensors("re-encoded", b1.Bytes())
		if err != nil {
			t.Fatalf("re-parsing: %v", err)
		}
		sameTensors(t, "re-parsed", sf2.Tensors, sf.Tensors)
		if len(sf.Metadata) > 0 && !maps.Equal(sf2.Metadata, sf.Metadata) {
			t.Fatalf("metadata %v, want %v", sf2.Metadata, sf.Metadata)
		}
		var b2 bytes.Buffer
		if err := EncodeSafetensors(&b2, TensorsSpec(sf2.Tensors), sf2.Metadata); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatal("second re-encoding differs from the first")
		}
	})
}

func BenchmarkOpenSafetensors(b *testing.B) {
	p := stSharedPath(b, "criteo-18k/model.safetensors")
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for b.Loop() {
		f, err := OpenSafetensors(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
