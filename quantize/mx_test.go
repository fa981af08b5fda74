package quantize

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// mxPlan puts every table of net at p and keeps the FC layers fp32.
func mxPlan(net *model.Network, p precision.Precision) *Plan {
	plan := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{}}
	for _, tb := range net.Tables {
		plan.Layers[tb.Name] = LayerPlan{Precision: p}
	}
	return plan
}

// TestApplyMXTables: a plan may give a table any MX precision; Apply
// stores it as the MXBagTable QuantizeMXRows makes of the fp32 rows (same
// bytes), labelled and sized as the format says; Simulate turns it into
// the fp32 table DequantizeMXRows decodes, and both networks predict
// alike, close to fp32 by the format's width.
func TestApplyMXTables(t *testing.T) {
	net := randNet(11)
	b := randBatch(net, 64, 12)
	ref := predict(t, net, b)
	for _, p := range precision.Tables() {
		if !p.IsMX() {
			continue
		}
		f, _ := kernels.MXFormatOf(p)
		plan := mxPlan(net, p)
		q, err := Apply(net, plan, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sim, err := Simulate(q)
		if err != nil {
			t.Fatalf("%s: simulate: %v", p, err)
		}
		for i, tb := range q.Tables {
			src := net.Tables[i]
			mx, ok := tb.Kernel.(*kernels.MXBagTable)
			if !ok {
				t.Fatalf("%s: %s has kernel %T", p, tb.Name, tb.Kernel)
			}
			codes := make([]byte, src.Rows*int64(kernels.MXCodeBytes(f, src.Dim)))
			scales := make([]byte, src.Rows*int64(kernels.MXScales(src.Dim)))
			if err := kernels.QuantizeMXRows(f, "x", src.Weight, int(src.Rows), src.Dim, codes, scales); err != nil {
				t.Fatal(err)
			}
			if string(codes) != string(mx.Codes) || string(scales) != string(mx.Scales) || mx.Format != f {
				t.Errorf("%s: %s: stored bytes are not QuantizeMXRows'", p, tb.Name)
			}
			if tb.Label() != p.String() || tb.Precision() != p || tb.Bytes() != int64(len(codes)+len(scales)) {
				t.Errorf("%s: %s label %q precision %v bytes %d", p, tb.Name, tb.Label(), tb.Precision(), tb.Bytes())
			}
			want := make([]float32, len(src.Weight))
			kernels.DequantizeMXRows(f, codes, scales, int(src.Rows), src.Dim, want)
			st := sim.Tables[i]
			if st.Kernel != nil || len(st.Weight) != len(want) {
				t.Fatalf("%s: simulated %s has kernel %T and %d weights", p, st.Name, st.Kernel, len(st.Weight))
			}
			for j := range want {
				if math.Float32bits(st.Weight[j]) != math.Float32bits(want[j]) {
					t.Fatalf("%s: simulated %s[%d] = %v, want %v", p, st.Name, j, st.Weight[j], want[j])
				}
			}
		}
		// The bag pools the dequantized rows as the fp32 bag does, so the
		// simulation predicts the same bits.
		pq, ps := predict(t, q, b), predict(t, sim, b)
		if d := maxAbsDiff(pq, ps); d != 0 {
			t.Errorf("%s: quantized and simulated predictions differ by %g", p, d)
		}
		// Relative element error is at most 2^-(mantissa bits+1) of the
		// block maximum's power of two: 1/4 for fp4 (e2m1), tiny for fp8.
		tol := map[precision.Precision]float64{precision.MXFP4: 0.2, precision.MXFP6E3M2: 0.08, precision.MXFP6E2M3: 0.08, precision.MXFP8E5M2: 0.05, precision.MXFP8E4M3: 0.03, precision.MXINT8: 0.03}[p]
		if d := maxAbsDiff(ref, pq); d > tol || d == 0 {
			t.Errorf("%s: predictions move by %g from fp32 (want 0 < d <= %g)", p, d, tol)
		}
	}
}

// TestQuantizeMXTableNonFinite: NaN and ±Inf are refused as the row-wise
// formats refuse them, a *NonFiniteRowError naming the tensor, row and
// column; greedy does not apply to MX tables.
func TestQuantizeMXTableNonFinite(t *testing.T) {
	const rows, dim = 5, 40
	w := make([]float32, rows*dim)
	for i := range w {
		w[i] = float32(i%7) * 0.25
	}
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w2 := append([]float32(nil), w...)
		w2[2*dim+35] = v
		for _, p := range []precision.Precision{precision.MXFP4, precision.MXINT8} {
			_, err := QuantizeTable(&model.Table{Name: "emb_l.1", Rows: rows, Dim: dim, Weight: w2}, LayerPlan{Precision: p})
			var nf *NonFiniteRowError
			if !errors.As(err, &nf) || nf.Tensor != "emb_l.1.weight" || nf.Row != 2 || nf.Col != 35 {
				t.Errorf("%s with %v: %v", p, v, err)
			}
		}
	}
	net := randNet(1)
	plan := mxPlan(net, precision.MXFP4)
	plan.Layers["emb_l.0"] = LayerPlan{Precision: precision.MXFP4, Greedy: true}
	if err := plan.Validate(net); err == nil || !strings.Contains(err.Error(), "greedy range search applies to int4 and int2 tables only") {
		t.Errorf("greedy mxfp4: %v", err)
	}
	// MX FC layers take bf16 or dynamic MX activations, no int8 options.
	for _, c := range []struct {
		lp   LayerPlan
		want string
	}{
		{LayerPlan{Precision: precision.MXFP4}, ""},
		{LayerPlan{Precision: precision.MXFP4, Activation: Dynamic}, ""},
		{LayerPlan{Precision: precision.MXFP4, Activation: Static}, `activations are bf16 or "dynamic"`},
		{LayerPlan{Precision: precision.MXINT8, Weights: PerChannel}, "apply to int8 only"},
		{LayerPlan{Precision: precision.MXFP6E2M3, Greedy: true}, "greedy applies to embedding tables only"},
	} {
		plan = mxPlan(net, precision.MXFP4)
		plan.Layers["top_l.0"] = c.lp
		err := plan.Validate(net)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("FC layer %+v: %v, want %q", c.lp, err, c.want)
		}
	}
	// A non-finite FC weight is named by tensor, output channel and input.
	fc := net.Bottom[0]
	w = append([]float32(nil), fc.Weight...)
	w[1*fc.In+2] = float32(math.Inf(1))
	bad := &model.Linear{Name: fc.Name, In: fc.In, Out: fc.Out, Act: fc.Act, Weight: w, Bias: fc.Bias}
	var me *kernels.MXError
	if _, err := QuantizeLinear(bad, LayerPlan{Precision: precision.MXFP4}, nil); !errors.As(err, &me) || me.Tensor != fc.Name+".weight" || me.Row != 1 || me.Col != 2 {
		t.Errorf("Inf weight in an mxfp4 FC layer: %v", err)
	}
	if _, err := TableFormat(precision.MXFP4); err == nil || !strings.Contains(err.Error(), "MX table format") {
		t.Errorf("TableFormat(mxfp4): %v", err)
	}
}

