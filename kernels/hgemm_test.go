package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// lpGemm describes a low-precision GEMM under test for checkLPCase: the
// value the GEMM effectively uses for each weight and activation (its
// rounding), and how to pack W and run it.
type lpGemm struct {
	roundW, roundA func(float32) float32
	run            func(w []float32, n, k, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool)
}

// checkLPCase runs g through the GEMM with random data, poisoned A padding
// and sentinel guards around and between the rows of C (as runCase does for
// sgemm), and checks the result against sgemmGeneric applied to the rounded
// operands. The bound is sgemm's reordering bound, 1e-5 * Σ|a·w| + 1e-6:
// the products of the rounded operands are exact in fp32 (fp16 x fp32 has
// 11+24 bits, but FMA rounds once; bf16 x bf16 has 16 bits), so what is left
// is the rounding of a reordered fp32 K-sum, as for sgemm.
func checkLPCase(t *testing.T, g gemmCase, rng *rand.Rand, lp lpGemm) {
	t.Helper()
	w := make([]float32, g.n*g.k)
	for i := range w {
		w[i] = rng.Float32()*2 - 1
	}
	const tail = 64
	alen := 0
	if g.m > 0 {
		alen = (g.m-1)*g.lda + g.k
	}
	abuf := make([]float32, alen+tail)
	for i := range abuf {
		abuf[i] = poison
	}
	for i := 0; i < g.m; i++ {
		for kk := 0; kk < g.k; kk++ {
			abuf[i*g.lda+kk] = rng.Float32()*2 - 1
		}
	}
	a := abuf[:alen]
	var bias []float32
	if g.bias {
		bbuf := make([]float32, g.n+tail)
		for j := range bbuf {
			bbuf[j] = poison
		}
		for j := 0; j < g.n; j++ {
			bbuf[j] = rng.Float32()*2 - 1
		}
		bias = bbuf[:g.n]
	}
	const pre, post = 37, 41
	clen := 0
	if g.m > 0 {
		clen = (g.m-1)*g.ldc + g.n
	}
	cbuf := make([]float32, pre+clen+post)
	for i := range cbuf {
		cbuf[i] = math.Float32frombits(sentinel)
	}
	c := cbuf[pre : pre+clen]
	acopy := append([]float32(nil), abuf...)

	lp.run(w, g.n, g.k, g.m, a, g.lda, c, g.ldc, bias, g.relu)

	wr := make([]float32, len(w))
	for i, v := range w {
		wr[i] = lp.roundW(v)
	}
	ar := make([]float32, len(a))
	for i, v := range a {
		ar[i] = lp.roundA(v)
	}
	want := make([]float32, g.m*g.n)
	sgemmGeneric(g.m, g.n, g.k, ar, g.lda, wr, g.k, want, g.n, bias, g.relu)
	bad := 0
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			mag := 0.0
			if bias != nil {
				mag = math.Abs(float64(bias[j]))
			}
			for kk := 0; kk < g.k; kk++ {
				mag += math.Abs(float64(ar[i*g.lda+kk]) * float64(wr[j*g.k+kk]))
			}
			got, exp := c[i*g.ldc+j], want[i*g.n+j]
			if !(math.Abs(float64(got)-float64(exp)) <= 1e-5*mag+1e-6) {
				if bad++; bad <= 5 {
					t.Errorf("%v: C[%d][%d] = %v, want %v (bound %.3g)", g, i, j, got, exp, 1e-5*mag+1e-6)
				}
			}
		}
	}
	for idx := range cbuf {
		off := idx - pre
		inside := off >= 0 && off < clen && off%g.ldc < g.n
		if !inside && math.Float32bits(cbuf[idx]) != sentinel {
			if bad++; bad <= 5 {
				t.Errorf("%v: wrote outside C's m x N window at buffer offset %d (C offset %d)", g, idx, off)
			}
		}
	}
	for i := range abuf {
		if math.Float32bits(abuf[i]) != math.Float32bits(acopy[i]) {
			t.Errorf("%v: A modified at %d", g, i)
			break
		}
	}
	if bad > 5 {
		t.Errorf("%v: %d errors in total", g, bad)
	}
}

