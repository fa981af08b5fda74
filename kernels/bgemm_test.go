package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// bf16LP is the bf16 GEMM with fp32 A for checkLPCase: the reference uses
// the documented semantics (weights rounded by F32ToBF16, activations by
// the instructions' rounding, bf16 subnormals read as zero).
var bf16LP = lpGemm{
	roundW: func(f float32) float32 { return bf16DAZ(F32ToBF16(f)) },
	roundA: func(f float32) float32 { return bf16DAZ(f32ToBF16Hw(f)) },
	run: func(w []float32, n, k, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
		PackBF16FromF32(w, n, k).Gemm(m, a, lda, c, ldc, bias, relu)
	},
}

func TestBF16Gemm(t *testing.T) {
	full, short := gemmCases(testing.Short()), gemmCases(true)
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 6))
		cases := full
		if bf16Gemms.name() != "avx512bf16" {
			// The emulations run the fp32 GEMMs, which TestGemm covers on
			// every shape; the short list exercises their blocking here.
			cases = short
		}
		for _, g := range cases {
			checkLPCase(t, g, rng, bf16LP)
			if t.Failed() {
				return
			}
		}
	})
}

// TestBF16GemmBF16A checks GemmBF16A on A pre-rounded with F32ToBF16Slice
// (stored with poisoned gaps between rows: NaN bf16, so an over-read of the
// gap, e.g. the partner of the last element when K is odd, shows) against
// Gemm on the fp32 A: for data without fp32 subnormals the two must agree
// bit for bit, in the same implementation. Guards around C are checked too.
func TestBF16GemmBF16A(t *testing.T) {
	cases := gemmCases(true)
	for _, lda := range []int{512, 1024, 1000, 2048} {
		cases = append(cases, gemmCase{m: 50, n: 40, k: lda - 1, lda: lda, ldc: 40, bias: true},
			gemmCase{m: 30, n: 3, k: lda - 3, lda: lda, ldc: 3, relu: true}, gemmCase{m: 13, n: 64, k: lda, lda: lda, ldc: 70})
	}
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(4, 6))
		for _, g := range cases {
			w := make([]float32, g.n*g.k)
			for i := range w {
				w[i] = rng.Float32()*2 - 1
			}
			alen := max(0, (g.m-1)*g.lda+g.k)
			a := make([]float32, alen)
			ah := make([]uint16, alen+8)
			for i := range ah {
				ah[i] = 0x7fc1
			}
			for i := 0; i < g.m; i++ {
				for kk := 0; kk < g.k; kk++ {
					a[i*g.lda+kk] = rng.Float32()*2 - 1
					ah[i*g.lda+kk] = F32ToBF16(a[i*g.lda+kk])
				}
			}
			var bias []float32
			if g.bias {
				bias = make([]float32, g.n)
				for j := range bias {
					bias[j] = rng.Float32() - 0.5
				}
			}
			p := PackBF16FromF32(w, g.n, g.k)
			clen := max(0, (g.m-1)*g.ldc+g.n)
			want := make([]float32, clen)
			p.Gemm(g.m, a, g.lda, want, g.ldc, bias, g.relu)
			const pre, post = 5, 7
			cbuf := make([]float32, pre+clen+post)
			for i := range cbuf {
				cbuf[i] = math.Float32frombits(sentinel)
			}
			got := cbuf[pre : pre+clen]
			p.GemmBF16A(g.m, ah[:alen], g.lda, got, g.ldc, bias, g.relu)
			for i := 0; i < g.m; i++ {
				for j := 0; j < g.n; j++ {
					if x, y := got[i*g.ldc+j], want[i*g.ldc+j]; math.Float32bits(x) != math.Float32bits(y) {
						t.Fatalf("%v: GemmBF16A C[%d][%d] = %v, Gemm %v", g, i, j, x, y)
					}
				}
			}
			for idx := range cbuf {
				off := idx - pre
				inside := off >= 0 && off < clen && off%g.ldc < g.n
				if !inside && math.Float32bits(cbuf[idx]) != sentinel {
					t.Fatalf("%v: GemmBF16A wrote outside C at buffer offset %d", g, idx)
				}
			}
		}
	})
}

func TestBF16GemmRowAlign(t *testing.T) {
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		checkRowAlign(t, func(w []float32, n, k int) func(m int, a []float32, c []float32) {
			p := PackBF16FromF32(w, n, k)
			return func(m int, a []float32, c []float32) { p.Gemm(m, a, k, c, n, nil, false) }
		})
		// GemmBF16A, with odd K (the copy path) among the shapes.
		checkRowAlign(t, func(w []float32, n, k int) func(m int, a []float32, c []float32) {
			p := PackBF16FromF32(w, n, k)
			return func(m int, a []float32, c []float32) {
				ah := make([]uint16, m*k)
				F32ToBF16Slice(ah, a[:m*k])
				p.GemmBF16A(m, ah, k, c, n, nil, false)
			}
		})
	})
}

