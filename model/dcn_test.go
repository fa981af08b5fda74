package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
)

// crossNet returns a random cross network of the given rank per layer over
// n-wide feature rows, its layers named as TorchRec names them.
func crossNet(rng *rand.Rand, n int, ranks ...int) *CrossNet {
	var vs, ws []*Linear
	for l, r := range ranks {
		v := &Linear{Name: "inter_arch.crossnet.V_kernels." + itoa(l), In: n, Out: r, Weight: make([]float32, r*n)}
		w := &Linear{Name: "inter_arch.crossnet.W_kernels." + itoa(l), In: r, Out: n, Weight: make([]float32, n*r), Bias: make([]float32, n)}
		for i := range v.Weight {
			v.Weight[i] = (rng.Float32()*2 - 1) / float32(math.Sqrt(float64(n)))
		}
		for i := range w.Weight {
			w.Weight[i] = (rng.Float32()*2 - 1) / float32(math.Sqrt(float64(r)))
		}
		for i := range w.Bias {
			w.Bias[i] = rng.Float32()*0.2 - 0.1
		}
		vs, ws = append(vs, v), append(ws, w)
	}
	return NewCrossNet(vs, ws)
}

// dcnNet is a small DLRM_DCN: 5 dense, bottom 8-4, three 4-wide tables,
// a cross network over the 16-wide feature row, top 6-1.
func dcnNet(rng *rand.Rand, ranks ...int) *Network {
	net := randNet(rng, Cat, 5, []int{8, 4}, []int64{9, 7, 5}, []int{4, 4, 4}, []int{6, 1})
	net.Interaction = crossNet(rng, 16, ranks...)
	return net
}

// refInteract computes the interaction of one row's vectors (bottom output,
// then each pooled table) in float64: the dot in TorchRec's order, or the
// cross network x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l.
func refInteract(inter Interaction, vecs [][]float64) []float64 {
	z := append([]float64(nil), vecs[0]...)
	switch in := inter.(type) {
	case InteractionOp:
		if in != DotTriu {
			panic("refInteract: " + in.String())
		}
		for i := range vecs {
			for j := i + 1; j < len(vecs); j++ {
				var s float64
				for k := range vecs[i] {
					s += vecs[i][k] * vecs[j][k]
				}
				z = append(z, s)
			}
		}
		return z
	case *CrossNet:
		x0 := slices.Concat(vecs...)
		x := slices.Clone(x0)
		for l := range in.V {
			v, w := in.V[l], in.W[l]
			low := make([]float64, v.Out)
			for o := range low {
				for i, xi := range x {
					low[o] += float64(weight32(v)[o*v.In+i]) * xi
				}
			}
			next := make([]float64, len(x))
			for o := range next {
				s := float64(w.Bias[o])
				for i, li := range low {
					s += float64(weight32(w)[o*w.In+i]) * li
				}
				next[o] = x0[o]*s + x[o]
			}
			x = next
		}
		return x
	}
	panic("refInteract: unknown interaction")
}

// weight32 is l's weight as fp32 values (an fp16 layer's widened).
func weight32(l *Linear) []float32 {
	if k, ok := l.Kernel.(*F16FC); ok {
		w := make([]float32, len(k.W))
		for i, h := range k.W {
			w[i] = kernels.F16ToF32(h)
		}
		return w
	}
	return l.Weight
}

// refForwardInter is the float64 forward pass of n on b with refInteract.
func refForwardInter(n *Network, b *Batch) []float64 {
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
	for i := range b.N {
		x := make([]float64, b.NumDense)
		for j := range x {
			x[j] = float64(b.Dense[i*b.NumDense+j])
		}
		vecs := [][]float64{mlp(n.Bottom, x)}
		for t, tb := range n.Tables {
			v := make([]float64, tb.Dim)
			for p := b.Offsets[t][i]; p < b.Offsets[t][i+1]; p++ {
				for j := range v {
					v[j] += float64(tb.Weight[b.Indices[t][p]*int64(tb.Dim)+int64(j)])
				}
			}
			vecs = append(vecs, v)
		}
		out[i] = mlp(n.Top, refInteract(n.Interaction, vecs))[0]
	}
	return out
}