// forEachF16Impl runs f as a subtest for every PackedF16.Gemm
// implementation the CPU supports, and in it, again as no-small-wide, with
// small layers on the fp16 kernels instead of their widened copy.
func forEachF16Impl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	forEachImplOf(t, f16Gemms, func(t *testing.T) {
		f(t)
		hSmallWide = false
		defer func() { hSmallWide = true }()
		t.Run("no-small-wide", f)
	})
}

func roundF16(f float32) float32 { return F16ToF32(F32ToF16(f)) }

var f16LP = lpGemm{
	roundW: roundF16,
	roundA: func(f float32) float32 { return f },
	run: func(w []float32, n, k, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
		PackF16FromF32(w, n, k).Gemm(m, a, lda, c, ldc, bias, relu)
	},
}

func TestF16Gemm(t *testing.T) {
	cases := gemmCases(testing.Short())
	forEachF16Impl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 5))
		for _, g := range cases {
			checkLPCase(t, g, rng, f16LP)
			if t.Failed() {
				return
			}
		}
	})
}

// TestF16GemmMatchesSgemm checks the design promise: for each implementation
// that sgemm also has, PackedF16.Gemm is bit-identical to PackedF32.Gemm on
// the widened weights (same kernels but for the load), including NaN/Inf
// weights, aliasing leading dimensions and the dot-product path.
func TestF16GemmMatchesSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	type shape struct{ m, n, k, lda int }
	shapes := []shape{{1, 1, 1, 1}, {13, 33, 17, 20}, {130, 512, 13, 13}, {37, 256, 512, 512}, {61, 70, 1000, 1024},
		{25, 4, 100, 100}, {2048, 16, 64, 64}, {7, 3, 1024, 1024}, {12, 64, 256, 256}, {5, 1024, 479, 479}}
	// Deep layers, widened in k blocks (kBlock) and continued in C: one
	// row block, two (the second short, in-kernel), a ragged last k block.
	shapes = append(shapes, shape{96, 70, 3456, 3456}, shape{200, 40, 3456, 3460}, shape{300, 33, 1024, 1024}, shape{130, 40, 2000, 2000})
	// Every row-block height of the in-kernel (m < hWidenMinM) paths.
	for _, m := range []int{2, 3, 4, 6, 8, 9, 10, 11, 14, 47} {
		shapes = append(shapes, shape{m, 40, 33, 35})
	}
	defer keepActive(f16Gemms)()
	defer keepActive(sgemms)()
	defer func() { hSmallWide = true }()
	for _, name := range sgemms.names() {
		if !f16Gemms.set(name) {
			continue
		}
		sgemms.set(name)
		for si, s := range append(shapes, shapes...) {
			hSmallWide = si < len(shapes) // then the fp16 kernels on small shapes too
			wh := make([]uint16, s.n*s.k)
			for i := range wh {
				wh[i] = F32ToF16(float32(rng.NormFloat64()))
			}
			if si%len(shapes) == 1 {
				// Special weights: Inf, NaN, subnormals, -0.
				wh[0], wh[1], wh[2], wh[3], wh[4] = 0x7c00, 0x7e01, 0x0001, 0x8000, 0x83ff
			}
			wf := make([]float32, len(wh))
			F16ToF32Slice(wf, wh)
			a := make([]float32, (s.m-1)*s.lda+s.k)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			bias := make([]float32, s.n)
			for j := range bias {
				bias[j] = float32(rng.NormFloat64())
			}
			got := make([]float32, s.m*s.n)
			want := make([]float32, s.m*s.n)
			relu := si%2 == 0
			PackF16(wh, s.n, s.k).Gemm(s.m, a, s.lda, got, s.n, bias, relu)
			PackF32(wf, s.n, s.k).Gemm(s.m, a, s.lda, want, s.n, bias, relu)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) &&
					!(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
					t.Fatalf("%s %+v (small-layer copy %v): C[%d][%d] = %v, sgemm on widened weights %v", name, s, hSmallWide, i/s.n, i%s.n, got[i], want[i])
				}
			}
		}
	}
}

