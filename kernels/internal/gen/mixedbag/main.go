package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

var out = asmgen.New()

var p = out.P

// maxUnits is the most 16-column units a row may have (128 columns).
const maxUnits = 8

// The offsets in kernels.mixedArgs and kernels.mixedPartArgs (checked by
// TestMixedArgsLayout in kernels).
const (
	argMap     = 0
	argHot     = 8
	argCold    = 80
	argNUnits  = 152
	argColMask = 160
	argPFDist  = 168
	argPFEnd   = 176
	argConsts  = 184

	partData   = 0
	partRB     = 8
	partSBOff  = 24
	partLines  = 32
	partTail   = 40
	partKind   = 48
	partScales = 56
	partNS     = 64
)

// kernels.TableFormat values.
const (
	fmtF32 = 1
	fmtF16 = 2
	fmtQ8  = 3
	fmtQ4  = 4
	fmtQ2  = 5
	// the int8 and int4 kinds whose last unit has at most 8 columns (its
	// codes read with a narrower load: see q8 and q4)
	kindQ8n = 6
	kindQ4n = 7
	// mxfp4 rows: the last unit whole, or not (read masked)
	kindFP4  = 8
	kindFP4m = 9
)

// resolve maps the row id in AX to its part (R9: the hot or cold part's
// arguments) and its index there (AX); clobbers BX, DX, R15. Row id is
// hot when its bit is set; its index is then the hot rows before it (the
// word's rank plus the bits below it), else the id less those. The id
// map's words are 16 bytes: the bits, then the rank (a uint32).
func resolve() {
	p("\tMOVQ AX, BX")
	p("\tSHRQ $6, BX")
	p("\tSHLQ $4, BX")
	p("\tADDQ %d(R8), BX", argMap)
	p("\tMOVQ (BX), DX")
	p("\tMOVL 8(BX), R9")
	p("\tMOVQ AX, BX")
	p("\tANDQ $63, BX")
	p("\tBZHIQ BX, DX, R15")
	p("\tPOPCNTQ R15, R15")
	p("\tADDQ R15, R9")
	p("\tSUBQ R9, AX")
	p("\tBTQ BX, DX")
	p("\tCMOVQCS R9, AX")
	p("\tLEAQ %d(R8), R9", argCold)
	p("\tLEAQ %d(R8), DX", argHot)
	p("\tCMOVQCS DX, R9")
}

// prefetch resolves the lookup pfdist ahead (when within this call's
// lookups) and prefetches its row into L2 (PREFETCHT2, as the row-wise
// bags: its last byte's line, then its lines from the start), and the id
// map word of the lookup twice as far into L1, so that resolving that
// one does not wait either.
func prefetch(l string) {
	p("\tMOVQ %d(R8), AX", argPFDist)
	p("\tTESTQ AX, AX")
	p("\tJEQ  %s_nopf", l)
	p("\tLEAQ (SI)(AX*8), AX")
	p("\tCMPQ AX, %d(R8)", argPFEnd)
	p("\tJAE  %s_nopf", l)
	p("\tMOVQ %d(R8), BX", argPFDist)
	p("\tLEAQ (AX)(BX*8), BX")
	p("\tCMPQ BX, %d(R8)", argPFEnd)
	p("\tJAE  %s_nomap", l)
	p("\tMOVQ (BX), BX")
	p("\tSHRQ $6, BX")
	p("\tSHLQ $4, BX")
	p("\tADDQ %d(R8), BX", argMap)
	p("\tPREFETCHT0 (BX)")
	p("%s_nomap:", l)
	p("\tMOVQ (AX), AX")
	resolve()
	p("\tMOVQ AX, DX")
	p("\tIMULQ %d(R9), AX", partRB)
	p("\tADDQ %d(R9), AX", partData)
	p("\tMOVQ %d(R9), BX", partRB)
	p("\tPREFETCHT2 -1(AX)(BX*1)")
	p("\tMOVQ %d(R9), BX", partLines)
	p("%s_pf:", l)
	p("\tPREFETCHT2 (AX)")
	p("\tADDQ $64, AX")
	p("\tDECQ BX")
	p("\tJNE  %s_pf", l)
	// an MX row's scales
	p("\tMOVQ %d(R9), BX", partNS)
	p("\tTESTQ BX, BX")
	p("\tJEQ  %s_nopf", l)
	p("\tIMULQ BX, DX")
	p("\tADDQ %d(R9), DX", partScales)
	p("\tPREFETCHT2 (DX)")
	p("%s_nopf:", l)
}

