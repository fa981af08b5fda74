package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// withQuantImpls runs f once with the assembly quantizers (if built and
// supported) and once with the Go ones.
func withQuantImpls(t *testing.T, f func(t *testing.T)) {
	saved := i8QuantAsm
	defer func() { i8QuantAsm = saved }()
	if saved {
		i8QuantAsm = true
		t.Run("asm", f)
	}
	i8QuantAsm = false
	t.Run("go", f)
}

// specialFloats are inputs the quantizers must handle exactly like the rule.
var specialFloats = []float32{0, float32(math.Copysign(0, -1)), 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, 254.5, 255.5,
	-127.5, 1e-30, -1e-30, 1e30, -1e30, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.NaN()), 511.5, 512.5, -511.5, -512.5, 8388608, 0.49999997, 1.0000001}

func TestI8RNE(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	vals := []float32{0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 4194304, -4194304, 4194303.5, 3.5, -3.5}
	for i := 0; i < 100000; i++ {
		vals = append(vals, (rng.Float32()*2-1)*float32(math.Pow(2, float64(rng.IntN(23)))))
		vals = append(vals, float32(rng.IntN(2000)-1000)+0.5)
	}
	for _, v := range vals {
		if got, want := i8RNE(v), float32(math.RoundToEven(float64(v))); got != want {
			t.Fatalf("i8RNE(%v) = %v, want %v", v, got, want)
		}
	}
}

func TestQuantizeU8(t *testing.T) {
	withQuantImpls(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 3))
		for n := 0; n < 300; n++ {
			x := make([]float32, n+7)
			for i := range x {
				switch rng.IntN(4) {
				case 0:
					x[i] = specialFloats[rng.IntN(len(specialFloats))]
				default:
					x[i] = (rng.Float32()*2 - 1) * 300
				}
			}
			scale := []float32{1, 0.5, 0.1, 2.5, 1e-3, 7}[n%6]
			zero := int32(rng.IntN(256))
			// dst has guards after x: exactly len(x) bytes are written.
			dst := make([]uint8, n+16)
			for i := range dst {
				dst[i] = 0xA5
			}
			QuantizeU8(x[:n], scale, zero, dst[:n])
			for i := 0; i < n; i++ {
				if want := i8RefQuant(x[i], 1/scale, zero); dst[i] != want {
					t.Fatalf("n=%d scale=%v zero=%d: q(%v) = %d, want %d", n, scale, zero, x[i], dst[i], want)
				}
			}
			for i := n; i < len(dst); i++ {
				if dst[i] != 0xA5 {
					t.Fatalf("n=%d: byte %d past the end written", n, i)
				}
			}
		}
	})
}

// TestQuantRoundTrip checks |dequant(quant(x)) - x| <= scale/2 inside the
// representable range, plus the rounding error of x·(1/scale) (a few ulps).
func TestQuantRoundTrip(t *testing.T) {
	withQuantImpls(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(4, 5))
		for trial := 0; trial < 200; trial++ {
			lo := -rng.Float32() * float32(math.Pow(10, float64(rng.IntN(6)-3)))
			hi := rng.Float32() * float32(math.Pow(10, float64(rng.IntN(6)-3)))
			scale, zero := ChooseQParamsU8(lo, hi, trial%2 == 0)
			x := make([]float32, 257)
			for i := range x {
				x[i] = lo + (hi-lo)*rng.Float32()
			}
			x[0], x[1] = lo, hi
			q := make([]uint8, len(x))
			QuantizeU8(x, scale, zero, q)
			y := make([]float32, len(x))
			DequantizeU8(q, scale, zero, y)
			for i := range x {
				// The representable range is [(0-zero)·scale, (qmax-zero)·scale] ⊇ [lo, hi].
				bound := float64(scale)/2*(1+1e-5) + 1e-6*math.Abs(float64(x[i]))
				if d := math.Abs(float64(y[i]) - float64(x[i])); d > bound {
					t.Fatalf("range [%v,%v] scale %v zero %d: x=%v -> q=%d -> %v, error %v > %v", lo, hi, scale, zero, x[i], q[i], y[i], d, bound)
				}
			}
			// Zero is exactly representable.
			QuantizeU8([]float32{0}, scale, zero, q[:1])
			if int32(q[0]) != zero {
				t.Fatalf("0 quantizes to %d, zero point %d", q[0], zero)
			}
		}
	})
}

