package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// withKernels returns a copy of net whose FC layers run on the kernel mk
// makes (nil keeps fp32) and whose tables are 8-bit row-wise.
func withKernels(t *testing.T, net *Network, mk func(l *Linear) FCKernel) *Network {
	out := *net
	out.Bottom, out.Top, out.Tables = nil, nil, nil
	fc := func(l *Linear) *Linear {
		c := &Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Weight: l.Weight, Bias: l.Bias}
		c.Kernel = mk(l)
		return c
	}
	for _, l := range net.Bottom {
		out.Bottom = append(out.Bottom, fc(l))
	}
	for _, l := range net.Top {
		out.Top = append(out.Top, fc(l))
	}
	for _, tb := range net.Tables {
		f := kernels.TableQ8
		data := make([]byte, tb.Rows*int64(f.RowBytes(tb.Dim)))
		kernels.QuantizeRows8(tb.Weight, int(tb.Rows), tb.Dim, data)
		bt, err := kernels.NewBagTable(f, tb.Rows, tb.Dim, data)
		if err != nil {
			t.Fatal(err)
		}
		out.Tables = append(out.Tables, &Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Kernel: bt})
	}
	return &out
}

func int8Kernel(static, perRow bool) func(l *Linear) FCKernel {
	return func(l *Linear) FCKernel {
		k := &Int8FC{In: l.In, Out: l.Out, Static: static, PerRow: perRow}
		k.QWeight, k.WScale = kernels.QuantizeWeightsI8(l.Weight, l.Out, l.In, true)
		k.InScale, k.InZero = kernels.ChooseQParamsU8(-1, 4, false)
		return k
	}
}

// TestStreamEqualsLayers: running a batch in chunks of rows through the
// whole network (no observers) gives the layer-by-layer schedule's
// predictions (an observer forces it) bit for bit, for every row-wise
// kernel, batch sizes around the chunk size, and any thread count.
func TestStreamEqualsLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	base := randNet(rng, Dot, 13, []int{64, 16}, []int64{500, 40, 3000}, []int{16, 16, 16}, []int{48, 24, 1})
	f16 := func(l *Linear) FCKernel {
		h := make([]uint16, len(l.Weight))
		kernels.F32ToF16Slice(h, l.Weight)
		return &F16FC{In: l.In, Out: l.Out, W: h}
	}
	bf16 := func(l *Linear) FCKernel {
		h := make([]uint16, len(l.Weight))
		kernels.F32ToBF16Slice(h, l.Weight)
		return &BF16FC{In: l.In, Out: l.Out, W: h}
	}
	nets := []struct {
		name string
		net  *Network
	}{
		{"fp32", base},
		{"fp32 cat", randNet(rng, Cat, 3, []int{8}, []int64{11, 13}, []int{6, 2}, []int{5, 1})},
		{"fp32 dot-self", randNet(rng, DotSelf, 5, []int{8}, []int64{50, 20}, []int{8, 8}, []int{17, 1})},
		{"fp16", withKernels(t, base, f16)},
		{"bf16", withKernels(t, base, bf16)},
		{"int8 static", withKernels(t, base, int8Kernel(true, false))},
		{"int8 dynamic per row", withKernels(t, base, int8Kernel(false, true))},
	}
	noop := ObserverFunc(func(Event) {})
	for _, c := range nets {
		for _, rows := range []int{1, streamRows - 1, streamRows, 2*streamRows + 37} {
			for _, weighted := range []bool{false, true} {
				b := randBatch(rng, c.net, rows, 3, weighted)
				layered := NewRunner(c.net, 2, noop)
				if layered.streams() {
					t.Fatal("a runner with an observer streams")
				}
				want, err := layered.Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				for _, threads := range []int{1, 2, 3} {
					run := NewRunner(c.net, threads)
					if !run.streams() {
						t.Fatalf("%s: does not stream", c.name)
					}
					got, err := run.Forward(b)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s, %d rows, %d threads: row %d streams to %v, layer by layer %v", c.name, rows, threads, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestStreamKeepsBatchWideLayers: a per-tensor dynamic layer takes its
// scale from the whole batch, so such a network is run layer by layer.
func TestStreamKeepsBatchWideLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20}, []int{8, 8}, []int{4, 1})
	if !NewRunner(net, 1).streams() {
		t.Fatal("an fp32 network does not stream")
	}
	low := withKernels(t, net, func(l *Linear) FCKernel {
		if l.Name == "top_l.0" {
			return int8Kernel(false, false)(l)
		}
		return nil
	})
	if NewRunner(low, 1).streams() {
		t.Fatal("a network with a per-tensor dynamic layer streams")
	}
	sim := withKernels(t, net, func(l *Linear) FCKernel {
		return &FakeQuantFC{Q: int8Kernel(false, false)(l).(*Int8FC)}
	})
	if NewRunner(sim, 1).streams() {
		t.Fatal("a simulated per-tensor dynamic network streams")
	}
}

// TestStreamBadIndex: an index out of range in a later chunk, or in
// several chunks and tables, is reported as the layer-by-layer schedule
// reports it (first table, then first position).
func TestStreamBadIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20, 30}, []int{8, 8, 8}, []int{4, 1})
	rows := 3*streamRows + 5
	set := func(b *Batch, table, row int, v int64) {
		p := b.Offsets[table][row]
		if b.Offsets[table][row+1] == p {
			t.Fatalf("bag %d of table %d is empty", row, table)
		}
		b.Indices[table][p] = v
	}
	for _, tc := range []struct {
		name string
		bad  [][3]int64 // table, row, index
	}{
		{"late chunk", [][3]int64{{1, int64(2*streamRows + 3), 99}}},
		{"first position", [][3]int64{{0, 0, -1}}},
		{"later table earlier chunk", [][3]int64{{2, 1, -5}, {1, int64(3 * streamRows), 20}}},
		{"same table two chunks", [][3]int64{{0, int64(streamRows + 2), 10}, {0, int64(3*streamRows + 1), 11}}},
	} {
		b := randBatch(rng, net, rows, 1, false)
		for i := range b.Offsets {
			// one index per bag, so every row can carry a bad one
			b.Indices[i] = b.Indices[i][:0]
			for r := range rows {
				b.Indices[i] = append(b.Indices[i], int64(r%int(net.Tables[i].Rows)))
				b.Offsets[i][r+1] = int32(r + 1)
			}
		}
		for _, bad := range tc.bad {
			set(b, int(bad[0]), int(bad[1]), bad[2])
		}
		_, werr := NewRunner(net, 2, ObserverFunc(func(Event) {})).Forward(b)
		if werr == nil {
			t.Fatalf("%s: layer by layer accepted a bad index", tc.name)
		}
		for _, threads := range []int{1, 3} {
			_, err := NewRunner(net, threads).Forward(b)
			if err == nil || err.Error() != werr.Error() {
				t.Errorf("%s, %d threads: error %v, want %v", tc.name, threads, err, werr)
			}
		}
		if want := fmt.Sprintf("emb_l.%d: index %d", tc.bad[0][0], tc.bad[0][2]); !strings.Contains(werr.Error(), want) && tc.name == "late chunk" {
			t.Errorf("%s: %v, want it to mention %q", tc.name, werr, want)
		}
	}
}

