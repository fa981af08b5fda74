package search

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// fakeEval is an Evaluator whose plans damage every row's log loss by
// known amounts: each layer adds dne[layer][rung] percent of ΔNE, and a
// pair of layers both below fp32 adds pair[{a,b}]. With noise 0 every row
// loses the same fraction more, so the bootstrap interval is the point;
// with noise a, row i's shift has ±a·pct/100 more (balanced over the rows, so
// the point estimate stays), which widens the interval.
// (mean is kept for reference: the baseline's mean log loss.)
type fakeEval struct {
	layers []Layer
	labels []float32
	base   []float32
	mean   float64 // baseline mean log loss
	dne    map[string]map[string]float64
	pair   map[[2]string]float64
	noise  float64
	sign   []float64
	calls  int
	plans  []string
	// cancelAfter > 0: the cancel func is called on that call, which then
	// fails with the context's error (as a real evaluator would).
	cancelAfter int
	cancelFn    func()
}

func newFake(nFC, nTables, rows int, seed uint64) *fakeEval {
	f := &fakeEval{dne: map[string]map[string]float64{}, pair: map[[2]string]float64{}}
	for i := range nFC {
		f.layers = append(f.layers, Layer{Name: fmt.Sprintf("fc%d", i), Kind: KindFC, In: 64, Out: 32})
	}
	for i := range nTables {
		f.layers = append(f.layers, Layer{Name: fmt.Sprintf("emb%d", i), Kind: KindTable, Rows: 1000 * int64(i+1), Dim: 16})
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var sum float64
	for i := range rows {
		p := 0.1 + 0.8*rng.Float64()
		y := float32(0)
		if rng.Float64() < p {
			y = 1
		}
		if i < 2 { // both classes, always
			y = float32(i)
		}
		f.labels = append(f.labels, y)
		f.base = append(f.base, float32(p))
		sum += rowLoss(float32(p), y >= 0.5)
		f.sign = append(f.sign, float64(1-2*(i%2))) // balanced: the noise sums to 0
	}
	f.mean = sum / float64(rows)
	return f
}

// set gives layer name ΔNE% contributions per rung name.
func (f *fakeEval) set(name string, rungs map[string]float64) { f.dne[name] = rungs }

func (f *fakeEval) Layers() []Layer   { return f.layers }
func (f *fakeEval) Labels() []float32 { return f.labels }

func rungName(kind string, lp quantize.LayerPlan) string {
	if lp.Precision == precision.Mixed {
		return RungName(kind, lp)
	}
	set := fcRungs
	if kind == KindTable {
		set = tableRungs
	}
	for n, p := range set {
		if p == lp {
			return n
		}
	}
	return "?"
}

func (f *fakeEval) Evaluate(ctx context.Context, plan *quantize.Plan) (*Outcome, error) {
	if f.cancelAfter > 0 && f.calls == f.cancelAfter {
		f.cancelFn()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.calls++
	f.plans = append(f.plans, planKey(plan.Layers))
	var pct float64
	var bytes int64
	low := map[string]bool{}
	for _, l := range f.layers {
		lp := plan.Layer(l.Name)
		bytes += l.Bytes(lp)
		if lp.Precision == precision.FP32 {
			continue
		}
		low[l.Name] = true
		pct += f.dne[l.Name][rungName(l.Kind, lp)]
	}
	for p, v := range f.pair {
		if low[p[0]] && low[p[1]] {
			pct += v
		}
	}
	pred := make([]float32, len(f.base))
	for i, p := range f.base {
		// The shift is proportional to the row's loss, so every resample's
		// ΔNE% is the same (noise 0): ΔNE% = pct exactly.
		di := pct / 100 * (rowLoss(p, f.labels[i] >= 0.5) + f.noise*f.sign[i])
		// Shift row i's loss by di: -log p' = -log p + di (positives),
		// -log(1-p') = -log(1-p) + di (negatives).
		if f.labels[i] >= 0.5 {
			pred[i] = float32(float64(p) * math.Exp(-di))
		} else {
			pred[i] = float32(1 - (1-float64(p))*math.Exp(-di))
		}
	}
	return &Outcome{Pred: pred, Bytes: bytes}, nil
}
