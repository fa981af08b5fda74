package cmd

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/debug"
	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type debugOptions struct {
	*globalOptions
	models    modelFlags // --interaction, --allow-nonfinite
	model     string
	quantized string
	data      dataFlags
	json      bool
	top       int
	html      string
}

func newDebugCmd(g *globalOptions, runF func(context.Context, *debugOptions) error) *cobra.Command {
	opts := &debugOptions{globalOptions: g}
	if runF == nil {
		runF = runDebug
	}
	c := &cobra.Command{
		Use:   "debug --model FP32 --quantized Q --data D [--rows A:B] [--json] [--top N] [--html FILE]",
		Short: "Find which layers of a quantized model cost accuracy, and why",
		Long: `Compare a quantized model (rq quantize) with the fp32 model it came from, layer by layer, on
the rows of a click log, and name the layers that cost accuracy.

Per layer (each FC layer, each table, the interaction, the output prediction):
  SQNR in dB (10*log10(sum ref^2 / sum (q-ref)^2); higher is better, "exact" when equal),
  relative L2 error, largest absolute error and its row and column, cosine similarity;
  isolated: the layer alone, fed the exact fp32 inputs (tables pool the same indices);
  propagated: the quantized model's own activations, with upstream error carried in.
Per static int8 FC layer: the share of its fp32 inputs outside the calibrated range (clip %).
Per quantized table: row-wise reconstruction error and the rows with the largest ranges.

Culprits: every quantized layer ranked by its ΔNE alone (the fp32 model with only that layer
quantized), with a suggestion from the evidence: input clipping (recalibrate or fall back),
weak int8 weights, activation rounding, tables with outlier rows, or too few bits. Falling
back the top culprits (set them to fp32 or fp16 in the plan) recovers most of the ΔNE.

With --json, exactly one JSON object is printed on stdout (every layer, table and culprit).
With --html FILE, the same analysis is also written as one HTML page with SQNR and histogram
charts, viewable offline in any browser.`,
		Example: `  rq quantize --model dlrm.pt --preset int8 --ranges ranges.json -o dlrm-int8.safetensors
  rq debug --model dlrm.pt --quantized dlrm-int8.safetensors --data test.npz --rows 15429:16715
  rq debug --model dlrm.pt --quantized dlrm-int8.safetensors --data test.npz --html report.html`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case opts.model == "":
				return usageErrorf("--model is required (the fp32 model)")
			case opts.quantized == "":
				return usageErrorf("--quantized is required (the rq quantize output)")
			case opts.top < 0:
				return usageErrorf("--top must be at least 0, got %d", opts.top)
			}
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "fp32 model file (.pt or .safetensors)")
	fs.StringVar(&opts.quantized, "quantized", "", "quantized model of it (rq quantize output)")
	fs.BoolVar(&opts.json, "json", false, "print one JSON object instead of tables")
	fs.IntVar(&opts.top, "top", 5, "culprits to list in the table (0: all)")
	fs.StringVar(&opts.html, "html", "", "also write a self-contained HTML report (charts inline, no network) to `FILE`")
	opts.data.register(fs)
	opts.models.register(g, fs, refuseNonFinite)
	return c
}

// debugOutput is rq debug's JSON: the inputs, then the analysis.
type debugOutput struct {
	Model     string `json:"model"`
	Quantized string `json:"quantized"`
	Data      string `json:"data"`
	RowRange  string `json:"row_range,omitempty"`
	*debug.Report
}

