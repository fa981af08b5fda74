package modelio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// mxSeed is a small network with an MX table of each kind the writer
// takes: emb_l.0 mxfp4 and emb_l.1 mxfp6_e3m2 quantized in memory
// (kernels.MXBagTable), emb_l.2 mxint8 quantized while written
// (TableEncoding.MX). dim 40 makes two blocks a row, the second short,
// and 6-bit rows end in padding bits. Two FC layers are MX too: bot_l.0
// (4 inputs: one short block) mxfp6_e2m3 with MX activations, top_l.0 (46
// inputs) mxfp4.
func mxSeed(t testing.TB) []byte {
	t.Helper()
	net, _, err := BuildNetwork("mx", dlrmTensors([]int{4, 40}, []int{5, 6, 7}, nil, 40+6, []int{6, 1}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 2))
	for _, tb := range net.Tables {
		w := make([]float32, len(tb.Weight))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(8)-4)))
		}
		tb.Weight = w
	}
	plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{
		"emb_l.0": {Precision: precision.MXFP4}, "emb_l.1": {Precision: precision.MXFP6E3M2},
		"bot_l.0": {Precision: precision.MXFP6E2M3, Activation: quantize.Dynamic}, "top_l.0": {Precision: precision.MXFP4}}}
	q, err := quantize.Apply(net, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan.Layers["emb_l.2"] = quantize.LayerPlan{Precision: precision.MXINT8}
	return encodeQuantized(t, q, map[string]TableEncoding{"emb_l.2": {MX: kernels.MXINT8}}, QuantInfo{SourceSHA256: "mx", Plan: plan.Encode()})
}

