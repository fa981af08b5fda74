package kernels

import (
	"fmt"
	"math"
)

// Quantization rule of the whole package (activations, weights, and the
// GEMM's u8 output): with inv = 1/scale computed once in float32,
//
//	t = x * inv                                   (float32, rounded once)
//	q = clamp(i8RNE(t) + zero, qmin, qmax)
//
// where rne rounds half to even: what x86's cvtps2dq does under the default
// rounding mode (FBGEMM's vectorized Quantize) and what PyTorch's
// quantize_val does with nearbyint, both of which also multiply by the
// float32 reciprocal. NaN quantizes to qmin, ±Inf to qmax/qmin. For u8 the
// implementation first clamps t to [-512, 512] (NaN to -512), which changes
// no result when zero is in [0, 255] and keeps the float-to-int conversion
// in range; the assembly does exactly the same.

// i8RNEMagic is 1.5·2²³: for |t| <= 2²², t + i8RNEMagic lands in [2²³, 2²⁴),
// where float32 spacing is 1, so the addition rounds t to an integer half
// to even and subtracting i8RNEMagic back is exact.
const i8RNEMagic = 0x1.8p23

// rne rounds t to the nearest integer, ties to even; |t| <= 2²².
func i8RNE(t float32) float32 {
	return float32(t+i8RNEMagic) - i8RNEMagic
}

// quantU8 quantizes one value with the package rule (inv = 1/scale,
// zero in [0, 255]).
func quantU8(x, inv float32, zero int32) uint8 {
	// The conversion keeps the product from being fused into the addition
	// inside rne.
	t := float32(x * inv)
	if !(t >= -512) {
		t = -512
	}
	if t > 512 {
		t = 512
	}
	v := int32(i8RNE(t)) + zero
	return uint8(min(max(v, 0), 255))
}

func quantU8Go(x []float32, inv float32, zero int32, dst []uint8) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = quantU8(v, inv, zero)
	}
}

func quantU8Slice(x []float32, inv float32, zero int32, dst []uint8) {
	if i8QuantAsm {
		quantU8Asm(x, inv, zero, dst[:len(x)])
		return
	}
	quantU8Go(x, inv, zero, dst)
}

