package search

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/modeltest"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// projNet is a small random fp32 network with a modeltest.ProjDot interaction and
// a batch of rows for it.
func projNet(t *testing.T) (*model.Network, []*model.Batch) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	fc := func(name string, in, out int, act model.Activation) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		for i := range l.Weight {
			l.Weight[i] = rng.Float32() - 0.5
		}
		for i := range l.Bias {
			l.Bias[i] = (rng.Float32() - 0.5) / 4
		}
		return l
	}
	const d, dense, rows = 4, 3, 64
	net := &model.Network{NumDense: dense,
		Bottom: []*model.Linear{fc("bot_l.0", dense, 8, model.ActReLU), fc("bot_l.2", 8, d, model.ActReLU)}}
	for i, n := range []int64{11, 7} {
		tb := &model.Table{Name: "emb_l." + string(rune('0'+i)), Rows: n, Dim: d, Weight: make([]float32, n*d)}
		for j := range tb.Weight {
			tb.Weight[j] = rng.Float32() - 0.5
		}
		net.Tables = append(net.Tables, tb)
	}
	w := model.Dot.Width(d, []int{d, d})
	net.Interaction = modeltest.ProjDot{P: fc("proj", w, w, model.ActReLU)}
	net.Top = []*model.Linear{fc("top_l.0", w, 6, model.ActReLU), fc("top_l.2", 6, 1, model.ActSigmoid)}
	if err := net.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &model.Batch{N: rows, NumDense: dense, Dense: make([]float32, rows*dense), Labels: make([]float32, rows)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32() * 3
	}
	for i := range b.Labels {
		b.Labels[i] = float32(rng.IntN(2))
	}
	for _, tb := range net.Tables {
		idx, off := make([]int64, rows), make([]int32, rows+1)
		for i := range idx {
			idx[i], off[i+1] = int64(rng.IntN(int(tb.Rows))), int32(i+1)
		}
		b.Indices, b.Offsets = append(b.Indices, idx), append(b.Offsets, off)
	}
	return net, []*model.Batch{b}
}

// TestInteractionLayerSearched: an interaction's own layer is one of the
// evaluator's FC layers (in network order), and a plan quantizing it alone
// predicts what quantize.Apply's network does, which is not fp32's.
func TestInteractionLayerSearched(t *testing.T) {
	net, batches := projNet(t)
	ev, err := NewNetEvaluator(net, nil, batches, 2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ev.Layers() {
		names = append(names, l.Name)
		if l.Name == "proj" && (l.Kind != KindFC || l.In != net.InputWidth() || l.Out != net.InputWidth()) {
			t.Errorf("proj listed as %+v", l)
		}
	}
	if want := []string{"bot_l.0", "bot_l.2", "emb_l.0", "emb_l.1", "proj", "top_l.0", "top_l.2"}; !slices.Equal(names, want) {
		t.Fatalf("layers %v, want %v", names, want)
	}
	fp32, err := ev.Evaluate(context.Background(), &quantize.Plan{Version: 1, Layers: map[string]quantize.LayerPlan{}})
	if err != nil {
		t.Fatal(err)
	}
	plan := &quantize.Plan{Version: 1, Layers: map[string]quantize.LayerPlan{"proj": {Precision: precision.Int8, Activation: quantize.Dynamic}}}
	for rep := range 2 { // the second time from the cache
		out, err := ev.Evaluate(context.Background(), plan)
		if err != nil {
			t.Fatal(err)
		}
		qnet, err := quantize.Apply(net, plan, nil)
		if err != nil {
			t.Fatal(err)
		}
		if l, _ := qnet.Layer("proj"); l.Precision() == precision.FP32 {
			t.Fatal("quantize.Apply left proj at fp32")
		}
		want, err := model.NewRunner(qnet, 2).Forward(batches[0])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Pred, want) || out.Bytes != qnet.Bytes() {
			t.Fatalf("pass %d: predictions or bytes (%d vs %d) differ from quantize.Apply's", rep, out.Bytes, qnet.Bytes())
		}
		if slices.Equal(out.Pred, fp32.Pred) || out.Bytes >= fp32.Bytes {
			t.Fatalf("pass %d: quantizing proj changed neither predictions nor bytes (%d vs fp32 %d)", rep, out.Bytes, fp32.Bytes)
		}
	}

	// The evaluator refuses a network whose interaction layer is already
	// quantized, naming it.
	qnet, err := quantize.Apply(net, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewNetEvaluator(qnet, nil, batches, 1); err == nil || !strings.Contains(err.Error(), "proj") {
		t.Errorf("quantized interaction layer: %v", err)
	}
}
