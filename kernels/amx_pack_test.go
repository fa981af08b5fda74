package kernels

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestAMXPackLayout checks every byte of the packed int8 and bf16 weights
// against the layout's formula, zero padding included.
func TestAMXPackLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 3))
	for _, s := range [][2]int{{1, 1}, {13, 13}, {16, 64}, {17, 65}, {64, 128}, {65, 3}, {130, 97}} {
		n, k := s[0], s[1]
		w8 := make([]int8, n*k)
		wh := make([]uint16, n*k)
		for i := range w8 {
			w8[i] = int8(rng.IntN(256) - 128)
			wh[i] = uint16(rng.Uint32()) | 1
		}
		pi := newAMXWeightsI8(PackI8(w8, n, k, []float32{1}))
		pb := newAMXWeightsBF16(PackBF16(wh, n, k))
		np := (n + 63) / 64
		if want := np * ((k + 63) / 64) * 4096; len(pi.data) != want {
			t.Fatalf("%dx%d: int8 packing has %d bytes, want %d", n, k, len(pi.data), want)
		}
		if want := np * ((k + 31) / 32) * 4096; len(pb.data) != want {
			t.Fatalf("%dx%d: bf16 packing has %d bytes, want %d", n, k, len(pb.data), want)
		}
		// BA16a64b4a: [panel][K block][16 groups][64 columns][4 k].
		for off, v := range pi.data {
			panel, rest := off/(pi.kb*4096), off%(pi.kb*4096)
			kb, g, j, kk := rest/4096, rest%4096/256, rest%256/4, rest%4
			col, kIdx := 64*panel+j, 64*kb+4*g+kk
			want := byte(0)
			if col < n && kIdx < k {
				want = byte(w8[col*k+kIdx])
			}
			if v != want {
				t.Fatalf("%dx%d: int8 byte %d (column %d, k %d) = %d, want %d", n, k, off, col, kIdx, int8(v), int8(want))
			}
		}
		for off := 0; off < len(pb.data); off += 2 {
			panel, rest := off/(pb.kb*4096), off%(pb.kb*4096)
			kb, q, j, h := rest/4096, rest%4096/256, rest%256/4, rest%4/2
			col, kIdx := 64*panel+j, 32*kb+2*q+h
			want := uint16(0)
			if col < n && kIdx < k {
				want = wh[col*k+kIdx]
			}
			if v := binary.LittleEndian.Uint16(pb.data[off:]); v != want {
				t.Fatalf("%dx%d: bf16 half at byte %d (column %d, k %d) = %#x, want %#x", n, k, off, col, kIdx, v, want)
			}
		}
	}
}

// amxI8Shapes are the DLRM-like (N, K) pairs of the int8 model tests:
// 1..1024, non-multiples of 16 and 64, MLPerf's 13, 367 and 479.
var amxI8Shapes = [][2]int{{1, 1}, {13, 13}, {16, 64}, {17, 65}, {3, 200}, {64, 479}, {367, 479}, {479, 367},
	{1024, 13}, {13, 1024}, {1, 1024}, {256, 512}, {1024, 1024}}

// amxMaxMACs bounds a case's M·N·K: the model and the scalar reference
// take a few ns per multiply.
const amxMaxMACs = 140 << 20

// useAMXI8Model makes the tile-model GEMM the int8 family's active
// implementation until the returned function runs, so the int8 tests'
// harness (runI8Case: every output mode, guards, bit-for-bit reference)
// runs on it. An error of the model fails the test.
func useAMXI8Model(t *testing.T) func() {
	saved, savedActive := i8Gemms.impls, i8Gemms.active
	i8Gemms.impls = append(append([]impl[i8GemmFn](nil), saved...), impl[i8GemmFn]{name: "amxmodel", available: true,
		fn: func(p *PackedI8, m int, a []uint8, lda int, o *i8Out) {
			if err := amxGemmI8Model(p, newAMXWeightsI8(p), m, a, lda, o); err != nil {
				t.Fatal(err)
			}
		}})
	if !i8Gemms.set("amxmodel") {
		t.Fatal("cannot select the AMX model")
	}
	return func() { i8Gemms.impls, i8Gemms.active = saved, savedActive }
}

