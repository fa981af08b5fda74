package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// The int8 GEMM: C = dequant(A_u8 · W_s8ᵀ) + bias, for dynamically or
// statically quantized Linear layers (FBGEMM's u8s8s32 scheme). A is u8 with
// an affine (scale, zero point) per tensor or per row; W is s8, symmetric
// (zero point 0), with a scale per output channel or per tensor. The integer
// sums are exact (see MaxI8K), so every implementation produces the same
// int32 accumulators; the float epilogue is one fixed sequence of float32
// operations, so float and u8 outputs are bit-identical across
// implementations too:
//
//	acc  = Σ_k A[i,k]·W[j,k]                    (int32, exact)
//	t    = acc - aZero_i·ColSum_j               (int32, = Σ_k (A[i,k]-aZero_i)·W[j,k])
//	s    = aScale_i * wScale_j                  (float32 product, rounded once)
//	y    = float32(t) * s                       (conversion and product, each rounded once)
//	y    = y + bias_j                           (bias_j = 0 when bias is nil; never fused with the product)
//	y    = 0 if relu && y < 0                   (NaN and -0 kept)
//
// and, for GemmU8, y is requantized with the package rule (see QuantizeU8).
// NaN results (only from NaN or infinite scales or bias) are NaN in every
// implementation, though their payload bits may differ.

// i8PanelW is the width, in output columns, of one packed int8 panel: a k
// group (4 k) of 32 columns is 128 bytes, two zmm registers.
const i8PanelW = 32

// MaxI8K is the largest K PackI8 accepts: with |A - aZero| <= 255 and
// |W| <= 128, every partial sum of K products stays within int32
// (255·128·65536 < 2³¹), so the accumulation is exact, never wraps.
const MaxI8K = 65536

// PackedI8 is an int8 weight matrix W [N x K] (PyTorch Linear layout) with
// its scales, packed once for the int8 GEMMs. It is immutable after PackI8
// and safe for concurrent use.
type PackedI8 struct {
	N, K int
	kp   int // K rounded up to a multiple of 4
	// data holds ceil(N/32) panels of 32*kp bytes. Panel p covers output
	// columns [32p, 32p+32); k group g of it is 128 bytes holding, for each
	// column j, W[32p+j][4g..4g+3] in one dword (the VPDPBUSD operand
	// layout): data[32p*kp + 128g + 4j + t] = W[32p+j][4g+t], zero for
	// columns >= N and for k >= K.
	data []int8
	// colSum[j] = Σ_k W[j][k], for the activation zero-point correction;
	// scale[j] is column j's scale. Both are padded with zeros to a whole
	// number of panels so kernels load them without masks.
	colSum []int32
	scale  []float32
	// rows is W row-major with rows zero-padded to ldw bytes (a multiple of
	// 64) when N <= i8RowsMaxN: the VNNI path computes such narrow outputs
	// (DLRM's final 256 -> 1 layer) as dot products rather than in a panel
	// at least 8x wider than needed. Nil otherwise.
	rows []int8
	ldw  int
}

// i8RowsMaxN is the widest N also kept row-major for the dot-product kernel.
const i8RowsMaxN = 4

// PackI8 packs w, a row-major [n x k] int8 matrix, with scale holding one
// scale per output channel (len n) or one for the whole tensor (len 1). It
// panics if the sizes are inconsistent, k > MaxI8K, or a scale is missing:
// callers size weights from validated model metadata, so that is a
// programmer error.
func PackI8(w []int8, n, k int, scale []float32) *PackedI8 {
	if n < 0 || k < 0 || k > MaxI8K || (k > 0 && n > len(w)/k) {
		panic(fmt.Sprintf("kernels.PackI8: weight has %d values, want n*k = %d*%d with 0 <= k <= %d", len(w), n, k, MaxI8K))
	}
	if len(scale) != 1 && len(scale) != n {
		panic(fmt.Sprintf("kernels.PackI8: %d scales for %d output channels, want 1 or %d", len(scale), n, n))
	}
	kp := (k + 3) &^ 3
	np := (n + i8PanelW - 1) / i8PanelW
	p := &PackedI8{
		N: n, K: k, kp: kp,
		data:   alignedInt8(np * i8PanelW * kp),
		colSum: make([]int32, np*i8PanelW),
		scale:  make([]float32, np*i8PanelW),
	}
	for j := 0; j < n; j++ {
		panel := p.data[j/i8PanelW*i8PanelW*kp:]
		jj := j % i8PanelW
		var s int32
		for kk, v := range w[j*k : (j+1)*k] {
			panel[kk/4*4*i8PanelW+4*jj+kk%4] = v
			s += int32(v)
		}
		p.colSum[j] = s
		if n <= i8RowsMaxN {
			if p.rows == nil {
				p.ldw = (k + 63) &^ 63
				p.rows = make([]int8, n*p.ldw)
			}
			copy(p.rows[j*p.ldw:], w[j*k:(j+1)*k])
		}
		if len(scale) == 1 {
			p.scale[j] = scale[0]
		} else {
			p.scale[j] = scale[j]
		}
	}
	return p
}

