package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/quantize"
	"github.com/spf13/cobra"
)

// nonFinitePolicy is what a command does with a model whose FC weights,
// biases or scales hold NaN or ±Inf.
type nonFinitePolicy int

const (
	// refuseNonFinite: refused, with no way round it: the command could
	// not use such a model anyway (calibration ranges, search and monitor
	// verdicts, debug statistics are all undefined on NaN).
	refuseNonFinite nonFinitePolicy = iota
	// allowableNonFinite: refused unless --allow-nonfinite (eval reports
	// NaN metrics, quantize warns and quantizes as before).
	allowableNonFinite
	// reportNonFinite: used, with a warning on stderr (rq inspect shows
	// what is in the file).
	reportNonFinite
)

// modelFlags are the flags of every command that loads a model.
type modelFlags struct {
	g              *globalOptions
	policy         nonFinitePolicy
	interaction    string
	allowNonFinite bool
}

type modelFlagsKey struct{}

// withModelFlags adds --interaction (and, under allowableNonFinite,
// --allow-nonfinite) to c, and passes their values on through the context
// c's RunE hands its run function, where loadModel finds them: a command
// needs only this call and loadModel at its load sites.
func withModelFlags(g *globalOptions, c *cobra.Command, p nonFinitePolicy) *cobra.Command {
	mf := &modelFlags{g: g, policy: p}
	fs := c.Flags()
	fs.StringVar(&mf.interaction, "interaction", "", "the model's interaction: dot, dot-self or cat (needed only when its top MLP's width fits more than one)")
	if p == allowableNonFinite {
		fs.BoolVar(&mf.allowNonFinite, "allow-nonfinite", false, "use a model whose weights hold NaN or Inf (refused by default) and say so on stderr")
	}
	run := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if mf.interaction != "" {
			if _, err := modelio.ParseInteraction(mf.interaction); err != nil {
				return usageErrorf("--interaction must be %s, not %q", strings.Join(modelio.Interactions, ", "), mf.interaction)
			}
		}
		if mf.allowNonFinite && c.Flags().Lookup("state-out") != nil && c.Flags().Changed("state-out") {
			// A state holds the metrics' sums; non-finite predictions
			// have no place in them, and leaving them out would merge
			// into a finite NE that misstates the model.
			return usageErrorf("--state-out cannot record non-finite predictions: drop --allow-nonfinite or --state-out")
		}
		ctx := modelio.WithLoadOptions(c.Context(), modelio.LoadOptions{Interaction: mf.interaction})
		c.SetContext(context.WithValue(ctx, modelFlagsKey{}, mf))
		err := run(c, args)
		// A table row refused while the output was written comes back
		// wrapped in the writer's context (output file, safetensors
		// tensor), which repeats what the row error says.
		var te *tableRowError
		if errors.As(err, &te) {
			return te
		}
		return err
	}
	return c
}

// modelFlagsFrom returns the flags withModelFlags put in ctx: a caller
// without them (rq demo, tests) gets the defaults (refuse, infer).
func modelFlagsFrom(ctx context.Context) *modelFlags {
	if mf, ok := ctx.Value(modelFlagsKey{}).(*modelFlags); ok {
		return mf
	}
	return &modelFlags{}
}

// warn prints a warning on stderr (also under --quiet, which silences
// progress only).
func (mf *modelFlags) warn(format string, args ...any) {
	if mf.g != nil && mf.g.stderr != nil {
		fmt.Fprintf(mf.g.stderr, "rq: warning: "+format+"\n", args...)
	}
}

// loadModel loads a model file with the command's --interaction and
// refuses (or, as the command's policy and --allow-nonfinite say, reports)
// non-finite FC weights, biases and scales.
func loadModel(ctx context.Context, path string) (*modelio.Model, error) {
	mf := modelFlagsFrom(ctx)
	m, err := modelio.LoadContext(ctx, path)
	if err != nil {
		return nil, err
	}
	if mf.interaction != "" && m.Net.Interaction.String() != mf.interaction {
		// A quantized file records its interaction (rq.interaction).
		op := m.Net.Interaction
		m.Close()
		return nil, fmt.Errorf("%s records the %s interaction in its metadata (rq.interaction), not --interaction %s", path, op, mf.interaction)
	}
	if err := modelio.CheckFinite(m); err != nil {
		switch {
		case mf.policy == reportNonFinite:
			mf.warn("%v", err)
		case mf.allowNonFinite:
			mf.warn("%v; used anyway (--allow-nonfinite)", err)
		case mf.policy == allowableNonFinite:
			m.Close()
			return nil, fmt.Errorf("%w (rq refuses such a model; --allow-nonfinite uses it anyway)", err)
		default:
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// evalNonFinite names the models in evaluate's errors and passes
// --allow-nonfinite on: non-finite predictions then give NaN metrics and
// a warning instead of an error.
func evalNonFinite(ctx context.Context, eo *evaluate.Options, modelPath, baselinePath string) {
	mf := modelFlagsFrom(ctx)
	eo.ModelFile, eo.BaselineFile = modelPath, baselinePath
	eo.AllowNonFinite = mf.allowNonFinite
	eo.Warn = func(msg string) { mf.warn("%s", msg) }
}

// tableRowError is a non-finite table row found by checkTableRows.
type tableRowError struct {
	file string
	err  error
}

func (e *tableRowError) Error() string {
	var nf *quantize.NonFiniteRowError
	if errors.As(e.err, &nf) {
		return fmt.Sprintf("%s: %v (--allow-nonfinite quantizes it anyway)", e.file, e.err)
	}
	return fmt.Sprintf("%s: %v", e.file, e.err)
}
func (e *tableRowError) Unwrap() error { return e.err }

// checkTableRows is rq quantize's check of each block of table rows as it
// is encoded: a NaN or Inf is an error naming the model file, table tensor
// and row, or under --allow-nonfinite a warning (once per table) and the
// row is encoded as before.
func checkTableRows(ctx context.Context, modelPath string, t *model.Table, f kernels.TableFormat) func(w []float32, first int64, rows, dim int) error {
	mf := modelFlagsFrom(ctx)
	warned := false
	return func(w []float32, first int64, rows, dim int) error {
		err := quantize.CheckRowsFor(f, t.Name+".weight", w, first, rows, dim)
		var nf *quantize.NonFiniteRowError
		switch {
		case err == nil:
			return nil
		case !mf.allowNonFinite || !errors.As(err, &nf):
			return &tableRowError{file: modelPath, err: err}
		case !warned:
			warned = true
			mf.warn("%s: %v; quantized anyway (--allow-nonfinite), later rows of this table not reported", modelPath, err)
		}
		return nil
	}
}
