package cmd

import (
	"context"
	"fmt"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type calibrateOptions struct {
	*globalOptions
	models     modelFlags // --interaction, --allow-nonfinite
	model      string
	data       dataFlags
	method     string
	percentile float64
	bins       int
	output     string
	json       bool
}

func newCalibrateCmd(g *globalOptions, runF func(context.Context, *calibrateOptions) error) *cobra.Command {
	opts := &calibrateOptions{globalOptions: g}
	if runF == nil {
		runF = runCalibrate
	}
	c := &cobra.Command{
		Use:   "calibrate --model M --data D [--rows A:B] [--method minmax|percentile|l2|entropy] -o ranges.json",
		Short: "Record the fp32 model's activation ranges on sample data, for static int8 quantization",
		Long: `Run the fp32 model over calibration rows and record, for each FC layer's input, a histogram
(fixed bins that grow their range; bounded memory; mergeable across runs) and the range each
method chooses: minmax; percentile (--percentile); l2 (the range that minimises the L2
quantization error, as DNNLOWP's l2 and PyTorch's HistogramObserver); entropy (KL divergence).
Inputs that follow a ReLU use [0, max]. Per-channel weight statistics are recorded too. NaN and
Inf activations are counted, excluded and reported. Each embedding table's row lookups are counted
too (exactly up to 2^20 rows, else the 65,536 hottest rows within a stated bound), for tables
that keep their hot rows at a higher precision.

ranges.json is versioned and records the model's sha256: rq quantize refuses ranges from
another model. --method sets the default method; rq quantize plans choose per layer.

To spread calibration over machines, run each with --shard I/N and combine the files with
rq merge: the merged ranges.json is the one a single run over all the rows writes.`,
		Example: `  rq calibrate --model dlrm-criteo.pt --data dlrm-processed.npz --rows 0:15429 -o ranges.json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case opts.model == "":
				return usageErrorf("--model is required")
			case opts.output == "":
				return usageErrorf("-o/--output is required")
			}
			switch opts.method {
			case "minmax", "percentile", "l2", "entropy":
			default:
				return usageErrorf("--method must be minmax, percentile, l2 or entropy, not %q", opts.method)
			}
			if !(opts.percentile > 50 && opts.percentile <= 100) {
				return usageErrorf("--percentile must be in (50, 100], got %g", opts.percentile)
			}
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "fp32 model file (.pt or .safetensors)")
	fs.StringVar(&opts.method, "method", "l2", "default range method: minmax, percentile, l2 or entropy")
	fs.Float64Var(&opts.percentile, "percentile", 99.99, "the percentile method's percentile")
	fs.IntVar(&opts.bins, "bins", 2048, "histogram bins per FC input")
	fs.StringVarP(&opts.output, "output", "o", "", "ranges file to write (JSON)")
	fs.BoolVar(&opts.json, "json", false, "print the per-layer summary as JSON")
	opts.data.register(fs)
	opts.data.registerShard(fs, "calibrate on")
	opts.models.register(g, fs, refuseNonFinite)
	return c
}

// calibrationRow is one layer of rq calibrate's summary.
type calibrationRow struct {
	Layer     string     `json:"layer"`
	Count     int64      `json:"count"`
	NonFinite int64      `json:"nonfinite"`
	Min       float32    `json:"min"`
	Max       float32    `json:"max"`
	Range     [2]float32 `json:"range"`
	Method    string     `json:"method"`
}

func runCalibrate(ctx context.Context, opts *calibrateOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Quantized {
		return fmt.Errorf("%s is quantized; calibrate the fp32 model", opts.model)
	}
	dopts, err := opts.data.options(m.Net.NumDense, m.Net.TableRows())
	if err != nil {
		return err
	}
	sha, err := modelio.FileSHA256(opts.model)
	if err != nil {
		return err
	}
	rd, err := dataset.OpenContext(ctx, opts.data.path, dopts)
	if err != nil {
		return err
	}
	defer rd.Close()
	bar := newProgress(opts.globalOptions, rowsTotal(rd), "calibrate")
	r, err := calibrate.Run(ctx, m.Net, rd, calibrate.Options{ModelFile: opts.model,
		Threads: opts.data.threads, Bins: opts.bins, Percentile: opts.percentile, Method: opts.method,
		Progress: bar.set, ModelSHA256: sha, Rows: opts.data.rows, Data: opts.data.path, Shard: opts.data.shardOf(),
	})
	bar.done()
	if err != nil {
		return err
	}
	if err := writeBytes(ctx, opts.output, r.Write, r.Encode); err != nil {
		return err
	}
	var rows []calibrationRow
	for _, name := range fcOrder(m.Net, r.LayerNames()) {
		l := r.Layers[name]
		lo, hi, err := r.Range(name, opts.method)
		if err != nil {
			return err
		}
		h := l.Hist
		rows = append(rows, calibrationRow{Layer: name, Count: int64(h.Count()), NonFinite: int64(h.NonFinite()), Min: h.Min(), Max: h.Max(), Range: [2]float32{lo, hi}, Method: opts.method})
	}
	if opts.json {
		return report.JSON(opts.stdout, rows)
	}
	var tbl [][]string
	var nonfinite int64
	for _, x := range rows {
		nonfinite += x.NonFinite
		tbl = append(tbl, []string{x.Layer, fmt.Sprint(x.Count), fmt.Sprintf("[%.4g, %.4g]", x.Min, x.Max), fmt.Sprintf("[%.4g, %.4g]", x.Range[0], x.Range[1]), fmt.Sprint(x.NonFinite)})
	}
	fmt.Fprintf(opts.stdout, "wrote %s (model sha256 %s…)\n", opts.output, sha[:12])
	if err := report.Table(opts.stdout, []string{"FC input", "values", "observed", opts.method + " range", "NaN/Inf"}, tbl); err != nil {
		return err
	}
	if nonfinite > 0 {
		fmt.Fprintf(opts.stdout, "%d NaN/Inf activations were excluded from the histograms\n", nonfinite)
	}
	if len(r.Tables) > 0 {
		var lookups uint64
		exact := 0
		for _, t := range r.Tables {
			lookups += t.Lookups
			if t.Exact {
				exact++
			}
		}
		fmt.Fprintf(opts.stdout, "counted %d row lookups in %d tables (%d counted exactly, %d as a summary of the hottest rows)\n", lookups, len(r.Tables), exact, len(r.Tables)-exact)
	}
	return nil
}

// fcOrder sorts layer names in network order (the ranges file sorts them by name).
func fcOrder(net *model.Network, names []string) []string {
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	var out []string
	for _, n := range net.LayerNames() {
		if have[n] {
			out = append(out, n)
		}
	}
	return out
}