func runDebug(ctx context.Context, opts *debugOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Quantized {
		return fmt.Errorf("--model %s is a quantized file; give the fp32 model it came from", opts.model)
	}
	q, err := opts.models.load(ctx, opts.quantized)
	if err != nil {
		return err
	}
	defer q.Close()
	if !q.Quantized {
		return fmt.Errorf("--quantized %s is not an rq quantized model (rq quantize writes one)", opts.quantized)
	}
	if err := debug.Compatible(m.Net, q.Net); err != nil {
		return fmt.Errorf("%s is not a quantization of %s: %w", opts.quantized, opts.model, err)
	}
	if err := debug.CheckFP32(m.Net); err != nil {
		return fmt.Errorf("%s: %w", opts.model, err)
	}
	// The structure matches; a different source hash is worth a note only,
	// since the same weights saved as .pt and .safetensors hash apart.
	if src, _ := q.Meta["rq.source_sha256"].(string); src != "" {
		if sha, err := modelio.FileSHA256(opts.model); err == nil && sha != src {
			fmt.Fprintf(opts.stderr, "rq: note: %s was quantized from a file other than %s (sha256 %.12s, not %.12s); fine if it holds the same weights\n", opts.quantized, opts.model, src, sha)
		}
	}
	if opts.html != "" && !isObject(opts.html) {
		// Fail before the analysis, not after minutes of it, when the page
		// cannot be written where asked.
		if st, err := os.Stat(filepath.Dir(localName(opts.html))); err != nil {
			return fmt.Errorf("--html %s: %w", opts.html, err)
		} else if !st.IsDir() {
			return fmt.Errorf("--html %s: %s is not a directory", opts.html, filepath.Dir(opts.html))
		}
	}
	dopts, err := opts.data.options(m.Net.NumDense, m.Net.TableRows())
	if err != nil {
		return err
	}
	rd, err := dataset.OpenContext(ctx, opts.data.path, dopts)
	if err != nil {
		return err
	}
	defer rd.Close()
	bar := newProgress(opts.globalOptions, rowsTotal(rd), "debug")
	rep, err := debug.Analyze(ctx, m.Net, q.Net, rd, debug.Options{Threads: opts.data.threads, Progress: bar.set})
	bar.done()
	if err != nil {
		return err
	}
	if opts.html != "" {
		// Atomic: a failed run never leaves a half-written page behind.
		page := func(w io.Writer) error { return debug.HTML(w, rep) }
		if err := writeOutput(ctx, opts.html, func(p string) error { return atomicfile.WriteFile(p, page) }, page); err != nil {
			return err
		}
	}
	out := &debugOutput{Model: opts.model, Quantized: opts.quantized, Data: opts.data.path, RowRange: opts.data.rows, Report: rep}
	if opts.json {
		return report.JSON(opts.stdout, out)
	}
	return debugTables(opts.stdout, out, opts.top)
}

// sqnr formats an SQNR for a table cell.
func sqnr(v report.Float) string {
	switch f := float64(v); {
	case math.IsInf(f, 1):
		return "exact"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return report.F(float64(v), 1)
}

// debugTables prints the per-layer table, the quantized tables' rows, and
// the top culprits.
func debugTables(w io.Writer, out *debugOutput, top int) error {
	r := out.Report
	fmt.Fprintf(w, "%s vs %s on %d rows of %s\n", out.Quantized, out.Model, r.Rows, out.Data)
	fmt.Fprintf(w, "NE %s (fp32) -> %s (quantized): ΔNE %s\n\n", report.F(float64(r.NE), 5), report.F(float64(r.QuantizedNE), 5), report.Signed(float64(r.DeltaNEPct), 4, "%"))
	var rows [][]string
	for _, l := range r.Layers {
		iso, clip, wq := "", "", ""
		if l.Isolated != nil {
			iso = sqnr(l.Isolated.SQNR)
		}
		if l.Clip != nil {
			clip = report.F(100*float64(l.Clip.Fraction), 3)
		}
		if l.WeightSQNR != nil {
			wq = sqnr(*l.WeightSQNR)
		}
		p := l.Propagated
		rows = append(rows, []string{l.Name, l.Precision, iso, sqnr(p.SQNR), report.F(float64(p.RelL2), 5), report.F(float64(p.Cosine), 6),
			fmt.Sprintf("%s @%d,%d", report.F(float64(p.MaxAbs), 4), p.MaxRow, p.MaxCol), clip, wq})
	}
	if err := report.Table(w, []string{"layer", "precision", "iso SQNR dB", "prop SQNR dB", "prop rel L2", "prop cosine", "prop max |err| @row,col", "clip %", "weight SQNR dB"}, rows); err != nil {
		return err
	}
	if len(r.Tables) > 0 {
		rows = rows[:0]
		for _, t := range r.Tables {
			var outl string
			for i, o := range t.Outliers {
				if i == 3 {
					break
				}
				outl += fmt.Sprintf("%d:%.3g ", o.Row, float64(o.Range))
			}
			rows = append(rows, []string{t.Table, t.Precision, report.F(float64(t.MeanRowRMSE), 5), fmt.Sprintf("%s @%d", report.F(float64(t.MaxRowRMSE), 5), t.MaxRow),
				report.F(float64(t.MedianRange), 3), report.F(float64(t.MaxRange), 3), outl})
			rows = append(rows, mixedPartRows(t)...)
		}
		fmt.Fprintln(w)
		if err := report.Table(w, []string{"table", "precision", "mean row RMSE", "max row RMSE @row", "median range", "max range", "widest rows (row:range)"}, rows); err != nil {
			return err
		}
	}
	rows = rows[:0]
	for i, c := range r.Culprits {
		if top > 0 && i == top {
			break
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), c.Layer, c.Precision, report.Signed(float64(c.DeltaNEPct), 4, "%"), c.Suggestion})
	}
	fmt.Fprintf(w, "\nculprits (ΔNE with only that layer quantized; %d of %d):\n", len(rows), len(r.Culprits))
	return report.Table(w, []string{"#", "layer", "precision", "ΔNE alone", "suggestion"}, rows)
}
