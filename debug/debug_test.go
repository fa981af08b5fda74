package debug

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
)

// batchList is a Source over prepared batches.
type batchList struct{ b []*model.Batch }

func (s *batchList) Next() (*model.Batch, error) {
	if len(s.b) == 0 {
		return nil, io.EOF
	}
	b := s.b[0]
	s.b = s.b[1:]
	return b, nil
}

// testNet: 3 dense -> bot_l.0 (8, relu) -> bot_l.2 (4, relu); 2 tables of
// 20 x 4; dot interaction (4 + 3 = 7); top_l.0 (6, relu) -> top_l.2 (1,
// sigmoid).
func testNet() *model.Network {
	lin := func(name string, in, out int, act model.Activation, seed float64) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		for i := range l.Weight {
			l.Weight[i] = float32(math.Sin(seed+float64(i)*1.7)) * 0.8
		}
		for i := range l.Bias {
			l.Bias[i] = 0.05 * float32(i%3)
		}
		return l
	}
	tab := func(name string, seed float64) *model.Table {
		t := &model.Table{Name: name, Rows: 20, Dim: 4, Weight: make([]float32, 80)}
		for i := range t.Weight {
			t.Weight[i] = float32(math.Cos(seed+float64(i)*0.9)) * 0.7
		}
		return t
	}
	return &model.Network{NumDense: 3,
		Bottom:      []*model.Linear{lin("bot_l.0", 3, 8, model.ActReLU, 1), lin("bot_l.2", 8, 4, model.ActReLU, 2)},
		Tables:      []*model.Table{tab("emb_l.0", 0), tab("emb_l.1", 5)},
		Interaction: model.Dot,
		Top:         []*model.Linear{lin("top_l.0", 7, 6, model.ActReLU, 3), lin("top_l.2", 6, 1, model.ActSigmoid, 4)},
	}
}

// testBatches makes n batches of per rows whose labels are drawn from the
// fp32 network's own predictions, so the fp32 network is the right model
// and a perturbed one scores worse on average.
func testBatches(t testing.TB, net *model.Network, n, per int) []*model.Batch {
	rng := rand.New(rand.NewSource(1))
	run := model.NewRunner(net, 1)
	var out []*model.Batch
	for k := range n {
		b := &model.Batch{N: per, NumDense: 3, Row: int64(k * per), Indices: make([][]int64, 2), Offsets: make([][]int32, 2)}
		for t := range 2 {
			b.Offsets[t] = []int32{0}
		}
		for i := range per {
			for range 3 {
				b.Dense = append(b.Dense, float32(rng.Float64()*3))
			}
			for t := range 2 {
				b.Indices[t] = append(b.Indices[t], int64(rng.Intn(20)))
				b.Offsets[t] = append(b.Offsets[t], int32(i+1))
			}
		}
		p, err := run.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, pi := range p {
			y := float32(0)
			if rng.Float32() < pi {
				y = 1
			}
			b.Labels = append(b.Labels, y)
		}
		out = append(out, b)
	}
	return out
}

// minmax is a RangeSource with each layer's exact fp32 input range, except
// where override says otherwise.
type minmax map[string][2]float32

func (m minmax) Range(layer, method string) (float32, float32, error) {
	r := m[layer]
	return r[0], r[1], nil
}

