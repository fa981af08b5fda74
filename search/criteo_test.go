package search

import (
	"context"
	"fmt"
	"github.com/rqtools/rq/internal/testshared"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

func searchSharedPath(t testing.TB, rel string) string {
	t.Helper()
	return testshared.Path(t, rel)
}

// criteo loads the criteo-18k model, calibrates it on rows 0:4000, and
// reads the search rows 15429:16715 into memory.
func criteo(t *testing.T) (*model.Network, *calibrate.Ranges, []*model.Batch) {
	t.Helper()
	mpath := searchSharedPath(t, "criteo-18k/dlrm-criteo.pt")
	dpath := searchSharedPath(t, "criteo-18k/dlrm-processed.npz")
	m, err := modelio.Load(mpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	sha, err := modelio.FileSHA256(mpath)
	if err != nil {
		t.Fatal(err)
	}
	open := func(a, b int64) dataset.Reader {
		rd, err := dataset.Open(dpath, dataset.Options{Rows: dataset.Range{Start: a, End: b}, NumDense: m.Net.NumDense, TableRows: m.Net.TableRows()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rd.Close() })
		return rd
	}
	ranges, err := calibrate.Run(context.Background(), m.Net, open(0, 4000), calibrate.Options{Threads: 2, ModelSHA256: sha})
	if err != nil {
		t.Fatal(err)
	}
	batches, err := ReadBatches(context.Background(), open(15429, 16715))
	if err != nil {
		t.Fatal(err)
	}
	return m.Net, ranges, batches
}

// TestNetEvaluatorMatchesApply: the cached networks predict exactly what
// quantize.Apply's do, and Layer.Bytes adds up to the network's bytes.
func TestNetEvaluatorMatchesApply(t *testing.T) {
	net, ranges, batches := criteo(t)
	ev, err := NewNetEvaluator(net, ranges, batches, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, preset := range []string{"int8-int4", "int8-dynamic", "bf16", "pytorch-dynamic-int4"} {
		plan, err := quantize.Preset(preset, net)
		if err != nil {
			t.Fatal(err)
		}
		for rep := range 2 { // the second time from the cache
			out, err := ev.Evaluate(context.Background(), plan)
			if err != nil {
				t.Fatal(err)
			}
			qnet, err := quantize.Apply(net, plan, ranges)
			if err != nil {
				t.Fatal(err)
			}
			run := model.NewRunner(qnet, 2)
			var want []float32
			for _, b := range batches {
				p, err := run.Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, p...)
			}
			if !slices.Equal(out.Pred, want) || out.Bytes != qnet.Bytes() {
				t.Fatalf("%s (pass %d): predictions or bytes (%d vs %d) differ from quantize.Apply's", preset, rep, out.Bytes, qnet.Bytes())
			}
			var sum int64
			for _, l := range ev.Layers() {
				sum += l.Bytes(plan.Layer(l.Name))
			}
			if sum != out.Bytes {
				t.Errorf("%s: Layer.Bytes sum %d, network %d", preset, sum, out.Bytes)
			}
		}
	}
	if _, err := ev.Evaluate(context.Background(), &quantize.Plan{Version: 1, Layers: map[string]quantize.LayerPlan{"nope": {Precision: precision.FP16}}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad plan: %v", err)
	}
}

// TestCriteoSearch is issue 5's must-show on criteo-18k: --max-ne-delta
// 0.05 gives a plan within the budget at the interval's upper end, at most
// 30% of the fp32 bytes, well within 60 s.
func TestCriteoSearch(t *testing.T) {
	net, ranges, batches := criteo(t)
	ev, err := NewNetEvaluator(net, ranges, batches, 2)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Run(context.Background(), ev, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: math.NaN()}})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	s := res.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-13s %10s %10s %10s\n", "layer", "rung", "own ΔNE%", "own hi", "bytes")
	for _, r := range res.Layers {
		own, hi := "", ""
		if r.Own != nil {
			own, hi = fmt.Sprintf("%+.4f", r.Own.DeltaNE.Point), fmt.Sprintf("%+.4f", r.Own.DeltaNE.Hi)
		}
		fmt.Fprintf(&b, "%-10s %-13s %10s %10s %10d\n", r.Layer, r.Rung, own, hi, r.Bytes)
	}
	t.Logf("\n%s", b.String())
	t.Logf("final ΔNE %+.4f%% [%+.4f, %+.4f], ΔAUC %+.5f [%+.5f, %+.5f], %s; %d bytes = %.1f%% of fp32; %d evaluations %v (bound %d + middle); %.1fs",
		s.DeltaNE.Point, s.DeltaNE.Lo, s.DeltaNE.Hi, s.DeltaAUC.Point, s.DeltaAUC.Lo, s.DeltaAUC.Hi, s.Verdict,
		s.Bytes, 100*float64(s.Bytes)/float64(s.FP32Bytes), s.Evaluations, s.Steps, s.Bound, el.Seconds())
	if !res.Attained || s.Verdict != Pass || s.DeltaNE.Hi > 0.05 {
		t.Errorf("budget not met: attained %v, %s, ΔNE hi %+.4f%%; %v", res.Attained, s.Verdict, s.DeltaNE.Hi, res.Explanation)
	}
	if frac := float64(s.Bytes) / float64(s.FP32Bytes); frac > 0.30 {
		t.Errorf("plan weighs %.1f%% of fp32, want <= 30%%", 100*frac)
	}
	if s.Evaluations-s.Steps[StepMiddle] > s.Bound+1 {
		t.Errorf("%d evaluations beyond the bound %d (+1 all-lowest, + %d middle)", s.Evaluations, s.Bound, s.Steps[StepMiddle])
	}
	// The plan, applied the ordinary way, gives the reported figures.
	if err := res.Plan.Validate(net); err != nil {
		t.Fatal(err)
	}
	qnet, err := quantize.Apply(net, res.Plan, ranges)
	if err != nil {
		t.Fatal(err)
	}
	if qnet.Bytes() != s.Bytes {
		t.Errorf("applied plan has %d bytes, summary %d", qnet.Bytes(), s.Bytes)
	}
	if testing.Verbose() {
		os.WriteFile(filepath.Join(t.TempDir(), "trace.json"), res.Trace.Encode(), 0o644)
	}
}

// TestCriteoLatency measures the cost model once (cached in a temp dir),
// reads it back from the cache, and searches for the fastest plan.
func TestCriteoLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measures kernels")
	}
	net, ranges, batches := criteo(t)
	ev, err := NewNetEvaluator(net, ranges, batches, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t0 := time.Now()
	cost, err := LoadOrMeasureCost(context.Background(), ev.Layers(), CostOptions{Threads: 2, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	measured := time.Since(t0)
	t0 = time.Now()
	again, err := LoadOrMeasureCost(context.Background(), ev.Layers(), CostOptions{Threads: 2, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(t0) > measured/5 || len(again.GEMM) != len(cost.GEMM) || again.GEMM[gemmKey("gemm-fp32", 2048, 512, 367)] != cost.GEMM[gemmKey("gemm-fp32", 2048, 512, 367)] {
		t.Errorf("cost model not read from the cache (measured in %v, reloaded in %v)", measured, time.Since(t0))
	}
	for _, l := range ev.Layers() {
		for _, lp := range []quantize.LayerPlan{{Precision: precision.FP32}, {Precision: precision.FP16}} {
			if cost.Seconds(l, lp) <= 0 {
				t.Errorf("%s %s: no predicted time", l.Name, lp.Precision)
			}
		}
	}
	res, err := Run(context.Background(), ev, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: math.NaN()}, Objective: ObjectiveLatency, Cost: cost})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	t.Logf("cost model measured in %.1fs; latency plan: ΔNE %+.4f%% [hi %+.4f], %.0f µs/batch vs fp32 %.0f, %.1f%% bytes, %d evaluations",
		measured.Seconds(), s.DeltaNE.Point, s.DeltaNE.Hi, s.LatencyUS, s.FP32LatencyUS, 100*float64(s.Bytes)/float64(s.FP32Bytes), s.Evaluations)
	for _, r := range res.Layers {
		if r.Kind == KindFC {
			t.Logf("%s %s %.1f µs", r.Layer, r.Rung, r.LatencyUS)
		}
	}
	if !res.Attained || s.DeltaNE.Hi > 0.05 || !(s.LatencyUS < s.FP32LatencyUS) {
		t.Errorf("latency search: attained %v, ΔNE hi %+.4f, %.0f µs vs fp32 %.0f", res.Attained, s.DeltaNE.Hi, s.LatencyUS, s.FP32LatencyUS)
	}
}
