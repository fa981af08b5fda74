package calibrate

import (
	"fmt"
	"math"

	"github.com/rqtools/rq/model"
)

// Input is a Linear layer whose input gets calibrated.
type Input struct {
	Layer *model.Linear
	// FollowsReLU: the input is the previous layer's ReLU output, so it is
	// never negative and its range starts at 0.
	FollowsReLU bool
}

// Inputs lists the network's Linear layers in network order (bottom MLP,
// the interaction's own layers, top MLP), each with whether its input
// follows a ReLU: it does when the layer before it in net.Layers is a
// Linear layer of the same part of the network ending in a ReLU. The first
// bottom layer takes the dense features and the first top layer the
// interaction's output: both two-sided. The interaction's own layers (a
// cross network's) are two-sided too: only the interaction knows which of
// its layers feeds which.
func Inputs(net *model.Network) []Input {
	var in []Input
	var prev model.Layer
	for l := range net.Layers() {
		if l.FC != nil {
			follows := prev.FC != nil && prev.Part == l.Part && l.Part != model.PartInteraction && prev.FC.Act == model.ActReLU
			in = append(in, Input{Layer: l.FC, FollowsReLU: follows})
		}
		prev = l
	}
	return in
}

// WeightStats are per output channel statistics of a Linear layer's weight.
type WeightStats struct {
	AbsMax []float32 // max(|min|, |max|)
	Min    []float32
	Max    []float32
}

// NewWeightStats computes l's per output channel (weight row) min, max and
// absmax. A NaN or infinite weight is an error naming the layer and the
// element: no range describes it, and the model is broken anyway.
func NewWeightStats(l *model.Linear) (WeightStats, error) {
	if l.Out <= 0 || l.In <= 0 || len(l.Weight) != l.Out*l.In {
		return WeightStats{}, fmt.Errorf("%s: weight has %d values, want %dx%d", l.Name, len(l.Weight), l.Out, l.In)
	}
	ws := WeightStats{AbsMax: make([]float32, l.Out), Min: make([]float32, l.Out), Max: make([]float32, l.Out)}
	for o := range l.Out {
		row := l.Weight[o*l.In : (o+1)*l.In]
		mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
		for i, w := range row {
			if f := float64(w); math.IsNaN(f) || math.IsInf(f, 0) {
				return WeightStats{}, fmt.Errorf("%s: weight [%d][%d] is %v", l.Name, o, i, w)
			}
			mn, mx = min(mn, w), max(mx, w)
		}
		mn, mx = mn+0, mx+0 // no -0 in the file
		ws.Min[o], ws.Max[o], ws.AbsMax[o] = mn, mx, max(-mn, mx)
	}
	return ws, nil
}

// Observer is a model.Observer keeping a Histogram of every Linear layer's
// input (other layers' events are ignored) and the layers' weight
// statistics. It is not safe for concurrent use; model.Runner calls it on
// the caller's goroutine.
type Observer struct {
	inputs  []Input
	hists   []*Histogram
	weights []WeightStats
	index   map[string]int
	err     error
}

// NewObserver prepares an Observer for net's Linear layers with histograms
// of the given number of bins (0 means DefaultBins).
func NewObserver(net *model.Network, bins int) (*Observer, error) {
	o := &Observer{inputs: Inputs(net), index: map[string]int{}}
	if len(o.inputs) == 0 {
		return nil, fmt.Errorf("the network has no Linear layers to calibrate")
	}
	for i, in := range o.inputs {
		if _, dup := o.index[in.Layer.Name]; dup || in.Layer.Name == "" {
			return nil, fmt.Errorf("linear layer %d is named %q, which is empty or not unique: ranges are keyed by layer name", i, in.Layer.Name)
		}
		h, err := NewHistogram(bins)
		if err != nil {
			return nil, err
		}
		ws, err := NewWeightStats(in.Layer)
		if err != nil {
			return nil, err
		}
		o.index[in.Layer.Name] = i
		o.hists = append(o.hists, h)
		o.weights = append(o.weights, ws)
	}
	return o, nil
}

// Observe adds a Linear layer's input values to its histogram.
func (o *Observer) Observe(ev model.Event) {
	i, ok := o.index[ev.Layer]
	if !ok {
		return
	}
	in, h := ev.In, o.hists[i]
	want := o.inputs[i].Layer.In
	if in.Rows == 0 {
		return
	}
	if in.Cols != want || in.Rows < 0 || in.Stride < in.Cols || len(in.Data) < (in.Rows-1)*in.Stride+in.Cols {
		if o.err == nil {
			o.err = fmt.Errorf("%s: input is %dx%d (stride %d, %d values), want %d columns", ev.Layer, in.Rows, in.Cols, in.Stride, len(in.Data), want)
		}
		return
	}
	if in.Stride == in.Cols {
		h.Observe(in.Data[:in.Rows*in.Cols])
		return
	}
	for r := range in.Rows {
		h.Observe(in.Row(r))
	}
}

// Err is the first malformed event seen, if any.
func (o *Observer) Err() error { return o.err }

// Layers lists the observed layers in network order.
func (o *Observer) Layers() []string {
	names := make([]string, len(o.inputs))
	for i, in := range o.inputs {
		names[i] = in.Layer.Name
	}
	return names
}

// Histogram is the histogram of a layer's input (nil for an unknown layer).
// It is the Observer's own: later events keep changing it.
func (o *Observer) Histogram(layer string) *Histogram {
	if i, ok := o.index[layer]; ok {
		return o.hists[i]
	}
	return nil
}

// Ranges builds the ranges document from what was observed so far, with
// opts' metadata and range options (see Options). Every layer must have
// seen at least one finite value.
func (o *Observer) Ranges(opts Options) (*Ranges, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if o.err != nil {
		return nil, o.err
	}
	r := &Ranges{Version: Version, ModelSHA256: opts.ModelSHA256, Rows: opts.Rows, Data: opts.Data,
		Method: opts.Method, Percentile: opts.Percentile, Levels: opts.Levels, Layers: map[string]*Layer{}}
	if !opts.Shard.IsAll() {
		r.ShardCount, r.Shards = opts.Shard.Count, []int{opts.Shard.Index}
	}
	for i, in := range o.inputs {
		h := o.hists[i]
		if h.Count() == 0 {
			if h.NonFinite() > 0 {
				return nil, fmt.Errorf("%s: all %d input values were NaN or infinite (%d NaN, %d +Inf, %d -Inf)", in.Layer.Name, h.NonFinite(), h.NaN(), h.PosInf(), h.NegInf())
			}
			return nil, fmt.Errorf("%s: saw no input values (no rows calibrated?)", in.Layer.Name)
		}
		r.Layers[in.Layer.Name] = &Layer{FollowsReLU: in.FollowsReLU, Hist: h.Clone(), Weight: o.weights[i]}
	}
	if err := r.Recompute(); err != nil {
		return nil, err
	}
	return r, nil
}
