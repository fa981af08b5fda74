package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
)

// Verdict is a point's outcome.
type Verdict string

// Verdicts.
const (
	OK          Verdict = "OK"
	Recalibrate Verdict = "RECALIBRATE"
	Research    Verdict = "RESEARCH"
)

// Default thresholds.
const (
	DefaultMaxNEDelta = 0.05 // percent
	DefaultMaxClip    = 0.01 // 1% of an FC input outside its production range
	DefaultMaxDrift   = 0.1  // total-variation distance
)

// Thresholds are the budget and the drift alarms. A NaN budget is off.
type Thresholds struct {
	MaxNEDelta float64 // largest allowed ΔNE, percent
	MaxAUCDrop float64 // largest allowed AUC drop
	MaxClip    float64 // largest allowed clip rate of any FC input (fraction)
	MaxDrift   float64 // largest allowed histogram distance of any FC input
}

// DefaultThresholds are the command's defaults (no AUC budget).
func DefaultThresholds() Thresholds {
	return Thresholds{MaxNEDelta: DefaultMaxNEDelta, MaxAUCDrop: math.NaN(), MaxClip: DefaultMaxClip, MaxDrift: DefaultMaxDrift}
}

// Snapshot is a model snapshot: an fp32 network with the production
// network's FC layers.
type Snapshot struct {
	Name   string
	SHA256 string // the file's sha256, recorded in fresh ranges
	Net    *model.Network
}

// Window is a slice of traffic; Open returns a fresh reader over its rows
// each time (the window is read more than once).
type Window struct {
	Name string
	Open func() (dataset.Reader, error)
}

// Config is the production quantization and how to judge it.
type Config struct {
	Plan   *quantize.Plan
	Ranges *calibrate.Ranges // production ranges (from the production model)
	Thresholds
	Threads int
}

// LayerDrift is one static int8 FC input's drift on a window.
type LayerDrift struct {
	Layer    string  `json:"layer"`
	Lo       float64 `json:"lo"` // production range
	Hi       float64 `json:"hi"`
	Clipped  int64   `json:"clipped"`
	Values   int64   `json:"values"`
	ClipRate float64 `json:"clip_rate"`
	Drift    float64 `json:"drift"`
}

// Accuracy is a quantized model's cost against its fp32 on a window.
type Accuracy struct {
	NEPct report.Float `json:"ne_pct"`
	AUC   report.Float `json:"auc"` // auc - auc_fp32 (null when undefined)
}

// Point is one snapshot × window measurement and its verdict.
type Point struct {
	Snapshot     string       `json:"snapshot"`
	Window       string       `json:"window"`
	Rows         int64        `json:"rows"`
	Production   Accuracy     `json:"production"`
	MaxClip      float64      `json:"max_clip"`
	MaxClipLayer string       `json:"max_clip_layer,omitempty"`
	Drift        float64      `json:"drift"`
	DriftLayer   string       `json:"drift_layer,omitempty"`
	Layers       []LayerDrift `json:"layers"`
	// Fresh is the accuracy with ranges calibrated on this window, when the
	// verdict needed it (the budget broke or the drift was high).
	Fresh   *Accuracy `json:"fresh,omitempty"`
	Verdict Verdict   `json:"verdict"`
	Reason  string    `json:"reason"`
}

