package model

import (
	"fmt"
	"sync"

	"github.com/rqtools/rq/kernels"
)

// Streaming: carrying a few rows through the network at a time.
//
// Layer by layer over a batch of 2048, every activation (8 MiB for a
// 1024-wide fp32 layer, 28 MiB of feature rows on the MLPerf model) lives
// in L3 or memory, and each pass over it (the GEMM's output, the dynamic
// quantizer's min/max and rounding, the interaction) streams it again. A
// chunk of streamRows rows keeps those in L2. Each chunk reads every
// layer's weights again, so only small MLPs are carried through whole
// (streamMaxWeightBytes); larger ones, and layers that take statistics over
// the whole batch, run layer by layer with only the feature rows (bags and
// interaction) built chunk by chunk (forwardBatchWide).
//
// The results are Forward's layer-by-layer results bit for bit: every
// kernel computes a row from that row alone, by the same sequence of
// operations whatever the number of rows in the call, so neither the chunk
// boundaries, the batch size nor the thread count change a bit.
// (streamRows is a multiple of GemmRowAlign only so that chunks run whole
// kernel row blocks.)

// streamRows is the rows of one chunk: at 96 rows a 1024-wide fp32
// activation is 384 KiB, and a pair of them plus the u8 copy and the
// packed weights' panel fit the 1 MiB L2 of the machines we target.
const streamRows = 8 * kernels.GemmRowAlign

// streamMaxWeightBytes bounds the MLP weights (as stored) of a network
// carried through whole in chunks; larger MLPs run layer by layer with
// only their feature rows streamed (forwardBatchWide). Each chunk reads
// every layer's weights again: measured on this machine, the MLPerf
// model's MLP at 9.4 MB (fp32) and 4.7 MB (fp16) ran 7% slower carried
// whole than layer by layer, at 2.4 MB (int8) the same (5 interleaved
// pairs), and criteo-18k's at 1.9 MB (fp32) 20-35% faster, its int8
// plans 1.4-3x faster (rq demo's 1,286 rows, two threads).
const streamMaxWeightBytes = 4 << 20

// RowWise is implemented by FC kernels whose output row i depends on input
// row i alone (static, per-row dynamic, float weights). Kernels that take
// statistics over the whole batch (per-tensor dynamic quantization) do not
// implement it or return false, and keep the layer-by-layer schedule.
type RowWise interface {
	RowWise() bool
}

// streams reports whether Forward may run b in chunks of rows: nothing
// observes the layers (observers see whole-batch activations), no replay,
// MLP weights within streamMaxWeightBytes, and every kernel row-wise.
func (r *Runner) streams() bool {
	if len(r.observers) > 0 || r.replay != nil {
		return false
	}
	var weights int64
	for l := range r.net.Linears() {
		weights += l.Bytes()
		if !rowWise(l) {
			return false
		}
	}
	return weights <= streamMaxWeightBytes
}

// chunkBufs are one worker's buffers for a chunk.
type chunkBufs struct {
	act  [2][]float32
	feat []float32
	top  []float32
}

// serial runs fn over all rows on the calling goroutine: within a chunk,
// layers do not spread further (the chunks are spread instead).
func serial(n, _ int, fn func(lo, hi int)) { fn(0, n) }

// forwardStream is Forward in chunks of streamRows rows, the chunks shared
// out to the threads. Tables with a Release are pooled first, for the
// whole batch and one table at a time as the layer-by-layer schedule does,
// so that releasing after each table still bounds the resident memory; the
// other tables are pooled chunk by chunk.
func (r *Runner) forwardStream(b *Batch) ([]float32, error) {
	n, N := r.net, b.N
	featW := n.featWidth()
	r.pred = grow(r.pred, N)

	prePooled := false
	for _, t := range n.Tables {
		prePooled = prePooled || t.Release != nil
	}
	if prePooled {
		r.feat = grow(r.feat, N*featW)
		col := n.Bottom[len(n.Bottom)-1].Out
		for t, tb := range n.Tables {
			if err := r.poolBatch(b, t, r.feat[col:], featW); err != nil {
				return nil, err
			}
			col += tb.Dim
		}
	}
	if t, p := r.eachChunk(N, func(cb *chunkBufs, lo, hi int) (int, int) {
		return r.forwardRows(b, lo, hi, featW, prePooled, cb)
	}); p >= 0 {
		return nil, badIndex(n.Tables[t], b, t, p)
	}
	return r.pred, nil
}

