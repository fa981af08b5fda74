package modelio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/quantize"
)

// writeModel writes ts as a safetensors model in a fresh directory and loads it.
func writeModel(t *testing.T, ts []Tensor) *Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteSafetensors(p, TensorsSpec(ts), nil); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// poke sets element i of the F32 tensor named name to v.
func poke(ts []Tensor, name string, i int, v float32) {
	for k := range ts {
		if ts[k].Name == name {
			w, _ := Float32s(&ts[k])
			w[i] = v
			ts[k] = F32Tensor(name, ts[k].Shape, w)
			return
		}
	}
	panic("no tensor " + name)
}

func TestCheckFinite(t *testing.T) {
	shape := func() []Tensor { return dlrmTensors([]int{13, 32, 8}, []int{10, 20, 30}, nil, 8+6, []int{16, 1}) }
	if err := CheckFinite(writeModel(t, shape())); err != nil {
		t.Fatalf("finite model refused: %v", err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		tensor string
		index  int
		v      float32
		want   []string
	}{
		// top_l.0.weight is [16 14]: element 37 is row 2, col 9.
		{"top_l.0.weight", 37, nan, []string{`"top_l.0.weight"`, "element 37", "row 2, col 9", "NaN"}},
		{"bot_l.2.bias", 5, -inf, []string{`"bot_l.2.bias"`, "element 5 ", "-Inf"}},
		{"bot_l.0.weight", 0, inf, []string{`"bot_l.0.weight"`, "element 0 (row 0, col 0", "+Inf"}},
	}
	for _, c := range cases {
		ts := shape()
		poke(ts, c.tensor, c.index, c.v)
		m := writeModel(t, ts)
		err := CheckFinite(m)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Tensor != c.tensor || nf.Index != int64(c.index) {
			t.Errorf("%s[%d] = %v: CheckFinite gave %v", c.tensor, c.index, c.v, err)
			continue
		}
		for _, w := range append(c.want, m.Path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
	// Tables are not scanned at load (they may be GBs): that is the job of
	// rq quantize's encoder and of evaluate's diagnosis.
	ts := shape()
	poke(ts, "emb_l.1.weight", 3, nan)
	if err := CheckFinite(writeModel(t, ts)); err != nil {
		t.Errorf("a NaN table value was scanned at load: %v", err)
	}
	// F64 beyond float32's range reads as infinite.
	ts = shape()
	for k := range ts {
		if ts[k].Name == "top_l.2.bias" {
			ts[k] = Tensor{Name: "top_l.2.bias", DType: F64, Shape: []int{1}, Data: make([]byte, 8)}
			putF64(ts[k].Data, 1e300)
		}
	}
	if err := CheckFinite(writeModel(t, ts)); err == nil || !strings.Contains(err.Error(), "infinite in float32") {
		t.Errorf("F64 1e300 bias: %v", err)
	}
}

func putF64(b []byte, v float64) {
	u := math.Float64bits(v)
	for i := range 8 {
		b[i] = byte(u >> (8 * i))
	}
}

// TestCheckFiniteQuantized: the half-precision weights and fp32 biases of
// a quantized file are checked as an fp32 model's are.
func TestCheckFiniteQuantized(t *testing.T) {
	ts := dlrmTensors([]int{4, 8}, []int{5, 6}, nil, 8+3, []int{6, 1})
	poke(ts, "top_l.0.weight", 13, float32(math.Inf(-1)))
	net, _, err := BuildNetwork("src", ts)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := quantize.Preset("fp16", net)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quantize.Apply(net, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "q.safetensors")
	if err := WriteQuantized(p, q, nil, QuantInfo{SourceSHA256: "00"}); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var nf *NonFiniteError
	if err := CheckFinite(m); !errors.As(err, &nf) || nf.Tensor != "top_l.0.weight" || nf.Index != 13 || !strings.Contains(err.Error(), "row 1, col 2") {
		t.Errorf("fp16 -Inf weight: %v", err)
	}
}

// TestWriteQuantizedCheck: a table streamed to a quantized file is checked
// block by block, and a non-finite row stops the write before any file
// appears.
func TestWriteQuantizedCheck(t *testing.T) {
	ts := dlrmTensors([]int{4, 8}, []int{5, 40000}, nil, 8+3, []int{6, 1})
	poke(ts, "emb_l.1.weight", 8*(encodeRowsBlock+7)+2, float32(math.Inf(1))) // in the second block
	net, _, err := BuildNetwork("src", ts)
	if err != nil {
		t.Fatal(err)
	}
	enc := TableEncoding{Format: kernels.TableQ8,
		Encode: func(w []float32, rows, dim int, dst []byte) { kernels.QuantizeRows8(w, rows, dim, dst) },
		Check: func(w []float32, first int64, rows, dim int) error {
			return quantize.CheckRows("emb_l.1.weight", w, first, rows, dim)
		}}
	p := filepath.Join(t.TempDir(), "q.safetensors")
	err = WriteQuantized(p, net, map[string]TableEncoding{"emb_l.0": enc, "emb_l.1": enc}, QuantInfo{SourceSHA256: "00"})
	var nf *quantize.NonFiniteRowError
	if !errors.As(err, &nf) || nf.Row != encodeRowsBlock+7 || nf.Col != 2 || !strings.Contains(err.Error(), `"emb_l.1.weight"`) {
		t.Fatalf("Inf in row %d: %v", encodeRowsBlock+7, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("a file was left at %s: %v", p, err)
	}
}
