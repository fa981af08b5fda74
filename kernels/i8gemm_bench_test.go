package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemmI8 measures the active int8 GEMM (float output with bias and
// ReLU, i.e. including the epilogue) single-threaded on the DLRM shapes of
// BenchmarkSgemm, reporting GOPS (2*M*N*K per call).
// Run e.g.: go test -run=^$ -bench='GemmI8/M=2048/N=512/K=512$' ./kernels/
func BenchmarkGemmI8(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				benchGemmI8(b, m, s.n, s.k, false)
			})
		}
	}
}

// BenchmarkGemmI8Dynamic measures a whole dynamically quantized Linear
// layer from float activations: per-tensor min/max and quantization of A,
// then the GEMM with its float epilogue. GOPS counts the GEMM's 2*M*N*K.
func BenchmarkGemmI8Dynamic(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				benchGemmI8(b, m, s.n, s.k, true)
			})
		}
	}
}

// BenchmarkGemmI8Impl compares the implementations on a few shapes.
func BenchmarkGemmI8Impl(b *testing.B) {
	defer keepActive(i8Gemms)()
	for _, name := range i8Gemms.names() {
		for _, sh := range [][3]int{{2048, 512, 512}, {128, 256, 512}, {1, 256, 512}} {
			b.Run(fmt.Sprintf("%s/M=%d/N=%d/K=%d", name, sh[0], sh[1], sh[2]), func(b *testing.B) {
				i8Gemms.set(name)
				benchGemmI8(b, sh[0], sh[1], sh[2], false)
			})
		}
	}
}

func benchGemmI8(b *testing.B, m, n, k int, dynamic bool) {
	rng := rand.New(rand.NewPCG(5, 6))
	wf := make([]float32, n*k)
	for i := range wf {
		wf[i] = rng.Float32() - 0.5
	}
	w, ws := QuantizeWeightsI8(wf, n, k, true)
	p := PackI8(w, n, k, ws)
	x := make([]float32, m*k)
	for i := range x {
		x[i] = rng.Float32()*4 - 1
	}
	a := make([]uint8, m*k)
	aq := QuantizeRowsDynamicU8(x, m, k, k, a, k, false, false)
	bias := make([]float32, n)
	c := make([]float32, m*n)
	for b.Loop() {
		if dynamic {
			aq = QuantizeRowsDynamicU8(x, m, k, k, a, k, false, false)
		}
		p.Gemm(m, a, k, aq, c, n, bias, true)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
}

// BenchmarkQuantizeU8 measures static quantization throughput (input bytes).
func BenchmarkQuantizeU8(b *testing.B) {
	for _, n := range []int{479, 65536} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(i%1000) * 0.01
			}
			dst := make([]uint8, n)
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				QuantizeU8(x, 0.05, 3, dst)
			}
		})
	}
}