// TestChooseQParamsU8 checks values worked out by hand from PyTorch's
// ChooseQuantizationParams (aten/src/ATen/native/quantized/cpu/QuantUtils.h).
func TestChooseQParamsU8(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		min, max float32
		reduce   bool
		scale    float32
		zero     int32
	}{
		{-1, 1, false, float32(2.0 / 255), 128}, // zero = 127.5, rounded half to even
		{-1, 1, true, float32(2.0 / 127), 64},   // qmax 127: 63.5 -> 64
		{0, 0, false, 0.1, 0},                   // degenerate range: scale 0.1
		{0, 25.5, false, 0.1, 0},
		{-25.5, 0, false, 0.1, 255},
		{2, 3, false, float32(3.0 / 255), 0},         // range extended to include 0
		{-3, -2, false, float32(3.0 / 255), 255},     // likewise
		{0, 1e-7, false, 6.1e-5, 0},                  // small scale raised to 6.1e-5
		{-1e-7, 0, false, 6.1e-5, 255},               // ... with max = 0
		{-1e-7, 1e-7, false, 6.1e-5, 128},            // ... amplified range, zero from the midpoint
		{-0.25, 0.75, false, float32(1.0 / 255), 64}, // 63.75 -> 64
		{nan, 1, false, float32(1.0 / 255), 0},       // NaN bound ignored
		{-1, nan, false, float32(1.0 / 255), 255},    // NaN bound ignored
		{5, 3, false, float32(3.0 / 255), 0},         // min > max: both extended with 0, so [0, 3]
	} {
		s, z := ChooseQParamsU8(c.min, c.max, c.reduce)
		if s != c.scale || z != c.zero {
			t.Errorf("ChooseQParamsU8(%v, %v, %v) = %v, %d; want %v, %d", c.min, c.max, c.reduce, s, z, c.scale, c.zero)
		}
	}
	// Infinite bounds: a finite scale, and Inf saturates.
	s, z := ChooseQParamsU8(-inf, inf, false)
	if math.IsInf(float64(s), 0) || s <= 0 || z < 0 || z > 255 {
		t.Fatalf("ChooseQParamsU8(-Inf, Inf) = %v, %d", s, z)
	}
	q := make([]uint8, 3)
	QuantizeU8([]float32{-inf, inf, nan}, s, z, q)
	if q[0] != 0 || q[1] != 255 || q[2] != 0 {
		t.Fatalf("quantized -Inf, Inf, NaN = %v, want [0 255 0]", q)
	}
}

