package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// interactCase is one InteractDot problem with its guard layout: n rows in
// the buffers, [lo, hi) computed, ldt and ldo padded past f*d and the width.
type interactCase struct {
	f, d     int
	self     bool
	ldt, ldo int
	n, lo    int
	hi       int
}

func (c interactCase) String() string {
	return fmt.Sprintf("F=%d,D=%d,self=%v,ldt=%d,ldo=%d,rows=[%d,%d)of%d", c.f, c.d, c.self, c.ldt, c.ldo, c.lo, c.hi, c.n)
}

// interactVariant derives paddings, row range and self from a counter so
// every shape list cycles through tight and padded strides and sub-ranges.
func interactVariant(f, d, v int) interactCase {
	c := interactCase{f: f, d: d, self: v&1 != 0, ldt: f * d, ldo: InteractWidth(f, d, v&1 != 0), n: 3, lo: 0, hi: 3}
	if v&2 != 0 {
		c.ldt += 1 + v%13
	}
	if v&4 != 0 {
		c.ldo += 1 + v%7
	}
	switch v / 8 % 3 {
	case 1:
		c.lo = 1 // rows outside [lo, hi) are poison: reading them shows
	case 2:
		c.n, c.lo, c.hi = 4, 2, 3
	}
	return c
}

// dotBound is the documented error bound of a float32 dot of d terms in any
// order, plus the reference's own rounding: (d+1)·u·Σ|terms| (u = 2⁻²⁴), with
// a little slack for the second-order terms and an absolute floor for
// underflow.
func dotBound(d int, mag float64) float64 {
	return float64(d+1)*0x1p-24*1.001*mag + 1e-37
}

// runInteractCase runs the active implementation on c with random data and
// checks it against interactDotGeneric and the guard regions. exact draws
// entries from multiples of 1/4 in [-2, 2], so every partial sum is exact in
// float32 and results must be bit-identical whatever the order.
func runInteractCase(t *testing.T, c interactCase, rng *rand.Rand, exact bool) {
	t.Helper()
	width := InteractWidth(c.f, c.d, c.self)
	// T sits in a poisoned buffer: the ldt-f*d gap of each row, the rows
	// outside [lo, hi), and a tail past the end hold NaN, so an over-read
	// shows up as a NaN result.
	const pre, tail = 16, 64
	tlen := (c.hi-1)*c.ldt + c.f*c.d
	tbuf := make([]float32, pre+tlen+tail)
	for i := range tbuf {
		tbuf[i] = float32(math.NaN())
	}
	tt := tbuf[pre : pre+tlen]
	for i := c.lo; i < c.hi; i++ {
		for k := 0; k < c.f*c.d; k++ {
			if exact {
				tt[i*c.ldt+k] = float32(rng.IntN(17)-8) / 4
			} else {
				tt[i*c.ldt+k] = rng.Float32()*2 - 1
			}
		}
	}
	tcopy := append([]float32(nil), tbuf...)
	// out has sentinel guards before and after, and between rows (ldo > width).
	const opre, opost = 37, 41
	olen := (c.hi-1)*c.ldo + width
	obuf := make([]float32, opre+olen+opost)
	for i := range obuf {
		obuf[i] = math.Float32frombits(sentinel)
	}
	out := obuf[opre : opre+olen]

	InteractDot(tt, c.ldt, c.f, c.d, c.self, out, c.ldo, c.lo, c.hi)

	want := make([]float32, len(out))
	interactDotGeneric(tt, c.ldt, c.f, c.d, c.self, want, c.ldo, c.lo, c.hi)
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf("%v: "+format, append([]any{c}, args...)...)
		}
	}
	for i := c.lo; i < c.hi; i++ {
		ti := tt[i*c.ldt:]
		for k := 0; k < c.d; k++ {
			if got, exp := out[i*c.ldo+k], want[i*c.ldo+k]; math.Float32bits(got) != math.Float32bits(exp) {
				report("row %d: copied T[0][%d] = %v, want %v", i, k, got, exp)
			}
		}
		k := c.d
		for a := 0; a < c.f; a++ {
			end := a
			if c.self {
				end = a + 1
			}
			for b := 0; b < end; b++ {
				got, exp := out[i*c.ldo+k], want[i*c.ldo+k]
				mag := 0.0
				for j := 0; j < c.d; j++ {
					mag += math.Abs(float64(ti[a*c.d+j]) * float64(ti[b*c.d+j]))
				}
				if exact {
					if math.Float32bits(got) != math.Float32bits(exp) {
						report("row %d: dot(%d,%d) = %v, want exactly %v", i, a, b, got, exp)
					}
				} else if !(math.Abs(float64(got)-float64(exp)) <= dotBound(c.d, mag)) {
					report("row %d: dot(%d,%d) = %v, want %v (bound %.3g)", i, a, b, got, exp, dotBound(c.d, mag))
				}
				k++
			}
		}
	}
	// Guards: everything outside rows [lo, hi) x [0, width) must still be the sentinel.
	for idx := range obuf {
		off := idx - opre
		inside := off >= c.lo*c.ldo && off < olen && off%c.ldo < width
		if !inside && math.Float32bits(obuf[idx]) != sentinel {
			report("wrote outside the output rows at buffer offset %d (out offset %d)", idx, off)
		}
	}
	for i := range tbuf {
		if math.Float32bits(tbuf[i]) != math.Float32bits(tcopy[i]) {
			report("T modified at %d", i-pre)
			break
		}
	}
	if bad > 5 {
		t.Errorf("%v: %d errors in total", c, bad)
	}
}

