package quantize

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// weightCases are FC weights (8 outputs x 16 inputs) for the weight
// quantizers: rows of very different sizes, an all-zero row, a row with
// one huge value among ordinary ones, a row of one sign, and a row whose
// largest value is negative.
func weightCases() *model.Linear {
	const out, in = 8, 16
	rng := rand.New(rand.NewPCG(7, 7))
	w := make([]float32, out*in)
	sizes := []float32{1, 1e-3, 100, 0 /* zero row */, 1 /* huge */, 0.5, 2, 1e-30}
	for o, s := range sizes {
		for i := range in {
			w[o*in+i] = (rng.Float32()*2 - 1) * s
		}
	}
	w[4*in+9] = 3e5 // the huge value of row 4
	for i := range in {
		w[5*in+i] = float32(math.Abs(float64(w[5*in+i]))) // row 5: one sign
	}
	w[6*in+3] = -7 // row 6: the largest magnitude is negative
	return &model.Linear{Name: "top_l.4", In: in, Out: out, Act: model.ActReLU, Weight: w, Bias: make([]float32, out)}
}

// Every int8 weight quantizer (per channel or per tensor, narrow or full
// range) dequantizes each weight within half a step of the original, with
// the step the tightest that holds its group: max|w|/127 (narrow) or
// /127.5 (full, PyTorch's observer). A zero group dequantizes to exact
// zeros; a group with one huge value has that value's step, and the other
// groups keep their own.
func TestInt8WeightsWithinHalfStep(t *testing.T) {
	l := weightCases()
	for _, wr := range []string{NarrowRange, FullRange} {
		for _, gran := range []string{PerChannel, PerTensor} {
			what := wr + "/" + gran
			lp := LayerPlan{Precision: precision.Int8, Activation: Dynamic, Granularity: PerRow, Weights: gran, WeightRange: wr}
			k, err := QuantizeFC(l, lp, nil)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			q := k.(*model.Int8FC)
			groups, size := l.Out, l.In
			if gran == PerTensor {
				groups, size = 1, l.Out*l.In
			}
			if len(q.WScale) != groups {
				t.Fatalf("%s: %d scales, want %d", what, len(q.WScale), groups)
			}
			qmin, div := -127, float32(127)
			if wr == FullRange {
				qmin, div = -128, 127.5
			}
			deq := q.DequantizedWeight()
			for g := range groups {
				var amax float32
				for _, v := range l.Weight[g*size : (g+1)*size] {
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				s := q.WScale[g]
				want := amax / div
				if amax == 0 {
					want = 1 // any positive scale; the codes are all zero
				}
				if s != want {
					t.Errorf("%s: group %d: scale %g, want %g (max|w| %g)", what, g, s, want, amax)
				}
				for i := g * size; i < (g+1)*size; i++ {
					if c := int(q.QWeight[i]); c < qmin || c > 127 {
						t.Errorf("%s: weight %d: code %d outside [%d, 127]", what, i, c, qmin)
					}
					// Half a step, plus the float32 rounding of s and of q*s
					// (2^-24 each, relative to values of w's size): a full-range
					// group's largest value lies exactly half a step from 127.
					bound := 0.5*float64(s) + 0x1p-23*math.Abs(float64(l.Weight[i]))
					if d := math.Abs(float64(deq[i] - l.Weight[i])); d > bound {
						t.Errorf("%s: weight %d (row %d): %g dequantizes to %g, %.3g steps away", what, i, i/l.In, l.Weight[i], deq[i], d/float64(s))
					}
				}
			}
			for i := 3 * l.In; i < 4*l.In; i++ {
				if q.QWeight[i] != 0 || deq[i] != 0 {
					t.Errorf("%s: zero row: weight %d is code %d, %g", what, i, q.QWeight[i], deq[i])
				}
			}
			if gran == PerChannel {
				// The huge value is within half of its row's step; the rows
				// beside it keep their fine steps (checked above), so only
				// row 4's small weights round to zero.
				if got := deq[4*l.In+9]; got != 127*q.WScale[4] {
					t.Errorf("%s: the huge value dequantizes to %g, want 127 steps = %g", what, got, 127*q.WScale[4])
				}
			}
			if wr == NarrowRange {
				// Narrow range is symmetric: -w quantizes to -q.
				neg := &model.Linear{Name: l.Name, In: l.In, Out: l.Out, Weight: make([]float32, len(l.Weight))}
				for i, v := range l.Weight {
					neg.Weight[i] = -v
				}
				kn, err := QuantizeFC(neg, lp, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, c := range kn.(*model.Int8FC).QWeight {
					if c != -q.QWeight[i] {
						t.Errorf("%s: -w[%d] is code %d, w[%d] is %d", what, i, c, i, q.QWeight[i])
						break
					}
				}
			}
		}
	}
}

// fp16 and bf16 weights are the nearest values of their format: within
// half a unit in the last place (2^-11 and 2^-8 of the value, relative)
// for values in the format's normal range.
func TestHalfWeights(t *testing.T) {
	l := weightCases()
	l.Weight[4*l.In+9] = 3e4 // within fp16's range (65504)
	for _, prec := range []precision.Precision{precision.FP16, precision.BF16} {
		k, err := QuantizeFC(l, LayerPlan{Precision: prec}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(l.Weight))
		rel := 0x1p-11
		switch k := k.(type) {
		case *model.F16FC:
			kernels.F16ToF32Slice(got, k.W)
		case *model.BF16FC:
			got, rel = k.Weight32(), 0x1p-8
		default:
			t.Fatalf("%s: kernel %T", prec, k)
		}
		if k.Precision() != prec {
			t.Errorf("%s: kernel says %s", prec, k.Precision())
		}
		for i, w := range l.Weight {
			a := math.Abs(float64(w))
			if prec == precision.FP16 && a != 0 && a < 0x1p-14 {
				continue // below fp16's normal range: absolute, not relative, rounding
			}
			if d := math.Abs(float64(got[i] - w)); d > rel*a {
				t.Errorf("%s: weight %d: %g becomes %g (relative error %.3g)", prec, i, w, got[i], d/a)
			}
		}
	}
}

// QuantizeLinear: fp32 is the layer itself; any other precision is a copy
// that shares the fp32 weight and bias (Apply's networks cost only their
// low-precision weights) and keeps name, shape and activation; a layer
// without fp32 weights is an error naming it.
func TestQuantizeLinear(t *testing.T) {
	l := weightCases()
	if q, err := QuantizeLinear(l, LayerPlan{Precision: precision.FP32}, nil); err != nil || q != l {
		t.Errorf("fp32: %p %v, want the layer itself %p", q, err, l)
	}
	ranges := minMaxRanges{l.Name: {-1, 4}}
	for _, lp := range []LayerPlan{
		{Precision: precision.FP16}, {Precision: precision.BF16},
		{Precision: precision.Int8, Activation: Dynamic, Granularity: PerTensor, Weights: PerTensor, ReduceRange: true, WeightRange: FullRange},
		{Precision: precision.Int8, Activation: Static, Granularity: PerTensor, Weights: PerChannel, Method: "l2", WeightRange: NarrowRange},
	} {
		q, err := QuantizeLinear(l, lp, ranges)
		if err != nil {
			t.Fatalf("%+v: %v", lp, err)
		}
		if q == l || q.Kernel == nil || q.Name != l.Name || q.In != l.In || q.Out != l.Out || q.Act != l.Act ||
			&q.Weight[0] != &l.Weight[0] || &q.Bias[0] != &l.Bias[0] || l.Kernel != nil {
			t.Errorf("%+v: %+v", lp, q)
		}
		if want := wantLabel(lp, false); q.Label() != want || q.Precision() != lp.Precision {
			t.Errorf("%+v: precision %s (%v), want %s", lp, q.Label(), q.Precision(), want)
		}
	}
	// Static activations take their scale and zero point from the range.
	q, _ := QuantizeLinear(l, LayerPlan{Precision: precision.Int8, Activation: Static, Weights: PerChannel, Method: "l2"}, ranges)
	k := q.Kernel.(*model.Int8FC)
	if s, z := kernels.ChooseQParamsU8(-1, 4, false); !k.Static || k.InScale != s || k.InZero != z {
		t.Errorf("static: scale %g zero %d, want %g %d", k.InScale, k.InZero, s, z)
	}
	if _, err := QuantizeLinear(l, LayerPlan{Precision: precision.Int8, Activation: Static}, minMaxRanges{}); err == nil {
		t.Error("static without the layer's range: no error")
	}
	bare := &model.Linear{Name: "bot_l.2", In: 2, Out: 2, Kernel: &model.F16FC{In: 2, Out: 2, W: make([]uint16, 4)}}
	if _, err := QuantizeLinear(bare, LayerPlan{Precision: precision.Int8}, nil); err == nil || !strings.Contains(err.Error(), "bot_l.2: no fp32 weights") {
		t.Errorf("no fp32 weights: %v", err)
	}
}

// Table rows: fp16 is the nearest fp16 value; 8-bit row-wise dequantizes
// within half a step ((max-min)/255, stored in fp32) of each value (plus
// PyTorch's 1e-8 guard), a zero row to zeros, and a row with one huge
// value keeps the huge value within half its step while the rows beside it
// keep theirs.
func TestQuantizeTableRows(t *testing.T) {
	l := weightCases() // 8 rows of 16, as a table
	tb := &model.Table{Name: "emb_l.3", Rows: int64(l.Out), Dim: l.In, Weight: l.Weight}
	for _, prec := range []precision.Precision{precision.FP16, precision.Int8} {
		tb.Weight[4*tb.Dim+9] = 3e5
		if prec == precision.FP16 {
			// Within fp16's range (65504): beyond it fp16 rows hold ±Inf.
			tb.Weight[4*tb.Dim+9] = 3e4
		}
		q, err := QuantizeTable(tb, LayerPlan{Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		bt := q.Kernel.(*kernels.BagTable)
		got := make([]float32, len(tb.Weight))
		kernels.DequantizeRows(bt.Format, bt.Data, int(tb.Rows), tb.Dim, got)
		for r := range int(tb.Rows) {
			row := tb.Weight[r*tb.Dim : (r+1)*tb.Dim]
			lo, hi := row[0], row[0]
			for _, v := range row {
				lo, hi = min(lo, v), max(hi, v)
			}
			for j, v := range row {
				d := math.Abs(float64(got[r*tb.Dim+j] - v))
				// fp16: half an ulp, or half the smallest subnormal (2^-24)
				// below the normal range.
				bound := max(0x1p-11*math.Abs(float64(v)), 0x1p-25)
				if prec == precision.Int8 {
					// Half a step; plus, as PyTorch encodes with 255/(range +
					// 1e-8), at most min(range, 1e-8) more (a row of range
					// far below 1e-8 is all code 0: its minimum); plus the
					// float32 rounding of min + q*scale.
					rng := float64(hi - lo)
					bound = 0.5*rng/255*(1+1e-5) + min(rng, 1e-8) + 1e-6*math.Abs(float64(lo))
				}
				if d > bound {
					t.Errorf("%s: row %d col %d: %g becomes %g (bound %.3g)", prec, r, j, v, got[r*tb.Dim+j], bound)
				}
			}
		}
		for j := range tb.Dim {
			if v := got[3*tb.Dim+j]; v != 0 {
				t.Errorf("%s: zero row dequantizes to %g", prec, v)
			}
		}
	}
}
