package evaluate

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

// sliceReader hands out prepared batches.
type sliceReader struct{ batches []*model.Batch }

func (s *sliceReader) Next() (*model.Batch, error) {
	if len(s.batches) == 0 {
		return nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}
func (s *sliceReader) Stats() dataset.Stats { return dataset.Stats{} }
func (s *sliceReader) Close() error         { return nil }

// tinyNet: one dense feature, one table of 4 rows; the prediction is
// sigmoid(w * relu(x) + e_idx·relu(x)) - small enough to reason about.
func tinyNet(scale float32) *model.Network {
	return &model.Network{
		NumDense:    1,
		Bottom:      []*model.Linear{{Name: "bot_l.0", In: 1, Out: 1, Act: model.ActReLU, Weight: []float32{1}, Bias: []float32{0}}},
		Tables:      []*model.Table{{Name: "emb_l.0", Rows: 4, Dim: 1, Weight: []float32{-1, -0.5, 0.5, 1}}},
		Interaction: model.Dot,
		Top:         []*model.Linear{{Name: "top_l.0", In: 2, Out: 1, Act: model.ActSigmoid, Weight: []float32{scale, scale}, Bias: []float32{0}}},
	}
}

func batches() []*model.Batch {
	var out []*model.Batch
	for k := 0; k < 3; k++ {
		b := &model.Batch{N: 4, NumDense: 1, Row: int64(4 * k)}
		for i := 0; i < 4; i++ {
			b.Dense = append(b.Dense, float32(i+k)*0.5)
			b.Labels = append(b.Labels, float32(i%2))
		}
		b.Indices = [][]int64{{0, 1, 2, 3}}
		b.Offsets = [][]int32{{0, 1, 2, 3, 4}}
		out = append(out, b)
	}
	return out
}

func TestRunWithBaseline(t *testing.T) {
	rep, err := Run(context.Background(), &sliceReader{batches()}, Options{Model: tinyNet(2), Baseline: tinyNet(1), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result.Examples != 12 || rep.Baseline == nil || rep.Delta == nil {
		t.Fatalf("report %+v", rep)
	}
	want := Compare(rep.Result, *rep.Baseline)
	if *rep.Delta != want || want.NEPct == 0 || math.IsNaN(want.NEPct) {
		t.Errorf("delta %+v, want %+v (non-zero)", *rep.Delta, want)
	}
	if rep.MaxAbsPredDiff <= 0 || rep.ExamplesPerSec <= 0 {
		t.Errorf("max diff %v, examples/s %v", rep.MaxAbsPredDiff, rep.ExamplesPerSec)
	}
	same, err := Run(context.Background(), &sliceReader{batches()}, Options{Model: tinyNet(2), Baseline: tinyNet(2), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if same.Delta.NEPct != 0 || same.Delta.AUC != 0 || same.MaxAbsPredDiff != 0 {
		t.Errorf("identical models differ: %+v", same.Delta)
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := Run(context.Background(), &sliceReader{}, Options{Model: tinyNet(1)}); err == nil {
		t.Error("no rows: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, &sliceReader{batches()}, Options{Model: tinyNet(1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	bad := batches()
	bad[1].Indices[0][2] = 9
	_, err := Run(context.Background(), &sliceReader{bad}, Options{Model: tinyNet(1)})
	if err == nil || !strings.Contains(err.Error(), "rows from 4") || !strings.Contains(err.Error(), "emb_l.0") {
		t.Errorf("bad index: %v", err)
	}
}

// TestRunNonFinite: a NaN prediction names the model file and its cause
// (the table row it looked up), or, when allowed, gives NaN metrics.
func TestRunNonFinite(t *testing.T) {
	nanRow := func() *model.Network {
		n := tinyNet(1)
		n.Tables[0].Weight = []float32{-1, -0.5, float32(math.NaN()), 1}
		return n
	}
	// Example 2 of every batch looks up row 2; the first is data row 2.
	_, err := Run(context.Background(), &sliceReader{batches()}, Options{Model: nanRow(), ModelFile: "m.pt", Threads: 1})
	var nf *NonFinitePredictionError
	if !errors.As(err, &nf) || nf.Tensor != "emb_l.0.weight" || nf.TableRow != 2 || nf.Row != 2 || !nf.Exact {
		t.Fatalf("NaN table row: %v", err)
	}
	for _, w := range []string{"m.pt", "data row 2", `"emb_l.0.weight" row 2`, "NaN"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}

	// The same NaN in a baseline names the baseline's file.
	_, err = Run(context.Background(), &sliceReader{batches()}, Options{Model: tinyNet(1), Baseline: nanRow(), ModelFile: "m.pt", BaselineFile: "base.pt", Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "base.pt: baseline prediction for data row 2") {
		t.Errorf("NaN in the baseline: %v", err)
	}

	// A quantized table whose row 1 has a NaN scale.
	q := tinyNet(1)
	data := make([]byte, 4*kernels.TableQ8.RowBytes(1))
	kernels.QuantizeRows8(q.Tables[0].Weight, 4, 1, data)
	rb := kernels.TableQ8.RowBytes(1)
	binary.LittleEndian.PutUint32(data[rb+1:], math.Float32bits(float32(math.NaN()))) // row 1: code, then the fp32 scale
	bt, err := kernels.NewBagTable(kernels.TableQ8, 4, 1, data)
	if err != nil {
		t.Fatal(err)
	}
	q.Tables[0] = &model.Table{Name: "emb_l.0", Rows: 4, Dim: 1, Kernel: bt}
	_, err = Run(context.Background(), &sliceReader{batches()}, Options{Model: q, ModelFile: "q.safetensors", Threads: 1})
	if !errors.As(err, &nf) || nf.TableRow != 1 || nf.Row != 1 {
		t.Errorf("NaN scale in row 1: %v", err)
	}

	// No cause among the inputs: the FC layers made it.
	fc := tinyNet(1)
	fc.Top[0].Bias[0] = float32(math.NaN())
	_, err = Run(context.Background(), &sliceReader{batches()}, Options{Model: fc, Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "data row 0 is NaN") || !strings.Contains(err.Error(), "an FC layer made it") {
		t.Errorf("NaN bias: %v", err)
	}

	// Allowed: the run completes, counts them and reports NaN metrics.
	var warned []string
	rep, err := Run(context.Background(), &sliceReader{batches()}, Options{Model: nanRow(), ModelFile: "m.pt", Threads: 1, AllowNonFinite: true,
		Warn: func(s string) { warned = append(warned, s) }})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Result
	if rep.NonFinite != 3 || r.Examples != 12 || !math.IsNaN(r.NE) || !math.IsNaN(r.AUC) || !math.IsNaN(r.LogLoss) || r.CTR != 0.5 || rep.Acc.Count() != 9 {
		t.Errorf("allowed: non-finite %d, result %+v", rep.NonFinite, r)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "3 of 12 predictions") || !strings.Contains(warned[0], "emb_l.0.weight") {
		t.Errorf("warnings %q", warned)
	}
}

func TestCheckPredictions(t *testing.T) {
	net := tinyNet(1)
	net.Tables[0].Weight[3] = float32(math.NaN())
	b := batches()[1] // rows 4..7; example 3 (row 7) looks up row 3
	p, err := model.NewRunner(net, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckPredictions("m.pt", net, b, p, &sliceReader{})
	var nf *NonFinitePredictionError
	if !errors.As(err, &nf) || nf.Row != 7 || nf.TableRow != 3 || !strings.Contains(err.Error(), "m.pt: prediction for data row 7") {
		t.Errorf("Inf in row 3: %v (predictions %v)", err, p)
	}
	if err := CheckPredictions("m.pt", tinyNet(1), b, []float32{0, 0.5, 1, 0.25}, &sliceReader{}); err != nil {
		t.Errorf("probabilities: %v", err)
	}
}
