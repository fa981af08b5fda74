package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A model, in Go, of the Intel AMX tile instructions rq's AMX kernels use:
// LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TILERELEASE, TDPBUSD and
// TDPBF16PS. It follows the pseudo-code of the Intel SDM (vol. 2, the
// instructions' "Operation" sections, and section 2.10's AMX exception
// classes: a configuration LDTILECFG would refuse with #GP, or a tile
// operation would refuse with #UD, is an error here, never a panic). Where
// the SDM text is terse, the model was checked against Bochs
// (bochs-emu/Bochs, cpu/avx/amx.cc: check_tiles, TDPBUSD_TnnnTrmTreg,
// TDPBF16PS_TnnnTrmTreg), which implements the same pseudo-code.
//
// The packing and blocking of the AMX GEMMs (amx_pack.go) run on this model
// on every machine; the assembly kernels, which need a CPU with AMX, are to
// be tested against it (docs/amx.md). Memory is a byte slice addressed
// little-endian, as on x86; an access outside it is an error (where the
// hardware would fault, or silently read a neighbour).

// Palette 1, the only one defined (CPUID leaf 1DH): 8 tiles of at most 16
// rows of 64 bytes; TMUL limits (leaf 1EH) tmul_maxk = 16 rows of B and
// tmul_maxn = 64 bytes of a C or B row.
const (
	amxTiles    = 8
	amxMaxRows  = 16
	amxMaxColsb = 64
	amxMaxK     = 16 // tmul_maxk: B rows, and dwords of an A row
	amxMaxN     = 16 // tmul_maxn/4: dwords of a C or B row
)

// amxTileCfg is the 64-byte memory operand of LDTILECFG: palette id (byte
// 0), start_row (byte 1), 14 reserved zero bytes, colsb[16] as
// little-endian uint16 at bytes 16..47 and rows[16] at bytes 48..63.
// Palette 1 names tiles 0..7; entries 8..15 must be zero.
type amxTileCfg struct {
	Palette  uint8
	StartRow uint8
	Colsb    [16]uint16
	Rows     [16]uint8
}

// Bytes is the configuration as LDTILECFG reads it from memory.
func (c *amxTileCfg) Bytes() [64]byte {
	var b [64]byte
	b[0], b[1] = c.Palette, c.StartRow
	for i, v := range c.Colsb {
		binary.LittleEndian.PutUint16(b[16+2*i:], v)
	}
	copy(b[48:], c.Rows[:])
	return b
}

// amxTile is one tile register: its configured shape and its 1 KiB.
type amxTile struct {
	rows, colsb int
	data        [amxMaxRows][amxMaxColsb]byte
}

func (t *amxTile) valid() bool { return t.rows != 0 }

// amxModel is the tile state of one logical processor: whether tiles are
// configured (TILES_CONFIGURED), the start_row of a restarted load or store,
// and the eight tile registers.
type amxModel struct {
	configured bool
	startRow   int
	t          [amxTiles]amxTile
}

