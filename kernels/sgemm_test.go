package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// sentinel fills every float the GEMM must not write (guards around and
// between the rows of C): a signalling-NaN bit pattern no computation yields.
const sentinel = 0x7fa5a5a5

// poison fills the parts of A and bias the GEMM must not read (the gap
// between K and lda, and past the end): reading it turns a result into NaN.
var poison = float32(math.NaN())

// gemmCase is one GEMM problem with its guard layout.
type gemmCase struct {
	m, n, k, lda, ldc int
	bias, relu        bool
}

func (g gemmCase) String() string {
	return fmt.Sprintf("M=%d,N=%d,K=%d,lda=%d,ldc=%d,bias=%v,relu=%v", g.m, g.n, g.k, g.lda, g.ldc, g.bias, g.relu)
}

// runCase runs the active implementation on g with random data and checks
// it against sgemmGeneric and the guard regions.
func runCase(t *testing.T, g gemmCase, rng *rand.Rand) {
	t.Helper()
	w := make([]float32, g.n*g.k)
	for i := range w {
		w[i] = rng.Float32()*2 - 1
	}
	// A sits in a poisoned buffer: the lda-K gap of each row and a tail past
	// the last row hold NaN, so an over-read shows up as a NaN result.
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
	// C has sentinel guards before, after, and between rows (ldc > N).
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

	PackF32(w, g.n, g.k).Gemm(g.m, a, g.lda, c, g.ldc, bias, g.relu)

	want := make([]float32, g.m*g.n)
	sgemmGeneric(g.m, g.n, g.k, a, g.lda, w, g.k, want, g.n, bias, g.relu)
	bad := 0
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			// Reordering bound: any order of the float32 K-sum differs from the
			// exact sum by at most about K*eps*Σ|terms| in the worst case and
			// by far less (~sqrt(K)*eps*Σ|terms|) for random data; 1e-5 (~84
			// ulps of the magnitude sum) covers every K here with margin,
			// while any wrong or missing term is far larger. The 1e-6
			// absolute slack covers sums that cancel to ~0.
			mag := 0.0
			if bias != nil {
				mag = math.Abs(float64(bias[j]))
			}
			for kk := 0; kk < g.k; kk++ {
				mag += math.Abs(float64(a[i*g.lda+kk]) * float64(w[j*g.k+kk]))
			}
			got, exp := c[i*g.ldc+j], want[i*g.n+j]
			if !(math.Abs(float64(got)-float64(exp)) <= 1e-5*mag+1e-6) {
				if bad++; bad <= 5 {
					t.Errorf("%v: C[%d][%d] = %v, want %v (bound %.3g)", g, i, j, got, exp, 1e-5*mag+1e-6)
				}
			}
		}
	}
	// Guards: everything outside the m x N window must still be the sentinel.
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

// caseVariant derives lda, ldc, bias and relu from a counter so that every
// shape list cycles through tight and padded leading dimensions and all four
// bias/relu combinations.
func caseVariant(m, n, k, v int) gemmCase {
	g := gemmCase{m: m, n: n, k: k, lda: k, ldc: n, bias: v&1 == 0, relu: v&2 == 0}
	if v&4 != 0 {
		g.lda = k + 1 + v%7
	}
	if v&8 != 0 {
		g.ldc = n + 1 + v%5
	}
	return g
}

