package quantize

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

func TestQuantizeTableNonFinite(t *testing.T) {
	const rows, dim = 6, 4
	w := make([]float32, rows*dim)
	for i := range w {
		w[i] = float32(i%5) * 0.1
	}
	tb := &model.Table{Name: "emb_l.2", Rows: rows, Dim: dim, Weight: w}
	for _, prec := range []precision.Precision{precision.FP16, precision.Int8, precision.Int4} {
		if _, err := QuantizeTable(tb, LayerPlan{Precision: prec}); err != nil {
			t.Fatalf("%s, finite table: %v", prec, err)
		}
	}
	for _, v := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		w2 := append([]float32(nil), w...)
		w2[3*dim+1] = v
		bad := &model.Table{Name: "emb_l.2", Rows: rows, Dim: dim, Weight: w2}
		for _, lp := range []LayerPlan{{Precision: precision.Int8}, {Precision: precision.Int4, Greedy: true}, {Precision: precision.FP16}} {
			_, err := QuantizeTable(bad, lp)
			var nf *NonFiniteRowError
			if !errors.As(err, &nf) || nf.Tensor != "emb_l.2.weight" || nf.Row != 3 || nf.Col != 1 {
				t.Errorf("%s with %v at row 3: %v", lp.Precision, v, err)
				continue
			}
			for _, s := range []string{`"emb_l.2.weight"`, "row 3", "column 1"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		}
	}
	// A block that starts further down the table numbers its rows from there.
	w[5*dim+3] = float32(math.NaN())
	var nf *NonFiniteRowError
	if err := CheckRows("emb_l.0.weight", w[4*dim:], 4, 2, dim); !errors.As(err, &nf) || nf.Row != 5 || nf.Col != 3 {
		t.Errorf("block from row 4: %v", err)
	}
	if err := CheckRows("emb_l.0.weight", w, 0, 5, dim); err != nil {
		t.Errorf("rows 0..4 are finite: %v", err)
	}
}

// wantLabel is what Layer.Label() reports for a layer quantized under lp:
// the kernels' names, written out here so that a plan applied with the
// wrong kernel (or not at all) is caught.
func wantLabel(lp LayerPlan, table bool) string {
	switch {
	case lp.Precision == precision.FP32:
		return "fp32"
	case table && lp.Precision != precision.FP16:
		return lp.Precision.String() + "-rowwise"
	case lp.Precision == precision.Int8:
		return "int8-" + lp.Activation.String()
	}
	return lp.Precision.String()
}

// halfStep is the largest rounding error, relative to the size of the
// values rounded (a row's or tensor's max|w|, an activation range, a
// table row's range), of a layer quantized under lp.
func halfStep(lp LayerPlan, table bool) float64 {
	switch {
	case lp.Precision == precision.FP32:
		return 0
	case lp.Precision == precision.FP16:
		return 0x1p-12 // weights (or table values) only; fp32 math
	case lp.Precision == precision.BF16:
		return 2 * 0x1p-9 // weights and activations
	case table && lp.Precision == precision.Int8:
		return 1.0 / 510 // (max-min)/255, halved
	case table && lp.Precision == precision.Int4:
		return 1.0 / 30
	case table && lp.Precision == precision.Int2:
		return 1.0 / 6
	}
	w := 1.0 / 254 // narrow: max|w|/127, halved
	if lp.WeightRange == FullRange {
		w = 1.0 / 255
	}
	a := 1.0 / 510 // u8 activations: range/255, halved
	if lp.ReduceRange {
		a = 1.0 / 254
	}
	return w + a
}

// tolerance bounds |p - p_fp32| for net quantized under plan: a relative
// error e in one stage moves the logit by at most about 3e (randNet's
// weights are ±1/sqrt(in), so pre-activations stay of order one: logits
// were within ±1.3 over 40 networks), the stages' errors add, and a prediction moves by at most a quarter
// of its logit's move (the sigmoid's slope). Over 40 random networks the largest
// errors seen were 13% (fp16) to 36% (pytorch-dynamic) of this bound; a
// mis-scaled layer or table exceeds it several times over.
func tolerance(net *model.Network, plan *Plan) float64 {
	var sum float64
	for l := range net.Layers() {
		sum += halfStep(plan.Layer(l.Name()), l.Table != nil)
	}
	return 0.75 * sum
}

