package model

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"

	"github.com/rqtools/rq/kernels"
)

// Mat is a strided row-major view: row i is Data[i*Stride : i*Stride+Cols].
type Mat struct {
	Rows, Cols, Stride int
	Data               []float32
}

// Row returns row i.
func (m Mat) Row(i int) []float32 { return m.Data[i*m.Stride : i*m.Stride+m.Cols] }

// Event is one layer's execution on a batch: its input (empty for tables,
// whose input is indices) and its output after the activation.
type Event struct {
	Layer   string
	In, Out Mat
	Batch   *Batch
}

// Observer sees every layer of every batch, in network order, on the
// caller's goroutine. The views are valid only during the call.
type Observer interface {
	Observe(ev Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ev Event)

// Observe calls f(ev).
func (f ObserverFunc) Observe(ev Event) { f(ev) }

// Runner executes a Network. Without observers it carries chunks of rows,
// shared out to Threads goroutines, through a small row-wise network whole,
// or through the bags and the interaction of any other (stream.go); with
// observers it runs layer by layer, each layer spread over the goroutines
// by rows. Either way the results are the same, bit for bit, for any
// thread count and any batch size: every kernel computes a row from that
// row alone, by the same operations whatever the number of rows (see
// kernels.GemmRowAlign). The exception is a layer that takes statistics over
// the whole batch (per-tensor dynamic int8, PyTorch's quantize_dynamic
// recipe): its scale, so every prediction after it, depends on which rows
// share the batch, though still not on the thread count. A Runner reuses its buffers between calls and is not safe
// for concurrent use; make one per goroutine.
type Runner struct {
	net       *Network
	threads   int
	observers []Observer

	// replay, during Replay, holds the fp32 activations to start from.
	replay *Activations

	act  [2][]float32 // ping-pong MLP activations
	feat []float32    // [N x F*D]: bottom output then each pooled embedding
	top  []float32    // interaction output [N x width]
	pred []float32

	chunk []*chunkBufs // per worker, when streaming (stream.go)
}

// NewRunner makes a Runner with threads goroutines (at least 1).
func NewRunner(net *Network, threads int, observers ...Observer) *Runner {
	return &Runner{net: net, threads: max(threads, 1), observers: observers}
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// parallel runs fn over [0,n) on the runner's threads (see SplitRows).
func (r *Runner) parallel(n, align int, fn func(lo, hi int)) { SplitRows(r.threads, n, align, fn) }

// SplitRows runs fn over [0,n) split into at most threads chunks whose
// boundaries are multiples of align, concurrently, and waits for them: how
// every layer spreads its rows (and how rq bench measures kernels, so its
// figures are the model's).
func SplitRows(threads, n, align int, fn func(lo, hi int)) {
	per := (n + threads - 1) / max(threads, 1)
	per = (per + align - 1) / align * align
	if threads <= 1 || per >= n {
		fn(0, n)
		return
	}
	parts := (n + per - 1) / per
	concurrently(parts, func(i int) {
		lo := i * per
		fn(lo, min(lo+per, n))
	})
}

// concurrently runs fn(0..k-1) on k goroutines and waits for them. A panic
// in one would end the process at once, whatever the caller guards, so the
// first one is handed to the caller instead and re-raised there: that is
// how a fault reading a mapped model file truncated underneath becomes an
// error naming the file (internal/mapfault; memory faults panic rather than
// crash under SetPanicOnFault, which is per goroutine).
func concurrently(k int, fn func(i int)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var panicked any
	for i := range k {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					if panicked == nil {
						panicked = r
					}
					mu.Unlock()
				}
			}()
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			fn(i)
		})
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}

func (r *Runner) observe(layer string, in, out Mat, b *Batch) {
	for _, o := range r.observers {
		o.Observe(Event{Layer: layer, In: in, Out: out, Batch: b})
	}
}

// poolBatch pools every bag of table t in b into out (row i, leading
// dimension ldo), spread over the threads, then calls the table's Release.
func (r *Runner) poolBatch(b *Batch, t int, out []float32, ldo int) error {
	tb := r.net.Tables[t]
	var mu sync.Mutex
	bad := -1
	r.parallel(b.N, 1, func(lo, hi int) {
		if p := poolRows(tb, b, t, out, ldo, lo, hi); p >= 0 {
			mu.Lock()
			if bad < 0 || p < bad {
				bad = p
			}
			mu.Unlock()
		}
	})
	if tb.Release != nil {
		tb.Release()
	}
	if bad >= 0 {
		return badIndex(tb, b, t, bad)
	}
	return nil
}

