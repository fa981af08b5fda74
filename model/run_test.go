package model

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
)

// randNet builds a random DLRM with the given shape.
func randNet(rng *rand.Rand, op InteractionOp, dense int, bottom []int, tables []int64, dims []int, top []int) *Network {
	n := &Network{NumDense: dense, Interaction: op}
	lin := func(name string, in, out int, act Activation) *Linear {
		l := &Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		s := float32(1 / math.Sqrt(float64(in)))
		for i := range l.Weight {
			l.Weight[i] = (rng.Float32()*2 - 1) * s
		}
		for i := range l.Bias {
			l.Bias[i] = rng.Float32()*0.2 - 0.1
		}
		return l
	}
	in := dense
	for i, o := range bottom {
		n.Bottom = append(n.Bottom, lin("bot_l."+itoa(2*i), in, o, ActReLU))
		in = o
	}
	for i, r := range tables {
		t := &Table{Name: "emb_l." + itoa(i), Rows: r, Dim: dims[i], Weight: make([]float32, r*int64(dims[i]))}
		for j := range t.Weight {
			t.Weight[j] = rng.Float32()*2 - 1
		}
		n.Tables = append(n.Tables, t)
	}
	in = InteractionWidth(op, bottom[len(bottom)-1], dims)
	for i, o := range top {
		act := ActReLU
		if i == len(top)-1 {
			act = ActSigmoid
		}
		n.Top = append(n.Top, lin("top_l."+itoa(2*i), in, o, act))
		in = o
	}
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }

// refForward is the plain float64 definition of a DLRM forward pass.
func refForward(n *Network, b *Batch) []float64 {
	mlp := func(ls []*Linear, x []float64) []float64 {
		for _, l := range ls {
			y := make([]float64, l.Out)
			for o := range y {
				s := float64(l.Bias[o])
				for i, v := range x {
					s += v * float64(l.Weight[o*l.In+i])
				}
				switch l.Act {
				case ActReLU:
					s = max(s, 0)
				case ActSigmoid:
					s = 1 / (1 + math.Exp(-s))
				}
				y[o] = s
			}
			x = y
		}
		return x
	}
	out := make([]float64, b.N)
	for i := 0; i < b.N; i++ {
		x := make([]float64, b.NumDense)
		for j := range x {
			x[j] = float64(b.Dense[i*b.NumDense+j])
		}
		vecs := [][]float64{mlp(n.Bottom, x)}
		for t, tb := range n.Tables {
			v := make([]float64, tb.Dim)
			for p := b.Offsets[t][i]; p < b.Offsets[t][i+1]; p++ {
				w := 1.0
				if b.Weights != nil {
					w = float64(b.Weights[t][p])
				}
				ix := b.Indices[t][p]
				for j := range v {
					v[j] += w * float64(tb.Weight[ix*int64(tb.Dim)+int64(j)])
				}
			}
			vecs = append(vecs, v)
		}
		z := append([]float64(nil), vecs[0]...)
		if n.Interaction == Cat {
			for _, v := range vecs[1:] {
				z = append(z, v...)
			}
		} else {
			for a := range vecs {
				for c := 0; c < a || (n.Interaction == DotSelf && c == a); c++ {
					var s float64
					for j := range vecs[a] {
						s += vecs[a][j] * vecs[c][j]
					}
					z = append(z, s)
				}
			}
		}
		out[i] = mlp(n.Top, z)[0]
	}
	return out
}

func randBatch(rng *rand.Rand, n *Network, rows, maxBag int, weighted bool) *Batch {
	b := &Batch{N: rows, NumDense: n.NumDense, Dense: make([]float32, rows*n.NumDense), Labels: make([]float32, rows)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32() * 3
	}
	for _, t := range n.Tables {
		off := []int32{0}
		var idx []int64
		var w []float32
		for i := 0; i < rows; i++ {
			k := rng.IntN(maxBag + 1) // empty bags too
			for j := 0; j < k; j++ {
				idx = append(idx, rng.Int64N(t.Rows))
				w = append(w, rng.Float32()*2)
			}
			off = append(off, int32(len(idx)))
		}
		b.Indices = append(b.Indices, idx)
		b.Offsets = append(b.Offsets, off)
		if weighted {
			b.Weights = append(b.Weights, w)
		}
	}
	return b
}