// actMinMaxGo returns min(0, x...) and max(0, x...), NaN ignored (the
// comparisons are false for NaN).
func actMinMaxGo(x []float32) (lo, hi float32) {
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func actMinMax(x []float32) (lo, hi float32) {
	if i8QuantAsm {
		return actMinMaxAsm(x)
	}
	return actMinMaxGo(x)
}

// qSmallScale is PyTorch's SMALL_SCALE_THRESHOLD (the smallest normal fp16),
// a float32 as there.
var qSmallScale = float32(6.1e-5)

// ChooseQParamsU8 returns the u8 scale and zero point for values in
// [min, max], with PyTorch's (and FBGEMM's) ChooseQuantizationParams
// semantics for qmin = 0, qmax = 255 (127 with reduceRange, as PyTorch
// halves both bounds), preserve_sparsity and power-of-two scales off:
//
//   - the range is extended to include 0 (so 0 is exactly representable);
//   - scale = (max - min) / (qmax - qmin), computed in float64; if it
//     rounds to 0 in float32 or its float32 reciprocal is infinite, it is 0.1;
//   - a scale below 6.1e-5 is raised to 6.1e-5 and the range scaled
//     likewise (in float32, as PyTorch);
//   - zero = qmin - min/scale or qmax - max/scale, whichever adds smaller
//     terms, clamped to [qmin, qmax] and rounded half to even (nearbyint);
//   - the scale is returned as float32.
//
// Where PyTorch would reject its input, this function instead ignores a
// NaN bound (treats it as 0), replaces ±Inf by ±MaxFloat32, and accepts
// min > max (both are first extended to include 0), so it never fails.
func ChooseQParamsU8(min, max float32, reduceRange bool) (scale float32, zero int32) {
	qmin, qmax := int32(0), int32(255)
	if reduceRange {
		qmin, qmax = qmin/2, qmax/2
	}
	lo, hi := qFinite(min), qFinite(max)
	lo, hi = float32(math.Min(float64(lo), 0)), float32(math.Max(float64(hi), 0))
	s := (float64(hi) - float64(lo)) / float64(qmax-qmin)
	if float32(s) == 0 || math.IsInf(float64(1/float32(s)), 0) {
		s = 0.1
	}
	if s < float64(qSmallScale) {
		org := float32(s)
		s = float64(qSmallScale)
		switch {
		case lo == 0:
			hi = qSmallScale * float32(qmax-qmin)
		case hi == 0:
			lo = -qSmallScale * float32(qmax-qmin)
		default:
			amp := qSmallScale / org
			lo *= amp
			hi *= amp
		}
	}
	zMin := float64(qmin) - float64(lo)/s
	zMax := float64(qmax) - float64(hi)/s
	errMin := math.Abs(float64(qmin)) - math.Abs(float64(lo)/s)
	errMax := math.Abs(float64(qmax)) - math.Abs(float64(hi)/s)
	z := zMax
	if errMin < errMax {
		z = zMin
	}
	switch {
	case z < float64(qmin):
		zero = qmin
	case z > float64(qmax):
		zero = qmax
	default:
		zero = int32(math.RoundToEven(z))
	}
	return float32(s), zero
}

func qFinite(v float32) float32 {
	switch {
	case v != v:
		return 0
	case v > math.MaxFloat32:
		return math.MaxFloat32
	case v < -math.MaxFloat32:
		return -math.MaxFloat32
	}
	return v
}

// QuantizeU8 quantizes x into dst[:len(x)] with a static per-tensor scale
// and zero point, by the package rule (see the top of this file). It panics
// if dst is shorter than x or zero is outside [0, 255] (programmer errors:
// the caller validates quantization parameters read from a model).
func QuantizeU8(x []float32, scale float32, zero int32, dst []uint8) {
	if len(dst) < len(x) {
		panic(fmt.Sprintf("kernels.QuantizeU8: dst has %d bytes for %d values", len(dst), len(x)))
	}
	checkZeroU8("QuantizeU8", zero)
	quantU8Slice(x, 1/scale, zero, dst)
}

// DequantizeU8 sets dst[i] = float32(q[i] - zero) * scale for i < len(q)
// (the integer difference is exact in float32). It panics if dst is
// shorter than q.
func DequantizeU8(q []uint8, scale float32, zero int32, dst []float32) {
	if len(dst) < len(q) {
		panic(fmt.Sprintf("kernels.DequantizeU8: dst has %d floats for %d values", len(dst), len(q)))
	}
	for i, v := range q {
		dst[i] = float32(int32(v)-zero) * scale
	}
}

func checkZeroU8(fn string, zero int32) {
	if zero < 0 || zero > 255 {
		panic(fmt.Sprintf("kernels.%s: zero point %d outside [0, 255]", fn, zero))
	}
}

// QuantizeRowsDynamicU8To is QuantizeRowsDynamicU8 per row, with each row's
// scale and zero point stored in scale[i] and zero[i] (len >= m) rather
// than in new slices: a forward pass calls it for every layer of every
// chunk of rows. It panics on inconsistent sizes.
func QuantizeRowsDynamicU8To(x []float32, m, k, ldx int, dst []uint8, ldd int, reduceRange bool, scale []float32, zero []int32) {
	checkQuantRows("QuantizeRowsDynamicU8To", x, m, k, ldx, dst, ldd)
	if len(scale) < m || len(zero) < m {
		panic(fmt.Sprintf("kernels.QuantizeRowsDynamicU8To: %d scales and %d zero points for %d rows", len(scale), len(zero), m))
	}
	quantizeRowsU8(x, m, k, ldx, dst, ldd, reduceRange, scale, zero)
}

// checkQuantRows panics unless x and dst hold m rows of k with their
// leading dimensions.
func checkQuantRows(fn string, x []float32, m, k, ldx int, dst []uint8, ldd int) {
	switch {
	case m < 0 || k < 0 || ldx < k || ldd < k:
		panic(fmt.Sprintf("kernels.%s: bad dims m=%d k=%d ldx=%d ldd=%d", fn, m, k, ldx, ldd))
	case m > 0 && len(x) < (m-1)*ldx+k:
		panic(fmt.Sprintf("kernels.%s: x has %d floats, want >= %d", fn, len(x), (m-1)*ldx+k))
	case m > 0 && len(dst) < (m-1)*ldd+k:
		panic(fmt.Sprintf("kernels.%s: dst has %d bytes, want >= %d", fn, len(dst), (m-1)*ldd+k))
	}
}

// quantizeRowsU8 is the per-row loop of both, on checked arguments.
func quantizeRowsU8(x []float32, m, k, ldx int, dst []uint8, ldd int, reduceRange bool, scale []float32, zero []int32) {
	for i := 0; i < m; i++ {
		row := x[i*ldx : i*ldx+k]
		lo, hi := actMinMax(row)
		s, z := ChooseQParamsU8(lo, hi, reduceRange)
		scale[i], zero[i] = s, z
		quantU8Slice(row, 1/s, z, dst[i*ldd:i*ldd+k])
	}
}

// QuantizeRowsDynamicU8 quantizes the m x k matrix x (row-major, leading
// dimension ldx >= k) to u8 in dst (leading dimension ldd >= k) with
// parameters chosen from the data, as PyTorch's dynamic quantization does:
// ChooseQParamsU8 over the min and max of the whole matrix (perRow false:
// one scale and zero point, like PyTorch's per-batch dynamic Linear) or of
// each row (perRow true: ActQuant.RowScale/RowZero, len m). NaN inputs do
// not enter the min/max and quantize to 0. Only x[i*ldx+j] and
// dst[i*ldd+j] with j < k are accessed. It panics on inconsistent sizes.
func QuantizeRowsDynamicU8(x []float32, m, k, ldx int, dst []uint8, ldd int, perRow, reduceRange bool) ActQuant {
	checkQuantRows("QuantizeRowsDynamicU8", x, m, k, ldx, dst, ldd)
	if perRow {
		aq := ActQuant{RowScale: make([]float32, m), RowZero: make([]int32, m)}
		quantizeRowsU8(x, m, k, ldx, dst, ldd, reduceRange, aq.RowScale, aq.RowZero)
		return aq
	}
	// Contiguous rows are one slice: one call instead of m short ones.
	rows, n, ldxe, ldde := m, k, ldx, ldd
	if ldx == k && ldd == k {
		rows, n, ldxe, ldde = min(m, 1), m*k, 0, 0
	}
	var lo, hi float32
	for i := 0; i < rows; i++ {
		l, h := actMinMax(x[i*ldxe : i*ldxe+n])
		lo, hi = min(lo, l), max(hi, h)
	}
	s, z := ChooseQParamsU8(lo, hi, reduceRange)
	for i := 0; i < rows; i++ {
		quantU8Slice(x[i*ldxe:i*ldxe+n], 1/s, z, dst[i*ldde:i*ldde+n])
	}
	return ActQuant{Scale: s, Zero: z}
}
