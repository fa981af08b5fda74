package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// i8Sentinel fills every float C element the GEMM must not write: a
// signalling-NaN bit pattern no computation yields.
const i8Sentinel = 0x7fa5a5a5

// i8RefAcc is the plain reference accumulator: Σ_k a[i][k]·w[j][k] in
// int64, which must fit int32 for the shapes PackI8 accepts.
func i8RefAcc(t testing.TB, a []uint8, lda int, w []int8, k, i, j int) int32 {
	var s int64
	for kk := 0; kk < k; kk++ {
		s += int64(a[i*lda+kk]) * int64(w[j*k+kk])
	}
	if s != int64(int32(s)) {
		t.Fatalf("reference sum %d overflows int32", s)
	}
	return int32(s)
}

// i8RefFloat is the documented epilogue, written out independently of
// i8Dequant: every step in float32, rounded once, no fusion.
func i8RefFloat(acc, az, colSum int32, as, ws, bias float32, relu bool) float32 {
	t := int32(int64(acc) - int64(az)*int64(colSum))
	s := as * ws
	y := float32(t)
	y = float32(y * s)
	y = float32(y + bias)
	if relu && y < 0 {
		y = 0
	}
	return y
}

// i8RefQuant is the package rule computed in float64 with math.RoundToEven.
func i8RefQuant(y, inv float32, zero int32) uint8 {
	t := float64(float32(y * inv))
	var r float64
	switch {
	case math.IsNaN(t):
		return 0
	case t > 1e6:
		r = 1e6
	case t < -1e6:
		r = -1e6
	default:
		r = math.RoundToEven(t)
	}
	return uint8(max(0, min(255, r+float64(zero))))
}

// i8Case is one GEMM problem with its guard layout and output mode.
type i8Case struct {
	m, n, k, lda, ldc int
	bias, relu        bool
	perRow            bool
	perChannel        bool
	mode              string // "f32", "u8", "s32"
	extreme           int    // 0: random; 1: a=255, w=-128; 2: a=255, w=127; 3: a=0..255 ramp, w=±128/127
}

func (g i8Case) String() string {
	return fmt.Sprintf("M=%d,N=%d,K=%d,lda=%d,ldc=%d,bias=%v,relu=%v,perRow=%v,perChan=%v,%s,x%d",
		g.m, g.n, g.k, g.lda, g.ldc, g.bias, g.relu, g.perRow, g.perChannel, g.mode, g.extreme)
}