// TestMXFile: the MX seed reads back with its precisions, each table's two
// tensors U8 [rows, ceil(dim·bits/8)] and [rows, ceil(dim/32)] aliasing
// the file's bytes (no copy), and it rewrites byte for byte
// (TestMXFileVectors compares streamed and in-memory quantization).
func TestMXFile(t *testing.T) {
	data := mxSeed(t)
	f, err := ParseSafetensors("mx", data)
	if err != nil {
		t.Fatal(err)
	}
	net, err := buildQuantized("mx", f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.NewRunner(net, 1).Forward(tinyBatch(net)); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Tensor{}
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	for i, want := range []kernels.MXFormat{kernels.MXFP4E2M1, kernels.MXFP6E3M2, kernels.MXINT8} {
		tb := net.Tables[i]
		k, ok := tb.Kernel.(*kernels.MXBagTable)
		if !ok || k.Format != want || tb.Label() != want.String() {
			t.Fatalf("%s: kernel %T, label %s; want %v", tb.Name, tb.Kernel, tb.Label(), want)
		}
		w, s := byName[tb.Name+".weight"], byName[tb.Name+".weight_scale"]
		if w == nil || s == nil || w.DType != U8 || s.DType != U8 ||
			!sameShape(w.Shape, []int{int(tb.Rows), (40*want.Bits() + 7) / 8}) || !sameShape(s.Shape, []int{int(tb.Rows), 2}) {
			t.Fatalf("%s: tensors %+v %+v", tb.Name, w, s)
		}
		if &k.Codes[0] != &w.Data[0] || &k.Scales[0] != &s.Data[0] {
			t.Errorf("%s: the table copies the file's bytes", tb.Name)
		}
	}
	for _, c := range []struct {
		l     *model.Linear
		f     kernels.MXFormat
		label string
	}{{net.Bottom[0], kernels.MXFP6E2M3, "mxfp6_e2m3-dynamic"}, {net.Top[0], kernels.MXFP4E2M1, "mxfp4"}} {
		k, ok := c.l.Kernel.(*model.MXFC)
		if !ok || k.Format != c.f || c.l.Label() != c.label {
			t.Fatalf("%s: kernel %T, label %s; want %s", c.l.Name, c.l.Kernel, c.l.Label(), c.label)
		}
		w, s := byName[c.l.Name+".weight"], byName[c.l.Name+".weight_scale"]
		if w == nil || s == nil || w.DType != U8 || s.DType != U8 ||
			!sameShape(w.Shape, []int{c.l.Out, (c.l.In*c.f.Bits() + 7) / 8}) || !sameShape(s.Shape, []int{c.l.Out, (c.l.In + 31) / 32}) {
			t.Fatalf("%s: tensors %+v %+v", c.l.Name, w, s)
		}
		if &k.Codes[0] != &w.Data[0] || &k.Scales[0] != &s.Data[0] {
			t.Errorf("%s: the layer copies the file's bytes", c.l.Name)
		}
	}
	if again := encodeQuantized(t, net, nil, quantInfo(f.Metadata)); !bytes.Equal(again, data) {
		t.Errorf("rewritten as %d bytes that differ from the file's %d", len(again), len(data))
	}
}

// TestMXFileStrict: every fault of an MX table's tensors is a *FormatError
// naming the tensor: a missing scale tensor, a wrong dtype or shape of
// either, a code width that does not fit rq.layers' dim, and a scale
// tensor beside a row-wise table.
func TestMXFileStrict(t *testing.T) {
	data := mxSeed(t)
	read := func(edit func(ts []Tensor, meta map[string]string) []Tensor) error {
		f, err := ParseSafetensors("mx", bytes.Clone(data))
		if err != nil {
			t.Fatal(err)
		}
		meta := map[string]string{}
		for k, v := range f.Metadata {
			meta[k] = v
		}
		ts := edit(append([]Tensor(nil), f.Tensors...), meta)
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, TensorsSpec(ts), meta); err != nil {
			t.Fatal(err)
		}
		g, err := ParseSafetensors("bad.safetensors", buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		_, err = buildQuantized("bad.safetensors", g)
		return err
	}
	index := func(ts []Tensor, name string) int {
		for i := range ts {
			if ts[i].Name == name {
				return i
			}
		}
		t.Fatalf("no %s", name)
		return -1
	}
	cases := []struct {
		what, tensor, msg string
		edit              func(ts []Tensor, meta map[string]string) []Tensor
	}{
		{"no scales", "emb_l.0.weight_scale", "missing", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.0.weight_scale")
			return append(ts[:i], ts[i+1:]...)
		}},
		{"scales I8", "emb_l.1.weight_scale", "dtype I8, want U8", func(ts []Tensor, _ map[string]string) []Tensor {
			ts[index(ts, "emb_l.1.weight_scale")].DType = I8
			return ts
		}},
		{"scales short", "emb_l.2.weight_scale", "shape [7 1], want [7 2]", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.2.weight_scale")
			ts[i].Shape, ts[i].Data = []int{7, 1}, ts[i].Data[:7]
			return ts
		}},
		{"codes F16", "emb_l.0.weight", "dtype F16, want U8", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.0.weight") // 20 values a row, as mxfp4's 20 bytes
			ts[i].DType, ts[i].Data = F16, make([]byte, 2*len(ts[i].Data))
			return ts
		}},
		{"codes of another dim", "emb_l.0.weight", "20 bytes per row do not fit a mxint8 row of dim 40", func(ts []Tensor, meta map[string]string) []Tensor {
			meta["rq.layers"] = strings.Replace(meta["rq.layers"], `"emb_l.0":{"kind":"table","precision":"mxfp4"`, `"emb_l.0":{"kind":"table","precision":"mxint8"`, 1)
			return ts
		}},
		{"scales beside int8 rows", "emb_l.0.weight_scale", "present, but a int8 table (rq.layers) has no scale tensor", func(ts []Tensor, meta map[string]string) []Tensor {
			meta["rq.layers"] = strings.Replace(meta["rq.layers"], `"emb_l.0":{"kind":"table","precision":"mxfp4"`, `"emb_l.0":{"kind":"table","precision":"int8"`, 1)
			i := index(ts, "emb_l.0.weight")
			ts[i].Shape, ts[i].Data = []int{5, 48}, make([]byte, 5*48)
			return ts
		}},
		{"FC scales short", "top_l.0.weight_scale", "shape [6 1], want [6 2]", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "top_l.0.weight_scale")
			ts[i].Shape, ts[i].Data = []int{6, 1}, ts[i].Data[:6]
			return ts
		}},
		{"FC codes of another width", "top_l.0.weight", "23 bytes per row do not fit a mxint8 row of dim 46", func(ts []Tensor, meta map[string]string) []Tensor {
			meta["rq.layers"] = strings.Replace(meta["rq.layers"], `"top_l.0":{"kind":"fc","precision":"mxfp4"`, `"top_l.0":{"kind":"fc","precision":"mxint8"`, 1)
			return ts
		}},
		{"FC static activations", "bot_l.0.weight", `activation "static"`, func(ts []Tensor, meta map[string]string) []Tensor {
			meta["rq.layers"] = strings.Replace(meta["rq.layers"], `"activation":"dynamic"`, `"activation":"static"`, 1)
			return ts
		}},
	}
	for _, c := range cases {
		err := read(c.edit)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Tensor != c.tensor || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v\nwant a FormatError on %s saying %q", c.what, err, c.tensor, c.msg)
		}
	}
	if err := read(func(ts []Tensor, _ map[string]string) []Tensor { return ts }); err != nil {
		t.Errorf("unedited: %v", err)
	}
}

