package bench

import (
	"math/rand/v2"
	"runtime"

	"github.com/rqtools/rq/kernels"
)

// bagShapes are the embedding-bag benchmark points: M bags of K indices
// into a table of width N.
var bagShapes = []Shape{{M: 2048, N: 128, K: 1}, {M: 2048, N: 128, K: 20}, {M: 2048, N: 64, K: 1}}

// DefaultTableBytes is the fp32 size of the bag benchmarks' table: far
// larger than the caches (32 MiB L3 here), so lookups miss as in
// production.
const DefaultTableBytes = 1 << 30

// bagBatches is how many distinct index batches a bag benchmark cycles
// through: enough rows that they cannot all stay in the caches.
const bagBatches = 64

// bagIndices draws uniform random indices (the worst case for caches) in
// EmbeddingBag layout, m bags of k, for bagBatches batches; cur() is the
// current batch and next() moves on.
type bagIndices struct {
	idx [][]int64
	off []int32
	i   int
}

func newBagIndices(rows int64, m, k int) *bagIndices {
	rng := rand.New(rand.NewPCG(7, uint64(m*k)))
	b := &bagIndices{off: make([]int32, m+1)}
	for j := 0; j < bagBatches; j++ {
		idx := make([]int64, m*k)
		for i := range idx {
			idx[i] = rng.Int64N(rows)
		}
		b.idx = append(b.idx, idx)
	}
	for i := range b.off {
		b.off[i] = int32(i * k)
	}
	return b
}

func (b *bagIndices) cur() []int64 { return b.idx[b.i] }
func (b *bagIndices) next()        { b.i = (b.i + 1) % len(b.idx) }

// tableCache keeps the (large) fp32 table between shapes of the same
// width and size.
var tableCache struct {
	dim   int
	bytes int64
	t     []float32
}

// releaseTables frees the previous shape's tables before a set for width
// dim is made, so that the peak is one set, as TableMemory assumes: the
// quantized copies are garbage once their runners are, and the fp32 table
// too unless it has width dim.
func releaseTables(dim int) {
	if tableCache.dim != dim {
		tableCache.t = nil
	}
	runtime.GC()
}

// fp32Table is a table of about size bytes (at least one row) of width
// dim, and its row count.
func fp32Table(dim int, size int64) ([]float32, int64) {
	rows := max(size/int64(4*dim), 1)
	if tableCache.t != nil && tableCache.dim == dim && tableCache.bytes == size {
		return tableCache.t, rows
	}
	tableCache.t = nil // keep one: they are large, and the old one can go first
	t := make([]float32, rows*int64(dim))
	rng := rand.New(rand.NewPCG(3, uint64(dim)))
	for i := range t {
		t[i] = rng.Float32() - 0.5
	}
	tableCache.dim, tableCache.bytes, tableCache.t = dim, size, t
	return t, rows
}

func init() {
	register(kernel{name: "bag-fp32", family: "bag", fp32: "bag-fp32", rowBytes: func(d int) int { return 4 * d }, setup: func(s Shape, o *Options) (*runner, error) {
		t, rows := fp32Table(s.N, o.TableBytes)
		bi := newBagIndices(rows, s.M, s.K)
		out := make([]float32, s.M*s.N)
		return &runner{
			rows: s.M, align: 1, ops: float64(s.M * s.K), bytes: float64(s.M*s.K) * float64(4*s.N), impl: kernels.BagImpl(), next: bi.next,
			run: func(lo, hi int) {
				kernels.EmbeddingBagF32(t, rows, s.N, bi.cur(), bi.off, nil, out, s.N, lo, hi)
			},
		}, nil
	}})
}

// quantized bag benchmarks: the same fp32 table quantized to each format.
func init() {
	for _, f := range []kernels.TableFormat{kernels.TableF16, kernels.TableQ8, kernels.TableQ4, kernels.TableQ2} {
		name := map[kernels.TableFormat]string{kernels.TableF16: "bag-fp16", kernels.TableQ8: "bag-int8", kernels.TableQ4: "bag-int4", kernels.TableQ2: "bag-int2"}[f]
		register(kernel{name: name, family: "bag", fp32: "bag-fp32", rowBytes: f.RowBytes, setup: func(s Shape, o *Options) (*runner, error) {
			w, rows := fp32Table(s.N, o.TableBytes)
			data := make([]byte, rows*int64(f.RowBytes(s.N)))
			switch f {
			case kernels.TableF16:
				kernels.QuantizeRowsF16(w, int(rows), s.N, data)
			case kernels.TableQ8:
				kernels.QuantizeRows8(w, int(rows), s.N, data)
			default:
				kernels.QuantizeRowsN(f.Bits(), w, int(rows), s.N, data)
			}
			bi := newBagIndices(rows, s.M, s.K)
			out := make([]float32, s.M*s.N)
			rb := f.RowBytes(s.N)
			return &runner{
				rows: s.M, align: 1, ops: float64(s.M * s.K), bytes: float64(s.M*s.K) * float64(rb), impl: kernels.BagImpl(), next: bi.next,
				run: func(lo, hi int) {
					kernels.EmbeddingBag(f, data, rows, s.N, bi.cur(), bi.off, nil, false, out, s.N, lo, hi)
				},
			}, nil
		}})
	}
}

// MX bag benchmarks: the same fp32 table, shapes and indices as the
// row-wise bags, quantized to each MX format and pooled by
// kernels.EmbeddingBagMX (the kernel MX tables run on in the model). The
// bytes read per lookup are the row's codes and its E8M0 scales.
func init() {
	for _, f := range kernels.MXFormats {
		rowBytes := func(d int) int { return kernels.MXCodeBytes(f, d) + kernels.MXScales(d) }
		register(kernel{name: "bag-" + f.Precision().String(), family: "bag", fp32: "bag-fp32", rowBytes: rowBytes, setup: func(s Shape, o *Options) (*runner, error) {
			w, rows := fp32Table(s.N, o.TableBytes)
			rb, ns := kernels.MXCodeBytes(f, s.N), kernels.MXScales(s.N)
			codes, scales := make([]byte, rows*int64(rb)), make([]byte, rows*int64(ns))
			if err := kernels.QuantizeMXRows(f, "bench table", w, int(rows), s.N, codes, scales); err != nil {
				return nil, err
			}
			bi := newBagIndices(rows, s.M, s.K)
			out := make([]float32, s.M*s.N)
			return &runner{
				rows: s.M, align: 1, ops: float64(s.M * s.K), bytes: float64(s.M*s.K) * float64(rb+ns), impl: kernels.MXBagImpl(), next: bi.next,
				run: func(lo, hi int) {
					kernels.EmbeddingBagMX(f, codes, scales, rows, s.N, bi.cur(), bi.off, nil, false, out, s.N, lo, hi)
				},
			}, nil
		}})
	}
}
