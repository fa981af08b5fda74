package kernels

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// amxConfigure loads a palette-1 configuration with the given (rows,
// colsb) per tile into x, failing the test on an error.
func amxConfigure(t *testing.T, x *amxModel, shapes map[int][2]int) {
	t.Helper()
	cfg := amxTileCfg{Palette: 1}
	for n, s := range shapes {
		cfg.Rows[n], cfg.Colsb[n] = uint8(s[0]), uint16(s[1])
	}
	b := cfg.Bytes()
	if err := x.ldtilecfg(b[:], 0); err != nil {
		t.Fatal(err)
	}
}

func TestAMXTileCfgLayout(t *testing.T) {
	cfg := amxTileCfg{Palette: 1, StartRow: 3}
	cfg.Colsb[0], cfg.Rows[0] = 64, 16
	cfg.Colsb[7], cfg.Rows[7] = 0x0102, 9
	b := cfg.Bytes()
	// The SDM's layout: palette, start_row, 14 reserved, colsb[16] words, rows[16] bytes.
	want := map[int]byte{0: 1, 1: 3, 16: 64, 17: 0, 30: 0x02, 31: 0x01, 48: 16, 55: 9}
	for i, v := range b {
		if v != want[i] {
			t.Errorf("byte %d = %#x, want %#x", i, v, want[i])
		}
	}
}

func TestAMXTileCfgRefused(t *testing.T) {
	base := func() [64]byte {
		c := amxTileCfg{Palette: 1}
		c.Rows[0], c.Colsb[0] = 16, 64
		return c.Bytes()
	}
	cases := []struct {
		name string
		edit func(b *[64]byte)
		msg  string
	}{
		{"palette 2", func(b *[64]byte) { b[0] = 2 }, "palette 2"},
		{"reserved byte", func(b *[64]byte) { b[9] = 1 }, "reserved byte 9"},
		{"colsb 65", func(b *[64]byte) { b[16] = 65 }, "colsb 65"},
		{"colsb 256", func(b *[64]byte) { b[16], b[17] = 0, 1 }, "colsb 256"},
		{"rows 17", func(b *[64]byte) { b[48] = 17 }, "17 rows"},
		{"rows without colsb", func(b *[64]byte) { b[49] = 4 }, "tile 1 has rows 4 and colsb 0"},
		{"colsb without rows", func(b *[64]byte) { b[18] = 4 }, "tile 1 has rows 0 and colsb 4"},
		{"tile 8 colsb", func(b *[64]byte) { b[32] = 4 }, "tile 8"},
		{"tile 15 rows", func(b *[64]byte) { b[63] = 1 }, "tile 15"},
	}
	for _, c := range cases {
		b := base()
		c.edit(&b)
		var x amxModel
		amxConfigure(t, &x, map[int][2]int{2: {1, 4}})
		err := x.ldtilecfg(b[:], 0)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "#GP") {
			t.Errorf("%s: err = %v, want a #GP naming %q", c.name, err, c.msg)
		}
		// A refused configuration leaves the previous one in place.
		if _, err := x.tile("T", 2); err != nil {
			t.Errorf("%s: the previous configuration was lost: %v", c.name, err)
		}
	}
	var x amxModel
	if err := x.ldtilecfg(make([]byte, 63), 0); err == nil {
		t.Error("LDTILECFG of 63 bytes succeeded")
	}
	// Palette 0 is the init state: tile instructions then fault.
	amxConfigure(t, &x, map[int][2]int{0: {16, 64}})
	if err := x.ldtilecfg(make([]byte, 64), 0); err != nil {
		t.Fatal(err)
	}
	if err := x.tilezero(0); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("TILEZERO after palette 0: %v, want not configured", err)
	}
}