// subByteTable makes Z5 the 16 values of an int4 or int2 row's codes q
// (the float32 codes in register qs: 0..15, or 0..3 four times over),
// float32(w · float32(s·q + (0 + b))) with s and b the row's fp16 scale
// and bias. The Go code evaluates s·q + b in double and rounds it to
// float32; here one float32 FMA rounds the exact s·q + b once, the same
// value: fp16 values are multiples of 2^-24 below 2^16 and q < 16, so
// s·q + b is a multiple of 2^-24 below 2^21, 45 bits, exact in double.
// (0 + b makes a -0 bias +0, as DequantizeRows' 0 + bias does.)
func subByteTable(qs string) {
	p("\tMOVQ %d(R9), R15", partSBOff)
	p("\tVMOVD (DX)(R15*1), X0")
	p("\tVCVTPH2PS X0, X0")
	p("\tVBROADCASTSS X0, Z1")
	p("\tVMOVSHDUP X0, X2")
	p("\tVBROADCASTSS X2, Z2")
	p("\tVADDPS Z15, Z2, Z2")
	p("\tVFMADD231PS %s, Z1, Z2", qs)
	p("\tVMULPS Z31, Z2, Z5")
}

// scaleBias loads an int8 row's float32 scale and bias as doubles: Z1 the
// scale, Z2 0 + the bias (a -0 bias made +0, as DequantizeRows' 0 + bias
// does). R15 holds the offset of scale and bias in the row.
func scaleBias() {
	p("\tVMOVQ (DX)(R15*1), X0")
	p("\tVCVTPS2PD X0, X0")
	p("\tVBROADCASTSD X0, Z1")
	p("\tVPERMILPD $1, X0, X2")
	p("\tVBROADCASTSD X2, Z2")
	p("\tVADDPD Z15, Z2, Z2")
}

// acc is the accumulator of unit k.
func acc(k int) string { return fmt.Sprintf("Z%d", 16+k) }

// The codes of a row's last unit are read with plain loads that stay
// within the row (its scale and bias follow the codes: 8 bytes for int8,
// 4 for int4 and int2), never past it, and never masked: on Zen 4 a masked
// load that reaches a line the row does not touch waited for that line
// from memory, which made a prefetched table twice as slow. The columns
// beyond the row decode to garbage that only the masked store drops. So
// the last int2 unit is a 4-byte load as the others; the last int8 unit
// (16 codes) is 16 bytes when it has 9 to 16 columns and 8 (narrow) up to
// 8, the last int4 unit 8 bytes or 4: each ends at most 6 bytes past the
// codes. fp32 and fp16 rows have nothing after their values and keep the
// masked load (K1).

