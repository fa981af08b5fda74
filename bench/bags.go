package bench

import (
	"math/rand/v2"

	"github.com/rqtools/rq/kernels"
)

// bagShapes are the embedding-bag benchmark points: M bags of K indices
// into a table of width N.
var bagShapes = []Shape{{M: 2048, N: 128, K: 1}, {M: 2048, N: 128, K: 20}, {M: 2048, N: 64, K: 1}}

// bagTableBytes is the fp32 size of the benchmark table: far larger than
// the caches (32 MiB L3 here), so lookups miss as in production.
const bagTableBytes = 1 << 30

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

// tableCache keeps the (large) fp32 tables between shapes of the same width.
var tableCache = map[int][]float32{}

func fp32Table(dim int) ([]float32, int64) {
	rows := int64(bagTableBytes / (4 * dim))
	if t, ok := tableCache[dim]; ok {
		return t, rows
	}
	t := make([]float32, rows*int64(dim))
	rng := rand.New(rand.NewPCG(3, uint64(dim)))
	for i := range t {
		t[i] = rng.Float32() - 0.5
	}
	tableCache = map[int][]float32{dim: t} // keep one: they are large
	return t, rows
}

func init() {
	register(kernel{name: "bag-fp32", family: "bag", fp32: "bag-fp32", setup: func(s Shape) (*runner, error) {
		t, rows := fp32Table(s.N)
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
		register(kernel{name: name, family: "bag", fp32: "bag-fp32", setup: func(s Shape) (*runner, error) {
			w, rows := fp32Table(s.N)
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
