package cmd

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/monitor"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type monitorOptions struct {
	*globalOptions
	models       modelFlags // --interaction, --allow-nonfinite
	plan, ranges string
	snapshots    []string
	order        string
	snapshotDir  string
	windowFiles  []string
	windows      int
	data         dataFlags
	th           monitor.Thresholds
	history      string
	plot         string
	json         bool
}

func newMonitorCmd(g *globalOptions, runF func(context.Context, *monitorOptions) error) *cobra.Command {
	opts := &monitorOptions{globalOptions: g}
	if runF == nil {
		runF = runMonitor
	}
	c := &cobra.Command{
		Use:   "monitor --plan P --ranges R (--snapshot M... | --snapshots DIR) (--window D... | --data D --windows N)",
		Short: "Check a production quantization against new model snapshots and drifting traffic",
		Long: `Keep a quantized model honest over its lifespan. For every model snapshot and every data window:
quantize the snapshot with the production plan and ranges (the ranges come from the production
model: a snapshot must have the same FC layers, names and shapes, but not the same sha256),
evaluate ΔNE and ΔAUC against the snapshot's own fp32 on the window, and measure drift of every
static int8 FC input: the clip rate (share of the window's fp32 inputs outside the production
range) and the total-variation distance (0..1) between the window's input histogram and the
calibration histogram, both re-binned onto a common grid of at most 64 bins.

Verdicts:
  OK           the budget holds, no clip rate above --max-clip, no drift above --max-drift
               (or drift, but fresh ranges would do worse than the production ones)
  RECALIBRATE  the budget breaks or drift is high, and ranges calibrated afresh on this window
               meet the budget (verified: calibrated, quantized and evaluated again)
  RESEARCH     even fresh ranges do not meet the budget: search the plan again (rq search)

Windows: --window FILE (repeatable, in the order given), or --data FILE --windows N: N equal
consecutive row slices (time order) of the file, or of its --rows span (npz only). Snapshots:
--snapshot FILE (repeatable, in order) or --snapshots DIR (its .pt, .pth and .safetensors files,
by name, or by modification time with --order mtime).

--history FILE appends one JSON line per snapshot x window ({"time", "snapshot", "window",
"production": {"ne_pct", "auc"}, "max_clip", "drift", "layers", "fresh", "verdict", "reason"}),
for cron or CI. --plot FILE.svg|.png|.pdf draws ΔNE per window per snapshot with the budget.
With --json, exactly one JSON object is printed on stdout.

Exit code 3 is an alert: some point is RECALIBRATE or RESEARCH.`,
		Example: `  rq monitor --plan plan.json --ranges ranges.json --snapshots snapshots/ --data traffic.npz --windows 7
  rq monitor --plan plan.json --ranges ranges.json --snapshot today.pt --window mon.npz --window tue.npz --history hist.jsonl --plot trend.svg`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case opts.plan == "":
				return usageErrorf("--plan is required (the production quantization plan)")
			case opts.ranges == "":
				return usageErrorf("--ranges is required (the production ranges.json)")
			case len(opts.snapshots) == 0 && opts.snapshotDir == "":
				return usageErrorf("give model snapshots with --snapshot FILE or --snapshots DIR")
			case len(opts.snapshots) > 0 && opts.snapshotDir != "":
				return usageErrorf("--snapshot and --snapshots exclude each other")
			case opts.order != "name" && opts.order != "mtime":
				return usageErrorf("--order must be name or mtime, not %q", opts.order)
			case len(opts.windowFiles) > 0 && (opts.data.path != "" || c.Flags().Changed("windows")):
				return usageErrorf("--window excludes --data and --windows")
			case len(opts.windowFiles) > 0 && opts.data.rows != "":
				return usageErrorf("--rows applies to --data --windows N, not to --window files")
			case len(opts.windowFiles) == 0 && opts.data.path == "":
				return usageErrorf("give data windows with --window FILE or --data FILE --windows N")
			case len(opts.windowFiles) == 0 && opts.windows < 1:
				return usageErrorf("--windows must be at least 1, got %d", opts.windows)
			case !(opts.th.MaxClip >= 0) || !(opts.th.MaxDrift >= 0):
				return usageErrorf("--max-clip and --max-drift must be at least 0")
			}
			if !c.Flags().Changed("max-auc-drop") {
				opts.th.MaxAUCDrop = math.NaN()
			}
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	def := monitor.DefaultThresholds()
	fs.StringVar(&opts.plan, "plan", "", "production quantization plan (plan.json)")
	fs.StringVar(&opts.ranges, "ranges", "", "production ranges (ranges.json of the production model)")
	fs.StringArrayVar(&opts.snapshots, "snapshot", nil, "model snapshot file (repeatable, in order)")
	fs.StringVar(&opts.snapshotDir, "snapshots", "", "directory of model snapshots (.pt, .pth, .safetensors), in --order")
	fs.StringVar(&opts.order, "order", "name", "order of the --snapshots files: name or mtime (oldest first)")
	fs.StringArrayVar(&opts.windowFiles, "window", nil, "data window file (repeatable, in time order)")
	fs.IntVar(&opts.windows, "windows", 1, "with --data: split the rows into N equal consecutive windows")
	fs.Float64Var(&opts.th.MaxNEDelta, "max-ne-delta", def.MaxNEDelta, "budget: largest allowed NE increase over the snapshot's fp32, in percent")
	fs.Float64Var(&opts.th.MaxAUCDrop, "max-auc-drop", 0, "budget: largest allowed AUC drop below the snapshot's fp32 (default: none)")
	fs.Float64Var(&opts.th.MaxClip, "max-clip", def.MaxClip, "drift alarm: largest allowed share of an FC input outside its production range (0.01 = 1%)")
	fs.Float64Var(&opts.th.MaxDrift, "max-drift", def.MaxDrift, "drift alarm: largest allowed histogram distance (total variation, 0..1) of an FC input")
	fs.StringVar(&opts.history, "history", "", "append one JSON line per point to this `FILE`")
	fs.StringVar(&opts.plot, "plot", "", "draw the ΔNE trend to this `FILE` (.svg, .png or .pdf)")
	fs.BoolVar(&opts.json, "json", false, "print one JSON object instead of a table")
	opts.data.register(fs)
	opts.models.register(g, fs, refuseNonFinite)
	return c
}

