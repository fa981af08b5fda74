package debug

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/modeltest"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// Every weightless interaction is recomputed exactly from the fp32
// feature rows, whatever the quantized layers around it.
func TestInteractionOpsExact(t *testing.T) {
	for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
		ref := testNet()
		ref.Interaction = op
		w := ref.InputWidth()
		top := ref.Top[0]
		ref.Top[0] = &model.Linear{Name: top.Name, In: w, Out: top.Out, Act: top.Act, Weight: make([]float32, w*top.Out), Bias: top.Bias}
		for i := range ref.Top[0].Weight {
			ref.Top[0].Weight[i] = float32(math.Sin(float64(i)*0.37)) * 0.5
		}
		batches := testBatches(t, ref, 2, 200)
		q, err := quantize.Apply(ref, staticPlan(ref, precision.Int8), inputRanges(t, ref, batches))
		if err != nil {
			t.Fatal(err)
		}
		r := analyze(t, ref, q, batches)
		l := layerOf(t, r, "interaction")
		if !math.IsInf(float64(l.Isolated.SQNR), 1) || l.Isolated.Values != int64(400*w) {
			t.Errorf("%s: interaction isolated %+v, want exact over %d values", op, l.Isolated, 400*w)
		}
		if !(l.Propagated.SQNR < 200) {
			t.Errorf("%s: interaction propagated %+v, want the quantized layers' error", op, l.Propagated)
		}
	}
}

// An interaction's own layer is reported as an FC layer before the
// interaction, measured in isolation, and blamed alone: with it the only
// quantized layer, its ΔNE alone is the quantized network's.
func TestInteractionLayerDebugged(t *testing.T) {
	ref := testNet()
	w := ref.InputWidth()
	p := &model.Linear{Name: "proj", In: w, Out: w, Act: model.ActReLU, Weight: make([]float32, w*w), Bias: make([]float32, w)}
	for i := range p.Weight {
		p.Weight[i] = float32(math.Cos(float64(i)*0.61)) * 0.6
	}
	ref.Interaction = modeltest.ProjDot{P: p}
	batches := testBatches(t, ref, 2, 300)
	plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{
		"proj": {Precision: precision.Int8, Activation: quantize.Dynamic}}}
	q, err := quantize.Apply(ref, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := analyze(t, ref, q, batches)
	var names []string
	for _, l := range r.Layers {
		names = append(names, l.Name)
	}
	if want := []string{"bot_l.0", "bot_l.2", "emb_l.0", "emb_l.1", "proj", "interaction", "top_l.0", "top_l.2", "output"}; !slices.Equal(names, want) {
		t.Fatalf("layers %v, want %v", names, want)
	}
	l := layerOf(t, r, "proj")
	if l.Kind != KindFC || !l.Quantized || l.Precision != q.Interaction.Layers()[0].Label() || l.WeightSQNR == nil {
		t.Errorf("proj reported as %+v", l)
	}
	if s := float64(l.Isolated.SQNR); math.IsInf(s, 0) || !(s > 10) || l.Isolated.Values != int64(600*w) {
		t.Errorf("proj isolated %+v, want a finite int8 error over %d values", l.Isolated, 600*w)
	}
	// The interaction's isolated error is its own layer's.
	if it := layerOf(t, r, "interaction"); math.IsInf(float64(it.Isolated.SQNR), 0) {
		t.Errorf("interaction isolated %+v, want proj's int8 error", it.Isolated)
	}
	if len(r.Culprits) != 1 || r.Culprits[0].Layer != "proj" {
		t.Fatalf("culprits %+v, want proj alone", r.Culprits)
	}
	if d := r.Culprits[0].DeltaNEPct; d == 0 || math.Abs(float64(d-r.DeltaNEPct)) > 1e-9*math.Abs(float64(r.DeltaNEPct)) {
		t.Errorf("proj alone ΔNE %v, want the quantized network's %v", d, r.DeltaNEPct)
	}

	// A quantized model with another interaction is refused, naming both.
	other := *q
	other.Interaction = model.DotSelf
	if err := Compatible(ref, &other); err == nil || !strings.Contains(err.Error(), "proj-dot") || !strings.Contains(err.Error(), "dot-self") {
		t.Errorf("other interaction: %v", err)
	}
	// The reference must be fp32 in its interaction's layers too.
	if _, err := Analyze(context.Background(), q, q, &batchList{batches}, Options{}); err == nil || !strings.Contains(err.Error(), "proj") {
		t.Errorf("quantized reference: %v", err)
	}
}