// TestBF16GemmSemantics checks the documented semantics on crafted values
// whose exact results are representable, for every implementation: bf16
// subnormal weights and fp32 subnormal activations count as zero (DAZ; a
// non-flushing implementation would add 2^-33 here), activations round to
// nearest even (ties included), weights too, and NaN/Inf propagate.
func TestBF16GemmSemantics(t *testing.T) {
	const n, k = 6, 5
	w := []float32{
		1, 1, 1, 1, 1, // column 0: plain sum of the rounded activations
		math.Float32frombits(0x00010000), 0, 0, 0, 0, // column 1: bf16 subnormal 2^-133 weight
		0, 0, 0, 0, float32(math.Inf(1)), // column 2: Inf weight
		math.Float32frombits(0x3f808000), 0, 0, 0, 0, // column 3: weight tie 1+2^-8 -> 1
		math.Float32frombits(0x3f818000), 0, 0, 0, 0, // column 4: weight tie -> 1+2^-6
		0, 1, 0, 0, 0, // column 5
	}
	a := []float32{
		// row 0: 2^100 for the subnormal weight; ties on activations.
		0x1p100, math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), -0.5, 3,
		// row 1: an fp32 subnormal activation times 1 must vanish.
		math.Float32frombits(0x00400000), 2, 0, 0, -1,
		// row 2: NaN reaches every column.
		0, 0, 0, 0, float32(math.NaN()),
	}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	want := [][n]float32{
		{0x1p100, 0, inf, 0x1p100, (1 + 0x1p-6) * 0x1p100, 1},
		{1, 0, -inf, 0, 0, 2},
		{nan, nan, nan, nan, nan, nan},
	}
	const m = 3
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		p := PackBF16FromF32(w, n, k)
		for _, bf16A := range []bool{false, true} {
			got := make([]float32, m*n)
			if bf16A {
				ah := make([]uint16, len(a))
				for i, v := range a {
					ah[i] = f32ToBF16Hw(v)
				}
				p.GemmBF16A(m, ah, k, got, n, nil, false)
			} else {
				p.Gemm(m, a, k, got, n, nil, false)
			}
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					g, e := got[i*n+j], want[i][j]
					if !(g == e || math.IsNaN(float64(g)) && math.IsNaN(float64(e))) {
						t.Errorf("bf16A=%v: C[%d][%d] = %v, want %v", bf16A, i, j, g, e)
					}
				}
			}
		}
	})
}

func TestBF16GemmDegenerate(t *testing.T) {
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		p := PackBF16(nil, 3, 0)
		c := []float32{9, 9, 9, 9, 9, 9}
		p.Gemm(2, nil, 0, c, 3, []float32{1, -2, 3}, true)
		if want := []float32{1, 0, 3, 1, 0, 3}; fmt.Sprint(c) != fmt.Sprint(want) {
			t.Errorf("K=0: got %v, want %v", c, want)
		}
		c = []float32{9, 9, 9}
		p.GemmBF16A(1, nil, 0, c, 3, nil, false)
		if fmt.Sprint(c) != "[0 0 0]" {
			t.Errorf("K=0 bf16 A: got %v", c)
		}
		c = []float32{7}
		PackBF16(nil, 0, 5).Gemm(1, make([]float32, 5), 5, c, 0, nil, false)
		PackBF16(make([]uint16, 5), 1, 5).Gemm(0, nil, 5, c, 1, nil, false)
		PackBF16(make([]uint16, 5), 1, 5).GemmBF16A(0, nil, 5, c, 1, nil, false)
		if c[0] != 7 {
			t.Errorf("N=0 or M=0 wrote C: %v", c)
		}
		// K = 1: a single odd element, padded with a zero partner.
		c = []float32{0, 0}
		PackBF16FromF32([]float32{3, -2}, 2, 1).GemmBF16A(1, []uint16{F32ToBF16(1.5), 0x7fc1}, 1, c, 2, nil, false)
		if c[0] != 4.5 || c[1] != -3 {
			t.Errorf("K=1: got %v, want [4.5 -3]", c)
		}
	})
}