// gemmCases lists the shapes the correctness test covers.
func gemmCases(short bool) []gemmCase {
	var cs []gemmCase
	v := 0
	add := func(m, n, k int) {
		cs = append(cs, caseVariant(m, n, k, v))
		v++
	}
	// All combinations of sizes around the kernels' edges: row blocks of 12
	// (AVX-512) and 6 (AVX2), the 16/32-column panel halves, and the k unroll of 4.
	small := []int{1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 16, 17, 24, 31, 32, 33}
	if short {
		small = []int{1, 3, 5, 8, 12, 13, 17, 33}
	}
	for _, m := range small {
		for _, n := range small {
			for _, k := range small {
				add(m, n, k)
			}
		}
	}
	// Every value 1..67 of each dimension, the other two drawn at random.
	rng := rand.New(rand.NewPCG(1, 2))
	for x := 1; x <= 67; x++ {
		add(x, 1+rng.IntN(67), 1+rng.IntN(67))
		add(1+rng.IntN(67), x, 1+rng.IntN(67))
		add(1+rng.IntN(67), 1+rng.IntN(67), x)
	}
	// DLRM and MLPerf layer shapes (N outputs, K inputs).
	type nk struct{ n, k int }
	dlrm := []nk{{512, 13}, {256, 512}, {64, 256}, {16, 64}, {512, 367}, {1, 256}, {128, 256}, {1024, 479}, {256, 1024}}
	ms := []int{1, 8, 37, 130}
	if short {
		ms = []int{1, 13}
	}
	for _, s := range dlrm {
		for _, m := range ms {
			for r := 0; r < 2; r++ {
				add(m, s.n, s.k)
			}
		}
	}
	// Tall A crossing several L2 row blocks (rowBlock is 5040 rows at K=13,
	// 60 at K=1024).
	add(300, 40, 1024)
	// Deep layers, which the AVX-512 driver splits into k blocks (DCN's
	// 3456 inputs; 1031 leaves a ragged last block).
	add(37, 70, 3456)
	add(130, 33, 1031)
	// Leading dimensions that alias in L1, which the SIMD paths copy to a
	// padded buffer first.
	for _, lda := range []int{512, 1024, 2048, 1536} {
		cs = append(cs, gemmCase{m: 131, n: 70, k: 500, lda: lda, ldc: 70, bias: true, relu: true})
		cs = append(cs, gemmCase{m: 7, n: 33, k: lda, lda: lda, ldc: 40})
		cs = append(cs, gemmCase{m: 25, n: 5, k: lda - 16, lda: lda, ldc: 5, relu: true})
	}
	add(2048, 16, 64)
	add(2048, 1, 256)
	if !short {
		add(5100, 33, 13)
	}
	return cs
}

func TestGemm(t *testing.T) {
	cases := gemmCases(testing.Short())
	forEachImplOf(t, sgemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, g := range cases {
			runCase(t, g, rng)
			if t.Failed() {
				return // one failing implementation floods the log otherwise
			}
		}
	})
}

// TestGemmSpecialValues checks NaN and Inf propagate like the reference:
// ReLU keeps NaN (PyTorch's relu does) and -0 stays -0.
func TestGemmSpecialValues(t *testing.T) {
	const n, k = 40, 9
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	p := PackF32(w, n, k)
	a := make([]float32, 4*k)
	for i := range a {
		a[i] = float32(i%5) - 2
	}
	a[0*k+3] = float32(math.NaN())
	a[1*k+2] = float32(math.Inf(1))
	for kk := 0; kk < k; kk++ {
		a[2*k+kk] = 0 // row 2: exactly 0 + bias
	}
	bias := make([]float32, n)
	for j := range bias {
		bias[j] = float32(math.Copysign(0, -1)) // -0
	}
	forEachImplOf(t, sgemms, func(t *testing.T) {
		for _, relu := range []bool{false, true} {
			got := make([]float32, 4*n)
			want := make([]float32, 4*n)
			p.Gemm(4, a, k, got, n, bias, relu)
			sgemmGeneric(4, n, k, a, k, w, k, want, n, bias, relu)
			for i := range got {
				g, e := got[i], want[i]
				same := math.IsNaN(float64(g)) && math.IsNaN(float64(e)) ||
					g == e && math.Signbit(float64(g)) == math.Signbit(float64(e))
				if i/n == 2 && !same {
					// Row 2 sums only zeros: -0 + 0*w is +0 in any order.
					t.Errorf("relu=%v: C[%d][%d] = %v, want %v", relu, i/n, i%n, g, e)
				} else if !same && !(math.Abs(float64(g-e)) <= 1e-4) {
					t.Errorf("relu=%v: C[%d][%d] = %v, want %v", relu, i/n, i%n, g, e)
				}
			}
			for j := 0; j < n; j++ {
				if !math.IsNaN(float64(got[j])) {
					t.Errorf("relu=%v: NaN in row 0 of A did not reach C[0][%d] = %v", relu, j, got[j])
				}
			}
		}
	})
}