func inputRanges(t testing.TB, net *model.Network, batches []*model.Batch) minmax {
	m := minmax{}
	run := model.NewRunner(net, 1, model.ObserverFunc(func(ev model.Event) {
		if ev.In.Rows == 0 || ev.Layer == "interaction" {
			return
		}
		r, ok := m[ev.Layer]
		if !ok {
			r = [2]float32{float32(math.Inf(1)), float32(math.Inf(-1))}
		}
		for i := 0; i < ev.In.Rows; i++ {
			for _, v := range ev.In.Row(i) {
				r[0], r[1] = min(r[0], v), max(r[1], v)
			}
		}
		m[ev.Layer] = r
	}))
	for _, b := range batches {
		if _, err := run.Forward(b); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func staticPlan(net *model.Network, table precision.Precision) *quantize.Plan {
	p := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{}}
	for _, n := range []string{"bot_l.0", "bot_l.2", "top_l.0", "top_l.2"} {
		p.Layers[n] = quantize.LayerPlan{Precision: precision.Int8, Activation: quantize.Static, Weights: quantize.PerChannel, Method: "minmax"}
	}
	for _, t := range net.Tables {
		p.Layers[t.Name] = quantize.LayerPlan{Precision: table}
	}
	return p
}

func analyze(t *testing.T, ref, q *model.Network, batches []*model.Batch) *Report {
	t.Helper()
	r, err := Analyze(context.Background(), ref, q, &batchList{batches}, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func layerOf(t *testing.T, r *Report, name string) Layer {
	t.Helper()
	for _, l := range r.Layers {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no layer %s", name)
	return Layer{}
}

// A layer whose static range is far too narrow must be the top culprit,
// with the clipping rule.
func TestClippingCulprit(t *testing.T) {
	ref := testNet()
	batches := testBatches(t, ref, 4, 500)
	ranges := inputRanges(t, ref, batches)
	ranges["top_l.0"] = [2]float32{-0.05, 0.05} // its inputs reach several units
	q, err := quantize.Apply(ref, staticPlan(ref, precision.Int8), ranges)
	if err != nil {
		t.Fatal(err)
	}
	r := analyze(t, ref, q, batches)
	if len(r.Culprits) != 6 {
		t.Fatalf("%d culprits, want 6 (4 FC + 2 tables): %+v", len(r.Culprits), r.Culprits)
	}
	for _, c := range r.Culprits {
		t.Logf("%s %s ΔNE %+.4f%%: %s", c.Layer, c.Precision, c.DeltaNEPct, c.Suggestion)
	}
	c := r.Culprits[0]
	if c.Layer != "top_l.0" || c.Rule != RuleClipping || !strings.Contains(c.Suggestion, "clipped") {
		t.Errorf("top culprit %+v, want top_l.0 clipping", c)
	}
	l := layerOf(t, r, "top_l.0")
	if l.Clip == nil || l.Clip.Fraction < 0.5 {
		t.Errorf("top_l.0 clip %+v, want most inputs clipped", l.Clip)
	}
	// The others were calibrated on these very inputs: nothing clips.
	for _, n := range []string{"bot_l.0", "bot_l.2", "top_l.2"} {
		if l := layerOf(t, r, n); l.Clip == nil || l.Clip.Clipped != 0 {
			t.Errorf("%s clip %+v, want 0", n, l.Clip)
		}
	}
	for i := 1; i < len(r.Culprits); i++ {
		if r.Culprits[i].DeltaNEPct > r.Culprits[i-1].DeltaNEPct {
			t.Errorf("culprits not sorted: %+v", r.Culprits)
		}
	}
	if !(r.DeltaNEPct > 0) || !(c.DeltaNEPct > 0) {
		t.Errorf("ΔNE %v, top culprit alone %v: want both > 0", r.DeltaNEPct, c.DeltaNEPct)
	}
	// The worst tensor's histograms count every isolated output value.
	if r.Worst == nil || r.Worst.Layer != "top_l.0" {
		t.Fatalf("worst %+v, want top_l.0", r.Worst)
	}
	var nf, nq uint64
	for i := range r.Worst.FP32.Counts {
		nf += r.Worst.FP32.Counts[i]
		nq += r.Worst.Quantized.Counts[i]
	}
	if want := uint64(2000 * 6); nf != want || nq != want || len(r.Worst.FP32.Counts) != HistBins {
		t.Errorf("histograms hold %d and %d values in %d bins, want %d in %d", nf, nq, len(r.Worst.FP32.Counts), want, HistBins)
	}
	if _, err := json.Marshal(r); err != nil { // +Inf SQNRs must encode
		t.Fatal(err)
	}
}

// Layers left fp32 in the quantized network have exact isolated outputs
// and are not culprits; propagated error reaches the last layer on top of
// its own.
func TestIsolatedExactAndPropagated(t *testing.T) {
	ref := testNet()
	batches := testBatches(t, ref, 2, 300)
	plan := staticPlan(ref, precision.Int4)
	plan.Layers["bot_l.2"] = quantize.LayerPlan{Precision: precision.FP32}
	q, err := quantize.Apply(ref, plan, inputRanges(t, ref, batches))
	if err != nil {
		t.Fatal(err)
	}
	r := analyze(t, ref, q, batches)
	l := layerOf(t, r, "bot_l.2")
	if l.Quantized || !math.IsInf(float64(l.Isolated.SQNR), 1) || l.Isolated.RelL2 != 0 || l.Isolated.Cosine != 1 {
		t.Errorf("fp32 layer isolated %+v, want exact", l.Isolated)
	}
	if w := l.WeightSQNR; w == nil || !math.IsInf(float64(*w), 1) {
		t.Errorf("fp32 layer weight SQNR %v, want +Inf", w)
	}
	// Its input came through the quantized bot_l.0: propagated is not exact.
	if !(l.Propagated.SQNR < 200) {
		t.Errorf("bot_l.2 propagated %+v, want error from bot_l.0", l.Propagated)
	}
	if l := layerOf(t, r, "interaction"); !math.IsInf(float64(l.Isolated.SQNR), 1) {
		t.Errorf("interaction isolated %+v, want exact", l.Isolated)
	}
	for _, c := range r.Culprits {
		if c.Layer == "bot_l.2" {
			t.Errorf("fp32 layer listed as a culprit: %+v", c)
		}
	}
	last := layerOf(t, r, "top_l.2")
	if !(last.Propagated.RelL2 >= last.Isolated.RelL2) || !(last.Propagated.SQNR <= last.Isolated.SQNR) {
		t.Errorf("top_l.2 propagated %+v better than isolated %+v", last.Propagated, last.Isolated)
	}
	if out := layerOf(t, r, "output"); out.Isolated != nil || out.Propagated != last.Propagated {
		t.Errorf("output %+v, want top_l.2's propagated error", out)
	}
	// Tables: 4-bit rows of 20 x 4, every row reported.
	if len(r.Tables) != 2 || r.Tables[0].Rows != 20 || r.Tables[0].Precision != "int4-rowwise" || len(r.Tables[0].Outliers) != 5 {
		t.Errorf("tables %+v", r.Tables)
	}
}

// SQNR, relative L2, max error and cosine by hand: ref (3, 4), q (3, 4.5).
func TestErrorByHand(t *testing.T) {
	var a errAcc
	a.add(dense(1, 2, []float32{3, 4.5}), dense(1, 2, []float32{3, 4}), 7)
	e := a.result()
	// Σref² = 25, Σerr² = 0.25: 10·log10(100) = 20 dB; ‖err‖/‖ref‖ = 0.5/5.
	cos := 27 / (5 * math.Sqrt(29.25))
	if math.Abs(float64(e.SQNR)-20) > 1e-12 || math.Abs(float64(e.RelL2)-0.1) > 1e-12 || e.MaxAbs != 0.5 ||
		e.MaxRow != 7 || e.MaxCol != 1 || math.Abs(float64(e.Cosine)-cos) > 1e-12 || e.Values != 2 {
		t.Errorf("got %+v, want SQNR 20, rel L2 0.1, max 0.5 at (7,1), cosine %v", e, cos)
	}
	// A NaN where fp32 is finite is an infinite error, not a silent one.
	a.add(dense(1, 1, []float32{float32(math.NaN())}), dense(1, 1, []float32{1}), 8)
	if e := a.result(); e.NonFinite != 1 || !math.IsInf(float64(e.SQNR), -1) {
		t.Errorf("with NaN: %+v", e)
	}
	var z errAcc
	z.add(dense(1, 2, []float32{0, 0}), dense(1, 2, []float32{0, 0}), 0)
	if e := z.result(); !math.IsInf(float64(e.SQNR), 1) || e.Cosine != 1 || e.RelL2 != 0 {
		t.Errorf("zeros: %+v", e)
	}
}

// Splitting the rows into batches changes nothing but rounding.
func TestStreamingBatches(t *testing.T) {
	ref := testNet()
	one := testBatches(t, ref, 1, 600)
	q, err := quantize.Apply(ref, staticPlan(ref, precision.Int8), inputRanges(t, ref, one))
	if err != nil {
		t.Fatal(err)
	}
	b := one[0]
	var three []*model.Batch
	for k := range 3 {
		lo, hi := k*200, (k+1)*200
		s := &model.Batch{N: 200, NumDense: 3, Row: int64(lo), Dense: b.Dense[lo*3 : hi*3], Labels: b.Labels[lo:hi],
			Indices: make([][]int64, 2), Offsets: make([][]int32, 2)}
		for t := range 2 {
			s.Indices[t] = b.Indices[t][lo:hi]
			for i := 0; i <= 200; i++ {
				s.Offsets[t] = append(s.Offsets[t], int32(i))
			}
		}
		three = append(three, s)
	}
	r1, r3 := analyze(t, ref, q, one), analyze(t, ref, q, three)
	for i, l := range r1.Layers {
		m := r3.Layers[i]
		if math.Abs(float64(l.Propagated.SQNR-m.Propagated.SQNR)) > 1e-6 || l.Propagated.MaxRow != m.Propagated.MaxRow || l.Propagated.Values != m.Propagated.Values {
			t.Errorf("%s: one batch %+v, three %+v", l.Name, l.Propagated, m.Propagated)
		}
	}
	for i, c := range r1.Culprits {
		if d := r3.Culprits[i]; d.Layer != c.Layer || math.Abs(float64(d.DeltaNEPct-c.DeltaNEPct)) > 1e-9 {
			t.Errorf("culprit %d: %+v vs %+v", i, c, d)
		}
	}
}

func TestTableOutliers(t *testing.T) {
	ref := &model.Table{Name: "emb_l.3", Rows: 100, Dim: 8, Weight: make([]float32, 800)}
	for i := range ref.Weight {
		ref.Weight[i] = float32(math.Sin(float64(i))) * 0.2 // ranges about 0.4
	}
	for j := range 8 {
		ref.Weight[42*8+j] = float32(j-4) * 0.8 // range 5.6
	}
	data := make([]byte, 100*kernels.TableQ4.RowBytes(8))
	quantize.QuantizeTableRows(kernels.TableQ4, false, ref.Weight, 100, 8, data)
	bt, err := kernels.NewBagTable(kernels.TableQ4, 100, 8, data)
	if err != nil {
		t.Fatal(err)
	}
	q := &model.Table{Name: "emb_l.3", Rows: 100, Dim: 8, Kernel: bt}
	tr, err := tableRows(ref, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Outliers) != 3 || tr.Outliers[0].Row != 42 || math.Abs(float64(tr.Outliers[0].Range)-5.6) > 1e-5 || tr.MaxRow != 42 {
		t.Errorf("outliers %+v, max row %d: want row 42 (range 5.6) first", tr.Outliers, tr.MaxRow)
	}
	if tr.Outliers[1].Range > tr.Outliers[0].Range || tr.Outliers[2].Range > tr.Outliers[1].Range {
		t.Errorf("outliers not sorted: %+v", tr.Outliers)
	}
	if m := float64(tr.MedianRange); m < 0.3 || m > 0.45 {
		t.Errorf("median range %v, want about 0.4", m)
	}
	l := &Layer{Name: "emb_l.3", Kind: KindTable, Precision: "int4-rowwise", Quantized: true, Isolated: &Error{SQNR: 20}, prec: precision.Int4}
	if rule, text := Suggest(l, tr, 0.1); rule != RuleTableOutliers || !strings.Contains(text, "max 5.6") || !strings.Contains(text, "int8") {
		t.Errorf("suggestion %s: %s", rule, text)
	}
}

func TestSuggestRules(t *testing.T) {
	w := func(v float64) *report.Float { f := report.Float(v); return &f }
	iso := &Error{SQNR: 25}
	cases := []struct {
		l     Layer
		tr    *TableRows
		delta float64
		rule  string
		has   string
	}{
		{Layer{Name: "a", Kind: KindFC, Precision: "int8-static", prec: precision.Int8, act: precision.Static, Clip: &Clip{Fraction: 0.5}}, nil, -0.01, RuleHarmless, "does not raise"},
		{Layer{Name: "a", Kind: KindFC, Precision: "int8-static", prec: precision.Int8, act: precision.Static, Clip: &Clip{Fraction: 0.021, Lo: 0, Hi: 3}, WeightSQNR: w(40)}, nil, 0.1, RuleClipping, "clipped 2.10%"},
		{Layer{Name: "a", Kind: KindFC, Precision: "int8-static", prec: precision.Int8, act: precision.Static, Clip: &Clip{Fraction: 0.0001}, WeightSQNR: w(18), PerTensorWeights: true}, nil, 0.1, RuleWeights, "per-channel"},
		{Layer{Name: "a", Kind: KindFC, Precision: "int8-dynamic", prec: precision.Int8, act: precision.Dynamic, WeightSQNR: w(18)}, nil, 0.1, RuleWeights, "SQNR 18.0 dB: fp16"},
		{Layer{Name: "a", Kind: KindFC, Precision: "int8-static", prec: precision.Int8, act: precision.Static, Clip: &Clip{}, WeightSQNR: w(40)}, nil, 0.1, RuleActivations, "dynamic per-row"},
		{Layer{Name: "a", Kind: KindFC, Precision: "bf16", prec: precision.BF16}, nil, 0.1, RulePrecision, "fp16"},
		{Layer{Name: "a", Kind: KindFC, Precision: "mxfp4", prec: precision.MXFP4, WeightSQNR: w(19)}, nil, 0.1, RulePrecision, "weights 19.0 dB): use mxfp6_e2m3 or int8"},
		{Layer{Name: "a", Kind: KindFC, Precision: "mxfp6_e2m3-dynamic", prec: precision.MXFP6E2M3, act: precision.Dynamic}, nil, 0.1, RulePrecision, "drop the MX activations (weights only, bf16 inputs), or int8"},
		{Layer{Name: "a", Kind: KindFC, Precision: "mxint8", prec: precision.MXINT8}, nil, 0.1, RulePrecision, "int8 (per-channel scales) or fp16"},
		{Layer{Name: "t", Kind: KindTable, Precision: "int4-rowwise", prec: precision.Int4}, &TableRows{MaxRange: 1, MedianRange: 0.5}, 0.1, RuleTableBits, "int8 rows"},
		{Layer{Name: "t", Kind: KindTable, Precision: "int8-rowwise", prec: precision.Int8}, &TableRows{MaxRange: 9, MedianRange: 0.5}, 0.1, RuleTableBits, "fp16"},
	}
	for i, c := range cases {
		c.l.Isolated = iso
		rule, text := Suggest(&c.l, c.tr, c.delta)
		if rule != c.rule || !strings.Contains(text, c.has) {
			t.Errorf("case %d: %s %q, want %s containing %q", i, rule, text, c.rule, c.has)
		}
	}
}

func TestBadNetworks(t *testing.T) {
	ref := testNet()
	batches := testBatches(t, ref, 1, 10)
	q, err := quantize.Apply(ref, staticPlan(ref, precision.Int8), inputRanges(t, ref, batches))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A quantized network as the reference.
	if _, err := Analyze(ctx, q, q, &batchList{batches}, Options{}); err == nil || !strings.Contains(err.Error(), "fp32") {
		t.Errorf("quantized reference: %v", err)
	}
	// Structural mismatches name the first difference.
	mut := func(f func(n *model.Network)) *model.Network {
		n := *q
		n.Bottom = append([]*model.Linear{}, q.Bottom...)
		n.Tables = append([]*model.Table{}, q.Tables...)
		n.Top = append([]*model.Linear{}, q.Top...)
		f(&n)
		return &n
	}
	for want, n := range map[string]*model.Network{
		"bot_l.9": mut(func(n *model.Network) {
			l := n.Bottom[1]
			n.Bottom[1] = &model.Linear{Name: "bot_l.9", In: l.In, Out: l.Out, Act: l.Act, Bias: l.Bias, Kernel: l.Kernel}
		}),
		"21x4":  mut(func(n *model.Network) { c := *n.Tables[1]; c.Rows = 21; n.Tables[1] = &c }),
		"lacks": mut(func(n *model.Network) { n.Top = n.Top[:1] }),
		"dense": mut(func(n *model.Network) { n.NumDense = 4 }),
	} {
		if _, err := Analyze(ctx, ref, n, &batchList{batches}, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	bad := *batches[0]
	bad.Labels = bad.Labels[:3]
	if _, err := Analyze(ctx, ref, q, &batchList{[]*model.Batch{&bad}}, Options{}); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("short labels: %v", err)
	}
	if _, err := Analyze(ctx, ref, q, &batchList{}, Options{}); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("no rows: %v", err)
	}
}

// TestTableRowsMX: an MX table's rows are compared with the fp32 ones as
// its bag pools them (DequantizeMXRows), so the per-table error is the
// format's: exact rows where the values fit, and the outlier row found;
// a table of another shape is refused; the suggestion names the format.
func TestTableRowsMX(t *testing.T) {
	const rows, dim = 70, 40
	ref := &model.Table{Name: "emb_l.1", Rows: rows, Dim: dim, Weight: make([]float32, rows*dim)}
	for i := range ref.Weight {
		ref.Weight[i] = float32(math.Sin(float64(i))) * 0.3
	}
	for j := range dim {
		ref.Weight[17*dim+j] = float32(j-20) * 0.5 // range 19.5, the outlier
	}
	for _, f := range []kernels.MXFormat{kernels.MXFP4E2M1, kernels.MXINT8} {
		q, err := quantize.QuantizeTable(ref, quantize.LayerPlan{Precision: f.Precision()})
		if err != nil {
			t.Fatal(err)
		}
		q.Weight = nil // as read from a file: the kernel alone
		tr, err := tableRows(ref, q, 2)
		if err != nil || tr == nil {
			t.Fatalf("%v: %v, %v", f, tr, err)
		}
		want := make([]float32, rows*dim)
		kernels.DequantizeMXRows(f, q.Kernel.(*kernels.MXBagTable).Codes, q.Kernel.(*kernels.MXBagTable).Scales, rows, dim, want)
		var sum, maxE float64
		maxRow := int64(-1)
		for r := range rows {
			var e2 float64
			for j := range dim {
				d := float64(want[r*dim+j]) - float64(ref.Weight[r*dim+j])
				e2 += d * d
			}
			e := math.Sqrt(e2 / dim)
			sum += e
			if e > maxE || maxRow < 0 {
				maxE, maxRow = e, int64(r)
			}
		}
		if tr.Precision != f.String() || tr.Rows != rows || tr.MaxRow != maxRow || float64(tr.MaxRowRMSE) != maxE ||
			math.Abs(float64(tr.MeanRowRMSE)-sum/rows) > 1e-12 || !(tr.MeanRowRMSE > 0) {
			t.Errorf("%v: %+v; want max row %d RMSE %g, mean %g", f, tr, maxRow, maxE, sum/rows)
		}
		if len(tr.Outliers) != 2 || tr.Outliers[0].Row != 17 || math.Abs(float64(tr.Outliers[0].Range)-19.5) > 1e-5 {
			t.Errorf("%v: outliers %+v, want row 17 first", f, tr.Outliers)
		}
		l := &Layer{Name: "emb_l.1", Kind: KindTable, Precision: f.String(), Quantized: true, Isolated: &Error{SQNR: 20}, prec: f.Precision()}
		if rule, text := Suggest(l, tr, 0.1); rule != RuleTableBits || !strings.Contains(text, "emb_l.1 "+f.String()) || !strings.Contains(text, "mean row RMSE") {
			t.Errorf("%v: suggestion %s: %s", f, rule, text)
		}
		short := &model.Table{Name: "emb_l.1", Rows: rows - 1, Dim: dim, Weight: ref.Weight[:(rows-1)*dim]}
		if _, err := tableRows(short, q, 2); err == nil || !strings.Contains(err.Error(), "does not match the fp32 one") {
			t.Errorf("%v: a table of another shape: %v", f, err)
		}
	}
}
