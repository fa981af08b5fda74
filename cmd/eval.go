package cmd

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/quantize"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type evalOptions struct {
	*globalOptions
	models   modelFlags // --interaction, --allow-nonfinite
	model    string
	baseline string
	data     dataFlags
	json     bool
	simulate bool
	// Budgets against the baseline (NaN: none).
	maxNEDelta, maxAUCDrop float64
	summaryMD              string
	stateOut               string
	// labels, when set, name the model and data in the output instead of
	// their paths (the demo's files live in a temp dir).
	modelLabel, dataLabel string
}

func newEvalCmd(g *globalOptions, runF func(context.Context, *evalOptions) error) *cobra.Command {
	opts := &evalOptions{globalOptions: g}
	if runF == nil {
		runF = runEval
	}
	c := &cobra.Command{
		Use:   "eval --model M --data D [--rows A:B] [--baseline B] [--json]",
		Short: "Run a model on a click log and report NE, AUC, log loss (and deltas against a baseline)",
		Long: `Run a model on rq's native kernels over a click log and report its accuracy:
NE (normalized entropy: log loss over the entropy of the CTR, lower is better), log loss,
AUC, calibration (mean prediction / CTR), accuracy at 0.5, and forward-pass examples/s.

With --baseline, the baseline model runs on the very same rows and the change is reported
(delta.ne_pct = 100*(ne - ne_base)/ne_base, delta.auc, delta.logloss).
With --json, exactly one JSON object is printed on stdout.

To spread an evaluation over machines, run each with --shard I/N --state-out FILE and combine
the files with rq merge: the merged figures equal one run's over all the rows (docs/sharding.md).

Quantized files (rq quantize) run on the native low-precision kernels. --simulate runs the
same model as fp32 fake-quant instead (dequantized weights, quantize-dequantize of each int8
layer's input) and reports the largest prediction difference from the real kernels.

As a CI gate: --max-ne-delta PCT and --max-auc-drop X judge the model against --baseline; the
JSON gains "pass", and rq exits 3 when a budget is broken. --summary-md FILE writes a Markdown
table fit for a CI job summary.`,
		Example: `  rq eval --model dlrm-criteo.pt --data dlrm-processed.npz --rows 15429:16715
  rq eval --model model.safetensors --data criteo.tsv --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if opts.model == "" {
				return usageErrorf("--model is required")
			}
			if !c.Flags().Changed("max-ne-delta") {
				opts.maxNEDelta = math.NaN()
			}
			if !c.Flags().Changed("max-auc-drop") {
				opts.maxAUCDrop = math.NaN()
			}
			if (!math.IsNaN(opts.maxNEDelta) || !math.IsNaN(opts.maxAUCDrop)) && opts.baseline == "" {
				return usageErrorf("--max-ne-delta and --max-auc-drop need --baseline (the model to compare with)")
			}
			if err := opts.models.check(opts.stateOut); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "model file (.pt checkpoint or .safetensors)")
	fs.StringVar(&opts.baseline, "baseline", "", "baseline model to compare against on the same rows")
	fs.BoolVar(&opts.json, "json", false, "print one JSON object instead of a table")
	fs.BoolVar(&opts.simulate, "simulate", false, "run a quantized model as fp32 fake-quant and report its largest difference from the real kernels")
	fs.Float64Var(&opts.maxNEDelta, "max-ne-delta", 0, "budget: largest allowed NE increase over the baseline, in percent (e.g. 0.05)")
	fs.Float64Var(&opts.maxAUCDrop, "max-auc-drop", 0, "budget: largest allowed AUC drop below the baseline (e.g. 0.0005)")
	fs.StringVar(&opts.summaryMD, "summary-md", "", "also write a Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
	fs.StringVar(&opts.stateOut, "state-out", "", "also write the evaluation's mergeable state to this file (for rq merge; see --shard)")
	opts.data.register(fs)
	opts.data.registerShard(fs, "evaluate")
	opts.models.register(g, fs, allowableNonFinite)
	return c
}

func runEval(ctx context.Context, opts *evalOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	var base *modelio.Model
	if opts.baseline != "" {
		if base, err = opts.models.load(ctx, opts.baseline); err != nil {
			return err
		}
		defer base.Close()
		if err := sameInputs(m, base); err != nil {
			return err
		}
	}
	dopts, err := opts.data.options(m.Net.NumDense, m.Net.TableRows())
	if err != nil {
		return err
	}
	net := m.Net
	var shadow *model.Network
	if opts.simulate {
		if !m.Quantized {
			return usageErrorf("--simulate needs a quantized model (rq quantize); %s is fp32", opts.model)
		}
		if net, err = quantize.Simulate(m.Net); err != nil {
			return err
		}
		shadow = m.Net
	}
	rd, err := dataset.OpenContext(ctx, opts.data.path, dopts)
	if err != nil {
		return err
	}
	defer rd.Close()
	// Tables within the resident budget are read in before the run, onto
	// huge pages when the evaluation's lookups pay for the copy (see
	// PrepareTables): one bag per row and table, about a lookup each in
	// click logs.
	m.PrepareTables(rowsTotal(rd))
	if base != nil {
		base.PrepareTables(rowsTotal(rd))
	}
	bar := newProgress(opts.globalOptions, rowsTotal(rd), "eval")
	eo := evaluate.Options{Model: net, Shadow: shadow, Threads: opts.data.threads, Progress: bar.set}
	opts.models.evalOptions(&eo, opts.model, opts.baseline)
	if base != nil {
		eo.Baseline = base.Net
	}
	rep, err := evaluate.Run(ctx, rd, eo)
	bar.done()
	if err != nil {
		return err
	}
	modelName, dataName := opts.model, opts.data.path
	if opts.modelLabel != "" {
		modelName, dataName = opts.modelLabel, opts.dataLabel
	}
	out := report.NewEval(modelName, dataName, opts.data.rows, opts.data.threads, opts.data.batch, opts.baseline, rep)
	out.Bytes = m.Net.Bytes()
	out.Shard = opts.data.shard
	if base != nil {
		out.BaselineBytes = base.Net.Bytes()
	}
	if opts.stateOut != "" {
		if err := writeEvalState(ctx, opts, rep, m, base); err != nil {
			return err
		}
	}
	if opts.simulate {
		d := report.Float(rep.ShadowMaxAbsDiff)
		out.SimulateMaxAbsDiff = &d
	}
	return emitEval(ctx, opts.globalOptions, out, rep.Delta, opts.maxNEDelta, opts.maxAUCDrop, opts.summaryMD, opts.json)
}

// emitEval judges an evaluation against its budgets (NaN: none), writes the
// Markdown summary when asked, prints the table or JSON, and returns the
// exit-3 error when a budget is broken: the tail of rq eval and rq merge.
func emitEval(ctx context.Context, g *globalOptions, out *report.Eval, delta *evaluate.Delta, maxNE, maxAUCDrop float64, summaryMD string, asJSON bool) error {
	var broken []string
	if delta != nil && (!math.IsNaN(maxNE) || !math.IsNaN(maxAUCDrop)) {
		broken = budgetBroken(delta, maxNE, maxAUCDrop)
		pass := len(broken) == 0
		out.Pass = &pass
		out.Budget = &report.Budget{MaxNEDeltaPct: report.Float(maxNE), MaxAUCDrop: report.Float(maxAUCDrop)}
	}
	if summaryMD != "" {
		md := func(w io.Writer) error { return report.EvalMarkdown(w, out) }
		if err := writeOutput(ctx, summaryMD, func(p string) error { return atomicfile.WriteFile(p, md) }, md); err != nil {
			return err
		}
	}
	var err error
	if asJSON {
		err = report.JSON(g.stdout, out)
	} else {
		err = report.EvalTable(g.stdout, out)
	}
	if err != nil {
		return err
	}
	if len(broken) > 0 {
		return &exitError{code: ExitBudget, err: fmt.Errorf("accuracy budget broken: %s", strings.Join(broken, "; "))}
	}
	return nil
}

// writeEvalState writes the mergeable state of an evaluation (--state-out).
func writeEvalState(ctx context.Context, opts *evalOptions, rep *evaluate.Report, m, base *modelio.Model) error {
	sh := opts.data.shardOf()
	st := evaluate.NewState(rep, sh.Index, sh.Count)
	st.Model, st.Data, st.Rows, st.Batch, st.Threads, st.Simulate = opts.model, opts.data.path, opts.data.rows, opts.data.batch, opts.data.threads, opts.simulate
	st.Bytes = m.Net.Bytes()
	var err error
	if st.ModelSHA256, err = modelio.FileSHA256(opts.model); err != nil {
		return err
	}
	if base != nil {
		st.Baseline, st.BaselineBytes = opts.baseline, base.Net.Bytes()
		if st.BaselineSHA256, err = modelio.FileSHA256(opts.baseline); err != nil {
			return err
		}
	}
	return writeBytes(ctx, opts.stateOut, st.Write, st.Encode)
}

// budgetBroken lists the budgets a delta breaks (NaN budgets are off). A
// NaN delta (e.g. an AUC over one class) breaks its budget: a gate must
// not pass what it cannot measure.
func budgetBroken(d *evaluate.Delta, maxNE, maxAUCDrop float64) []string {
	var out []string
	if !math.IsNaN(maxNE) && !(d.NEPct <= maxNE) {
		out = append(out, fmt.Sprintf("NE %+.4f%% exceeds the allowed +%g%%", d.NEPct, maxNE))
	}
	if !math.IsNaN(maxAUCDrop) && !(-d.AUC <= maxAUCDrop) {
		out = append(out, fmt.Sprintf("AUC dropped by %.5f, more than the allowed %g", -d.AUC, maxAUCDrop))
	}
	return out
}

// sameInputs checks that a baseline reads the same features as the model.
func sameInputs(m, base *modelio.Model) error {
	if m.Net.NumDense != base.Net.NumDense || len(m.Net.Tables) != len(base.Net.Tables) {
		return fmt.Errorf("baseline %s takes %d dense features and %d tables, but %s takes %d and %d",
			base.Path, base.Net.NumDense, len(base.Net.Tables), m.Path, m.Net.NumDense, len(m.Net.Tables))
	}
	for i, t := range m.Net.Tables {
		if bt := base.Net.Tables[i]; bt.Rows != t.Rows {
			return fmt.Errorf("baseline %s: %s has %d rows, but %s has %d in %s", base.Path, bt.Name, bt.Rows, t.Name, t.Rows, m.Path)
		}
	}
	return nil
}
