package kernels

import (
	"fmt"
	"sync"
	"unsafe"
)

// PackedF16 is a weight matrix W [N x K] stored as IEEE binary16 in the
// micro-kernels' panel layout, for Gemm with fp32 activations and fp32
// arithmetic (FBGEMM's "fp16" GEMM): the weights take half the bytes of
// PackedF32, which is what bounds a GEMM with few rows, and each k-row of a
// panel is widened to fp32 in registers (VCVTPH2PS) right before its FMAs.
// Results are those of PackedF32.Gemm on the widened weights: bit-identical
// for the same implementation, since the kernels differ only in that load.
// It is immutable after packing and safe for concurrent Gemm calls.
type PackedF16 struct {
	N, K int
	// data holds ceil(N/32) panels of 32*K halves, laid out like
	// PackedF32.data: data[32p*K + 32*k + j] = W[32p+j][k], zero past N, so
	// one k step is one 64-byte cache line.
	data []uint16
	// rows is W widened to fp32, row-major, when N <= rowsMaxN: such narrow
	// layers go to sgemm's dot-product kernels, and at N <= 4 the weights
	// are a few KiB, so their width does not matter. Nil otherwise.
	rows []float32
	// wide is W widened to fp32 and packed for sgemm when N*K <=
	// hSmallWideMax (at most 32 KiB), else nil. For so few weights the
	// SIMD paths widen nothing per call: at M = 1 (criteo-18k's 512x13 and
	// 16x64 layers) converting on the fly made fp16 0.70-0.74x fp32, and
	// memory, fp16's point, is nothing at that size. Results are those of
	// the fp16 kernels (which equal sgemm's on the widened weights).
	wide *PackedF32
}

// hSmallWideMax is the most weights a PackedF16 also keeps widened.
const hSmallWideMax = 8192

// hSmallWide lets tests turn the widened copy off, to exercise the fp16
// kernels on small shapes too.
var hSmallWide = true

// PackF16FromF32 rounds w, a row-major [n x k] float32 matrix (a PyTorch
// Linear weight), to fp16 with F32ToF16 (round to nearest even, overflow to
// infinity, as PyTorch's .half()) and packs it for Gemm. It panics if n or k
// is negative or len(w) < n*k (a programmer error: sizes come from validated
// model metadata).
func PackF16FromF32(w []float32, n, k int) *PackedF16 {
	checkPackDims("PackF16FromF32", len(w), n, k)
	h := make([]uint16, n*k)
	F32ToF16Slice(h, w[:n*k])
	return PackF16(h, n, k)
}

// PackF16 packs wHalf, a row-major [n x k] matrix of binary16 bit patterns
// (e.g. a float16 tensor read from a checkpoint), for Gemm. It panics if n
// or k is negative or len(wHalf) < n*k.
func PackF16(wHalf []uint16, n, k int) *PackedF16 {
	checkPackDims("PackF16", len(wHalf), n, k)
	np := (n + panelW - 1) / panelW
	data := alignedHalves(np * panelW * k)
	for p := 0; p < np; p++ {
		panel := data[p*panelW*k : (p+1)*panelW*k]
		for j := 0; j < panelW && p*panelW+j < n; j++ {
			row := wHalf[(p*panelW+j)*k : (p*panelW+j+1)*k]
			for kk, v := range row {
				panel[kk*panelW+j] = v
			}
		}
	}
	pk := &PackedF16{N: n, K: k, data: data}
	if n <= rowsMaxN {
		pk.rows = make([]float32, n*k)
		F16ToF32Slice(pk.rows, wHalf[:n*k])
	}
	if n*k <= hSmallWideMax {
		w := make([]float32, n*k)
		F16ToF32Slice(w, wHalf[:n*k])
		pk.wide = PackF32(w, n, k)
	}
	return pk
}

// checkPackDims panics unless a matrix of n x k elements fits in have.
func checkPackDims(fn string, have, n, k int) {
	if n < 0 || k < 0 || (k > 0 && n > have/k) || have < n*k {
		panic(fmt.Sprintf("kernels.%s: weight has %d elements, want n*k = %d*%d", fn, have, n, k))
	}
}

// alignedHalves returns a zeroed slice of n uint16 starting on a 64-byte
// boundary, so every 64-byte k-row of a fp16 panel is one cache line.
func alignedHalves(n int) []uint16 {
	buf := make([]uint16, n+31)
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))&63) / 2
	skip := (32 - off) & 31
	return buf[skip : skip+n : skip+n]
}

