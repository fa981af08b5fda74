package debug

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/rqtools/rq/report"
)

// HTML writes r as one self-contained HTML page: a header (rows, NE fp32 →
// quantized, ΔNE), an SQNR bar chart per layer (isolated and propagated),
// the fp32 vs quantized histograms of the worst tensor, the per-layer
// table, the culprits with their suggestions, and the quantized tables' row
// errors. Charts are inline SVG and styles inline CSS, so the page needs no
// network and can be mailed or attached as it is. The same report always
// gives the same bytes.
func HTML(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("debug: HTML of a nil report")
	}
	page := htmlPage{
		Rows:        r.Rows,
		NE:          report.F(float64(r.NE), 5),
		QuantizedNE: report.F(float64(r.QuantizedNE), 5),
		DeltaNE:     report.Signed(float64(r.DeltaNEPct), 4, "%"),
	}
	var err error
	if page.SQNRChart, page.SQNRNotes, err = sqnrChart(r.Layers); err != nil {
		return fmt.Errorf("debug: SQNR chart: %w", err)
	}
	if r.Worst != nil {
		page.Worst = r.Worst.Layer
		page.WorstSQNR = htmlSQNR(r.Worst.SQNR)
		if page.HistChart, page.HistNote, err = histChart(r.Worst); err != nil {
			return fmt.Errorf("debug: histogram chart: %w", err)
		}
	}
	for _, l := range r.Layers {
		row := htmlLayer{Name: l.Name, Kind: l.Kind, Precision: l.Precision, Quantized: l.Quantized, Iso: "–", Clip: "–", WeightSQNR: "–"}
		if l.Isolated != nil {
			row.Iso = htmlSQNR(l.Isolated.SQNR)
		}
		if l.Clip != nil {
			row.Clip = report.F(100*float64(l.Clip.Fraction), 3)
		}
		if l.WeightSQNR != nil {
			row.WeightSQNR = htmlSQNR(*l.WeightSQNR)
		}
		p := l.Propagated
		row.Prop, row.RelL2, row.Cosine = htmlSQNR(p.SQNR), report.F(float64(p.RelL2), 5), report.F(float64(p.Cosine), 6)
		row.MaxAbs = fmt.Sprintf("%s @%d,%d", report.F(float64(p.MaxAbs), 4), p.MaxRow, p.MaxCol)
		page.Layers = append(page.Layers, row)
	}
	for i, c := range r.Culprits {
		page.Culprits = append(page.Culprits, htmlCulprit{Rank: i + 1, Layer: c.Layer, Precision: c.Precision,
			DeltaNE: report.Signed(float64(c.DeltaNEPct), 4, "%"), Costly: float64(c.DeltaNEPct) > 0, Rule: c.Rule, Suggestion: c.Suggestion})
	}
	for _, t := range r.Tables {
		var outl []string
		for i, o := range t.Outliers {
			if i == 5 {
				break
			}
			outl = append(outl, fmt.Sprintf("%d: %.3g", o.Row, float64(o.Range)))
		}
		page.Tables = append(page.Tables, htmlTable{Table: t.Table, Precision: t.Precision, Rows: t.Rows,
			MeanRMSE: report.F(float64(t.MeanRowRMSE), 5), MaxRMSE: fmt.Sprintf("%s @%d", report.F(float64(t.MaxRowRMSE), 5), t.MaxRow),
			MedianRange: report.F(float64(t.MedianRange), 3), MaxRange: report.F(float64(t.MaxRange), 3), Outliers: strings.Join(outl, ", ")})
	}
	// Render to memory first so a failing template writes nothing partial.
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("debug: HTML report: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// htmlPage is everything the template shows, already formatted.
type htmlPage struct {
	Rows                     int64
	NE, QuantizedNE, DeltaNE string
	SQNRChart                template.HTML
	SQNRNotes                []string
	Worst, WorstSQNR         string
	HistChart                template.HTML
	HistNote                 string
	Layers                   []htmlLayer
	Culprits                 []htmlCulprit
	Tables                   []htmlTable
}

type htmlLayer struct {
	Name, Kind, Precision                              string
	Quantized                                          bool
	Iso, Prop, RelL2, Cosine, MaxAbs, Clip, WeightSQNR string
}

type htmlCulprit struct {
	Rank                                        int
	Layer, Precision, DeltaNE, Rule, Suggestion string
	Costly                                      bool
}

type htmlTable struct {
	Table, Precision                                   string
	Rows                                               int64
	MeanRMSE, MaxRMSE, MedianRange, MaxRange, Outliers string
}

// htmlSQNR formats an SQNR for a table cell, as rq debug's text tables do.
func htmlSQNR(v report.Float) string {
	switch f := float64(v); {
	case math.IsInf(f, 1):
		return "exact"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return report.F(float64(v), 1)
}

// Chart colours: a colour-blind-safe blue/orange pair, with lighter tints
// for the capped (non-finite) bars.
var (
	colIso      = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colProp     = color.RGBA{R: 0xe6, G: 0x7e, B: 0x22, A: 0xff}
	colIsoCap   = color.RGBA{R: 0xa6, G: 0xc8, B: 0xe4, A: 0xff}
	colPropCap  = color.RGBA{R: 0xf6, G: 0xcb, B: 0xa0, A: 0xff}
	colFP32Fill = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x66} // not premultiplied
)

// sansFont is the charts' font. gonum/plot's default is Liberation Serif;
// the SVG names the family only (fonts are not embedded, to keep the page
// small), and a browser without Liberation falls back to its own sans.
var sansFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// chartWidth is the charts' width in points: the page's content width
// (1068 CSS px = 801 pt) minus a margin, so they are drawn at 1:1 and their
// text has the size it was laid out with.
const chartWidth = 780

// dBTicks labels an SQNR axis every 10 dB (20 past 100 dB), finer than
// gonum's default of about three labels.
type dBTicks struct{}

func (dBTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 10.0
	if hi-lo > 100 {
		step = 20
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi && len(ts) < 1000; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ts
}

// newPlot is a plot with every text in sansFont.
func newPlot() *plot.Plot {
	p := plot.New()
	p.Title.TextStyle.Font = font.From(sansFont, 13)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 11)
		a.Tick.Label.Font = font.From(sansFont, 9)
	}
	return p
}

