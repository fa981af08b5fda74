package search

import (
	"context"
	"testing"
	"time"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// TestMXTableBytes: every MX table rung is priced exactly as the table
// quantize builds counts itself (codes and E8M0 scales per row), for dims
// below, at and across a block of 32.
func TestMXTableBytes(t *testing.T) {
	for _, dim := range []int{3, 16, 32, 45, 128} {
		const rows = 7
		tb := &model.Table{Name: "emb_l.0", Rows: rows, Dim: dim, Weight: make([]float32, rows*dim)}
		for i := range tb.Weight {
			tb.Weight[i] = float32(i%11) - 5
		}
		l := Layer{Name: "emb_l.0", Kind: KindTable, Rows: rows, Dim: dim}
		for _, p := range precision.Tables() {
			if !p.IsMX() {
				continue
			}
			lp, ok := tableRungs[p.String()]
			if !ok || lp.Precision != p {
				t.Fatalf("no table rung %s", p)
			}
			q, err := quantize.QuantizeTable(tb, lp)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := kernels.MXFormatOf(p)
			want := int64(rows * ((dim*f.Bits()+7)/8 + (dim+31)/32))
			if got := l.Bytes(lp); got != q.Bytes() || got != want {
				t.Errorf("%s dim %d: priced %d bytes, the table has %d, want %d", p, dim, got, q.Bytes(), want)
			}
		}
	}
}

// TestMXFCBytes: every MX FC rung (weights only and with MX activations)
// is priced exactly as the layer quantize builds counts itself plus its
// fp32 bias, for input widths below, at and across a block of 32, and the
// default FC ladder starts mxfp4, mxfp6_e2m3, each cheaper than the next.
func TestMXFCBytes(t *testing.T) {
	for _, in := range []int{3, 16, 32, 45, 367} {
		const out = 6
		fc := &model.Linear{Name: "top_l.0", In: in, Out: out, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		for i := range fc.Weight {
			fc.Weight[i] = float32(i%13) - 6
		}
		l := Layer{Name: "top_l.0", Kind: KindFC, In: in, Out: out}
		for _, p := range precision.FC() {
			if !p.IsMX() {
				continue
			}
			f, _ := kernels.MXFormatOf(p)
			want := int64(out*((in*f.Bits()+7)/8+(in+31)/32) + 4*out)
			for _, name := range []string{p.String(), p.String() + "-dynamic"} {
				lp, ok := fcRungs[name]
				if !ok || lp.Precision != p {
					t.Fatalf("no FC rung %s", name)
				}
				q, err := quantize.QuantizeLinear(fc, lp, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := l.Bytes(lp); got != q.Kernel.Bytes()+4*out || got != want || q.Label() != name {
					t.Errorf("%s in %d: priced %d bytes, the layer has %d + bias, want %d (label %s)", name, in, got, q.Kernel.Bytes(), want, q.Label())
				}
			}
		}
		lad, err := DefaultLadders(false).resolve([]Layer{l})
		if err != nil {
			t.Fatal(err)
		}
		if lad[0][0].Name != "mxfp4" || lad[0][1].Name != "mxfp6_e2m3" || lad[0][2].Name != "int8-static" {
			t.Fatalf("FC ladder %v", lad[0])
		}
		if a, b, c := l.Bytes(lad[0][0].Plan), l.Bytes(lad[0][1].Plan), l.Bytes(lad[0][2].Plan); in >= 16 && !(a < b && b < c) {
			t.Errorf("in %d: mxfp4 %d, mxfp6_e2m3 %d, int8-static %d bytes: not increasing", in, a, b, c)
		}
	}
	if k := fcKernel(fcRungs["mxfp4"]); k != "gemm-bf16" {
		t.Errorf("an mxfp4 layer is timed as %s, want gemm-bf16 (the GEMM it runs)", k)
	}
}

// TestDefaultLaddersMX: the default table ladder has mxfp4 below int4 and
// mxfp6_e2m3 between int4 and int8, each rung costing fewer bytes than the
// one above it at dims 16 to 96 (criteo's 16 among them); at 128 mxfp4
// costs int4's bytes and prune drops it; and a search on the ladder takes
// mxfp4 where it is within budget.
func TestDefaultLaddersMX(t *testing.T) {
	want := []string{"mixed-int8-int2@0.01", "mixed-int8-int2@0.02", "mixed-int8-int2@0.04", "mxfp4", "mixed-int8-mxfp4@0.05", "mixed-int8-mxfp4@0.15", "int4", "mxfp6_e2m3", "int8", "fp16", "fp32"}
	for _, int2 := range []bool{false, true} {
		got := DefaultLadders(int2).Table
		w := want
		if int2 {
			w = append([]string{"int2"}, want...)
		}
		if len(got) != len(w) {
			t.Fatalf("table ladder %v, want %v", got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("table ladder %v, want %v", got, w)
			}
		}
	}
	for _, dim := range []int{16, 32, 64, 96} {
		l := Layer{Name: "t", Kind: KindTable, Rows: 1000, Dim: dim}
		lad, err := DefaultLadders(false).resolve([]Layer{l})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(lad[0]); i++ {
			if lo, hi := l.Bytes(lad[0][i-1].Plan), l.Bytes(lad[0][i].Plan); lo >= hi {
				t.Errorf("dim %d: %s costs %d bytes, not less than %s's %d", dim, lad[0][i-1].Name, lo, lad[0][i].Name, hi)
			}
		}
	}
	l := Layer{Name: "t", Kind: KindTable, Rows: 1000, Dim: 128}
	lad, _ := DefaultLadders(false).resolve([]Layer{l})
	if got := prune(lad[0], func(r Rung) float64 { return float64(l.Bytes(r.Plan)) }); got[0].Name != "int4" {
		t.Errorf("dim 128: pruned ladder starts at %s, want int4 (mxfp4 costs as much)", got[0].Name)
	}
	f := newFake(2, 3, 500, 4)
	for _, l := range f.layers {
		f.set(l.Name, map[string]float64{"int8-static": 0.001, "int8-dynamic": 0.001, "fp16": 0.001, "mxfp4": 0.002, "int4": 0.001, "mxfp6_e2m3": 0.001, "int8": 0.001})
	}
	res, err := Run(context.Background(), f, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 200})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Layers {
		if r.Kind == KindTable && r.Rung != "mxfp4" {
			t.Errorf("%s at %s, want mxfp4 (the default ladder's lowest, within budget)", r.Layer, r.Rung)
		}
	}
}

// TestCostMX: the cost model measures the MX bags (through EmbeddingBagMX)
// beside the row-wise ones, keyed by the precision's label, and prices an
// MX rung from them.
func TestCostMX(t *testing.T) {
	l := Layer{Name: "t", Kind: KindTable, Rows: 500, Dim: 40}
	o := CostOptions{Batch: 64, Threads: 1, MinTime: time.Millisecond}
	c, err := measureCost(context.Background(), []Layer{l}, o, ThisMachine())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range precision.Tables() {
		if r := c.Bags[bagKey(p, l.Rows, l.Dim)]; !(r > 0) {
			t.Errorf("%s: no bag figure (%v) under %q", p, r, bagKey(p, l.Rows, l.Dim))
		}
	}
	if c.Bags["mxfp4 500 40"] <= 0 || !c.complete([]Layer{l}) {
		t.Errorf("bags %v", c.Bags)
	}
	if s := c.Seconds(l, tableRungs["mxfp4"]); !(s > 0) || s != float64(o.Batch)/c.Bags["mxfp4 500 40"] {
		t.Errorf("mxfp4 rung predicted %v s", s)
	}
	// A model without the MX figures (cached before them) is incomplete,
	// so it is measured again rather than pricing MX rungs at nothing.
	delete(c.Bags, "mxfp6_e2m3 500 40")
	if c.complete([]Layer{l}) {
		t.Error("a cost model without an MX bag figure is complete")
	}
}
