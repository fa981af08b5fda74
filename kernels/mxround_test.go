package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// RoundMX is QuantizeMX then DequantizeMX, bit for bit, on rows of every
// length (whole and partial blocks), and passes a block holding a NaN or an
// infinity through unchanged while rounding the other blocks.
func TestRoundMX(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	for _, f := range MXFormats {
		for _, n := range []int{1, 7, 31, 32, 33, 64, 100, 479} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(20)-10)))
			}
			scales := make([]byte, MXScales(n))
			codes := make([]byte, MXCodeBytes(f, n))
			if err := QuantizeMX(f, "x", x, scales, codes); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			DequantizeMX(f, scales, codes, want)
			got := append([]float32(nil), x...)
			RoundMX(f, got)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v n=%d: [%d] = %v, want %v (input %v)", f, n, i, got[i], want[i], x[i])
				}
			}
		}
		// A non-finite block passes through; the next block is rounded.
		x := make([]float32, 64)
		for i := range x {
			x[i] = 0.3 + float32(i)*0.01
		}
		x[5] = float32(math.NaN())
		x[9] = float32(math.Inf(-1))
		got := append([]float32(nil), x...)
		RoundMX(f, got)
		for i := 0; i < 32; i++ {
			if math.Float32bits(got[i]) != math.Float32bits(x[i]) {
				t.Fatalf("%v: non-finite block changed at %d: %v -> %v", f, i, x[i], got[i])
			}
		}
		want := append([]float32(nil), x[32:]...)
		s, c := make([]byte, 1), make([]byte, MXCodeBytes(f, 32))
		if err := QuantizeMX(f, "x", want, s, c); err != nil {
			t.Fatal(err)
		}
		DequantizeMX(f, s, c, want)
		for i := range want {
			if math.Float32bits(got[32+i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v: finite block after a non-finite one: [%d] = %v, want %v", f, 32+i, got[32+i], want[i])
			}
		}
	}
}
