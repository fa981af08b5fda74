package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// crossValue draws inputs that include the values whose rounding or
// propagation an implementation could get wrong: NaN, ±Inf, -0, subnormals,
// and products that round differently fused than unfused.
func crossValue(rng *rand.Rand) float32 {
	switch rng.IntN(16) {
	case 0:
		return float32(math.NaN())
	case 1:
		return float32(math.Inf(1 - 2*rng.IntN(2)))
	case 2:
		return float32(math.Copysign(0, -1))
	case 3:
		return math.Float32frombits(uint32(rng.IntN(1 << 23))) // subnormal
	default:
		return float32(rng.NormFloat64()) * (1 + 0x1p-20*float32(rng.IntN(1<<10)))
	}
}

// TestCrossUpdate checks every implementation bit for bit against the
// reference loop at every length up to 130 and at DCN's 3456, out of place
// and in place, and that nothing outside dst is written (guard regions).
func TestCrossUpdate(t *testing.T) {
	const guard = 24
	const sentinel = 0x7fc0dead
	forEachImplOf(t, crossUpdates, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		lengths := []int{3456, 3457}
		for n := 0; n <= 130; n++ {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			for _, inPlace := range []bool{false, true} {
				x0, y, xl := make([]float32, n), make([]float32, n), make([]float32, n)
				for j := range n {
					x0[j], y[j], xl[j] = crossValue(rng), crossValue(rng), crossValue(rng)
				}
				want := make([]float32, n)
				crossUpdateGeneric(want, x0, y, xl)
				buf := make([]float32, n+2*guard)
				for j := range buf {
					buf[j] = math.Float32frombits(sentinel)
				}
				dst := buf[guard : guard+n]
				xin := xl
				if inPlace {
					copy(dst, xl)
					xin = dst
				}
				CrossUpdate(dst, x0, y, xin)
				for j := range n {
					if math.Float32bits(dst[j]) != math.Float32bits(want[j]) {
						t.Fatalf("n %d in place %v: dst[%d] = %v (%#x), want %v (%#x) from %v*%v+%v", n, inPlace, j, dst[j], math.Float32bits(dst[j]), want[j], math.Float32bits(want[j]), x0[j], y[j], xl[j])
					}
				}
				for j := range buf {
					if (j < guard || j >= guard+n) && math.Float32bits(buf[j]) != sentinel {
						t.Fatalf("n %d: wrote outside dst at buffer offset %d", n, j)
					}
				}
			}
		}
	})
}

// TestCrossUpdateUnfused checks the reference itself rounds the product
// before adding: with x0*y = 1+2^-23 exactly representable only in a
// fused sum, the unfused result differs from math.FMA's.
func TestCrossUpdateUnfused(t *testing.T) {
	x0 := []float32{1 + 0x1p-12}
	y := []float32{1 + 0x1p-12}
	xl := []float32{-1}
	forEachImplOf(t, crossUpdates, func(t *testing.T) {
		dst := make([]float32, 1)
		CrossUpdate(dst, x0, y, xl)
		fused := float32(math.FMA(float64(x0[0]), float64(y[0]), float64(xl[0])))
		unfused := float32(x0[0]*y[0]) + xl[0]
		if fused == unfused {
			t.Fatal("test values do not tell fused from unfused")
		}
		if dst[0] != unfused {
			t.Errorf("CrossUpdate = %v, want the unfused %v (fused: %v)", dst[0], unfused, fused)
		}
	})
}

func TestCrossUpdateShortInput(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("CrossUpdate with a short input did not panic")
		}
	}()
	CrossUpdate(make([]float32, 4), make([]float32, 4), make([]float32, 3), make([]float32, 4))
}

func BenchmarkCrossUpdate(b *testing.B) {
	const n = 3456 * 96 // one cross layer of a 96-row chunk of MLPerf's DCN
	x0, y, xl := make([]float32, n), make([]float32, n), make([]float32, n)
	for j := range n {
		x0[j], y[j], xl[j] = float32(j%7), float32(j%5), float32(j%3)
	}
	defer keepActive(crossUpdates)()
	for _, name := range crossUpdates.names() {
		mustSet(b, crossUpdates, name)
		b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
			b.SetBytes(4 * 4 * n)
			for b.Loop() {
				CrossUpdate(xl, x0, y, xl)
			}
		})
	}
}
