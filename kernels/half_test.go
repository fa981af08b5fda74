package kernels

import (
	"math"
	"testing"
)

// TestF16RoundTrip checks every binary16 value widens and narrows back to itself.
func TestF16RoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			if F32ToF16(f)&0x7c00 != 0x7c00 || F32ToF16(f)&0x3ff == 0 {
				t.Fatalf("NaN %#04x narrowed to non-NaN %#04x", h, F32ToF16(f))
			}
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)=%g) = %#04x", h, f, got)
		}
	}
}

// TestF32ToF16Rounding checks nearest-even rounding against a float64 reference:
// the result must be the representable half nearest to f, ties to even.
func TestF32ToF16Rounding(t *testing.T) {
	vals := []float32{0, 1, -1, 65504, 65519.99, 65520, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, 0.1, 1.0009765625 + 0.00048828125, 3.14159, -2.5e-6}
	for i := 0; i < 200000; i++ {
		vals = append(vals, math.Float32frombits(uint32(i)*21473+0x30000000))
	}
	for _, f := range vals {
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			if math.Abs(float64(f)) < 65520 {
				t.Fatalf("%g overflowed to %#04x", f, h)
			}
			continue
		}
		// Neighbours of h must not be strictly closer.
		for _, d := range []int{-1, 1} {
			nb := int(h&0x7fff) + d
			if nb < 0 || nb >= 0x7c00 {
				continue
			}
			n := float64(F16ToF32(uint16(nb) | h&0x8000))
			if math.Abs(n-float64(f)) < math.Abs(got-float64(f)) {
				t.Fatalf("F32ToF16(%g) = %g, but %g is closer", f, got, n)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81},
		{float32(math.Inf(-1)), 0xff80},
	}
	for _, c := range cases {
		if got := F32ToBF16(c.f); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(c.f), got, c.want)
		}
		if c.f == BF16ToF32(c.want) && F32ToBF16(BF16ToF32(c.want)) != c.want {
			t.Errorf("bf16 round trip of %#04x", c.want)
		}
	}
	if !math.IsNaN(float64(BF16ToF32(F32ToBF16(float32(math.NaN()))))) {
		t.Error("NaN lost in bf16")
	}
}
