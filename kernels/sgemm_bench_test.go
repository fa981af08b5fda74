package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are the (N, K) of DLRM's and MLPerf DLRM's MLP layers, plus a
// square 512 for comparison with BLAS numbers.
var benchShapes = []struct{ n, k int }{
	{512, 13}, {256, 512}, {64, 256}, {16, 64}, {512, 367}, {1, 256},
	{128, 256}, {1024, 479}, {1024, 1024}, {512, 512},
}

// BenchmarkSgemm measures the active implementation (the best the CPU has)
// single-threaded, reporting GFLOPS (2*M*N*K per Gemm).
// Run e.g.: go test -run=^$ -bench='Sgemm/M=2048/N=512/K=512$' ./kernels/
func BenchmarkSgemm(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				benchGemm(b, m, s.n, s.k)
			})
		}
	}
}

// BenchmarkSgemmImpl compares all implementations on a few shapes.
func BenchmarkSgemmImpl(b *testing.B) {
	defer keepActive(sgemms)()
	for _, name := range sgemms.names() {
		for _, sh := range [][3]int{{2048, 512, 512}, {128, 256, 512}, {1, 256, 512}} {
			b.Run(fmt.Sprintf("%s/M=%d/N=%d/K=%d", name, sh[0], sh[1], sh[2]), func(b *testing.B) {
				sgemms.set(name)
				benchGemm(b, sh[0], sh[1], sh[2])
			})
		}
	}
}

func benchGemm(b *testing.B, m, n, k int) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := make([]float32, n*k)
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	a := make([]float32, m*k)
	for i := range a {
		a[i] = rng.Float32() - 0.5
	}
	bias := make([]float32, n)
	c := make([]float32, m*n)
	p := PackF32(w, n, k)
	b.SetBytes(int64(4 * m * k))
	for b.Loop() {
		p.Gemm(m, a, k, c, n, bias, true)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
