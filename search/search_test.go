package search

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

var noAUC = math.NaN()

// issue5Ladders are the default ladders before the MX rungs: the fakes
// below give damage to those rungs by name, so the tests of the search's
// steps run on them (TestDefaultLaddersMX covers the MX rungs).
var issue5Ladders = Ladders{
	FC:    []string{"int8-static", "int8-dynamic", "fp16", "fp32"},
	Table: []string{"int4", "int8", "fp16", "fp32"},
}

func run(t *testing.T, f *fakeEval, o Options) *Result {
	t.Helper()
	if o.Ladders.FC == nil && o.Ladders.Table == nil && o.Ladders.PerLayer == nil {
		o.Ladders = issue5Ladders
	}
	if o.Resamples == 0 {
		o.Resamples = 200 // noise-free fakes need few; keeps the tests quick
	}
	res, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func rungOf(res *Result, layer string) string {
	for _, r := range res.Layers {
		if r.Layer == layer {
			return r.Rung
		}
	}
	return ""
}

// uniform gives every layer the same small damage at every rung below fp32.
func uniform(f *fakeEval, pct float64) {
	for _, l := range f.layers {
		f.set(l.Name, map[string]float64{"int8-static": pct, "int8-dynamic": pct, "fp16": pct, "bf16": pct, "int4": pct, "int8": pct, "int2": pct})
	}
}

func TestAllLowestPasses(t *testing.T) {
	f := newFake(3, 5, 500, 1)
	uniform(f, 0.001)
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}})
	if !res.Attained || res.Summary.Evaluations != 1 || f.calls != 2 {
		t.Fatalf("attained %v, %d evaluations, %d evaluator calls; want all-lowest at once (1 + baseline)", res.Attained, res.Summary.Evaluations, f.calls)
	}
	for _, r := range res.Layers {
		if (r.Kind == KindFC && r.Rung != "int8-dynamic") || (r.Kind == KindTable && r.Rung != "int4") {
			// Under the size objective int8-static (8 bytes more) is pruned.
			t.Errorf("%s at %s, want its lowest rung", r.Layer, r.Rung)
		}
	}
	if res.Plan.Preset != PresetName || len(res.Plan.Layers) != 8 {
		t.Errorf("plan %s", res.Plan.Encode())
	}
}

// sensitive sets up 16 layers whose lowest rungs cost known ΔNE amounts:
// three heavy ones (0.05, 0.04, 0.03) and 13 light (0.001 each), with
// middle rungs as bad as the lowest unless told otherwise.
func sensitive(t *testing.T) *fakeEval {
	f := newFake(6, 10, 800, 2)
	uniform(f, 0.001)
	heavy := map[string]float64{"fc1": 0.05, "emb3": 0.04, "emb7": 0.03}
	for name, v := range heavy {
		f.set(name, map[string]float64{"int8-static": v, "int8-dynamic": v, "fp16": v, "int4": v, "int8": v})
	}
	return f
}

func TestBisectionFindsShortestPrefix(t *testing.T) {
	f := sensitive(t)
	// All lowest: 0.12 + 0.013. Falling back fc1 and emb3 leaves
	// 0.043 <= 0.045; fc1 alone leaves 0.083.
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0.045, MaxAUCDrop: noAUC}})
	if !res.Attained {
		t.Fatalf("not attained: %v", res.Explanation)
	}
	for _, r := range res.Layers {
		want := r.Layer == "fc1" || r.Layer == "emb3"
		if (r.Rung == "fp32") != want {
			t.Errorf("%s at %s", r.Layer, r.Rung)
		}
	}
	n := 16
	s := res.Summary
	if s.Steps[StepBisect] > ceilLog2(n) || s.Steps[StepSensitivity] != n || s.Layers != n {
		t.Errorf("steps %v", s.Steps)
	}
	if s.Evaluations-s.Steps[StepMiddle] > s.Bound+1 { // +1: the all-lowest plan
		t.Errorf("%d evaluations (%d middle) over the bound %d", s.Evaluations, s.Steps[StepMiddle], s.Bound)
	}
	// Middle steps: at most the prefix's (2 layers) middle rungs.
	if s.Steps[StepMiddle] > 2*2 {
		t.Errorf("%d middle steps", s.Steps[StepMiddle])
	}
	if math.Abs(s.DeltaNE.Point-0.043) > 1e-3 || s.DeltaNE.Hi > 0.045 {
		t.Errorf("final ΔNE %+v", s.DeltaNE)
	}
	t.Logf("steps %v, bound %d", s.Steps, s.Bound)
}