// eachChunk runs fn on the chunks of streamRows rows of an n-row batch,
// shared out to the threads (worker w takes chunks w, w+workers, ...),
// each worker with its own buffers. fn returns the table and index
// position of the first index out of range in its chunk, or -1, -1;
// eachChunk returns the lowest such table, then position, over all chunks,
// so errors do not depend on the thread count.
func (r *Runner) eachChunk(n int, fn func(cb *chunkBufs, lo, hi int) (int, int)) (int, int) {
	chunks := (n + streamRows - 1) / streamRows
	workers := min(r.threads, chunks)
	for len(r.chunk) < workers {
		r.chunk = append(r.chunk, new(chunkBufs))
	}
	var mu sync.Mutex
	bad, badTable := -1, -1
	work := func(w int) {
		for c := w; c < chunks; c += workers {
			t, p := fn(r.chunk[w], c*streamRows, min((c+1)*streamRows, n))
			if p < 0 {
				continue
			}
			mu.Lock()
			if bad < 0 || t < badTable || t == badTable && p < bad {
				bad, badTable = p, t
			}
			mu.Unlock()
		}
	}
	if workers <= 1 {
		work(0)
	} else {
		concurrently(workers, work)
	}
	return badTable, bad
}

// forwardRows runs rows [lo, hi) of b through the network into r.pred,
// on the calling goroutine. With prePooled the tables are in r.feat
// already. It returns the table and index position of the first index out
// of range (the lowest table, then position), or -1, -1.
func (r *Runner) forwardRows(b *Batch, lo, hi, featW int, prePooled bool, cb *chunkBufs) (int, int) {
	n := r.net
	rows := hi - lo
	var feat []float32
	if prePooled {
		feat = r.feat[lo*featW : hi*featW]
	} else {
		cb.feat = grow(cb.feat, rows*featW)
		feat = cb.feat
	}

	if !prePooled {
		// The chunk's table rows start on their way now and arrive while
		// the bottom MLP runs: a lookup that misses the caches is the
		// pooling's whole cost, and the bag kernels' own prefetching runs
		// only a few dozen rows ahead, most of a chunk.
		for t, tb := range n.Tables {
			tb.Prefetch(b.Indices[t], b.Offsets[t], lo, hi)
		}
	}

	// Bottom MLP, the last layer into the feature rows.
	in := Mat{Rows: rows, Cols: n.NumDense, Stride: n.NumDense, Data: b.Dense[lo*n.NumDense : hi*n.NumDense]}
	for i, l := range n.Bottom {
		var out Mat
		if i == len(n.Bottom)-1 {
			out = Mat{Rows: rows, Cols: l.Out, Stride: featW, Data: feat}
		} else {
			cb.act[i&1] = grow(cb.act[i&1], rows*l.Out)
			out = Mat{Rows: rows, Cols: l.Out, Stride: l.Out, Data: cb.act[i&1]}
		}
		linearOn(serial, l, in, out)
		in = out
	}

	width := n.Top[0].In
	cb.top = grow(cb.top, rows*width)
	if t, p := r.features(b, lo, hi, feat, featW, !prePooled, cb.top, width); p >= 0 {
		return t, p
	}

	in = Mat{Rows: rows, Cols: width, Stride: width, Data: cb.top}
	for i, l := range n.Top {
		cb.act[i&1] = grow(cb.act[i&1], rows*l.Out)
		out := Mat{Rows: rows, Cols: l.Out, Stride: l.Out, Data: cb.act[i&1]}
		linearOn(serial, l, in, out)
		in = out
	}
	for i := range rows {
		r.pred[lo+i] = in.Data[i*in.Stride]
	}
	return -1, -1
}

// features completes the feature rows of rows [lo, hi) in feat (row 0 is
// row lo; the bottom MLP's output is in place), pooling the bags when pool
// is set, and writes the interaction into top (leading dimension width).
// It returns the table and index position of the first index out of
// range, or -1, -1.
func (r *Runner) features(b *Batch, lo, hi int, feat []float32, featW int, pool bool, top []float32, width int) (int, int) {
	n := r.net
	if pool {
		col := n.Bottom[len(n.Bottom)-1].Out
		for t, tb := range n.Tables {
			if p := poolChunk(tb, b, t, feat[col:], featW, lo, hi); p >= 0 {
				return t, p
			}
			col += tb.Dim
		}
	}
	rows := hi - lo
	n.Interaction.Forward(r.interactEnv(b, serial), Mat{Rows: rows, Cols: featW, Stride: featW, Data: feat}, Mat{Rows: rows, Cols: width, Stride: width, Data: top})
	return -1, -1
}

