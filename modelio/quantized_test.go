package modelio

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/rqtools/rq/model"
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
		if got := net.Top[0].Precision(); got != want {
			t.Errorf("%s: top_l.0 reads back as %s", preset, got)
		}
	}
}

// FuzzQuantizedFile: any bytes either fail to parse, or build a network
// that runs a batch without panicking.
func FuzzQuantizedFile(f *testing.F) {
	for _, data := range quantizedSeeds(f) {
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
	})
}