func TestQuantizeRowsDynamicU8(t *testing.T) {
	withQuantImpls(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(6, 7))
		for _, mk := range [][2]int{{1, 1}, {3, 13}, {17, 64}, {5, 100}, {64, 479}, {2, 0}, {0, 5}} {
			m, k := mk[0], mk[1]
			ldx, ldd := k+3, k+5
			for _, perRow := range []bool{false, true} {
				for _, reduce := range []bool{false, true} {
					x := make([]float32, max(0, (m-1)*ldx+k))
					for i := range x {
						x[i] = float32(rng.NormFloat64()) * 3
						if rng.IntN(50) == 0 {
							x[i] = specialFloats[rng.IntN(len(specialFloats))]
						}
					}
					dst := make([]uint8, max(0, (m-1)*ldd+k))
					for i := range dst {
						dst[i] = 0xA5
					}
					dst2 := append([]uint8(nil), dst...)
					aq := QuantizeRowsDynamicU8(x, m, k, ldx, dst, ldd, perRow, reduce)
					if perRow != (aq.RowScale != nil) || (perRow && (len(aq.RowScale) != m || len(aq.RowZero) != m)) {
						t.Fatalf("m=%d perRow=%v: ActQuant %+v", m, perRow, aq)
					}
					if perRow {
						// The To form: the same bytes and parameters, into given slices.
						sc, zp := make([]float32, m+1), make([]int32, m+1)
						sc[m], zp[m] = -7, -7
						QuantizeRowsDynamicU8To(x, m, k, ldx, dst2, ldd, reduce, sc, zp)
						if string(dst2) != string(dst) || sc[m] != -7 || zp[m] != -7 {
							t.Fatalf("m=%d k=%d: QuantizeRowsDynamicU8To differs from QuantizeRowsDynamicU8 or wrote past m", m, k)
						}
						for i := range m {
							if sc[i] != aq.RowScale[i] || zp[i] != aq.RowZero[i] {
								t.Fatalf("m=%d k=%d row %d: To gives %v,%d, want %v,%d", m, k, i, sc[i], zp[i], aq.RowScale[i], aq.RowZero[i])
							}
						}
					}
					// Reference: min/max (NaN ignored, 0 included) then the rule.
					var glo, ghi float64
					for i := 0; i < m; i++ {
						for j := 0; j < k; j++ {
							v := float64(x[i*ldx+j])
							glo, ghi = math.Min(glo, v), math.Max(ghi, v)
						}
					}
					for i := 0; i < m; i++ {
						lo, hi := glo, ghi
						s, z := aq.Scale, aq.Zero
						if perRow {
							lo, hi = 0, 0
							for j := 0; j < k; j++ {
								if v := float64(x[i*ldx+j]); !math.IsNaN(v) {
									lo, hi = math.Min(lo, v), math.Max(hi, v)
								}
							}
							s, z = aq.RowScale[i], aq.RowZero[i]
						}
						if ws, wz := ChooseQParamsU8(float32(lo), float32(hi), reduce); ws != s || wz != z {
							t.Fatalf("m=%d k=%d perRow=%v row %d: params %v,%d want %v,%d", m, k, perRow, i, s, z, ws, wz)
						}
						for j := 0; j < ldd && i*ldd+j < len(dst); j++ {
							got := dst[i*ldd+j]
							if j >= k {
								if got != 0xA5 {
									t.Fatalf("gap byte %d of row %d written", j, i)
								}
								continue
							}
							if want := i8RefQuant(x[i*ldx+j], 1/s, z); got != want {
								t.Fatalf("m=%d k=%d perRow=%v: q[%d][%d] of %v = %d, want %d", m, k, perRow, i, j, x[i*ldx+j], got, want)
							}
						}
					}
				}
			}
		}
	})
}

func TestActMinMax(t *testing.T) {
	if !i8QuantAsm {
		t.Skip("no assembly min/max on this build or CPU")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for n := 0; n < 200; n++ {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			if rng.IntN(10) == 0 {
				x[i] = specialFloats[rng.IntN(len(specialFloats))]
			}
		}
		l1, h1 := actMinMaxAsm(x)
		l2, h2 := actMinMaxGo(x)
		if l1 != l2 || h1 != h2 {
			t.Fatalf("n=%d: asm %v,%v go %v,%v", n, l1, h1, l2, h2)
		}
	}
}