// runI8Case runs the active implementation on g and checks every output
// element bit for bit against the reference, and the guards around C.
func runI8Case(t *testing.T, g i8Case, rng *rand.Rand) {
	t.Helper()
	w := make([]int8, g.n*g.k)
	for i := range w {
		switch g.extreme {
		case 1:
			w[i] = -128
		case 2:
			w[i] = 127
		case 3:
			w[i] = []int8{-128, 127}[rng.IntN(2)]
		default:
			w[i] = int8(rng.IntN(256) - 128)
		}
	}
	nscale := 1
	if g.perChannel {
		nscale = g.n
	}
	wscale := make([]float32, nscale)
	for i := range wscale {
		wscale[i] = rng.Float32()*0.02 + 1e-4
	}
	alen := 0
	if g.m > 0 {
		alen = (g.m-1)*g.lda + g.k
	}
	// The gap between K and lda holds 0xEE: the kernels must ignore it.
	abuf := make([]uint8, alen)
	for i := range abuf {
		abuf[i] = 0xEE
	}
	for i := 0; i < g.m; i++ {
		for kk := 0; kk < g.k; kk++ {
			v := uint8(rng.IntN(256))
			switch g.extreme {
			case 1, 2:
				v = 255
			case 3:
				v = uint8((i + kk) * 37)
			}
			abuf[i*g.lda+kk] = v
		}
	}
	acopy := append([]uint8(nil), abuf...)
	aq := ActQuant{Scale: rng.Float32()*0.1 + 1e-3, Zero: int32(rng.IntN(256))}
	if g.perRow {
		aq.RowScale = make([]float32, g.m)
		aq.RowZero = make([]int32, g.m)
		for i := range aq.RowScale {
			aq.RowScale[i] = rng.Float32()*0.1 + 1e-3
			aq.RowZero[i] = int32(rng.IntN(256))
		}
	}
	var bias []float32
	if g.bias {
		bias = make([]float32, g.n)
		for j := range bias {
			bias[j] = rng.Float32()*20 - 10
		}
	}
	outScale, outZero := rng.Float32()*2+0.05, int32(rng.IntN(256))
	p := PackI8(w, g.n, g.k, wscale)

	const pre, post = 37, 41
	clen := 0
	if g.m > 0 {
		clen = (g.m-1)*g.ldc + g.n
	}
	written := func(idx int) bool {
		if idx < pre || idx >= pre+clen {
			return false
		}
		return (idx-pre)%g.ldc < g.n
	}
	ref := func(i, j int) (acc int32, y float32) {
		acc = i8RefAcc(t, abuf, g.lda, w, g.k, i, j)
		var cs int32
		for kk := 0; kk < g.k; kk++ {
			cs += int32(w[j*g.k+kk])
		}
		az, as := aq.Zero, aq.Scale
		if g.perRow {
			az, as = aq.RowZero[i], aq.RowScale[i]
		}
		var b float32
		if bias != nil {
			b = bias[j]
		}
		return acc, i8RefFloat(acc, az, cs, as, wscale[j%nscale], b, g.relu)
	}
	switch g.mode {
	case "s32":
		cbuf := make([]int32, pre+clen+post)
		for i := range cbuf {
			cbuf[i] = 0x7fa5a5a5
		}
		p.GemmS32(g.m, abuf, g.lda, cbuf[pre:pre+clen], g.ldc)
		for idx, v := range cbuf {
			if !written(idx) {
				if v != 0x7fa5a5a5 {
					t.Fatalf("%v: guard element %d overwritten with %d", g, idx-pre, v)
				}
				continue
			}
			i, j := (idx-pre)/g.ldc, (idx-pre)%g.ldc
			if want, _ := ref(i, j); v != want {
				t.Fatalf("%v: C[%d][%d] = %d, want %d", g, i, j, v, want)
			}
		}
	case "f32":
		cbuf := make([]float32, pre+clen+post)
		for i := range cbuf {
			cbuf[i] = math.Float32frombits(i8Sentinel)
		}
		p.Gemm(g.m, abuf, g.lda, aq, cbuf[pre:pre+clen], g.ldc, bias, g.relu)
		for idx, v := range cbuf {
			if !written(idx) {
				if math.Float32bits(v) != i8Sentinel {
					t.Fatalf("%v: guard element %d overwritten with %v", g, idx-pre, v)
				}
				continue
			}
			i, j := (idx-pre)/g.ldc, (idx-pre)%g.ldc
			if _, want := ref(i, j); math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("%v: C[%d][%d] = %v (%#x), want %v (%#x)", g, i, j, v, math.Float32bits(v), want, math.Float32bits(want))
			}
		}
	case "u8":
		cbuf := make([]uint8, pre+clen+post)
		for i := range cbuf {
			cbuf[i] = 0xA5
		}
		p.GemmU8(g.m, abuf, g.lda, aq, cbuf[pre:pre+clen], g.ldc, bias, g.relu, outScale, outZero)
		for idx, v := range cbuf {
			if !written(idx) {
				if v != 0xA5 {
					t.Fatalf("%v: guard byte %d overwritten with %d", g, idx-pre, v)
				}
				continue
			}
			i, j := (idx-pre)/g.ldc, (idx-pre)%g.ldc
			_, y := ref(i, j)
			if want := i8RefQuant(y, 1/outScale, outZero); v != want {
				t.Fatalf("%v: C[%d][%d] = %d, want %d (y = %v)", g, i, j, v, want, y)
			}
		}
	}
	for i := range abuf {
		if abuf[i] != acopy[i] {
			t.Fatalf("%v: A modified at %d", g, i)
		}
	}
}

// TestI8GemmShapes covers M, N, K over 1..67 (K not a multiple of 4, 16 or
// 64; N across panel and 8-column edges; M across the 12- and 6-row blocks)
// in every output mode, for every implementation.
func TestI8GemmShapes(t *testing.T) {
	ms := []int{1, 2, 3, 5, 6, 7, 11, 12, 13, 24, 25, 37, 67}
	ns := []int{1, 3, 4, 7, 8, 9, 16, 17, 31, 32, 33, 47, 64, 67}
	ks := []int{1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 31, 63, 64, 65, 67}
	if testing.Short() {
		ms, ns, ks = []int{1, 7, 13, 25}, []int{1, 9, 33, 67}, []int{1, 3, 4, 17, 67}
	}
	forEachImplOf(t, i8Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		modes := []string{"s32", "f32", "u8"}
		c := 0
		for _, m := range ms {
			for _, n := range ns {
				for _, k := range ks {
					c++
					g := i8Case{m: m, n: n, k: k, lda: k + c%3, ldc: n + c%2*5,
						bias: c%4 != 0, relu: c%3 == 0, perRow: c%5 < 2, perChannel: c%7 != 0, mode: modes[c%3]}
					runI8Case(t, g, rng)
				}
			}
		}
	})
}

