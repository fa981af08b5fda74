package evaluate

import (
	"context"
	"fmt"
	"time"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/metrics"
	"github.com/rqtools/rq/model"
)

// Options configure one evaluation.
type Options struct {
	Model    *model.Network
	Baseline *model.Network // optional: evaluated on the same rows
	Threads  int
	// Progress, when set, is called after each batch with the rows done so far.
	Progress func(rows int64)
	// Observers see every layer of the evaluated model (not the baseline).
	Observers []model.Observer
	// Shadow, when set, runs on the same rows only to measure how far the
	// model's predictions are from it (ShadowMaxAbsDiff): rq eval
	// --simulate compares the fake-quant simulation with the real kernels.
	Shadow *model.Network
	// ModelFile and BaselineFile name the models in errors (optional).
	ModelFile, BaselineFile string
	// AllowNonFinite: a prediction that is not a probability (NaN, ±Inf)
	// is counted (Report.NonFinite) instead of stopping the run, and the
	// metrics it makes undefined (NE, log loss, AUC, calibration, accuracy)
	// are reported as NaN. Without it such a prediction is a
	// *NonFinitePredictionError naming its cause. Either way Acc and
	// BaselineAcc hold the finite predictions only.
	AllowNonFinite bool
	// Warn, when set, is told once at the end of a run with non-finite
	// predictions (AllowNonFinite) how many there were and the first one's
	// diagnosis.
	Warn func(msg string)
}

// Report is an evaluation's outcome.
type Report struct {
	Result   metrics.Result
	Baseline *metrics.Result
	Delta    *Delta
	// ForwardSeconds is the time spent in the model's forward pass alone
	// (reading and parsing the data excluded, as PyTorch timings exclude
	// their data loader); ExamplesPerSec is Examples / ForwardSeconds.
	ForwardSeconds float64
	ExamplesPerSec float64
	WallSeconds    float64
	Data           dataset.Stats
	// MaxAbsPredDiff is the largest |p - p_baseline| over the rows (with a baseline).
	MaxAbsPredDiff float64
	// ShadowMaxAbsDiff is the largest |p - p_shadow| (with a shadow).
	ShadowMaxAbsDiff float64
	// Acc and BaselineAcc hold the metrics' mergeable state (NewState).
	Acc, BaselineAcc *metrics.Accumulator
	// NonFinite and BaselineNonFinite count the predictions that were not
	// probabilities (AllowNonFinite only); when either is non-zero the
	// merged state of Acc would misstate the metrics.
	NonFinite, BaselineNonFinite int64
}

// Delta compares a result with its baseline.
type Delta struct {
	NEPct   float64 `json:"ne_pct"` // 100 (ne - ne_base) / ne_base
	AUC     float64 `json:"auc"`    // auc - auc_base
	LogLoss float64 `json:"logloss"`
}

// Compare computes r's delta against base.
func Compare(r, base metrics.Result) Delta {
	return Delta{
		NEPct:   100 * (r.NE - base.NE) / base.NE,
		AUC:     r.AUC - base.AUC,
		LogLoss: r.LogLoss - base.LogLoss,
	}
}

// Run evaluates opts.Model on every batch of rd (which it does not close).
// It stops early, with ctx's error, when ctx is done.
func Run(ctx context.Context, rd dataset.Reader, opts Options) (*Report, error) {
	start := time.Now()
	// Pack weights before the clock runs on the forward pass.
	for _, n := range []*model.Network{opts.Model, opts.Baseline, opts.Shadow} {
		if n != nil {
			n.Prepare()
		}
	}
	run := model.NewRunner(opts.Model, opts.Threads, opts.Observers...)
	var base, shadow *model.Runner
	if opts.Baseline != nil {
		base = model.NewRunner(opts.Baseline, opts.Threads)
	}
	if opts.Shadow != nil {
		shadow = model.NewRunner(opts.Shadow, opts.Threads)
	}
	var acc, baseAcc metrics.Accumulator
	main := &predictions{acc: &acc, net: opts.Model, file: opts.ModelFile, allow: opts.AllowNonFinite}
	baseline := &predictions{acc: &baseAcc, net: opts.Baseline, file: opts.BaselineFile, allow: opts.AllowNonFinite, what: "baseline "}
	var fwd time.Duration
	rep := &Report{}
	err := dataset.Batches(ctx, rd, func(b *model.Batch) error {
		t0 := time.Now()
		p, err := run.Forward(b)
		fwd += time.Since(t0)
		if err != nil {
			return fmt.Errorf("rows from %d: %w", b.Row, err)
		}
		if err := main.add(p, b, rd); err != nil {
			return err
		}
		if base != nil {
			q, err := base.Forward(b)
			if err != nil {
				return fmt.Errorf("baseline, rows from %d: %w", b.Row, err)
			}
			for i := range p {
				rep.MaxAbsPredDiff = max(rep.MaxAbsPredDiff, abs(float64(p[i])-float64(q[i])))
			}
			if err := baseline.add(q, b, rd); err != nil {
				return err
			}
		}
		if shadow != nil {
			q, err := shadow.Forward(b)
			if err != nil {
				return fmt.Errorf("rows from %d: %w", b.Row, err)
			}
			for i := range p {
				rep.ShadowMaxAbsDiff = max(rep.ShadowMaxAbsDiff, abs(float64(p[i])-float64(q[i])))
			}
		}
		if opts.Progress != nil {
			opts.Progress(acc.Count() + main.bad)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res, err := main.result()
	if err != nil {
		if acc.Count() == 0 {
			return nil, dataset.NoRowsError(rd, "evaluate")
		}
		return nil, err
	}
	rep.Result = res
	rep.NonFinite, rep.BaselineNonFinite = main.bad, baseline.bad
	if opts.Warn != nil {
		for _, pr := range []*predictions{main, baseline} {
			if pr.bad > 0 {
				opts.Warn(fmt.Sprintf("%d of %d %spredictions are not finite, so NE, log loss, AUC, calibration and accuracy are NaN; the first: %v", pr.bad, pr.bad+pr.acc.Count(), pr.what, pr.first))
			}
		}
	}
	rep.Acc = &acc
	rep.Data = rd.Stats()
	rep.ForwardSeconds = fwd.Seconds()
	if fwd > 0 {
		rep.ExamplesPerSec = float64(res.Examples) / fwd.Seconds()
	}
	if base != nil {
		br, err := baseline.result()
		if err != nil {
			return nil, err
		}
		rep.Baseline = &br
		rep.BaselineAcc = &baseAcc
		d := Compare(res, br)
		rep.Delta = &d
	}
	rep.WallSeconds = time.Since(start).Seconds()
	return rep, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
