package kernels

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
)

// npyArray is one array of an .npz file: its dtype and shape as the header
// gives them and its raw little-endian data.
type npyArray struct {
	descr string
	shape []int
	data  []byte
}

var npyHeaderRE = regexp.MustCompile(`^\{'descr': '([<|]\w+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \}\s*$`)

// readNPZ reads every array of an .npz archive (a zip of .npy files). It
// is a test's reader, enough for the MX vectors (C-order arrays of <f4 and
// |u1): dataset's npz reader streams click logs and imports kernels.
func readNPZ(path string) (map[string]npyArray, error) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	out := map[string]npyArray{}
	for _, zf := range z.File {
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
		}
		a, err := parseNPY(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, zf.Name, err)
		}
		out[strings.TrimSuffix(zf.Name, ".npy")] = a
	}
	return out, nil
}

func parseNPY(b []byte) (npyArray, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" || b[6] != 1 {
		return npyArray{}, errors.New("not a version 1 .npy array")
	}
	hl := int(binary.LittleEndian.Uint16(b[8:]))
	if 10+hl > len(b) {
		return npyArray{}, errors.New("truncated header")
	}
	m := npyHeaderRE.FindStringSubmatch(string(b[10 : 10+hl]))
	if m == nil {
		return npyArray{}, fmt.Errorf("unsupported header %q", b[10:10+hl])
	}
	a := npyArray{descr: m[1], data: b[10+hl:]}
	n := 1
	for _, s := range strings.Split(m[2], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil {
			return npyArray{}, err
		}
		a.shape = append(a.shape, d)
		n *= d
	}
	size := map[string]int{"<f4": 4, "|u1": 1}[a.descr]
	if size == 0 || len(a.data) != n*size {
		return npyArray{}, fmt.Errorf("dtype %s shape %v with %d data bytes", a.descr, a.shape, len(a.data))
	}
	return a, nil
}

func (a npyArray) f32() []float32 {
	out := make([]float32, len(a.data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.data[4*i:]))
	}
	return out
}

// mxVectors loads ../shared/mx/vectors.npz and checks its layout.
func mxVectors(t *testing.T) map[string]npyArray {
	t.Helper()
	v, err := readNPZ(testshared.Path(t, "mx/vectors.npz"))
	if err != nil {
		t.Fatal(err)
	}
	x, ok := v["x"]
	if !ok || x.descr != "<f4" || len(x.shape) != 2 || x.shape[1] != MXBlock {
		t.Fatalf("vectors.npz: x is %s %v, want float32 [N, 32]", x.descr, x.shape)
	}
	n := x.shape[0]
	for _, f := range MXFormats {
		for key, want := range map[string]string{"scale": "|u1", "codes": "|u1", "deq": "<f4"} {
			a, ok := v[f.Elem()+"."+key]
			size := n * MXBlock
			if key == "scale" {
				size = n
			}
			if !ok || a.descr != want || len(a.data) != size*map[string]int{"|u1": 1, "<f4": 4}[want] {
				t.Fatalf("vectors.npz: %s.%s is %s %v (present %v), want %s with %d values", f.Elem(), key, a.descr, a.shape, ok, want, size)
			}
		}
	}
	return v
}