// TestI8GemmDLRM runs the DLRM MLP shapes at the batch sizes the model uses.
func TestI8GemmDLRM(t *testing.T) {
	shapes := [][2]int{{512, 13}, {256, 512}, {64, 256}, {16, 64}, {512, 367}, {1, 256}, {1024, 479}, {1024, 1024}}
	forEachImplOf(t, i8Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for si, s := range shapes {
			for mi, m := range []int{1, 13, 100} {
				if testing.Short() && s[0]*s[1] > 300000 && m > 1 {
					continue
				}
				for _, mode := range []string{"s32", "f32", "u8"} {
					runI8Case(t, i8Case{m: m, n: s[0], k: s[1], lda: s[1], ldc: s[0], bias: true, relu: si%2 == 0,
						perRow: mi == 1, perChannel: true, mode: mode}, rng)
				}
			}
		}
	})
}

// TestI8GemmExtremes proves the accumulation cannot saturate: all-255
// activations against -128 or 127 weights (the largest products of either
// sign), up to K = MaxI8K where the sum is within 1% of the int32 limit.
// VPMADDUBSW would saturate its 16-bit pair sums here; the AVX2 path widens
// to 16 bits and uses VPMADDWD instead.
func TestI8GemmExtremes(t *testing.T) {
	forEachImplOf(t, i8Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, k := range []int{1, 2, 3, 4, 5, 63, 64, 255, 1024, 4099} {
			for ex := 1; ex <= 3; ex++ {
				for _, mode := range []string{"s32", "f32", "u8"} {
					// N = 33 runs the panel kernels, N = 3 the dot-product one.
					runI8Case(t, i8Case{m: 13, n: 33, k: k, lda: k, ldc: 33, bias: true, perChannel: true, mode: mode, extreme: ex}, rng)
					runI8Case(t, i8Case{m: 70, n: 3, k: k, lda: k + 1, ldc: 4, bias: true, relu: true, mode: mode, extreme: ex}, rng)
				}
			}
		}
		// K = MaxI8K: 255 * -128 * 65536 = -2139095040, just inside int32.
		const k = MaxI8K
		w := make([]int8, 2*k)
		for i := range w[:k] {
			w[i] = -128
		}
		for i := range w[k:] {
			w[k+i] = 127
		}
		a := make([]uint8, 3*k)
		for i := range a {
			a[i] = 255
		}
		c := make([]int32, 3*2)
		PackI8(w, 2, k, []float32{1}).GemmS32(3, a, k, c, 2)
		for i := 0; i < 3; i++ {
			if c[2*i] != -2139095040 || c[2*i+1] != 255*127*k {
				t.Fatalf("K=MaxI8K row %d: got %d, %d; want %d, %d", i, c[2*i], c[2*i+1], -2139095040, 255*127*k)
			}
		}
	})
}

// TestI8GemmImplsAgree checks that all implementations produce bit-identical
// float and u8 outputs on the same random problem (the reference test
// already implies it; this states it directly, including special scales).
func TestI8GemmImplsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m, n, k := 29, 75, 93
	w := make([]int8, n*k)
	for i := range w {
		w[i] = int8(rng.IntN(256) - 128)
	}
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	scales := make([]float32, n)
	for j := range scales {
		scales[j] = rng.Float32() * 0.01
	}
	// Special cases: a zero scale, a huge one (products overflow to Inf),
	// an infinite and a NaN one.
	scales[0], scales[1], scales[2], scales[3] = 0, 3e38, float32(math.Inf(1)), float32(math.NaN())
	bias := make([]float32, n)
	for j := range bias {
		bias[j] = rng.Float32() - 0.5
	}
	bias[4] = float32(math.Inf(-1))
	p := PackI8(w, n, k, scales)
	aq := ActQuant{Scale: 0.05, Zero: 3}
	defer keepActive(i8Gemms)()
	var f0 []float32
	var u0 []uint8
	for _, name := range i8Gemms.names() {
		i8Gemms.set(name)
		for _, relu := range []bool{false, true} {
			f := make([]float32, m*n)
			u := make([]uint8, m*n)
			p.Gemm(m, a, k, aq, f, n, bias, relu)
			p.GemmU8(m, a, k, aq, u, n, bias, relu, 0.7, 128)
			if relu {
				continue
			}
			if f0 == nil {
				f0, u0 = f, u
				continue
			}
			for i := range f {
				same := math.Float32bits(f[i]) == math.Float32bits(f0[i]) || (f[i] != f[i] && f0[i] != f0[i])
				if !same || u[i] != u0[i] {
					t.Fatalf("%s differs from %s at %d: %v/%d vs %v/%d", name, i8Gemms.names()[0], i, f[i], u[i], f0[i], u0[i])
				}
			}
		}
	}
}

