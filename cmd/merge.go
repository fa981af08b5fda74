package cmd

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type mergeOptions struct {
	*globalOptions
	files   []string
	output  string
	json    bool
	partial bool
	// Budgets against the states' baseline (NaN: none), as rq eval's.
	maxNEDelta, maxAUCDrop float64
	summaryMD              string
}

func newMergeCmd(g *globalOptions, runF func(context.Context, *mergeOptions) error) *cobra.Command {
	opts := &mergeOptions{globalOptions: g}
	if runF == nil {
		runF = runMerge
	}
	c := &cobra.Command{
		Use:   "merge FILE... [-o OUT] [--json]",
		Short: "Combine shards of an evaluation (rq eval --state-out) or a calibration (ranges.json)",
		Long: `Combine the results of rq eval or rq calibrate run on shards of the rows (--shard I/N), on
one machine or many, into the result of one run over all the rows.

Evaluation states (rq eval --shard I/N --state-out FILE): the merged NE, log loss, AUC,
calibration and accuracy are bit for bit those of one rq eval over every shard (the sums are
fixed point; AUC comes from a prediction histogram that merges exactly, see auc_error_bound).
The result prints as rq eval prints it (--json, --summary-md, and --max-ne-delta /
--max-auc-drop against the states' baseline, exiting 3 when broken). -o also writes the merged
state, so merges can be done in a tree. Every shard 0..N-1 must be present, each once, unless
--partial.

Calibrations (rq calibrate --shard I/N -o ranges.I.json): the histograms merge exactly and the
ranges are recomputed; with every shard present, -o gets byte for byte the ranges.json of one
unsharded run. Unsharded ranges files of the same model merge too (rows "A + B").

See docs/sharding.md.`,
		Example: `  for i in 0 1 2 3; do rq eval --model m.safetensors --baseline m.pt --data day.npz --shard $i/4 --state-out s$i.json & done; wait
  rq merge s0.json s1.json s2.json s3.json --max-ne-delta 0.05
  rq merge ranges.0.json ranges.1.json -o ranges.json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("give the files to merge")
			}
			opts.files = args
			if !c.Flags().Changed("max-ne-delta") {
				opts.maxNEDelta = math.NaN()
			}
			if !c.Flags().Changed("max-auc-drop") {
				opts.maxAUCDrop = math.NaN()
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVarP(&opts.output, "output", "o", "", "write the merged state or ranges.json here (required for ranges)")
	fs.BoolVar(&opts.json, "json", false, "print one JSON object instead of a table (evaluations)")
	fs.BoolVar(&opts.partial, "partial", false, "accept evaluation states that do not cover every shard")
	fs.Float64Var(&opts.maxNEDelta, "max-ne-delta", 0, "budget: largest allowed NE increase over the baseline, in percent")
	fs.Float64Var(&opts.maxAUCDrop, "max-auc-drop", 0, "budget: largest allowed AUC drop below the baseline")
	fs.StringVar(&opts.summaryMD, "summary-md", "", "also write a Markdown summary to this file (evaluations)")
	return c
}

func runMerge(ctx context.Context, opts *mergeOptions) error {
	// A directory or a prefix (s3://bucket/run/states/) stands for the
	// files in it: the shards' states, checked below as any files are.
	files, err := expandPrefixes(ctx, opts.files)
	if err != nil {
		return err
	}
	opts.files = files
	if err := opts.paths().check(); err != nil {
		return err
	}
	first, err := readMergeInput(opts.files[0])
	if err != nil {
		return err
	}
	if evaluate.IsState(first) {
		return mergeEvals(ctx, opts, first)
	}
	return mergeRanges(ctx, opts)
}

func mergeRanges(ctx context.Context, opts *mergeOptions) error {
	if opts.output == "" {
		return usageErrorf("merging ranges files needs -o/--output")
	}
	if !math.IsNaN(opts.maxNEDelta) || !math.IsNaN(opts.maxAUCDrop) || opts.summaryMD != "" || opts.json {
		return usageErrorf("--json, --summary-md and budgets apply to evaluation states, and %s is a ranges file", opts.files[0])
	}
	var out *calibrate.Ranges
	for _, f := range opts.files {
		r, err := calibrate.Read(f)
		if err != nil {
			if st, rerr := readMergeInput(f); rerr == nil && evaluate.IsState(st) {
				return fmt.Errorf("%s is an evaluation state, %s a ranges file: merge one kind at a time", f, opts.files[0])
			}
			return err
		}
		if out == nil {
			out = r
			continue
		}
		if out, err = calibrate.Merge(out, r); err != nil {
			return err
		}
	}
	if out.ShardCount > 1 && !opts.partial {
		return fmt.Errorf("the ranges cover shards %v of %d: give every shard (or --partial to write a partial merge)", out.Shards, out.ShardCount)
	}
	if err := writeBytes(ctx, opts.output, out.Write, out.Encode); err != nil {
		return err
	}
	var values int64
	for _, l := range out.Layers {
		values += int64(l.Hist.Count())
	}
	what := "all rows"
	if out.ShardCount > 1 {
		what = fmt.Sprintf("shards %v of %d", out.Shards, out.ShardCount)
	}
	_, err := fmt.Fprintf(opts.stdout, "wrote %s: %d files, %s of %s, %d FC layers, %d activation values\n", opts.output, len(opts.files), what, out.Rows, len(out.Layers), values)
	return err
}

// mergeEvals merges evaluation states; first is the first file's content.
func mergeEvals(ctx context.Context, opts *mergeOptions, first []byte) error {
	var states []*evaluate.State
	for i, f := range opts.files {
		data := first
		if i > 0 {
			var err error
			if data, err = readMergeInput(f); err != nil {
				return err
			}
		}
		s, err := evaluate.ParseState(f, data)
		if err != nil {
			if !evaluate.IsState(data) {
				return fmt.Errorf("%s is not an evaluation state (rq eval --state-out), but %s is: merge one kind at a time", f, opts.files[0])
			}
			return err
		}
		states = append(states, s)
	}
	st, err := evaluate.MergeStates(states)
	if err != nil {
		return err
	}
	if !st.Complete() && !opts.partial {
		return fmt.Errorf("shards %s of %d are missing: give every shard's state (or --partial)", joinInts(st.Missing()), st.ShardCount)
	}
	if (!math.IsNaN(opts.maxNEDelta) || !math.IsNaN(opts.maxAUCDrop)) && st.Baseline == "" {
		return usageErrorf("--max-ne-delta and --max-auc-drop need states evaluated with --baseline")
	}
	rep, err := st.Report()
	if err != nil {
		return err
	}
	if opts.output != "" {
		if err := writeBytes(ctx, opts.output, st.Write, st.Encode); err != nil {
			return err
		}
	}
	out := report.NewEval(st.Model, st.Data, st.Rows, st.Threads, st.Batch, st.Baseline, rep)
	out.Bytes, out.BaselineBytes = st.Bytes, st.BaselineBytes
	out.Shards = fmt.Sprintf("all %d", st.ShardCount)
	if !st.Complete() {
		out.Shards = fmt.Sprintf("%s of %d", joinInts(st.Shards), st.ShardCount)
	}
	if st.Simulate {
		d := report.Float(rep.ShadowMaxAbsDiff)
		out.SimulateMaxAbsDiff = &d
	}
	return emitEval(ctx, opts.globalOptions, out, rep.Delta, opts.maxNEDelta, opts.maxAUCDrop, opts.summaryMD, opts.json)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// readMergeInput reads one file given to rq merge, refusing a file larger
// than any state or ranges document may be before reading it (a 10 GB file
// was read whole before it was refused).
func readMergeInput(path string) ([]byte, error) {
	return strictjson.ReadBytes(path, strictjson.Options{Kind: "evaluation state or ranges", MaxBytes: max(evaluate.StateMaxBytes, calibrate.MaxFileSize)})
}