func TestBF16GemmPanics(t *testing.T) {
	mustPanic(t, "short w", func() { PackBF16(make([]uint16, 5), 2, 3) })
	mustPanic(t, "short w32", func() { PackBF16FromF32(make([]float32, 5), 2, 3) })
	mustPanic(t, "negative n", func() { PackBF16(nil, -1, 3) })
	mustPanic(t, "overflowing n*k", func() { PackBF16(make([]uint16, 4), math.MaxInt/2, 4) })
	p := PackBF16(make([]uint16, 6), 2, 3)
	a, ah, c := make([]float32, 6), make([]uint16, 6), make([]float32, 4)
	mustPanic(t, "lda < K", func() { p.Gemm(2, a, 2, c, 2, nil, false) })
	mustPanic(t, "ldc < N", func() { p.Gemm(2, a, 3, c, 1, nil, false) })
	mustPanic(t, "short a", func() { p.Gemm(2, a[:5], 3, c, 2, nil, false) })
	mustPanic(t, "short c", func() { p.Gemm(2, a, 3, c[:3], 2, nil, false) })
	mustPanic(t, "short bias", func() { p.Gemm(2, a, 3, c, 2, []float32{1}, false) })
	mustPanic(t, "negative m", func() { p.Gemm(-1, a, 3, c, 2, nil, false) })
	mustPanic(t, "bf16 A lda < K", func() { p.GemmBF16A(2, ah, 2, c, 2, nil, false) })
	mustPanic(t, "short bf16 a", func() { p.GemmBF16A(2, ah[:5], 3, c, 2, nil, false) })
	mustPanic(t, "bf16 A short c", func() { p.GemmBF16A(2, ah, 3, c[:3], 2, nil, false) })
	p.Gemm(2, a, 3, c, 2, []float32{1, 2}, false)
	p.GemmBF16A(2, ah, 3, c, 2, []float32{1, 2}, false)
}

// TestBF16GemmConcurrent: disjoint row ranges from several goroutines share
// the pooled conversion buffers (run with -race); small-integer data makes
// every sum exact, so the result must equal the reference bit for bit.
func TestBF16GemmConcurrent(t *testing.T) {
	const m, n, k, lda, workers = 96, 70, 1000, 1024, 4
	rng := rand.New(rand.NewPCG(7, 10))
	q := func() float32 { return float32(rng.IntN(17)-8) / 4 }
	w := make([]float32, n*k)
	for i := range w {
		w[i] = q()
	}
	a := make([]float32, m*lda)
	for i := range a {
		a[i] = q()
	}
	ah := make([]uint16, len(a))
	F32ToBF16Slice(ah, a)
	p := PackBF16FromF32(w, n, k)
	want := make([]float32, m*n)
	sgemmGeneric(m, n, k, a, lda, w, k, want, n, nil, true)
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		for _, bf16A := range []bool{false, true} {
			got := make([]float32, m*n)
			done := make(chan struct{})
			for g := 0; g < workers; g++ {
				go func(g int) {
					defer func() { done <- struct{}{} }()
					r0, r1 := g*m/workers, (g+1)*m/workers
					if bf16A {
						p.GemmBF16A(r1-r0, ah[r0*lda:], lda, got[r0*n:], n, nil, true)
					} else {
						p.Gemm(r1-r0, a[r0*lda:], lda, got[r0*n:], n, nil, true)
					}
				}(g)
			}
			for g := 0; g < workers; g++ {
				<-done
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("bf16A=%v: C[%d][%d] = %v, want %v", bf16A, i/n, i%n, got[i], want[i])
				}
			}
		}
	})
}

