package modelio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// quantizedSeeds writes a small network under a few presets as rq
// quantized files and returns their bytes.
func quantizedSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	ts := dlrmTensors([]int{4, 8}, []int{5, 6}, nil, 8+3, []int{6, 1})
	net, _, err := BuildNetwork("seed", ts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := map[string][]byte{}
	for _, preset := range []string{"fp16", "bf16", "int8-dynamic", "pytorch-dynamic-int4"} {
		plan, err := quantize.Preset(preset, net)
		if err != nil {
			t.Fatal(err)
		}
		q, err := quantize.Apply(net, plan, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, preset)
		if err := WriteQuantized(p, q, nil, QuantInfo{SourceSHA256: "00", Plan: plan.Encode()}); err != nil {
			t.Fatal(err)
		}
		f, err := OpenSafetensors(p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, TensorsSpec(f.Tensors), f.Metadata); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out[preset] = buf.Bytes()
	}
	return out
}

func tinyBatch(net *model.Network) *model.Batch {
	b := &model.Batch{N: 2, NumDense: net.NumDense, Dense: make([]float32, 2*net.NumDense), Labels: []float32{0, 1}}
	for range net.Tables {
		b.Indices = append(b.Indices, []int64{0, 1})
		b.Offsets = append(b.Offsets, []int32{0, 1, 2})
	}
	return b
}

// TestQuantizedRoundTrip: a written quantized network reads back with the
// same precisions and computes the same predictions.
func TestQuantizedRoundTrip(t *testing.T) {
	for preset, data := range quantizedSeeds(t) {
		f, err := ParseSafetensors(preset, data)
		if err != nil {
			t.Fatal(err)
		}
		if !IsQuantized(f.Metadata) {
			t.Fatalf("%s: not marked quantized", preset)
		}
		net, err := buildQuantized(preset, f)
		if err != nil {
			t.Fatalf("%s: %v", preset, err)
		}
		if _, err := model.NewRunner(net, 1).Forward(tinyBatch(net)); err != nil {
			t.Fatalf("%s: %v", preset, err)
		}
		want := map[string]string{"fp16": "fp16", "bf16": "bf16", "int8-dynamic": "int8-dynamic", "pytorch-dynamic-int4": "int8-dynamic"}[preset]
		if l, ok := net.Layer("top_l.0"); !ok {
			t.Errorf("%s: no top_l.0", preset)
		} else if got := l.Label(); got != want {
			t.Errorf("%s: top_l.0 reads back as %s", preset, got)
		}
	}
}

// fixedRanges calibrates every layer to [-4, 8]: static int8 seeds need
// some ranges, and real ones (rq calibrate) would not change the format.
type fixedRanges struct{}

func (fixedRanges) Range(layer, method string) (float32, float32, error) { return -4, 8, nil }

// demoSeeds quantizes the demo model (cmd/testdata/demo, the Criteo DLRM)
// with a static int8 preset (input scales and zero points) and PyTorch's
// dynamic recipe (per-tensor weight scales), both with 4-bit tables: 1.3
// MB each, where fp32 tables would make 4.8 MB inputs that slow the
// fuzzer down to a few runs a second.
func demoSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	m, err := Load(filepath.Join("..", "cmd", "testdata", "demo", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]byte{}
	for _, preset := range []string{"int8-int4", "pytorch-dynamic-int4"} {
		plan, err := quantize.Preset(preset, m.Net)
		if err != nil {
			t.Fatal(err)
		}
		q, err := quantize.Apply(m.Net, plan, fixedRanges{})
		if err != nil {
			t.Fatalf("%s: %v", preset, err)
		}
		out["demo-"+preset] = encodeQuantized(t, q, nil, QuantInfo{SourceSHA256: "demo", Plan: plan.Encode()})
	}
	return out
}

// encodeQuantized is WriteQuantized into memory: the same tensors and
// metadata, encoded as WriteSafetensors encodes them.
func encodeQuantized(t testing.TB, net *model.Network, tables map[string]TableEncoding, info QuantInfo) []byte {
	t.Helper()
	specs, meta, err := quantizedSpecs(context.Background(), net, tables, info)
	if err != nil {
		t.Fatalf("a network read from a quantized file does not write back: %v", err)
	}
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, specs, meta); err != nil {
		t.Fatalf("a network read from a quantized file does not write back: %v", err)
	}
	return buf.Bytes()
}

// quantInfo is the provenance a quantized file carries, to write it again.
func quantInfo(meta map[string]string) QuantInfo {
	info := QuantInfo{SourceSHA256: meta["rq.source_sha256"]}
	if p, ok := meta["rq.plan"]; ok {
		info.Plan = []byte(p)
	}
	return info
}