// ldtilecfg is LDTILECFG mem: it validates the 64 bytes at mem[off:] as the
// SDM's pseudo-code does (palette > 1, a nonzero reserved byte, colsb > 64,
// rows > 16, an entry past the palette's 8 tiles, or a tile with exactly
// one of rows and colsb zero is #GP) and then zeroes every tile. Palette 0
// returns the tiles to the init state (unconfigured).
func (x *amxModel) ldtilecfg(mem []byte, off int) error {
	if off < 0 || off > len(mem)-64 {
		return fmt.Errorf("amx: LDTILECFG reads 64 bytes at offset %d of %d: outside memory", off, len(mem))
	}
	b := mem[off : off+64]
	pal := b[0]
	if pal > 1 {
		return fmt.Errorf("amx: LDTILECFG palette %d, want 0 or 1 (#GP)", pal)
	}
	if pal == 0 {
		// Init state, whatever the other bytes hold (the pseudo-code
		// reads them only for a nonzero palette).
		*x = amxModel{}
		return nil
	}
	for i := 2; i < 16; i++ {
		if b[i] != 0 {
			return fmt.Errorf("amx: LDTILECFG reserved byte %d is %#x, want 0 (#GP)", i, b[i])
		}
	}
	var next amxModel
	next.configured = true
	next.startRow = int(b[1])
	for n := 0; n < 16; n++ {
		colsb := int(binary.LittleEndian.Uint16(b[16+2*n:]))
		rows := int(b[48+n])
		if n >= amxTiles {
			if colsb != 0 || rows != 0 {
				return fmt.Errorf("amx: LDTILECFG tile %d has colsb %d, rows %d; palette 1 has %d tiles, the rest must be zero (#GP)", n, colsb, rows, amxTiles)
			}
			continue
		}
		switch {
		case colsb > amxMaxColsb:
			return fmt.Errorf("amx: LDTILECFG tile %d has colsb %d, more than %d bytes a row (#GP)", n, colsb, amxMaxColsb)
		case rows > amxMaxRows:
			return fmt.Errorf("amx: LDTILECFG tile %d has %d rows, more than %d (#GP)", n, rows, amxMaxRows)
		case (rows == 0) != (colsb == 0):
			return fmt.Errorf("amx: LDTILECFG tile %d has rows %d and colsb %d: both zero or neither (#GP)", n, rows, colsb)
		}
		next.t[n].rows, next.t[n].colsb = rows, colsb
	}
	*x = next
	return nil
}

// tilerelease is TILERELEASE: tiles back to the init state.
func (x *amxModel) tilerelease() { *x = amxModel{} }

// tile returns tile n if the tiles are configured and n is a valid
// (configured) tile, else the #UD error of instruction op.
func (x *amxModel) tile(op string, n int) (*amxTile, error) {
	if !x.configured {
		return nil, fmt.Errorf("amx: %s with tiles not configured (#UD)", op)
	}
	if n < 0 || n >= amxTiles || !x.t[n].valid() {
		return nil, fmt.Errorf("amx: %s on tile %d, which is not configured (#UD)", op, n)
	}
	return &x.t[n], nil
}

// tilezero is TILEZERO tmm(n).
func (x *amxModel) tilezero(n int) error {
	t, err := x.tile("TILEZERO", n)
	if err != nil {
		return err
	}
	t.data = [amxMaxRows][amxMaxColsb]byte{}
	return nil
}

// tileloadd is TILELOADD tmm(n), [base + stride*row]: rows start_row ..
// rows-1 of the tile get colsb bytes each from mem[base+r*stride:], the
// rest of each row and the rows past the configured ones are zeroed, and
// start_row is reset. Any byte outside mem is an error.
func (x *amxModel) tileloadd(n int, mem []byte, base, stride int) error {
	t, err := x.tile("TILELOADD", n)
	if err != nil {
		return err
	}
	for r := x.startRow; r < t.rows; r++ {
		off := base + r*stride
		if off < 0 || off > len(mem)-t.colsb {
			return fmt.Errorf("amx: TILELOADD tmm%d row %d reads %d bytes at offset %d of %d: outside memory", n, r, t.colsb, off, len(mem))
		}
	}
	for r := x.startRow; r < t.rows; r++ {
		off := base + r*stride
		row := &t.data[r]
		copy(row[:], mem[off:off+t.colsb])
		clear(row[t.colsb:])
	}
	for r := t.rows; r < amxMaxRows; r++ {
		t.data[r] = [amxMaxColsb]byte{}
	}
	x.startRow = 0
	return nil
}

// tilestored is TILESTORED [base + stride*row], tmm(n): colsb bytes of
// each configured row from start_row on, nothing else.
func (x *amxModel) tilestored(mem []byte, base, stride int, n int) error {
	t, err := x.tile("TILESTORED", n)
	if err != nil {
		return err
	}
	for r := x.startRow; r < t.rows; r++ {
		off := base + r*stride
		if off < 0 || off > len(mem)-t.colsb {
			return fmt.Errorf("amx: TILESTORED tmm%d row %d writes %d bytes at offset %d of %d: outside memory", n, r, t.colsb, off, len(mem))
		}
	}
	for r := x.startRow; r < t.rows; r++ {
		copy(mem[base+r*stride:], t.data[r][:t.colsb])
	}
	x.startRow = 0
	return nil
}

