package debug

import (
	"context"
	"fmt"
	"github.com/rqtools/rq/dataset"
	"math"
	"slices"
	"sort"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/metrics"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/report"
)

// Source hands out batches until io.EOF (a dataset.Reader is one).
type Source = dataset.Source

// Options configure Analyze.
type Options struct {
	Threads int
	// Outliers is how many extreme-range rows to list per table (default 5).
	Outliers int
	// Progress, when set, is called after each batch with the rows done.
	Progress func(rows int64)
}

// layerState accumulates one layer's figures over the batches.
type layerState struct {
	Layer
	iso, prop          errAcc
	refFC, qFC         *model.Linear
	refT, qT           *model.Table
	tableIdx           int
	clipLo, clipHi     float32
	clipped, clipTotal int64
	// Streaming histograms of the isolated outputs (quantized layers).
	refHist, qHist *calibrate.Histogram
}

type culprit struct {
	st   *layerState
	net  *model.Network
	loss float64
}

type analysis struct {
	ref, q  *model.Network
	opts    Options
	layers  []*layerState
	byName  map[string]*layerState
	output  *layerState
	refOut  map[string][]float32 // this batch's fp32 outputs, compact
	rec     *model.Recorder
	culprit []*culprit

	rows, pos      int64
	refLoss, qLoss float64
	scratch        []float32
}