// TestMXVectors reproduces every vector bit for bit: quantizing x gives the
// scale bytes and codes, dequantizing gives deq, and dequantizing the
// vectors' own scales and codes (packed into the bit stream) gives deq too.
func TestMXVectors(t *testing.T) {
	v := mxVectors(t)
	x := v["x"].f32()
	for _, f := range MXFormats {
		t.Run(f.Elem(), func(t *testing.T) {
			wantScale := v[f.Elem()+".scale"].data
			wantCodes := v[f.Elem()+".codes"].data
			wantDeq := v[f.Elem()+".deq"].f32()
			scales := make([]byte, MXScales(len(x)))
			codes := make([]byte, MXCodeBytes(f, len(x)))
			if err := QuantizeMX(f, "x", x, scales, codes); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for b := range scales {
				if scales[b] != wantScale[b] {
					if bad++; bad <= 5 {
						t.Errorf("block %d: scale byte %d, want %d (max|x| %g)", b, scales[b], wantScale[b], blockMax(x[b*32:b*32+32]))
					}
				}
			}
			for i := range x {
				if got := mxCode(codes, f.Bits(), i); got != uint32(wantCodes[i]) {
					if bad++; bad <= 10 {
						t.Errorf("x[%d][%d] = %g (%#x): code %#x, want %#x", i/32, i%32, x[i], math.Float32bits(x[i]), got, wantCodes[i])
					}
				}
			}
			// Dequantizing the stored bytes gives deq, but for MXINT8's
			// negative values that round to zero: deq keeps their sign (-0)
			// and the two's complement code 0 cannot.
			deq := make([]float32, len(x))
			checkDeq := func(what string, deq []float32, codeOf func(int) uint32) {
				for i := range deq {
					want := wantDeq[i]
					if f == MXINT8 && codeOf(i) == 0 && want == 0 {
						want = 0 // +0
					}
					if math.Float32bits(deq[i]) != math.Float32bits(want) {
						if bad++; bad <= 20 {
							t.Errorf("%s x[%d][%d] = %g: %g, want %g", what, i/32, i%32, x[i], deq[i], want)
						}
					}
				}
			}
			DequantizeMX(f, scales, codes, deq)
			checkDeq("dequantized", deq, func(i int) uint32 { return mxCode(codes, f.Bits(), i) })
			// The vectors' own bytes, packed, decode to their deq.
			packed := make([]byte, len(codes))
			for i, c := range wantCodes {
				putMXCode(packed, f.Bits(), i, uint32(c))
			}
			DequantizeMX(f, wantScale, packed, deq)
			checkDeq("vector bytes decoded,", deq, func(i int) uint32 { return uint32(wantCodes[i]) })
			// Fake quantization gives deq exactly, signed zeros included.
			if err := FakeQuantMX(f, "x", x, deq); err != nil {
				t.Fatal(err)
			}
			for i := range deq {
				if math.Float32bits(deq[i]) != math.Float32bits(wantDeq[i]) {
					if bad++; bad <= 25 {
						t.Errorf("fake-quantized x[%d][%d] = %g: %g, want %g", i/32, i%32, x[i], deq[i], wantDeq[i])
					}
				}
			}
			if f == MXINT8 {
				negZero := 0
				for i, d := range wantDeq {
					if math.Float32bits(d) == 1<<31 && wantCodes[i] == 0 {
						negZero++
					}
				}
				if negZero == 0 {
					t.Errorf("no -0 among int8's deq: the vectors no longer exercise the exception above")
				}
			}
			if bad > 0 {
				t.Errorf("%d mismatches", bad)
			}
		})
	}
}

