package modelio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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

// fixedHot is a quantize.HotRowSource over fixed lists of rows, hottest first.
type fixedHot map[string][]int64

func (h fixedHot) HotRows(table string, share float64) ([]int64, error) {
	l, ok := h[table]
	if !ok {
		return nil, fmt.Errorf("no counts for %s", table)
	}
	rows := map[string]int64{"emb_l.0": 70, "emb_l.1": 90, "emb_l.2": 40}[table]
	return l[:quantize.HotCount(share, rows, int64(len(l)))], nil
}

func (h fixedHot) ListedRows(table string) (int64, bool) {
	l, ok := h[table]
	return int64(len(l)), ok
}

func (h fixedHot) Range(layer, method string) (float32, float32, error) {
	return 0, 0, fmt.Errorf("no ranges")
}

// mixedHot lists every table's rows in a fixed random order (the counts'
// order), two of emb_l.2's rows never seen.
func mixedHot() fixedHot {
	rng := rand.New(rand.NewPCG(44, 1))
	h := fixedHot{}
	for i, rows := range []int{70, 90, 38} { // in order: the same lists every call
		name := fmt.Sprintf("emb_l.%d", i)
		l := make([]int64, rows)
		for j, r := range rng.Perm(rows) {
			l[j] = int64(r)
		}
		h[name] = l
	}
	return h
}

// mixedNet is a small network with random tables of 70, 90 and 40 rows of
// dim 16, and mixedPlans its tables' mixed plans.
func mixedNet(t testing.TB) *model.Network {
	t.Helper()
	net, _, err := BuildNetwork("mixed", dlrmTensors([]int{4, 16}, []int{70, 90, 40}, nil, 16+6, []int{6, 1}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(44, 2))
	for _, tb := range net.Tables {
		w := make([]float32, len(tb.Weight))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(6)-3)))
		}
		tb.Weight = w
	}
	return net
}

var mixedPlans = map[string]quantize.LayerPlan{
	"emb_l.0": quantize.MixedPlan(precision.Int8, precision.Int2, 0.1),
	"emb_l.1": quantize.MixedPlan(precision.MXFP8E4M3, precision.MXFP4, 0.05),
	"emb_l.2": quantize.MixedPlan(precision.FP16, precision.MXFP6E2M3, 0.5),
}

// mixedEncoding is the streamed encoding of table name under its mixed plan.
func mixedEncoding(t testing.TB, net *model.Network, name string) TableEncoding {
	t.Helper()
	lp := mixedPlans[name]
	tb := net.Tables[map[string]int{"emb_l.0": 0, "emb_l.1": 1, "emb_l.2": 2}[name]]
	hot, err := mixedHot().HotRows(name, lp.HotShare)
	if err != nil {
		t.Fatal(err)
	}
	hot, err = quantize.SortedHotRows(name, tb.Rows, hot)
	if err != nil {
		t.Fatal(err)
	}
	part := func(p precision.Precision) TableEncoding {
		if f, ok := kernels.MXFormatOf(p); ok {
			return TableEncoding{MX: f}
		}
		f, _ := kernels.TableFormatOf(p)
		return TableEncoding{Format: f, Encode: func(w []float32, rows, dim int, dst []byte) {
			quantize.QuantizeTableRows(f, false, w, rows, dim, dst)
		}}
	}
	return TableEncoding{Mixed: &MixedEncoding{HotRows: hot, Hot: part(lp.HotPrecision), Cold: part(lp.ColdPrecision)}}
}

// mixedSeed is a quantized file of mixedNet with emb_l.0 and emb_l.2
// quantized in memory (quantize.Apply) and emb_l.1 streamed while written.
func mixedSeed(t testing.TB) []byte {
	t.Helper()
	net := mixedNet(t)
	plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{"emb_l.0": mixedPlans["emb_l.0"], "emb_l.2": mixedPlans["emb_l.2"]}}
	q, err := quantize.Apply(net, plan, mixedHot())
	if err != nil {
		t.Fatal(err)
	}
	plan.Layers["emb_l.1"] = mixedPlans["emb_l.1"]
	return encodeQuantized(t, q, map[string]TableEncoding{"emb_l.1": mixedEncoding(t, net, "emb_l.1")}, QuantInfo{SourceSHA256: "mixed", Plan: plan.Encode()})
}

