package bench

import (
	"math/rand/v2"

	"github.com/rqtools/rq/kernels"
)

func randF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}

func init() {
	register(kernel{name: "gemm-fp32", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape) (*runner, error) {
		rng := rand.New(rand.NewPCG(1, uint64(s.N*s.K)))
		p := kernels.PackF32(randF32(rng, s.N*s.K), s.N, s.K)
		a := randF32(rng, s.M*s.K)
		c := make([]float32, s.M*s.N)
		bias := randF32(rng, s.N)
		return &runner{
			rows: s.M, align: kernels.GemmRowAlign, ops: 2 * float64(s.M) * float64(s.N) * float64(s.K), impl: kernels.SgemmImpl(),
			run: func(lo, hi int) {
				p.Gemm(hi-lo, a[lo*s.K:], s.K, c[lo*s.N:], s.N, bias, true)
			},
		}, nil
	}})
}
