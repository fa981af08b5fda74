package kernels

import (
	"fmt"
	"unsafe"
)

// panelW is the width, in output columns, of one packed weight panel: 32
// floats are two zmm (AVX-512) or four ymm (AVX2) registers per k step.
const panelW = 32

// GemmRowAlign is the row block of the GEMM kernels: callers that split M
// across threads at its multiples keep every block but the last whole,
// which is faster. It no longer matters for results: every GEMM of this
// package (fp32, fp16, bf16, int8, all implementations) computes output
// row i from A row i alone, by the same sequence of floating-point
// operations whatever M, the row's position in the call or the split: each
// output is accumulated in one register from the bias, the k products
// added in order. So rq's predictions do not depend on --batch, on
// streaming chunks or on the thread count (TestGemmRowsIndependentOfM and
// its fp16, bf16 and int8 siblings check each row of M = 1..200 and 2048
// against a 1-row call). Before, blocks of 1-3 rows split the k loop over
// extra accumulators, so a row summed in another order when it fell in a
// short tail block: a 9th-digit NE difference between --batch 1 and 2048.
const GemmRowAlign = 12

// PackedF32 is a weight matrix W [N x K] (PyTorch Linear layout, out x in)
// packed once into the micro-kernels' panel layout. It is immutable after
// PackF32 and safe for concurrent Gemm calls.
type PackedF32 struct {
	N, K int
	// data holds ceil(N/32) panels of 32*K floats. Panel p covers output
	// columns [32p, 32p+32) and stores W transposed, k-major:
	// data[32p*K + 32*k + j] = W[32p+j][k], zero for 32p+j >= N, so a k step
	// of the micro-kernel is one contiguous 128-byte load.
	data []float32
	// rows is W itself (row-major, N x K) when N <= rowsMaxN: the SIMD
	// paths compute such narrow outputs (DLRM's final 256 -> 1 layer) as dot
	// products instead of a panel at least 8x wider than needed. Nil otherwise.
	rows []float32
}

// rowsMaxN is the widest N kept row-major for dot-product kernels.
const rowsMaxN = 4

// PackF32 packs w, a row-major [n x k] matrix (n outputs, k inputs, as a
// PyTorch Linear weight), for Gemm. It panics if n or k is negative or
// len(w) < n*k: callers size weights from validated model metadata, so a
// mismatch is a programmer error, not bad input.
func PackF32(w []float32, n, k int) *PackedF32 {
	if n < 0 || k < 0 || (k > 0 && n > len(w)/k) || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackF32: weight has %d floats, want n*k = %d*%d", len(w), n, k))
	}
	np := (n + panelW - 1) / panelW
	data := alignedFloats(np * panelW * k)
	for p := 0; p < np; p++ {
		panel := data[p*panelW*k : (p+1)*panelW*k]
		for j := 0; j < panelW && p*panelW+j < n; j++ {
			row := w[(p*panelW+j)*k : (p*panelW+j+1)*k]
			for kk, v := range row {
				panel[kk*panelW+j] = v
			}
		}
	}
	pk := &PackedF32{N: n, K: k, data: data}
	if n <= rowsMaxN {
		pk.rows = append([]float32(nil), w[:n*k]...)
	}
	return pk
}

// alignedFloats returns a zeroed slice of n floats starting on a 64-byte
// boundary, so every 128-byte k-row of a panel is two whole cache lines and
// no zmm load of the micro-kernel splits a line.
func alignedFloats(n int) []float32 {
	buf := make([]float32, n+15)
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))&63) / 4
	skip := (16 - off) & 15
	return buf[skip : skip+n : skip+n]
}

// Gemm computes rows [0,m) of C = A·Wᵀ + bias, then ReLU (x < 0 -> 0, NaN
// kept) if relu. a is m x K row-major with leading dimension lda >= K, c is
// m x N with leading dimension ldc >= N, bias is nil or has at least N
// entries. It writes only c[i*ldc+j] for i < m, j < N, and reads only
// a[i*lda+k] for k < K and bias[j] for j < N. Results match sgemmGeneric up
// to the rounding of a reordered K-sum, and each row's bits depend on that
// row's inputs alone (see GemmRowAlign).
//
// Gemm panics if the dimensions or slice lengths are inconsistent (the
// assembly kernels must never see an out-of-range pointer); callers derive
// them from validated shapes, so that is a programmer error.
func (p *PackedF32) Gemm(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	n, k := p.N, p.K
	switch {
	case m < 0 || lda < k || ldc < n:
		panic(fmt.Sprintf("kernels.Gemm: bad dims m=%d lda=%d (K=%d) ldc=%d (N=%d)", m, lda, k, ldc, n))
	case m == 0 || n == 0:
		return
	case len(a) < (m-1)*lda+k:
		panic(fmt.Sprintf("kernels.Gemm: a has %d floats, want >= %d for m=%d lda=%d K=%d", len(a), (m-1)*lda+k, m, lda, k))
	case len(c) < (m-1)*ldc+n:
		panic(fmt.Sprintf("kernels.Gemm: c has %d floats, want >= %d for m=%d ldc=%d N=%d", len(c), (m-1)*ldc+n, m, ldc, n))
	case bias != nil && len(bias) < n:
		panic(fmt.Sprintf("kernels.Gemm: bias has %d floats, want >= N = %d", len(bias), n))
	}
	if k == 0 {
		// Empty sum: the kernels are never called with an empty panel.
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				v := float32(0)
				if bias != nil {
					v = bias[j]
				}
				if relu && v < 0 {
					v = 0
				}
				row[j] = v
			}
		}
		return
	}
	sgemms.fn()(p, m, a, lda, c, ldc, bias, relu)
}

