package kernels

import (
	"fmt"
	"math"
	"math/bits"
)

// MX (OCP Microscaling Formats v1.0) block formats: blocks of MXBlock values
// share one 8-bit power-of-two scale (E8M0: the byte e+127 stands for 2^e,
// 0xFF for NaN), and each value is a narrow float or integer scaled by it.
// The rule (the spec's section 6.3 conversion, as microsoft/microxcaling's
// _quantize_mx implements it with round="even"):
//
//	e = floor(log2(max|x|)) - emax      (max|x| of an all-zero block taken as 2^-126)
//	e = clamp(e, -127, 127); scale byte e+127
//	element = RNE(x / 2^e) in the element format, with its subnormals,
//	          saturated to its largest normal; a result of zero keeps x's sign
//
// where emax is the element format's largest normal exponent. NaN and ±Inf
// inputs are rejected rather than encoded: a table or weight holding them is
// broken, and MX's NaN encodings would spread it to every value of the block.

// MXBlock is the number of values sharing one scale.
const MXBlock = 32

// MXFormat is an MX element format.
type MXFormat uint8

const (
	// MXFP8E4M3 elements are OCP FP8 E4M3: bias 7, no infinities, NaN
	// S.1111.111, largest normal 448 = 1.75·2^8.
	MXFP8E4M3 MXFormat = iota + 1
	// MXFP8E5M2 elements are IEEE-like FP8 E5M2: bias 15, largest normal
	// 57344 = 1.75·2^15 (the exponent field 11111 holds Inf and NaN).
	MXFP8E5M2
	// MXFP6E3M2 elements: bias 3, no Inf or NaN, largest normal 28 = 1.75·2^4.
	MXFP6E3M2
	// MXFP6E2M3 elements: bias 1, no Inf or NaN, largest normal 7.5 = 1.875·2^2.
	MXFP6E2M3
	// MXFP4E2M1 elements: bias 1, no Inf or NaN, largest normal 6 = 1.5·2^2.
	MXFP4E2M1
	// MXINT8 elements are 8-bit two's complement integers n standing for
	// n/64; the quantizer stays within ±127/64 (it never writes -128).
	MXINT8
)

// MXFormats lists every MX format, in the order above.
var MXFormats = []MXFormat{MXFP8E4M3, MXFP8E5M2, MXFP6E3M2, MXFP6E2M3, MXFP4E2M1, MXINT8}

// mxParams describes an element format. A float format's value of code
// magnitude c is c·2^(1-bias-man) while c < 2^man (subnormals) and
// 2^(c>>man - bias)·(1 + (c&(2^man-1))/2^man) above; MXINT8's is c/64.
type mxParams struct {
	name, plan string
	bits       int    // stored width, sign included
	exp, man   int    // exponent and explicit mantissa bits (0, 6 for MXINT8)
	bias       int    // exponent bias
	emax       int    // largest normal exponent: what the shared exponent leaves room for
	maxCode    uint32 // magnitude code of the largest normal (the saturation point)
}

var mxTable = [...]mxParams{
	MXFP8E4M3: {"fp8_e4m3", "mxfp8_e4m3", 8, 4, 3, 7, 8, 0x7e},
	MXFP8E5M2: {"fp8_e5m2", "mxfp8_e5m2", 8, 5, 2, 15, 15, 0x7b},
	MXFP6E3M2: {"fp6_e3m2", "mxfp6_e3m2", 6, 3, 2, 3, 4, 0x1f},
	MXFP6E2M3: {"fp6_e2m3", "mxfp6_e2m3", 6, 2, 3, 1, 2, 0x1f},
	MXFP4E2M1: {"fp4_e2m1", "mxfp4", 4, 2, 1, 1, 2, 0x7},
	MXINT8:    {"int8", "mxint8", 8, 0, 6, 0, 0, 127},
}

// Valid reports whether f is one of the formats above.
func (f MXFormat) Valid() bool { return f >= MXFP8E4M3 && f <= MXINT8 }

func (f MXFormat) params() *mxParams {
	if !f.Valid() {
		panic(fmt.Sprintf("kernels: invalid MX format %d", uint8(f)))
	}
	return &mxTable[f]
}

