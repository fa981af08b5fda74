package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rqtools/rq/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Record is one history line: a point with when it was measured.
type Record struct {
	Time string `json:"time"` // RFC 3339, UTC
	*Point
}

// AppendHistory appends one JSON line per point to path (created if
// missing). All lines go in one write on an O_APPEND descriptor, so runs
// appending to the same file (cron, CI) do not interleave within a run's
// lines on a local file system, and a reader never sees an old line change.
func AppendHistory(path string, now time.Time, points []*Point) error {
	lines, err := HistoryLines(now, points)
	if err != nil {
		return fmt.Errorf("history %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(lines); err != nil {
		f.Close()
		return fmt.Errorf("history %s: %w", path, err)
	}
	return f.Close()
}

// HistoryLines are the lines AppendHistory appends: one JSON record per
// point, all with the time now. Callers appending elsewhere (an object in
// object storage) write these.
func HistoryLines(now time.Time, points []*Point) ([]byte, error) {
	var buf bytes.Buffer
	ts := now.UTC().Format(time.RFC3339)
	for _, p := range points {
		b, err := json.Marshal(Record{Time: ts, Point: p})
		if err != nil {
			return nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// Plot draws ΔNE per window, one line per snapshot, with the budget as a
// dashed line (when set), to an .svg, .png or .pdf file (by extension).
func Plot(path string, points []*Point, maxNEDelta float64) error {
	b, err := RenderPlot(path, points, maxNEDelta)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, b)
}

// RenderPlot is the content Plot writes to path (whose extension, of its
// last element, says the format), for callers writing it elsewhere.
func RenderPlot(path string, points []*Point, maxNEDelta float64) ([]byte, error) {
	name := path
	if u, err := url.Parse(path); err == nil && u.Scheme != "" && u.Host != "" {
		name = u.Path // an object URL: its query is not part of the name
	}
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(name), "."))
	switch ext {
	case "svg", "png", "pdf":
	default:
		return nil, fmt.Errorf("--plot %s: want a .svg, .png or .pdf file", path)
	}
	var windows, snaps []string
	wi, si := map[string]int{}, map[string]int{}
	for _, p := range points {
		if _, ok := wi[p.Window]; !ok {
			wi[p.Window] = len(windows)
			windows = append(windows, p.Window)
		}
		if _, ok := si[p.Snapshot]; !ok {
			si[p.Snapshot] = len(snaps)
			snaps = append(snaps, p.Snapshot)
		}
	}
	pl := plot.New()
	pl.Title.Text = "ΔNE of the production quantization per window"
	pl.X.Label.Text = "window"
	pl.Y.Label.Text = "ΔNE (%)"
	pl.Add(plotter.NewGrid())
	lines := make([]plotter.XYs, len(snaps))
	for _, p := range points {
		v := float64(p.Production.NEPct)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lines[si[p.Snapshot]] = append(lines[si[p.Snapshot]], plotter.XY{X: float64(wi[p.Window]), Y: v})
	}
	for i, xy := range lines {
		if len(xy) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		pl.Add(l, s)
		pl.Legend.Add(snaps[i], l, s)
	}
	if !math.IsNaN(maxNEDelta) && len(windows) > 0 {
		b, err := plotter.NewLine(plotter.XYs{{X: 0, Y: maxNEDelta}, {X: float64(max(len(windows)-1, 1)), Y: maxNEDelta}})
		if err != nil {
			return nil, err
		}
		b.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		b.Color = plotutil.Color(len(snaps) + 1)
		pl.Add(b)
		pl.Legend.Add(fmt.Sprintf("budget +%g%%", maxNEDelta), b)
	}
	ticks := make([]plot.Tick, len(windows))
	for i, w := range windows {
		ticks[i] = plot.Tick{Value: float64(i), Label: w}
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	pl.Legend.Top = true
	width := vg.Length(max(6, len(windows))) * vg.Inch
	wt, err := pl.WriterTo(width, 4*vg.Inch, ext)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