func TestF16GemmRowAlign(t *testing.T) {
	forEachF16Impl(t, func(t *testing.T) {
		checkRowAlign(t, func(w []float32, n, k int) func(m int, a []float32, c []float32) {
			p := PackF16FromF32(w, n, k)
			return func(m int, a []float32, c []float32) { p.Gemm(m, a, k, c, n, nil, false) }
		})
	})
}

// checkRowAlign checks that splitting M at multiples of GemmRowAlign gives
// bit-identical rows; pack returns a GEMM over K-strided A and N-strided C.
func checkRowAlign(t *testing.T, pack func(w []float32, n, k int) func(m int, a []float32, c []float32)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, nk := range [][2]int{{17, 45}, {9, 17}, {1, 9}, {8, 5}, {1, 256}, {4, 100}, {5, 100}, {64, 256}, {33, 1024}} {
		n, k := nk[0], nk[1]
		const m = 61
		w := make([]float32, n*k)
		for i := range w {
			w[i] = rng.Float32()*2 - 1
		}
		a := make([]float32, m*k)
		for i := range a {
			a[i] = rng.Float32()*2 - 1
		}
		gemm := pack(w, n, k)
		full := make([]float32, m*n)
		gemm(m, a, full)
		for lo := GemmRowAlign; lo < m; lo += GemmRowAlign {
			for _, hi := range []int{m, min(lo+GemmRowAlign, m), min(lo+3*GemmRowAlign, m)} {
				part := make([]float32, (hi-lo)*n)
				gemm(hi-lo, a[lo*k:], part)
				for i := range part {
					if part[i] != full[lo*n+i] {
						t.Fatalf("n=%d k=%d rows [%d,%d) element %d: %v, whole call %v", n, k, lo, hi, i, part[i], full[lo*n+i])
					}
				}
			}
		}
	}
}

// TestF16GemmSpecialValues: NaN and Inf activations propagate, weights that
// overflow fp16 become Inf (PackF16FromF32 rounds like PyTorch's .half()),
// ReLU keeps NaN.
func TestF16GemmSpecialValues(t *testing.T) {
	const n, k = 40, 9
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	w[5*k+1] = 1e6 // column 5: k=1 weight overflows to +Inf
	p := PackF16FromF32(w, n, k)
	a := make([]float32, 3*k)
	for i := range a {
		a[i] = float32(i%5) - 2
	}
	a[0*k+3] = float32(math.NaN())
	a[1*k+2] = float32(math.Inf(1))
	forEachF16Impl(t, func(t *testing.T) {
		for _, relu := range []bool{false, true} {
			got := make([]float32, 3*n)
			p.Gemm(3, a, k, got, n, nil, relu)
			for j := 0; j < n; j++ {
				if !math.IsNaN(float64(got[j])) {
					t.Errorf("relu=%v: NaN in A row 0 did not reach C[0][%d] = %v", relu, j, got[j])
				}
			}
			// Row 2 has a[2k+1] = 2 times the +Inf weight and finite terms otherwise.
			if a[2*k+1] != 2 || !math.IsInf(float64(got[2*n+5]), 1) {
				t.Errorf("relu=%v: C[2][5] = %v, want +Inf (a = %v times an overflowed weight)", relu, got[2*n+5], a[2*k+1])
			}
			for j := 0; j < n; j++ {
				if j != 5 && (math.IsNaN(float64(got[2*n+j])) || math.IsInf(float64(got[2*n+j]), 0)) {
					t.Errorf("relu=%v: C[2][%d] = %v, want finite", relu, j, got[2*n+j])
				}
			}
		}
	})
}

