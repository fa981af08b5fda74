//go:build !purego

package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// Unit tests of the BYTE-encoded AVX512_BF16 instructions against Go
// references of their Intel SDM pseudo-code, on crafted inputs. They skip
// on CPUs without AVX512_BF16 (the instructions would fault).

func requireBF16(t *testing.T) {
	t.Helper()
	if !hasAVX512BF16 {
		t.Skip("CPU lacks AVX512_BF16")
	}
}

// fmaF32 is round-to-nearest-even(a*b + c) to float32, computed exactly.
func fmaF32(a, b, c float32) float32 {
	fa, fb, fc := float64(a), float64(b), float64(c)
	if math.IsInf(fa, 0) || math.IsNaN(fa) || math.IsInf(fb, 0) || math.IsNaN(fb) || math.IsInf(fc, 0) || math.IsNaN(fc) {
		return float32(fa*fb + fc) // specials: IEEE rules, no rounding involved
	}
	x := new(big.Float).SetPrec(1000).SetFloat64(fa)
	x.Mul(x, new(big.Float).SetFloat64(fb))
	x.Add(x, new(big.Float).SetFloat64(fc))
	r, _ := x.Float32()
	if r == 0 && x.Sign() != 0 {
		r = float32(math.Copysign(0, float64(x.Sign())))
	}
	return r
}

// ftz flushes a float32 subnormal to a signed zero.
func ftz(f float32) float32 {
	if b := math.Float32bits(f); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return f
}

// refDPBF16PS is the SDM's VDPBF16PS for one lane: the odd pair's product
// is accumulated first, then the even one, each as an FMA rounded to nearest
// even with DAZ inputs and an FTZ result.
func refDPBF16PS(acc float32, a0, a1, b0, b1 uint16) float32 {
	acc = ftz(fmaF32(bf16DAZ(a1), bf16DAZ(b1), ftz(acc)))
	return ftz(fmaF32(bf16DAZ(a0), bf16DAZ(b0), acc))
}