// streamsFeatures reports whether a network that cannot stream whole (a
// layer takes statistics over the batch: per-tensor dynamic quantization)
// may still build its feature rows chunk by chunk: the bags and the
// interaction are row-wise whatever the layers are. Observers see the
// whole batch's feature rows, replay starts from recorded ones, and a
// table with a Release is pooled for the whole batch at once.
func (r *Runner) streamsFeatures() bool {
	if len(r.observers) > 0 || r.replay != nil {
		return false
	}
	for _, t := range r.net.Tables {
		if t.Release != nil {
			return false
		}
	}
	// The interaction is built chunk by chunk: its own layers, if any,
	// must compute each row from that row alone.
	for _, l := range r.net.Interaction.Layers() {
		if !rowWise(l) {
			return false
		}
	}
	return true
}

// rowWise reports whether l computes each row from that row alone (fp32,
// or a kernel that says so), so that it may run on a chunk of rows.
func rowWise(l *Linear) bool {
	if l.Kernel == nil {
		return true
	}
	rw, ok := l.Kernel.(RowWise)
	return ok && rw.RowWise()
}

// forwardBatchWide is Forward for networks with batch-wide layers: the
// MLPs run layer by layer over the whole batch, but the feature rows,
// 28 MiB for a batch of the MLPerf model, are built and consumed by the
// interaction chunk by chunk in cache, their table rows prefetched.
func (r *Runner) forwardBatchWide(b *Batch) ([]float32, error) {
	n, N := r.net, b.N
	d := n.Bottom[len(n.Bottom)-1].Out
	featW := n.featWidth()
	in := Mat{Rows: N, Cols: n.NumDense, Stride: n.NumDense, Data: b.Dense}
	for i, l := range n.Bottom {
		r.act[i&1] = grow(r.act[i&1], N*l.Out)
		out := Mat{Rows: N, Cols: l.Out, Stride: l.Out, Data: r.act[i&1]}
		r.linear(l, in, out)
		in = out
	}
	bot := in

	width := n.Top[0].In
	r.top = grow(r.top, N*width)
	if t, p := r.eachChunk(N, func(cb *chunkBufs, lo, hi int) (int, int) {
		rows := hi - lo
		for t, tb := range n.Tables {
			tb.Prefetch(b.Indices[t], b.Offsets[t], lo, hi)
		}
		cb.feat = grow(cb.feat, rows*featW)
		for i := range rows {
			copy(cb.feat[i*featW:i*featW+d], bot.Row(lo+i))
		}
		return r.features(b, lo, hi, cb.feat, featW, true, r.top[lo*width:hi*width], width)
	}); p >= 0 {
		return nil, badIndex(n.Tables[t], b, t, p)
	}

	in = Mat{Rows: N, Cols: width, Stride: width, Data: r.top}
	for i, l := range n.Top {
		r.act[i&1] = grow(r.act[i&1], N*l.Out)
		out := Mat{Rows: N, Cols: l.Out, Stride: l.Out, Data: r.act[i&1]}
		r.linear(l, in, out)
		in = out
	}
	r.pred = grow(r.pred, N)
	for i := range N {
		r.pred[i] = in.Data[i*in.Stride]
	}
	return r.pred, nil
}

// poolRows pools bags [lo, hi) of table t into out, whose row i is bag i.
func poolRows(tb *Table, b *Batch, t int, out []float32, ldo, lo, hi int) int {
	return tb.Pool(b.Indices[t], b.Offsets[t], bagWeights(b, t), out, ldo, lo, hi)
}

// poolChunk pools bags [lo, hi) of table t into out, whose row 0 is bag
// lo: the offsets of bags lo..hi still index the whole batch's indices.
func poolChunk(tb *Table, b *Batch, t int, out []float32, ldo, lo, hi int) int {
	return tb.Pool(b.Indices[t], b.Offsets[t][lo:hi+1], bagWeights(b, t), out, ldo, 0, hi-lo)
}

// bagWeights is table t's per-sample weights in b, or nil.
func bagWeights(b *Batch, t int) []float32 {
	if b.Weights == nil {
		return nil
	}
	return b.Weights[t]
}

// badIndex is the error for index position p of table t out of range.
func badIndex(tb *Table, b *Batch, t, p int) error {
	return fmt.Errorf("%s: index %d (batch position %d) is outside the table's %d rows", tb.Name, b.Indices[t][p], p, tb.Rows)
}