// interactCases lists the shapes the correctness test covers: every F in
// 1..30 against every D in 1..67 (the kernels' 4-row blocks and 8/16-float
// steps along D, with all remainders), larger F and D, and the DLRM sizes.
func interactCases(short bool) []interactCase {
	var cs []interactCase
	v := 0
	add := func(f, d int) {
		cs = append(cs, interactVariant(f, d, v))
		v++
	}
	ds := make([]int, 0, 70)
	for d := 1; d <= 67; d++ {
		ds = append(ds, d)
	}
	ds = append(ds, 128, 256)
	fs := make([]int, 0, 32)
	for f := 1; f <= 30; f++ {
		fs = append(fs, f)
	}
	if short {
		fs = []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 27}
	}
	for _, f := range fs {
		for _, d := range ds {
			add(f, d) // consecutive cases alternate self
			add(f, d)
		}
	}
	for _, f := range []int{50, 100} {
		for _, d := range []int{1, 3, 16, 17, 31, 64, 128, 256} {
			add(f, d)
			add(f, d)
		}
	}
	return cs
}

func TestInteractDotImpls(t *testing.T) {
	cases := interactCases(testing.Short())
	forEachImplOf(t, interactDots, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for i, c := range cases {
			runInteractCase(t, c, rng, i%5 == 4)
			if t.Failed() {
				return // one failing implementation floods the log otherwise
			}
		}
	})
}

// TestInteractDotGenericMatchesPlain checks the float64 reference against
// the plain float32 loop it replaced, on sums that are exact in float32.
func TestInteractDotGenericMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, self := range []bool{false, true} {
		const f, d, n = 9, 21, 4
		tt := make([]float32, n*f*d)
		for i := range tt {
			tt[i] = float32(rng.IntN(17)-8) / 4
		}
		w := InteractWidth(f, d, self)
		got := make([]float32, n*w)
		want := make([]float32, n*w)
		interactDotGeneric(tt, f*d, f, d, self, got, w, 0, n)
		interactDotPlain(tt, f*d, f, d, self, want, w, 0, n)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("self=%v: out[%d] = %v, plain loop %v", self, i, got[i], want[i])
			}
		}
	}
}

// TestInteractDotSplit checks that results do not depend on how the batch
// is split into [lo, hi) ranges: every implementation, bit for bit.
func TestInteractDotSplit(t *testing.T) {
	forEachImplOf(t, interactDots, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 3))
		for _, fd := range [][2]int{{27, 16}, {27, 128}, {13, 37}, {6, 5}} {
			f, d := fd[0], fd[1]
			const n = 23
			w := InteractWidth(f, d, false)
			tt := make([]float32, n*f*d)
			for i := range tt {
				tt[i] = rng.Float32()*2 - 1
			}
			full := make([]float32, n*w)
			InteractDot(tt, f*d, f, d, false, full, w, 0, n)
			for _, r := range [][2]int{{0, 1}, {5, 6}, {3, 17}, {22, 23}, {1, 23}} {
				part := make([]float32, n*w)
				InteractDot(tt, f*d, f, d, false, part, w, r[0], r[1])
				for i := r[0] * w; i < r[1]*w; i++ {
					if math.Float32bits(part[i]) != math.Float32bits(full[i]) {
						t.Fatalf("F=%d D=%d rows [%d,%d): out[%d] = %v, whole batch %v", f, d, r[0], r[1], i, part[i], full[i])
					}
				}
			}
		}
	})
}

