package search

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// Outcome is what one plan did on the evaluator's rows.
type Outcome struct {
	// Pred holds one click probability per row, in the evaluator's row
	// order (the order of Labels), so it pairs with the baseline's.
	Pred []float32
	// Bytes is the size of the plan's model as stored.
	Bytes int64
}

// Evaluator runs plans on a fixed set of rows.
type Evaluator interface {
	// Layers lists the model's quantizable layers in network order.
	Layers() []Layer
	// Labels are the rows' labels (0 or 1), the same for every plan.
	Labels() []float32
	// Evaluate runs the model under plan (layers it does not name stay
	// fp32) on every row. It stops with ctx's error when ctx is done.
	Evaluate(ctx context.Context, plan *quantize.Plan) (*Outcome, error)
}

// NetEvaluator evaluates plans of an fp32 network on rows held in memory.
// Each quantized layer is built once per (layer, LayerPlan) and reused by
// every later plan that asks for it; a plan's network is assembled from
// that cache. It is safe for one goroutine at a time.
//
// The fp32 activations of every batch are recorded once (when they fit in
// maxRecorded bytes) and each plan is replayed from them
// (model.Runner.Replay): only the first quantized layer onwards, and only
// the quantized tables, are computed, so a sensitivity evaluation of a top
// layer costs the top MLP's tail alone. Results equal a full run bit for bit.
type NetEvaluator struct {
	net     *model.Network
	ranges  quantize.RangeSource
	batches []*model.Batch
	threads int
	labels  []float32
	layers  []Layer

	mu     sync.Mutex
	fc     map[string]*model.Linear // key: layer name + "\x00" + LayerPlan JSON
	tables map[string]*model.Table

	// recorded: the fp32 activations per batch (nil until the first
	// Evaluate, or when they would not fit in maxRecorded).
	recorded    map[*model.Batch]*model.Activations
	triedRecord bool
}

// maxRecorded bounds the memory of the recorded fp32 activations; beyond
// it every plan runs the whole network.
const maxRecorded = 1 << 30

