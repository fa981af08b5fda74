package cmd

import (
	"context"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type evalOptions struct {
	*globalOptions
	model    string
	baseline string
	data     dataFlags
	json     bool
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
With --json, exactly one JSON object is printed on stdout.`,
		Example: `  rq eval --model dlrm-criteo.pt --data dlrm-processed.npz --rows 15429:16715
  rq eval --model model.safetensors --data criteo.tsv --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if opts.model == "" {
				return usageErrorf("--model is required")
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "model file (.pt checkpoint or .safetensors)")
	fs.StringVar(&opts.baseline, "baseline", "", "baseline model to compare against on the same rows")
	fs.BoolVar(&opts.json, "json", false, "print one JSON object instead of a table")
	opts.data.register(fs)
	return c
}

func runEval(ctx context.Context, opts *evalOptions) error {
	m, err := modelio.Load(opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	var base *modelio.Model
	if opts.baseline != "" {
		if base, err = modelio.Load(opts.baseline); err != nil {
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
	rd, err := dataset.Open(opts.data.path, dopts)
	if err != nil {
		return err
	}
	defer rd.Close()
	bar := newProgress(opts.globalOptions, rowsTotal(rd), "eval")
	eo := evaluate.Options{Model: m.Net, Threads: opts.data.threads, Progress: bar.set}
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
	if opts.json {
		return report.JSON(opts.stdout, out)
	}
	return report.EvalTable(opts.stdout, out)
}

// sameInputs checks that a baseline reads the same features as the model.
func sameInputs(m, base *modelio.Model) error {
	if m.Net.NumDense != base.Net.NumDense || len(m.Net.Tables) != len(base.Net.Tables) {
		return errorf("baseline %s takes %d dense features and %d tables, but %s takes %d and %d",
			base.Path, base.Net.NumDense, len(base.Net.Tables), m.Path, m.Net.NumDense, len(m.Net.Tables))
	}
	for i, t := range m.Net.Tables {
		if bt := base.Net.Tables[i]; bt.Rows != t.Rows {
			return errorf("baseline %s: %s has %d rows, but %s has %d in %s", base.Path, bt.Name, bt.Rows, t.Name, t.Rows, m.Path)
		}
	}
	return nil
}