// TestInteractDotSpecialValues checks NaN and Inf reach exactly the dots
// whose terms hold them (the SIMD reductions never mix two dots' lanes, and
// rows duplicated to fill a block are never stored).
func TestInteractDotSpecialValues(t *testing.T) {
	const f, d = 11, 19
	tt := make([]float32, f*d)
	for i := range tt {
		tt[i] = float32(i%5) - 2
	}
	tt[3*d+7] = float32(math.NaN())    // vector 3
	tt[10*d+18] = float32(math.Inf(1)) // vector 10 (the last, also the clamped duplicate)
	forEachImplOf(t, interactDots, func(t *testing.T) {
		for _, self := range []bool{false, true} {
			w := InteractWidth(f, d, self)
			got := make([]float32, w)
			want := make([]float32, w)
			InteractDot(tt, f*d, f, d, self, got, w, 0, 1)
			interactDotGeneric(tt, f*d, f, d, self, want, w, 0, 1)
			for i := range got {
				g, e := float64(got[i]), float64(want[i])
				if math.IsNaN(e) != math.IsNaN(g) || math.IsInf(e, 0) != math.IsInf(g, 0) ||
					(math.IsInf(e, 0) && g != e) || (!math.IsNaN(e) && !math.IsInf(e, 0) && g != e) {
					t.Errorf("self=%v: out[%d] = %v, want %v", self, i, g, e)
				}
			}
		}
	})
}

// TestInteractDotDegenerate covers D = 0 (every dot is an empty sum, 0), F
// = 1 (no pairs without self) and an empty row range (nothing written).
func TestInteractDotDegenerate(t *testing.T) {
	forEachImplOf(t, interactDots, func(t *testing.T) {
		out := []float32{9, 9, 9, 9, 9, 9, 9}
		InteractDot(nil, 0, 3, 0, false, out, 3, 0, 2)
		if want := []float32{0, 0, 0, 0, 0, 0, 9}; fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("D=0: got %v, want %v", out, want)
		}
		out = []float32{9, 9, 9, 9, 9}
		InteractDot([]float32{1, 2, 3, 4}, 2, 1, 2, false, out, 2, 0, 2)
		if want := []float32{1, 2, 3, 4, 9}; fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("F=1: got %v, want %v", out, want)
		}
		InteractDot([]float32{1, 2, 3, 4}, 2, 1, 2, true, out, 3, 0, 1)
		if want := []float32{1, 2, 5, 4, 9}; fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("F=1 self: got %v, want %v", out, want)
		}
		InteractDot(nil, 5, 2, 2, false, nil, 3, 4, 4)
	})
}

// TestInteractDotPanics checks inconsistent arguments are caught before any
// kernel runs (the assembly has no bounds checks).
func TestInteractDotPanics(t *testing.T) {
	tt := make([]float32, 2*6)
	out := make([]float32, 2*5)
	InteractDot(tt, 6, 3, 2, false, out, 5, 0, 2) // exact sizes are fine
	InteractDot(tt, 6, 3, 2, true, make([]float32, 16), 8, 0, 2)
	mustPanic(t, "f = 0", func() { InteractDot(tt, 6, 0, 2, false, out, 5, 0, 2) })
	mustPanic(t, "negative d", func() { InteractDot(tt, 6, 3, -1, false, out, 5, 0, 2) })
	mustPanic(t, "huge f", func() { InteractDot(tt, 6, maxInteractF+1, 0, false, out, 5, 0, 1) })
	mustPanic(t, "ldt < f*d", func() { InteractDot(tt, 5, 3, 2, false, out, 5, 0, 2) })
	mustPanic(t, "ldo < width", func() { InteractDot(tt, 6, 3, 2, false, out, 4, 0, 2) })
	mustPanic(t, "ldo < width with self", func() { InteractDot(tt, 6, 3, 2, true, out, 5, 0, 2) })
	mustPanic(t, "short t", func() { InteractDot(tt[:11], 6, 3, 2, false, out, 5, 0, 2) })
	mustPanic(t, "short out", func() { InteractDot(tt, 6, 3, 2, false, out[:9], 5, 0, 2) })
	mustPanic(t, "t shorter than a row", func() { InteractDot(tt[:5], 6, 3, 2, false, out, 5, 0, 1) })
	mustPanic(t, "negative lo", func() { InteractDot(tt, 6, 3, 2, false, out, 5, -1, 1) })
	mustPanic(t, "hi < lo", func() { InteractDot(tt, 6, 3, 2, false, out, 5, 2, 1) })
	mustPanic(t, "overflowing rows", func() { InteractDot(tt, 1<<62, 3, 2, false, out, 5, 0, 3) })
}