func blockMax(b []float32) float32 {
	var m float32
	for _, v := range b {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// mxRef is a float64 reference for one format, written from the spec's
// definitions rather than from mx.go's bit manipulation: the element
// values are listed from the exponent/mantissa formula and the largest
// normal is the spec's constant; rounding picks the nearest listed value,
// the one with an even code on a tie.
type mxRef struct {
	f       MXFormat
	emax    int
	maxNorm float64
	vals    []float64 // non-negative finite values up to maxNorm, ascending
	codes   []uint32  // their magnitude codes
}

func newMXRef(f MXFormat) *mxRef {
	type spec struct {
		ebits, mbits, bias, emax int
		maxNorm                  float64
	}
	sp := map[MXFormat]spec{
		MXFP8E4M3: {4, 3, 7, 8, 448},
		MXFP8E5M2: {5, 2, 15, 15, 57344},
		MXFP6E3M2: {3, 2, 3, 4, 28},
		MXFP6E2M3: {2, 3, 1, 2, 7.5},
		MXFP4E2M1: {2, 1, 1, 2, 6},
		MXINT8:    {0, 6, 0, 0, 127.0 / 64},
	}[f]
	r := &mxRef{f: f, emax: sp.emax, maxNorm: sp.maxNorm}
	for c := 0; c < 1<<(f.Bits()-1); c++ {
		var v float64
		if sp.ebits == 0 {
			v = float64(c) / 64
		} else if E, M := c>>sp.mbits, c&(1<<sp.mbits-1); E == 0 {
			v = math.Pow(2, float64(1-sp.bias)) * float64(M) / math.Pow(2, float64(sp.mbits))
		} else {
			v = math.Pow(2, float64(E-sp.bias)) * (1 + float64(M)/math.Pow(2, float64(sp.mbits)))
		}
		if v <= sp.maxNorm {
			r.vals = append(r.vals, v)
			r.codes = append(r.codes, uint32(c))
		}
	}
	if !sort.Float64sAreSorted(r.vals) || r.vals[len(r.vals)-1] != sp.maxNorm {
		panic(fmt.Sprintf("%v: reference value list is wrong", f))
	}
	return r
}

// block quantizes one block: the scale byte, each element's code (sign
// included) and the fake-quantized value ±elem·2^e.
func (r *mxRef) block(x []float32) (byte, []uint32, []float32) {
	amax := 0.0
	for _, v := range x {
		amax = math.Max(amax, math.Abs(float64(v)))
	}
	if amax == 0 {
		amax = math.Pow(2, -126)
	}
	e := int(math.Floor(math.Log2(amax))) - r.emax
	e = min(max(e, -127), 127)
	codes := make([]uint32, len(x))
	deq := make([]float32, len(x))
	for j, v := range x {
		a := math.Abs(float64(v)) / math.Pow(2, float64(e))
		i := sort.SearchFloat64s(r.vals, a) // first value >= a
		switch {
		case i == len(r.vals):
			i-- // saturate
		case r.vals[i] == a || i == 0:
		default:
			lo, hi := a-r.vals[i-1], r.vals[i]-a
			if lo < hi || lo == hi && r.codes[i-1]&1 == 0 {
				i--
			}
		}
		c, d := r.codes[i], r.vals[i]*math.Pow(2, float64(e))
		if math.Signbit(float64(v)) {
			d = -d
			if r.f == MXINT8 {
				c = -c & 0xff
			} else {
				c |= 1 << (r.f.Bits() - 1)
			}
		}
		codes[j], deq[j] = c, float32(d)
	}
	return byte(e + 127), codes, deq
}

// checkMXRef quantizes x with the fast path and compares scales, codes,
// dequantized and fake-quantized values with the reference, bit for bit.
func checkMXRef(t *testing.T, r *mxRef, x []float32, what string) {
	t.Helper()
	f := r.f
	scales := make([]byte, MXScales(len(x)))
	codes := make([]byte, MXCodeBytes(f, len(x)))
	if err := QuantizeMX(f, what, x, scales, codes); err != nil {
		t.Fatalf("%v %s: %v", f, what, err)
	}
	deq := make([]float32, len(x))
	DequantizeMX(f, scales, codes, deq)
	fq := make([]float32, len(x))
	if err := FakeQuantMX(f, what, x, fq); err != nil {
		t.Fatalf("%v %s: %v", f, what, err)
	}
	for b := 0; b*MXBlock < len(x); b++ {
		lo, hi := b*MXBlock, min(b*MXBlock+MXBlock, len(x))
		sc, rc, rd := r.block(x[lo:hi])
		if scales[b] != sc {
			t.Fatalf("%v %s block %d: scale %d, reference %d (block %v)", f, what, b, scales[b], sc, x[lo:hi])
		}
		for j := range rc {
			i := lo + j
			if got := mxCode(codes, f.Bits(), i); got != rc[j] {
				t.Fatalf("%v %s: x[%d] = %g (%#x), scale %d: code %#x, reference %#x", f, what, i, x[i], math.Float32bits(x[i]), sc, got, rc[j])
			}
			if math.Float32bits(fq[i]) != math.Float32bits(rd[j]) {
				t.Fatalf("%v %s: x[%d] = %g: fake-quantized %g, reference %g", f, what, i, x[i], fq[i], rd[j])
			}
			want := rd[j]
			if f == MXINT8 && want == 0 {
				want = 0 // no negative zero code
			}
			if math.Float32bits(deq[i]) != math.Float32bits(want) {
				t.Fatalf("%v %s: x[%d] = %g: dequantized %g, reference %g", f, what, i, x[i], deq[i], want)
			}
		}
	}
	for i := len(x) * f.Bits(); i < len(codes)*8; i++ {
		if codes[i/8]>>(i%8)&1 != 0 {
			t.Fatalf("%v %s: padding bit %d of the code stream is set", f, what, i)
		}
	}
}

// mxEdgeBlocks are blocks built around each format's boundaries: exact
// ties between neighbouring element values (and ties to zero), values a
// float32 ulp either side of them, the saturation point and the midpoint
// above it, float32 subnormals, huge and tiny magnitudes, maxima just below
// a power of two, all-zero blocks and signed zeros.
func mxEdgeBlocks(r *mxRef, rng *rand.Rand) [][]float32 {
	var blocks [][]float32
	// Element values, ties and their neighbours at scale 2^e, with a block
	// maximum pinning e (2^emax·2^e has exponent emax+e).
	for _, e := range []int{-127, -120, -30, -1, 0, 1, 7, 100, 127 - r.emax} {
		var vals []float32
		for i, v := range r.vals {
			vals = append(vals, float32(v*math.Pow(2, float64(e))))
			if i > 0 {
				mid := float32((v + r.vals[i-1]) / 2 * math.Pow(2, float64(e)))
				vals = append(vals, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))))
			}
		}
		top := r.vals[len(r.vals)-1]
		step := top - r.vals[len(r.vals)-2]
		for _, v := range []float64{top + step/2, top + step, math.Pow(2, float64(r.emax+1)) * (1 - 1e-7)} {
			vals = append(vals, float32(v*math.Pow(2, float64(e))))
		}
		pin := float32(math.Pow(2, float64(r.emax+e)))
		if math.IsInf(float64(pin), 0) || pin == 0 {
			continue
		}
		vals = slices.DeleteFunc(vals, func(v float32) bool { return math.IsInf(float64(v), 0) })
		for len(vals) > 0 {
			n := min(len(vals), MXBlock-1)
			blk := append([]float32{pin}, vals[:n]...)
			vals = vals[n:]
			for i := range blk {
				if rng.IntN(2) == 0 {
					blk[i] = -blk[i]
				}
			}
			blocks = append(blocks, blk)
		}
	}
	tiny := math.Float32frombits(1)
	neg0 := float32(math.Copysign(0, -1))
	blocks = append(blocks,
		make([]float32, MXBlock),                          // all zero
		[]float32{neg0, 0, neg0, neg0},                    // signed zeros, short block
		[]float32{tiny, -tiny, 3 * tiny, 0, neg0},         // float32 subnormals
		[]float32{math.Float32frombits(0x007fffff), tiny}, // largest subnormal
		[]float32{math.MaxFloat32, -math.MaxFloat32, 1, -1e30, tiny, neg0},
		[]float32{math.Nextafter32(2, 0), 1, 0.5, -0.75}, // max just below 2
		[]float32{math.Nextafter32(1<<20, 0), 1 << 17, 3, 1e-9},
		[]float32{1e-40, -1e-42, 1e-45},
		[]float32{-1},
	)
	return blocks
}