func TestMiddleRungSuffices(t *testing.T) {
	f := sensitive(t)
	f.set("emb3", map[string]float64{"int4": 0.04, "int8": 0.002, "fp16": 0})
	// 0.046: fc1 fp32 and emb3 at int8 make 0.045 (at fp16: 0.043).
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0.046, MaxAUCDrop: noAUC}})
	if got := rungOf(res, "emb3"); got != "int8" {
		t.Errorf("emb3 at %s, want int8 (a middle rung within budget)", got)
	}
	if got := rungOf(res, "fc1"); got != "fp32" {
		t.Errorf("fc1 at %s, want fp32", got)
	}
	if res.Summary.Steps[StepMiddle] == 0 {
		t.Errorf("no middle steps: %v", res.Summary.Steps)
	}
}

func TestReclaimLowersLayer(t *testing.T) {
	f := newFake(2, 6, 800, 3)
	uniform(f, 0.001)
	f.set("fc0", map[string]float64{"int8-dynamic": 0.02, "fp16": 0.02})
	f.set("emb0", map[string]float64{"int4": 0.019, "int8": 0.019, "fp16": 0.019})
	f.set("emb1", map[string]float64{"int4": 0.015, "int8": 0.015, "fp16": 0.015})
	f.pair[[2]string{"emb0", "emb1"}] = 0.03 // emb0 and emb1 break it together
	// All lowest 0.02+0.019+0.015+0.03+0.005 = 0.089. Order fc0, emb0,
	// emb1: falling back fc0 leaves 0.069, fc0 and emb0 leave 0.02: k=2.
	// Then fc0 alone at int8 again gives 0.04: reclaimed.
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}})
	if got := rungOf(res, "fc0"); got != "int8-dynamic" {
		t.Errorf("fc0 at %s, want reclaimed to int8-dynamic", got)
	}
	if got := rungOf(res, "emb0"); got != "fp32" {
		t.Errorf("emb0 at %s, want fp32", got)
	}
	if res.Summary.Steps[StepReclaim] == 0 {
		t.Errorf("no reclaim steps: %v", res.Summary.Steps)
	}
}

func TestBudgetZeroUnattainable(t *testing.T) {
	f := sensitive(t)
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0, MaxAUCDrop: noAUC}})
	if res.Attained {
		t.Fatal("budget 0 attained")
	}
	text := strings.Join(res.Explanation, "\n")
	for _, name := range []string{"fc1", "emb3", "emb7", "fc0"} {
		if !strings.Contains(text, name+" alone at") {
			t.Errorf("explanation does not name %s:\n%s", name, text)
		}
	}
	// The best plan is the one with the smallest ΔNE upper end: a light layer alone.
	if len(res.Plan.Layers) != 16 || res.Summary.DeltaNE.Point > 0.0011 || res.Summary.Verdict == Pass {
		t.Errorf("best plan: %+v", res.Summary)
	}
	nonFP32 := 0
	for _, lp := range res.Plan.Layers {
		if lp.Precision != precision.FP32 {
			nonFP32++
		}
	}
	if nonFP32 != 1 {
		t.Errorf("best plan quantizes %d layers, want 1", nonFP32)
	}
	t.Logf("%s", text)
}

func TestNegativeBudget(t *testing.T) {
	f := sensitive(t)
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: -0.01, MaxAUCDrop: noAUC}})
	if res.Attained || !strings.Contains(strings.Join(res.Explanation, " "), "excludes even the fp32 model") {
		t.Errorf("attained %v: %v", res.Attained, res.Explanation)
	}
}