// TestI8GemmRowAlign checks GemmRowAlign for the int8 GEMM: any split of M
// gives bit-identical rows (the int8 results do not even depend on the
// position of a row within the call).
func TestI8GemmRowAlign(t *testing.T) {
	forEachImplOf(t, i8Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		const m, n, k = 61, 45, 37
		w := make([]int8, n*k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		a := make([]uint8, m*k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		aq := ActQuant{RowScale: make([]float32, m), RowZero: make([]int32, m)}
		for i := range aq.RowScale {
			aq.RowScale[i], aq.RowZero[i] = rng.Float32()*0.1, int32(rng.IntN(256))
		}
		p := PackI8(w, n, k, []float32{0.01})
		full := make([]float32, m*n)
		p.Gemm(m, a, k, aq, full, n, nil, true)
		for lo := 0; lo < m; lo += 5 {
			for _, hi := range []int{m, min(lo+GemmRowAlign, m), min(lo+7, m)} {
				part := make([]float32, (hi-lo)*n)
				sub := ActQuant{RowScale: aq.RowScale[lo:hi], RowZero: aq.RowZero[lo:hi]}
				p.Gemm(hi-lo, a[lo*k:], k, sub, part, n, nil, true)
				for i := range part {
					if math.Float32bits(part[i]) != math.Float32bits(full[lo*n+i]) {
						t.Fatalf("rows [%d,%d) element %d: %v, whole call %v", lo, hi, i, part[i], full[lo*n+i])
					}
				}
			}
		}
	})
}

// TestI8GemmK0 checks the empty sum: the result is the dequantized zero.
func TestI8GemmK0(t *testing.T) {
	p := PackI8(nil, 3, 0, []float32{2})
	c := make([]float32, 2*3)
	p.Gemm(2, nil, 0, ActQuant{Scale: 1, Zero: 5}, c, 3, []float32{1, -2, 3}, true)
	if want := []float32{1, 0, 3, 1, 0, 3}; fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("K=0: got %v, want %v", c, want)
	}
	u := make([]uint8, 3)
	p.GemmU8(1, nil, 0, ActQuant{Scale: 1}, u, 3, []float32{1, -2, 3}, false, 0.5, 10)
	if want := []uint8{12, 6, 16}; fmt.Sprint(u) != fmt.Sprint(want) {
		t.Fatalf("K=0 u8: got %v, want %v", u, want)
	}
}