// mixedBits spells out everything a mixed table pools from.
func mixedBits(k *kernels.MixedBagTable) string {
	part := func(rt kernels.RowTable) string {
		switch p := rt.(type) {
		case *kernels.BagTable:
			return fmt.Sprintf("%v %dx%d %x", p.Format, p.Rows, p.Dim, p.Data)
		case *kernels.MXBagTable:
			return fmt.Sprintf("%v %dx%d codes=%x scales=%x", p.Format, p.Rows, p.Dim, p.Codes, p.Scales)
		}
		return fmt.Sprintf("%T", rt)
	}
	return fmt.Sprintf("mixed %dx%d mean=%v hot=%v [%s] [%s]", k.Rows, k.Dim, k.Mean, k.HotRows(), part(k.Hot), part(k.Cold))
}

// mixedBatch looks up every row of every table once, in bags of 0 to 4.
func mixedBatch(net *model.Network) *model.Batch {
	rng := rand.New(rand.NewPCG(44, 3))
	const n = 64
	b := &model.Batch{N: n, NumDense: net.NumDense, Dense: make([]float32, n*net.NumDense), Labels: make([]float32, n)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32()
	}
	for _, tb := range net.Tables {
		perm := rng.Perm(int(tb.Rows))
		off := []int32{0}
		var idx []int64
		for i := range n {
			for range rng.IntN(5) {
				idx = append(idx, int64(perm[len(idx)%len(perm)]))
			}
			_ = i
			off = append(off, int32(len(idx)))
		}
		b.Indices = append(b.Indices, idx)
		b.Offsets = append(b.Offsets, off)
	}
	return b
}