// Bits is the stored width of one element: 8, 6 or 4 (0 if invalid).
func (f MXFormat) Bits() int {
	if !f.Valid() {
		return 0
	}
	return mxTable[f].bits
}

// Elem names the element format as the OCP spec and microxcaling do
// ("fp8_e4m3", "fp4_e2m1", "int8"): the keys of the MX test vectors.
func (f MXFormat) Elem() string {
	if !f.Valid() {
		return fmt.Sprintf("MXFormat(%d)", uint8(f))
	}
	return mxTable[f].name
}

// String names the block format as plans will ("mxfp8_e4m3", "mxfp4",
// "mxint8").
func (f MXFormat) String() string {
	if !f.Valid() {
		return fmt.Sprintf("MXFormat(%d)", uint8(f))
	}
	return mxTable[f].plan
}

// MaxNorm is the largest finite element value (448 for E4M3, 127/64 for
// MXINT8): x/2^e saturates there.
func (f MXFormat) MaxNorm() float64 { return float64(mxElemValue(f, f.params().maxCode)) }

// MXFormatByName finds a format by its plan name (String) or element name
// (Elem).
func MXFormatByName(s string) (MXFormat, bool) {
	for _, f := range MXFormats {
		if s == mxTable[f].plan || s == mxTable[f].name {
			return f, true
		}
	}
	return 0, false
}

// MXScales is the number of scale bytes of n values: ceil(n/32).
func MXScales(n int) int { return (n + MXBlock - 1) / MXBlock }

// MXCodeBytes is the size of the bit stream of n elements of format f:
// ceil(n·bits/8).
func MXCodeBytes(f MXFormat, n int) int { return (n*f.Bits() + 7) / 8 }

// mxElemValue is the value of element code c (sign bit included) of a
// format, from the definitions above: the decoding tables are built from it.
// E4M3's S.1111.111 is NaN and E5M2's 11111 exponent Inf (mantissa 0) or
// NaN, as their specs say; the quantizer never writes those codes.
func mxElemValue(f MXFormat, c uint32) float32 {
	p := &mxTable[f]
	if f == MXINT8 {
		return float32(int8(uint8(c))) / 64
	}
	neg := c>>(p.bits-1)&1 != 0
	c &= 1<<(p.bits-1) - 1
	ef, mf := int(c>>p.man), c&(1<<p.man-1)
	var v float64
	switch {
	case f == MXFP8E4M3 && c == 0x7f, f == MXFP8E5M2 && ef == 31 && mf != 0:
		v = math.NaN()
	case f == MXFP8E5M2 && ef == 31:
		v = math.Inf(1)
	case ef == 0:
		v = math.Ldexp(float64(mf), 1-p.bias-p.man)
	default:
		v = math.Ldexp(float64(mf|1<<p.man), ef-p.bias-p.man)
	}
	if neg {
		v = -v
	}
	return float32(v)
}

// mxLUT[f] decodes every code of format f (2^bits entries) to float32:
// element values have at most 4 significant bits, so float32 holds them
// exactly.
var mxLUT = func() (t [MXINT8 + 1][]float32) {
	for _, f := range MXFormats {
		n := 1 << mxTable[f].bits
		t[f] = make([]float32, n)
		for c := range n {
			t[f][c] = mxElemValue(f, uint32(c))
		}
	}
	return t
}()

// mxScaleLUT[b] is the E8M0 scale byte b as float32: 2^(b-127), 2^-127
// being a float32 subnormal, and NaN for 0xFF.
var mxScaleLUT = func() (t [256]float32) {
	for b := range 255 {
		t[b] = float32(math.Ldexp(1, b-127))
	}
	t[255] = float32(math.NaN())
	return t
}()

// MXScaleValue is the value 2^(b-127) of an E8M0 scale byte (NaN for 0xFF).
func MXScaleValue(b byte) float32 { return mxScaleLUT[b] }