// TestAMXI8GemmModel runs the tile-model int8 GEMM on DLRM shapes (M = 1,
// 15, 16, 17, 128, 2048 across the 16- and 32-row tile blocks) in every
// output mode with guard regions around C and exact-length A (so a read
// past the last row's K is a model error), bit for bit against the
// scalar reference of the int8 tests.
func TestAMXI8GemmModel(t *testing.T) {
	defer useAMXI8Model(t)()
	rng := rand.New(rand.NewPCG(14, 4))
	modes := []string{"f32", "u8", "s32"}
	v := 0
	for _, m := range []int{1, 15, 16, 17, 128, 2048} {
		for _, s := range amxI8Shapes {
			n, k := s[0], s[1]
			if m*n*k > amxMaxMACs {
				continue
			}
			v++
			g := i8Case{m: m, n: n, k: k, lda: k + v%3*5, ldc: n + v%2*3, bias: v%2 == 0, relu: v%3 != 0,
				perRow: v%2 == 1, perChannel: v%4 != 3, mode: modes[v%3], extreme: v % 5 % 4}
			runI8Case(t, g, rng)
			if t.Failed() {
				return
			}
		}
	}
}

// TestAMXI8GemmAgrees compares the tile-model GEMM's float output, byte
// for byte, with every int8 implementation this CPU runs (the VNNI one
// here), at M = 2048 and M = 128 on shapes with K and N tails.
func TestAMXI8GemmAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 5))
	for _, s := range []struct{ m, n, k int }{{2048, 64, 479}, {2048, 367, 13}, {128, 479, 367}, {17, 1024, 1024}, {2048, 1, 256}} {
		w := make([]int8, s.n*s.k)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		sc := make([]float32, s.n)
		for i := range sc {
			sc[i] = rng.Float32()*0.01 + 1e-4
		}
		a := make([]uint8, s.m*s.k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		bias := make([]float32, s.n)
		for i := range bias {
			bias[i] = rng.Float32()*2 - 1
		}
		aq := ActQuant{Scale: 0.02, Zero: 117}
		p := PackI8(w, s.n, s.k, sc)
		run := func() []byte {
			c := make([]float32, s.m*s.n)
			p.Gemm(s.m, a, s.k, aq, c, s.n, bias, true)
			return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), 4*len(c))...)
		}
		restore := useAMXI8Model(t)
		want := run()
		restore()
		forEachImplOf(t, i8Gemms, func(t *testing.T) {
			if got := run(); !bytes.Equal(got, want) {
				t.Errorf("M=%d N=%d K=%d: %s differs from the AMX model", s.m, s.n, s.k, i8Gemms.name())
			}
		})
	}
}

// amxBF16Ref is the bf16 GEMM in the order the AMX blocking computes it,
// written per output element with no tiles or packing: C = bias; for each
// block of 32 k, even and odd sums from +0 by fused multiply-adds, their
// sum added to C; ReLU. The tile-model GEMM must equal it bit for bit.
func amxBF16Ref(wh []uint16, n, k, m int, ah []uint16, lda int, bias []float32, relu bool, i, j int) float32 {
	var c float32
	if bias != nil {
		c = bias[j]
	}
	for k0 := 0; k0 < k; k0 += 32 {
		var even, odd float32
		for kk := k0; kk < min(k0+32, k); kk++ {
			a, b := bf16DAZ(ah[i*lda+kk]), bf16DAZ(wh[j*k+kk])
			if kk%2 == 0 {
				even = amxFMA(even, a, b)
			} else {
				odd = amxFMA(odd, a, b)
			}
		}
		c = amxAdd(f32DAZ(c), amxAdd(even, odd))
	}
	if relu && c < 0 {
		c = 0
	}
	return c
}