// q8 is the int8 rows' code of variant l (n units): narrow for a last
// unit of at most 8 columns.
//
// The Go code decodes a code q as float32(s·q + b), s and b the row's
// float32 scale and bias, in double: s·q is exact (24 + 8 bits), and when
// the exact s·q + b fits in double's 53 bits the double sum is exact too
// and its rounding to float32 the only one, which is what one float32 FMA
// gives. s·q and b are multiples of 2^(Es-150) and 2^(Eb-150) (E the
// exponent fields, subnormals and zeros at E = 0 taken as their multiples
// of 2^-149 or any), below 2^(Es-118) and 2^(Eb-126); with Es - Eb at
// most 20 and Eb - Es at most 28 the sum spans at most 53 bits. So a row
// whose fields are at most 20 apart (as a row's scale and bias are: the
// scale is about a 255th of the row's range, the bias its minimum) takes
// the float32 FMA, 16 codes in 5 instructions, and any other row the
// double decode.
func q8(l string, n int, narrow bool) {
	load := func(k, n int, narrow bool) {
		if k == n-1 && narrow {
			p("\tVPMOVZXBD %d(DX), Y0", 16*k)
		} else {
			p("\tVPMOVZXBD %d(DX), Z0", 16*k)
		}
	}
	lab := l + "_q8"
	if narrow {
		lab += "n"
	}
	p("%s:", lab)
	// The float32 path when the exponent fields of scale and bias are at
	// most 20 apart (see q8Float), else the double one.
	p("\tMOVQ %d(R9), R15", partSBOff)
	p("\tMOVL (DX)(R15*1), AX")
	p("\tMOVL 4(DX)(R15*1), BX")
	p("\tSHRL $23, AX")
	p("\tANDL $255, AX")
	p("\tSHRL $23, BX")
	p("\tANDL $255, BX")
	p("\tSUBL BX, AX")
	p("\tADDL $20, AX")
	p("\tCMPL AX, $40")
	p("\tJA   %s_double", lab)
	p("\tVBROADCASTSS (DX)(R15*1), Z1")
	p("\tVBROADCASTSS 4(DX)(R15*1), Z2")
	p("\tVADDPS Z15, Z2, Z2")
	for k := 0; k < n; k++ {
		load(k, n, narrow)
		p("\tVCVTDQ2PS Z0, Z0")
		p("\tVFMADD213PS Z2, Z1, Z0")
		p("\tVMULPS Z31, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)
	p("%s_double:", lab)
	scaleBias()
	for k := 0; k < n; k++ {
		load(k, n, narrow)
		p("\tVEXTRACTI32X8 $1, Z0, Y3")
		p("\tVCVTDQ2PD Y0, Z0")
		p("\tVCVTDQ2PD Y3, Z3")
		p("\tVFMADD213PD Z2, Z1, Z0")
		p("\tVFMADD213PD Z2, Z1, Z3")
		p("\tVCVTPD2PS Z0, Y0")
		p("\tVCVTPD2PS Z3, Y3")
		p("\tVINSERTF32X8 $1, Y3, Z0, Z0")
		p("\tVMULPS Z31, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)
}

// q4 is the int4 rows' code of variant l (n units): narrow for a last
// unit of at most 8 columns.
func q4(l string, n int, narrow bool) {
	lab := l + "_q4"
	if narrow {
		lab += "n"
	}
	p("%s:", lab)
	subByteTable("Z13")
	for k := 0; k < n; k++ {
		if k == n-1 && narrow {
			p("\tVMOVD %d(DX), X0", 8*k)
		} else {
			p("\tVMOVQ %d(DX), X0", 8*k)
		}
		p("\tVPERMD Z0, Z6, Z0")
		p("\tVPSRLVD Z9, Z0, Z0")
		p("\tVPERMPS Z5, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)
}

// fp4 is the mxfp4 rows' code of variant l (n units), masked for a last
// unit of fewer than 16 columns. Per block of 32 columns (two units) the
// table of its 16 values float32(w · float32(t[q] · 2^e)) (as the Go
// code's mxAccumRow), t the element values (Z4), 2^e the block's E8M0
// scale (a.consts.slut), then each unit's nibbles through it as int4's.
// BX holds the row's index: its scales are at index·ns in the part's.
func fp4(l string, n int, masked bool) {
	lab := l + "_fp4"
	if masked {
		lab += "m"
		p("%s:", lab)
		p("\tKMOVQ %d(R9), K2", partTail)
	} else {
		p("%s:", lab)
	}
	p("\tIMULQ %d(R9), BX", partNS)
	p("\tADDQ %d(R9), BX", partScales)
	p("\tMOVQ %d(R8), R15", argConsts)
	for k := 0; k < n; k++ {
		if k%2 == 0 {
			p("\tMOVBLZX %d(BX), AX", k/2)
			p("\tVBROADCASTSS 576(R15)(AX*4), Z1")
			p("\tVMULPS Z4, Z1, Z5")
			p("\tVMULPS Z31, Z5, Z5")
		}
		if k == n-1 && masked {
			p("\tVMOVDQU8.Z %d(DX), K2, X0", 8*k)
		} else {
			p("\tVMOVQ %d(DX), X0", 8*k)
		}
		p("\tVPERMD Z0, Z6, Z0")
		p("\tVPSRLVD Z9, Z0, Z0")
		p("\tVPERMPS Z5, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)
}

// variant is the kernel for rows of n units.
func variant(n int) {
	l := fmt.Sprintf("mp_u%d", n)
	p("%s_bag:", l)
	p("\tTESTQ R14, R14")
	p("\tJEQ  mp_done")
	p("\tMOVLQSX (DI), AX")
	p("\tMOVLQSX 4(DI), CX")
	p("\tSUBQ AX, CX")
	for k := 0; k < n; k++ {
		p("\tVPXORD %s, %s, %s", acc(k), acc(k), acc(k))
	}
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_store", l)
	p("%s_row:", l)
	prefetch(l)
	p("\tMOVQ (SI), AX")
	resolve()
	p("\tMOVQ AX, BX") // the index, for an MX row's scales
	p("\tIMULQ %d(R9), AX", partRB)
	p("\tMOVQ %d(R9), DX", partData)
	p("\tADDQ AX, DX")
	p("\tVBROADCASTSS (R10), Z31")
	p("\tMOVQ %d(R9), R15", partKind)
	p("\tCMPQ R15, $%d", fmtQ2)
	p("\tJEQ  %s_q2", l)
	p("\tCMPQ R15, $%d", fmtQ8)
	p("\tJEQ  %s_q8", l)
	p("\tCMPQ R15, $%d", kindQ8n)
	p("\tJEQ  %s_q8n", l)
	p("\tCMPQ R15, $%d", fmtQ4)
	p("\tJEQ  %s_q4", l)
	p("\tCMPQ R15, $%d", kindQ4n)
	p("\tJEQ  %s_q4n", l)
	p("\tCMPQ R15, $%d", kindFP4)
	p("\tJEQ  %s_fp4", l)
	p("\tCMPQ R15, $%d", kindFP4m)
	p("\tJEQ  %s_fp4m", l)
	p("\tCMPQ R15, $%d", fmtF16)
	p("\tJEQ  %s_f16", l)

	// fp32: acc + float32(w·v) (w = 1 unweighted: w·v is v)
	for k := 0; k < n; k++ {
		if k < n-1 {
			p("\tVMULPS %d(DX), Z31, Z0", 64*k)
		} else {
			p("\tVMOVUPS.Z %d(DX), K1, Z0", 64*k)
			p("\tVMULPS Z31, Z0, Z0")
		}
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)

	// fp16: the same on the exactly widened values
	p("%s_f16:", l)
	for k := 0; k < n; k++ {
		if k < n-1 {
			p("\tVCVTPH2PS %d(DX), Z0", 32*k)
		} else {
			p("\tVMOVDQU16.Z %d(DX), K1, Y0", 32*k)
			p("\tVCVTPH2PS Y0, Z0")
		}
		p("\tVMULPS Z31, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}
	p("\tJMP  %s_next", l)

	// int8: float32(w · float32(s·q + b)), in float32 or in double (s·q is
	// exact, so the FMA rounds once as s*q + b does), 16 codes a unit
	for _, narrow := range []bool{false, true} {
		q8(l, n, narrow)
	}
	// int4: the row's 16 values float32(w · float32(s·q + b)) (Z5), then
	// each unit's 16 nibbles (8 bytes) through them (an index's bits above
	// its nibble, the next nibbles, are not read)
	for _, narrow := range []bool{false, true} {
		q4(l, n, narrow)
	}
	for _, masked := range []bool{false, true} {
		fp4(l, n, masked)
	}

	// int2: the row's 4 values four times over (Z5: value i&3 at i, so
	// that the table needs no mask: VPERMPS reads 4 bits of an index,
	// the code and the next one's), each unit's 16 codes (4 bytes)
	p("%s_q2:", l)
	subByteTable("Z12")
	for k := 0; k < n; k++ {
		p("\tVPBROADCASTD %d(DX), Z0", 4*k)
		p("\tVPSRLVD Z8, Z0, Z0")
		p("\tVPERMPS Z5, Z0, Z0")
		p("\tVADDPS Z0, %s, %s", acc(k), acc(k))
	}

	p("%s_next:", l)
	p("\tADDQ $8, SI")
	p("\tADDQ R11, R10")
	p("\tDECQ CX")
	p("\tJNE  %s_row", l)
	p("%s_store:", l)
	for k := 0; k < n; k++ {
		if k < n-1 {
			p("\tVMOVUPS %s, %d(R12)", acc(k), 64*k)
		} else {
			p("\tVMOVUPS %s, K1, %d(R12)", acc(k), 64*k)
		}
	}
	p("\tADDQ $4, DI")
	p("\tADDQ R13, R12")
	p("\tDECQ R14")
	p("\tJMP  %s_bag", l)
}

func main() {
	out.Header("kernels/internal/gen/mixedbag")
	p("// func mixedPool(a *mixedArgs, idx *int64, offs *int32, w *float32, wstep int, nbags int, out *float32, ldo int)")
	p("//")
	p("// Pools nbags bags of a mixed table whose parts are row-wise or mxfp4 and whose rows")
	p("// are a.nunits <= %d units of 16 columns (the last one's columns K1; its codes", maxUnits)
	p("// read with plain loads that stay within the row, an mxfp4 row's under the part's")
	p("// tail mask), each bag's sums in Z16.. from zero to the store:")
	p("// per lookup in bag order, acc + float32(w·v) with v the row's value as")
	p("// DequantizeRows decodes it (see kernels.MixedBagTable). Mean is the caller's.")
	p("//")
	p("// Registers: R8 a, SI next lookup, DI the bag's offsets, R10 its weight (R11")
	p("// the weight stride, 0 unweighted), R12 its output row (R13 ldo bytes), R14")
	p("// bags left, CX lookups left in the bag, DX the row, R9 its part's arguments,")
	p("// AX BX R15 scratch. Z31 the weight, Z1/Z2 scale and bias, Z5 a sub-byte row's")
	p("// decoded values, Z13 the codes 0..15 and Z12 the 2-bit codes four times over")
	p("// as float32, Z15 zero, Z6/Z9 the nibble select and shifts, Z8 the 2-bit")
	p("// shifts, Z0/Z3 temporaries (the sub-byte codes are not masked: VPERMPS reads")
	p("// the low 4 bits of an index).")
	p("TEXT ·mixedPool(SB), NOSPLIT, $0-64")
	p("\tMOVQ a+0(FP), R8")
	p("\tMOVQ idx+8(FP), SI")
	p("\tMOVQ offs+16(FP), DI")
	p("\tMOVQ w+24(FP), R10")
	p("\tMOVQ wstep+32(FP), R11")
	p("\tMOVQ nbags+40(FP), R14")
	p("\tMOVQ out+48(FP), R12")
	p("\tMOVQ ldo+56(FP), R13")
	p("\tSHLQ $2, R13")
	p("\tKMOVQ %d(R8), K1", argColMask)
	p("\tMOVQ %d(R8), AX", argConsts)
	p("\tVMOVUPS 384(AX), Z13")
	p("\tVMOVUPS 448(AX), Z12")
	p("\tVMOVUPS 512(AX), Z4")
	p("\tVMOVDQU32 128(AX), Z6")
	p("\tVMOVDQU32 192(AX), Z9")
	p("\tVMOVDQU32 256(AX), Z8")
	p("\tVPXORD Z15, Z15, Z15")
	p("\tMOVQ %d(R8), AX", argNUnits)
	for u := 1; u < maxUnits; u++ {
		p("\tCMPQ AX, $%d", u)
		p("\tJEQ  mp_u%d_bag", u)
	}
	p("\tJMP  mp_u%d_bag", maxUnits)
	for u := 1; u <= maxUnits; u++ {
		variant(u)
	}
	p("mp_done:")
	p("\tVZEROUPPER")
	p("\tRET")
	if err := out.Write("mixedpool_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