// TestGemmDegenerate covers empty dimensions: K = 0 is bias (+ReLU), M = 0 and
// N = 0 write nothing.
func TestGemmDegenerate(t *testing.T) {
	forEachImplOf(t, sgemms, func(t *testing.T) {
		p := PackF32(nil, 3, 0)
		c := []float32{9, 9, 9, 9, 9, 9}
		p.Gemm(2, nil, 0, c, 3, []float32{1, -2, 3}, true)
		if want := []float32{1, 0, 3, 1, 0, 3}; fmt.Sprint(c) != fmt.Sprint(want) {
			t.Errorf("K=0: got %v, want %v", c, want)
		}
		p.Gemm(1, nil, 0, c, 3, nil, false)
		if c[0] != 0 || c[1] != 0 || c[2] != 0 || c[3] != 1 {
			t.Errorf("K=0, nil bias: got %v", c)
		}
		c = []float32{7}
		PackF32(nil, 0, 5).Gemm(1, make([]float32, 5), 5, c, 0, nil, false)
		PackF32(make([]float32, 5), 1, 5).Gemm(0, nil, 5, c, 1, nil, false)
		if c[0] != 7 {
			t.Errorf("N=0 or M=0 wrote C: %v", c)
		}
	})
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: did not panic", what)
		}
	}()
	f()
}

// TestGemmPanics checks inconsistent arguments are caught before any kernel
// runs (the assembly has no bounds checks).
func TestGemmPanics(t *testing.T) {
	mustPanic(t, "short w", func() { PackF32(make([]float32, 5), 2, 3) })
	mustPanic(t, "negative n", func() { PackF32(nil, -1, 3) })
	mustPanic(t, "overflowing n*k", func() { PackF32(make([]float32, 4), math.MaxInt/2, 4) })
	p := PackF32(make([]float32, 6), 2, 3)
	a, c := make([]float32, 6), make([]float32, 4)
	mustPanic(t, "lda < K", func() { p.Gemm(2, a, 2, c, 2, nil, false) })
	mustPanic(t, "ldc < N", func() { p.Gemm(2, a, 3, c, 1, nil, false) })
	mustPanic(t, "short a", func() { p.Gemm(2, a[:5], 3, c, 2, nil, false) })
	mustPanic(t, "short c", func() { p.Gemm(2, a, 3, c[:3], 2, nil, false) })
	mustPanic(t, "short bias", func() { p.Gemm(2, a, 3, c, 2, []float32{1}, false) })
	mustPanic(t, "negative m", func() { p.Gemm(-1, a, 3, c, 2, nil, false) })
	p.Gemm(2, a, 3, c, 2, []float32{1, 2}, false) // exact sizes are fine
}

func TestFeatures(t *testing.T) {
	f := Features()
	known := map[string]bool{"avx512f": true, "avx512bw": true, "avx512vl": true, "avx512vnni": true,
		"avx512bf16": true, "avx2": true, "fma": true, "f16c": true, "amx_tile": true, "amx_int8": true, "amx_bf16": true,
		"asimd": true, "fphp": true, "asimdhp": true, "asimddp": true, "sve": true}
	for _, name := range strings.Fields(f) {
		if !known[name] {
			t.Errorf("Features() = %q: unknown feature %q", f, name)
		}
	}
	has := func(name string) bool { return strings.Contains(" "+f+" ", " "+name+" ") }
	if hasAVX512 != (has("avx512f") && has("avx512bw") && has("avx512vl")) {
		t.Errorf("Features() = %q disagrees with hasAVX512 = %v", f, hasAVX512)
	}
	if hasAVX2FMA != (has("avx2") && has("fma")) {
		t.Errorf("Features() = %q disagrees with hasAVX2FMA = %v", f, hasAVX2FMA)
	}
	if runtime.GOARCH == "amd64" && !has("avx2") {
		t.Logf("note: this amd64 CPU lacks AVX2 (%q); only the pure-Go GEMM is tested", f)
	}
}