// checkTiles applies the #UD checks of the AMX-E4 class to a matrix
// multiply tmm(dst) += tmm(src1) · tmm(src2), C = m x n, A = m x k,
// B = k x n in dwords: three distinct valid tiles, every colsb a multiple
// of 4, dst.colsb == src2.colsb, dst.rows == src1.rows, src1.colsb/4 ==
// src2.rows, and n, k within tmul_maxn and tmul_maxk.
func (x *amxModel) checkTiles(op string, dst, src1, src2 int) (c, a, b *amxTile, err error) {
	if dst == src1 || dst == src2 || src1 == src2 {
		return nil, nil, nil, fmt.Errorf("amx: %s tmm%d, tmm%d, tmm%d: the three tiles must differ (#UD)", op, dst, src1, src2)
	}
	if c, err = x.tile(op, dst); err != nil {
		return
	}
	if a, err = x.tile(op, src1); err != nil {
		return
	}
	if b, err = x.tile(op, src2); err != nil {
		return
	}
	for _, tn := range [...]struct {
		n int
		t *amxTile
	}{{dst, c}, {src1, a}, {src2, b}} {
		if tn.t.colsb%4 != 0 {
			return nil, nil, nil, fmt.Errorf("amx: %s: tmm%d has colsb %d, not a multiple of 4 (#UD)", op, tn.n, tn.t.colsb)
		}
	}
	switch {
	case c.colsb != b.colsb:
		err = fmt.Errorf("amx: %s: C tmm%d has colsb %d but B tmm%d has %d (N mismatch, #UD)", op, dst, c.colsb, src2, b.colsb)
	case c.rows != a.rows:
		err = fmt.Errorf("amx: %s: C tmm%d has %d rows but A tmm%d has %d (M mismatch, #UD)", op, dst, c.rows, src1, a.rows)
	case a.colsb/4 != b.rows:
		err = fmt.Errorf("amx: %s: A tmm%d has %d dwords a row but B tmm%d has %d rows (K mismatch, #UD)", op, src1, a.colsb/4, src2, b.rows)
	case c.colsb/4 > amxMaxN || b.rows > amxMaxK:
		err = fmt.Errorf("amx: %s: N = %d dwords or K = %d rows beyond the TMUL limits %d, %d (#UD)", op, c.colsb/4, b.rows, amxMaxN, amxMaxK)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return c, a, b, nil
}

// tdpbusd is TDPBUSD tmm(dst), tmm(src1), tmm(src2): u8 A x s8 B -> s32,
//
//	C[m][n] += Σ_k Σ_i A.byte[m][4k+i] · B.byte[k][4n+i]
//
// in the SDM's order (DPBD per k, then the next k), with int32 wraparound;
// bytes of a C row past colsb and rows past rows are zeroed.
func (x *amxModel) tdpbusd(dst, src1, src2 int) error {
	c, a, b, err := x.checkTiles("TDPBUSD", dst, src1, src2)
	if err != nil {
		return err
	}
	nn, kk := c.colsb/4, b.rows
	for m := 0; m < c.rows; m++ {
		ar := &a.data[m]
		cr := &c.data[m]
		for n := 0; n < nn; n++ {
			acc := int32(binary.LittleEndian.Uint32(cr[4*n:]))
			for k := 0; k < kk; k++ {
				br := &b.data[k]
				acc += int32(ar[4*k])*int32(int8(br[4*n])) + int32(ar[4*k+1])*int32(int8(br[4*n+1])) +
					int32(ar[4*k+2])*int32(int8(br[4*n+2])) + int32(ar[4*k+3])*int32(int8(br[4*n+3]))
			}
			binary.LittleEndian.PutUint32(cr[4*n:], uint32(acc))
		}
		clear(cr[c.colsb:])
	}
	for m := c.rows; m < amxMaxRows; m++ {
		c.data[m] = [amxMaxColsb]byte{}
	}
	return nil
}

// tdpbf16ps is TDPBF16PS tmm(dst), tmm(src1), tmm(src2): bf16 pairs ->
// fp32. Following the SDM's Operation section, for each row m two fp32
// sums per output column, of the even and of the odd elements of the
// pairs, start at +0 and take one fused multiply-add per k; then
//
//	C[m][n] = C[m][n] + (even[n] + odd[n])
//
// Every operation rounds to nearest even whatever MXCSR says, reads bf16
// and fp32 subnormal inputs (including C's) as zero (DAZ) and flushes
// results that are tiny after rounding to a zero of the same sign (FTZ;
// "Output denormals are always flushed to zero and input denormals are
// always treated as zero"; tininess after rounding, SDM vol. 1, 4.9.1.5).
// NaN results are NaN, though not necessarily with the hardware's payload.
func (x *amxModel) tdpbf16ps(dst, src1, src2 int) error {
	c, a, b, err := x.checkTiles("TDPBF16PS", dst, src1, src2)
	if err != nil {
		return err
	}
	nn, kk := c.colsb/4, b.rows
	var even, odd [amxMaxN]float32
	for m := 0; m < c.rows; m++ {
		ar := &a.data[m]
		cr := &c.data[m]
		even, odd = [amxMaxN]float32{}, [amxMaxN]float32{}
		for k := 0; k < kk; k++ {
			a0 := bf16DAZ(binary.LittleEndian.Uint16(ar[4*k:]))
			a1 := bf16DAZ(binary.LittleEndian.Uint16(ar[4*k+2:]))
			br := &b.data[k]
			for n := 0; n < nn; n++ {
				even[n] = amxFMA(even[n], a0, bf16DAZ(binary.LittleEndian.Uint16(br[4*n:])))
				odd[n] = amxFMA(odd[n], a1, bf16DAZ(binary.LittleEndian.Uint16(br[4*n+2:])))
			}
		}
		for n := 0; n < nn; n++ {
			t := amxAdd(even[n], odd[n])
			old := f32DAZ(math.Float32frombits(binary.LittleEndian.Uint32(cr[4*n:])))
			binary.LittleEndian.PutUint32(cr[4*n:], math.Float32bits(amxAdd(old, t)))
		}
		clear(cr[c.colsb:])
	}
	for m := c.rows; m < amxMaxRows; m++ {
		c.data[m] = [amxMaxColsb]byte{}
	}
	return nil
}

// f32DAZ reads an fp32 subnormal as a zero of its sign.
func f32DAZ(f float32) float32 {
	if b := math.Float32bits(f); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return f
}

// amxFMA is c + a·b rounded once to fp32 with FTZ, for a and b widened bf16
// (normal or zero) and c normal or zero: the product is exact in float64
// (8+8 significant bits, exponents within ±254), so only the sum rounds.
func amxFMA(c, a, b float32) float32 {
	return amxRound(float64(c), float64(a)*float64(b))
}

// amxAdd is x + y rounded to fp32 with FTZ (x, y normal or zero).
func amxAdd(x, y float32) float32 { return amxRound(float64(x), float64(y)) }

// amxTiny is the largest magnitude below 2^-126 that rounds (to 24 bits,
// exponent unbounded, ties to even) to 2^-126: the midpoint (1-2^-25)·2^-126.
// Below it a result is tiny after rounding and flushes to zero.
var amxTiny = math.Ldexp(1-0x1p-25, -126)

// amxRound returns x + y rounded to nearest even fp32, flushed to a signed
// zero when tiny after rounding. The float64 sum s may itself be rounded;
// its exact error e (TwoSum, Knuth) decides the cases where rounding s
// again to fp32 would differ from rounding x + y once: s is moved one
// float64 ulp towards the exact value, which is then strictly inside the
// same fp32 rounding interval as x + y (fp32 midpoints are float64 values,
// so none lies strictly between s and its neighbour).
func amxRound(x, y float64) float32 {
	s := x + y
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	bb := s - x
	e := (x - (s - bb)) + (y - bb)
	switch {
	case e > 0:
		s = math.Nextafter(s, math.Inf(1))
	case e < 0:
		s = math.Nextafter(s, math.Inf(-1))
	}
	if s != 0 && math.Abs(s) < 0x1p-126 {
		if math.Abs(s) >= amxTiny {
			return float32(math.Copysign(0x1p-126, s))
		}
		return float32(math.Copysign(0, s))
	}
	return float32(s)
}
