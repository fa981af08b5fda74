package calibrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/model"
)

// Options configure Run (and Observer.Ranges).
type Options struct {
	// Threads is the forward pass's goroutine count (at least 1).
	Threads int
	// Bins is the histogram size (0 means DefaultBins).
	Bins int
	// Percentile is MethodPercentile's p (0 means DefaultPercentile).
	Percentile float64
	// Levels is the quantizer's number of levels the ranges are chosen for
	// (0 means DefaultLevels, 256; 128 for a reduce_range quantizer).
	Levels int
	// Method is the default method recorded in the document (0 means
	// DefaultMethod).
	Method string
	// Progress, when set, is called after each batch with the rows done.
	Progress func(rows int64)
	// ModelFile names the model in the error for a prediction that is not
	// a probability (a NaN or Inf table row the calibration rows look up).
	ModelFile string
	// ModelSHA256 is the sha256 (hex) of the model file: the ranges are
	// refused for any other model (Ranges.Check). Required.
	ModelSHA256 string
	// Rows and Data describe the calibration rows (the --rows selection and
	// the click log path); they are recorded, not interpreted.
	Rows, Data string
	// Shard records which shard of the rows the reader hands out (rq
	// calibrate --shard I/N; the zero value is all of them), so rq merge can
	// tell when the shards are complete.
	Shard dataset.Shard
}

func (o Options) resolve() (Options, error) {
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	if o.Method == "" {
		o.Method = DefaultMethod
	}
	if o.Bins < MinBins || o.Bins > MaxBins {
		return o, fmt.Errorf("histogram of %d bins: want %d..%d", o.Bins, MinBins, MaxBins)
	}
	ro, err := RangeOptions{Levels: o.Levels, Percentile: o.Percentile}.resolve()
	if err != nil {
		return o, err
	}
	o.Levels, o.Percentile = ro.Levels, ro.Percentile
	if !knownMethod(o.Method) {
		return o, unknownMethod(o.Method)
	}
	o.ModelSHA256 = strings.ToLower(o.ModelSHA256)
	if !validSHA(o.ModelSHA256) {
		return o, fmt.Errorf("model sha256 %q: want the model file's sha256 as 64 hex digits", o.ModelSHA256)
	}
	return o, nil
}

// Run runs net in fp32 over every batch of rd (which it does not close),
// recording a histogram of every Linear layer's input and how often each
// embedding table row is looked up (Ranges.Tables), and returns the
// ranges document. It stops early, with ctx's error, when ctx is done.
func Run(ctx context.Context, net *model.Network, rd dataset.Reader, opts Options) (*Ranges, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := net.Validate(); err != nil {
		return nil, err
	}
	obs, err := NewObserver(net, opts.Bins)
	if err != nil {
		return nil, err
	}
	access, err := newAccessCounter(net)
	if err != nil {
		return nil, err
	}
	// The forward pass alone: evaluate.Run would also keep every prediction
	// for the AUC, memory calibration has no use for.
	run := model.NewRunner(net, opts.Threads, obs)
	var rows int64
	err = dataset.Batches(ctx, rd, func(b *model.Batch) error {
		p, err := run.Forward(b)
		if err != nil {
			return fmt.Errorf("rows from %d: %w", b.Row, err)
		}
		// Non-finite activations would only be counted and left out of
		// the histograms: refuse them as rq eval does, naming the table
		// row or feature that made them.
		if err := evaluate.CheckPredictions(opts.ModelFile, net, b, p, rd); err != nil {
			return err
		}
		if err := obs.Err(); err != nil {
			return err
		}
		// Counted here, on the caller's goroutine, in row order: the
		// counts (and a summary's choices) do not depend on --threads or
		// the batch size.
		if err := access.count(b); err != nil {
			return err
		}
		rows += int64(b.N)
		if opts.Progress != nil {
			opts.Progress(rows)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rows == 0 {
		return nil, dataset.NoRowsError(rd, "calibrate on")
	}
	r, err := obs.Ranges(opts)
	if err != nil {
		return nil, err
	}
	r.Tables = access.access()
	return r, nil
}