// Check measures one snapshot on one window and decides its verdict.
func Check(ctx context.Context, snap Snapshot, win Window, cfg Config) (*Point, error) {
	if cfg.Plan == nil || cfg.Ranges == nil {
		return nil, errors.New("monitor: the production plan and ranges are required")
	}
	// The ranges come from the production model, the snapshot is a newer
	// model: its sha differs by design, so check the layers instead.
	if err := cfg.Ranges.CheckNetwork(snap.Net); err != nil {
		return nil, fmt.Errorf("snapshot %s does not match the production ranges %s: %w", snap.Name, cfg.Ranges.File, err)
	}
	threads := max(cfg.Threads, 1)
	p := &Point{Snapshot: snap.Name, Window: win.Name}

	// 1. fp32 pass: the window's input histograms (fresh calibration) and
	// clip counts against the production ranges.
	clip, err := newClipCounter(snap.Net, cfg.Plan, cfg.Ranges)
	if err != nil {
		return nil, err
	}
	bins := 0
	for _, l := range cfg.Ranges.Layers {
		bins = l.Hist.Bins()
		break
	}
	obs, err := calibrate.NewObserver(snap.Net, bins)
	if err != nil {
		return nil, err
	}
	rows, err := forward(ctx, snap.Net, win, threads, obs, clip)
	if err != nil {
		return nil, err
	}
	if err := obs.Err(); err != nil {
		return nil, err
	}
	p.Rows = rows
	p.Layers, err = clip.drift(obs, cfg.Ranges)
	if err != nil {
		return nil, err
	}
	p.MaxClip, p.MaxClipLayer, p.Drift, p.DriftLayer = worst(p.Layers)

	// 2. The production quantization against the snapshot's fp32.
	if p.Production, err = evalWith(ctx, snap.Net, win, cfg, cfg.Ranges, threads); err != nil {
		return nil, err
	}

	// 3. Verification with fresh ranges, only when something is wrong.
	if needsFresh(p, cfg.Thresholds) {
		fresh, err := obs.Ranges(calibrate.Options{
			Threads: threads, Bins: bins, Percentile: cfg.Ranges.Percentile, Levels: cfg.Ranges.Levels,
			Method: cfg.Ranges.Method, ModelSHA256: snap.SHA256, Rows: win.Name, Data: win.Name,
		})
		if err != nil {
			return nil, fmt.Errorf("calibrating on window %s: %w", win.Name, err)
		}
		// Fresh ranges fix activation ranges; mixed tables keep the
		// production calibration's hot rows (the observer counts no lookups).
		if fresh.Tables == nil {
			fresh.Tables = cfg.Ranges.Tables
		}
		acc, err := evalWith(ctx, snap.Net, win, cfg, fresh, threads)
		if err != nil {
			return nil, err
		}
		p.Fresh = &acc
	}
	p.Verdict, p.Reason = Decide(p, cfg.Thresholds)
	return p, nil
}

func worst(ls []LayerDrift) (clip float64, clipLayer string, drift float64, driftLayer string) {
	for _, l := range ls {
		if l.ClipRate > clip || clipLayer == "" {
			clip, clipLayer = l.ClipRate, l.Layer
		}
		if l.Drift > drift || driftLayer == "" {
			drift, driftLayer = l.Drift, l.Layer
		}
	}
	return
}

// budgetBroken lists the budgets an accuracy breaks. NaN measures break
// their budget: a gate must not pass what it cannot measure.
func budgetBroken(a Accuracy, th Thresholds) []string {
	var out []string
	if !math.IsNaN(th.MaxNEDelta) && !(float64(a.NEPct) <= th.MaxNEDelta) {
		out = append(out, fmt.Sprintf("ΔNE %+.4f%% > %g%%", a.NEPct, th.MaxNEDelta))
	}
	if !math.IsNaN(th.MaxAUCDrop) && !(-float64(a.AUC) <= th.MaxAUCDrop) {
		out = append(out, fmt.Sprintf("AUC drop %.5f > %g", -a.AUC, th.MaxAUCDrop))
	}
	return out
}

func drifted(p *Point, th Thresholds) []string {
	var out []string
	if p.MaxClip > th.MaxClip {
		out = append(out, fmt.Sprintf("%s input clipped %.2f%% > %.2f%%", p.MaxClipLayer, 100*p.MaxClip, 100*th.MaxClip))
	}
	if p.Drift > th.MaxDrift {
		out = append(out, fmt.Sprintf("%s input drift %.3f > %g", p.DriftLayer, p.Drift, th.MaxDrift))
	}
	return out
}

func needsFresh(p *Point, th Thresholds) bool {
	return len(budgetBroken(p.Production, th)) > 0 || len(drifted(p, th)) > 0
}

// Decide gives a measured point its verdict and reason: OK when the budget
// holds and nothing drifted; otherwise RECALIBRATE when p.Fresh (the window's
// own ranges) meets the budget, RESEARCH when it does not (or was not
// measured).
func Decide(p *Point, th Thresholds) (Verdict, string) {
	broken, drift := budgetBroken(p.Production, th), drifted(p, th)
	if len(broken) == 0 && len(drift) == 0 {
		return OK, fmt.Sprintf("ΔNE %+.4f%% within budget; max clip %.2f%% (%s), drift %.3f (%s)",
			p.Production.NEPct, 100*p.MaxClip, p.MaxClipLayer, p.Drift, p.DriftLayer)
	}
	why := strings.Join(append(broken, drift...), "; ")
	if p.Fresh == nil {
		return Research, why + "; not verified with fresh ranges"
	}
	if fb := budgetBroken(*p.Fresh, th); len(fb) > 0 {
		if len(broken) == 0 {
			// Drifted, but the production ranges still meet the budget and
			// fresh ones would not: nothing to do yet, say why.
			return OK, fmt.Sprintf("%s; the production ranges still meet the budget (ΔNE %+.4f%%) and fresh ranges would not (%s): keep them, watch the drift",
				why, p.Production.NEPct, strings.Join(fb, "; "))
		}
		return Research, fmt.Sprintf("%s; fresh ranges on this window still break the budget (%s): search the plan again", why, strings.Join(fb, "; "))
	}
	return Recalibrate, fmt.Sprintf("%s; fresh ranges on this window give ΔNE %+.4f%%, ΔAUC %+.5f: recalibrate", why, p.Fresh.NEPct, p.Fresh.AUC)
}