// monitorJSON is --json's document.
type monitorJSON struct {
	Plan     string           `json:"plan"`
	Ranges   string           `json:"ranges"`
	Budget   report.Budget    `json:"budget"`
	MaxClip  float64          `json:"max_clip"`
	MaxDrift float64          `json:"max_drift"`
	Points   []*monitor.Point `json:"points"`
	Alerts   int              `json:"alerts"`
}

func runMonitor(ctx context.Context, opts *monitorOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	plan, err := quantize.ReadPlan(opts.plan)
	if err != nil {
		return err
	}
	ranges, err := calibrate.Read(opts.ranges)
	if err != nil {
		return err
	}
	snaps, err := snapshotFiles(opts)
	if err != nil {
		return err
	}
	cfg := monitor.Config{Plan: plan, Ranges: ranges, Thresholds: opts.th, Threads: opts.data.threads}
	var points []*monitor.Point
	for _, path := range snaps {
		ps, err := monitorSnapshot(ctx, opts, cfg, path)
		if err != nil {
			return err
		}
		points = append(points, ps...)
	}
	if opts.history != "" {
		if err := appendHistory(ctx, opts.history, time.Now(), points); err != nil {
			return err
		}
	}
	if opts.plot != "" {
		render := func() ([]byte, error) { return monitor.RenderPlot(opts.plot, points, opts.th.MaxNEDelta) }
		local := func(p string) error { return monitor.Plot(p, points, opts.th.MaxNEDelta) }
		if err := writeBytes(ctx, opts.plot, local, render); err != nil {
			return err
		}
	}
	var alerts []string
	for _, p := range points {
		if p.Verdict != monitor.OK {
			alerts = append(alerts, fmt.Sprintf("%s on %s: %s", p.Snapshot, p.Window, p.Verdict))
		}
	}
	if opts.json {
		err = report.JSON(opts.stdout, monitorJSON{Plan: opts.plan, Ranges: opts.ranges,
			Budget:  report.Budget{MaxNEDeltaPct: report.Float(opts.th.MaxNEDelta), MaxAUCDrop: report.Float(opts.th.MaxAUCDrop)},
			MaxClip: opts.th.MaxClip, MaxDrift: opts.th.MaxDrift, Points: points, Alerts: len(alerts)})
	} else {
		err = monitorTable(opts, points)
	}
	if err != nil {
		return err
	}
	if len(alerts) > 0 {
		return &exitError{code: ExitBudget, err: fmt.Errorf("monitor alert: %d of %d points: %s", len(alerts), len(points), strings.Join(alerts, ", "))}
	}
	return nil
}