func TestVDPBF16PS(t *testing.T) {
	requireBF16(t)
	rng := rand.New(rand.NewPCG(31, 32))
	bf := func(f float64) uint16 { return uint16(math.Float32bits(float32(f)) >> 16) }
	type lane struct {
		acc            float32
		a0, a1, b0, b1 uint16
	}
	var lanes []lane
	// Crafted: order matters (big odd product cancels acc before the even
	// one lands), ties of the accumulation, subnormal inputs, results in the
	// subnormal range, Inf/NaN.
	lanes = append(lanes,
		lane{1, bf(0x1p-24), bf(1), bf(1), bf(-1)},                              // 1 - 1 then + 2^-24: exact 2^-24
		lane{1, bf(1), bf(0x1p-24), bf(-1), bf(1)},                              // + 2^-24 (tie, to even: 1) then - 1: 0
		lane{1, bf(0x1p-24), bf(0x1p-23), bf(1), bf(1)},                         // 1 + 2^-23 then + 2^-24: tie to even
		lane{0x1p-100, bf(0x1p-30), bf(0x1p-30), bf(0x1p-70), 0},                // subnormal product 2^-100 * ... -> flushed
		lane{0, 0x0001, 0x3f80, 0x3f80, 0x0040},                                 // subnormal bf16 inputs read as zero
		lane{0x1p-126, 0, bf(-0x1p-100), 0, bf(0x1.8p-27)},                      // 2^-126 - 1.5*2^-127 = 2^-128: flushed to +0
		lane{0x1p-126, bf(-0x1p-100), 0, bf(0x1.8p-27), 0},                      // same in the even (last) step
		lane{0x1p-126, bf(0x1p-100), bf(-0x1p-100), bf(0x1p-26), bf(0x1.8p-27)}, // odd step flushed, then + 2^-126
		lane{0x1p-120, bf(-0x1p-121), 0, bf(1), 0},                              // stays normal: 2^-121
		lane{0, bf(math.Inf(1)), 0, bf(1), 0},
		lane{0, bf(math.Inf(1)), 0, 0, 0},                  // Inf * 0 = NaN
		lane{float32(math.NaN()), bf(1), 0, bf(1), 0},      // NaN accumulator propagates
		lane{0, 0x7fc1, bf(2), bf(1), bf(3)},               // NaN input
		lane{math.Float32frombits(0x00000001), 0, 0, 0, 0}, // subnormal accumulator read as zero
		lane{3e38, bf(3e38), bf(1), bf(1e0), bf(1e0)},      // overflow to Inf
	)
	for len(lanes)%16 != 0 || len(lanes) < 16*4000 {
		r := func() uint16 {
			return bf(rng.NormFloat64() * math.Ldexp(1, rng.IntN(60)-30))
		}
		lanes = append(lanes, lane{float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(60)-30)), r(), r(), r(), r()})
	}
	for base := 0; base < len(lanes); base += 16 {
		var acc [16]float32
		var a, b [32]uint16
		for i := 0; i < 16; i++ {
			l := lanes[base+i]
			acc[i], a[2*i], a[2*i+1], b[2*i], b[2*i+1] = l.acc, l.a0, l.a1, l.b0, l.b1
		}
		vdpbf16ps16(&acc, &a, &b)
		for i := 0; i < 16; i++ {
			l := lanes[base+i]
			want := refDPBF16PS(l.acc, l.a0, l.a1, l.b0, l.b1)
			got := acc[i]
			if math.Float32bits(got) != math.Float32bits(want) && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
				t.Fatalf("lane %d: VDPBF16PS(acc=%g, a=(%#04x,%#04x), b=(%#04x,%#04x)) = %g (%#08x), reference %g (%#08x)",
					base+i, l.acc, l.a0, l.a1, l.b0, l.b1, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

// TestBF16CvtRows checks the A conversion (VCVTNE2PS2BF16 for 32-float
// chunks and tails over 16, VCVTNEPS2BF16 for tails up to 16) against the
// SDM rounding (f32ToBF16Hw) on the crafted values of convTestF32, for
// every tail length: zero padding up to the next even K, no read past K
// (NaN-poisoned gap), no write past round_up(K, 32).
func TestBF16CvtRows(t *testing.T) {
	requireBF16(t)
	rng := rand.New(rand.NewPCG(33, 34))
	vals := convTestF32(rng)
	// Reference checks of the reference: the SDM cases.
	for _, c := range []struct{ in, out uint32 }{{0x00000001, 0}, {0x807fffff, 0x8000}, {0x7f800001, 0x7fc0},
		{0xff800000, 0xff80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x7f7fffff, 0x7f80}, {0x00800000, 0x0080}} {
		if got := f32ToBF16Hw(math.Float32frombits(c.in)); uint32(got) != c.out {
			t.Fatalf("f32ToBF16Hw(%#08x) = %#04x, want %#04x", c.in, got, c.out)
		}
	}
	for _, k := range []int{1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100, 1000} {
		const rows = 5
		lds, ldd := k+3, (k+31)&^31+32
		src := make([]float32, rows*lds)
		for i := range src {
			src[i] = float32(math.NaN())
		}
		for r := 0; r < rows; r++ {
			for kk := 0; kk < k; kk++ {
				src[r*lds+kk] = math.Float32frombits(vals[rng.IntN(len(vals))])
			}
		}
		dst := make([]uint16, rows*ldd)
		for i := range dst {
			dst[i] = 0xdead
		}
		bf16CvtRows(&dst[0], ldd, &src[0], lds, k, rows)
		for r := 0; r < rows; r++ {
			for kk := 0; kk < ldd; kk++ {
				got := dst[r*ldd+kk]
				switch {
				case kk < k:
					if want := f32ToBF16Hw(src[r*lds+kk]); got != want {
						t.Fatalf("k=%d row %d: %#08x -> %#04x, want %#04x", k, r, math.Float32bits(src[r*lds+kk]), got, want)
					}
				case kk < (k+1)&^1:
					if got != 0 {
						t.Fatalf("k=%d row %d: pad half %d = %#04x, want 0", k, r, kk, got)
					}
				case kk >= (k+31)&^31:
					if got != 0xdead {
						t.Fatalf("k=%d row %d: wrote half %d past round_up(k, 32)", k, r, kk)
					}
				}
			}
		}
	}
}