func TestInteractWidth(t *testing.T) {
	for _, c := range []struct {
		f, d int
		self bool
		want int
	}{{27, 16, false, 16 + 351}, {27, 128, true, 128 + 378}, {1, 3, false, 3}, {1, 3, true, 4}} {
		if got := InteractWidth(c.f, c.d, c.self); got != c.want {
			t.Errorf("InteractWidth(%d, %d, %v) = %d, want %d", c.f, c.d, c.self, got, c.want)
		}
	}
}

// FuzzInteractDot checks every implementation against the reference on
// small random shapes and strides. Entries are multiples of 1/4 in [-4, 4],
// so every partial sum is exact in float32 and the results must be
// bit-identical, whatever the summation order; guards around the output
// must survive.
func FuzzInteractDot(f *testing.F) {
	f.Add(uint8(27), uint8(16), uint8(0), []byte{1, 2, 3})
	f.Add(uint8(5), uint8(17), uint8(7), []byte("seed for a 5x17 interaction"))
	f.Add(uint8(1), uint8(1), uint8(3), []byte{0xff})
	f.Add(uint8(40), uint8(33), uint8(0x1e), []byte{})
	f.Fuzz(func(t *testing.T, f8, d8, flags uint8, data []byte) {
		fv, d := 1+int(f8)%48, int(d8)%70
		self := flags&1 != 0
		ldt, ldo := fv*d+int(flags>>1&3), InteractWidth(fv, d, self)+int(flags>>3&3)
		n := 1 + int(flags>>5)%3
		pos := 0
		next := func() float32 {
			if len(data) == 0 {
				return 1
			}
			b := data[pos%len(data)] ^ byte(pos*31)
			pos++
			return float32(int(b%33)-16) / 4
		}
		tt := make([]float32, (n-1)*ldt+fv*d)
		for i := range tt {
			tt[i] = next()
		}
		const guard = 8
		want := make([]float32, (n-1)*ldo+InteractWidth(fv, d, self)+guard)
		for i := range want {
			want[i] = math.Float32frombits(sentinel)
		}
		interactDotGeneric(tt, ldt, fv, d, self, want, ldo, 0, n)
		defer keepActive(interactDots)()
		for _, name := range interactDots.names() {
			interactDots.set(name)
			got := make([]float32, len(want))
			for i := range got {
				got[i] = math.Float32frombits(sentinel)
			}
			InteractDot(tt, ldt, fv, d, self, got[:len(got)-guard], ldo, 0, n)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s F=%d D=%d self=%v ldt=%d ldo=%d rows=%d: out[%d] = %v, want %v",
						name, fv, d, self, ldt, ldo, n, i, got[i], want[i])
				}
			}
		}
	})
}

// interactDotPlain is the float32 loop InteractDot was before the SIMD
// kernels (the "before" of the benchmarks, and a cross-check of the
// reference).
func interactDotPlain(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int) {
	for i := lo; i < hi; i++ {
		ti := t[i*ldt : i*ldt+f*d]
		o := out[i*ldo:]
		copy(o[:d], ti[:d])
		k := d
		for a := 0; a < f; a++ {
			va := ti[a*d : a*d+d]
			end := a
			if self {
				end = a + 1
			}
			for b := 0; b < end; b++ {
				vb := ti[b*d : b*d+d]
				var s float32
				for j, x := range va {
					s += x * vb[j]
				}
				o[k] = s
				k++
			}
		}
	}
}