// TestAMXBF16GemmModel checks the tile-model bf16 GEMM three ways: bit for
// bit against amxBF16Ref (the SDM's order per element: this checks the
// packing and blocking); within the bf16 GEMM's documented bound (sgemm's
// reordering bound) against the semantics, through checkLPCase's guards
// and poisoned A padding; and bit for bit against every bf16
// implementation of this CPU on data whose sums are exact (small
// integers), where the order of the fp32 sums cannot matter. In general it
// differs from them in that order: VDPBF16PS adds the odd product then the
// even one to one accumulator per pair; the emulations follow the fp32
// GEMMs' order.
func TestAMXBF16GemmModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 6))
	for ci, s := range []struct{ m, n, k int }{{1, 1, 1}, {15, 13, 13}, {16, 16, 64}, {17, 17, 65}, {33, 40, 31},
		{128, 64, 479}, {1, 1024, 1024}, {2048, 16, 32}, {37, 367, 96}, {16, 479, 100}} {
		g := caseVariant(s.m, s.n, s.k, ci)
		w := make([]float32, g.n*g.k)
		for i := range w {
			w[i] = rng.Float32()*2 - 1
		}
		wh := make([]uint16, len(w))
		F32ToBF16Slice(wh, w)
		ah := make([]uint16, (g.m-1)*g.lda+g.k)
		for i := range ah {
			ah[i] = 0x7fc1 // the gap between K and lda is NaN: it must not be read
		}
		for i := 0; i < g.m; i++ {
			for kk := 0; kk < g.k; kk++ {
				ah[i*g.lda+kk] = F32ToBF16(rng.Float32()*2 - 1)
			}
		}
		var bias []float32
		if g.bias {
			bias = make([]float32, g.n)
			for j := range bias {
				bias[j] = rng.Float32() - 0.5
			}
		}
		p := PackBF16(wh, g.n, g.k)
		c := make([]float32, (g.m-1)*g.ldc+g.n)
		if err := amxGemmBF16Model(p, newAMXWeightsBF16(p), g.m, bf16Src{h: ah, lda: g.lda}, c, g.ldc, bias, g.relu); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < g.m; i++ {
			for j := 0; j < g.n; j++ {
				want := amxBF16Ref(wh, g.n, g.k, g.m, ah, g.lda, bias, g.relu, i, j)
				if got := c[i*g.ldc+j]; math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("%v: C[%d][%d] = %v, want %v (the SDM's order)", g, i, j, got, want)
				}
			}
		}
	}

	amxLP := bf16LP
	amxLP.run = func(w []float32, n, k, m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool) {
		p := PackBF16FromF32(w, n, k)
		if err := amxGemmBF16Model(p, newAMXWeightsBF16(p), m, bf16Src{f: a, lda: lda}, c, ldc, bias, relu); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range gemmCases(true) {
		if g.m*g.n*g.k > 4<<20 {
			continue
		}
		checkLPCase(t, g, rng, amxLP)
		if t.Failed() {
			return
		}
	}

	for _, s := range []struct{ m, n, k int }{{17, 33, 65}, {64, 100, 479}, {3, 1024, 1024}} {
		w := make([]float32, s.n*s.k)
		a := make([]float32, s.m*s.k)
		for i := range w {
			w[i] = float32(rng.IntN(17) - 8)
		}
		for i := range a {
			a[i] = float32(rng.IntN(17) - 8)
		}
		bias := make([]float32, s.n)
		for i := range bias {
			bias[i] = float32(rng.IntN(100) - 50)
		}
		p := PackBF16FromF32(w, s.n, s.k)
		want := make([]float32, s.m*s.n)
		if err := amxGemmBF16Model(p, newAMXWeightsBF16(p), s.m, bf16Src{f: a, lda: s.k}, want, s.n, bias, true); err != nil {
			t.Fatal(err)
		}
		forEachImplOf(t, bf16Gemms, func(t *testing.T) {
			got := make([]float32, s.m*s.n)
			p.Gemm(s.m, a, s.k, got, s.n, bias, true)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("M=%d N=%d K=%d: %s C[%d] = %v, AMX model %v", s.m, s.n, s.k, bf16Gemms.name(), i, got[i], want[i])
				}
			}
		})
	}
}
