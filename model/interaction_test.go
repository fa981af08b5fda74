package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
)

// projCat is a test interaction with a layer of its own: cat, then a
// square projection P. It stands for interactions with weights (DCN's
// cross network): their layers must be seen by Layers, Linears and Map,
// and run through the Runner's FC.
type projCat struct{ p *Linear }

func (c projCat) String() string                         { return "proj-cat" }
func (c projCat) Width(d int, dims []int) int            { return Cat.Width(d, dims) }
func (c projCat) CheckTables(int, []*Table) error        { return nil }
func (c projCat) Layers() []*Linear                      { return []*Linear{c.p} }
func (c projCat) WithLayers(ls []*Linear) Interaction    { return projCat{p: ls[0]} }
func (c projCat) Forward(env InteractEnv, feat, out Mat) { env.FC(c.p, feat, out) }

func TestInteractionWithLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	net := randNet(rng, Cat, 4, []int{6, 3}, []int64{9, 5}, []int{2, 4}, []int{5, 1})
	w := net.Top[0].In
	p := &Linear{Name: "proj", In: w, Out: w, Weight: make([]float32, w*w), Bias: make([]float32, w)}
	for i := range p.Weight {
		p.Weight[i] = rng.Float32() - 0.5
	}
	net.Interaction = projCat{p: p}
	if err := net.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := net.LayerNames(); !slices.Equal(got, []string{"bot_l.0", "bot_l.2", "emb_l.0", "emb_l.1", "proj", "top_l.0", "top_l.2"}) {
		t.Fatalf("LayerNames %v", got)
	}
	var fcs []string
	for l := range net.Linears() {
		fcs = append(fcs, l.Name)
	}
	if !slices.Equal(fcs, []string{"bot_l.0", "bot_l.2", "proj", "top_l.0", "top_l.2"}) {
		t.Fatalf("Linears %v", fcs)
	}

	// The Runner runs the interaction's layer: predictions equal a plain
	// computation of cat, then P, then the top MLP.
	b := &Batch{N: 7, NumDense: 4, Dense: make([]float32, 28), Labels: make([]float32, 7)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32()
	}
	for ti, tb := range net.Tables {
		idx := make([]int64, 7)
		off := make([]int32, 8)
		for i := range idx {
			idx[i], off[i+1] = int64(rng.IntN(int(tb.Rows))), int32(i+1)
		}
		b.Indices, b.Offsets = append(b.Indices, idx), append(b.Offsets, off)
		_ = ti
	}
	got, err := NewRunner(net, 2).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 0, 7)
	for i := 0; i < 7; i++ {
		x := b.Dense[4*i : 4*i+4]
		for _, l := range net.Bottom {
			x = dense(l, x)
		}
		for ti, tb := range net.Tables {
			r := b.Indices[ti][i]
			x = append(slices.Clone(x), tb.Weight[r*int64(tb.Dim):(r+1)*int64(tb.Dim)]...)
		}
		x = dense(p, x)
		for _, l := range net.Top {
			x = dense(l, x)
		}
		want = append(want, x[0])
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("prediction %d: %v, want %v", i, got[i], want[i])
		}
	}

	// Map reaches the interaction's layer: an fp16 P changes the network.
	q, err := net.Map(func(l *Linear) (*Linear, error) {
		if l.Name != "proj" {
			return l, nil
		}
		h := make([]uint16, len(l.Weight))
		kernels.F32ToF16Slice(h, l.Weight)
		return &Linear{Name: l.Name, In: l.In, Out: l.Out, Bias: l.Bias, Kernel: &F16FC{In: l.In, Out: l.Out, W: h}}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := q.Layer("proj"); !ok || l.Precision() != precision.FP16 {
		t.Fatalf("Map did not replace the interaction's layer: %+v", l)
	}
	if l, _ := net.Layer("proj"); l.Precision() != precision.FP32 {
		t.Fatal("Map changed the original network's interaction")
	}
	qWant, err := NewRunner(q, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	qWant = slices.Clone(qWant)

	// Replaying the fp32 recording with only the interaction's layer
	// lowered must rerun the interaction (nothing upstream changed).
	rec := &Recorder{}
	if _, err := NewRunner(net, 2, rec).Forward(b); err != nil {
		t.Fatal(err)
	}
	replayed, err := NewRunner(q, 2).Replay(b, rec.Batches[b])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(replayed, qWant) {
		t.Fatalf("replay with the interaction's layer lowered: %v, Forward gives %v", replayed, qWant)
	}
}

// dense is l on one row, in float64 then rounded: a plain reference.
func dense(l *Linear, x []float32) []float32 {
	y := make([]float32, l.Out)
	for o := 0; o < l.Out; o++ {
		s := 0.0
		if len(l.Bias) > 0 {
			s = float64(l.Bias[o])
		}
		for i := 0; i < l.In; i++ {
			s += float64(l.Weight[o*l.In+i]) * float64(x[i])
		}
		switch l.Act {
		case ActReLU:
			s = max(s, 0)
		case ActSigmoid:
			s = 1 / (1 + math.Exp(-s))
		}
		y[o] = float32(s)
	}
	return y
}
