package kernels

import "fmt"

// Slice versions of the scalar conversions in half.go, for converting whole
// weight matrices and activation rows. Each converts src into dst[:len(src)]
// and is bit-exact with the scalar function applied element by element (the
// tests check every binary16 value and a sweep of float32 bit patterns), so
// callers may mix the two freely. On amd64 the bulk of the slice goes through
// SIMD code (F16C for fp16, AVX2 integer arithmetic for bf16) and the last
// few elements through the scalar function. They panic if dst is shorter
// than src: callers size dst from src, so that is a programmer error.

// convBlock is the element count of one iteration of the SIMD converters;
// the scalar functions finish the remainder.
const convBlock = 16

// F32ToF16Slice sets dst[i] = F32ToF16(src[i]) for every i < len(src).
func F32ToF16Slice(dst []uint16, src []float32) {
	checkConvLen("F32ToF16Slice", len(dst), len(src))
	n := 0
	if convF16SIMD {
		n = len(src) / convBlock * convBlock
		if n > 0 {
			f32ToF16Vec(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = F32ToF16(src[i])
	}
}

// F16ToF32Slice sets dst[i] = F16ToF32(src[i]) for every i < len(src).
// Signalling NaNs keep their payload and stay signalling, as in F16ToF32
// (VCVTPH2PS alone would quiet them; the SIMD path puts the bit back).
func F16ToF32Slice(dst []float32, src []uint16) {
	checkConvLen("F16ToF32Slice", len(dst), len(src))
	n := 0
	if convF16SIMD {
		n = len(src) / convBlock * convBlock
		if n > 0 {
			f16ToF32Vec(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = F16ToF32(src[i])
	}
}

// F32ToBF16Slice sets dst[i] = F32ToBF16(src[i]) for every i < len(src):
// round to nearest even, NaN quieted, and float32 subnormals rounded like
// any other value (not flushed to zero as VCVTNEPS2BF16 would, which is why
// the SIMD path uses integer arithmetic instead of that instruction).
func F32ToBF16Slice(dst []uint16, src []float32) {
	checkConvLen("F32ToBF16Slice", len(dst), len(src))
	n := 0
	if convBF16SIMD {
		n = len(src) / convBlock * convBlock
		if n > 0 {
			f32ToBF16Vec(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = F32ToBF16(src[i])
	}
}

// BF16ToF32Slice sets dst[i] = BF16ToF32(src[i]) for every i < len(src).
func BF16ToF32Slice(dst []float32, src []uint16) {
	checkConvLen("BF16ToF32Slice", len(dst), len(src))
	n := 0
	if convBF16SIMD {
		n = len(src) / convBlock * convBlock
		if n > 0 {
			bf16ToF32Vec(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = BF16ToF32(src[i])
	}
}

func checkConvLen(name string, ndst, nsrc int) {
	if ndst < nsrc {
		panic(fmt.Sprintf("kernels.%s: dst has %d elements, src %d", name, ndst, nsrc))
	}
}