// sqnrChart draws isolated and propagated SQNR per layer as horizontal bars
// side by side, first layer on top. Bars cannot be infinitely long, so +Inf
// (exact) is drawn at a cap past the largest finite value and −Inf at a
// floor below the smallest, in lighter tints, with a note saying so.
func sqnrChart(layers []Layer) (template.HTML, []string, error) {
	n := len(layers)
	if n == 0 {
		return "", nil, nil
	}
	lo, hi := 0.0, math.Inf(-1)
	for _, l := range layers {
		vs := []report.Float{l.Propagated.SQNR}
		if l.Isolated != nil {
			vs = append(vs, l.Isolated.SQNR)
		}
		for _, v := range vs {
			if f := float64(v); !math.IsInf(f, 0) && !math.IsNaN(f) {
				lo, hi = math.Min(lo, f), math.Max(hi, f)
			}
		}
	}
	if math.IsInf(hi, -1) || hi < 10 {
		hi = 10 // nothing finite (or nothing positive): a cap of 10 dB still shows the bars
	}
	// Round the cap up past the longest finite bar so a capped bar stands out.
	capHi := 10 * math.Ceil(hi*1.1/10)
	capLo := 0.0
	if lo < 0 {
		capLo = -10 * math.Ceil(-lo*1.1/10)
	}
	var (
		iso, prop, isoCap, propCap = make(plotter.Values, n), make(plotter.Values, n), make(plotter.Values, n), make(plotter.Values, n)
		names                      = make([]string, n)
		nExact, nNegInf, nNaN      int
		outputNoIso                bool
	)
	// Bars are drawn bottom-up, so the last layer gets position 0.
	place := func(v report.Float, val, capped plotter.Values, k int) {
		switch f := float64(v); {
		case math.IsInf(f, 1):
			capped[k] = capHi
			nExact++
		case math.IsInf(f, -1):
			capped[k] = capLo
			nNegInf++
		case math.IsNaN(f):
			nNaN++
		default:
			val[k] = f
		}
	}
	for i, l := range layers {
		k := n - 1 - i
		names[k] = l.Name
		if l.Isolated != nil {
			place(l.Isolated.SQNR, iso, isoCap, k)
		} else if l.Kind == KindOutput {
			outputNoIso = true
		}
		place(l.Propagated.SQNR, prop, propCap, k)
	}
	p := newPlot()
	p.Title.Text = "SQNR per layer (dB, higher is better)"
	p.X.Label.Text = "SQNR (dB)"
	p.X.Min, p.X.Max = capLo, capHi
	p.X.Tick.Marker = dBTicks{}
	const barW = 5.5 // points; a layer's row is 2 bars and a gap
	// Isolated above propagated in each layer's row (a positive offset is
	// up for horizontal bars).
	for _, s := range []struct {
		vals   plotter.Values
		col    color.Color
		offset vg.Length
	}{
		{iso, colIso, barW / 2},
		{isoCap, colIsoCap, barW / 2},
		{prop, colProp, -barW / 2},
		{propCap, colPropCap, -barW / 2},
	} {
		b, err := plotter.NewBarChart(s.vals, barW)
		if err != nil {
			return "", nil, err
		}
		b.Horizontal = true
		b.Color = s.col
		b.LineStyle.Width = 0 // no outline, so empty (zero) bars draw nothing
		b.Offset = s.offset
		p.Add(b)
	}
	p.Add(plotter.NewGrid())
	p.NominalY(names...)
	svg, err := renderSVG(p, chartWidth, vg.Length(60+14*n))
	if err != nil {
		return "", nil, err
	}
	var notes []string
	if nExact > 0 {
		notes = append(notes, fmt.Sprintf("%d bar(s) in the lighter tint are exact (SQNR +Inf: output identical to fp32), drawn capped at %g dB.", nExact, capHi))
	}
	if nNegInf > 0 {
		notes = append(notes, fmt.Sprintf("%d bar(s) in the lighter tint at %g dB are −Inf: the quantized output holds non-finite values.", nNegInf, capLo))
	}
	if nNaN > 0 {
		notes = append(notes, fmt.Sprintf("%d value(s) are undefined (NaN) and drawn as no bar.", nNaN))
	}
	if outputNoIso {
		notes = append(notes, "The output has no isolated SQNR (it is the last layer's propagated error).")
	}
	return svg, notes, nil
}

