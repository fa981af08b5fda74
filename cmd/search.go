package cmd

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
	"github.com/rqtools/rq/search"
	"github.com/spf13/cobra"
)

type searchOptions struct {
	*globalOptions
	models                 modelFlags // --interaction, --allow-nonfinite
	model, ranges          string
	data                   dataFlags
	maxNEDelta, maxAUCDrop float64
	objective              string
	ladder                 string
	allowInt2              bool
	confidence             float64
	maxEvals               int
	timeLimit              time.Duration
	resume                 string
	holdout                string // --holdout rows, "" for none
	output, trace          string
	json                   bool
}

func newSearchCmd(g *globalOptions, runF func(context.Context, *searchOptions) error) *cobra.Command {
	opts := &searchOptions{globalOptions: g}
	if runF == nil {
		runF = runSearch
	}
	c := &cobra.Command{
		Use:   "search --model M --ranges R --data D [--rows A:B] --max-ne-delta PCT [--max-auc-drop X] -o plan.json",
		Short: "Find the smallest (or fastest) per-layer precision plan within an NE/AUC budget",
		Long: `Search for the per-layer precision plan that meets an accuracy budget at the least size
(--objective size) or predicted latency (--objective latency, from kernel speeds measured on
this machine and cached). Ladders: tables mixed-int8-int2@0.01 -> @0.02 -> @0.04 -> mxfp4 ->
mixed-int8-mxfp4@0.05 -> @0.15 -> int4 -> mxfp6_e2m3 -> int8 -> fp16 -> fp32 (int2 first with
--allow-int2; mixed rungs, the share of rows most looked up in calibration at int8 and the rest at
int2 or mxfp4, only for tables --ranges has access counts for; rungs not smaller than one above
are skipped), FC layers mxfp4 -> mxfp6_e2m3 -> int8-static -> int8-dynamic -> fp16 -> fp32
(MX FC weights run on the bf16 GEMM); --ladder overrides.

The search: fp32 baseline; the all-lowest plan (done if it passes); each layer's sensitivity
(that layer alone at its lowest rung); the shortest prefix of the most sensitive layers to fall
back, found by bisection; middle rungs where they suffice; then reclaiming fallen-back layers
least sensitive first. ΔNE and ΔAUC are paired on the same rows with a bootstrap confidence
interval: a plan passes only when the interval's upper end meets the budget, and a plan whose
interval straddles it is "inconclusive" (too few rows to decide).

Because the search keeps the smallest of many plans that pass on its rows, the winner's interval
is flattered by those rows' noise: --holdout A:B names rows of --data the search never sees, on
which the chosen plan is evaluated once against fp32 with its own interval; when it does not
pass there, rq exits 3 (the plan is still written). Give it rows from the same distribution,
e.g. the next day or a validation split.

The best plan so far is always written (-o), also when interrupted or when no plan meets the
budget (then rq exits 3 and says which layers break it even with fp32 neighbours). --trace
records every plan evaluated; --resume continues from it.`,
		Example: `  rq search --model dlrm.pt --ranges ranges.json --data eval.npz --max-ne-delta 0.05 -o plan.json --trace trace.json
  rq quantize --model dlrm.pt --plan plan.json --ranges ranges.json -o dlrm-q.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case opts.model == "":
				return usageErrorf("--model is required")
			case opts.output == "":
				return usageErrorf("-o/--output is required")
			case !c.Flags().Changed("max-ne-delta"):
				return usageErrorf("--max-ne-delta is required (the largest NE increase allowed, in percent)")
			case opts.objective != search.ObjectiveSize && opts.objective != search.ObjectiveLatency:
				return usageErrorf("--objective must be size or latency, not %q", opts.objective)
			case !(opts.confidence > 0 && opts.confidence < 1):
				return usageErrorf("--confidence must be in (0, 1), got %g", opts.confidence)
			}
			if !c.Flags().Changed("max-auc-drop") {
				opts.maxAUCDrop = math.NaN()
			}
			if opts.holdout != "" {
				if err := checkHoldout(opts.holdout, opts.data.rows); err != nil {
					return err
				}
			}
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "fp32 model file (.pt or .safetensors)")
	fs.StringVar(&opts.ranges, "ranges", "", "calibrated ranges (rq calibrate); without them static int8 and mixed-table rungs are skipped")
	fs.Float64Var(&opts.maxNEDelta, "max-ne-delta", 0, "budget: largest allowed NE increase over fp32, in percent")
	fs.Float64Var(&opts.maxAUCDrop, "max-auc-drop", 0, "budget: largest allowed AUC drop below fp32")
	fs.StringVar(&opts.objective, "objective", search.ObjectiveSize, "what to minimise: size or latency")
	fs.StringVar(&opts.ladder, "ladder", "", `override ladders, e.g. "table=mixed-int8-int2@0.05,int4-greedy,int8,fp32;fc=int8-dynamic,bf16;top_l.4=fp32"`)
	fs.BoolVar(&opts.allowInt2, "allow-int2", false, "let tables go down to 2-bit")
	fs.Float64Var(&opts.confidence, "confidence", search.DefaultConfidence, "confidence of the bootstrap intervals")
	fs.IntVar(&opts.maxEvals, "max-evals", 0, "stop after this many plan evaluations (0: no limit)")
	fs.DurationVar(&opts.timeLimit, "time-limit", 0, "stop after this long (0: no limit)")
	fs.StringVar(&opts.resume, "resume", "", "trace of an interrupted search to continue")
	fs.StringVar(&opts.holdout, "holdout", "", "row range A:B of --data, disjoint from --rows, to judge the chosen plan on once (exit 3 when it fails there)")
	fs.StringVarP(&opts.output, "output", "o", "", "plan file to write (JSON, for rq quantize --plan)")
	fs.StringVar(&opts.trace, "trace", "", "write every evaluated plan to this JSON trace")
	fs.BoolVar(&opts.json, "json", false, "print the result as JSON")
	opts.data.register(fs)
	opts.models.register(g, fs, refuseNonFinite)
	return c
}

func runSearch(ctx context.Context, opts *searchOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Quantized {
		return fmt.Errorf("%s is quantized; search from the fp32 model", opts.model)
	}
	ladders := search.DefaultLadders(opts.allowInt2)
	if opts.ladder != "" {
		if ladders, err = search.ParseLadders(opts.ladder, ladders); err != nil {
			return usageErrorf("--ladder: %v", err)
		}
	}
	var ranges quantize.RangeSource
	if opts.ranges != "" {
		sha, err := modelio.FileSHA256(opts.model)
		if err != nil {
			return err
		}
		r, err := loadRanges(opts.ranges, sha, opts.model)
		if err != nil {
			return err
		}
		ranges = r
	} else {
		ladders = withoutStatic(ladders)
	}
	var resume *search.Trace
	if opts.resume != "" {
		if resume, err = search.ReadTrace(opts.resume); err != nil {
			return err
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
	ev, err := search.ReadNetEvaluator(ctx, rd, m.Net, ranges, opts.data.threads)
	if err != nil {
		return err
	}
	so := search.Options{
		Budget:     search.Budget{MaxNEDelta: opts.maxNEDelta, MaxAUCDrop: opts.maxAUCDrop},
		Objective:  opts.objective,
		Ladders:    ladders,
		Confidence: opts.confidence,
		MaxEvals:   opts.maxEvals,
		TimeLimit:  opts.timeLimit,
		Resume:     resume,
	}
	if opts.objective == search.ObjectiveLatency {
		cost, err := search.LoadOrMeasureCost(ctx, ev.Layers(), search.CostOptions{Batch: opts.data.batch, Threads: opts.data.threads})
		if err != nil {
			return err
		}
		so.Cost = cost
	}
	if opts.trace != "" {
		so.Checkpoint = func(t *search.Trace) {
			if err := writeBytes(ctx, opts.trace, t.Write, encoded(t.Encode)); err != nil {
				fmt.Fprintf(opts.stderr, "rq: writing %s: %v\n", opts.trace, err)
			}
		}
	}
	bar := newProgress(opts.globalOptions, 0, "search")
	so.Progress = func(done, total int) { bar.setTotal(int64(total)); bar.set(int64(done)) }
	res, err := search.Run(ctx, ev, so)
	bar.done()
	if err != nil {
		return err
	}
	if opts.holdout != "" && res.Stopped != search.StopCanceled {
		if res.Holdout, err = verifyHoldout(ctx, opts, m.Net, ranges, dopts, res.Plan, so); err != nil {
			return err
		}
	}
	// The best plan so far is always written.
	if err := writeBytes(ctx, opts.output, res.Plan.Write, encoded(res.Plan.Encode)); err != nil {
		return err
	}
	if opts.trace != "" && res.Trace != nil {
		if err := writeBytes(ctx, opts.trace, res.Trace.Write, encoded(res.Trace.Encode)); err != nil {
			return err
		}
	}
	if opts.json {
		err = report.JSON(opts.stdout, res)
	} else {
		err = searchTable(opts, res)
	}
	if err != nil {
		return err
	}
	switch {
	case !res.Attained:
		return &exitError{code: ExitBudget, err: fmt.Errorf("no plan meets the budget (best plan written to %s): %s", opts.output, strings.Join(res.Explanation, "; "))}
	case res.Holdout != nil && res.Holdout.Verdict == search.Fail:
		h := res.Holdout
		return &exitError{code: ExitBudget, err: fmt.Errorf("the plan in %s meets the budget on the search rows but breaks it on the %d held-out rows %s (ΔNE %s): it is fitted to the search rows' noise; search on more rows or with a tighter budget",
			opts.output, h.Rows, opts.holdout, ci(h.DeltaNE, 4, "%"))}
	case res.Holdout != nil && res.Holdout.Verdict != search.Pass:
		h := res.Holdout
		return &exitError{code: ExitBudget, err: fmt.Errorf("the plan in %s meets the budget on the search rows, but the %d held-out rows %s cannot confirm it (ΔNE %s straddles the budget): hold out more rows",
			opts.output, h.Rows, opts.holdout, ci(h.DeltaNE, 4, "%"))}
	case res.Stopped != "":
		fmt.Fprintf(opts.stderr, "rq: search stopped early (%s); the best plan so far is in %s\n", res.Stopped, opts.output)
	}
	return nil
}

// withoutStatic drops static int8 rungs (they need calibrated ranges).
func withoutStatic(l search.Ladders) search.Ladders {
	drop := func(rungs []string) []string {
		var out []string
		for _, r := range rungs {
			if !search.NeedsRanges(r) {
				out = append(out, r)
			}
		}
		return out
	}
	l.FC = drop(l.FC)
	per := map[string][]string{}
	for k, v := range l.PerLayer {
		per[k] = drop(v)
	}
	l.PerLayer = per
	return l
}

func ci(iv search.Interval, dec int, suffix string) string {
	return fmt.Sprintf("%+.*f%s [%+.*f, %+.*f]", dec, iv.Point, suffix, dec, iv.Lo, dec, iv.Hi)
}

func searchTable(opts *searchOptions, res *search.Result) error {
	var rows [][]string
	for _, l := range res.Layers {
		own := ""
		if l.Own != nil {
			own = fmt.Sprintf("%+.4f%% (%s)", l.Own.DeltaNE.Point, l.OwnRung)
		}
		rows = append(rows, []string{l.Layer, l.Kind, l.Rung, own, report.Bytes(l.Bytes), fmt.Sprintf("%.1f%%", 100*float64(l.Bytes)/float64(max(l.FP32Bytes, 1)))})
	}
	if err := report.Table(opts.stdout, []string{"layer", "kind", "precision", "own ΔNE alone", "bytes", "of fp32"}, rows); err != nil {
		return err
	}
	s := res.Summary
	verdict := "meets the budget"
	if !res.Attained {
		verdict = "does NOT meet the budget"
	}
	fmt.Fprintf(opts.stdout, "plan %s (%s): ΔNE %s, ΔAUC %s (%g%% confidence)\n", opts.output, verdict, ci(s.DeltaNE, 4, "%"), ci(s.DeltaAUC, 5, ""), 100*opts.confidence)
	fmt.Fprintf(opts.stdout, "size %s = %.1f%% of fp32 (%s)", report.Bytes(s.Bytes), 100*float64(s.Bytes)/float64(max(s.FP32Bytes, 1)), report.Bytes(s.FP32Bytes))
	if s.LatencyUS > 0 {
		fmt.Fprintf(opts.stdout, "; predicted %.0f µs per batch vs %.0f fp32", s.LatencyUS, s.FP32LatencyUS)
	}
	steps := []string{}
	for _, k := range []string{search.StepAllLowest, search.StepSensitivity, search.StepBisect, search.StepMiddle, search.StepReclaim} {
		if n := s.Steps[k]; n > 0 {
			steps = append(steps, fmt.Sprintf("%s %d", k, n))
		}
	}
	fmt.Fprintf(opts.stdout, "\n%d evaluations (%s; bound %d), %d resumed, %.1f s\n", s.Evaluations, strings.Join(steps, ", "), s.Bound, s.Resumed, s.Seconds)
	if h := res.Holdout; h != nil {
		fmt.Fprintf(opts.stdout, "held-out rows %s (%d): ΔNE %s, ΔAUC %s: %s\n", opts.holdout, h.Rows, ci(h.DeltaNE, 4, "%"), ci(h.DeltaAUC, 5, ""), strings.ToUpper(string(h.Verdict)))
	}
	for _, e := range res.Explanation {
		fmt.Fprintf(opts.stdout, "  %s\n", e)
	}
	return nil
}

// checkHoldout parses --holdout and refuses rows that overlap --rows (all
// rows when --rows is not given): rows the search saw are no check.
func checkHoldout(holdout, rows string) error {
	h, err := dataset.ParseRange(holdout)
	if err != nil {
		return usageErrorf("--holdout: %v", err)
	}
	r := dataset.AllRows
	if rows != "" {
		if r, err = dataset.ParseRange(rows); err != nil {
			return usageErrorf("--rows: %v", err)
		}
	}
	// [a, b) and [c, d) overlap when a < d and c < b, an End < 0 being
	// the end of the data.
	before := func(x, end int64) bool { return end < 0 || x < end }
	if before(h.Start, r.End) && before(r.Start, h.End) {
		return usageErrorf("--holdout %s overlaps the search rows (--rows %s): held-out rows must be rows the search never sees", holdout, r)
	}
	return nil
}

// verifyHoldout reads the --holdout rows of --data and judges plan on
// them (search.Verify) with the search's budget and bootstrap settings.
func verifyHoldout(ctx context.Context, opts *searchOptions, net *model.Network, ranges quantize.RangeSource, dopts dataset.Options, plan *quantize.Plan, so search.Options) (*search.Holdout, error) {
	rows, err := dataset.ParseRange(opts.holdout)
	if err != nil {
		return nil, usageErrorf("--holdout: %v", err)
	}
	dopts.Rows = rows
	rd, err := dataset.OpenContext(ctx, opts.data.path, dopts)
	if err != nil {
		return nil, fmt.Errorf("--holdout %s: %w", opts.holdout, err)
	}
	ev, err := search.ReadNetEvaluator(ctx, rd, net, ranges, opts.data.threads)
	if err != nil {
		return nil, fmt.Errorf("--holdout %s: %w", opts.holdout, err)
	}
	if len(ev.Labels()) == 0 {
		return nil, fmt.Errorf("--holdout %s: %s has no rows there", opts.holdout, opts.data.path)
	}
	return search.Verify(ctx, ev, plan, so)
}