func TestInconclusiveWithFewRows(t *testing.T) {
	for _, tc := range []struct {
		rows int
		want Verdict
	}{{40, Inconclusive}, {20000, Pass}} {
		f := newFake(1, 1, tc.rows, 4)
		uniform(f, 0.01)
		f.noise = 5
		res := run(t, f, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 1000})
		e := res.Trace.Entries[1]
		if e.Step != StepAllLowest || e.Verdict != tc.want {
			t.Errorf("%d rows: %s %s ΔNE %+v, want %s", tc.rows, e.Step, e.Verdict, e.DeltaNE, tc.want)
		}
		if tc.want == Inconclusive && (e.DeltaNE.Point > 0.05 || e.DeltaNE.Hi <= 0.05) {
			t.Errorf("%d rows: interval %+v does not straddle the budget", tc.rows, e.DeltaNE)
		}
		t.Logf("%d rows: ΔNE %+v %s", tc.rows, e.DeltaNE, e.Verdict)
	}
}

func TestAUCBudget(t *testing.T) {
	f := newFake(2, 2, 2000, 5)
	uniform(f, 0.001)
	// An AUC budget of -1 (the AUC must rise by 1) fails every plan on AUC
	// alone, though ΔNE is well within its budget.
	res := run(t, f, Options{Budget: Budget{MaxNEDelta: 1, MaxAUCDrop: -1}})
	if res.Attained {
		t.Error("an impossible AUC budget was attained")
	}
	res = run(t, f, Options{Budget: Budget{MaxNEDelta: 1, MaxAUCDrop: 0.5}})
	if !res.Attained || res.Summary.Evaluations != 1 {
		t.Errorf("generous AUC budget: attained %v after %d", res.Attained, res.Summary.Evaluations)
	}
}