// mxSharedExp is the block's shared exponent for a block whose largest
// magnitude has float32 bits amax (sign cleared): floor(log2) is read off
// the exponent field (or the subnormal's leading bit), so it is exact.
func mxSharedExp(p *mxParams, amax uint32) int {
	var l int
	switch {
	case amax == 0:
		l = -126
	case amax < 1<<23: // subnormal
		l = bits.Len32(amax) - 150
	default:
		l = int(amax>>23) - 127
	}
	return min(max(l-p.emax, -127), 127)
}

// mxEncode returns the magnitude code of a finite float32 magnitude ax
// (bits, sign cleared) divided by 2^e, rounded to nearest even and
// saturated. It works on integers: ax = m·2^k exactly, the quantum of the
// result is 2^qe with qe the larger of the value's own exponent and the
// smallest normal one, less the mantissa bits (fixed at -6 for MXINT8), and
// the code is the rounded multiple of the quantum plus the exponent field
// for normal values (a carry out of the mantissa lands in the exponent, as
// it should).
func mxEncode(p *mxParams, ax uint32, e int) uint32 {
	m, k := ax&(1<<23-1), int(ax>>23)
	if k == 0 {
		if m == 0 {
			return 0
		}
		k = -149
	} else {
		m |= 1 << 23
		k -= 150
	}
	k -= e // value = m·2^k
	var qe, qmin int
	if p.exp == 0 {
		qe, qmin = -p.man, -p.man
	} else {
		qmin = 1 - p.bias - p.man
		qe = max(bits.Len32(m)-1+k-p.man, qmin)
	}
	n := uint64(m)
	if s := k - qe; s >= 0 {
		n <<= uint(s) // s <= man: never overflows
	} else if s < -40 {
		n = 0 // far below half a quantum
	} else {
		sh := uint(-s)
		half, mask := uint64(1)<<(sh-1), uint64(1)<<sh-1
		r := n & mask
		n >>= sh
		if r > half || r == half && n&1 == 1 {
			n++
		}
	}
	if n > uint64(p.maxCode) { // MXINT8 magnitudes, or far beyond a float's range
		return p.maxCode
	}
	c := uint32(qe-qmin)<<p.man + uint32(n)
	return min(c, p.maxCode)
}

// MXError is a NaN or infinite input to an MX quantizer.
type MXError struct {
	Tensor   string
	Row, Col int // Row -1 for a flat vector
	Value    float32
}

func (e *MXError) Error() string {
	at := fmt.Sprintf("element %d", e.Col)
	if e.Row >= 0 {
		at = fmt.Sprintf("row %d column %d", e.Row, e.Col)
	}
	return fmt.Sprintf("%s: %s is %v; MX formats encode finite values only", e.Tensor, at, e.Value)
}

// QuantizeMX quantizes x in blocks of 32 (the last may be shorter) to
// format f: scales gets ceil(len(x)/32) E8M0 bytes and codes the elements'
// bit patterns as a little-endian bit stream, element i at bits
// [i·bits, (i+1)·bits), so 4-bit codes go low nibble first and 6-bit codes
// four to three bytes; unused high bits of the last byte are zero. codes
// must hold MXCodeBytes(f, len(x)) bytes. A NaN or Inf in x is an *MXError
// naming tensor and its position, and then scales and codes are
// unspecified. Any split of x at multiples of 32 gives the same bytes.
func QuantizeMX(f MXFormat, tensor string, x []float32, scales, codes []byte) error {
	p := f.params()
	if len(scales) < MXScales(len(x)) || len(codes) < MXCodeBytes(f, len(x)) {
		panic(fmt.Sprintf("kernels.QuantizeMX: %d scale bytes and %d code bytes for %d values of %v", len(scales), len(codes), len(x), f))
	}
	clear(codes[:MXCodeBytes(f, len(x))])
	return quantizeMX(p, tensor, -1, x, scales, codes)
}

