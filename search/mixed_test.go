package search

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// accessSource is a quantize.HotRowSource (and RangeSource) listing some
// tables' rows by descending count.
type accessSource struct {
	rows map[string]int64
	hot  map[string][]int64
}

func (a accessSource) HotRows(table string, share float64) ([]int64, error) {
	l, ok := a.hot[table]
	if !ok {
		return nil, fmt.Errorf("no counts for %s", table)
	}
	return l[:quantize.HotCount(share, a.rows[table], int64(len(l)))], nil
}

func (a accessSource) ListedRows(table string) (int64, bool) {
	l, ok := a.hot[table]
	return int64(len(l)), ok
}

func (a accessSource) Range(layer, method string) (float32, float32, error) {
	return 0, 0, fmt.Errorf("no ranges for %s", layer)
}

// mixedNet is a small random fp32 DLRM with tables of 300, 90 and 40
// rows of dim 16, a batch of rows for it, and access counts for the first
// two tables (the first lists 200 of its 300 rows).
func mixedNet(t *testing.T) (*model.Network, []*model.Batch, accessSource) {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 9))
	fc := func(name string, in, out int, act model.Activation) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		for i := range l.Weight {
			l.Weight[i] = (rng.Float32() - 0.5) / 2
		}
		return l
	}
	const d, dense, n = 16, 3, 256
	net := &model.Network{NumDense: dense, Interaction: model.Dot,
		Bottom: []*model.Linear{fc("bot_l.0", dense, 8, model.ActReLU), fc("bot_l.2", 8, d, model.ActReLU)}}
	src := accessSource{rows: map[string]int64{}, hot: map[string][]int64{}}
	for i, rows := range []int64{300, 90, 40} {
		tb := &model.Table{Name: fmt.Sprintf("emb_l.%d", i), Rows: rows, Dim: d, Weight: make([]float32, rows*d)}
		for j := range tb.Weight {
			tb.Weight[j] = float32(rng.NormFloat64())
		}
		net.Tables = append(net.Tables, tb)
		src.rows[tb.Name] = rows
		if i < 2 {
			perm := rng.Perm(int(rows))
			listed := min(rows, 200)
			for _, r := range perm[:listed] {
				src.hot[tb.Name] = append(src.hot[tb.Name], int64(r))
			}
		}
	}
	w := net.InputWidth()
	net.Top = []*model.Linear{fc("top_l.0", w, 6, model.ActReLU), fc("top_l.2", 6, 1, model.ActSigmoid)}
	if err := net.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &model.Batch{N: n, NumDense: dense, Dense: make([]float32, n*dense), Labels: make([]float32, n)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32() * 3
	}
	for i := range b.Labels {
		b.Labels[i] = float32(rng.IntN(2))
	}
	for _, tb := range net.Tables {
		idx, off := make([]int64, n), make([]int32, n+1)
		for i := range idx {
			idx[i], off[i+1] = int64(rng.IntN(int(tb.Rows))), int32(i+1)
		}
		b.Indices, b.Offsets = append(b.Indices, idx), append(b.Offsets, off)
	}
	return net, []*model.Batch{b}, src
}

