package model

import (
	"math/rand/v2"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// lowered returns a copy of net in which the named layers run on fp16
// kernels (tables as fp16 BagTables): a stand-in for any quantized layer.
func lowered(t *testing.T, net *Network, names map[string]bool) *Network {
	out, err := net.Map(func(l *Linear) (*Linear, error) {
		if !names[l.Name] {
			return l, nil
		}
		h := make([]uint16, len(l.Weight))
		kernels.F32ToF16Slice(h, l.Weight)
		return &Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Weight: l.Weight, Bias: l.Bias, Kernel: &F16FC{In: l.In, Out: l.Out, W: h}}, nil
	}, func(tb *Table) (*Table, error) {
		if !names[tb.Name] {
			return tb, nil
		}
		data := make([]byte, tb.Rows*int64(2*tb.Dim))
		kernels.QuantizeRowsF16(tb.Weight, int(tb.Rows), tb.Dim, data)
		bt, err := kernels.NewBagTable(kernels.TableF16, tb.Rows, tb.Dim, data)
		if err != nil {
			return nil, err
		}
		return &Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Weight: tb.Weight, Kernel: bt}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplayEqualsForward: for every single layer lowered, and a few sets,
// replaying from the fp32 recording gives Forward's predictions bit for bit.
func TestReplayEqualsForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, op := range []InteractionOp{Dot, DotSelf, Cat} {
		net := randNet(rng, op, 5, []int{16, 8}, []int64{30, 40, 7}, []int{8, 8, 8}, []int{12, 6, 1})
		b := randBatch(rng, net, 29, 3, true)
		rec := &Recorder{}
		if _, err := NewRunner(net, 2, rec).Forward(b); err != nil {
			t.Fatal(err)
		}
		acts := rec.Batches[b]
		if acts == nil || len(acts.In) != 5 || len(acts.Feat) == 0 {
			t.Fatalf("%v: recorded %+v", op, acts)
		}
		sets := []map[string]bool{{}}
		for _, name := range net.LayerNames() {
			sets = append(sets, map[string]bool{name: true})
		}
		sets = append(sets, map[string]bool{"bot_l.2": true, "top_l.2": true}, map[string]bool{"emb_l.1": true, "top_l.4": true})
		for _, set := range sets {
			low := lowered(t, net, set)
			want, err := NewRunner(low, 2).Forward(b)
			if err != nil {
				t.Fatal(err)
			}
			want = append([]float32(nil), want...)
			got, err := NewRunner(low, 3).Replay(b, acts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%v, lowered %v: row %d replays to %v, Forward gives %v", op, set, i, got[i], want[i])
				}
			}
		}
	}
}