// TestMXFileVectors pushes the MX vectors' x ([256, 32] float32) through a
// quantized file as a 256 x 32 table in each format, quantized while
// written and in memory: the file's code bytes are the vectors' codes
// packed as the little-endian bit stream, its scale bytes the vectors'
// scales, and the table read back dequantizes to deq (but for MXINT8's
// negative values rounding to zero: the code 0 is +0, deq keeps -0).
func TestMXFileVectors(t *testing.T) {
	v, err := readNPZ(testshared.Path(t, "mx/vectors.npz"))
	if err != nil {
		t.Fatal(err)
	}
	x := v["x"]
	if x.descr != "<f4" || !sameShape(x.shape, []int{256, 32}) {
		t.Fatalf("vectors.npz: x is %s %v, want <f4 [256 32]", x.descr, x.shape)
	}
	xs := x.f32()
	net, _, err := BuildNetwork("vec", dlrmTensors([]int{4, 32}, []int{256}, nil, 32+1, []int{1}))
	if err != nil {
		t.Fatal(err)
	}
	net.Tables[0].Weight = xs
	for _, f := range kernels.MXFormats {
		codes, scales, deq := v[f.Elem()+".codes"], v[f.Elem()+".scale"], v[f.Elem()+".deq"]
		if codes.descr != "|u1" || len(codes.data) != 256*32 || scales.descr != "|u1" || len(scales.data) != 256 || deq.descr != "<f4" || len(deq.data) != 4*256*32 {
			t.Fatalf("vectors.npz: %s arrays %s/%d %s/%d %s/%d", f.Elem(), codes.descr, len(codes.data), scales.descr, len(scales.data), deq.descr, len(deq.data))
		}
		packed := make([]byte, 256*32*f.Bits()/8)
		for i, c := range codes.data {
			for b := range f.Bits() {
				pos := i*f.Bits() + b
				packed[pos/8] |= (c >> b & 1) << (pos % 8)
			}
		}
		wantDeq := deq.f32()
		inMemory, err := quantize.Apply(net, &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{"emb_l.0": {Precision: f.Precision()}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for how, file := range map[string][]byte{
			"streamed":  encodeQuantized(t, net, map[string]TableEncoding{"emb_l.0": {MX: f}}, QuantInfo{}),
			"in memory": encodeQuantized(t, inMemory, nil, QuantInfo{}),
		} {
			sf, err := ParseSafetensors("vec", file)
			if err != nil {
				t.Fatal(err)
			}
			for _, tn := range sf.Tensors {
				switch tn.Name {
				case "emb_l.0.weight":
					if !sameShape(tn.Shape, []int{256, 32 * f.Bits() / 8}) || !bytes.Equal(tn.Data, packed) {
						t.Errorf("%v %s: codes %v differ from the vectors' packed codes", f, how, tn.Shape)
					}
				case "emb_l.0.weight_scale":
					if !sameShape(tn.Shape, []int{256, 1}) || !bytes.Equal(tn.Data, scales.data) {
						t.Errorf("%v %s: scales %v differ from the vectors'", f, how, tn.Shape)
					}
				}
			}
			back, err := buildQuantized("vec", sf)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := back.Tables[0].Kernel.(*kernels.MXBagTable)
			if !ok {
				t.Fatalf("%v %s: table kernel %T", f, how, back.Tables[0].Kernel)
			}
			got := make([]float32, 256*32)
			k.DequantizeRows(0, 256, got)
			bad := 0
			for i, w := range wantDeq {
				if f == kernels.MXINT8 && codes.data[i] == 0 && w == 0 {
					w = 0 // +0: two's complement has no -0
				}
				if math.Float32bits(got[i]) != math.Float32bits(w) {
					if bad++; bad <= 5 {
						t.Errorf("%v %s: x[%d][%d] = %g reads back as %g, want %g", f, how, i/32, i%32, xs[i], got[i], w)
					}
				}
			}
		}
	}
}

// npyArray, readNPZ: a test's reader of the MX vectors (C-order <f4 and
// |u1 arrays), as kernels' tests have (test code is not importable).
type npyArray struct {
	descr string
	shape []int
	data  []byte
}

var npyHeaderRE = regexp.MustCompile(`^\{'descr': '([<|]\w+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \}\s*$`)

func readNPZ(path string) (map[string]npyArray, error) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	out := map[string]npyArray{}
	for _, zf := range z.File {
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
		}
		if len(b) < 10 || string(b[:6]) != "\x93NUMPY" || b[6] != 1 {
			return nil, fmt.Errorf("%s: %s: not a version 1 .npy array", path, zf.Name)
		}
		hl := int(binary.LittleEndian.Uint16(b[8:]))
		if 10+hl > len(b) {
			return nil, fmt.Errorf("%s: %s: truncated header", path, zf.Name)
		}
		m := npyHeaderRE.FindStringSubmatch(string(b[10 : 10+hl]))
		if m == nil {
			return nil, fmt.Errorf("%s: %s: unsupported header %q", path, zf.Name, b[10:10+hl])
		}
		a := npyArray{descr: m[1], data: b[10+hl:]}
		for _, s := range strings.Split(m[2], ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			d, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
			}
			a.shape = append(a.shape, d)
		}
		out[strings.TrimSuffix(filepath.Base(zf.Name), ".npy")] = a
	}
	return out, nil
}

func (a npyArray) f32() []float32 {
	out := make([]float32, len(a.data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.data[4*i:]))
	}
	return out
}