// histChart draws the worst tensor's fp32 and quantized histograms over
// their shared bins: fp32 filled, quantized as an outline on top, so
// shifted mass and clipping spikes show where the outline leaves the fill.
func histChart(wst *Worst) (template.HTML, string, error) {
	bins := func(h Histogram) []plotter.HistogramBin {
		lo, hi := float64(h.Lo), float64(h.Hi)
		if math.IsNaN(lo) || math.IsInf(lo, 0) || math.IsNaN(hi) || math.IsInf(hi, 0) || hi <= lo || len(h.Counts) == 0 {
			return nil
		}
		w := (hi - lo) / float64(len(h.Counts))
		out := make([]plotter.HistogramBin, len(h.Counts))
		for i, c := range h.Counts {
			out[i] = plotter.HistogramBin{Min: lo + float64(i)*w, Max: lo + float64(i+1)*w, Weight: float64(c)}
		}
		return out
	}
	ref, q := bins(wst.FP32), bins(wst.Quantized)
	if ref == nil && q == nil {
		return "", "No histogram was recorded for this tensor.", nil
	}
	p := newPlot()
	p.Title.Text = "Output values of " + wst.Layer + ": fp32 vs quantized (same inputs)"
	p.X.Label.Text = "value"
	p.Y.Label.Text = "count"
	if ref != nil {
		h := &plotter.Histogram{Bins: ref, Width: ref[0].Max - ref[0].Min, FillColor: colFP32Fill}
		h.LineStyle.Width = 0
		p.Add(h)
	}
	if q != nil {
		h := &plotter.Histogram{Bins: q, Width: q[0].Max - q[0].Min, LineStyle: draw.LineStyle{Color: colProp, Width: vg.Points(1.3)}}
		p.Add(h)
	}
	svg, err := renderSVG(p, chartWidth, 300)
	return svg, "", err
}