// Gemm computes rows [0,m) of C = A·Wᵀ + bias, then ReLU (x < 0 -> 0, NaN
// kept) if relu, with W the widened fp16 weights. The contract is
// PackedF32.Gemm's: a is m x K row-major with leading dimension lda >= K, c
// is m x N with leading dimension ldc >= N, bias is nil or has at least N
// entries; only c[i*ldc+j] (i < m, j < N) is written and only a[i*lda+k]
// (k < K) and bias[j] (j < N) are read. Each row depends on its own inputs alone (see GemmRowAlign).
// It panics on inconsistent dimensions or slice lengths.
func (p *PackedF16) Gemm(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	if gemmPrologue("PackedF16.Gemm", m, p.N, p.K, len(a), lda, c, ldc, bias, relu) {
		return
	}
	f16Gemms.fn()(p, m, a, lda, c, ldc, bias, relu)
}

// gemmPrologue validates the arguments shared by the GEMMs of this file and
// bgemm.go (alen is the length of A in its own element type) and handles the
// degenerate shapes; it reports whether nothing is left to do.
func gemmPrologue(fn string, m, n, k, alen, lda int, c []float32, ldc int, bias []float32, relu bool) bool {
	switch {
	case m < 0 || lda < k || ldc < n:
		panic(fmt.Sprintf("kernels.%s: bad dims m=%d lda=%d (K=%d) ldc=%d (N=%d)", fn, m, lda, k, ldc, n))
	case m == 0 || n == 0:
		return true
	case alen < (m-1)*lda+k:
		panic(fmt.Sprintf("kernels.%s: a has %d elements, want >= %d for m=%d lda=%d K=%d", fn, alen, (m-1)*lda+k, m, lda, k))
	case len(c) < (m-1)*ldc+n:
		panic(fmt.Sprintf("kernels.%s: c has %d floats, want >= %d for m=%d ldc=%d N=%d", fn, len(c), (m-1)*ldc+n, m, ldc, n))
	case bias != nil && len(bias) < n:
		panic(fmt.Sprintf("kernels.%s: bias has %d floats, want >= N = %d", fn, len(bias), n))
	}
	if k > 0 {
		return false
	}
	// Empty sum: C is the bias (+ReLU); the kernels never see K = 0.
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
	return true
}

// f16GemmFn is the signature of PackedF16.Gemm's implementations: they
// receive validated arguments with K, m, N >= 1.
type f16GemmFn func(p *PackedF16, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool)

// f16Gemms is PackedF16.Gemm's family: archF16Impls (hgemm_amd64.go or
// hgemm_noasm.go), then hgemmGo. The names match sgemms' (same kernel
// structure) so tests can pair them.
var f16Gemms = newFamily(archF16Impls, hgemmGo)

// F16GemmImpl names the PackedF16.Gemm implementation in use ("avx512",
// "avx2" or "go"), for diagnostics.
func F16GemmImpl() string { return f16Gemms.name() }

// panelBufPool recycles the fp32 panel buffers of the widening paths (the
// pure-Go fp16 GEMM and the emulated bf16 GEMMs).
var panelBufPool = sync.Pool{New: func() any { return new([]float32) }}

// getPanelBuf returns a pooled buffer of at least n floats, 64-byte aligned.
func getPanelBuf(n int) (*[]float32, []float32) {
	bp := panelBufPool.Get().(*[]float32)
	if cap(*bp) < n+15 {
		*bp = make([]float32, n+15)
	}
	buf := (*bp)[:cap(*bp)]
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))&63) / 4
	skip := (16 - off) & 15
	return bp, buf[skip : skip+n : skip+n]
}

// hgemmGo is the portable implementation: each panel is widened once per
// call into a pooled fp32 panel and handed to sgemm's pure-Go kernel, so the
// results are exactly gemmGo's on the widened weights. The widening costs
// 32*K conversions per panel against m*32*K multiply-adds.
func hgemmGo(p *PackedF16, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
	n, k := p.N, p.K
	bp, buf := getPanelBuf(panelW * k)
	defer panelBufPool.Put(bp)
	for j0 := 0; j0 < n; j0 += panelW {
		nv := min(panelW, n-j0)
		F16ToF32Slice(buf, p.data[j0*k:(j0+panelW)*k])
		var bs []float32
		if bias != nil {
			bs = bias[j0 : j0+nv]
		}
		gemmGo(&PackedF32{N: nv, K: k, data: buf}, m, a, lda, c[j0:], ldc, bs, relu)
	}
}
