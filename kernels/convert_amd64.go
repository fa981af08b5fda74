//go:build !purego

package kernels

// The SIMD slice converters (convert_amd64.s). Each converts n elements, n a
// positive multiple of convBlock; the AVX2 integer operations they use for
// the bf16 rounding and the fp16 NaN fix-up need AVX2 as well as F16C.
var (
	convF16SIMD  = hasF16C && hasAVX2FMA
	convBF16SIMD = hasAVX2FMA
)

//go:noescape
func f32ToF16Vec(dst *uint16, src *float32, n int)

//go:noescape
func f16ToF32Vec(dst *float32, src *uint16, n int)

//go:noescape
func f32ToBF16Vec(dst *uint16, src *float32, n int)

//go:noescape
func bf16ToF32Vec(dst *float32, src *uint16, n int)

// widenF16x512 widens n halves (a multiple of 16) with plain VCVTPH2PS
// (AVX-512F): exact for every value but NaN, whose payload it may change
// where F16ToF32 keeps it. For the fp16 GEMM's panels, whose NaN weights
// give NaN outputs either way, and at a quarter of f16ToF32Vec's
// instructions: the NaN-exact widening was 5% of an M = 128 fp16 GEMM.
//
//go:noescape
func widenF16x512(dst *float32, src *uint16, n int)