func TestAMXLoadStore(t *testing.T) {
	var x amxModel
	amxConfigure(t, &x, map[int][2]int{0: {3, 12}, 1: {16, 64}})
	mem := make([]byte, 200)
	for i := range mem {
		mem[i] = byte(i)
	}
	// Fill tile 0 with junk first: the load must zero what it does not set.
	x.t[0].data[5][5], x.t[0].data[1][40] = 0xAA, 0xBB
	if err := x.tileloadd(0, mem, 7, 50); err != nil {
		t.Fatal(err)
	}
	for r := 0; r < amxMaxRows; r++ {
		for c := 0; c < amxMaxColsb; c++ {
			want := byte(0)
			if r < 3 && c < 12 {
				want = byte(7 + 50*r + c)
			}
			if got := x.t[0].data[r][c]; got != want {
				t.Fatalf("tile 0 [%d][%d] = %d, want %d", r, c, got, want)
			}
		}
	}
	out := make([]byte, 200)
	for i := range out {
		out[i] = 0xEE
	}
	if err := x.tilestored(out, 1, 20, 0); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		want := byte(0xEE)
		if r, c := (i-1)/20, (i-1)%20; i >= 1 && r < 3 && c < 12 {
			want = byte(7 + 50*r + c)
		}
		if v != want {
			t.Fatalf("stored byte %d = %#x, want %#x", i, v, want)
		}
	}
	// Stride 0 repeats one row (the bias broadcast of the bf16 GEMM).
	if err := x.tileloadd(1, mem, 100, 0); err != nil {
		t.Fatal(err)
	}
	if x.t[1].data[15][63] != mem[163] || x.t[1].data[0][0] != mem[100] {
		t.Error("stride-0 load did not repeat the row")
	}
	// Out of memory: the last row's last byte is one past the end.
	if err := x.tileloadd(0, mem, 200-12-2*50+1, 50); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("over-read: %v, want an error naming row 2", err)
	}
	if err := x.tileloadd(0, mem, -1, 50); err == nil {
		t.Error("negative offset accepted")
	}
	if err := x.tilestored(out, 200-12-2*20+1, 20, 0); err == nil {
		t.Error("over-write accepted")
	}
	if err := x.tileloadd(2, mem, 0, 0); err == nil || !strings.Contains(err.Error(), "#UD") {
		t.Errorf("load into an unconfigured tile: %v", err)
	}
	if err := x.tileloadd(8, mem, 0, 0); err == nil {
		t.Error("load into tile 8 accepted")
	}
	x.tilerelease()
	if err := x.tileloadd(0, mem, 0, 0); err == nil {
		t.Error("load after TILERELEASE accepted")
	}
}

// TestAMXTDPBUSD checks TDPBUSD against the formula on random tiles of
// every K and several M, N, with A's bytes unsigned and B's signed, the
// int32 sum wrapping, and the bytes past C's shape zeroed.
func TestAMXTDPBUSD(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	for _, mr := range []int{1, 7, 16} {
		for _, nd := range []int{1, 5, 16} {
			for kd := 1; kd <= 16; kd++ {
				var x amxModel
				amxConfigure(t, &x, map[int][2]int{0: {mr, 4 * nd}, 1: {mr, 4 * kd}, 2: {kd, 4 * nd}})
				for r := range amxMaxRows {
					for c := range amxMaxColsb {
						x.t[1].data[r][c] = byte(rng.Uint32())
						x.t[2].data[r][c] = byte(rng.Uint32())
						x.t[0].data[r][c] = byte(rng.Uint32())
					}
				}
				if kd == 16 {
					// Wraparound: start C near the int32 limit.
					binary.LittleEndian.PutUint32(x.t[0].data[0][:], math.MaxInt32)
					for c := 0; c < 64; c++ {
						x.t[1].data[0][c], x.t[2].data[c/4][c%4] = 255, 127
					}
				}
				c0 := x.t[0].data
				if err := x.tdpbusd(0, 1, 2); err != nil {
					t.Fatal(err)
				}
				for m := range amxMaxRows {
					for n := range amxMaxN {
						got := int32(binary.LittleEndian.Uint32(x.t[0].data[m][4*n:]))
						var want int32
						if m < mr && n < nd {
							want = int32(binary.LittleEndian.Uint32(c0[m][4*n:]))
							for k := 0; k < kd; k++ {
								for i := 0; i < 4; i++ {
									want += int32(x.t[1].data[m][4*k+i]) * int32(int8(x.t[2].data[k][4*n+i]))
								}
							}
						}
						if got != want {
							t.Fatalf("M=%d N=%d K=%d: C[%d][%d] = %d, want %d", mr, nd, kd, m, n, got, want)
						}
					}
				}
				if kd == 16 && binary.LittleEndian.Uint32(x.t[0].data[0][:]) < 1<<31 && nd >= 1 {
					t.Fatalf("C[0][0] did not wrap: %d", int32(binary.LittleEndian.Uint32(x.t[0].data[0][:])))
				}
			}
		}
	}
}