// Apply with every preset, and with each preset minus two layers: each
// layer gets the precision the plan names, the layers it does not name (or
// names fp32) are net's own objects, net is left as it was, and the
// network runs with predictions close to fp32's.
func TestApplyPresets(t *testing.T) {
	net := randNet(1)
	b := randBatch(net, 256, 2)
	ranges := observeRanges(t, net, b)
	p32 := predict(t, net, b)
	orig := slices.Collect(net.Layers())
	for _, name := range PresetNames() {
		full, err := Preset(name, net)
		if err != nil {
			t.Fatal(err)
		}
		partial := &Plan{Version: PlanVersion, Layers: maps.Clone(full.Layers)}
		delete(partial.Layers, "bot_l.0")
		delete(partial.Layers, "emb_l.1")
		for _, plan := range []*Plan{full, partial} {
			what := fmt.Sprintf("%s (%d layers named)", name, len(plan.Layers))
			tol := tolerance(net, plan)
			q, err := Apply(net, plan, ranges)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			got := slices.Collect(q.Layers())
			if len(got) != len(orig) {
				t.Fatalf("%s: %d layers, want %d", what, len(got), len(orig))
			}
			for i, l := range got {
				o := orig[i]
				lp, named := plan.Layers[o.Name()]
				if !named {
					lp = LayerPlan{Precision: precision.FP32}
				}
				if l.Name() != o.Name() || l.TableIndex != o.TableIndex {
					t.Errorf("%s: layer %d is %s (table %d), want %s (table %d)", what, i, l.Name(), l.TableIndex, o.Name(), o.TableIndex)
				}
				if want := wantLabel(lp, o.Table != nil); l.Label() != want || l.Precision() != lp.Precision {
					t.Errorf("%s: %s is %s (%v), want %s", what, l.Name(), l.Label(), l.Precision(), want)
				}
				shared := l.FC == o.FC && l.Table == o.Table
				if lp.Precision == precision.FP32 && !shared {
					t.Errorf("%s: fp32 layer %s was copied, not shared", what, l.Name())
				}
				if lp.Precision != precision.FP32 && shared {
					t.Errorf("%s: %s is net's own layer, not a quantized copy", what, l.Name())
				}
			}
			if d := maxAbsDiff(predict(t, q, b), p32); d > tol {
				t.Errorf("%s: max |p - p_fp32| = %.3g, tolerance %.3g", what, d, tol)
			} else if testing.Verbose() {
				t.Logf("%s: max |p - p_fp32| = %.3g (tolerance %.3g)", what, d, tol)
			}
		}
	}
	// net itself is untouched: still fp32, the same layers, the same bits.
	for l := range net.Layers() {
		if l.Precision() != precision.FP32 {
			t.Errorf("Apply changed net's %s to %s", l.Name(), l.Precision())
		}
	}
	if !slices.Equal(slices.Collect(net.Layers()), orig) || !slices.Equal(predict(t, net, b), p32) {
		t.Error("Apply changed net")
	}
}

// ApplyFC quantizes the FC layers as Apply does and leaves every table as
// net's own, whatever the plan says of it.
func TestApplyFCKeepsTables(t *testing.T) {
	net := randNet(3)
	plan, err := Preset("int8-int4", net)
	if err != nil {
		t.Fatal(err)
	}
	b := randBatch(net, 64, 4)
	ranges := observeRanges(t, net, b)
	q, err := ApplyFC(net, plan, ranges)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Apply(net, plan, ranges)
	if err != nil {
		t.Fatal(err)
	}
	for l := range q.Layers() {
		o, _ := net.Layer(l.Name())
		a, _ := all.Layer(l.Name())
		switch {
		case l.Table != nil && l.Table != o.Table:
			t.Errorf("ApplyFC replaced table %s", l.Name())
		case l.FC != nil && (l.Label() != a.Label() || l.FC == o.FC):
			t.Errorf("ApplyFC: %s is %s, Apply makes it %s", l.Name(), l.Label(), a.Label())
		}
	}
}

// A plan naming a layer the network lacks, or a precision that does not
// exist, is refused by Apply and ApplyFC with an error naming it; so is an
// unknown precision handed to the layer quantizers directly.
func TestApplyPlanErrors(t *testing.T) {
	net := randNet(5)
	cases := []struct {
		layers map[string]LayerPlan
		want   []string
	}{
		{map[string]LayerPlan{"top_l.9": {Precision: precision.FP16}}, []string{`"top_l.9"`, "bot_l.0, bot_l.2, emb_l.0, emb_l.1, emb_l.2, top_l.0, top_l.2"}},
		{map[string]LayerPlan{"top_l.0": {Precision: 99}}, []string{"top_l.0", `"Precision(99)"`}},
		{map[string]LayerPlan{"emb_l.2": {Precision: 99}}, []string{"emb_l.2", `"Precision(99)"`}},
		{map[string]LayerPlan{"bot_l.0": {}}, []string{"bot_l.0", `""`}},
		{map[string]LayerPlan{"emb_l.0": {Precision: precision.BF16}}, []string{"emb_l.0", `"bf16"`}},
		{map[string]LayerPlan{"top_l.0": {Precision: precision.Int4}}, []string{"top_l.0", `"int4"`}},
	}
	for _, c := range cases {
		for fn, apply := range map[string]func(*model.Network, *Plan, RangeSource) (*model.Network, error){"Apply": Apply, "ApplyFC": ApplyFC} {
			q, err := apply(net, &Plan{Version: PlanVersion, Layers: c.layers}, nil)
			if err == nil {
				t.Errorf("%s %v: accepted", fn, c.layers)
				continue
			}
			if q != nil {
				t.Errorf("%s %v: a network beside the error", fn, c.layers)
			}
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s %v: error %q does not mention %s", fn, c.layers, err, s)
				}
			}
		}
	}
	// The layer quantizers refuse an unknown precision themselves, for
	// callers that do not go through Validate.
	fc := net.Bottom[0]
	if _, err := QuantizeFC(fc, LayerPlan{Precision: 99}, nil); err == nil || !strings.Contains(err.Error(), "bot_l.0") || !strings.Contains(err.Error(), `"Precision(99)"`) {
		t.Errorf("QuantizeFC int3: %v", err)
	}
	if _, err := QuantizeTable(net.Tables[1], LayerPlan{Precision: precision.BF16}); err == nil || !strings.Contains(err.Error(), "emb_l.1") || !strings.Contains(err.Error(), `"bf16"`) {
		t.Errorf("QuantizeTable bf16: %v", err)
	}
	// A static plan without ranges is refused before anything is built.
	static, _ := Preset("int8", net)
	if _, err := Apply(net, static, nil); err == nil || !strings.Contains(err.Error(), "calibrated ranges") {
		t.Errorf("static plan without ranges: %v", err)
	}
}