func TestF16GemmDegenerate(t *testing.T) {
	forEachF16Impl(t, func(t *testing.T) {
		p := PackF16(nil, 3, 0)
		c := []float32{9, 9, 9, 9, 9, 9}
		p.Gemm(2, nil, 0, c, 3, []float32{1, -2, 3}, true)
		if want := []float32{1, 0, 3, 1, 0, 3}; fmt.Sprint(c) != fmt.Sprint(want) {
			t.Errorf("K=0: got %v, want %v", c, want)
		}
		c = []float32{7}
		PackF16(nil, 0, 5).Gemm(1, make([]float32, 5), 5, c, 0, nil, false)
		PackF16(make([]uint16, 5), 1, 5).Gemm(0, nil, 5, c, 1, nil, false)
		if c[0] != 7 {
			t.Errorf("N=0 or M=0 wrote C: %v", c)
		}
	})
}

func TestF16GemmPanics(t *testing.T) {
	mustPanic(t, "short w", func() { PackF16(make([]uint16, 5), 2, 3) })
	mustPanic(t, "short w32", func() { PackF16FromF32(make([]float32, 5), 2, 3) })
	mustPanic(t, "negative k", func() { PackF16(nil, 1, -3) })
	mustPanic(t, "overflowing n*k", func() { PackF16(make([]uint16, 4), math.MaxInt/2, 4) })
	p := PackF16(make([]uint16, 6), 2, 3)
	a, c := make([]float32, 6), make([]float32, 4)
	mustPanic(t, "lda < K", func() { p.Gemm(2, a, 2, c, 2, nil, false) })
	mustPanic(t, "ldc < N", func() { p.Gemm(2, a, 3, c, 1, nil, false) })
	mustPanic(t, "short a", func() { p.Gemm(2, a[:5], 3, c, 2, nil, false) })
	mustPanic(t, "short c", func() { p.Gemm(2, a, 3, c[:3], 2, nil, false) })
	mustPanic(t, "short bias", func() { p.Gemm(2, a, 3, c, 2, []float32{1}, false) })
	mustPanic(t, "negative m", func() { p.Gemm(-1, a, 3, c, 2, nil, false) })
	p.Gemm(2, a, 3, c, 2, []float32{1, 2}, false)
}

// TestF16GemmConcurrent: disjoint row ranges from several goroutines, with an
// aliasing lda so the pooled A copies are shared (run with -race); exact
// small-integer data, so the result must equal the reference bit for bit.
func TestF16GemmConcurrent(t *testing.T) {
	const m, n, k, lda, workers = 96, 70, 1000, 1024, 4
	rng := rand.New(rand.NewPCG(7, 9))
	q := func() float32 { return float32(rng.IntN(17)-8) / 4 }
	w := make([]float32, n*k)
	for i := range w {
		w[i] = q()
	}
	a := make([]float32, m*lda)
	for i := range a {
		a[i] = q()
	}
	p := PackF16FromF32(w, n, k)
	want := make([]float32, m*n)
	sgemmGeneric(m, n, k, a, lda, w, k, want, n, nil, true)
	forEachF16Impl(t, func(t *testing.T) {
		got := make([]float32, m*n)
		done := make(chan struct{})
		for g := 0; g < workers; g++ {
			go func(g int) {
				defer func() { done <- struct{}{} }()
				r0, r1 := g*m/workers, (g+1)*m/workers
				p.Gemm(r1-r0, a[r0*lda:], lda, got[r0*n:], n, nil, true)
			}(g)
		}
		for g := 0; g < workers; g++ {
			<-done
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("C[%d][%d] = %v, want %v", i/n, i%n, got[i], want[i])
			}
		}
	})
}