// FuzzPackF32 packs a random small weight matrix and checks Gemm against the
// reference for every implementation. Entries are multiples of 1/4 in
// [-4, 4], so every partial sum is exact in float32 and the results must be
// bit-identical, whatever the summation order.
func FuzzPackF32(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), []byte{1, 2, 3})
	f.Add(uint8(33), uint8(17), uint8(13), uint8(15), []byte("seed for a 13x33x17 product"))
	f.Add(uint8(16), uint8(64), uint8(8), uint8(3), []byte{0xff, 0, 0x80, 7})
	f.Add(uint8(65), uint8(5), uint8(25), uint8(12), []byte{})
	f.Fuzz(func(t *testing.T, n8, k8, m8, flags uint8, data []byte) {
		n, k, m := int(n8)%70, int(k8)%70, int(m8)%30
		g := caseVariant(m, n, k, int(flags))
		pos := 0
		next := func() float32 {
			if len(data) == 0 {
				return 1
			}
			b := data[pos%len(data)] ^ byte(pos*31)
			pos++
			return float32(int(b%33)-16) / 4
		}
		w := make([]float32, n*k)
		for i := range w {
			w[i] = next()
		}
		a := make([]float32, max(0, (m-1)*g.lda+k))
		for i := range a {
			a[i] = next()
		}
		var bias []float32
		if g.bias {
			bias = make([]float32, n)
			for j := range bias {
				bias[j] = next()
			}
		}
		p := PackF32(w, n, k)
		if p.N != n || p.K != k {
			t.Fatalf("PackF32 dims %dx%d, want %dx%d", p.N, p.K, n, k)
		}
		if len(p.data) > 0 && uintptr(unsafe.Pointer(&p.data[0]))%64 != 0 {
			t.Fatalf("packed panels not 64-byte aligned: %p", &p.data[0])
		}
		want := make([]float32, max(0, (m-1)*g.ldc+n))
		sgemmGeneric(m, n, k, a, g.lda, w, k, want, g.ldc, bias, g.relu)
		defer keepActive(sgemms)()
		for _, name := range sgemms.names() {
			sgemms.set(name)
			got := make([]float32, len(want))
			p.Gemm(m, a, g.lda, got, g.ldc, bias, g.relu)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s %v: C[%d] = %v, want %v", name, g, i, got[i], want[i])
				}
			}
		}
	})
}

// TestGemmConcurrent runs Gemm from several goroutines on disjoint row
// ranges of one PackedF32, as the model's row-parallel forward pass does,
// with an aliasing lda so the pooled A copies are shared too (run with -race).
// Entries are small multiples of 1/4, so all sums are exact and the result
// must equal the reference bit for bit.
func TestGemmConcurrent(t *testing.T) {
	const m, n, k, lda, workers = 96, 70, 1000, 1024, 4
	rng := rand.New(rand.NewPCG(7, 8))
	q := func() float32 { return float32(rng.IntN(17)-8) / 4 }
	w := make([]float32, n*k)
	for i := range w {
		w[i] = q()
	}
	a := make([]float32, m*lda)
	for i := range a {
		a[i] = q()
	}
	bias := make([]float32, n)
	for j := range bias {
		bias[j] = q()
	}
	p := PackF32(w, n, k)
	want := make([]float32, m*n)
	sgemmGeneric(m, n, k, a, lda, w, k, want, n, bias, true)
	forEachImplOf(t, sgemms, func(t *testing.T) {
		got := make([]float32, m*n)
		done := make(chan struct{})
		for g := 0; g < workers; g++ {
			go func(g int) {
				defer func() { done <- struct{}{} }()
				r0, r1 := g*m/workers, (g+1)*m/workers
				for rep := 0; rep < 3; rep++ {
					p.Gemm(r1-r0, a[r0*lda:], lda, got[r0*n:], n, bias, true)
				}
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
