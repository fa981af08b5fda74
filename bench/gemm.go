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
	register(kernel{name: "gemm-fp32", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape, _ *Options) (*runner, error) {
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

func randWeights(s Shape) ([]float32, []float32, []float32) {
	rng := rand.New(rand.NewPCG(1, uint64(s.N*s.K)))
	w := randF32(rng, s.N*s.K)
	a := randF32(rng, s.M*s.K)
	for i := range a {
		a[i] = max(a[i], 0) * 3 // post-ReLU activations, as most FC inputs are
	}
	return w, a, randF32(rng, s.N)
}

func init() {
	register(kernel{name: "gemm-fp16", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape, _ *Options) (*runner, error) {
		w, a, bias := randWeights(s)
		p := kernels.PackF16FromF32(w, s.N, s.K)
		c := make([]float32, s.M*s.N)
		return &runner{rows: s.M, align: kernels.GemmRowAlign, ops: 2 * float64(s.M) * float64(s.N) * float64(s.K), impl: kernels.F16GemmImpl(),
			run: func(lo, hi int) { p.Gemm(hi-lo, a[lo*s.K:], s.K, c[lo*s.N:], s.N, bias, true) }}, nil
	}})
	register(kernel{name: "gemm-bf16", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape, _ *Options) (*runner, error) {
		w, a, bias := randWeights(s)
		p := kernels.PackBF16FromF32(w, s.N, s.K)
		c := make([]float32, s.M*s.N)
		return &runner{rows: s.M, align: kernels.GemmRowAlign, ops: 2 * float64(s.M) * float64(s.N) * float64(s.K), impl: kernels.BF16GemmImpl(),
			run: func(lo, hi int) { p.Gemm(hi-lo, a[lo*s.K:], s.K, c[lo*s.N:], s.N, bias, true) }}, nil
	}})
	// gemm-int8: u8 activations already quantized (a static layer fed by a
	// requantizing one), dequantize + bias + ReLU epilogue to fp32.
	register(kernel{name: "gemm-int8", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape, _ *Options) (*runner, error) {
		w, a, bias := randWeights(s)
		q, scale := kernels.QuantizeWeightsI8(w, s.N, s.K, true)
		p := kernels.PackI8(q, s.N, s.K, scale)
		as, az := kernels.ChooseQParamsU8(0, 3, false)
		au := make([]uint8, s.M*s.K)
		kernels.QuantizeU8(a, as, az, au)
		c := make([]float32, s.M*s.N)
		aq := kernels.ActQuant{Scale: as, Zero: az}
		return &runner{rows: s.M, align: kernels.GemmRowAlign, ops: 2 * float64(s.M) * float64(s.N) * float64(s.K), impl: kernels.I8GemmImpl(),
			run: func(lo, hi int) { p.Gemm(hi-lo, au[lo*s.K:], s.K, aq, c[lo*s.N:], s.N, bias, true) }}, nil
	}})
	// gemm-int8-dynamic: the whole dynamic layer: per-row quantization of
	// the fp32 input, then the int8 GEMM.
	register(kernel{name: "gemm-int8-dynamic", family: "gemm", fp32: "gemm-fp32", setup: func(s Shape, _ *Options) (*runner, error) {
		w, a, bias := randWeights(s)
		q, scale := kernels.QuantizeWeightsI8(w, s.N, s.K, true)
		p := kernels.PackI8(q, s.N, s.K, scale)
		au := make([]uint8, s.M*s.K)
		c := make([]float32, s.M*s.N)
		return &runner{rows: s.M, align: kernels.GemmRowAlign, ops: 2 * float64(s.M) * float64(s.N) * float64(s.K), impl: kernels.I8GemmImpl(),
			run: func(lo, hi int) {
				aq := kernels.QuantizeRowsDynamicU8(a[lo*s.K:], hi-lo, s.K, s.K, au[lo*s.K:], s.K, true, false)
				p.Gemm(hi-lo, au[lo*s.K:], s.K, aq, c[lo*s.N:], s.N, bias, true)
			}}, nil
	}})
}

// interactShapes: batch rows x embedding width x vectors (MLPerf and criteo-18k).
var interactShapes = []Shape{{M: 2048, N: 128, K: 27}, {M: 2048, N: 16, K: 27}}

func init() {
	register(kernel{name: "interaction", family: "interact", setup: func(s Shape, _ *Options) (*runner, error) {
		f, d := s.K, s.N
		rng := rand.New(rand.NewPCG(9, uint64(f*d)))
		t := randF32(rng, s.M*f*d)
		w := kernels.InteractWidth(f, d, false)
		out := make([]float32, s.M*w)
		return &runner{rows: s.M, align: 1, ops: float64(s.M) * float64(f*(f-1)) * float64(d), impl: kernels.InteractImpl(),
			run: func(lo, hi int) { kernels.InteractDot(t, f*d, f, d, false, out, w, lo, hi) }}, nil
	}})
}
