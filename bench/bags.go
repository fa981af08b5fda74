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

// bagIndices draws uniform random indices (the worst case for caches) in
// EmbeddingBag layout: m bags of k.
func bagIndices(rows int64, m, k int) ([]int64, []int32) {
	rng := rand.New(rand.NewPCG(7, uint64(m*k)))
	idx := make([]int64, m*k)
	for i := range idx {
		idx[i] = rng.Int64N(rows)
	}
	off := make([]int32, m+1)
	for i := range off {
		off[i] = int32(i * k)
	}
	return idx, off
}

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
		idx, off := bagIndices(rows, s.M, s.K)
		out := make([]float32, s.M*s.N)
		return &runner{
			rows: s.M, align: 1, ops: float64(s.M * s.K), bytes: float64(s.M*s.K) * float64(4*s.N), impl: "go",
			run: func(lo, hi int) {
				kernels.EmbeddingBagF32(t, rows, s.N, idx, off, nil, out, s.N, lo, hi)
			},
		}, nil
	}})
}