// Simulate of a network with MX FC layers: a weights-only layer becomes
// fp32 on exactly its decoded weights, one with MX activations a
// FakeQuantMXFC of it, and the simulation predicts what the real bf16
// kernels predict within the bound rq eval --simulate is held to.
func TestSimulateMXFC(t *testing.T) {
	net := randNet(11)
	b := randBatch(net, 256, 12)
	plan := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{}}
	for i, l := range slices.Collect(net.Linears()) {
		lp := LayerPlan{Precision: []precision.Precision{precision.MXFP4, precision.MXFP6E2M3, precision.MXINT8}[i%3]}
		if i%2 == 1 {
			lp.Activation = Dynamic
		}
		plan.Layers[l.Name] = lp
	}
	q, err := Apply(net, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Simulate(q)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(predict(t, s, b), predict(t, q, b)); d > simulateBound {
		t.Errorf("max |p_sim - p| = %.3g, bound %.3g", d, simulateBound)
	}
	sim := map[string]*model.Linear{}
	for l := range s.Linears() {
		sim[l.Name] = l
	}
	for l := range q.Linears() {
		k, ok := l.Kernel.(*model.MXFC)
		if !ok {
			t.Fatalf("%s: kernel %T, want *model.MXFC", l.Name, l.Kernel)
		}
		c := sim[l.Name]
		if k.DynamicAct {
			if f, ok := c.Kernel.(*model.FakeQuantMXFC); !ok || f.Q != k {
				t.Errorf("%s: simulated by %T", l.Name, c.Kernel)
			}
			continue
		}
		if c.Kernel != nil || !slices.Equal(c.Weight, k.Weight32()) {
			t.Errorf("%s: not fp32 on the decoded weights (%T)", l.Name, c.Kernel)
		}
	}
}
