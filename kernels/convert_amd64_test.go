//go:build !purego

package kernels

import (
	"math"
	"testing"
)

// TestWidenF16x512: every half widens exactly as F16ToF32 does, but NaNs,
// which stay NaN; nothing past n is written.
func TestWidenF16x512(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	const n = 1 << 16
	src := make([]uint16, n)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, n+16)
	for i := n; i < len(dst); i++ {
		dst[i] = 42
	}
	widenF16x512(&dst[0], &src[0], n)
	for i, h := range src {
		want := F16ToF32(h)
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(dst[i])) {
				t.Fatalf("half %#04x: %v, want NaN", h, dst[i])
			}
			continue
		}
		if math.Float32bits(dst[i]) != math.Float32bits(want) {
			t.Fatalf("half %#04x: %v (%#08x), want %v (%#08x)", h, dst[i], math.Float32bits(dst[i]), want, math.Float32bits(want))
		}
	}
	for i := n; i < len(dst); i++ {
		if dst[i] != 42 {
			t.Fatalf("element %d past n written", i)
		}
	}
}
