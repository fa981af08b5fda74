package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// convTestF32 returns float32 bit patterns that exercise every rounding
// path of the narrowing conversions: signed zeros, float32 subnormals,
// values around the fp16 subnormal/normal/overflow boundaries, exact ties
// and their neighbours for both fp16 (13 or more dropped bits) and bf16 (16
// dropped bits), infinities, quiet and signalling NaNs with payloads, and
// random patterns.
func convTestF32(rng *rand.Rand) []uint32 {
	var v []uint32
	add := func(b uint32) { v = append(v, b, b|0x80000000) }
	for _, b := range []uint32{0, 1, 2, 0x7fff, 0x8000, 0x8001, 0x18000, 0x007fffff, 0x00800000,
		0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f800000, 0x7f800001, 0x7fbfffff, 0x7fc00000, 0x7fffffff,
		0x7f802000, 0x7f801fff, 0x477fe000, 0x477fefff, 0x477ff000, 0x38800000, 0x387fffff, 0x33000000,
		0x33000001, 0x32ffffff, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f800000} {
		add(b)
	}
	// Every exponent, with mantissas at and around the tie points of every
	// fp16 shift (13 for normals, up to 24 for subnormals) and of bf16 (16).
	for e := uint32(0); e < 256; e++ {
		for shift := 13; shift <= 24; shift++ {
			half := uint32(1) << (shift - 1)
			for _, low := range []uint32{half - 1, half, half + 1} {
				for _, hi := range []uint32{0, 1, 2, 3, 0x3ff} {
					m := (hi<<shift | low) & 0x7fffff
					add(e<<23 | m)
				}
			}
		}
		for i := 0; i < 64; i++ {
			add(e<<23 | rng.Uint32()&0x7fffff)
		}
	}
	for i := 0; i < 1<<16; i++ {
		v = append(v, rng.Uint32())
	}
	return v
}

func TestF32ToF16Slice(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	bits := convTestF32(rng)
	// A strided sweep over all 2^32 patterns adds every exponent and sign
	// with varied low bits (4M values).
	for b := uint64(0); b < 1<<32; b += 1021 {
		bits = append(bits, uint32(b))
	}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	dst := make([]uint16, len(src)+1)
	dst[len(src)] = 0xabcd
	F32ToF16Slice(dst[:len(src)], src)
	for i, f := range src {
		if want := F32ToF16(f); dst[i] != want {
			t.Fatalf("F32ToF16Slice(%#08x) = %#04x, F32ToF16 = %#04x", bits[i], dst[i], want)
		}
	}
	if dst[len(src)] != 0xabcd {
		t.Error("F32ToF16Slice wrote past len(src)")
	}
	checkConvTails(t, func(d []uint16, s []float32) { F32ToF16Slice(d, s) }, F32ToF16)
}

func TestF16ToF32Slice(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	F16ToF32Slice(dst, src)
	for i, h := range src {
		if got, want := math.Float32bits(dst[i]), math.Float32bits(F16ToF32(h)); got != want {
			t.Fatalf("F16ToF32Slice(%#04x) = %#08x, F16ToF32 = %#08x", h, got, want)
		}
	}
	// Odd lengths and offsets: the scalar tail and unaligned starts.
	for n := 0; n < 40; n++ {
		for off := 0; off < 3; off++ {
			d := make([]float32, n+1)
			d[n] = 42
			F16ToF32Slice(d[:n], src[0x7bf0+off:0x7bf0+off+n])
			for i := 0; i < n; i++ {
				if math.Float32bits(d[i]) != math.Float32bits(F16ToF32(src[0x7bf0+off+i])) {
					t.Fatalf("n=%d off=%d: element %d wrong", n, off, i)
				}
			}
			if d[n] != 42 {
				t.Fatalf("n=%d: wrote past len(src)", n)
			}
		}
	}
}

func TestF32ToBF16Slice(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	bits := convTestF32(rng)
	for b := uint64(0); b < 1<<32; b += 1021 {
		bits = append(bits, uint32(b))
	}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	dst := make([]uint16, len(src))
	F32ToBF16Slice(dst, src)
	for i, f := range src {
		if want := F32ToBF16(f); dst[i] != want {
			t.Fatalf("F32ToBF16Slice(%#08x) = %#04x, F32ToBF16 = %#04x", bits[i], dst[i], want)
		}
	}
	checkConvTails(t, func(d []uint16, s []float32) { F32ToBF16Slice(d, s) }, F32ToBF16)
}

func TestBF16ToF32Slice(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src)+1)
	dst[len(src)] = 7
	BF16ToF32Slice(dst[:len(src)], src)
	for i, h := range src {
		if got, want := math.Float32bits(dst[i]), math.Float32bits(BF16ToF32(h)); got != want {
			t.Fatalf("BF16ToF32Slice(%#04x) = %#08x, want %#08x", h, got, want)
		}
	}
	if dst[len(src)] != 7 {
		t.Error("BF16ToF32Slice wrote past len(src)")
	}
}

// checkConvTails checks a narrowing slice converter on every length 0..40
// (SIMD body plus scalar tail) and that it writes nothing past len(src).
func checkConvTails(t *testing.T, conv func([]uint16, []float32), scalar func(float32) uint16) {
	t.Helper()
	rng := rand.New(rand.NewPCG(15, 16))
	for n := 0; n <= 40; n++ {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		dst := make([]uint16, n+2)
		dst[n], dst[n+1] = 0x5a5a, 0x5a5a
		conv(dst[:n], src)
		for i := range src {
			if dst[i] != scalar(src[i]) {
				t.Fatalf("n=%d: element %d = %#04x, want %#04x", n, i, dst[i], scalar(src[i]))
			}
		}
		if dst[n] != 0x5a5a || dst[n+1] != 0x5a5a {
			t.Fatalf("n=%d: wrote past len(src)", n)
		}
	}
}

func TestConvSlicePanics(t *testing.T) {
	mustPanic(t, "F32ToF16Slice short dst", func() { F32ToF16Slice(make([]uint16, 2), make([]float32, 3)) })
	mustPanic(t, "F16ToF32Slice short dst", func() { F16ToF32Slice(make([]float32, 2), make([]uint16, 3)) })
	mustPanic(t, "F32ToBF16Slice short dst", func() { F32ToBF16Slice(make([]uint16, 2), make([]float32, 3)) })
	mustPanic(t, "BF16ToF32Slice short dst", func() { BF16ToF32Slice(make([]float32, 0), make([]uint16, 1)) })
	// Longer dst is fine and untouched past len(src); empty is a no-op.
	d := []uint16{9, 9, 9}
	F32ToBF16Slice(d, []float32{1})
	F32ToF16Slice(nil, nil)
	if d[0] != 0x3f80 || d[1] != 9 {
		t.Errorf("got %v", d)
	}
}