// FuzzPackBF16 packs arbitrary finite bf16 weights (subnormals included,
// magnitudes below 2^32 so no partial sum overflows) and checks the panel
// layout, then every implementation, through Gemm and GemmBF16A, against
// the documented semantics within the reordering bound.
func FuzzPackBF16(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), []byte{1, 2, 3})
	f.Add(uint8(33), uint8(17), uint8(13), uint8(15), []byte("seed for a 13x33x17 product"))
	f.Add(uint8(4), uint8(63), uint8(8), uint8(3), []byte{0x00, 0x01, 0x80, 0x7f, 0x3f, 0x80})
	f.Add(uint8(65), uint8(5), uint8(25), uint8(12), []byte{})
	f.Fuzz(func(t *testing.T, n8, k8, m8, flags uint8, data []byte) {
		n, k, m := int(n8)%70, int(k8)%70, int(m8)%30
		g := caseVariant(m, n, k, int(flags))
		pos := 0
		next := func() uint16 {
			if len(data) == 0 {
				return 0x3f80
			}
			b0 := data[pos%len(data)]
			b1 := data[(pos+1)%len(data)] ^ byte(pos*31)
			pos += 2
			h := uint16(b0) | uint16(b1)<<8
			// Exponent field below 127+32: finite, |x| < 2^32.
			if h&0x7f80 >= (127+32)<<7 {
				h &^= 0x4000
			}
			return h
		}
		wh := make([]uint16, n*k)
		for i := range wh {
			wh[i] = next()
		}
		ah := make([]uint16, max(0, (m-1)*g.lda+k))
		for i := range ah {
			ah[i] = next()
		}
		a := make([]float32, len(ah))
		BF16ToF32Slice(a, ah)
		var bias []float32
		if g.bias {
			bias = make([]float32, n)
			for j := range bias {
				bias[j] = BF16ToF32(next())
			}
		}
		p := PackBF16(wh, n, k)
		if p.N != n || p.K != k || p.kp != (k+1)/2 || len(p.data) != (n+panelW-1)/panelW*panelW*2*p.kp {
			t.Fatalf("PackBF16 dims %dx%d kp=%d (%d halves)", p.N, p.K, p.kp, len(p.data))
		}
		if len(p.data) > 0 && uintptr(unsafe.Pointer(&p.data[0]))%64 != 0 {
			t.Fatalf("packed panels not 64-byte aligned: %p", &p.data[0])
		}
		for j := 0; j < (n+panelW-1)/panelW*panelW; j++ {
			for kk := 0; kk < 2*p.kp; kk++ {
				v := p.data[j/panelW*panelW*2*p.kp+kk/2*2*panelW+2*(j%panelW)+kk%2]
				if j < n && kk < k && v != wh[j*k+kk] || (j >= n || kk >= k) && v != 0 {
					t.Fatalf("packed W[%d][%d] = %#04x", j, kk, v)
				}
			}
		}
		// Reference: bf16 values with subnormals as zero, exact products.
		wr := make([]float32, len(wh))
		for i, h := range wh {
			wr[i] = bf16DAZ(h)
		}
		ar := make([]float32, len(ah))
		for i, h := range ah {
			ar[i] = bf16DAZ(h)
		}
		want := make([]float32, max(0, (m-1)*g.ldc+n))
		sgemmGeneric(m, n, k, ar, g.lda, wr, k, want, g.ldc, bias, g.relu)
		defer keepActive(bf16Gemms)()
		for _, name := range bf16Gemms.names() {
			mustSet(t, bf16Gemms, name)
			for _, bf16A := range []bool{false, true} {
				got := make([]float32, len(want))
				if bf16A {
					p.GemmBF16A(m, ah, g.lda, got, g.ldc, bias, g.relu)
				} else {
					p.Gemm(m, a, g.lda, got, g.ldc, bias, g.relu)
				}
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						mag := 0.0
						if bias != nil {
							mag = math.Abs(float64(bias[j]))
						}
						for kk := 0; kk < k; kk++ {
							mag += math.Abs(float64(ar[i*g.lda+kk]) * float64(wr[j*k+kk]))
						}
						x, e := got[i*g.ldc+j], want[i*g.ldc+j]
						if !(math.Abs(float64(x)-float64(e)) <= 1e-5*mag+1e-6) {
							t.Fatalf("%s bf16A=%v %v: C[%d][%d] = %v, want %v", name, bf16A, g, i, j, x, e)
						}
					}
				}
			}
		}
	})
}

// TestBF16GemmBF16AStalePad: with odd K the last pair of a bf16 row needs a
// zero partner; a pooled copy buffer that last held NaN activations (a
// previous call with a longer K) must not leak them into the result.
func TestBF16GemmBF16AStalePad(t *testing.T) {
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		const m, n = 24, 40
		for rep := 0; rep < 3; rep++ {
			nanA := make([]uint16, m*63)
			for i := range nanA {
				nanA[i] = 0x7fc1
			}
			junk := make([]float32, m*n)
			PackBF16(make([]uint16, n*63), n, 63).GemmBF16A(m, nanA, 63, junk, n, nil, false)
			const k = 61
			ah := make([]uint16, m*k)
			for i := range ah {
				ah[i] = 0x3f80 // 1
			}
			w := make([]uint16, n*k)
			for i := range w {
				w[i] = 0x4000 // 2
			}
			c := make([]float32, m*n)
			PackBF16(w, n, k).GemmBF16A(m, ah, k, c, n, nil, false)
			for i, v := range c {
				if v != 2*k {
					t.Fatalf("C[%d][%d] = %v, want %d", i/n, i%n, v, 2*k)
				}
			}
		}
	})
}

// TestBF16RoundRows checks the emulation's fused rounding of fp32 A against
// its definition, bf16DAZ(f32ToBF16Hw(x)), bit for bit on the crafted
// values of convTestF32 (ties, subnormals, NaN payloads, overflow).
func TestBF16RoundRows(t *testing.T) {
	vals := convTestF32(rand.New(rand.NewPCG(41, 42)))
	src := make([]float32, len(vals))
	for i, b := range vals {
		src[i] = math.Float32frombits(b)
	}
	dst := make([]float32, len(src))
	bf16Src{f: src, lda: len(src)}.roundRows(dst, 0, 1, len(src))
	for i, v := range src {
		if got, want := math.Float32bits(dst[i]), math.Float32bits(bf16DAZ(f32ToBF16Hw(v))); got != want {
			t.Fatalf("roundRows(%#08x) = %#08x, want %#08x", vals[i], got, want)
		}
	}
}