// FuzzPackF16 packs arbitrary fp16 bit patterns (NaN, Inf, subnormals
// included) and checks every implementation against PackedF32.Gemm of the
// same implementation on the widened weights, bit for bit (NaN matching
// NaN), plus the layout invariants and PackF16FromF32 == PackF16 ∘ F32ToF16.
func FuzzPackF16(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), []byte{1, 2, 3})
	f.Add(uint8(33), uint8(17), uint8(13), uint8(15), []byte("seed for a 13x33x17 product"))
	f.Add(uint8(4), uint8(64), uint8(8), uint8(3), []byte{0x7c, 0, 0xfc, 0, 0x7e, 1, 0, 1})
	f.Add(uint8(65), uint8(5), uint8(25), uint8(12), []byte{})
	f.Fuzz(func(t *testing.T, n8, k8, m8, flags uint8, data []byte) {
		n, k, m := int(n8)%70, int(k8)%70, int(m8)%30
		g := caseVariant(m, n, k, int(flags))
		pos := 0
		next := func() uint16 {
			if len(data) == 0 {
				return 0x3c00
			}
			b0 := data[pos%len(data)]
			b1 := data[(pos+1)%len(data)] ^ byte(pos*31)
			pos += 2
			return uint16(b0) | uint16(b1)<<8
		}
		wh := make([]uint16, n*k)
		for i := range wh {
			wh[i] = next()
		}
		a := make([]float32, max(0, (m-1)*g.lda+k))
		for i := range a {
			a[i] = F16ToF32(next() & 0x7bff) // finite activations
		}
		var bias []float32
		if g.bias {
			bias = make([]float32, n)
			for j := range bias {
				bias[j] = F16ToF32(next() & 0x7bff)
			}
		}
		p := PackF16(wh, n, k)
		if p.N != n || p.K != k || len(p.data) != (n+panelW-1)/panelW*panelW*k {
			t.Fatalf("PackF16 dims %dx%d (%d halves), want %dx%d", p.N, p.K, len(p.data), n, k)
		}
		if len(p.data) > 0 && uintptr(unsafe.Pointer(&p.data[0]))%64 != 0 {
			t.Fatalf("packed panels not 64-byte aligned: %p", &p.data[0])
		}
		for j := 0; j < (n+panelW-1)/panelW*panelW; j++ {
			for kk := 0; kk < k; kk++ {
				v := p.data[j/panelW*panelW*k+kk*panelW+j%panelW]
				if j < n && v != wh[j*k+kk] || j >= n && v != 0 {
					t.Fatalf("packed W[%d][%d] = %#04x", j, kk, v)
				}
			}
		}
		wf := make([]float32, n*k)
		F16ToF32Slice(wf, wh)
		p2 := PackF16FromF32(wf, n, k)
		for i := range p.data {
			// Widening then rounding is the identity except on NaN payloads
			// (F32ToF16 quiets signalling NaNs).
			if p2.data[i] != p.data[i] && !(p.data[i]&0x7c00 == 0x7c00 && p.data[i]&0x3ff != 0) {
				t.Fatalf("PackF16FromF32 data[%d] = %#04x, PackF16 %#04x", i, p2.data[i], p.data[i])
			}
		}
		pf := PackF32(wf, n, k)
		defer keepActive(f16Gemms)()
		defer keepActive(sgemms)()
		for _, name := range sgemms.names() {
			if !f16Gemms.set(name) {
				continue
			}
			sgemms.set(name)
			got := make([]float32, max(0, (m-1)*g.ldc+n))
			want := make([]float32, len(got))
			p.Gemm(m, a, g.lda, got, g.ldc, bias, g.relu)
			pf.Gemm(m, a, g.lda, want, g.ldc, bias, g.relu)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) &&
					!(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
					t.Fatalf("%s %v: C[%d] = %v, sgemm %v", name, g, i, got[i], want[i])
				}
			}
		}
	})
}