// TestPackI8 checks the packed layout, the column sums and the scales.
func TestPackI8(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, nk := range [][2]int{{1, 1}, {5, 3}, {33, 17}, {64, 64}, {67, 5}} {
		n, k := nk[0], nk[1]
		w := make([]int8, n*k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		sc := make([]float32, n)
		for i := range sc {
			sc[i] = float32(i + 1)
		}
		p := PackI8(w, n, k, sc)
		cs := p.ColSums()
		for j := 0; j < n; j++ {
			var s int32
			for kk := 0; kk < k; kk++ {
				if got := p.Weight(j, kk); got != w[j*k+kk] {
					t.Fatalf("n=%d k=%d: Weight(%d,%d) = %d, want %d", n, k, j, kk, got, w[j*k+kk])
				}
				s += int32(w[j*k+kk])
			}
			if cs[j] != s {
				t.Fatalf("n=%d k=%d: ColSums[%d] = %d, want %d", n, k, j, cs[j], s)
			}
		}
		// Padding (k >= K, columns >= N) is zero.
		for j := 0; j < (n+31)/32*32; j++ {
			for kk := 0; kk < p.kp; kk++ {
				if (j >= n || kk >= k) && p.Weight(j, kk) != 0 {
					t.Fatalf("n=%d k=%d: padding Weight(%d,%d) = %d", n, k, j, kk, p.Weight(j, kk))
				}
			}
		}
		if got := p.Scales(); fmt.Sprint(got) != fmt.Sprint(sc) {
			t.Fatalf("Scales() = %v, want %v", got, sc)
		}
		if got := PackI8(w, n, k, []float32{3}).Scales(); got[n-1] != 3 {
			t.Fatalf("per-tensor scale not broadcast: %v", got)
		}
	}
}

func TestI8Panics(t *testing.T) {
	p := PackI8(make([]int8, 6), 2, 3, []float32{1})
	for name, f := range map[string]func(){
		"short w":    func() { PackI8(make([]int8, 5), 2, 3, []float32{1}) },
		"scales":     func() { PackI8(make([]int8, 6), 2, 3, []float32{1, 2, 3}) },
		"K too big":  func() { PackI8(nil, 0, MaxI8K+1, []float32{1}) },
		"lda":        func() { p.GemmS32(1, make([]uint8, 3), 2, make([]int32, 2), 2) },
		"short a":    func() { p.GemmS32(2, make([]uint8, 5), 3, make([]int32, 4), 2) },
		"short c":    func() { p.GemmS32(2, make([]uint8, 6), 3, make([]int32, 3), 2) },
		"short bias": func() { p.Gemm(1, make([]uint8, 3), 3, ActQuant{}, make([]float32, 2), 2, []float32{1}, false) },
		"short row q": func() {
			p.Gemm(2, make([]uint8, 6), 3, ActQuant{RowScale: []float32{1}, RowZero: []int32{1}}, make([]float32, 4), 2, nil, false)
		},
		"bad out zero": func() { p.GemmU8(1, make([]uint8, 3), 3, ActQuant{}, make([]uint8, 2), 2, nil, false, 1, 256) },
		"quant zero":   func() { QuantizeU8([]float32{1}, 1, -1, make([]uint8, 1)) },
		"quant dst":    func() { QuantizeU8([]float32{1, 2}, 1, 0, make([]uint8, 1)) },
		"dynamic dims": func() { QuantizeRowsDynamicU8(make([]float32, 4), 2, 2, 1, make([]uint8, 4), 2, false, false) },
		"dynamic dst":  func() { QuantizeRowsDynamicU8(make([]float32, 4), 2, 2, 2, make([]uint8, 3), 2, false, false) },
		"dynamic to params": func() {
			QuantizeRowsDynamicU8To(make([]float32, 4), 2, 2, 2, make([]uint8, 4), 2, false, make([]float32, 1), make([]int32, 2))
		},
		"weights":        func() { QuantizeWeightsI8(make([]float32, 5), 2, 3, true) },
		"dequantize dst": func() { DequantizeU8(make([]uint8, 2), 1, 0, make([]float32, 1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzPackI8 packs arbitrary weights and checks the layout round trip, the
// column sums, and the GEMM (every implementation) against the reference.
func FuzzPackI8(f *testing.F) {
	f.Add(uint8(3), uint8(5), []byte{1, 2, 3, 255, 128, 127, 0, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add(uint8(33), uint8(7), []byte{})
	f.Add(uint8(1), uint8(1), []byte{0x80})
	f.Fuzz(func(t *testing.T, nb, kb uint8, data []byte) {
		n, k := int(nb)%70, int(kb)%70
		w := make([]int8, n*k)
		for i := range w {
			if len(data) > 0 {
				w[i] = int8(data[i%len(data)] ^ byte(i/len(data)))
			}
		}
		p := PackI8(w, n, k, []float32{0.5})
		for j := 0; j < n; j++ {
			var s int32
			for kk := 0; kk < k; kk++ {
				if p.Weight(j, kk) != w[j*k+kk] {
					t.Fatalf("Weight(%d,%d) = %d, want %d", j, kk, p.Weight(j, kk), w[j*k+kk])
				}
				s += int32(w[j*k+kk])
			}
			if p.colSum[j] != s {
				t.Fatalf("colSum[%d] = %d, want %d", j, p.colSum[j], s)
			}
		}
		const m = 14
		a := make([]uint8, m*k)
		for i := range a {
			if len(data) > 0 {
				a[i] = data[(i*7)%len(data)]
			}
		}
		defer keepActive(i8Gemms)()
		for _, name := range i8Gemms.names() {
			i8Gemms.set(name)
			c := make([]int32, m*n)
			p.GemmS32(m, a, k, c, n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					if want := i8RefAcc(t, a, k, w, k, i, j); c[i*n+j] != want {
						t.Fatalf("%s: C[%d][%d] = %d, want %d", name, i, j, c[i*n+j], want)
					}
				}
			}
		}
	})
}
