package kernels

import (
	"math"
	"sync"
)

// PackedBF16 is a weight matrix W [N x K] in bfloat16, packed for the bf16
// GEMM: activations are rounded to bf16 too and the products accumulate in
// fp32, as VDPBF16PS (AVX512_BF16) computes them. The semantics, which
// every implementation follows up to the rounding of a reordered fp32 sum
// (the bound sgemm's tests use), are
//
//	C[i][j] = bias[j] + Σ_k z(a'[i][k]) · z(w'[j][k])
//
// where w' is the packed bf16 weight, a' the bf16 activation (given, or
// rounded from fp32 to nearest even with fp32 subnormals going to signed
// zero, as VCVTNE2PS2BF16 does) and z reads a bf16 subnormal as zero (the
// instruction's DAZ). Each product is exact in fp32. VDPBF16PS also rounds
// every accumulation to nearest even whatever MXCSR says and flushes
// subnormal partial sums to zero, which changes a result by at most
// 2^-126 per step, far inside the bound. PackedBF16 is immutable after
// packing and safe for concurrent use.
type PackedBF16 struct {
	N, K int
	kp   int // k pairs: ceil(K/2); an odd K is padded with a zero weight
	// data holds ceil(N/32) panels of kp*64 halves. Panel p covers output
	// columns [32p, 32p+32); its pair-row q holds, for column j, the pair
	// (W[32p+j][2q], W[32p+j][2q+1]) as halves 2j and 2j+1, zero past N and
	// K, so one pair step of the micro-kernel loads 128 contiguous bytes.
	data []uint16
	// rows is W itself (row-major bf16, N x K) when N <= rowsMaxN, for the
	// dot-product kernel. Nil otherwise.
	rows []uint16
	// emu is W widened to fp32 (subnormals flushed) and packed for the
	// fp32 GEMM, built on first use by the emulated implementations only,
	// which then cost an fp32 GEMM plus the rounding of A.
	emuOnce sync.Once
	emu     *PackedF32
}

// PackBF16FromF32 rounds w, a row-major [n x k] float32 matrix (a PyTorch
// Linear weight), to bf16 with F32ToBF16 (nearest even, as PyTorch's
// .bfloat16()) and packs it. It panics if n or k is negative or len(w) <
// n*k (a programmer error: sizes come from validated model metadata).
func PackBF16FromF32(w []float32, n, k int) *PackedBF16 {
	checkPackDims("PackBF16FromF32", len(w), n, k)
	h := make([]uint16, n*k)
	F32ToBF16Slice(h, w[:n*k])
	return PackBF16(h, n, k)
}

// PackBF16 packs wBF16, a row-major [n x k] matrix of bfloat16 bit patterns
// (e.g. a bfloat16 tensor from a checkpoint). It panics if n or k is
// negative or len(wBF16) < n*k.
func PackBF16(wBF16 []uint16, n, k int) *PackedBF16 {
	checkPackDims("PackBF16", len(wBF16), n, k)
	kp := (k + 1) / 2
	np := (n + panelW - 1) / panelW
	data := alignedHalves(np * kp * 2 * panelW)
	for p := 0; p < np; p++ {
		panel := data[p*kp*2*panelW : (p+1)*kp*2*panelW]
		for j := 0; j < panelW && p*panelW+j < n; j++ {
			row := wBF16[(p*panelW+j)*k : (p*panelW+j+1)*k]
			for kk, v := range row {
				panel[kk/2*2*panelW+2*j+kk%2] = v
			}
		}
	}
	pk := &PackedBF16{N: n, K: k, kp: kp, data: data}
	if n <= rowsMaxN {
		pk.rows = append([]uint16(nil), wBF16[:n*k]...)
	}
	return pk
}

// Gemm computes rows [0,m) of C = A·Wᵀ + bias, then ReLU (x < 0 -> 0, NaN
// kept) if relu, with A rounded to bf16 (see PackedBF16 for the exact
// semantics). The contract is PackedF32.Gemm's: a is m x K fp32 row-major
// with leading dimension lda >= K, c is m x N with ldc >= N, bias is nil or
// has at least N entries; only c[i*ldc+j] (i < m, j < N) is written and only
// a[i*lda+k] (k < K) and bias[j] (j < N) are read. Each row depends on its
// own inputs alone (see GemmRowAlign). It panics on inconsistent dimensions or lengths.
func (p *PackedBF16) Gemm(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	if gemmPrologue("PackedBF16.Gemm", m, p.N, p.K, len(a), lda, c, ldc, bias, relu) {
		return
	}
	bf16Gemms.fn()(p, m, bf16Src{f: a, lda: lda}, c, ldc, bias, relu)
}

// GemmBF16A is Gemm with A already in bf16: a is m x K bfloat16 bit
// patterns, row-major with leading dimension lda >= K (in elements), e.g.
// rows converted once with F32ToBF16Slice and reused. Consecutive elements
// of a row are the (k, k+1) pairs VDPBF16PS multiplies, so no repacking is
// needed when K is even.
func (p *PackedBF16) GemmBF16A(m int, a []uint16, lda int, c []float32, ldc int, bias []float32, relu bool) {
	if gemmPrologue("PackedBF16.GemmBF16A", m, p.N, p.K, len(a), lda, c, ldc, bias, relu) {
		return
	}
	bf16Gemms.fn()(p, m, bf16Src{h: a, lda: lda}, c, ldc, bias, relu)
}