func TestQuantizeWeightsI8(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	n, k := 7, 33
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * float32(1+i/k)
	}
	for j := 0; j < k; j++ {
		w[3*k+j] = 0 // a zero channel
	}
	w[5*k+2] = float32(math.NaN())
	w[5*k+3] = float32(math.Inf(-1))
	for _, perChannel := range []bool{true, false} {
		q, scale := QuantizeWeightsI8(w, n, k, perChannel)
		if perChannel && len(scale) != n || !perChannel && len(scale) != 1 {
			t.Fatalf("perChannel=%v: %d scales", perChannel, len(scale))
		}
		for j := 0; j < n; j++ {
			s := scale[0]
			if perChannel {
				s = scale[j]
			}
			var mx float32
			for kk := 0; kk < k; kk++ {
				if v := w[j*k+kk]; !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) {
					mx = max(mx, float32(math.Abs(float64(v))))
				}
			}
			if perChannel && j == 3 && (s != 1) {
				t.Fatalf("zero channel scale %v, want 1", s)
			}
			if perChannel && j != 3 && s != mx/127 {
				t.Fatalf("channel %d scale %v, want max|w|/127 = %v", j, s, mx/127)
			}
			for kk := 0; kk < k; kk++ {
				v, qv := w[j*k+kk], q[j*k+kk]
				if qv < -127 {
					t.Fatalf("q = %d below -127", qv)
				}
				var want int8
				switch {
				case math.IsNaN(float64(v)):
					want = 0
				default:
					want = int8(max(-127, min(127, math.RoundToEven(float64(float32(v*(1/s)))))))
				}
				if qv != want {
					t.Fatalf("perChannel=%v w[%d][%d] = %v: q %d, want %d", perChannel, j, kk, v, qv, want)
				}
				if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
					if d := math.Abs(float64(qv)*float64(s) - float64(v)); d > float64(s)/2*(1+1e-5) {
						t.Fatalf("w=%v q=%d scale=%v: error %v", v, qv, s, d)
					}
				}
			}
		}
	}
}

// FuzzQuantizeU8 quantizes arbitrary float bit patterns with arbitrary
// scales: never a panic, the assembly and Go versions agree, and both match
// the float64 reference.
func FuzzQuantizeU8(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f, 1, 2, 3, 4}, uint32(0x3f800000), uint8(128))
	f.Add([]byte{0, 0, 0x80, 0x7f, 0, 0, 0x80, 0xff}, uint32(0x00000001), uint8(0))
	f.Add([]byte{}, uint32(0x7f800000), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, scaleBits uint32, zero uint8) {
		x := make([]float32, len(data)/4)
		for i := range x {
			x[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		scale := math.Float32frombits(scaleBits)
		saved := i8QuantAsm
		defer func() { i8QuantAsm = saved }()
		var first []uint8
		for _, useAsm := range []bool{saved, false} {
			i8QuantAsm = useAsm
			q := make([]uint8, len(x))
			QuantizeU8(x, scale, int32(zero), q)
			for i := range x {
				if want := i8RefQuant(x[i], 1/scale, int32(zero)); q[i] != want {
					t.Fatalf("asm=%v q(%v / %v + %d) = %d, want %d", useAsm, x[i], scale, zero, q[i], want)
				}
			}
			if first != nil && string(first) != string(q) {
				t.Fatal("asm and Go differ")
			}
			first = q
			// Dynamic quantization of the same data never panics and gives
			// valid parameters.
			if len(x) > 0 {
				dst := make([]uint8, len(x))
				aq := QuantizeRowsDynamicU8(x, 1, len(x), len(x), dst, len(x), false, zero%2 == 0)
				if !(aq.Scale > 0) || math.IsInf(float64(aq.Scale), 0) || aq.Zero < 0 || aq.Zero > 255 {
					t.Fatalf("dynamic params %v, %d", aq.Scale, aq.Zero)
				}
			}
		}
	})
}

// FuzzChooseQParamsU8: any bounds give a positive finite scale, a zero
// point in range, and 0 quantizing exactly to the zero point.
func FuzzChooseQParamsU8(f *testing.F) {
	f.Add(uint32(0xbf800000), uint32(0x3f800000), false)
	f.Add(uint32(0x7fc00000), uint32(0x7f800000), true)
	f.Add(uint32(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, lob, hib uint32, reduce bool) {
		lo, hi := math.Float32frombits(lob), math.Float32frombits(hib)
		s, z := ChooseQParamsU8(lo, hi, reduce)
		qmax := int32(255)
		if reduce {
			qmax = 127
		}
		if !(s > 0) || math.IsInf(float64(s), 0) || math.IsInf(float64(1/s), 0) || z < 0 || z > qmax {
			t.Fatalf("ChooseQParamsU8(%v, %v, %v) = %v, %d", lo, hi, reduce, s, z)
		}
		if q := quantU8(0, 1/s, z); int32(q) != z {
			t.Fatalf("0 quantizes to %d, zero point %d", q, z)
		}
	})
}