// TestForwardMatchesReference runs DLRMs of several shapes, all three
// interaction ops and multi-hot (optionally weighted) bags against the
// float64 definition, for several thread counts.
func TestForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name     string
		op       InteractionOp
		dense    int
		bottom   []int
		tables   []int64
		dims     []int
		top      []int
		maxBag   int
		weighted bool
	}{
		{"dot one-hot", Dot, 13, []int{64, 16}, []int64{10, 300, 7}, []int{16, 16, 16}, []int{32, 1}, 1, false},
		{"dot-self multi-hot", DotSelf, 5, []int{8}, []int64{50, 50, 20, 9}, []int{8, 8, 8, 8}, []int{17, 9, 1}, 4, false},
		{"cat mixed widths weighted", Cat, 3, []int{4}, []int64{11, 13}, []int{6, 2}, []int{5, 1}, 3, true},
		{"dot wide", Dot, 13, []int{512, 256, 64, 16}, []int64{1000, 5, 77}, []int{16, 16, 16}, []int{512, 256, 1}, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			net := randNet(rng, c.op, c.dense, c.bottom, c.tables, c.dims, c.top)
			if err := net.Validate(); err != nil {
				t.Fatal(err)
			}
			b := randBatch(rng, net, 37, c.maxBag, c.weighted)
			want := refForward(net, b)
			var first []float32
			for _, threads := range []int{1, 2, 5} {
				got, err := NewRunner(net, threads).Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Abs(float64(got[i])-want[i]) > 2e-5 {
						t.Fatalf("threads %d row %d: %v, reference %v", threads, i, got[i], want[i])
					}
				}
				if first == nil {
					first = append([]float32(nil), got...)
				} else {
					for i := range got {
						if got[i] != first[i] {
							t.Fatalf("threads %d row %d: %v differs from the 1-thread result %v", threads, i, got[i], first[i])
						}
					}
				}
			}
		})
	}
}

func TestForwardBadBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20}, []int{8, 8}, []int{4, 1})
	run := NewRunner(net, 2)
	check := func(name string, mutate func(b *Batch), want string) {
		t.Helper()
		b := randBatch(rng, net, 9, 2, false)
		mutate(b)
		_, err := run.Forward(b)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, want)
		}
	}
	check("index beyond table", func(b *Batch) {
		b.Indices[1] = append(b.Indices[1][:0], 20)
		b.Offsets[1] = []int32{0, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	}, "emb_l.1: index 20")
	check("negative index", func(b *Batch) {
		b.Indices[0] = append(b.Indices[0][:0], -1)
		b.Offsets[0] = []int32{0, 0, 0, 1, 1, 1, 1, 1, 1, 1}
	}, "index -1")
	check("bad offsets", func(b *Batch) { b.Offsets[0][3] = 1000 }, "bag offsets")
	check("dense width", func(b *Batch) { b.NumDense = 3 }, "the model takes 4")
	check("tables", func(b *Batch) { b.Indices = b.Indices[:1]; b.Offsets = b.Offsets[:1] }, "2 embedding tables")
}

// poolCounter is an fp32 BagKernel that counts the bags it pooled.
type poolCounter struct {
	t    *Table
	mu   sync.Mutex
	bags int
}

func (p *poolCounter) Precision() precision.Precision { return precision.FP32 }
func (p *poolCounter) Bytes() int64                   { return 4 * p.t.Params() }
func (p *poolCounter) Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	p.mu.Lock()
	p.bags += hi - lo
	p.mu.Unlock()
	return kernels.EmbeddingBagF32(p.t.Weight, p.t.Rows, p.t.Dim, indices, offsets, weights, out, ldo, lo, hi)
}

// TestForwardReleasesTables: the runner calls a table's Release once per
// batch, after every bag of the batch was pooled from that table (on
// every thread), and releasing changes no prediction.
func TestForwardReleasesTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20, 30}, []int{8, 8, 8}, []int{4, 1})
	const N = 23
	b := randBatch(rng, net, N, 3, false)
	want, err := NewRunner(net, 3).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	pc := &poolCounter{t: net.Tables[1]}
	net.Tables[1].Kernel = pc
	calls := 0
	net.Tables[1].Release = func() {
		calls++
		if pc.bags != calls*N {
			t.Errorf("Release %d came after %d bags were pooled, want %d", calls, pc.bags, calls*N)
		}
	}
	run := NewRunner(net, 3)
	for range 3 {
		got, err := run.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("row %d: %v, want %v", i, got[i], want[i])
			}
		}
	}
	if calls != 3 {
		t.Errorf("Release called %d times over 3 batches, want 3", calls)
	}
}

// TestForwardEmptyBatch: a batch of no rows gives no predictions, on
// either schedule, rather than a panic.
func TestForwardEmptyBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20}, []int{8, 8}, []int{4, 1})
	b := randBatch(rng, net, 0, 2, false)
	for _, obs := range [][]Observer{nil, {ObserverFunc(func(Event) {})}} {
		for _, th := range []int{1, 2} {
			p, err := NewRunner(net, th, obs...).Forward(b)
			if err != nil || len(p) != 0 {
				t.Fatalf("threads %d, %d observers: %v, %v", th, len(obs), p, err)
			}
		}
	}
}
