package bench

import (
	"math/rand/v2"

	"github.com/rqtools/rq/kernels"
)

// bag-mixed: the benchmark's fp32 table as a mixed-precision table (issue
// 15), 5% of its rows (at random) 8-bit row-wise and the rest 2-bit, pooled
// by kernels.MixedBagTable from uniform lookups (so 5% of them hot, the
// worst case: calibration picks the rows looked up most). bytes/s counts
// the table's stored bytes per row (parts and hot ids) per lookup.
func init() {
	// rowBytes bounds the table's memory by an int8 row a row: its parts
	// (5% int8, 95% int2), hot ids and lookup map take less.
	register(kernel{name: "bag-mixed", family: "bag", fp32: "bag-fp32", rowBytes: kernels.TableQ8.RowBytes, setup: func(s Shape, o *Options) (*runner, error) {
		w, rows := fp32Table(s.N, o.TableBytes)
		t, err := mixedBenchTable(w, rows, s.N, 0.05)
		if err != nil {
			return nil, err
		}
		bi := newBagIndices(rows, s.M, s.K)
		out := make([]float32, s.M*s.N)
		return &runner{
			rows: s.M, align: 1, ops: float64(s.M * s.K), bytes: float64(s.M*s.K) * float64(t.Bytes()) / float64(rows), impl: kernels.MixedBagImpl(), next: bi.next,
			run: func(lo, hi int) {
				t.Pool(bi.cur(), bi.off, nil, out, s.N, lo, hi)
			},
		}, nil
	}})
}

// mixedBenchTable quantizes w (rows x dim) into a mixed int8/int2 table
// with about share of its rows hot, each part quantized in place from w's
// rows (no copy of the fp32 table).
func mixedBenchTable(w []float32, rows int64, dim int, share float64) (*kernels.MixedBagTable, error) {
	rng := rand.New(rand.NewPCG(13, uint64(dim)))
	var hot []int64
	for r := int64(0); r < rows; r++ {
		if rng.Float64() < share {
			hot = append(hot, r)
		}
	}
	hb, cb := kernels.TableQ8.RowBytes(dim), kernels.TableQ2.RowBytes(dim)
	hdata := make([]byte, int64(len(hot))*int64(hb))
	cdata := make([]byte, (rows-int64(len(hot)))*int64(cb))
	d := int64(dim)
	for i, r := range hot {
		kernels.QuantizeRows8(w[r*d:(r+1)*d], 1, dim, hdata[i*hb:(i+1)*hb])
	}
	next, c := int64(0), int64(0) // the next source row, the next cold row
	for i := 0; i <= len(hot); i++ {
		end := rows
		if i < len(hot) {
			end = hot[i]
		}
		if n := end - next; n > 0 {
			kernels.QuantizeRowsN(2, w[next*d:end*d], int(n), dim, cdata[c*int64(cb):(c+n)*int64(cb)])
			c += n
		}
		next = end + 1
	}
	ht, err := kernels.NewBagTable(kernels.TableQ8, int64(len(hot)), dim, hdata)
	if err != nil {
		return nil, err
	}
	ct, err := kernels.NewBagTable(kernels.TableQ2, rows-int64(len(hot)), dim, cdata)
	if err != nil {
		return nil, err
	}
	return kernels.NewMixedBagTable(rows, dim, hot, ht, ct)
}