// TestMXReference checks the fast path against the reference on edge
// blocks and on random ones of several magnitude spreads, in tensors whose
// lengths are not multiples of 32.
func TestMXReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range MXFormats {
		r := newMXRef(f)
		for i, blk := range mxEdgeBlocks(r, rng) {
			checkMXRef(t, r, blk, fmt.Sprintf("edge block %d", i))
		}
		for trial := range 300 {
			n := 1 + rng.IntN(200)
			x := make([]float32, n)
			spread := float64(trial%8) * 6 // decades of magnitude within a tensor
			for i := range x {
				switch rng.IntN(20) {
				case 0:
					x[i] = 0
				case 1:
					x[i] = math.Float32frombits(rng.Uint32() & 0x807fffff) // subnormal
				default:
					x[i] = float32(rng.NormFloat64() * math.Pow(10, (rng.Float64()-0.5)*spread))
				}
			}
			checkMXRef(t, r, x, fmt.Sprintf("random tensor %d", trial))
		}
		// Random bit patterns: every finite float32 is a valid input.
		x := make([]float32, 0, 4096)
		for len(x) < cap(x) {
			if v := math.Float32frombits(rng.Uint32()); !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
				x = append(x, v)
			}
		}
		checkMXRef(t, r, x, "random bits")
	}
}