// checkBatch verifies the batch has the shape the network expects.
func (r *Runner) checkBatch(b *Batch) error {
	n := r.net
	if b.NumDense != n.NumDense || len(b.Dense) != b.N*b.NumDense {
		return fmt.Errorf("batch has %d dense features (%d values for %d rows), the model takes %d", b.NumDense, len(b.Dense), b.N, n.NumDense)
	}
	if len(b.Indices) != len(n.Tables) || len(b.Offsets) != len(n.Tables) {
		return fmt.Errorf("batch has %d sparse features, the model has %d embedding tables", len(b.Indices), len(n.Tables))
	}
	for t, tb := range n.Tables {
		if !kernels.CheckBags(b.Offsets[t], b.N, len(b.Indices[t])) {
			return fmt.Errorf("%s: bag offsets do not describe %d bags over %d indices", tb.Name, b.N, len(b.Indices[t]))
		}
		if b.Weights != nil && b.Weights[t] != nil && len(b.Weights[t]) != len(b.Indices[t]) {
			return fmt.Errorf("%s: %d per-sample weights for %d indices", tb.Name, len(b.Weights[t]), len(b.Indices[t]))
		}
	}
	return nil
}

// Forward runs the network on b and returns one click probability per
// example. The slice is reused by the next call.
func (r *Runner) Forward(b *Batch) ([]float32, error) {
	if err := r.checkBatch(b); err != nil {
		return nil, err
	}
	if b.N == 0 {
		return r.pred[:0], nil
	}
	if r.streams() {
		return r.forwardStream(b)
	}
	if r.streamsFeatures() {
		return r.forwardBatchWide(b)
	}
	n, N := r.net, b.N
	featW := n.featWidth()
	r.feat = grow(r.feat, N*featW)

	// Bottom MLP; the last layer writes straight into the feature rows.
	// Replaying, it starts at the first layer with a kernel (the first
	// that differs from the recorded fp32 network), from its recorded input.
	rp := r.replay
	in := Mat{Rows: N, Cols: n.NumDense, Stride: n.NumDense, Data: b.Dense}
	start := 0
	if rp != nil {
		copy(r.feat, rp.Feat)
		start = firstKernel(n.Bottom)
		if start < len(n.Bottom) {
			in = rp.input(n.Bottom[start], N)
		}
	}
	upstream := start < len(n.Bottom) // something before the top MLP was recomputed
	for i := start; i < len(n.Bottom); i++ {
		l := n.Bottom[i]
		var out Mat
		if i == len(n.Bottom)-1 {
			out = Mat{Rows: N, Cols: l.Out, Stride: featW, Data: r.feat}
		} else {
			r.act[i&1] = grow(r.act[i&1], N*l.Out)
			out = Mat{Rows: N, Cols: l.Out, Stride: l.Out, Data: r.act[i&1]}
		}
		r.linear(l, in, out)
		r.observe(l.Name, in, out, b)
		in = out
	}

	// Embedding bags, each into its slot of the feature rows.
	col := n.Bottom[len(n.Bottom)-1].Out
	for t, tb := range n.Tables {
		if rp != nil && tb.Kernel == nil {
			col += tb.Dim // recorded in rp.Feat
			continue
		}
		upstream = true
		out := Mat{Rows: N, Cols: tb.Dim, Stride: featW, Data: r.feat[col:]}
		if err := r.poolBatch(b, t, out.Data, featW); err != nil {
			return nil, err
		}
		r.observe(tb.Name, Mat{}, out, b)
		col += tb.Dim
	}

	// Interaction (replaying with nothing upstream recomputed and none of
	// the interaction's own layers lowered, the top MLP starts from
	// recorded inputs instead).
	if rp != nil && firstKernel(n.Interaction.Layers()) < len(n.Interaction.Layers()) {
		upstream = true
	}
	top := 0
	if rp == nil || upstream {
		width := n.Top[0].In
		r.top = grow(r.top, N*width)
		feat := Mat{Rows: N, Cols: featW, Stride: featW, Data: r.feat}
		in = Mat{Rows: N, Cols: width, Stride: width, Data: r.top}
		n.Interaction.Forward(r.interactEnv(b, r.parallel), feat, in)
		r.observe("interaction", feat, in, b)
	} else {
		// The last layer always runs: its output is the prediction.
		top = min(firstKernel(n.Top), len(n.Top)-1)
		in = rp.input(n.Top[top], N)
	}

	// Top MLP.
	for i := top; i < len(n.Top); i++ {
		l := n.Top[i]
		r.act[i&1] = grow(r.act[i&1], N*l.Out)
		out := Mat{Rows: N, Cols: l.Out, Stride: l.Out, Data: r.act[i&1]}
		r.linear(l, in, out)
		r.observe(l.Name, in, out, b)
		in = out
	}
	r.pred = grow(r.pred, N)
	for i := range N {
		r.pred[i] = in.Data[i*in.Stride]
	}
	return r.pred, nil
}