// diffNetworks describes the first difference between two networks: their
// inputs, interaction, and every layer's name, shape, activation,
// precision, weights, bias and kernel data bit for bit (nil if none).
func diffNetworks(a, b *model.Network) error {
	if a.NumDense != b.NumDense || a.Interaction.String() != b.Interaction.String() {
		return fmt.Errorf("network: %d dense, %s interaction vs %d, %s", a.NumDense, a.Interaction, b.NumDense, b.Interaction)
	}
	la, lb := slices.Collect(a.Layers()), slices.Collect(b.Layers())
	if len(la) != len(lb) {
		return fmt.Errorf("%d layers vs %d", len(la), len(lb))
	}
	for i := range la {
		x, y := la[i], lb[i]
		if x.Name() != y.Name() || x.Label() != y.Label() || x.TableIndex != y.TableIndex || (x.FC == nil) != (y.FC == nil) {
			return fmt.Errorf("layer %d: %s %s (table %d) vs %s %s (table %d)", i, x.Name(), x.Label(), x.TableIndex, y.Name(), y.Label(), y.TableIndex)
		}
		var ka, kb string
		if x.FC != nil {
			ka, kb = fcBits(x.FC), fcBits(y.FC)
		} else {
			ka, kb = tableBits(x.Table), tableBits(y.Table)
		}
		if ka != kb {
			return fmt.Errorf("%s: differs (%.200q vs %.200q)", x.Name(), ka, kb)
		}
	}
	return nil
}

func f32Bits(v []float32) string {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		u := math.Float32bits(x)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return fmt.Sprintf("%d:%x", len(v), b)
}

func u16Bits(v []uint16) string {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8))
	}
	return fmt.Sprintf("%d:%x", len(v), b)
}

// fcBits spells out everything an FC layer computes with.
func fcBits(l *model.Linear) string {
	s := fmt.Sprintf("%dx%d %s w=%s b=%s ", l.Out, l.In, l.Act, f32Bits(l.Weight), f32Bits(l.Bias))
	switch k := l.Kernel.(type) {
	case nil:
		return s + "fp32"
	case *model.F16FC:
		return s + fmt.Sprintf("fp16 %dx%d %s", k.Out, k.In, u16Bits(k.W))
	case *model.BF16FC:
		return s + fmt.Sprintf("bf16 %dx%d %s", k.Out, k.In, u16Bits(k.W))
	case *model.Int8FC:
		return s + fmt.Sprintf("int8 %dx%d q=%x scale=%s full=%v static=%v in=%08x/%d row=%v reduce=%v", k.Out, k.In, int8Bytes(k.QWeight), f32Bits(k.WScale),
			k.FullRange, k.Static, math.Float32bits(k.InScale), k.InZero, k.PerRow, k.ReduceRange)
	}
	return s + fmt.Sprintf("kernel %T", l.Kernel)
}

// tableBits spells out everything a table pools from.
func tableBits(t *model.Table) string {
	s := fmt.Sprintf("%dx%d w=%s ", t.Rows, t.Dim, f32Bits(t.Weight))
	switch k := t.Kernel.(type) {
	case nil:
		return s + "fp32"
	case *kernels.BagTable:
		return s + fmt.Sprintf("%v %dx%d mean=%v %x", k.Format, k.Rows, k.Dim, k.Mean, k.Data)
	case *kernels.MXBagTable:
		return s + fmt.Sprintf("%v %dx%d mean=%v codes=%x scales=%x", k.Format, k.Rows, k.Dim, k.Mean, k.Codes, k.Scales)
	case *kernels.MixedBagTable:
		return s + mixedBits(k)
	}
	return s + fmt.Sprintf("kernel %T", t.Kernel)
}