// bf16Src is the A operand of a bf16 GEMM: fp32 rows (f) or bf16 rows (h),
// with leading dimension lda in elements.
type bf16Src struct {
	f   []float32
	h   []uint16
	lda int
}

// bf16GemmFn is the signature of the bf16 GEMM's implementations: they
// receive validated arguments with K, m, N >= 1.
type bf16GemmFn func(p *PackedBF16, m int, a bf16Src, c []float32, ldc int, bias []float32, relu bool)

// bf16Gemms is the bf16 GEMM's family: the VDPBF16PS kernels where the CPU
// has AVX512_BF16, and elsewhere an exact emulation that widens the bf16
// operands (subnormals flushed) to fp32 and runs the fp32 GEMM of the best
// available instruction set on them (archBF16Impls, then the emulation over
// gemmGo): the products of two bf16 are exact in fp32, so only the
// summation order differs from VDPBF16PS.
var bf16Gemms = newFamily(archBF16Impls, func(p *PackedBF16, m int, a bf16Src, c []float32, ldc int, bias []float32, relu bool) {
	bgemmEmulated(gemmGo, p, m, a, c, ldc, bias, relu)
})

// BF16GemmImpl names the bf16 GEMM implementation in use ("avx512bf16",
// or "avx512", "avx2", "go" for the emulation over that fp32 GEMM), for
// diagnostics.
func BF16GemmImpl() string { return bf16Gemms.name() }

// bf16DAZ returns the float32 value VDPBF16PS uses for the bf16 h: h
// widened, or a signed zero if h is subnormal.
func bf16DAZ(h uint16) float32 {
	if h&0x7f80 == 0 {
		h &= 0x8000
	}
	return math.Float32frombits(uint32(h) << 16)
}

// f32ToBF16Hw rounds f to bf16 as VCVTNE(2)PS2BF16 do: F32ToBF16, except
// that fp32 subnormals become a signed zero.
func f32ToBF16Hw(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7f800000 == 0 {
		return uint16(b>>16) & 0x8000
	}
	return F32ToBF16(f)
}

// roundRows writes rows [i0, i0+mb) of A, as the fp32 values the bf16
// GEMM multiplies, to dst (mb rows of k floats).
func (s bf16Src) roundRows(dst []float32, i0, mb, k int) {
	for r := 0; r < mb; r++ {
		d := dst[r*k : r*k+k]
		off := (i0 + r) * s.lda
		if s.h != nil {
			for kk, v := range s.h[off : off+k] {
				d[kk] = bf16DAZ(v)
			}
			continue
		}
		for kk, v := range s.f[off : off+k] {
			// f32ToBF16Hw and widening in one step: a normal value rounds
			// to a normal bf16 (or Inf), so only fp32 subnormals flush.
			b := math.Float32bits(v)
			switch {
			case b&0x7f800000 == 0:
				b &= 0x80000000
			case b&0x7fffffff > 0x7f800000:
				b |= 0x00400000
				b &= 0xffff0000
			default:
				b = (b + 0x7fff + (b>>16)&1) & 0xffff0000
			}
			d[kk] = math.Float32frombits(b)
		}
	}
}

// emuRowBlock is the row block of the emulation: a multiple of
// GemmRowAlign whose rounded A (rows x K floats) takes about 256 KiB.
func emuRowBlock(k int) int {
	return max((256<<10)/(4*k)/GemmRowAlign*GemmRowAlign, GemmRowAlign)
}

// emuABufPool recycles the rounded A blocks of the emulation.
var emuABufPool = sync.Pool{New: func() any { return new([]float32) }}

// emuPacked returns W widened to fp32 with bf16 subnormals flushed, packed
// for the fp32 GEMM (built once, on first use).
func (p *PackedBF16) emuPacked() *PackedF32 {
	p.emuOnce.Do(func() {
		w := make([]float32, p.N*p.K)
		for j := 0; j < p.N; j++ {
			for kk := 0; kk < p.K; kk++ {
				w[j*p.K+kk] = bf16DAZ(p.data[j/panelW*panelW*2*p.kp+kk/2*2*panelW+2*(j%panelW)+kk%2])
			}
		}
		p.emu = PackF32(w, p.N, p.K)
	})
	return p.emu
}

// bgemmEmulated computes the bf16 GEMM with an fp32 GEMM implementation on
// the widened weights (emuPacked) and, per L2 block of rows, A rounded to
// its bf16 values: the products of two bf16 values are exact in fp32, so
// this differs from VDPBF16PS only in the order of the fp32 sum (and in not
// flushing subnormal partial sums). The fp32 GEMMs compute each row alone,
// so this does too.
func bgemmEmulated(gemm func(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool),
	p *PackedBF16, m int, a bf16Src, c []float32, ldc int, bias []float32, relu bool) {
	k := p.K
	w := p.emuPacked()
	mc := min(emuRowBlock(k), m)
	ab := emuABufPool.Get().(*[]float32)
	defer emuABufPool.Put(ab)
	if cap(*ab) < mc*k {
		*ab = make([]float32, mc*k)
	}
	for i0 := 0; i0 < m; i0 += mc {
		mb := min(mc, m-i0)
		abuf := (*ab)[:mb*k]
		a.roundRows(abuf, i0, mb, k)
		gemm(w, mb, abuf, k, c[i0*ldc:], ldc, bias, relu)
	}
}