func forward(ctx context.Context, net *model.Network, win Window, threads int, obs ...model.Observer) (int64, error) {
	rd, err := win.Open()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	run := model.NewRunner(net, threads, obs...)
	var rows int64
	err = dataset.Batches(ctx, rd, func(b *model.Batch) error {
		if _, err := run.Forward(b); err != nil {
			return fmt.Errorf("rows from %d: %w", b.Row, err)
		}
		rows += int64(b.N)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("window %s: %w", win.Name, err)
	}
	if rows == 0 {
		return 0, fmt.Errorf("window %s has no rows", win.Name)
	}
	return rows, nil
}

func evalWith(ctx context.Context, net *model.Network, win Window, cfg Config, ranges quantize.RangeSource, threads int) (Accuracy, error) {
	q, err := quantize.Apply(net, cfg.Plan, ranges)
	if err != nil {
		return Accuracy{}, err
	}
	rd, err := win.Open()
	if err != nil {
		return Accuracy{}, err
	}
	defer rd.Close()
	rep, err := evaluate.Run(ctx, rd, evaluate.Options{Model: q, Baseline: net, Threads: threads})
	if err != nil {
		return Accuracy{}, fmt.Errorf("window %s: %w", win.Name, err)
	}
	if rep.Delta == nil {
		return Accuracy{}, fmt.Errorf("window %s: no delta against the fp32 snapshot", win.Name)
	}
	return Accuracy{NEPct: report.Float(rep.Delta.NEPct), AUC: report.Float(rep.Delta.AUC)}, nil
}

// clipCounter counts, per static int8 FC layer, the fp32 inputs outside
// the production range.
type clipCounter struct {
	layers map[string]*LayerDrift
	order  []string
}

func newClipCounter(net *model.Network, plan *quantize.Plan, r *calibrate.Ranges) (*clipCounter, error) {
	c := &clipCounter{layers: map[string]*LayerDrift{}}
	for _, in := range calibrate.Inputs(net) {
		lp := plan.Layer(in.Layer.Name)
		if lp.Precision != precision.Int8 || lp.Activation != precision.Static {
			continue
		}
		lo, hi, err := r.Range(in.Layer.Name, lp.Method)
		if err != nil {
			return nil, err
		}
		c.layers[in.Layer.Name] = &LayerDrift{Layer: in.Layer.Name, Lo: float64(lo), Hi: float64(hi)}
		c.order = append(c.order, in.Layer.Name)
	}
	return c, nil
}

// Observe counts a static int8 FC layer's out-of-range inputs; NaN counts
// as clipped (no range holds it).
func (c *clipCounter) Observe(ev model.Event) {
	l := c.layers[ev.Layer]
	if l == nil {
		return
	}
	lo, hi := float32(l.Lo), float32(l.Hi)
	for i := 0; i < ev.In.Rows; i++ {
		for _, v := range ev.In.Row(i) {
			if !(v >= lo && v <= hi) {
				l.Clipped++
			}
		}
		l.Values += int64(ev.In.Cols)
	}
}

func (c *clipCounter) drift(obs *calibrate.Observer, prod *calibrate.Ranges) ([]LayerDrift, error) {
	out := make([]LayerDrift, 0, len(c.order))
	for _, name := range c.order {
		l := *c.layers[name]
		if l.Values > 0 {
			l.ClipRate = float64(l.Clipped) / float64(l.Values)
		}
		pl := prod.Layers[name]
		h := obs.Histogram(name)
		if pl == nil || h == nil {
			return nil, fmt.Errorf("layer %s: no histogram", name)
		}
		d, err := HistDistance(pl.Hist, h, DriftBins)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", name, err)
		}
		l.Drift = d
		out = append(out, l)
	}
	return out, nil
}