func TestAMXMatmulChecks(t *testing.T) {
	cases := []struct {
		shapes     map[int][2]int
		d, s1, s2  int
		msg        string
		okBF16Also bool
	}{
		{map[int][2]int{0: {16, 64}, 1: {16, 64}, 2: {16, 64}}, 0, 1, 2, "", true},
		{map[int][2]int{0: {16, 64}, 1: {16, 64}}, 0, 0, 1, "must differ", false},
		{map[int][2]int{0: {16, 64}, 1: {16, 64}}, 0, 1, 2, "tile 2, which is not configured", false},
		{map[int][2]int{0: {16, 60}, 1: {16, 64}, 2: {16, 64}}, 0, 1, 2, "N mismatch", false},
		{map[int][2]int{0: {8, 64}, 1: {16, 64}, 2: {16, 64}}, 0, 1, 2, "M mismatch", false},
		{map[int][2]int{0: {16, 64}, 1: {16, 64}, 2: {15, 64}}, 0, 1, 2, "K mismatch", false},
		{map[int][2]int{0: {16, 62}, 1: {16, 64}, 2: {16, 62}}, 0, 1, 2, "not a multiple of 4", false},
		{map[int][2]int{0: {4, 8}, 1: {4, 12}, 2: {3, 8}}, 0, 1, 2, "", true},
	}
	for i, c := range cases {
		for _, op := range []func(x *amxModel) error{
			func(x *amxModel) error { return x.tdpbusd(c.d, c.s1, c.s2) },
			func(x *amxModel) error { return x.tdpbf16ps(c.d, c.s1, c.s2) },
		} {
			var x amxModel
			amxConfigure(t, &x, c.shapes)
			err := op(&x)
			if c.msg == "" {
				if err != nil {
					t.Errorf("case %d: %v", i, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "#UD") {
				t.Errorf("case %d: err = %v, want a #UD naming %q", i, err, c.msg)
			}
		}
	}
	var x amxModel
	if err := x.tdpbusd(0, 1, 2); err == nil {
		t.Error("TDPBUSD with no configuration accepted")
	}
}

// bf16Tiles configures C (tile 0, 1 x 1 dword), A (tile 1, 1 row of kd
// pairs) and B (tile 2, kd rows of one pair) and loads them.
func bf16Tiles(t *testing.T, c float32, a, b []uint16) *amxModel {
	t.Helper()
	kd := len(a) / 2
	var x amxModel
	amxConfigure(t, &x, map[int][2]int{0: {1, 4}, 1: {1, 4 * kd}, 2: {kd, 4}})
	binary.LittleEndian.PutUint32(x.t[0].data[0][:], math.Float32bits(c))
	for i, v := range a {
		binary.LittleEndian.PutUint16(x.t[1].data[0][2*i:], v)
	}
	for k := 0; k < kd; k++ {
		binary.LittleEndian.PutUint16(x.t[2].data[k][0:], b[2*k])
		binary.LittleEndian.PutUint16(x.t[2].data[k][2:], b[2*k+1])
	}
	return &x
}

func bf(f float32) uint16 { return uint16(math.Float32bits(f) >> 16) }

// TestAMXTDPBF16PSRules checks, on hand-made cases whose results follow
// from the SDM's rules, the order of the sums (even and odd elements apart,
// then added, then added to C), the rounding to nearest even of each step,
// DAZ on bf16 and C inputs, and FTZ after rounding.
func TestAMXTDPBF16PSRules(t *testing.T) {
	p24, p63 := float32(0x1p24), float32(0x1p-63)
	cases := []struct {
		name string
		c    float32
		a, b []uint16
		want float32
	}{
		// even: 2^24 + 1 -> 2^24 (tie to even); odd: 1 - 2^24 exact;
		// sum 1. A sequential sum (2^24, +1, +1, -2^24) would give 0.
		{"even/odd order", 0, []uint16{bf(1), bf(1), bf(1), bf(1)}, []uint16{bf(p24), bf(1), bf(1), bf(-p24)}, 1},
		// The pair sum is added to C last: C = 2^24, pair sum 1 + 1 = 2.
		{"C last", p24, []uint16{bf(1), bf(1)}, []uint16{bf(1), bf(1)}, p24 + 2},
		// 2^24 + 1 in C rounds to even.
		{"C rounds", p24, []uint16{bf(1), 0}, []uint16{bf(1), 0}, p24},
		// A bf16 subnormal reads as zero.
		{"DAZ bf16", 1, []uint16{0x0001, 0}, []uint16{bf(0x1p100), 0}, 1},
		// An fp32 subnormal C reads as zero: 0 + 0 = +0, not the subnormal.
		{"DAZ C", math.Float32frombits(5), []uint16{0, 0}, []uint16{0, 0}, 0},
		// 2^-63·2^-63 = 2^-126, then + (-2^-75·2^-75) = 2^-126 - 2^-150:
		// exactly (1-2^-24)·2^-126, tiny, flushed to +0.
		{"FTZ", 0, []uint16{bf(p63), bf(1), bf(0x1p-75), 0}, []uint16{bf(p63), 0, bf(-0x1p-75), 0}, 0},
		// 2^-126 - 2^-151 is the midpoint, rounds (to even) to 2^-126: kept.
		{"FTZ boundary", 0, []uint16{bf(p63), 0, bf(0x1p-75), 0}, []uint16{bf(p63), 0, bf(-0x1p-76), 0}, 0x1p-126},
		// A product below 2^-126 flushes with its sign; -0 + +0 = +0 in C.
		{"tiny product", 0, []uint16{bf(-0x1p-70), 0}, []uint16{bf(0x1p-70), 0}, 0},
		{"overflow", 0, []uint16{bf(0x1p127), bf(0x1p127)}, []uint16{bf(4), bf(4)}, float32(math.Inf(1))},
	}
	for _, c := range cases {
		x := bf16Tiles(t, c.c, c.a, c.b)
		if err := x.tdpbf16ps(0, 1, 2); err != nil {
			t.Fatal(err)
		}
		got := math.Float32frombits(binary.LittleEndian.Uint32(x.t[0].data[0][:]))
		if math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("%s: C = %v (%#x), want %v (%#x)", c.name, got, math.Float32bits(got), c.want, math.Float32bits(c.want))
		}
	}
	x := bf16Tiles(t, 1, []uint16{0x7fc0, 0}, []uint16{bf(1), 0})
	if err := x.tdpbf16ps(0, 1, 2); err != nil {
		t.Fatal(err)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(x.t[0].data[0][:])); !math.IsNaN(float64(got)) {
		t.Errorf("NaN input gave %v", got)
	}
}

// bigRound rounds the exact x + y to fp32 with big.Float (24 bits,
// unbounded exponent, ties to even), then flushes a result below 2^-126:
// an implementation of amxRound's rule independent of its TwoSum.
func bigRound(x, y float64) float32 {
	s := new(big.Float).SetPrec(2000).Add(new(big.Float).SetFloat64(x), new(big.Float).SetFloat64(y))
	r := new(big.Float).SetPrec(24).SetMode(big.ToNearestEven).Set(s)
	f, _ := r.Float64()
	if s.Sign() == 0 {
		return float32(x + y) // signed zero by IEEE rules
	}
	if math.Abs(f) < 0x1p-126 {
		return float32(math.Copysign(0, f))
	}
	return float32(f) // exact: f has 24 bits and a normal fp32 exponent, or overflows to Inf
}

func TestAMXRound(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	bfv := func() float32 {
		// A normal bf16 with a random exponent in a range that makes sums
		// of very different magnitudes, ties and underflow common.
		e := rng.IntN(60) - 150
		if rng.IntN(3) == 0 {
			e = rng.IntN(40) - 20
		}
		m := 1 + float64(rng.IntN(128))/128
		v := float32(math.Ldexp(m, e/2))
		if rng.IntN(2) == 0 {
			v = -v
		}
		return bf16DAZ(bf(v))
	}
	for i := 0; i < 200000; i++ {
		var c float32
		switch rng.IntN(3) {
		case 0:
			c = f32DAZ(float32(math.Ldexp(1+float64(rng.Uint32()>>8)/(1<<24), rng.IntN(60)-150)))
		case 1:
			c = float32(math.Ldexp(1+float64(rng.Uint32()>>8)/(1<<24), rng.IntN(50)-25))
		}
		if rng.IntN(2) == 0 {
			c = -c
		}
		a, b := bfv(), bfv()
		got := amxFMA(c, a, b)
		want := bigRound(float64(c), float64(a)*float64(b))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("amxFMA(%g, %g, %g) = %g (%#x), want %g (%#x)", c, a, b, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	// Double-rounding traps: an fp32 midpoint in float64 plus a tiny
	// term of either sign; and exact midpoints (ties to even).
	mid := 1 + 0x1p-24
	for _, y := range []float64{0x1p-80, -0x1p-80, 0} {
		got, want := amxRound(mid, y), bigRound(mid, y)
		if got != want {
			t.Errorf("amxRound(1+2^-24, %g) = %v, want %v", y, got, want)
		}
	}
	if amxRound(mid, 0x1p-80) != 1+0x1p-23 || amxRound(mid, 0) != 1 {
		t.Error("a midpoint did not round up with a positive remainder, or to even without one")
	}
}
