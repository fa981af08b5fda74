package cmd

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
	"github.com/rqtools/rq/search"
	"github.com/spf13/cobra"
)

// The demo's model and rows: the criteo-18k reference model, its training
// rows (for calibration), its 1,286 test rows and its 1,285 validation rows
// (held out from the search; see testdata/demo/README.md), embedded so rq
// demo needs no files and no network.
var (
	//go:embed testdata/demo/model.safetensors
	demoModel []byte
	//go:embed testdata/demo/criteo-train.npz
	demoTrain []byte
	//go:embed testdata/demo/criteo-test.npz
	demoTest []byte
	//go:embed testdata/demo/criteo-validation.npz
	demoValidation []byte
)

// demoPresets are the plans the demo quantizes with, smallest error first.
var demoPresets = []string{"fp16", "int8-dynamic", "int8", "int8-int4"}

// demoBudget is the NE budget (percent) of the demo's precision search.
const demoBudget = 0.05

type demoOptions struct {
	*globalOptions
	json    bool
	threads int
}

func newDemoCmd(g *globalOptions, runF func(context.Context, *demoOptions) error) *cobra.Command {
	opts := &demoOptions{globalOptions: g}
	if runF == nil {
		runF = runDemo
	}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded real model and data (no files or network needed)",
		Long: `Run rq on the model and rows embedded in the binary: a facebookresearch/dlrm model trained
on real Criteo rows (13-512-256-64-16 bottom MLP, 26 tables of width 16, dot interaction,
367-512-256-1 top MLP), its 15,429 training rows, 1,286 test rows and 1,285 validation rows.

It evaluates the fp32 model on rq's native kernels (PyTorch gives NE 0.91134 and AUC 0.70535
on these rows), calibrates on the training rows, quantizes with the presets ` + fmt.Sprint(demoPresets) + `,
then searches the smallest per-layer plan within +0.05% NE; it writes and reads back each
quantized file and evaluates each against fp32 on the test rows. Last, it judges the searched
plan on the validation rows, which the search never saw (rq search --holdout): the search picks
among many plans on the test rows, so only rows it did not see say whether its plan holds.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error { return runF(c.Context(), opts) },
	}
	c.Flags().BoolVar(&opts.json, "json", false, "print JSON instead of tables")
	c.Flags().IntVar(&opts.threads, "threads", runtime.NumCPU(), "threads for the forward pass")
	return c
}

// demoRow is one model of the demo's summary.
type demoRow struct {
	Model       string       `json:"model"`
	Bytes       int64        `json:"bytes"`
	FP32Percent report.Float `json:"fp32_percent"`
	NE          report.Float `json:"ne"`
	NEDeltaPct  report.Float `json:"ne_delta_pct"`
	AUC         report.Float `json:"auc"`
	AUCDelta    report.Float `json:"auc_delta"`
	ExPerSec    report.Float `json:"examples_per_sec"`
	// Holdout, on the searched plan's row: its judgement on the validation
	// rows.
	Holdout *search.Holdout `json:"holdout,omitempty"`
}

func runDemo(ctx context.Context, opts *demoOptions) error {
	dir, err := os.MkdirTemp("", "rq-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := map[string][]byte{"criteo-dlrm.safetensors": demoModel, "train.npz": demoTrain, "test.npz": demoTest, "validation.npz": demoValidation}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	modelPath := filepath.Join(dir, "criteo-dlrm.safetensors")
	m, err := modelio.Load(modelPath)
	if err != nil {
		return err
	}
	defer m.Close()
	open := func(name string) (dataset.Reader, error) {
		return dataset.OpenContext(ctx, filepath.Join(dir, name), dataset.Options{BatchSize: 2048, NumDense: m.Net.NumDense, TableRows: m.Net.TableRows(), Rows: dataset.Range{End: -1}})
	}
	say := func(format string, args ...any) {
		if !opts.json {
			fmt.Fprintf(opts.stdout, format, args...)
		}
	}
	say("rq demo: a facebookresearch/dlrm model trained on real Criteo rows (%s, %d tables)\n\n", report.Bytes(m.Net.Bytes()), len(m.Net.Tables))

	// 1. fp32 on the test rows.
	rd, err := open("test.npz")
	if err != nil {
		return err
	}
	base, err := evaluate.Run(ctx, rd, evaluate.Options{Model: m.Net, Threads: opts.threads})
	rd.Close()
	if err != nil {
		return err
	}
	say("1. fp32 on the 1,286 test rows: NE %.5f, AUC %.5f (PyTorch: 0.91134, 0.70535)\n", base.Result.NE, base.Result.AUC)

	// 2. Calibrate on the training rows.
	sha, err := modelio.FileSHA256(modelPath)
	if err != nil {
		return err
	}
	rd, err = open("train.npz")
	if err != nil {
		return err
	}
	bar := newProgress(opts.globalOptions, 15429, "calibrate")
	ranges, err := calibrate.Run(ctx, m.Net, rd, calibrate.Options{Threads: opts.threads, ModelSHA256: sha, Rows: "0:15429", Data: "criteo train rows (embedded)", Progress: bar.set})
	bar.done()
	rd.Close()
	if err != nil {
		return err
	}
	say("2. calibrated %d FC inputs on the 15,429 training rows\n", len(ranges.Layers))

	// 3. Quantize with each preset, write, read back, evaluate against fp32.
	// fp32's speed is taken from a second run: the first paid for the
	// first touch of the model's pages, which the quantized models, run
	// later beside a warm fp32 baseline, do not (it read 5x slower).
	rd, err = open("test.npz")
	if err != nil {
		return err
	}
	warm, err := evaluate.Run(ctx, rd, evaluate.Options{Model: m.Net, Threads: opts.threads})
	rd.Close()
	if err != nil {
		return err
	}
	rows := []demoRow{{Model: precision.FP32.String(), Bytes: m.Net.Bytes(), FP32Percent: 100, NE: report.Float(base.Result.NE), AUC: report.Float(base.Result.AUC), ExPerSec: report.Float(warm.ExamplesPerSec)}}
	quantized := func(name string, plan *quantize.Plan) error {
		qnet, err := quantize.Apply(m.Net, plan, ranges)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "q.safetensors")
		if err := modelio.WriteQuantized(path, qnet, nil, modelio.QuantInfo{SourceSHA256: sha, Plan: plan.Encode()}); err != nil {
			return err
		}
		q, err := modelio.Load(path)
		if err != nil {
			return err
		}
		defer q.Close()
		row, err := demoEval(ctx, q.Net, m.Net, open, opts.threads)
		if err != nil {
			return err
		}
		row.Model = name
		rows = append(rows, row)
		return nil
	}
	for _, preset := range demoPresets {
		plan, err := quantize.Preset(preset, m.Net)
		if err != nil {
			return err
		}
		if err := quantized(preset, plan); err != nil {
			return err
		}
	}
	// 4. Search for the smallest plan within +0.05% NE, then quantize and
	// evaluate it like the presets.
	rd, err = open("test.npz")
	if err != nil {
		return err
	}
	ev, err := search.ReadNetEvaluator(ctx, rd, m.Net, ranges, opts.threads)
	if err != nil {
		return err
	}
	so := search.Options{Budget: search.Budget{MaxNEDelta: demoBudget, MaxAUCDrop: math.NaN()}, Objective: search.ObjectiveSize}
	res, err := search.Run(ctx, ev, so)
	if err != nil {
		return err
	}
	if err := quantized(fmt.Sprintf("search (ΔNE <= %g%%)", demoBudget), res.Plan); err != nil {
		return err
	}
	// 5. The searched plan on rows the search never saw.
	rd, err = open("validation.npz")
	if err != nil {
		return err
	}
	hev, err := search.ReadNetEvaluator(ctx, rd, m.Net, ranges, opts.threads)
	if err != nil {
		return err
	}
	h, err := search.Verify(ctx, hev, res.Plan, so)
	if err != nil {
		return err
	}
	rows[len(rows)-1].Holdout = h
	say("3. quantized with %d presets, each written, read back and run on rq's low-precision kernels\n", len(demoPresets))
	say("4. searched the per-layer plan within ΔNE <= %g%% (upper 95%% bound %+.4f%%): %d evaluations, %.1f s\n",
		demoBudget, res.Summary.DeltaNE.Hi, res.Summary.Evaluations, res.Summary.Seconds)
	say("5. that plan on the %s validation rows the search never saw: ΔNE %s, ΔAUC %s: %s\n\n",
		report.Count(int64(h.Rows)), ci(h.DeltaNE, 4, "%"), ci(h.DeltaAUC, 5, ""), strings.ToUpper(string(h.Verdict)))
	if opts.json {
		return report.JSON(opts.stdout, rows)
	}
	var tbl [][]string
	for _, r := range rows {
		tbl = append(tbl, []string{r.Model, report.Bytes(r.Bytes), report.F(float64(r.FP32Percent), 1) + "%", report.F(float64(r.NE), 5),
			report.Signed(float64(r.NEDeltaPct), 3, "%"), report.F(float64(r.AUC), 5), report.Signed(float64(r.AUCDelta), 5, ""), report.F(float64(r.ExPerSec), 0)})
	}
	return report.Table(opts.stdout, []string{"model", "size", "of fp32", "NE", "ΔNE", "AUC", "ΔAUC", "examples/s"}, tbl)
}

func demoEval(ctx context.Context, q, fp32 *model.Network, open func(string) (dataset.Reader, error), threads int) (demoRow, error) {
	rd, err := open("test.npz")
	if err != nil {
		return demoRow{}, err
	}
	defer rd.Close()
	rep, err := evaluate.Run(ctx, rd, evaluate.Options{Model: q, Baseline: fp32, Threads: threads})
	if err != nil {
		return demoRow{}, err
	}
	return demoRow{Bytes: q.Bytes(), FP32Percent: report.Float(100 * float64(q.Bytes()) / float64(fp32.Bytes())),
		NE: report.Float(rep.Result.NE), NEDeltaPct: report.Float(rep.Delta.NEPct), AUC: report.Float(rep.Result.AUC),
		AUCDelta: report.Float(rep.Delta.AUC), ExPerSec: report.Float(rep.ExamplesPerSec)}, nil
}