// TestMXFormats checks the format table against the spec's constants.
func TestMXFormats(t *testing.T) {
	want := []struct {
		elem, plan string
		bits       int
		maxNorm    float64
	}{
		{"fp8_e4m3", "mxfp8_e4m3", 8, 448}, {"fp8_e5m2", "mxfp8_e5m2", 8, 57344},
		{"fp6_e3m2", "mxfp6_e3m2", 6, 28}, {"fp6_e2m3", "mxfp6_e2m3", 6, 7.5},
		{"fp4_e2m1", "mxfp4", 4, 6}, {"int8", "mxint8", 8, 127.0 / 64},
	}
	if len(MXFormats) != len(want) {
		t.Fatalf("%d formats, want %d", len(MXFormats), len(want))
	}
	for i, f := range MXFormats {
		w := want[i]
		if f.Elem() != w.elem || f.String() != w.plan || f.Bits() != w.bits || f.MaxNorm() != w.maxNorm {
			t.Errorf("format %d: %s %s %d bits max %g, want %s %s %d %g", i, f.Elem(), f, f.Bits(), f.MaxNorm(), w.elem, w.plan, w.bits, w.maxNorm)
		}
		for _, s := range []string{w.elem, w.plan} {
			if g, ok := MXFormatByName(s); !ok || g != f {
				t.Errorf("MXFormatByName(%q) = %v, %v", s, g, ok)
			}
		}
	}
	if _, ok := MXFormatByName("int4"); ok {
		t.Errorf("MXFormatByName(int4) found a format")
	}
	if MXFormat(0).Valid() || MXFormat(7).Valid() || MXFormat(7).Bits() != 0 {
		t.Errorf("formats 0 and 7 are valid")
	}
	// NaN encodings decode to NaN, E5M2's infinities to Inf, scale 0xFF to NaN.
	for _, c := range []struct {
		f    MXFormat
		code uint32
		want float64
	}{{MXFP8E4M3, 0x7f, math.NaN()}, {MXFP8E4M3, 0xff, math.NaN()}, {MXFP8E5M2, 0x7c, math.Inf(1)}, {MXFP8E5M2, 0xfc, math.Inf(-1)}, {MXFP8E5M2, 0x7d, math.NaN()}, {MXINT8, 0x80, -2}} {
		got := float64(mxLUT[c.f][c.code])
		if !(got == c.want || math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("%v code %#x decodes to %g, want %g", c.f, c.code, got, c.want)
		}
	}
	if v := MXScaleValue(0xff); !math.IsNaN(float64(v)) || MXScaleValue(0) != float32(math.Pow(2, -127)) || MXScaleValue(254) != float32(math.Pow(2, 127)) {
		t.Errorf("E8M0 decoding: 0xff %g, 0 %g, 254 %g", v, MXScaleValue(0), MXScaleValue(254))
	}
}

// TestMXNonFinite checks that NaN and Inf are errors naming the tensor
// and the element, from both quantizers.
func TestMXNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, f := range MXFormats {
			x := make([]float32, 70)
			x[37] = bad
			err := QuantizeMX(f, "emb.3.weight", x, make([]byte, 3), make([]byte, MXCodeBytes(f, 70)))
			var me *MXError
			if !errors.As(err, &me) || me.Col != 37 || me.Tensor != "emb.3.weight" {
				t.Fatalf("%v with %g: error %v", f, bad, err)
			}
			if s := err.Error(); !strings.Contains(s, "emb.3.weight") || !strings.Contains(s, "element 37") {
				t.Errorf("error %q does not name the tensor and element", s)
			}
			if err := FakeQuantMX(f, "act", x, make([]float32, 70)); err == nil || !strings.Contains(err.Error(), "act: element 37") {
				t.Errorf("FakeQuantMX: error %v", err)
			}
		}
	}
}

