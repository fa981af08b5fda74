package debug

import (
	"container/heap"
	"fmt"
	"math"
	"sort"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/report"
)

// tableChunk is how many rows are dequantized at a time, so a table of any
// size is read in bounded memory.
const tableChunk = 4096

// rowDecoder returns a quantized table's shape, stored bytes and a
// function that dequantizes rows [r0, r0+n) into dst as its bag pools them
// (row-wise and MX tables); ok false for any other kernel.
func rowDecoder(k model.BagKernel) (rows int64, dim int, bytes int64, dec func(r0 int64, n int, dst []float32), ok bool) {
	if rt, ok := k.(kernels.RowTable); ok {
		rows, dim := rt.Shape()
		return rows, dim, rt.Bytes(), rt.DequantizeRows, rt.Whole()
	}
	return 0, 0, 0, nil, false
}

// tableRows compares every row of a quantized table with the fp32 one; nil
// when q's kernel is not a table rq can dequantize (row-wise or MX).
func tableRows(ref, q *model.Table, k int) (*TableRows, error) {
	if q.Kernel == nil {
		return nil, nil
	}
	rows, qdim, nbytes, decode, whole := rowDecoder(q.Kernel)
	if decode == nil {
		return nil, nil
	}
	dim := ref.Dim
	if !whole || rows != ref.Rows || qdim != dim || int64(len(ref.Weight)) != ref.Rows*int64(dim) {
		return nil, fmt.Errorf("%s: quantized table (%d x %d, %d bytes) does not match the fp32 one (%d x %d)", q.Name, rows, qdim, nbytes, ref.Rows, dim)
	}
	ranges, err := calibrate.NewHistogram(tableRangeBins)
	if err != nil {
		return nil, err
	}
	tr := &TableRows{Table: q.Name, Precision: q.Label(), Rows: ref.Rows, MaxRow: -1}
	top := &outlierHeap{}
	parts := newPartStats(q.Kernel)
	buf := make([]float32, tableChunk*dim)
	rangeBuf := make([]float32, 0, tableChunk)
	var sumRMSE, maxRMSE, maxRange float64
	for r0 := int64(0); r0 < ref.Rows; r0 += tableChunk {
		n := int(min(tableChunk, ref.Rows-r0))
		decode(r0, n, buf[:n*dim])
		rangeBuf = rangeBuf[:0]
		for i := 0; i < n; i++ {
			w := ref.Weight[(r0+int64(i))*int64(dim) : (r0+int64(i)+1)*int64(dim)]
			d := buf[i*dim : (i+1)*dim]
			var e2 float64
			lo, hi := math.Inf(1), math.Inf(-1)
			for j, v := range w {
				x := float64(v)
				e := float64(d[j]) - x
				e2 += e * e
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			rmse := math.Sqrt(e2 / float64(dim))
			parts.add(r0+int64(i), rmse)
			rng := hi - lo
			sumRMSE += rmse
			if rmse > maxRMSE || tr.MaxRow < 0 {
				maxRMSE, tr.MaxRow = rmse, r0+int64(i)
			}
			maxRange = math.Max(maxRange, rng)
			rangeBuf = append(rangeBuf, float32(rng))
			o := OutlierRow{Row: r0 + int64(i), Range: report.Float(rng), RMSE: report.Float(rmse)}
			if top.Len() < k {
				heap.Push(top, o)
			} else if rng > float64((*top)[0].Range) {
				(*top)[0] = o
				heap.Fix(top, 0)
			}
		}
		ranges.Observe(rangeBuf)
	}
	if ref.Rows > 0 {
		tr.MeanRowRMSE = report.Float(sumRMSE / float64(ref.Rows))
	}
	tr.MaxRowRMSE, tr.MaxRange = report.Float(maxRMSE), report.Float(maxRange)
	tr.MedianRange = report.Float(medianOf(ranges))
	tr.Outliers = append([]OutlierRow{}, (*top)...)
	tr.Parts = parts.parts()
	sort.Slice(tr.Outliers, func(i, j int) bool { return tr.Outliers[i].Range > tr.Outliers[j].Range })
	return tr, nil
}

// tableRangeBins: the median row range is known to within a bin, whose
// power-of-two width is at most 1/2048 of the largest range (the window
// spans [0, max range]).
const tableRangeBins = 4096

// outlierHeap is a min-heap on Range: its root is the smallest of the K
// largest ranges so far.
type outlierHeap []OutlierRow

func (h outlierHeap) Len() int           { return len(h) }
func (h outlierHeap) Less(i, j int) bool { return h[i].Range < h[j].Range }
func (h outlierHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *outlierHeap) Push(x any)        { *h = append(*h, x.(OutlierRow)) }
func (h *outlierHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