// TestMixedFile: the seed reads back as mixed tables with their parts'
// precisions and hot rows, N.hot_rows I32 ascending and each part in its
// precision's layout (aliasing the file), writes back byte for byte, and
// predicts bit for bit what the in-memory quantized network predicts;
// loaded from disk (mapped, tables readied) it predicts the same again.
func TestMixedFile(t *testing.T) {
	data := mixedSeed(t)
	f, err := ParseSafetensors("mixed", data)
	if err != nil {
		t.Fatal(err)
	}
	net, err := buildQuantized("mixed", f)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Tensor{}
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	hot := mixedHot()
	for _, tb := range net.Tables {
		lp := mixedPlans[tb.Name]
		k, ok := tb.Kernel.(*kernels.MixedBagTable)
		if !ok || k.HotPrecision() != lp.HotPrecision || k.ColdPrecision() != lp.ColdPrecision {
			t.Fatalf("%s: kernel %T", tb.Name, tb.Kernel)
		}
		want, _ := hot.HotRows(tb.Name, lp.HotShare)
		want = slices.Sorted(slices.Values(want))
		if got := k.HotRows(); !slices.Equal(got, want) {
			t.Errorf("%s: hot rows %v, want %v", tb.Name, got, want)
		}
		ids := byName[tb.Name+".hot_rows"]
		if ids == nil || ids.DType != I32 || !sameShape(ids.Shape, []int{len(want)}) || int64(binary.LittleEndian.Uint32(ids.Data[4*(len(want)-1):])) != want[len(want)-1] {
			t.Errorf("%s: hot_rows tensor %+v", tb.Name, ids)
		}
		if _, ok := byName[tb.Name+".weight"]; ok {
			t.Errorf("%s: a mixed table has a .weight tensor", tb.Name)
		}
		var stored int64
		for _, s := range []string{".hot_rows", ".hot_weight", ".hot_weight_scale", ".cold_weight", ".cold_weight_scale"} {
			if x := byName[tb.Name+s]; x != nil {
				stored += int64(len(x.Data))
			}
		}
		if tb.Bytes() != stored {
			t.Errorf("%s: Bytes %d, the file stores %d", tb.Name, tb.Bytes(), stored)
		}
	}
	if p := net.Tables[1].Kernel.(*kernels.MixedBagTable).Cold.(*kernels.MXBagTable); &p.Codes[0] != &byName["emb_l.1.cold_weight"].Data[0] {
		t.Error("the cold part copies the file's bytes")
	}
	if again := encodeQuantized(t, net, nil, quantInfo(f.Metadata)); !bytes.Equal(again, data) {
		t.Errorf("rewritten as %d bytes that differ from the file's %d", len(again), len(data))
	}
	// The network quantized in memory, every table by Apply.
	src := mixedNet(t)
	q, err := quantize.Apply(src, &quantize.Plan{Version: quantize.PlanVersion, Layers: mixedPlans}, hot)
	if err != nil {
		t.Fatal(err)
	}
	b := mixedBatch(src)
	want, err := model.NewRunner(q, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	got, err := model.NewRunner(net, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFloatBits(got, want) {
		t.Errorf("the file predicts %v, the in-memory network %v", got[:4], want[:4])
	}
	path := filepath.Join(t.TempDir(), "mixed.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.PrepareTables(-1)
	got, err = model.NewRunner(m.Net, 2).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFloatBits(got, want) {
		t.Error("loaded from disk, the file predicts otherwise")
	}
	if err := CheckFinite(m); err != nil {
		t.Error(err)
	}
	if ts := m.LayerTensors("emb_l.1"); len(ts) != 5 {
		t.Errorf("emb_l.1's tensors: %d, want hot_rows and two MX parts' codes and scales", len(ts))
	}
}

func sameFloatBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestMixedStreamed: a table streamed into the file while written is the
// same bytes as the table quantized in memory, for every part pair.
func TestMixedStreamed(t *testing.T) {
	net := mixedNet(t)
	for _, pair := range [][2]precision.Precision{{precision.Int8, precision.Int2}, {precision.FP32, precision.Int4}, {precision.FP16, precision.MXFP4}, {precision.MXINT8, precision.Int8}, {precision.MXFP6E3M2, precision.FP16}} {
		plans := map[string]quantize.LayerPlan{}
		tables := map[string]TableEncoding{}
		for name, lp := range mixedPlans {
			mixedPlans[name] = quantize.MixedPlan(pair[0], pair[1], lp.HotShare)
			plans[name] = mixedPlans[name]
			tables[name] = mixedEncoding(t, net, name)
			mixedPlans[name] = lp
		}
		q, err := quantize.Apply(net, &quantize.Plan{Version: quantize.PlanVersion, Layers: plans}, mixedHot())
		if err != nil {
			t.Fatal(err)
		}
		mem := encodeQuantized(t, q, nil, QuantInfo{SourceSHA256: "x"})
		streamed := encodeQuantized(t, net, tables, QuantInfo{SourceSHA256: "x"})
		if !bytes.Equal(mem, streamed) {
			t.Errorf("%v: streamed %d bytes, in memory %d, that differ", pair, len(streamed), len(mem))

		}
	}
}

// TestMixedStreamedCheck: a part's Check sees its own rows, as the table's
// rows: the hot ones one at a time, the cold ones in runs, each row once.
func TestMixedStreamedCheck(t *testing.T) {
	net := mixedNet(t)
	enc := mixedEncoding(t, net, "emb_l.0")
	seen := map[int64]string{}
	check := func(part string) func(w []float32, first int64, rows, dim int) error {
		return func(w []float32, first int64, rows, dim int) error {
			for r := first; r < first+int64(rows); r++ {
				if seen[r] != "" {
					return fmt.Errorf("row %d checked twice", r)
				}
				seen[r] = part
				if !slices.Equal(w[(r-first)*int64(dim):(r-first+1)*int64(dim)], net.Tables[0].Weight[r*16:(r+1)*16]) {
					return fmt.Errorf("row %d: other values", r)
				}
			}
			return nil
		}
	}
	enc.Mixed.Hot.Check, enc.Mixed.Cold.Check = check("hot"), check("cold")
	encodeQuantized(t, net, map[string]TableEncoding{"emb_l.0": enc}, QuantInfo{SourceSHA256: "x"})
	for r := range int64(70) {
		want := "cold"
		if _, ok := slices.BinarySearch(enc.Mixed.HotRows, r); ok {
			want = "hot"
		}
		if seen[r] != want {
			t.Errorf("row %d checked as %q, want %q", r, seen[r], want)
		}
	}
	enc.Mixed.Hot.Check = nil
	enc.Mixed.Cold.Check = func(w []float32, first int64, rows, dim int) error { return fmt.Errorf("row %d refused", first) }
	specs, meta, err := quantizedSpecs(t.Context(), net, map[string]TableEncoding{"emb_l.0": enc}, QuantInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if err := EncodeSafetensors(&bytes.Buffer{}, specs, meta); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a failing check: %v", err)
	}
}

// TestMixedFileStrict: every fault of a mixed table's tensors or metadata
// is a *FormatError naming the tensor.
func TestMixedFileStrict(t *testing.T) {
	data := mixedSeed(t)
	read := func(edit func(ts []Tensor, meta map[string]string) []Tensor) error {
		f, err := ParseSafetensors("mixed", bytes.Clone(data))
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
	ids := func(ts []Tensor, name string, set func(v []uint32)) []Tensor {
		i := index(ts, name)
		d := bytes.Clone(ts[i].Data)
		v := make([]uint32, len(d)/4)
		for j := range v {
			v[j] = binary.LittleEndian.Uint32(d[4*j:])
		}
		set(v)
		for j := range v {
			binary.LittleEndian.PutUint32(d[4*j:], v[j])
		}
		ts[i].Data = d
		return ts
	}
	layers := func(meta map[string]string, old, new string) {
		if !strings.Contains(meta["rq.layers"], old) {
			t.Fatalf("rq.layers has no %s: %s", old, meta["rq.layers"])
		}
		meta["rq.layers"] = strings.Replace(meta["rq.layers"], old, new, 1)
	}
	cases := []struct {
		what, tensor, msg string
		edit              func(ts []Tensor, meta map[string]string) []Tensor
	}{
		{"ids out of order", "emb_l.0.hot_rows", "hot row 1 is id", func(ts []Tensor, _ map[string]string) []Tensor {
			return ids(ts, "emb_l.0.hot_rows", func(v []uint32) { v[0], v[1] = v[1], v[0] })
		}},
		{"id twice", "emb_l.0.hot_rows", "listed twice", func(ts []Tensor, _ map[string]string) []Tensor {
			return ids(ts, "emb_l.0.hot_rows", func(v []uint32) { v[1] = v[0] })
		}},
		{"id beyond the table", "emb_l.2.hot_rows", "outside the table's rows 0..39", func(ts []Tensor, _ map[string]string) []Tensor {
			return ids(ts, "emb_l.2.hot_rows", func(v []uint32) { v[len(v)-1] = 40 })
		}},
		{"negative id", "emb_l.2.hot_rows", "is id -1", func(ts []Tensor, _ map[string]string) []Tensor {
			return ids(ts, "emb_l.2.hot_rows", func(v []uint32) { v[0] = math.MaxUint32 })
		}},
		{"ids I64", "emb_l.2.hot_rows", "dtype I64, want I32", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.2.hot_rows") // 20 ids: 10 I64s
			ts[i].DType, ts[i].Shape = I64, []int{ts[i].Shape[0] / 2}
			return ts
		}},
		{"no ids", "emb_l.1.hot_rows", "missing", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.1.hot_rows")
			return append(ts[:i], ts[i+1:]...)
		}},
		{"hot part of other rows", "emb_l.0.hot_weight", "shape [6 24], want [7 24]", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.0.hot_weight")
			ts[i].Shape, ts[i].Data = []int{6, 24}, ts[i].Data[:6*24]
			return ts
		}},
		{"cold codes of another width", "emb_l.1.cold_weight", "shape", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.1.cold_weight")
			ts[i].Shape, ts[i].Data = []int{ts[i].Shape[0], 16}, make([]byte, ts[i].Shape[0]*16)
			return ts
		}},
		{"no cold scales", "emb_l.2.cold_weight_scale", "missing", func(ts []Tensor, _ map[string]string) []Tensor {
			i := index(ts, "emb_l.2.cold_weight_scale")
			return append(ts[:i], ts[i+1:]...)
		}},
		{"scales beside a row-wise part", "emb_l.0.cold_weight_scale", "present, but a int2 part (rq.layers cold_precision) has no scale tensor", func(ts []Tensor, _ map[string]string) []Tensor {
			return append(ts, Tensor{Name: "emb_l.0.cold_weight_scale", DType: U8, Shape: []int{63, 1}, Data: make([]byte, 63)})
		}},
		{"a .weight tensor", "emb_l.0.weight", "rq.layers says emb_l.0 is a mixed table, whose tensors are", func(ts []Tensor, _ map[string]string) []Tensor {
			return append(ts, Tensor{Name: "emb_l.0.weight", DType: F32, Shape: []int{70, 16}, Data: make([]byte, 70*64)})
		}},
		{"no cold precision", "emb_l.0.cold_weight", "no cold_precision", func(ts []Tensor, meta map[string]string) []Tensor {
			layers(meta, `,"cold_precision":"int2"`, ``)
			return ts
		}},
		{"unknown hot precision", "emb_l.0.hot_weight", `hot_precision: unknown precision "int7"`, func(ts []Tensor, meta map[string]string) []Tensor {
			layers(meta, `"hot_precision":"int8"`, `"hot_precision":"int7"`)
			return ts
		}},
		{"mixed part", "emb_l.0.hot_weight", `hot_precision "mixed": want a table precision other than mixed`, func(ts []Tensor, meta map[string]string) []Tensor {
			layers(meta, `"hot_precision":"int8"`, `"hot_precision":"mixed"`)
			return ts
		}},
		{"no rows", "__metadata__", "mixed table emb_l.0 has rows 0 and dim 16", func(ts []Tensor, meta map[string]string) []Tensor {
			layers(meta, `"rows":70,`, ``)
			return ts
		}},
	}
	for _, c := range cases {
		err := read(c.edit)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Tensor != c.tensor || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want a *FormatError for %s saying %q", c.what, err, c.tensor, c.msg)
		}
	}
}

// TestHotRowsSpec: ids are I32 up to 2^31 rows, I64 beyond, little-endian.
func TestHotRowsSpec(t *testing.T) {
	for _, c := range []struct {
		rows int64
		dt   DType
		size int
	}{{1 << 31, I32, 4}, {1<<31 + 1, I64, 8}} {
		hot := make([]int64, 3000) // more than one write buffer
		for i := range hot {
			hot[i] = int64(i)*7 + 3
		}
		s := hotRowsSpec("x.hot_rows", c.rows, hot)
		var buf bytes.Buffer
		if err := s.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if s.DType != c.dt || buf.Len() != c.size*len(hot) {
			t.Fatalf("%d rows: %s, %d bytes", c.rows, s.DType, buf.Len())
		}
		b := buf.Bytes()
		for i, id := range hot {
			got := int64(binary.LittleEndian.Uint32(b[4*i:]))
			if c.size == 8 {
				got = int64(binary.LittleEndian.Uint64(b[8*i:]))
			}
			if got != id {
				t.Fatalf("%d rows: id %d reads %d", c.rows, i, got)
			}
		}
	}
}