// TestMixedRungNames: mixed rungs read and write as mixed-HOT-COLD@SHARE
// (canonical share spelling), and bad names are refused saying why, an
// unknown precision as the *precision.UnknownError.
func TestMixedRungNames(t *testing.T) {
	l := Layer{Name: "emb0", Kind: KindTable, Rows: 100, Dim: 16, AccessRows: 50}
	for _, c := range []struct{ name, canon string }{
		{"mixed-int8-int2@0.05", "mixed-int8-int2@0.05"},
		{"mixed-int8-mxfp4@0.050", "mixed-int8-mxfp4@0.05"},
		{"mixed-fp16-mxfp6_e2m3@1", "mixed-fp16-mxfp6_e2m3@1"},
	} {
		lp, err := parseMixedRung(l, c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := RungName(KindTable, lp); got != c.canon {
			t.Errorf("%s reads as %+v, named %s; want %s", c.name, lp, got, c.canon)
		}
	}
	for _, c := range []struct{ name, want, unknown string }{
		{"mixed-int8-int9@0.05", `unknown precision "int9"`, "int9"},
		{"mixed-int8-int2", "no hot and cold precisions and share", ""},
		{"mixed-int8@0.05", "no hot and cold precisions and share", ""},
		{"mixed-int8-int2@lots", `share "lots" is not a number`, ""},
		{"mixed-int8-int2@0", "above 0 and at most 1, not 0", ""},
		{"mixed-int8-int8@0.1", "both int8", ""},
		{"mixed-int8-mixed@0.1", "cold_precision must be one of", ""},
	} {
		_, err := parseMixedRung(l, c.name)
		var u *precision.UnknownError
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "mixed-HOT-COLD@SHARE") || errors.As(err, &u) != (c.unknown != "") {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
	// Through --ladder: "mixed" alone is not a rung, and the rung list
	// names the mixed syntax.
	ld, err := ParseLadders("table=mixed,fp32", DefaultLadders(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ld.resolve([]Layer{l}); err == nil || !strings.Contains(err.Error(), `unknown rung "mixed"`) || !strings.Contains(err.Error(), mixedSyntax) {
		t.Errorf("mixed alone: %v", err)
	}
}

// TestMixedRungsNeedCounts: a table gets mixed rungs (default or named in
// --ladder) only when the ranges have access counts for it; they are
// skipped otherwise, and the rest of its ladder is unchanged.
func TestMixedRungsNeedCounts(t *testing.T) {
	with := Layer{Name: "a", Kind: KindTable, Rows: 1000, Dim: 16, AccessRows: 400}
	without := Layer{Name: "b", Kind: KindTable, Rows: 1000, Dim: 16}
	lad, err := DefaultLadders(false).resolve([]Layer{with, without})
	if err != nil {
		t.Fatal(err)
	}
	names := func(rs []Rung) string {
		var n []string
		for _, r := range rs {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(lad[0]); got != "mixed-int8-int2@0.01,mixed-int8-int2@0.02,mixed-int8-int2@0.04,mxfp4,mixed-int8-mxfp4@0.05,mixed-int8-mxfp4@0.15,int4,mxfp6_e2m3,int8,fp16,fp32" {
		t.Errorf("with counts: %s", got)
	}
	if got := names(lad[1]); got != "mxfp4,int4,mxfp6_e2m3,int8,fp16,fp32" {
		t.Errorf("without counts: %s", got)
	}
	ld, _ := ParseLadders("table=mixed-int8-int4@0.5,int8", DefaultLadders(false))
	lad, err = ld.resolve([]Layer{with, without})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := names(lad[0]), names(lad[1]); a != "mixed-int8-int4@0.5,int8,fp32" || b != "int8,fp32" {
		t.Errorf("--ladder: %s and %s", a, b)
	}
}

// TestMixedLadderBytes: with access counts for every row, the default
// table ladder's rungs cost strictly more bytes from each to the next at
// criteo's dim 16, so prune keeps them all; at dim 32 and 128 prune drops
// the mxfp4-cold rungs, which cost more than int4 there.
func TestMixedLadderBytes(t *testing.T) {
	for _, c := range []struct {
		dim  int
		drop []string
	}{{16, nil}, {32, []string{"mixed-int8-mxfp4@0.15"}}, {128, []string{"mxfp4", "mixed-int8-mxfp4@0.05", "mixed-int8-mxfp4@0.15"}}} {
		l := Layer{Name: "t", Kind: KindTable, Rows: 10000, Dim: c.dim, AccessRows: 10000}
		lad, err := DefaultLadders(false).resolve([]Layer{l})
		if err != nil {
			t.Fatal(err)
		}
		kept := prune(lad[0], func(r Rung) float64 { return float64(l.Bytes(r.Plan)) })
		keptName := map[string]bool{}
		for i, r := range kept {
			keptName[r.Name] = true
			if i > 0 && l.Bytes(kept[i-1].Plan) >= l.Bytes(r.Plan) {
				t.Errorf("dim %d: %s costs %d bytes, %s %d", c.dim, kept[i-1].Name, l.Bytes(kept[i-1].Plan), r.Name, l.Bytes(r.Plan))
			}
		}
		for _, r := range lad[0] {
			dropped := false
			for _, d := range c.drop {
				dropped = dropped || d == r.Name
			}
			if keptName[r.Name] == dropped {
				t.Errorf("dim %d: %s kept %v, want %v", c.dim, r.Name, keptName[r.Name], !dropped)
			}
		}
	}
	// At dim 16 the int8/int2 rungs cost 8 + 20h bytes a row: 8.2, 8.4, 8.8.
	l := Layer{Name: "t", Kind: KindTable, Rows: 10000, Dim: 16, AccessRows: 10000}
	for h, want := range map[float64]int64{0.01: 82000, 0.02: 84000, 0.04: 88000} {
		if got := l.Bytes(quantize.MixedPlan(precision.Int8, precision.Int2, h)); got != want {
			t.Errorf("int8/int2 at %v: %d bytes, want %d", h, got, want)
		}
	}
}

// TestMixedBytesExact: the search prices a mixed rung at exactly the bytes
// of the network the evaluator builds, rows never counted staying cold,
// and a table without counts gets none.
func TestMixedBytesExact(t *testing.T) {
	net, batches, src := mixedNet(t)
	ev, err := NewNetEvaluator(net, src, batches, 1)
	if err != nil {
		t.Fatal(err)
	}
	layers := map[string]Layer{}
	for _, l := range ev.Layers() {
		layers[l.Name] = l
	}
	if layers["emb_l.0"].AccessRows != 200 || layers["emb_l.1"].AccessRows != 90 || layers["emb_l.2"].AccessRows != 0 {
		t.Fatalf("access rows %d %d %d", layers["emb_l.0"].AccessRows, layers["emb_l.1"].AccessRows, layers["emb_l.2"].AccessRows)
	}
	for _, lp := range []quantize.LayerPlan{
		quantize.MixedPlan(precision.Int8, precision.Int2, 0.05),
		quantize.MixedPlan(precision.Int8, precision.MXFP4, 0.9), // more than emb_l.0's 200 listed rows
		quantize.MixedPlan(precision.MXFP6E2M3, precision.FP16, 1),
	} {
		plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{"emb_l.0": lp, "emb_l.1": lp}}
		out, err := ev.Evaluate(context.Background(), plan)
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, l := range ev.Layers() {
			want += l.Bytes(plan.Layer(l.Name))
		}
		if out.Bytes != want {
			t.Errorf("%s: network %d bytes, priced %d", RungName(KindTable, lp), out.Bytes, want)
		}
	}
	plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{"emb_l.2": quantize.MixedPlan(precision.Int8, precision.Int2, 0.05)}}
	if _, err := ev.Evaluate(context.Background(), plan); err == nil || !strings.Contains(err.Error(), "no counts for emb_l.2") {
		t.Errorf("a table without counts: %v", err)
	}
}

// TestMixedSearch: a search on the default ladders takes a table's lowest
// mixed rung when it is within budget, and climbs through the mixed rungs
// to the first one that is; a table without counts never gets one.
func TestMixedSearch(t *testing.T) {
	f := newFake(1, 3, 500, 4)
	f.layers[1].AccessRows = 1000 // emb0
	f.layers[2].AccessRows = 2000 // emb1
	for _, l := range f.layers {
		f.set(l.Name, map[string]float64{"int8-static": 0.001, "int8-dynamic": 0.001, "fp16": 0.001, "mxfp4": 0.002, "int4": 0.001, "mxfp6_e2m3": 0.001, "int8": 0.001,
			"mixed-int8-int2@0.01": 0.002, "mixed-int8-int2@0.02": 0.002, "mixed-int8-int2@0.04": 0.002, "mixed-int8-mxfp4@0.05": 0.002, "mixed-int8-mxfp4@0.15": 0.002})
	}
	// emb1 breaks the budget below mixed-int8-mxfp4@0.05.
	f.dne["emb1"]["mixed-int8-int2@0.01"] = 1
	f.dne["emb1"]["mixed-int8-int2@0.02"] = 1
	f.dne["emb1"]["mixed-int8-int2@0.04"] = 1
	f.dne["emb1"]["mxfp4"] = 1
	res, err := Run(context.Background(), f, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 200})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"emb0": "mixed-int8-int2@0.01", "emb1": "mixed-int8-mxfp4@0.05", "emb2": "mxfp4"}
	for _, r := range res.Layers {
		if w, ok := want[r.Layer]; ok && r.Rung != w {
			t.Errorf("%s at %s, want %s", r.Layer, r.Rung, w)
		}
		if r.Layer == "emb0" && (r.Precision != precision.Mixed || r.Bytes != f.layers[1].Bytes(quantize.MixedPlan(precision.Int8, precision.Int2, 0.01))) {
			t.Errorf("emb0: %+v", r)
		}
	}
	if !res.Attained {
		t.Error("budget not attained")
	}
	// The plan names the rung's parts and share, as rq quantize reads it.
	if lp := res.Plan.Layers["emb1"]; lp != quantize.MixedPlan(precision.Int8, precision.MXFP4, 0.05) {
		t.Errorf("plan for emb1: %+v", lp)
	}
}

// TestCostMixed: the cost model times the mixed bag per table shape (key
// "mixed ROWS DIM") and prices every mixed rung from it.
func TestCostMixed(t *testing.T) {
	l := Layer{Name: "t", Kind: KindTable, Rows: 500, Dim: 16, AccessRows: 300}
	o := CostOptions{Batch: 64, Threads: 1, MinTime: time.Millisecond}
	c, err := measureCost(context.Background(), []Layer{l}, o, ThisMachine())
	if err != nil {
		t.Fatal(err)
	}
	r := c.Bags["mixed 500 16"]
	if !(r > 0) || !c.complete([]Layer{l}) {
		t.Fatalf("mixed figure %v; bags %v", r, c.Bags)
	}
	for _, lp := range []quantize.LayerPlan{quantize.MixedPlan(precision.Int8, precision.Int2, 0.01), quantize.MixedPlan(precision.FP16, precision.MXFP4, 0.5)} {
		if s := c.Seconds(l, lp); s != float64(o.Batch)/r {
			t.Errorf("%s: %v s, want %v", RungName(KindTable, lp), s, float64(o.Batch)/r)
		}
	}
	delete(c.Bags, "mixed 500 16")
	if c.complete([]Layer{l}) {
		t.Error("a cost model without the mixed figure is complete")
	}
}