// alignedInt8 returns a zeroed slice of n bytes starting on a 64-byte
// boundary, so a panel's 128-byte k groups are whole cache lines.
func alignedInt8(n int) []int8 {
	buf := make([]int8, n+63)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf)))) & 63
	return buf[skip : skip+n : skip+n]
}

// ColSums returns a copy of ΣW[j][k] over k for each output channel j.
func (p *PackedI8) ColSums() []int32 { return append([]int32(nil), p.colSum[:p.N]...) }

// Scales returns a copy of the per-output-channel weight scales (a
// per-tensor scale is repeated N times).
func (p *PackedI8) Scales() []float32 { return append([]float32(nil), p.scale[:p.N]...) }

// Weight returns W[j][k] from the packed form (for tests and debugging).
func (p *PackedI8) Weight(j, k int) int8 {
	return p.data[j/i8PanelW*i8PanelW*p.kp+k/4*4*i8PanelW+4*(j%i8PanelW)+k%4]
}

// ActQuant is the affine quantization of a u8 activation matrix:
// real = scale * (q - zero). It is per tensor (Scale, Zero) when RowScale
// is nil, and per row otherwise (RowScale[i], RowZero[i] for row i; both
// must have at least m entries). Zero points are those of u8 data, in
// [0, 255]; others are accepted, but then acc - zero·ColSum may wrap around
// int32 for large K (identically in every implementation).
type ActQuant struct {
	Scale    float32
	Zero     int32
	RowScale []float32
	RowZero  []int32
}

// Output modes of the GEMM epilogue; the flag bits match internal/gen/i8gemm.
const (
	i8FlagReLU = 1
	i8FlagU8   = 2
	i8FlagS32  = 4
	i8FlagTail = 8
)

// i8Out describes a GEMM call's output: exactly one of f32, u8, s32 is set.
type i8Out struct {
	f32     []float32
	u8      []uint8
	s32     []int32
	ldc     int
	bias    []float32 // nil: no bias
	relu    bool
	aq      ActQuant // unused for s32
	outInv  float32  // 1/outScale, u8 only
	outZero int32    // u8 only
}

// Gemm computes rows [0,m) of C = dequant(A·Wᵀ) + bias, then ReLU if relu,
// with the epilogue order documented above. a is m x K u8, row-major with
// leading dimension lda >= K; aq is its quantization; c is m x N with
// leading dimension ldc >= N; bias is nil or has at least N entries. Only
// a[i*lda+k] for k < K and c[i*ldc+j] for j < N are accessed. Rows are
// independent (each row's result depends only on that row: the int32 sums
// are exact in any order and the epilogue is per element), so any M and any
// split of M give identical rows.
//
// It panics if the dimensions, slice lengths or aq are inconsistent:
// callers derive them from validated shapes, so that is a programmer error.
func (p *PackedI8) Gemm(m int, a []uint8, lda int, aq ActQuant, c []float32, ldc int, bias []float32, relu bool) {
	p.check("Gemm", m, a, lda, len(c), ldc, bias, &aq)
	p.run(m, a, lda, &i8Out{f32: c, ldc: ldc, bias: bias, relu: relu, aq: aq})
}

// GemmU8 is Gemm followed by requantization of each result y (after bias
// and ReLU) to u8 for a following int8 layer: q = QuantizeU8's rule with
// outScale and outZero (x·(1/outScale) rounded half to even, plus outZero,
// clamped to [0, 255]). outZero must be in [0, 255].
func (p *PackedI8) GemmU8(m int, a []uint8, lda int, aq ActQuant, c []uint8, ldc int, bias []float32, relu bool, outScale float32, outZero int32) {
	p.check("GemmU8", m, a, lda, len(c), ldc, bias, &aq)
	if outZero < 0 || outZero > 255 {
		panic(fmt.Sprintf("kernels.GemmU8: output zero point %d outside [0, 255]", outZero))
	}
	p.run(m, a, lda, &i8Out{u8: c, ldc: ldc, bias: bias, relu: relu, aq: aq, outInv: 1 / outScale, outZero: outZero})
}