// renderSVG draws p as an SVG element for inlining in HTML: without the XML
// prolog (not allowed mid-document) and the unused xlink namespace, so the
// only URL left is the SVG namespace name, which browsers never fetch.
func renderSVG(p *plot.Plot, w, h vg.Length) (template.HTML, error) {
	c := vgsvg.New(w, h)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = strings.Replace(s, "\n\txmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
	// Text in the SVG (layer names) was escaped by vgsvg.FillString.
	return template.HTML(s), nil
}

var htmlTemplate = template.Must(template.New("debug").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rq debug report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 4px; }
h2 { font-size: 1.2em; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.summary { display: flex; gap: 16px; flex-wrap: wrap; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 16px; background: #fafafa; }
.card .k { font-size: 0.8em; color: #666; }
.card .v { font-size: 1.3em; font-variant-numeric: tabular-nums; }
.bad { color: #b03a2e; }
.good { color: #1e8449; }
table { border-collapse: collapse; font-size: 0.85em; width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.q td:first-child { font-weight: 600; }
tr:nth-child(even) td { background: #fbfbfb; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.note { font-size: 0.85em; color: #555; margin: 4px 0; }
.legend { font-size: 0.85em; margin: 8px 0 4px; display: flex; gap: 20px; flex-wrap: wrap; }
.sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: baseline; }
.sw.iso { background: #1f77b4; }
.sw.prop { background: #e67e22; }
.sw.isocap { background: #a6c8e4; margin-right: 2px; }
.sw.propcap { background: #f6cba0; }
.sw.fp32 { background: rgba(31, 119, 180, 0.4); }
.sw.qline { border: 1.5px solid #e67e22; width: 11px; height: 7px; }
td.p { white-space: nowrap; }
</style>
</head>
<body>
<h1>rq debug report</h1>
<p class="note">How far the quantized network strays from its fp32 original, layer by layer. Isolated: the layer alone on exact fp32 inputs. Propagated: the quantized network's own activations, with upstream error carried in.</p>
<div class="summary">
<div class="card"><div class="k">rows</div><div class="v">{{.Rows}}</div></div>
<div class="card"><div class="k">NE fp32 → quantized</div><div class="v">{{.NE}} → {{.QuantizedNE}}</div></div>
<div class="card"><div class="k">ΔNE</div><div class="v">{{.DeltaNE}}</div></div>
{{- if .Worst}}
<div class="card"><div class="k">worst layer (isolated SQNR)</div><div class="v">{{.Worst}} ({{.WorstSQNR}} dB)</div></div>
{{- end}}
</div>

<h2 id="sqnr">SQNR per layer</h2>
{{- if .SQNRChart}}
<div class="legend"><span><i class="sw iso"></i>isolated (exact fp32 inputs)</span><span><i class="sw prop"></i>propagated (quantized network)</span><span><i class="sw isocap"></i><i class="sw propcap"></i>exact (+Inf dB), drawn capped</span></div>
<figure>{{.SQNRChart}}</figure>
{{- range .SQNRNotes}}
<p class="note">{{.}}</p>
{{- end}}
{{- else}}
<p class="note">No layers.</p>
{{- end}}

<h2 id="worst">Worst tensor</h2>
{{- if .Worst}}
<p class="note">{{.Worst}} has the lowest isolated SQNR ({{.WorstSQNR}} dB). Its fp32 and quantized outputs on the same fp32 inputs, over shared bins:</p>
{{- if .HistChart}}
<div class="legend"><span><i class="sw fp32"></i>fp32</span><span><i class="sw qline"></i>quantized</span></div>
<figure>{{.HistChart}}</figure>
{{- end}}
{{- if .HistNote}}
<p class="note">{{.HistNote}}</p>
{{- end}}
{{- else}}
<p class="note">No quantized layer with an isolated SQNR.</p>
{{- end}}

<h2 id="culprits">Culprits</h2>
<p class="note">Every quantized layer, ranked by ΔNE alone: the fp32 network with only that layer quantized. Falling back the top ones (fp32 or fp16 in the plan) recovers most of the ΔNE.</p>
<table>
<thead><tr><th>#</th><th>layer</th><th>precision</th><th>ΔNE alone</th><th>rule</th><th>suggestion</th></tr></thead>
<tbody>
{{- range .Culprits}}
<tr><td class="n">{{.Rank}}</td><td>{{.Layer}}</td><td class="p">{{.Precision}}</td><td class="n{{if .Costly}} bad{{end}}">{{.DeltaNE}}</td><td>{{.Rule}}</td><td>{{.Suggestion}}</td></tr>
{{- else}}
<tr><td colspan="6">No quantized layers.</td></tr>
{{- end}}
</tbody>
</table>

<h2 id="layers">Layers</h2>
<p class="note">SQNR in dB, 10·log10(Σref² / Σ(q−ref)²): "exact" when equal. Clip %: share of a static int8 layer's fp32 inputs outside its calibrated range.</p>
<table>
<thead><tr><th>layer</th><th>kind</th><th>precision</th><th>iso SQNR dB</th><th>prop SQNR dB</th><th>prop rel L2</th><th>prop cosine</th><th>prop max |err| @row,col</th><th>clip %</th><th>weight SQNR dB</th></tr></thead>
<tbody>
{{- range .Layers}}
<tr{{if .Quantized}} class="q"{{end}}><td>{{.Name}}</td><td>{{.Kind}}</td><td class="p">{{.Precision}}</td><td class="n">{{.Iso}}</td><td class="n">{{.Prop}}</td><td class="n">{{.RelL2}}</td><td class="n">{{.Cosine}}</td><td class="n">{{.MaxAbs}}</td><td class="n">{{.Clip}}</td><td class="n">{{.WeightSQNR}}</td></tr>
{{- end}}
</tbody>
</table>

<h2 id="tables">Table row errors</h2>
{{- if .Tables}}
<p class="note">Per quantized table, over every row: RMSE of the dequantized row against fp32, and the row ranges (max − min) its scales must span; the widest rows listed as row: range.</p>
<table>
<thead><tr><th>table</th><th>precision</th><th>rows</th><th>mean row RMSE</th><th>max row RMSE @row</th><th>median range</th><th>max range</th><th>widest rows</th></tr></thead>
<tbody>
{{- range .Tables}}
<tr><td>{{.Table}}</td><td class="p">{{.Precision}}</td><td class="n">{{.Rows}}</td><td class="n">{{.MeanRMSE}}</td><td class="n">{{.MaxRMSE}}</td><td class="n">{{.MedianRange}}</td><td class="n">{{.MaxRange}}</td><td>{{.Outliers}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="note">No quantized tables.</p>
{{- end}}
<p class="note">Written by rq debug.</p>
</body>
</html>
`))