// TestQuantizedRewrite: a quantized file rq wrote reads and writes back
// byte for byte (the writer's tensor order and metadata are the reader's
// inverse), and the network read again is the same.
func TestQuantizedRewrite(t *testing.T) {
	seeds := quantizedSeeds(t)
	for name, data := range demoSeeds(t) {
		seeds[name] = data
	}
	q, tables, info := goldenNetwork(t)
	seeds["golden"] = encodeQuantized(t, q, tables, info)
	seeds["mx"] = mxSeed(t)
	seeds["mixed"] = mixedSeed(t)
	for name, data := range seeds {
		f, err := ParseSafetensors(name, data)
		if err != nil {
			t.Fatal(err)
		}
		net, err := buildQuantized(name, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again := encodeQuantized(t, net, nil, quantInfo(f.Metadata))
		if !bytes.Equal(again, data) {
			t.Errorf("%s: rewritten as %d bytes that differ from the file's %d", name, len(again), len(data))
		}
	}
}

// TestDiffNetworks: the fuzzer's comparison sees a single bit changed in a
// scale, a kernel's data or a bias, and a precision changed.
func TestDiffNetworks(t *testing.T) {
	data := demoSeeds(t)["demo-int8-int4"]
	read := func() *model.Network {
		// A copy each: tensors alias the bytes they are parsed from.
		f, err := ParseSafetensors("demo", bytes.Clone(data))
		if err != nil {
			t.Fatal(err)
		}
		net, err := buildQuantized("demo", f)
		if err != nil {
			t.Fatal(err)
		}
		return net
	}
	a := read()
	if err := diffNetworks(a, read()); err != nil {
		t.Fatalf("the same file read twice: %v", err)
	}
	edits := map[string]func(*model.Network){
		"input scale": func(n *model.Network) {
			l, _ := n.Layer("top_l.0")
			k := l.FC.Kernel.(*model.Int8FC)
			k.InScale = math.Float32frombits(math.Float32bits(k.InScale) ^ 1)
		},
		"table data": func(n *model.Network) {
			l, _ := n.Layer("emb_l.25")
			d := l.Table.Kernel.(*kernels.BagTable).Data
			d[len(d)-1] ^= 0x10
		},
		"bias": func(n *model.Network) {
			l, _ := n.Layer("bot_l.0")
			l.FC.Bias[3] = -l.FC.Bias[3]
		},
		"precision": func(n *model.Network) {
			l, _ := n.Layer("bot_l.6")
			l.FC.Kernel.(*model.Int8FC).Static = false
		},
	}
	for what, edit := range edits {
		b := read()
		edit(b)
		if err := diffNetworks(a, b); err == nil {
			t.Errorf("a changed %s goes unseen", what)
		}
	}
}

// FuzzQuantizedFile: any bytes either fail to parse, or build a network
// that runs a batch without panicking and that round-trips, as image/png's
// fuzzer checks: what was read writes back, reads again as the same
// network, and writes again as the same bytes. Fuzz it with
// -fuzzminimizetime 1x (or a few seconds): with the default (60 s per new
// input) a 60 s run spends its time minimizing its first find and runs the
// target under a hundred times, against about 25,000 a second otherwise.
func FuzzQuantizedFile(f *testing.F) {
	for _, data := range quantizedSeeds(f) {
		f.Add(data)
	}
	for _, data := range demoSeeds(f) {
		f.Add(data)
	}
	// Every kind of layer the format stores, in one small file.
	q, tables, info := goldenNetwork(f)
	f.Add(encodeQuantized(f, q, tables, info))
	f.Add(mxSeed(f))    // MX tables: codes and scale tensors
	f.Add(mixedSeed(f)) // mixed tables: hot ids and two parts
	hostile, err := filepath.Glob(filepath.Join("..", "cmd", "testdata", "hostile", "*.safetensors"))
	if err != nil || len(hostile) == 0 {
		f.Fatalf("no hostile safetensors files (%v)", err)
	}
	for _, p := range hostile {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := ParseSafetensors("fuzz", data)
		if err != nil || !IsQuantized(sf.Metadata) {
			return
		}
		net, err := buildQuantized("fuzz", sf)
		if err != nil {
			return
		}
		// Whatever it built must run (an out-of-range lookup is an error,
		// not a panic).
		model.NewRunner(net, 1).Forward(tinyBatch(net))

		first := encodeQuantized(t, net, nil, quantInfo(sf.Metadata))
		sf2, err := ParseSafetensors("rewritten", first)
		if err != nil {
			t.Fatalf("the rewritten file does not parse: %v", err)
		}
		net2, err := buildQuantized("rewritten", sf2)
		if err != nil {
			t.Fatalf("the rewritten file does not read: %v", err)
		}
		if err := diffNetworks(net, net2); err != nil {
			t.Fatalf("the rewritten file reads as another network: %v", err)
		}
		if second := encodeQuantized(t, net2, nil, quantInfo(sf2.Metadata)); !bytes.Equal(first, second) {
			t.Fatalf("written twice, %d and %d bytes that differ", len(first), len(second))
		}
	})
}