// runAll runs net on b with 1 and 3 threads, with and without an observer
// (layer by layer, and streamed in chunks), and checks each against want.
func runAll(t *testing.T, net *Network, b *Batch, want []float64, tol float64) {
	t.Helper()
	for _, threads := range []int{1, 3} {
		for _, observed := range []bool{false, true} {
			var obs []Observer
			if observed {
				obs = append(obs, ObserverFunc(func(Event) {}))
			}
			got, err := NewRunner(net, threads, obs...).Forward(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := math.Abs(float64(got[i]) - want[i]); d > tol || math.IsNaN(d) {
					t.Fatalf("threads %d, observed %v: pred[%d] = %v, float64 reference %v", threads, observed, i, got[i], want[i])
				}
			}
		}
	}
}

func TestCrossNetForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 2))
	net := dcnNet(rng, 3, 5, 2)
	if err := net.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := net.InputWidth(); got != 16 {
		t.Fatalf("InputWidth %d, want 16", got)
	}
	// 300 rows: several stream chunks and thread splits.
	b := randBatch(rng, net, 300, 3, false)
	runAll(t, net, b, refForwardInter(net, b), 2e-6)

	// The observer sees each cross layer once per batch, V then W, with
	// the shapes of x_l -> V_l x_l -> W_l(·) + b_l.
	var seen []string
	obs := ObserverFunc(func(ev Event) {
		if strings.HasPrefix(ev.Layer, "inter_arch.") {
			seen = append(seen, ev.Layer)
			if ev.In.Rows != b.N || ev.Out.Rows != b.N {
				t.Errorf("%s: %d and %d rows, want %d", ev.Layer, ev.In.Rows, ev.Out.Rows, b.N)
			}
		}
	})
	if _, err := NewRunner(net, 2, obs).Forward(b); err != nil {
		t.Fatal(err)
	}
	want := []string{"inter_arch.crossnet.V_kernels.0", "inter_arch.crossnet.W_kernels.0", "inter_arch.crossnet.V_kernels.1", "inter_arch.crossnet.W_kernels.1", "inter_arch.crossnet.V_kernels.2", "inter_arch.crossnet.W_kernels.2"}
	if !slices.Equal(seen, want) {
		t.Errorf("observed %v, want %v", seen, want)
	}
}