func monitorTable(opts *monitorOptions, points []*monitor.Point) error {
	rows := make([][]string, 0, len(points))
	for _, p := range points {
		rows = append(rows, []string{p.Snapshot, p.Window,
			report.Signed(float64(p.Production.NEPct), 4, "%"), report.Signed(float64(p.Production.AUC), 5, ""),
			report.F(100*p.MaxClip, 2), report.F(p.Drift, 3), string(p.Verdict), p.Reason})
	}
	return report.Table(opts.stdout, []string{"snapshot", "window", "ΔNE", "ΔAUC", "max clip %", "drift", "verdict", "reason"}, rows)
}

// snapshotFiles lists the snapshots in order.
func snapshotFiles(opts *monitorOptions) ([]string, error) {
	if opts.snapshotDir == "" {
		return opts.snapshots, nil
	}
	if isObject(opts.snapshotDir) {
		return snapshotObjects(opts)
	}
	ents, err := os.ReadDir(opts.snapshotDir)
	if err != nil {
		return nil, err
	}
	var out []string
	mtime := map[string]int64{}
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".pt", ".pth", ".safetensors":
			if e.Type().IsRegular() {
				p := filepath.Join(opts.snapshotDir, e.Name())
				out = append(out, p)
				if info, err := e.Info(); err == nil {
					mtime[p] = info.ModTime().UnixNano()
				}
			}
		}
	}
	sort.Strings(out)
	if opts.order == "mtime" {
		// Oldest first; equal times keep name order (stable).
		sort.SliceStable(out, func(i, j int) bool { return mtime[out[i]] < mtime[out[j]] })
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--snapshots %s: no .pt, .pth or .safetensors files", opts.snapshotDir)
	}
	return out, nil
}

// monitorSnapshot checks one snapshot on every window.
func monitorSnapshot(ctx context.Context, opts *monitorOptions, cfg monitor.Config, path string) ([]*monitor.Point, error) {
	m, err := opts.models.load(ctx, path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.Quantized {
		return nil, fmt.Errorf("snapshot %s is a quantized file: monitor wants the fp32 snapshots", path)
	}
	sha, err := modelio.FileSHA256(path)
	if err != nil {
		return nil, err
	}
	wins, err := monitorWindows(ctx, opts, m.Net.NumDense, m.Net.TableRows())
	if err != nil {
		return nil, err
	}
	snap := monitor.Snapshot{Name: baseName(path), SHA256: sha, Net: m.Net}
	var out []*monitor.Point
	for _, w := range wins {
		p, err := monitor.Check(ctx, snap, w, cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// monitorWindows builds the data windows for a model's input shape.
func monitorWindows(ctx context.Context, opts *monitorOptions, numDense int, tableRows []int64) ([]monitor.Window, error) {
	open := func(path string, o dataset.Options) func() (dataset.Reader, error) {
		return func() (dataset.Reader, error) { return dataset.OpenContext(ctx, path, o) }
	}
	if len(opts.windowFiles) > 0 {
		var out []monitor.Window
		for _, f := range opts.windowFiles {
			d := opts.data
			d.path = f
			o, err := d.options(numDense, tableRows)
			if err != nil {
				return nil, err
			}
			out = append(out, monitor.Window{Name: baseName(f), Open: open(f, o)})
		}
		return out, nil
	}
	o, err := opts.data.options(numDense, tableRows)
	if err != nil {
		return nil, err
	}
	rd, err := dataset.OpenContext(ctx, opts.data.path, o)
	if err != nil {
		return nil, err
	}
	rr, ok := rd.(dataset.RowsReader)
	var total int64
	if ok {
		total = rr.SelectedRows()
	}
	rd.Close()
	if !ok {
		return nil, fmt.Errorf("--windows: %s has no row count up front (TSV); split it into files and use --window", opts.data.path)
	}
	if total < int64(opts.windows) {
		return nil, fmt.Errorf("--windows %d: %s has only %d rows selected", opts.windows, opts.data.path, total)
	}
	start := o.Rows.Start
	out := make([]monitor.Window, opts.windows)
	for i := range out {
		a := start + total*int64(i)/int64(opts.windows)
		b := start + total*int64(i+1)/int64(opts.windows)
		wo := o
		wo.Rows = dataset.Range{Start: a, End: b}
		out[i] = monitor.Window{Name: wo.Rows.String(), Open: open(opts.data.path, wo)}
	}
	return out, nil
}