// TestWriteQuantizedInterrupted cancels a write in the middle of a table
// (after its first block of rows): the previous file at the path must be
// untouched and no temporary file left behind.
func TestWriteQuantizedInterrupted(t *testing.T) {
	rows := 3*encodeRowsBlock + 5
	ts := dlrmTensors([]int{4, 8}, []int{rows, 6}, nil, 8+3, []int{1})
	net, _, err := BuildNetwork("big", ts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	previous := []byte("the previous output")
	if err := os.WriteFile(path, previous, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	blocks := 0
	enc := TableEncoding{Format: kernels.TableQ8, Encode: func(w []float32, rows, dim int, dst []byte) {
		kernels.QuantizeRows8(w, rows, dim, dst)
		if blocks++; blocks == 1 {
			cancel() // as Ctrl-C would, mid-table
		}
	}}
	err = WriteQuantizedContext(ctx, path, net, map[string]TableEncoding{"emb_l.0": enc}, QuantInfo{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted write: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(previous) {
		t.Errorf("the previous file changed: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left behind: %v", entries)
	}
	if blocks != 1 {
		t.Errorf("%d blocks encoded after cancellation, want 1", blocks)
	}
}

// goldenQuantizedSHA256 is the sha256 of the file TestWriteQuantizedGolden
// writes, recorded with the writer as it was before it walked net.Layers
// (commit ccba7e5): the tensor order and metadata of the format must not
// move.
const goldenQuantizedSHA256 = "8da1cc90d33f90052b888683aa5d602d181ec17ec7c9ccd3a57b2ab5008e0688"

// TestWriteQuantizedGolden writes a network holding every kind of layer the
// format stores (fp32, fp16, bf16 and int8 FC layers: static, dynamic per
// row and per tensor, full and reduced range; fp32, fp16, 8/4/2-bit tables
// and a table quantized while written) from hand-made kernels, so that only
// the writer decides the bytes, and compares them with the recorded ones.
func TestWriteQuantizedGolden(t *testing.T) {
	q, tables, info := goldenNetwork(t)
	path := filepath.Join(t.TempDir(), "golden.safetensors")
	if err := WriteQuantized(path, q, tables, info); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != goldenQuantizedSHA256 {
		t.Errorf("the quantized file's bytes moved: sha256 %s, want %s", got, goldenQuantizedSHA256)
	}
	// It also reads back, layer for layer in the precisions it was given.
	f, err := ParseSafetensors("golden", data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := buildQuantized("golden", f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range back.Layers() {
		got = append(got, l.Name()+"="+l.Label())
	}
	want := "bot_l.0=fp32 bot_l.2=fp16 bot_l.4=int8-dynamic emb_l.0=fp32 emb_l.1=fp16 emb_l.2=int8-rowwise emb_l.3=int4-rowwise emb_l.4=int2-rowwise emb_l.5=int4-rowwise top_l.0=int8-static top_l.2=int8-dynamic top_l.4=bf16"
	if strings.Join(got, " ") != want {
		t.Errorf("read back as %s\nwant %s", strings.Join(got, " "), want)
	}
}

// goldenNetwork is TestWriteQuantizedGolden's network, with the encoding of
// the table it quantizes while written and its provenance.
func goldenNetwork(t testing.TB) (*model.Network, map[string]TableEncoding, QuantInfo) {
	t.Helper()
	ts := dlrmTensors([]int{4, 8, 8, 8}, []int{5, 6, 7, 3, 4, 9}, nil, 8+21, []int{6, 5, 1})
	net, _, err := BuildNetwork("golden", ts)
	if err != nil {
		t.Fatal(err)
	}
	pattern := func(n, seed int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*seed + seed)
		}
		return b
	}
	u16 := func(n, seed int) []uint16 {
		v := make([]uint16, n)
		for i := range v {
			v[i] = 0x3c00 + uint16((i*seed)%512)
		}
		return v
	}
	i8 := func(n, seed int, full bool) []int8 {
		v := make([]int8, n)
		for i := range v {
			v[i] = int8((i*seed)%255 - 127)
		}
		if full {
			v[0] = -128
		}
		return v
	}
	scales := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 0.01 * float32(i+1)
		}
		return v
	}
	kernelOf := map[string]func(l *model.Linear) model.FCKernel{
		"bot_l.2": func(l *model.Linear) model.FCKernel { return &model.F16FC{In: l.In, Out: l.Out, W: u16(l.In*l.Out, 3)} },
		"bot_l.4": func(l *model.Linear) model.FCKernel {
			return &model.Int8FC{In: l.In, Out: l.Out, QWeight: i8(l.In*l.Out, 5, false), WScale: scales(1), ReduceRange: true}
		},
		"top_l.0": func(l *model.Linear) model.FCKernel {
			return &model.Int8FC{In: l.In, Out: l.Out, QWeight: i8(l.In*l.Out, 7, false), WScale: scales(l.Out), Static: true, InScale: 0.05, InZero: 3}
		},
		"top_l.2": func(l *model.Linear) model.FCKernel {
			return &model.Int8FC{In: l.In, Out: l.Out, QWeight: i8(l.In*l.Out, 11, true), WScale: scales(l.Out), FullRange: true, PerRow: true}
		},
		"top_l.4": func(l *model.Linear) model.FCKernel {
			return &model.BF16FC{In: l.In, Out: l.Out, W: u16(l.In*l.Out, 13)}
		},
	}
	formatOf := map[string]kernels.TableFormat{"emb_l.1": kernels.TableF16, "emb_l.2": kernels.TableQ8, "emb_l.3": kernels.TableQ4, "emb_l.4": kernels.TableQ2}
	q, err := net.Map(func(l *model.Linear) (*model.Linear, error) {
		k, ok := kernelOf[l.Name]
		if !ok {
			return l, nil // bot_l.0 stays fp32
		}
		return &model.Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Bias: l.Bias, Kernel: k(l)}, nil
	}, func(tb *model.Table) (*model.Table, error) {
		f, ok := formatOf[tb.Name]
		if !ok {
			return tb, nil // emb_l.0 stays fp32, emb_l.5 is quantized while written
		}
		bt, err := kernels.NewBagTable(f, tb.Rows, tb.Dim, pattern(int(tb.Rows)*f.RowBytes(tb.Dim), int(f)+17))
		return &model.Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Kernel: bt}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	streamed := TableEncoding{Format: kernels.TableQ4, Encode: func(w []float32, rows, dim int, dst []byte) {
		for i := range dst {
			dst[i] = byte(i*29+rows) ^ byte(math.Float32bits(w[i%len(w)]))
		}
	}}
	return q, map[string]TableEncoding{"emb_l.5": streamed}, QuantInfo{SourceSHA256: "ab", Plan: []byte(`{"version": 1}`)}
}

// A quantized file whose rq.layers gives a precision rq does not know is
// refused with the one error type, *precision.UnknownError, inside a
// *FormatError naming the file and the layer's weight tensor; a known
// precision its layer's kind cannot hold keeps its own message.
func TestQuantizedUnknownPrecision(t *testing.T) {
	q, tables, info := goldenNetwork(t)
	data := encodeQuantized(t, q, tables, info)
	if _, err := buildQuantized("golden", mustParse(t, data)); err != nil {
		t.Fatal(err)
	}
	// rq.layers is a JSON string in the header: its quotes are escaped.
	// Each edit keeps the length, so the header stays well-formed.
	for _, c := range []struct {
		layer, from, to, want, unknown string
	}{
		{"bot_l.4", "int8", "int9", `tensor "bot_l.4.weight": rq.layers: unknown precision "int9"; precisions: fp32, fp16, bf16, int8, int4, int2`, "int9"},
		{"emb_l.3", "int4", "INT4", `tensor "emb_l.3.weight": rq.layers: unknown precision "INT4"`, "INT4"},
		{"top_l.4", "bf16", "bf17", `tensor "top_l.4.weight": rq.layers: unknown precision "bf17"`, "bf17"},
		{"emb_l.1", "fp16", "bf16", `tensor "emb_l.1.weight": rq.layers gives table precision "bf16"`, ""},
	} {
		from := fmt.Sprintf(`\"%s\":{\"kind\":`, c.layer)
		i := bytes.Index(data, []byte(from))
		if i < 0 {
			t.Fatalf("%s not in the header", from)
		}
		j := i + bytes.Index(data[i:], []byte(`\"precision\":\"`+c.from+`\"`))
		if j < i {
			t.Fatalf("%s is not %s", c.layer, c.from)
		}
		bad := bytes.Clone(data)
		copy(bad[j:], `\"precision\":\"`+c.to+`\"`)
		_, err := buildQuantized("bad.safetensors", mustParse(t, bad))
		if err == nil || !strings.HasPrefix(err.Error(), "bad.safetensors: "+c.want) {
			t.Errorf("%s %s: %v\nwant bad.safetensors: %s", c.layer, c.to, err, c.want)
			continue
		}
		var fe *FormatError
		var u *precision.UnknownError
		if !errors.As(err, &fe) || fe.File != "bad.safetensors" {
			t.Errorf("%s %s: %v is not a *FormatError", c.layer, c.to, err)
		}
		if got := errors.As(err, &u); got != (c.unknown != "") || (got && u.Name != c.unknown) {
			t.Errorf("%s %s: %v: *UnknownError %v, want one for %q", c.layer, c.to, err, got, c.unknown)
		}
	}
}

func mustParse(t *testing.T, data []byte) *SafetensorsFile {
	t.Helper()
	f, err := ParseSafetensors("golden", data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