func TestResumeSkipsEvaluatedPlans(t *testing.T) {
	o := Options{Budget: Budget{MaxNEDelta: 0.045, MaxAUCDrop: noAUC}}
	full := sensitive(t)
	want := run(t, full, o)

	f1 := sensitive(t)
	o1 := o
	o1.MaxEvals = 7
	var checkpoints int
	o1.Checkpoint = func(*Trace) { checkpoints++ }
	part := run(t, f1, o1)
	if part.Stopped != StopMaxEvals || part.Summary.Evaluations != 7 || checkpoints != 7 {
		t.Fatalf("stopped %q after %d (%d checkpoints)", part.Stopped, part.Summary.Evaluations, checkpoints)
	}
	// Through JSON, as the CLI does.
	tr, err := DecodeTrace(bytes.NewReader(part.Trace.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	f2 := sensitive(t)
	o2 := o
	o2.Resume = tr
	got := run(t, f2, o2)
	if !bytes.Equal(got.Plan.Encode(), want.Plan.Encode()) {
		t.Errorf("resumed plan differs:\n%s\nwant\n%s", got.Plan.Encode(), want.Plan.Encode())
	}
	if f2.calls-1 != want.Summary.Evaluations-7 || got.Summary.Resumed < 7 {
		t.Errorf("resumed run evaluated %d plans (resumed %d); full run %d", f2.calls-1, got.Summary.Resumed, want.Summary.Evaluations)
	}
	seen := map[string]bool{}
	for _, p := range f1.plans[1:] {
		seen[p] = true
	}
	for _, p := range f2.plans[1:] {
		if seen[p] {
			t.Errorf("plan evaluated again after resume: %s", p)
		}
	}
	// A trace of other rows is refused.
	o3 := o
	o3.Resume = tr
	if _, err := Run(context.Background(), newFake(6, 10, 801, 2), o3); err == nil || !strings.Contains(err.Error(), "other rows") {
		t.Errorf("resume on other rows: %v", err)
	}
}

func TestDeterministic(t *testing.T) {
	o := Options{Budget: Budget{MaxNEDelta: 0.045, MaxAUCDrop: noAUC}}
	a, b := run(t, sensitive(t), o), run(t, sensitive(t), o)
	if !bytes.Equal(a.Plan.Encode(), b.Plan.Encode()) || len(a.Trace.Entries) != len(b.Trace.Entries) {
		t.Fatal("two runs differ")
	}
	for i := range a.Trace.Entries {
		x, y := a.Trace.Entries[i], b.Trace.Entries[i]
		if x.Stats != y.Stats || x.Verdict != y.Verdict || planKey(x.Plan) != planKey(y.Plan) {
			t.Errorf("entry %d differs: %+v vs %+v", i, x, y)
		}
	}
}

func TestCanceledKeepsBest(t *testing.T) {
	f := sensitive(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancelAfter, f.cancelFn = 5, cancel
	res, err := Run(ctx, f, Options{Budget: Budget{MaxNEDelta: 0.045, MaxAUCDrop: noAUC}, Ladders: issue5Ladders, Resamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Canceled during the 5th plan: the best so far is a sensitivity plan
	// (one light layer alone), which passes.
	if res.Stopped != StopCanceled || res.Summary.Evaluations != 4 || res.Plan == nil || !res.Attained {
		t.Errorf("stopped %q after %d, attained %v", res.Stopped, res.Summary.Evaluations, res.Attained)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, sensitive(t), Options{Budget: Budget{MaxNEDelta: 0.045, MaxAUCDrop: noAUC}}); err == nil {
		t.Error("a canceled context before the baseline gave no error")
	}
}

func TestOptionErrors(t *testing.T) {
	f := sensitive(t)
	for _, o := range []Options{
		{Budget: Budget{MaxNEDelta: math.NaN(), MaxAUCDrop: noAUC}},
		{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Objective: "speed"},
		{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Objective: ObjectiveLatency},
		{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Ladders: Ladders{PerLayer: map[string][]string{"nope": {"fp16"}}}},
		{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Ladders: Ladders{Table: []string{"int3"}}},
		{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Confidence: 1.5},
	} {
		if _, err := Run(context.Background(), f, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestLaddersParse(t *testing.T) {
	l, err := ParseLadders("table=int4-greedy,int8; fc=int8-dynamic,bf16 ;fc0=fp32", DefaultLadders(true))
	if err != nil {
		t.Fatal(err)
	}
	layers := []Layer{{Name: "fc0", Kind: KindFC}, {Name: "fc1", Kind: KindFC}, {Name: "emb0", Kind: KindTable}}
	lad, err := l.resolve(layers)
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
	if got := names(lad[0]) + " " + names(lad[1]) + " " + names(lad[2]); got != "fp32 int8-dynamic,bf16,fp32 int4-greedy,int8,fp32" {
		t.Errorf("ladders %s", got)
	}
	for _, bad := range []string{"table", "=int4", "fc=", "fc=int4", "table=int8,int8"} {
		l, err := ParseLadders(bad, DefaultLadders(false))
		if err == nil {
			_, err = l.resolve(layers)
		}
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// With int2 allowed, tables start at int2.
	lad, _ = DefaultLadders(true).resolve(layers)
	if lad[2][0].Name != "int2" {
		t.Errorf("int2 ladder %s", names(lad[2]))
	}
}

// A ladder rung whose precision is unknown (int9, int9-greedy, INT8) is
// refused with the one error type, *precision.UnknownError, wrapped with
// the layer; a known precision the kind cannot take (int4 on an FC layer)
// or a mode it lacks (int8-sometimes) is an unknown rung, not an unknown
// precision. Both list the kind's rungs.
func TestLadderUnknownPrecision(t *testing.T) {
	layers := []Layer{{Name: "fc0", Kind: KindFC}, {Name: "emb0", Kind: KindTable}}
	for _, c := range []struct {
		spec, want, unknown string
	}{
		{"fc=int9", `ladder of fc0 (fc): unknown rung "int9"; rungs: bf16, fp16, fp32, int8-dynamic, int8-static`, "int9"},
		{"table=int9-greedy", `ladder of emb0 (table): unknown rung "int9-greedy"; rungs: fp16, fp32, int2, int2-greedy, int4, int4-greedy, int8`, "int9"},
		{"emb0=INT8", `ladder of emb0 (table): unknown rung "INT8"`, "INT8"},
		{"fc=int4", `ladder of fc0 (fc): unknown rung "int4"`, ""},
		{"fc=int8-sometimes", `ladder of fc0 (fc): unknown rung "int8-sometimes"`, ""},
		{"table=bf16", `ladder of emb0 (table): unknown rung "bf16"`, ""},
	} {
		l, err := ParseLadders(c.spec, DefaultLadders(false))
		if err == nil {
			_, err = l.resolve(layers)
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.spec, err, c.want)
			continue
		}
		var u *precision.UnknownError
		if got := errors.As(err, &u); got != (c.unknown != "") || (got && u.Name != c.unknown) {
			t.Errorf("%s: %v: *UnknownError %v, want one for %q", c.spec, err, got, c.unknown)
		}
	}
}

// The rungs are built from the precision vocabulary; these are the names
// and plans --ladder has always taken.
func TestRungSets(t *testing.T) {
	if got := rungNames(fcRungs); got != "bf16, fp16, fp32, int8-dynamic, int8-static, mxfp4, mxfp4-dynamic, mxfp6_e2m3, mxfp6_e2m3-dynamic, mxfp6_e3m2, mxfp6_e3m2-dynamic, mxfp8_e4m3, mxfp8_e4m3-dynamic, mxfp8_e5m2, mxfp8_e5m2-dynamic, mxint8, mxint8-dynamic" {
		t.Errorf("fc rungs %s", got)
	}
	if got := rungNames(tableRungs); got != "fp16, fp32, int2, int2-greedy, int4, int4-greedy, int8, mxfp4, mxfp6_e2m3, mxfp6_e3m2, mxfp8_e4m3, mxfp8_e5m2, mxint8" {
		t.Errorf("table rungs %s", got)
	}
	if lp := fcRungs["int8-static"]; lp.Precision != precision.Int8 || lp.Activation != quantize.Static || lp.Granularity != quantize.PerTensor || lp.Weights != quantize.PerChannel || lp.Method != "l2" || lp.WeightRange != quantize.NarrowRange {
		t.Errorf("int8-static %+v", lp)
	}
	if lp := fcRungs["int8-dynamic"]; lp.Precision != precision.Int8 || lp.Activation != quantize.Dynamic || lp.Granularity != quantize.PerRow || lp.Weights != quantize.PerChannel || lp.Method != "" || lp.WeightRange != quantize.NarrowRange {
		t.Errorf("int8-dynamic %+v", lp)
	}
	if lp := tableRungs["int2-greedy"]; lp.Precision != precision.Int2 || !lp.Greedy {
		t.Errorf("int2-greedy %+v", lp)
	}
	for name, lp := range tableRungs {
		if RungName(KindTable, lp) != name {
			t.Errorf("table rung %s is named %s", name, RungName(KindTable, lp))
		}
	}
	if !NeedsRanges("int8-static") || NeedsRanges("int8-dynamic") || NeedsRanges("fp16") || NeedsRanges("int9") {
		t.Error("NeedsRanges")
	}
	if got := strings.Join(allFCKernels, ","); got != "gemm-fp32,gemm-fp16,gemm-bf16,gemm-int8,gemm-int8-dynamic" {
		t.Errorf("cost model kernels %s", got)
	}
	if got := fmt.Sprint(allTableFormats); got != "[fp32 fp16 int8 int4 int2 mxfp8_e4m3 mxfp8_e5m2 mxfp6_e3m2 mxfp6_e2m3 mxfp4 mxint8 mixed]" {
		t.Errorf("cost model table formats %s", got)
	}
}

func TestPrune(t *testing.T) {
	l := Layer{Name: "x", Kind: KindFC, In: 10, Out: 4}
	lad, _ := DefaultLadders(false).resolve([]Layer{l})
	got := prune(lad[0], func(r Rung) float64 { return float64(l.Bytes(r.Plan)) })
	// mxfp4 40 bytes, mxfp6_e2m3 52, int8-static 80 (dropped: above
	// int8-dynamic's 72), fp16 96, fp32 176.
	if len(got) != 5 || got[0].Name != "mxfp4" || got[1].Name != "mxfp6_e2m3" || got[2].Name != "int8-dynamic" {
		t.Errorf("size-pruned FC ladder %+v", got)
	}
}