// sgemmGeneric is the reference GEMM, the definition every implementation is
// tested against:
//
//	for i := 0; i < m; i++ {
//		for j := 0; j < n; j++ {
//			s := bias[j] // 0 if bias == nil
//			for kk := 0; kk < k; kk++ {
//				s += a[i*lda+kk] * w[j*ldw+kk]
//			}
//			if relu && s < 0 {
//				s = 0
//			}
//			c[i*ldc+j] = s
//		}
//	}
//
// It accumulates in float64 and rounds once, so its own error is at most half
// an ulp and test tolerances measure the fast implementations' error alone.
func sgemmGeneric(m, n, k int, a []float32, lda int, w []float32, ldw int, c []float32, ldc int, bias []float32, relu bool) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			if bias != nil {
				s = float64(bias[j])
			}
			for kk := 0; kk < k; kk++ {
				s += float64(a[i*lda+kk]) * float64(w[j*ldw+kk])
			}
			v := float32(s)
			if relu && v < 0 {
				v = 0
			}
			c[i*ldc+j] = v
		}
	}
}

// sgemmFn is the signature of the packed GEMM's implementations: they
// receive arguments already validated by Gemm, with K >= 1 and m, N >= 1.
type sgemmFn func(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool)

// sgemms is the packed GEMM's family: the SIMD drivers where built
// (sgemmArchImpls, sgemm_amd64.go or sgemm_noasm.go), then gemmGo.
var sgemms = newFamily(sgemmArchImpls, gemmGo)

// SgemmImpl names the GEMM implementation in use ("avx512", "avx2" or "go"),
// for diagnostics next to Features.
func SgemmImpl() string { return sgemms.name() }

// gemmGo is the portable implementation: 4x4 register-blocked dot products
// over the packed panels (16 accumulators fit the FP register files of arm64
// and, with some spilling, amd64). It is the non-x86 path, so it is kept
// simple rather than tuned.
func gemmGo(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	n, k := p.N, p.K
	var bpad [panelW]float32 // bias of the current panel, zero-padded
	for j0 := 0; j0 < n; j0 += panelW {
		panel := p.data[j0*k : (j0+panelW)*k]
		nv := min(panelW, n-j0)
		bpad = [panelW]float32{}
		if bias != nil {
			copy(bpad[:], bias[j0:j0+nv])
		}
		i := 0
		for ; i+4 <= m; i += 4 {
			a0 := a[i*lda : i*lda+k]
			// Same-length reslices let the compiler drop the bounds checks in the k loop.
			a1 := a[(i+1)*lda : (i+1)*lda+k]
			a2 := a[(i+2)*lda : (i+2)*lda+k]
			a3 := a[(i+3)*lda : (i+3)*lda+k]
			for jj := 0; jj < nv; jj += 4 {
				var c00, c01, c02, c03, c10, c11, c12, c13 float32
				var c20, c21, c22, c23, c30, c31, c32, c33 float32
				for kk := range a0 {
					b := panel[kk*panelW+jj : kk*panelW+jj+4]
					b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
					x := a0[kk]
					c00 += x * b0
					c01 += x * b1
					c02 += x * b2
					c03 += x * b3
					x = a1[kk]
					c10 += x * b0
					c11 += x * b1
					c12 += x * b2
					c13 += x * b3
					x = a2[kk]
					c20 += x * b0
					c21 += x * b1
					c22 += x * b2
					c23 += x * b3
					x = a3[kk]
					c30 += x * b0
					c31 += x * b1
					c32 += x * b2
					c33 += x * b3
				}
				w := min(4, nv-jj)
				storeQuad(c[i*ldc+j0+jj:], w, &bpad, jj, relu, c00, c01, c02, c03)
				storeQuad(c[(i+1)*ldc+j0+jj:], w, &bpad, jj, relu, c10, c11, c12, c13)
				storeQuad(c[(i+2)*ldc+j0+jj:], w, &bpad, jj, relu, c20, c21, c22, c23)
				storeQuad(c[(i+3)*ldc+j0+jj:], w, &bpad, jj, relu, c30, c31, c32, c33)
			}
		}
		for ; i < m; i++ {
			ar := a[i*lda : i*lda+k]
			for jj := 0; jj < nv; jj += 4 {
				var c0, c1, c2, c3 float32
				for kk, x := range ar {
					b := panel[kk*panelW+jj : kk*panelW+jj+4]
					c0 += x * b[0]
					c1 += x * b[1]
					c2 += x * b[2]
					c3 += x * b[3]
				}
				storeQuad(c[i*ldc+j0+jj:], min(4, nv-jj), &bpad, jj, relu, c0, c1, c2, c3)
			}
		}
	}
}

// storeQuad writes the first w (1..4) of v0..v3 plus bias to dst, with ReLU.
func storeQuad(dst []float32, w int, bias *[panelW]float32, jj int, relu bool, v0, v1, v2, v3 float32) {
	v := [4]float32{v0, v1, v2, v3}
	for q := 0; q < w; q++ {
		x := v[q] + bias[jj+q]
		if relu && x < 0 {
			x = 0
		}
		dst[q] = x
	}
}