// ReadBatches reads every batch of rd into memory (rd is not closed).
func ReadBatches(ctx context.Context, rd dataset.Reader) ([]*model.Batch, error) {
	var out []*model.Batch
	err := dataset.Batches(ctx, rd, func(b *model.Batch) error {
		out = append(out, b) // readers hand out fresh batches: safe to keep
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, dataset.NoRowsError(rd, "search on")
	}
	return out, nil
}

// ReadNetEvaluator reads every batch of rd, closes it, and makes an
// evaluator for net on those rows (ReadBatches, then NewNetEvaluator).
func ReadNetEvaluator(ctx context.Context, rd dataset.Reader, net *model.Network, ranges quantize.RangeSource, threads int) (*NetEvaluator, error) {
	batches, err := ReadBatches(ctx, rd)
	rd.Close()
	if err != nil {
		return nil, err
	}
	return NewNetEvaluator(net, ranges, batches, threads)
}

// NewNetEvaluator makes an evaluator for net (fp32, with weights) on the
// given batches. ranges may be nil when no plan uses static activations.
func NewNetEvaluator(net *model.Network, ranges quantize.RangeSource, batches []*model.Batch, threads int) (*NetEvaluator, error) {
	if err := net.Validate(); err != nil {
		return nil, err
	}
	if err := quantize.CheckRanges(net, ranges); err != nil {
		return nil, err
	}
	for l := range net.Layers() {
		if l.FC != nil && (l.FC.Weight == nil || l.FC.Kernel != nil) {
			return nil, fmt.Errorf("%s: search needs the fp32 model (this layer is already %s)", l.Name(), l.Label())
		}
		if l.Table != nil && (l.Table.Weight == nil || l.Table.Kernel != nil) {
			return nil, fmt.Errorf("%s: search needs the fp32 model (this table is already %s)", l.Name(), l.Label())
		}
	}
	e := &NetEvaluator{net: net, ranges: ranges, batches: batches, threads: max(threads, 1),
		layers: NetworkLayers(net), fc: map[string]*model.Linear{}, tables: map[string]*model.Table{}}
	markAccess(e.layers, ranges) // mixed rungs only for tables with access counts
	for _, b := range batches {
		if len(b.Labels) != b.N {
			return nil, fmt.Errorf("rows from %d: %d labels for %d rows", b.Row, len(b.Labels), b.N)
		}
		e.labels = append(e.labels, b.Labels...)
	}
	if len(e.labels) == 0 {
		return nil, fmt.Errorf("no rows to search on (check --rows)")
	}
	return e, nil
}

// Layers lists the network's layers.
func (e *NetEvaluator) Layers() []Layer { return e.layers }

// Labels are the rows' labels in batch order.
func (e *NetEvaluator) Labels() []float32 { return e.labels }

func cacheKey(name string, lp quantize.LayerPlan) string {
	j, _ := json.Marshal(lp) // a struct of strings and bools: cannot fail
	return name + "\x00" + string(j)
}

// Network builds the plan's network from the layer cache.
func (e *NetEvaluator) Network(plan *quantize.Plan) (*model.Network, error) {
	p := &quantize.Plan{Version: plan.Version, Preset: plan.Preset, Layers: map[string]quantize.LayerPlan{}}
	for k, v := range plan.Layers {
		p.Layers[k] = v
	}
	// Validate fills defaults, so equal plans spelt differently share the cache.
	if err := p.Validate(e.net); err != nil {
		return nil, err
	}
	if p.NeedsRanges() && e.ranges == nil {
		return nil, fmt.Errorf("the plan quantizes activations statically: it needs calibrated ranges (rq calibrate, then --ranges)")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Layers the plan keeps at fp32 are shared with e.net; quantized ones
	// come from the cache.
	return e.net.Map(func(l *model.Linear) (*model.Linear, error) {
		lp := p.Layer(l.Name)
		if lp.Precision == precision.FP32 {
			return l, nil
		}
		key := cacheKey(l.Name, lp)
		if q, ok := e.fc[key]; ok {
			return q, nil
		}
		q, err := quantize.QuantizeLinear(l, lp, e.ranges)
		if err != nil {
			return nil, err
		}
		e.fc[key] = q
		return q, nil
	}, func(t *model.Table) (*model.Table, error) {
		lp := p.Layer(t.Name)
		if lp.Precision == precision.FP32 {
			return t, nil
		}
		key := cacheKey(t.Name, lp)
		if q, ok := e.tables[key]; ok {
			return q, nil
		}
		q, err := quantize.QuantizeTableFrom(t, lp, e.ranges)
		if err != nil {
			return nil, err
		}
		e.tables[key] = q
		return q, nil
	})
}

// record runs the fp32 network once over the batches, keeping the
// activations for replay when they fit in maxRecorded.
func (e *NetEvaluator) record(ctx context.Context) error {
	e.triedRecord = true
	// Estimate first: every Linear input (the interaction's own layers
	// included: the Recorder sees them too) plus the feature rows, per row.
	perRow := int64(e.net.EmbDim())
	for _, t := range e.net.Tables {
		perRow += int64(t.Dim)
	}
	for l := range e.net.Linears() {
		perRow += int64(l.In)
	}
	if 4*perRow*int64(len(e.labels)) > maxRecorded {
		return nil
	}
	rec := &model.Recorder{}
	run := model.NewRunner(e.net, e.threads, rec)
	for _, b := range e.batches {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := run.Forward(b); err != nil {
			return fmt.Errorf("rows from %d: %w", b.Row, err)
		}
	}
	e.recorded = rec.Batches
	return nil
}

// Evaluate runs the plan's network on every batch.
func (e *NetEvaluator) Evaluate(ctx context.Context, plan *quantize.Plan) (*Outcome, error) {
	net, err := e.Network(plan)
	if err != nil {
		return nil, err
	}
	if !e.triedRecord {
		if err := e.record(ctx); err != nil {
			return nil, err
		}
	}
	run := model.NewRunner(net, e.threads)
	pred := make([]float32, 0, len(e.labels))
	for _, b := range e.batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var p []float32
		if a := e.recorded[b]; a != nil {
			p, err = run.Replay(b, a)
		} else {
			p, err = run.Forward(b)
		}
		if err != nil {
			return nil, fmt.Errorf("rows from %d: %w", b.Row, err)
		}
		pred = append(pred, p...)
	}
	return &Outcome{Pred: pred, Bytes: net.Bytes()}, nil
}
