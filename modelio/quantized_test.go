package modelio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rqtools/rq/kernels"
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