// quantizeMX is QuantizeMX on cleared codes; row is reported in errors.
func quantizeMX(p *mxParams, tensor string, row int, x []float32, scales, codes []byte) error {
	sign := uint32(1) << (p.bits - 1)
	for b := 0; b*MXBlock < len(x); b++ {
		blk := x[b*MXBlock : min(b*MXBlock+MXBlock, len(x))]
		var amax uint32
		for j, v := range blk {
			a := math.Float32bits(v) &^ (1 << 31)
			if a >= 0x7f800000 {
				return &MXError{Tensor: tensor, Row: row, Col: b*MXBlock + j, Value: v}
			}
			amax = max(amax, a)
		}
		e := mxSharedExp(p, amax)
		scales[b] = byte(e + 127)
		for j, v := range blk {
			u := math.Float32bits(v)
			c := mxEncode(p, u&^(1<<31), e)
			if u>>31 != 0 {
				if p.exp == 0 {
					c = -c & (1<<p.bits - 1) // two's complement; -0 is 0
				} else {
					c |= sign
				}
			}
			putMXCode(codes, p.bits, b*MXBlock+j, c)
		}
	}
	return nil
}

// putMXCode ORs code c into element i of a bit stream of width-bit codes.
func putMXCode(codes []byte, width, i int, c uint32) {
	pos := i * width
	codes[pos>>3] |= byte(c << (pos & 7))
	if pos&7+width > 8 {
		codes[pos>>3+1] |= byte(c >> (8 - pos&7))
	}
}

// mxCode reads element i of a bit stream of width-bit codes.
func mxCode(codes []byte, width, i int) uint32 {
	pos := i * width
	c := uint32(codes[pos>>3]) >> (pos & 7)
	if pos&7+width > 8 {
		c |= uint32(codes[pos>>3+1]) << (8 - pos&7)
	}
	return c & (1<<width - 1)
}

// DequantizeMX expands len(dst) values of format f from scales and codes
// (laid out as QuantizeMX writes them) into dst:
//
//	dst[i] = float32(elem(code i) · 2^(scale byte of block i/32) - 127))
//
// a float32 product of the exact element value and the exact scale. For
// what QuantizeMX writes it is the exact value (at most 4 significant bits
// between 2^-143 and 2^128); stored bytes of other origin may overflow to
// Inf or round among float32's subnormals, and the NaN codes and scale 0xFF
// give NaN. Every MX kernel decodes a value this way.
func DequantizeMX(f MXFormat, scales, codes []byte, dst []float32) {
	p := f.params()
	if len(scales) < MXScales(len(dst)) || len(codes) < MXCodeBytes(f, len(dst)) {
		panic(fmt.Sprintf("kernels.DequantizeMX: %d scale bytes and %d code bytes for %d values of %v", len(scales), len(codes), len(dst), f))
	}
	lut := mxLUT[f]
	for i := range dst {
		dst[i] = lut[mxCode(codes, p.bits, i)] * mxScaleLUT[scales[i/MXBlock]]
	}
}

// FakeQuantMX writes to dst (len(x) values) x quantized to format f and
// dequantized again, as a model simulating MX storage or MX activations
// computes it: dst[i] = ±elem·2^e with the sign of x[i], so a value that
// rounds to zero is ±0 like x, as the OCP rule and the MX test vectors'
// dequantized values have it. That is DequantizeMX of QuantizeMX's bytes
// bit for bit, except that MXINT8's two's complement has no negative zero:
// through stored codes a negative value rounding to zero comes back +0. A
// NaN or Inf in x is an *MXError, and then dst is unspecified.
func FakeQuantMX(f MXFormat, tensor string, x, dst []float32) error {
	p := f.params()
	if len(dst) < len(x) {
		panic(fmt.Sprintf("kernels.FakeQuantMX: %d outputs for %d values", len(dst), len(x)))
	}
	lut := mxLUT[f]
	for b := 0; b*MXBlock < len(x); b++ {
		blk := x[b*MXBlock : min(b*MXBlock+MXBlock, len(x))]
		var amax uint32
		for j, v := range blk {
			a := math.Float32bits(v) &^ (1 << 31)
			if a >= 0x7f800000 {
				return &MXError{Tensor: tensor, Row: -1, Col: b*MXBlock + j, Value: v}
			}
			amax = max(amax, a)
		}
		e := mxSharedExp(p, amax)
		s := mxScaleLUT[e+127]
		for j, v := range blk {
			u := math.Float32bits(v)
			d := lut[mxEncode(p, u&^(1<<31), e)] * s
			if u>>31 != 0 {
				d = -d
			}
			dst[b*MXBlock+j] = d
		}
	}
	return nil
}