// GemmS32 stores the raw accumulators c[i*ldc+j] = Σ_k A[i,k]·W[j,k]
// (no zero-point correction, scale, bias or ReLU), for tests and debugging.
func (p *PackedI8) GemmS32(m int, a []uint8, lda int, c []int32, ldc int) {
	p.check("GemmS32", m, a, lda, len(c), ldc, nil, nil)
	p.run(m, a, lda, &i8Out{s32: c, ldc: ldc})
}

func (p *PackedI8) check(fn string, m int, a []uint8, lda, lenc, ldc int, bias []float32, aq *ActQuant) {
	n, k := p.N, p.K
	switch {
	case m < 0 || lda < k || ldc < n:
		panic(fmt.Sprintf("kernels.%s: bad dims m=%d lda=%d (K=%d) ldc=%d (N=%d)", fn, m, lda, k, ldc, n))
	case m == 0 || n == 0:
		return
	case len(a) < (m-1)*lda+k:
		panic(fmt.Sprintf("kernels.%s: a has %d bytes, want >= %d for m=%d lda=%d K=%d", fn, len(a), (m-1)*lda+k, m, lda, k))
	case lenc < (m-1)*ldc+n:
		panic(fmt.Sprintf("kernels.%s: c has %d entries, want >= %d for m=%d ldc=%d N=%d", fn, lenc, (m-1)*ldc+n, m, ldc, n))
	case bias != nil && len(bias) < n:
		panic(fmt.Sprintf("kernels.%s: bias has %d floats, want >= N = %d", fn, len(bias), n))
	case aq != nil && aq.RowScale != nil && (len(aq.RowScale) < m || len(aq.RowZero) < m):
		panic(fmt.Sprintf("kernels.%s: per-row activation quantization has %d scales and %d zero points, want >= m = %d", fn, len(aq.RowScale), len(aq.RowZero), m))
	}
}

func (p *PackedI8) run(m int, a []uint8, lda int, o *i8Out) {
	if m == 0 || p.N == 0 {
		return
	}
	if p.K == 0 {
		// Empty sum: the kernels are never called with an empty panel.
		for i := 0; i < m; i++ {
			for j := 0; j < p.N; j++ {
				o.store(p, i, j, 0)
			}
		}
		return
	}
	i8Gemms.fn()(p, m, a, lda, o)
}

// store applies the epilogue to the raw accumulator acc of C[i][j]; it is
// the definition the assembly epilogues reproduce operation for operation.
func (o *i8Out) store(p *PackedI8, i, j int, acc int32) {
	if o.s32 != nil {
		o.s32[i*o.ldc+j] = acc
		return
	}
	az, as := o.aq.Zero, o.aq.Scale
	if o.aq.RowScale != nil {
		az, as = o.aq.RowZero[i], o.aq.RowScale[i]
	}
	var b float32
	if o.bias != nil {
		b = o.bias[j]
	}
	y := i8Dequant(acc, az, p.colSum[j], as, p.scale[j], b, o.relu)
	if o.u8 != nil {
		o.u8[i*o.ldc+j] = quantU8(y, o.outInv, o.outZero)
		return
	}
	o.f32[i*o.ldc+j] = y
}

// i8Dequant is the float epilogue (see the top of this file). The explicit
// float32 conversion keeps the compiler from fusing the product and the
// bias addition into an FMA, which the assembly does not do either.
func i8Dequant(acc, az, colSum int32, as, ws, bias float32, relu bool) float32 {
	t := acc - az*colSum
	s := as * ws
	y := float32(float32(t)*s) + bias
	if relu && y < 0 {
		y = 0
	}
	return y
}

// i8GemmFn is the signature of the int8 GEMM's implementations: they
// receive arguments already validated, with K >= 1 and m, N >= 1.
type i8GemmFn func(p *PackedI8, m int, a []uint8, lda int, o *i8Out)

// i8Gemms is the int8 GEMM's family: archI8Impls (i8gemm_amd64.go or
// i8gemm_noasm.go), then gemmI8Go.
var i8Gemms = newFamily(archI8Impls, gemmI8Go)