// TestCrossNetLayers: the cross layers are ordinary FC layers of the
// network, between the tables and the top MLP, and Map quantizes them.
func TestCrossNetLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	net := dcnNet(rng, 4, 4)
	names := net.LayerNames()
	want := []string{"bot_l.0", "bot_l.2", "emb_l.0", "emb_l.1", "emb_l.2",
		"inter_arch.crossnet.V_kernels.0", "inter_arch.crossnet.W_kernels.0",
		"inter_arch.crossnet.V_kernels.1", "inter_arch.crossnet.W_kernels.1",
		"top_l.0", "top_l.2"}
	if !slices.Equal(names, want) {
		t.Fatalf("LayerNames %v, want %v", names, want)
	}
	var fcs []string
	for l := range net.Linears() {
		fcs = append(fcs, l.Name)
	}
	if want := slices.Concat(want[:2], want[5:]); !slices.Equal(fcs, want) {
		t.Fatalf("Linears %v, want %v", fcs, want)
	}
	// Params and Bytes count V without a bias, W with one.
	var p int64
	for _, l := range net.Interaction.Layers() {
		p += l.Params()
	}
	if want := int64(2 * (16*4 + 4*16 + 16)); p != want {
		t.Errorf("cross layers have %d params, want %d", p, want)
	}
	if l, ok := net.Layer("inter_arch.crossnet.W_kernels.1"); !ok || l.FC == nil || l.FC.Out != 16 {
		t.Errorf("Layer(W_kernels.1) = %+v, %v", l, ok)
	}

	// fp16 cross layers through Map: the copy runs them on F16FC, the
	// original keeps its fp32 layers, and predictions match a float64
	// reference on the fp16 weights (and stay close to fp32's).
	q, err := net.Map(func(l *Linear) (*Linear, error) {
		if !strings.HasPrefix(l.Name, "inter_arch.") {
			return l, nil
		}
		k := &F16FC{In: l.In, Out: l.Out, W: make([]uint16, len(l.Weight))}
		for i, v := range l.Weight {
			k.W[i] = kernels.F32ToF16(v)
		}
		return &Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Bias: l.Bias, Kernel: k}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range q.Interaction.Layers() {
		if l.Precision() != precision.FP16 {
			t.Errorf("%s: %s after Map, want fp16", l.Name, l.Precision())
		}
	}
	for _, l := range net.Interaction.Layers() {
		if l.Precision() != precision.FP32 {
			t.Errorf("original %s became %s", l.Name, l.Precision())
		}
	}
	b := randBatch(rng, net, 200, 2, false)
	runAll(t, q, b, refForwardInter(q, b), 2e-6)
	fp32, err := NewRunner(net, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	fp32 = slices.Clone(fp32)
	fp16, err := NewRunner(q, 1).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range fp32 {
		worst = max(worst, math.Abs(float64(fp16[i]-fp32[i])))
	}
	if worst > 1e-3 || worst == 0 {
		t.Errorf("fp16 cross layers move predictions by up to %g, want (0, 1e-3]", worst)
	}

	// Replaying from fp32 activations with one cross layer lowered gives
	// Forward's predictions bit for bit.
	rec := &Recorder{}
	if _, err := NewRunner(net, 2, rec).Forward(b); err != nil {
		t.Fatal(err)
	}
	one, _ := net.WithLayer(Layer{FC: q.Interaction.Layers()[3], TableIndex: -1})
	direct, err := NewRunner(one, 2).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	direct = slices.Clone(direct)
	replayed, err := NewRunner(one, 2).Replay(b, rec.Batches[b])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(direct, replayed) {
		t.Error("Replay with W_kernels.1 in fp16 differs from Forward")
	}
}

func TestCrossNetValidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	cases := []struct {
		name  string
		edit  func(n *Network)
		wants []string
	}{
		{"table width", func(n *Network) {
			n.Tables[1] = &Table{Name: "emb_l.1", Rows: 2, Dim: 3, Weight: make([]float32, 6)}
		}, []string{"emb_l.1", "width 3"}},
		{"V input", func(n *Network) {
			n.Interaction = crossNet(rng, 12, 2)
		}, []string{"V_kernels.0", "12 inputs", "16 wide"}},
		{"V bias", func(n *Network) {
			c := n.Interaction.(*CrossNet)
			c.V[0].Bias = make([]float32, c.V[0].Out)
		}, []string{"V_kernels.0", "bias"}},
		{"W bias", func(n *Network) {
			c := n.Interaction.(*CrossNet)
			c.W[0].Bias = c.W[0].Bias[:3]
		}, []string{"W_kernels.0", "bias"}},
		{"W rank", func(n *Network) {
			c := n.Interaction.(*CrossNet)
			c.W[0] = crossNet(rng, 16, 5).W[0]
		}, []string{"W_kernels.0", "5 inputs", "V_kernels.0"}},
		{"activation", func(n *Network) {
			n.Interaction.(*CrossNet).W[0].Act = ActReLU
		}, []string{"W_kernels.0", "activation"}},
	}
	for _, c := range cases {
		net := dcnNet(rng, 2)
		c.edit(net)
		err := net.Validate()
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

// TestDotTriu: TorchRec's dot interaction, row by row and in chunks, equals
// the float64 products in torch.triu_indices order.
func TestDotTriu(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	net := randNet(rng, DotTriu, 3, []int{7, 5}, []int64{11, 6, 9, 4}, []int{5, 5, 5, 5}, []int{8, 1})
	if err := net.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := net.InputWidth(), 5+10; got != want {
		t.Fatalf("InputWidth %d, want %d", got, want)
	}
	b := randBatch(rng, net, 250, 3, true)
	b.Weights = nil
	runAll(t, net, b, refForwardInter(net, b), 2e-6)

	// The permutation: pair (i, j), i < j, of 5 features.
	perm := triuFromTril(5)
	var want []int32
	for i := range 5 {
		for j := i + 1; j < 5; j++ {
			want = append(want, int32(j*(j-1)/2+i))
		}
	}
	if !slices.Equal(perm, want) || perm[0] != 0 || perm[1] != 1 || perm[2] != 3 {
		t.Errorf("triuFromTril(5) = %v", perm)
	}
	if DotTriu.String() != "dot-triu" || DotTriu.Width(16, make([]int, 26)) != 367 {
		t.Errorf("DotTriu: %s, width %d", DotTriu, DotTriu.Width(16, make([]int, 26)))
	}
}