// Analyze measures q (a quantized copy of ref: same layers, same shapes)
// against ref (fp32, with weights) on every batch of src. It reads src to
// the end (or until ctx is done) and does not close it; memory is bounded
// by one batch's activations, whatever the number of batches.
func Analyze(ctx context.Context, ref, q *model.Network, src Source, opts Options) (*Report, error) {
	if err := CheckFP32(ref); err != nil {
		return nil, err
	}
	if err := Compatible(ref, q); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("quantized network: %w", err)
	}
	if opts.Outliers <= 0 {
		opts.Outliers = 5
	}
	opts.Threads = max(opts.Threads, 1)
	a, err := newAnalysis(ref, q, opts)
	if err != nil {
		return nil, err
	}
	err = dataset.Batches(ctx, src, func(b *model.Batch) error {
		if err := a.batch(b); err != nil {
			return fmt.Errorf("rows from %d: %w", b.Row, err)
		}
		if opts.Progress != nil {
			opts.Progress(a.rows)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.rows == 0 {
		if rd, ok := src.(dataset.Reader); ok {
			return nil, dataset.NoRowsError(rd, "analyze")
		}
		return nil, fmt.Errorf("no rows to analyze (check --rows)")
	}
	return a.report(ctx)
}

// CheckFP32 verifies a network is fp32 with weights (what Analyze measures
// against), naming the first layer that is not.
func CheckFP32(net *model.Network) error {
	for l := range net.Layers() {
		if (l.FC != nil && (l.FC.Kernel != nil || l.FC.Weight == nil)) || (l.Table != nil && (l.Table.Kernel != nil || l.Table.Weight == nil)) {
			return fmt.Errorf("%s is %s: the reference must be the fp32 model", l.Name(), l.Label())
		}
	}
	return net.Validate()
}

// Compatible checks that q has ref's structure: the same dense width,
// interaction, and layers (names, shapes, activations) in the same order.
// The error names the first difference.
func Compatible(ref, q *model.Network) error {
	if ref.NumDense != q.NumDense {
		return fmt.Errorf("the fp32 model takes %d dense features, the quantized one %d", ref.NumDense, q.NumDense)
	}
	// By name: an interaction with layers of its own holds them, so the
	// two networks' values differ (their layers are compared below).
	if r, qn := interactionName(ref), interactionName(q); r != qn {
		return fmt.Errorf("the fp32 model's interaction is %s, the quantized one's %s", r, qn)
	}
	rl, ql := slices.Collect(ref.Layers()), slices.Collect(q.Layers())
	for i := 0; i < max(len(rl), len(ql)); i++ {
		if i >= len(rl) {
			return fmt.Errorf("the quantized model has an extra %s %s", layerKind(ql[i]), ql[i].Name())
		}
		if i >= len(ql) {
			return fmt.Errorf("the quantized model lacks %s %s", layerKind(rl[i]), rl[i].Name())
		}
		x, y := rl[i], ql[i]
		switch {
		case x.FC != nil && y.FC != nil:
			a, b := x.FC, y.FC
			if a.Name != b.Name || a.In != b.In || a.Out != b.Out || a.Act != b.Act {
				return fmt.Errorf("layer %d: the fp32 model has %s (%dx%d, %s), the quantized one %s (%dx%d, %s)",
					i, a.Name, a.Out, a.In, a.Act, b.Name, b.Out, b.In, b.Act)
			}
		case x.Table != nil && y.Table != nil:
			a, b := x.Table, y.Table
			if a.Name != b.Name || a.Rows != b.Rows || a.Dim != b.Dim {
				return fmt.Errorf("table %d: the fp32 model has %s (%dx%d), the quantized one %s (%dx%d)", x.TableIndex, a.Name, a.Rows, a.Dim, b.Name, b.Rows, b.Dim)
			}
		default:
			return fmt.Errorf("layer %d: the fp32 model has %s %s, the quantized one %s %s", i, layerKind(x), x.Name(), layerKind(y), y.Name())
		}
	}
	return nil
}

// interactionName is n's interaction's name ("none" when it has none:
// Compatible may see a network that has not been validated).
func interactionName(n *model.Network) string {
	if n.Interaction == nil {
		return "none"
	}
	return n.Interaction.String()
}

// layerKind names a layer's kind in messages.
func layerKind(l model.Layer) string {
	if l.Table != nil {
		return "table"
	}
	return "layer"
}

// interactionAt is where the interaction stands among a network's layers
// (net.Layers order): before the first layer of the top MLP.
func interactionAt(ls []model.Layer) int {
	for i, l := range ls {
		if l.Part == model.PartTop {
			return i
		}
	}
	return len(ls)
}

// fp32Layer is a layer computed in fp32 in both networks (the
// interaction's arithmetic, the output).
func fp32Layer(name, kind string) Layer {
	return Layer{Name: name, Kind: kind, Precision: precision.FP32.String(), prec: precision.FP32}
}

func newAnalysis(ref, q *model.Network, opts Options) (*analysis, error) {
	a := &analysis{ref: ref, q: q, opts: opts, byName: map[string]*layerState{}, refOut: map[string][]float32{}, rec: &model.Recorder{}}
	add := func(s *layerState) {
		a.layers = append(a.layers, s)
		a.byName[s.Name] = s
	}
	fc := func(r, ql *model.Linear) error {
		s := &layerState{Layer: Layer{Name: r.Name, Kind: KindFC, Precision: ql.Label(), Quantized: ql.Kernel != nil, prec: ql.Precision()}, refFC: r, qFC: ql}
		w, perTensor, err := storedWeight(ql)
		if err != nil {
			return err
		}
		if w != nil {
			f := report.Float(weightSQNR(r.Weight, w))
			s.WeightSQNR, s.PerTensorWeights = &f, perTensor
		}
		if k, ok := ql.Kernel.(*model.MXFC); ok && k.DynamicAct {
			s.act = precision.Dynamic
		}
		if k, ok := ql.Kernel.(*model.Int8FC); ok {
			s.act = precision.Dynamic
			if k.Static {
				s.act = precision.Static
				s.clipLo, s.clipHi = k.InScale*float32(0-k.InZero), k.InScale*float32(255-k.InZero)
				s.Clip = &Clip{}
			}
		}
		add(s)
		return nil
	}
	// Compatible has checked that q's layers pair with ref's, in order;
	// the interaction's own layers are FC layers like any other.
	rl, ql := slices.Collect(ref.Layers()), slices.Collect(q.Layers())
	at := interactionAt(rl)
	for i, l := range rl {
		if i == at {
			add(&layerState{Layer: fp32Layer("interaction", KindInteraction)})
		}
		if l.Table != nil {
			qt := ql[i].Table
			quant := qt.Kernel != nil && qt.Precision() != precision.FP32
			add(&layerState{Layer: Layer{Name: l.Table.Name, Kind: KindTable, Precision: qt.Label(), Quantized: quant, prec: qt.Precision()}, refT: l.Table, qT: qt, tableIdx: l.TableIndex})
			continue
		}
		if err := fc(l.FC, ql[i].FC); err != nil {
			return nil, err
		}
	}
	if at == len(rl) {
		add(&layerState{Layer: fp32Layer("interaction", KindInteraction)})
	}
	a.output = &layerState{Layer: fp32Layer("output", KindOutput)}
	a.layers = append(a.layers, a.output)

	for _, s := range a.layers {
		if !s.Quantized {
			continue
		}
		var err error
		if s.refHist, err = calibrate.NewHistogram(accBins); err != nil {
			return nil, err
		}
		s.qHist, _ = calibrate.NewHistogram(accBins)
		// The fp32 network with this layer alone quantized, sharing every
		// other layer so Replay can start from the fp32 recording.
		l := model.Layer{FC: s.qFC, Table: s.qT, TableIndex: -1}
		if s.Kind == KindTable {
			l.TableIndex = s.tableIdx
		}
		n, ok := ref.WithLayer(l)
		if !ok {
			return nil, fmt.Errorf("%s: no such layer in the fp32 model", s.Name)
		}
		a.culprit = append(a.culprit, &culprit{st: s, net: n})
	}
	return a, nil
}

// storedWeight returns the fp32 values a layer's stored weights stand for
// (nil for kernels it cannot read), and whether int8 weights share one
// scale.
func storedWeight(l *model.Linear) ([]float32, bool, error) {
	switch k := l.Kernel.(type) {
	case nil:
		return l.Weight, false, nil
	case *model.Int8FC:
		if len(k.QWeight) != k.In*k.Out || (len(k.WScale) != 1 && len(k.WScale) != k.Out) {
			return nil, false, fmt.Errorf("%s: int8 kernel holds %d weights and %d scales for %dx%d", l.Name, len(k.QWeight), len(k.WScale), k.Out, k.In)
		}
		return k.DequantizedWeight(), len(k.WScale) == 1, nil
	case *model.F16FC:
		w := make([]float32, len(k.W))
		kernels.F16ToF32Slice(w, k.W)
		return w, false, nil
	case *model.BF16FC:
		return k.Weight32(), false, nil
	case *model.MXFC:
		return k.Weight32(), false, nil
	}
	return nil, false, nil
}

func weightSQNR(ref, w []float32) float64 {
	if len(ref) != len(w) {
		return math.NaN()
	}
	var s, n float64
	for i, r := range ref {
		d := float64(w[i]) - float64(r)
		s += float64(r) * float64(r)
		n += d * d
	}
	return SQNR(s, n)
}

func compact(m model.Mat, buf []float32) []float32 {
	buf = buf[:0]
	for i := 0; i < m.Rows; i++ {
		buf = append(buf, m.Row(i)...)
	}
	return buf
}

func dense(rows, cols int, data []float32) model.Mat {
	return model.Mat{Rows: rows, Cols: cols, Stride: cols, Data: data}
}

func (a *analysis) par(n, align int, fn func(lo, hi int)) {
	model.SplitRows(a.opts.Threads, n, align, fn)
}

// batch runs one batch through fp32 (recording), the quantized network
// (propagated errors), every layer alone (isolated errors) and every
// culprit network (ΔNE alone).
func (a *analysis) batch(b *model.Batch) error {
	if len(b.Labels) != b.N {
		return fmt.Errorf("%d labels for %d rows", len(b.Labels), b.N)
	}
	refRun := model.NewRunner(a.ref, a.opts.Threads, model.ObserverFunc(func(ev model.Event) {
		a.rec.Observe(ev)
		a.refOut[ev.Layer] = compact(ev.Out, a.refOut[ev.Layer])
	}))
	defer delete(a.rec.Batches, b)
	p, err := refRun.Forward(b)
	if err != nil {
		return err
	}
	refPred := append([]float32(nil), p...)
	rec := a.rec.Batches[b]

	qRun := model.NewRunner(a.q, a.opts.Threads, model.ObserverFunc(func(ev model.Event) {
		if s := a.byName[ev.Layer]; s != nil {
			s.prop.add(ev.Out, dense(ev.Out.Rows, ev.Out.Cols, a.refOut[ev.Layer]), b.Row)
		}
	}))
	qPred, err := qRun.Forward(b)
	if err != nil {
		return fmt.Errorf("quantized model: %w", err)
	}
	a.output.prop.add(dense(b.N, 1, qPred), dense(b.N, 1, refPred), b.Row)
	a.refLoss += logLoss(refPred, b.Labels)
	a.qLoss += logLoss(qPred, b.Labels)
	for _, y := range b.Labels {
		if y >= 0.5 {
			a.pos++
		}
	}
	a.rows += int64(b.N)

	for _, s := range a.layers {
		if err := a.isolated(s, b, rec); err != nil {
			return err
		}
	}
	for _, c := range a.culprit {
		p, err := model.NewRunner(c.net, a.opts.Threads).Replay(b, rec)
		if err != nil {
			return fmt.Errorf("%s alone: %w", c.st.Name, err)
		}
		c.loss += logLoss(p, b.Labels)
	}
	return nil
}

// isolated runs one quantized layer on the batch's exact fp32 inputs and
// compares it with the fp32 layer's output.
func (a *analysis) isolated(s *layerState, b *model.Batch, rec *model.Activations) error {
	N := b.N
	ref := a.refOut[s.Name]
	var out model.Mat
	switch s.Kind {
	case KindFC:
		l := s.qFC
		in := dense(N, l.In, rec.In[s.Name])
		out = dense(N, l.Out, a.buf(N*l.Out))
		a.linear(l, in, out)
		if s.Clip != nil {
			for _, v := range in.Data {
				if v < s.clipLo || v > s.clipHi {
					s.clipped++
				}
			}
			s.clipTotal += int64(len(in.Data))
		}
	case KindTable:
		t := s.qT
		out = dense(N, t.Dim, a.buf(N*t.Dim))
		var w []float32
		if b.Weights != nil {
			w = b.Weights[s.tableIdx]
		}
		if p := t.Pool(b.Indices[s.tableIdx], b.Offsets[s.tableIdx], w, out.Data, t.Dim, 0, N); p >= 0 {
			return fmt.Errorf("%s: index %d (batch position %d) is outside the table's %d rows", t.Name, b.Indices[s.tableIdx][p], p, t.Rows)
		}
	case KindInteraction:
		// Recomputed from the fp32 feature rows by the quantized network's
		// interaction: the error is what its arithmetic adds (none for dot
		// and cat, which both networks share; its own layers' error for an
		// interaction that has some).
		n := a.q
		width := n.InputWidth()
		featW := len(rec.Feat) / max(N, 1)
		out = dense(N, width, a.buf(N*width))
		env := model.InteractEnv{Par: a.par, FC: a.linear, NumFeatures: n.NumFeatures(), EmbDim: n.EmbDim()}
		n.Interaction.Forward(env, dense(N, featW, rec.Feat), out)
	default:
		return nil
	}
	refM := dense(out.Rows, out.Cols, ref)
	s.iso.add(out, refM, b.Row)
	if s.refHist != nil {
		s.refHist.Observe(ref)
		s.qHist.Observe(out.Data)
	}
	return nil
}

// linear runs one FC layer as model.Runner does: on its kernel, or in
// fp32 on its packed weight.
func (a *analysis) linear(l *model.Linear, in, out model.Mat) {
	if l.Kernel != nil {
		l.Kernel.Forward(a.par, in, out, l.Bias, l.Act)
		return
	}
	pk := l.Packed()
	a.par(in.Rows, kernels.GemmRowAlign, func(lo, hi int) {
		pk.Gemm(hi-lo, in.Data[lo*in.Stride:], in.Stride, out.Data[lo*out.Stride:], out.Stride, l.Bias, l.Act == model.ActReLU)
		if l.Act == model.ActSigmoid {
			model.SigmoidRows(out, lo, hi)
		}
	})
}

func (a *analysis) buf(n int) []float32 {
	if cap(a.scratch) < n {
		a.scratch = make([]float32, n)
	}
	return a.scratch[:n]
}

// logLoss sums the log loss of predictions as metrics does (clipped).
func logLoss(p, y []float32) float64 {
	var s float64
	for i, pi := range p {
		q := min(max(float64(pi), metrics.Clip), 1-metrics.Clip)
		if math.IsNaN(float64(pi)) {
			q = math.NaN()
		}
		if y[i] >= 0.5 {
			s -= math.Log(q)
		} else {
			s -= math.Log(1 - q)
		}
	}
	return s
}

func (a *analysis) ne(loss float64) float64 {
	n := float64(a.rows)
	return (loss / n) / metrics.Entropy(float64(a.pos)/n)
}

func (a *analysis) report(ctx context.Context) (*Report, error) {
	r := &Report{Rows: a.rows, NE: report.Float(a.ne(a.refLoss)), QuantizedNE: report.Float(a.ne(a.qLoss))}
	r.DeltaNEPct = report.Float(100 * (a.qLoss - a.refLoss) / a.refLoss)
	tables := map[string]*TableRows{}
	for _, s := range a.layers {
		if s.Kind != KindTable || !s.Quantized {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tr, err := tableRows(s.refT, s.qT, a.opts.Outliers)
		if err != nil {
			return nil, err
		}
		if tr != nil {
			r.Tables = append(r.Tables, *tr)
			tables[s.Name] = &r.Tables[len(r.Tables)-1]
		}
	}
	var worst *layerState
	for _, s := range a.layers {
		l := s.Layer
		l.Propagated = s.prop.result()
		if s.Kind != KindOutput {
			iso := s.iso.result()
			l.Isolated = &iso
		}
		if l.Clip != nil {
			l.Clip = &Clip{Lo: report.Float(s.clipLo), Hi: report.Float(s.clipHi), Clipped: s.clipped, Values: s.clipTotal,
				Fraction: report.Float(float64(s.clipped) / float64(s.clipTotal))}
		}
		s.Layer = l
		if s.Quantized && (worst == nil || l.Isolated.SQNR < worst.Isolated.SQNR) {
			worst = s
		}
		r.Layers = append(r.Layers, l)
	}
	if worst != nil {
		fp, q := sharedHists(worst.refHist, worst.qHist)
		r.Worst = &Worst{Layer: worst.Name, SQNR: worst.Isolated.SQNR, FP32: fp, Quantized: q}
	}
	for _, c := range a.culprit {
		d := 100 * (c.loss - a.refLoss) / a.refLoss
		rule, text := Suggest(&c.st.Layer, tables[c.st.Name], d)
		r.Culprits = append(r.Culprits, Culprit{Layer: c.st.Name, Precision: c.st.Precision, DeltaNEPct: report.Float(d), Rule: rule, Suggestion: text})
	}
	// Worst first; a NaN ΔNE (a layer that breaks the predictions) first of all.
	sort.SliceStable(r.Culprits, func(i, j int) bool {
		x, y := float64(r.Culprits[i].DeltaNEPct), float64(r.Culprits[j].DeltaNEPct)
		if math.IsNaN(x) || math.IsNaN(y) {
			return math.IsNaN(x) && !math.IsNaN(y)
		}
		return x > y
	})
	return r, nil
}