// TestBatchWideStreamsFeatures: a network with per-tensor dynamic layers
// runs its MLPs layer by layer but builds its feature rows chunk by chunk;
// the predictions are the layer-by-layer schedule's bit for bit, and a bad
// index is reported the same way.
func TestBatchWideStreamsFeatures(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, op := range []InteractionOp{Dot, DotSelf, Cat} {
		base := randNet(rng, op, 13, []int{32, 8}, []int64{500, 40, 3000}, []int{8, 8, 8}, []int{24, 1})
		if op == Cat {
			base = randNet(rng, op, 3, []int{8}, []int64{11, 13}, []int{6, 2}, []int{5, 1})
		}
		nets := map[string]*Network{
			"per-tensor": withKernels(t, base, int8Kernel(false, false)),
			"mixed": withKernels(t, base, func(l *Linear) FCKernel {
				if l.Name == "top_l.0" {
					return int8Kernel(false, false)(l)
				}
				return int8Kernel(false, true)(l)
			}),
		}
		for name, net := range nets {
			for _, rows := range []int{1, streamRows + 1, 2*streamRows + 37} {
				b := randBatch(rng, net, rows, 3, true)
				want, err := NewRunner(net, 2, ObserverFunc(func(Event) {})).Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				want = append([]float32(nil), want...)
				for _, threads := range []int{1, 3} {
					run := NewRunner(net, threads)
					if run.streams() || !run.streamsFeatures() {
						t.Fatalf("%v %s: streams %v, streams features %v", op, name, run.streams(), run.streamsFeatures())
					}
					got, err := run.Forward(b)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%v %s, %d rows, %d threads: row %d is %v, layer by layer %v", op, name, rows, threads, i, got[i], want[i])
						}
					}
				}
				// A bad index in a late chunk.
				p := b.Offsets[1][rows-1]
				if b.Offsets[1][rows] > p {
					saved := b.Indices[1][p]
					b.Indices[1][p] = 1 << 40
					_, werr := NewRunner(net, 2, ObserverFunc(func(Event) {})).Forward(b)
					_, err := NewRunner(net, 3).Forward(b)
					if werr == nil || err == nil || err.Error() != werr.Error() {
						t.Errorf("%v %s: bad index gives %v, layer by layer %v", op, name, err, werr)
					}
					b.Indices[1][p] = saved
				}
			}
		}
	}
}

// TestStreamNeedsSmallMLP: an MLP whose weights exceed
// streamMaxWeightBytes runs layer by layer, its feature rows streamed, with
// the same predictions.
func TestStreamNeedsSmallMLP(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	net := randNet(rng, Dot, 4, []int{8}, []int64{10, 20}, []int{8, 8}, []int{1100, 1000, 1})
	run := NewRunner(net, 2)
	if run.streams() || !run.streamsFeatures() {
		t.Fatalf("an MLP of %d weights: streams %v, streams features %v", 17*1100+1100*1000+1000, run.streams(), run.streamsFeatures())
	}
	small := randNet(rng, Dot, 4, []int{8}, []int64{10, 20}, []int{8, 8}, []int{16, 1})
	if !NewRunner(small, 2).streams() {
		t.Fatal("a small MLP does not stream")
	}
	b := randBatch(rng, net, streamRows+7, 2, false)
	want, err := NewRunner(net, 2, ObserverFunc(func(Event) {})).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	got, err := run.Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: %v, layer by layer %v", i, got[i], want[i])
		}
	}
}