// TestMXBitStream checks the code layout on hand-written streams: element i
// at bits [i·bits, (i+1)·bits), least significant first.
func TestMXBitStream(t *testing.T) {
	// 6-bit codes 1, 2, 3, 0x3f: bits 000001 000010 000011 111111 from
	// bit 0 up.
	b := make([]byte, 3)
	for i, c := range []uint32{1, 2, 3, 0x3f} {
		putMXCode(b, 6, i, c)
	}
	if want := []byte{0x81, 0x30, 0xfc}; string(b) != string(want) {
		t.Errorf("6-bit stream % x, want % x", b, want)
	}
	for i, c := range []uint32{1, 2, 3, 0x3f} {
		if got := mxCode(b, 6, i); got != c {
			t.Errorf("6-bit element %d: %#x, want %#x", i, got, c)
		}
	}
	// 4-bit: low nibble first. E2M1 codes of 0.5 (1), 6 (7), -1 (0xa).
	x := []float32{0.5, 6, -1}
	scales, codes := make([]byte, 1), make([]byte, 2)
	if err := QuantizeMX(MXFP4E2M1, "x", x, scales, codes); err != nil {
		t.Fatal(err)
	}
	// max 6: floor(log2 6) = 2 = emax, so e = 0 and the scale byte 127.
	if scales[0] != 127 || codes[0] != 0x71 || codes[1] != 0x0a {
		t.Errorf("fp4 of %v: scale %d codes % x, want 127 and 71 0a", x, scales[0], codes)
	}
}

// FuzzMX checks, for any finite input and format, the fast path against
// the reference, and that quantization is stable: a dequantized block
// quantizes to the same codes and scale (apart from MXINT8 blocks that
// dequantize to all zeros, which take the all-zero scale 2^-126 where
// MXINT8's smallest shared exponent is -127), and fake quantization is
// idempotent.
func FuzzMX(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f})
	f.Add(uint8(5), []byte{1, 0, 0, 0, 0xff, 0xff, 0x7f, 0x7f, 0, 0, 0, 0x80})
	f.Add(uint8(4), []byte{0, 0, 0xd0, 0x40, 0, 0, 0xe0, 0x40, 0, 0, 0x10, 0xc1})
	refs := map[MXFormat]*mxRef{}
	for _, fm := range MXFormats {
		refs[fm] = newMXRef(fm)
	}
	f.Fuzz(func(t *testing.T, fi uint8, raw []byte) {
		fm := MXFormats[int(fi)%len(MXFormats)]
		x := make([]float32, 0, len(raw)/4)
		for i := 0; i+4 <= len(raw); i += 4 {
			x = append(x, math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
		}
		scales := make([]byte, MXScales(len(x)))
		codes := make([]byte, MXCodeBytes(fm, len(x)))
		err := QuantizeMX(fm, "x", x, scales, codes)
		for i, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				var me *MXError
				if !errors.As(err, &me) || me.Col/MXBlock != i/MXBlock {
					t.Fatalf("non-finite x[%d]: error %v", i, err)
				}
				return
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		checkMXRef(t, refs[fm], x, "fuzz input")
		deq := make([]float32, len(x))
		DequantizeMX(fm, scales, codes, deq)
		scales2 := make([]byte, len(scales))
		codes2 := make([]byte, len(codes))
		if err := QuantizeMX(fm, "deq", deq, scales2, codes2); err != nil {
			t.Fatal(err)
		}
		if string(codes2) != string(codes) {
			t.Fatalf("%v: codes % x re-quantize to % x", fm, codes, codes2)
		}
		for b := range scales {
			if scales2[b] == scales[b] {
				continue
			}
			allZero := true
			for _, v := range deq[b*MXBlock : min(b*MXBlock+MXBlock, len(deq))] {
				allZero = allZero && v == 0
			}
			if fm != MXINT8 || !allZero || scales2[b] != 1 {
				t.Fatalf("%v block %d: scale %d re-quantizes to %d", fm, b, scales[b], scales2[b])
			}
		}
		fq := make([]float32, len(x))
		if err := FakeQuantMX(fm, "x", x, fq); err != nil {
			t.Fatal(err)
		}
		fq2 := make([]float32, len(x))
		if err := FakeQuantMX(fm, "fq", fq, fq2); err != nil {
			t.Fatal(err)
		}
		for i := range fq {
			if math.Float32bits(fq[i]) != math.Float32bits(fq2[i]) {
				t.Fatalf("%v: fake quantization of x[%d] = %g is %g, then %g", fm, i, x[i], fq[i], fq2[i])
			}
		}
	})
}
