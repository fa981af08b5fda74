package model

import (
	"fmt"
	"sync"

	"github.com/rqtools/rq/kernels"
)

// Streaming the feature rows: the bags and the interaction a few rows at a
// time.
//
// Over a batch of 2048 the MLPerf model's feature rows (bottom output and
// 26 pooled embeddings) take 28 MiB: pooled in one pass and read back by
// the interaction in another, they went to memory and back. Built for
// streamRows rows at a time they stay in L2 between the two, and the
// chunk's table rows are prefetched before it is pooled.
//
// The MLPs stay layer by layer over the whole batch. Carrying chunks
// through the whole network was tried and measured: against this
// schedule it was no faster for int8 (5 interleaved pairs, 0-8% slower)
// and 7% slower in fp32 and fp16, whose GEMMs re-read their weights for
// every chunk. It also lets per-tensor dynamic quantization (PyTorch's
// recipe) take its statistics over the whole batch as before.
//
// The results are the layer-by-layer schedule's bit for bit: the bags and
// the interaction compute a row from that row alone, and the chunk
// boundaries do not depend on the thread count.

// streamRows is the rows of one chunk.
const streamRows = 8 * kernels.GemmRowAlign

// chunkBufs are one worker's buffers for a chunk.
type chunkBufs struct {
	feat []float32
}

// streamsFeatures reports whether Forward may build the feature rows chunk
// by chunk: observers see the whole batch's feature rows, replay starts
// from recorded ones, and a table with a Release is pooled for the whole
// batch at once, one table after the other, so that releasing it after
// each bounds the resident memory.
func (r *Runner) streamsFeatures() bool {
	if len(r.observers) > 0 || r.replay != nil {
		return false
	}
	for _, t := range r.net.Tables {
		if t.Release != nil {
			return false
		}
	}
	return true
}

// forwardFeatures is Forward with the feature rows streamed: the MLPs run
// layer by layer over the whole batch, the bags and the interaction chunk
// by chunk, their table rows prefetched, the chunks shared out to the
// threads (worker w takes chunks w, w+workers, ...).
func (r *Runner) forwardFeatures(b *Batch) ([]float32, error) {
	n, N := r.net, b.N
	d := n.Bottom[len(n.Bottom)-1].Out
	featW := d
	for _, t := range n.Tables {
		featW += t.Dim
	}
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
	chunks := (N + streamRows - 1) / streamRows
	workers := min(r.threads, chunks)
	for len(r.chunk) < workers {
		r.chunk = append(r.chunk, new(chunkBufs))
	}
	var mu sync.Mutex
	bad, badTable := -1, -1
	work := func(w int) {
		cb := r.chunk[w]
		for c := w; c < chunks; c += workers {
			lo, hi := c*streamRows, min((c+1)*streamRows, N)
			rows := hi - lo
			for t, tb := range n.Tables {
				tb.Prefetch(b.Indices[t], b.Offsets[t], lo, hi)
			}
			cb.feat = grow(cb.feat, rows*featW)
			for i := range rows {
				copy(cb.feat[i*featW:i*featW+d], bot.Row(lo+i))
			}
			if t, p := r.features(b, lo, hi, cb.feat, featW, r.top[lo*width:hi*width], width); p >= 0 {
				mu.Lock()
				if bad < 0 || t < badTable || t == badTable && p < bad {
					bad, badTable = p, t
				}
				mu.Unlock()
			}
		}
	}
	if workers <= 1 {
		work(0)
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { work(w) })
		}
		wg.Wait()
	}
	if bad >= 0 {
		return nil, badIndex(n.Tables[badTable], b, badTable, bad)
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

// features completes the feature rows of rows [lo, hi) in feat (row 0 is
// row lo; the bottom MLP's output is in place) by pooling the bags, and
// writes the interaction into top (leading dimension width). It returns
// the table and index position of the first index out of range, or -1, -1.
func (r *Runner) features(b *Batch, lo, hi int, feat []float32, featW int, top []float32, width int) (int, int) {
	n := r.net
	col := n.Bottom[len(n.Bottom)-1].Out
	for t, tb := range n.Tables {
		if p := poolChunk(tb, b, t, feat[col:], featW, lo, hi); p >= 0 {
			return t, p
		}
		col += tb.Dim
	}
	rows := hi - lo
	if n.Interaction == Cat {
		copy(top[:rows*width], feat) // featW == width
	} else {
		kernels.InteractDot(feat, featW, n.NumFeatures(), n.EmbDim(), n.Interaction == DotSelf, top, width, 0, rows)
	}
	return -1, -1
}

// poolRows pools bags [lo, hi) of table t into out, whose row i is bag i.
func poolRows(tb *Table, b *Batch, t int, out []float32, ldo, lo, hi int) int {
	var w []float32
	if b.Weights != nil {
		w = b.Weights[t]
	}
	return tb.Pool(b.Indices[t], b.Offsets[t], w, out, ldo, lo, hi)
}

// poolChunk pools bags [lo, hi) of table t into out, whose row 0 is bag
// lo: the offsets of bags lo..hi still index the whole batch's indices.
func poolChunk(tb *Table, b *Batch, t int, out []float32, ldo, lo, hi int) int {
	var w []float32
	if b.Weights != nil {
		w = b.Weights[t]
	}
	return tb.Pool(b.Indices[t], b.Offsets[t][lo:hi+1], w, out, ldo, 0, hi-lo)
}

// badIndex is the error for index position p of table t out of range.
func badIndex(tb *Table, b *Batch, t, p int) error {
	return fmt.Errorf("%s: index %d (batch position %d) is outside the table's %d rows", tb.Name, b.Indices[t][p], p, tb.Rows)
}