// Activations are one batch's fp32 activations as a Recorder saw them: the
// input of every Linear layer and the feature rows entering the
// interaction (bottom output and pooled embeddings).
type Activations struct {
	In   map[string][]float32 // compact rows x In per Linear layer
	Feat []float32
}

func (a *Activations) input(l *Linear, rows int) Mat {
	return Mat{Rows: rows, Cols: l.In, Stride: l.In, Data: a.In[l.Name]}
}

// Bytes is the memory the activations hold.
func (a *Activations) Bytes() int64 {
	n := int64(len(a.Feat))
	for _, v := range a.In {
		n += int64(len(v))
	}
	return 4 * n
}

// Recorder is an Observer that keeps every batch's Activations, keyed by
// the batch, for Replay.
type Recorder struct {
	Batches map[*Batch]*Activations
}

// Observe records Linear inputs and the interaction's feature rows.
func (rec *Recorder) Observe(ev Event) {
	if rec.Batches == nil {
		rec.Batches = map[*Batch]*Activations{}
	}
	a := rec.Batches[ev.Batch]
	if a == nil {
		a = &Activations{In: map[string][]float32{}}
		rec.Batches[ev.Batch] = a
	}
	compact := func(m Mat) []float32 {
		out := make([]float32, 0, m.Rows*m.Cols)
		for i := 0; i < m.Rows; i++ {
			out = append(out, m.Row(i)...)
		}
		return out
	}
	switch {
	case ev.Layer == "interaction":
		a.Feat = compact(ev.In)
	case ev.In.Rows > 0: // Linear layers (tables have no matrix input)
		a.In[ev.Layer] = compact(ev.In)
	}
}

// Replay runs b through the network starting from activations recorded
// on the fp32 version of the same network: layers without a Kernel are
// taken to be unchanged, so only the first layer with a kernel onwards (and
// only the tables with one) are computed. The result equals Forward's bit
// for bit; the saving is everything upstream of the first quantized layer.
func (r *Runner) Replay(b *Batch, a *Activations) ([]float32, error) {
	r.replay = a
	defer func() { r.replay = nil }()
	return r.Forward(b)
}

// firstKernel is the index of the first layer with a kernel, or len(ls).
func firstKernel(ls []*Linear) int {
	for i, l := range ls {
		if l.Kernel != nil {
			return i
		}
	}
	return len(ls)
}

// linear runs one fully connected layer over the threads.
func (r *Runner) linear(l *Linear, in, out Mat) { linearOn(r.parallel, l, in, out) }

// linearOn runs one fully connected layer, spreading its rows with par.
func linearOn(par Parallel, l *Linear, in, out Mat) {
	if l.Kernel != nil {
		l.Kernel.Forward(par, in, out, l.Bias, l.Act)
		return
	}
	floatGemm(par, in, out, l.Bias, l.Act, l.Packed().Gemm)
}

// SigmoidRows applies the sigmoid to rows [lo, hi) of m in place.
func SigmoidRows(m Mat, lo, hi int) {
	for i := lo; i < hi; i++ {
		row := m.Data[i*m.Stride : i*m.Stride+m.Cols]
		for j, v := range row {
			row[j] = Sigmoid(v)
		}
	}
}

// Sigmoid is 1/(1+e^-x) in float64, rounded once to float32.
func Sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// interactEnv is what the interaction's Forward works with: par to spread
// rows (serial within a streamed chunk), and the Runner's way of running an
// FC layer with it, observers included.
func (r *Runner) interactEnv(b *Batch, par Parallel) InteractEnv {
	return InteractEnv{
		Par: par,
		FC: func(l *Linear, in, out Mat) {
			linearOn(par, l, in, out)
			r.observe(l.Name, in, out, b)
		},
		NumFeatures: r.net.NumFeatures(),
		EmbDim:      r.net.EmbDim(),
	}
}
