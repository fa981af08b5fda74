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
	"github.com/spf13/pflag"
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

// modelFlags are the flags of every command that loads a model, and what
// they make of the models it loads: a field of the command's options
// struct, its flags registered with the command's, checked in RunE with
// the others, and used by the command's run function through its methods
// (load, evalOptions, tableRowCheck). The zero value (rq demo, tests) is
// the defaults: refuse non-finite weights, infer the interaction.
type modelFlags struct {
	g              *globalOptions
	policy         nonFinitePolicy
	interaction    string
	allowNonFinite bool
}

// register adds --interaction (and, under allowableNonFinite,
// --allow-nonfinite) to fs; g's stderr takes the warnings.
func (mf *modelFlags) register(g *globalOptions, fs *pflag.FlagSet, p nonFinitePolicy) {
	mf.g, mf.policy = g, p
	fs.StringVar(&mf.interaction, "interaction", "", "the model's interaction: dot, dot-self or cat (needed only when its top MLP's width fits more than one)")
	if p == allowableNonFinite {
		fs.BoolVar(&mf.allowNonFinite, "allow-nonfinite", false, "use a model whose weights hold NaN or Inf (refused by default) and say so on stderr")
	}
}

// check is RunE's check of the values: a usage error for an unknown
// interaction, or for --allow-nonfinite with --state-out (stateOut, when
// the command has that flag).
func (mf *modelFlags) check(stateOut string) error {
	if mf.interaction != "" {
		if _, err := modelio.ParseInteraction(mf.interaction); err != nil {
			return usageErrorf("--interaction must be %s, not %q", strings.Join(modelio.Interactions, ", "), mf.interaction)
		}
	}
	if mf.allowNonFinite && stateOut != "" {
		// A state holds the metrics' sums; non-finite predictions
		// have no place in them, and leaving them out would merge
		// into a finite NE that misstates the model.
		return usageErrorf("--state-out cannot record non-finite predictions: drop --allow-nonfinite or --state-out")
	}
	return nil
}

// warn prints a warning on stderr (also under --quiet, which silences
// progress only).
func (mf *modelFlags) warn(format string, args ...any) {
	if mf.g != nil && mf.g.stderr != nil {
		fmt.Fprintf(mf.g.stderr, "rq: warning: "+format+"\n", args...)
	}
}

// load loads a model file with --interaction and refuses (or, as the
// command's policy and --allow-nonfinite say, reports) non-finite FC
// weights, biases and scales.
func (mf *modelFlags) load(ctx context.Context, path string) (*modelio.Model, error) {
	m, err := modelio.LoadWith(ctx, path, modelio.LoadOptions{Interaction: mf.interaction})
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

// evalOptions names the models in evaluate's errors and passes
// --allow-nonfinite on: non-finite predictions then give NaN metrics and
// a warning instead of an error.
func (mf *modelFlags) evalOptions(eo *evaluate.Options, modelPath, baselinePath string) {
	eo.ModelFile, eo.BaselineFile = modelPath, baselinePath
	eo.AllowNonFinite = mf.allowNonFinite
	eo.Warn = func(msg string) { mf.warn("%s", msg) }
}

// tableRowError is a non-finite table row found by tableRowCheck.
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

// unwrapTableRow returns a table row's error as tableRowCheck made it:
// a row refused while the output was written comes back wrapped in the
// writer's context (output file, safetensors tensor), which repeats what
// the row error says.
func unwrapTableRow(err error) error {
	var te *tableRowError
	if errors.As(err, &te) {
		return te
	}
	return err
}

// tableRowCheck is rq quantize's check of each block of table rows as it
// is encoded: a NaN or Inf is an error naming the model file, table tensor
// and row, or under --allow-nonfinite a warning (once per table) and the
// row is encoded as before.
func (mf *modelFlags) tableRowCheck(modelPath string, t *model.Table, f kernels.TableFormat) func(w []float32, first int64, rows, dim int) error {
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
