package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemmF16 and BenchmarkGemmBF16 measure the fp16-weight and bf16
// GEMMs (active implementation, one thread) on the shapes of BenchmarkSgemm,
// reporting GFLOPS (2*M*N*K per Gemm) for direct ratios against it, e.g.
//
//	go test -run=^$ -bench='Gemm(F16|BF16)?/M=1/' ./kernels/
//	go test -run=^$ -bench='Sgemm/M=1/' ./kernels/
func BenchmarkGemmF16(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				w, a, bias, c := benchOperands(m, s.n, s.k)
				p := PackF16FromF32(w, s.n, s.k)
				benchLoop(b, m, s.n, s.k, func() { p.Gemm(m, a, s.k, c, s.n, bias, true) })
			})
		}
	}
}

// BenchmarkGemmBF16 measures the bf16 GEMM with fp32 activations (the
// conversion of A to bf16 included, as the model would run it).
func BenchmarkGemmBF16(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				w, a, bias, c := benchOperands(m, s.n, s.k)
				p := PackBF16FromF32(w, s.n, s.k)
				benchLoop(b, m, s.n, s.k, func() { p.Gemm(m, a, s.k, c, s.n, bias, true) })
			})
		}
	}
}

// BenchmarkGemmBF16A is BenchmarkGemmBF16 with A already in bf16.
func BenchmarkGemmBF16A(b *testing.B) {
	for _, m := range []int{1, 128, 2048} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("M=%d/N=%d/K=%d", m, s.n, s.k), func(b *testing.B) {
				w, a, bias, c := benchOperands(m, s.n, s.k)
				ah := make([]uint16, len(a))
				F32ToBF16Slice(ah, a)
				p := PackBF16FromF32(w, s.n, s.k)
				benchLoop(b, m, s.n, s.k, func() { p.GemmBF16A(m, ah, s.k, c, s.n, bias, true) })
			})
		}
	}
}

// BenchmarkGemmLPImpl compares all implementations of both GEMMs on a few shapes.
func BenchmarkGemmLPImpl(b *testing.B) {
	defer keepActive(f16Gemms)()
	defer keepActive(bf16Gemms)()
	shapes := [][3]int{{2048, 512, 512}, {128, 256, 512}, {1, 1024, 1024}}
	for _, im := range f16Gemms.impls {
		for _, sh := range shapes {
			b.Run(fmt.Sprintf("f16/%s/M=%d/N=%d/K=%d", im.name, sh[0], sh[1], sh[2]), func(b *testing.B) {
				if !f16Gemms.set(im.name) {
					b.Skip("not supported by this CPU")
				}
				w, a, bias, c := benchOperands(sh[0], sh[1], sh[2])
				p := PackF16FromF32(w, sh[1], sh[2])
				benchLoop(b, sh[0], sh[1], sh[2], func() { p.Gemm(sh[0], a, sh[2], c, sh[1], bias, true) })
			})
		}
	}
	for _, im := range bf16Gemms.impls {
		for _, sh := range shapes {
			b.Run(fmt.Sprintf("bf16/%s/M=%d/N=%d/K=%d", im.name, sh[0], sh[1], sh[2]), func(b *testing.B) {
				if !bf16Gemms.set(im.name) {
					b.Skip("not supported by this CPU")
				}
				w, a, bias, c := benchOperands(sh[0], sh[1], sh[2])
				p := PackBF16FromF32(w, sh[1], sh[2])
				benchLoop(b, sh[0], sh[1], sh[2], func() { p.Gemm(sh[0], a, sh[2], c, sh[1], bias, true) })
			})
		}
	}
}

// BenchmarkConvertSlices measures the slice converters on 1 MiB of floats.
func BenchmarkConvertSlices(b *testing.B) {
	const n = 1 << 18
	f := make([]float32, n)
	h := make([]uint16, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	for _, c := range []struct {
		name string
		run  func()
	}{
		{"F32ToF16", func() { F32ToF16Slice(h, f) }},
		{"F16ToF32", func() { F16ToF32Slice(f, h) }},
		{"F32ToBF16", func() { F32ToBF16Slice(h, f) }},
		{"BF16ToF32", func() { BF16ToF32Slice(f, h) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(6 * n)
			for b.Loop() {
				c.run()
			}
		})
	}
}

func benchOperands(m, n, k int) (w, a, bias, c []float32) {
	rng := rand.New(rand.NewPCG(5, 6))
	w = make([]float32, n*k)
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	a = make([]float32, m*k)
	for i := range a {
		a[i] = rng.Float32() - 0.5
	}
	return w, a, make([]float32, n), make([]float32, m*n)
}

func benchLoop(b *testing.B, m, n, k int, gemm func()) {
	for b.Loop() {
		gemm()
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
