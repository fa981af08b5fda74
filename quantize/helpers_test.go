package quantize

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rqtools/rq/model"
)

// randNet builds a small DLRM with random weights (model/run_test.go's
// randNet, which other packages cannot import): 4 dense features, bottom
// MLP 4-8-4, three tables of dim 4, dot interaction, top MLP ?-8-1. Weights
// are uniform in ±1/sqrt(in), as PyTorch initializes a Linear, so every
// layer's pre-activation stays of order one and quantization errors are of
// the size they have in a trained model.
func randNet(seed uint64) *model.Network {
	rng := rand.New(rand.NewPCG(seed, 1))
	lin := func(name string, in, out int, act model.Activation) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		s := float32(1 / math.Sqrt(float64(in)))
		for i := range l.Weight {
			l.Weight[i] = (rng.Float32()*2 - 1) * s
		}
		for i := range l.Bias {
			l.Bias[i] = rng.Float32()*0.2 - 0.1
		}
		return l
	}
	n := &model.Network{NumDense: 4, Interaction: model.Dot}
	n.Bottom = []*model.Linear{lin("bot_l.0", 4, 8, model.ActReLU), lin("bot_l.2", 8, 4, model.ActReLU)}
	dims := []int{4, 4, 4}
	for i, rows := range []int64{20, 30, 10} {
		t := &model.Table{Name: fmt.Sprintf("emb_l.%d", i), Rows: rows, Dim: dims[i], Weight: make([]float32, rows*int64(dims[i]))}
		for j := range t.Weight {
			t.Weight[j] = rng.Float32()*2 - 1
		}
		n.Tables = append(n.Tables, t)
	}
	in := n.InputWidth()
	n.Top = []*model.Linear{lin("top_l.0", in, 8, model.ActReLU), lin("top_l.2", 8, 1, model.ActSigmoid)}
	return n
}

// randBatch is n examples for net: dense features in [0, 3) (the range of
// log(1+x) of Criteo's counts) and bags of 0 to 3 ids per table, so empty
// and multi-id bags are pooled too.
func randBatch(net *model.Network, n int, seed uint64) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := &model.Batch{N: n, NumDense: net.NumDense, Dense: make([]float32, n*net.NumDense)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32() * 3
	}
	for _, t := range net.Tables {
		off := []int32{0}
		var idx []int64
		for range n {
			for range rng.IntN(4) {
				idx = append(idx, rng.Int64N(t.Rows))
			}
			off = append(off, int32(len(idx)))
		}
		b.Indices = append(b.Indices, idx)
		b.Offsets = append(b.Offsets, off)
	}
	return b
}

// predict runs net on b with one thread and returns a copy of the
// predictions (the Runner reuses its slice).
func predict(t *testing.T, net *model.Network, b *model.Batch) []float32 {
	t.Helper()
	p, err := model.NewRunner(net, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), p...)
}

// maxAbsDiff is the largest |p[i] - q[i]|, as rq eval --simulate reports it.
func maxAbsDiff(p, q []float32) float64 {
	var d float64
	for i := range p {
		d = max(d, math.Abs(float64(p[i])-float64(q[i])))
	}
	return d
}

// minMaxRanges is a RangeSource holding the min and max of every FC
// layer's input over some batches, whatever the method asked: enough for
// static int8 to quantize activations that fall inside the range.
type minMaxRanges map[string][2]float32

func (r minMaxRanges) Range(layer, method string) (float32, float32, error) {
	v, ok := r[layer]
	if !ok {
		return 0, 0, fmt.Errorf("no range for %s", layer)
	}
	return v[0], v[1], nil
}

// observeRanges runs the fp32 net on b and records each FC input's range.
func observeRanges(t *testing.T, net *model.Network, b *model.Batch) minMaxRanges {
	t.Helper()
	r := minMaxRanges{}
	fcs := map[string]bool{}
	for l := range net.Linears() {
		fcs[l.Name] = true
	}
	obs := model.ObserverFunc(func(ev model.Event) {
		if !fcs[ev.Layer] {
			return
		}
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		if v, ok := r[ev.Layer]; ok {
			lo, hi = v[0], v[1]
		}
		for i := range ev.In.Rows {
			for _, x := range ev.In.Row(i) {
				lo, hi = min(lo, x), max(hi, x)
			}
		}
		r[ev.Layer] = [2]float32{lo, hi}
	})
	if _, err := model.NewRunner(net, 1, obs).Forward(b); err != nil {
		t.Fatal(err)
	}
	if len(r) != len(fcs) {
		t.Fatalf("observed %d of %d FC layers", len(r), len(fcs))
	}
	return r
}