// I8GemmImpl names the int8 GEMM implementation in use ("avx512vnni",
// "avx2" or "go"), for diagnostics next to Features.
func I8GemmImpl() string { return i8Gemms.name() }

// gemmI8Go is the portable implementation: 4 rows x 4 columns of int32
// accumulators over the packed k groups. A row's last K%4 bytes are read
// into a zero-padded group, so A is never read past K.
func gemmI8Go(p *PackedI8, m int, a []uint8, lda int, o *i8Out) {
	n, k, kp := p.N, p.K, p.kp
	kg := k / 4
	for j0 := 0; j0 < n; j0 += i8PanelW {
		panel := p.data[j0*kp : (j0+i8PanelW)*kp]
		nv := min(i8PanelW, n-j0)
		for i0 := 0; i0 < m; i0 += 4 {
			mr := min(4, m-i0)
			var rows [4][]uint8
			var tails [4][4]uint8
			for r := 0; r < 4; r++ {
				if r < mr {
					rows[r] = a[(i0+r)*lda : (i0+r)*lda+k]
					copy(tails[r][:], rows[r][4*kg:])
				} else {
					rows[r] = make([]uint8, k) // zero rows, results discarded
				}
			}
			for jj := 0; jj < nv; jj += 4 {
				var acc [4][4]int32
				for g := 0; g <= kg; g++ {
					if g == kg && k%4 == 0 {
						break
					}
					b := panel[g*4*i8PanelW+4*jj : g*4*i8PanelW+4*jj+16]
					for r := 0; r < 4; r++ {
						var x []uint8
						if g < kg {
							x = rows[r][4*g : 4*g+4]
						} else {
							x = tails[r][:]
						}
						a0, a1, a2, a3 := int32(x[0]), int32(x[1]), int32(x[2]), int32(x[3])
						acc[r][0] += a0*int32(b[0]) + a1*int32(b[1]) + a2*int32(b[2]) + a3*int32(b[3])
						acc[r][1] += a0*int32(b[4]) + a1*int32(b[5]) + a2*int32(b[6]) + a3*int32(b[7])
						acc[r][2] += a0*int32(b[8]) + a1*int32(b[9]) + a2*int32(b[10]) + a3*int32(b[11])
						acc[r][3] += a0*int32(b[12]) + a1*int32(b[13]) + a2*int32(b[14]) + a3*int32(b[15])
					}
				}
				for r := 0; r < mr; r++ {
					for q := 0; q < 4 && jj+q < nv; q++ {
						o.store(p, i0+r, j0+jj+q, acc[r][q])
					}
				}
			}
		}
	}
}

// QuantizeWeightsI8 quantizes a row-major [n x k] float weight matrix to
// symmetric int8 (zero point 0), with one scale per output channel (row) if
// perChannel, else one for the whole tensor: scale = max|w| / 127 (in
// float32), q = clamp(i8RNE(w·(1/scale)), -127, 127), the package's rounding
// rule (see QuantizeU8). The range is symmetric, [-127, 127], so -w
// quantizes to -q. Non-finite weights do not enter max|w|; NaN quantizes to
// 0 and ±Inf to ±127. A channel (or tensor) whose max|w| is 0 gets scale 1
// and all-zero q. It panics if len(w) < n*k (a programmer error).
func QuantizeWeightsI8(w []float32, n, k int, perChannel bool) (q []int8, scale []float32) {
	if n < 0 || k < 0 || (k > 0 && n > len(w)/k) {
		panic(fmt.Sprintf("kernels.QuantizeWeightsI8: weight has %d floats, want n*k = %d*%d", len(w), n, k))
	}
	w = w[:n*k]
	q = make([]int8, n*k)
	groups, size := 1, n*k
	if perChannel {
		groups, size = n, k
	}
	scale = make([]float32, groups)
	for g := 0; g < groups; g++ {
		src := w[g*size : (g+1)*size]
		var mx float32
		for _, v := range src {
			if a := float32(math.Abs(float64(v))); a > mx && a <= math.MaxFloat32 {
				mx = a
			}
		}
		s := mx / 127
		if s == 0 {
			// Also catches a max|w| so small that max/127 underflows.
			s = 1
		}
		scale[g] = s
		inv := 1 / s
		dst := q[g*size : (g+1)*size]
		for i, v := range src {
			t := v * inv
			switch {
			case t != t:
				t = 0
			case t > 127:
				t = 127
			case t < -127:
				t = -127
			}
			dst[i] = int8(i8RNE(t))
		}
	}
	return q, scale
}
