package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

var out = asmgen.New()

var p = out.P

const sig = "(codes *byte, scales *byte, rb int, ns int, idx *int64, offs *int32, w *float32, wstep int, nbags int, out *float32, ldo int, nfull int, tail int, lut *float32, slut *float32, masks *uint64, pfdist int, pfend uintptr, pflines int)"

const frameArgs = 152

// Registers: R8 codes, R9 scales, R10 the weight pointer, R11 its step in
// bytes (0 for unweighted calls), SI the current index, DI the bag's
// offsets entry, R12 the bag's output row, BX the scale LUT (mxScaleLUT,
// or mxScaleLUT/64 for INT8), Z13-Z20 the format's constants (setup), Z7
// zeros, Z12 the broadcast weight, K1 the tail block's code-byte load mask, K2/K3 the
// tail's store masks for its first and second 16 elements. In the loops:
// CX indices left in the bag, AX the row's codes, DX its scales, R13 the
// output cursor, R14 blocks left, R15 scratch (R13-R15 also the prefetch's). nbags and ldo stay in the
// argument frame (there are not enough registers).
func kernel(f format, weighted bool) {
	name := "mxbag512" + f.name
	if weighted {
		name += "W"
	}
	out.Text(name, sig, frameArgs)
	p("\tMOVQ codes+0(FP), R8")
	p("\tMOVQ scales+8(FP), R9")
	p("\tMOVQ idx+32(FP), SI")
	p("\tMOVQ offs+40(FP), DI")
	p("\tMOVQ w+48(FP), R10")
	p("\tMOVQ wstep+56(FP), R11")
	p("\tMOVQ out+72(FP), R12")
	setup(f)
	p("\tMOVQ slut+112(FP), BX")
	p("\tMOVQ masks+120(FP), AX")
	p("\tKMOVQ (AX), K1")
	p("\tKMOVQ 8(AX), K2")
	p("\tKMOVQ 16(AX), K3")
	p("\tVPXORD Z7, Z7, Z7")

	p("%s_bag:", name)
	// Zero the output row: empty bags give zeros.
	p("\tMOVQ R12, R13")
	p("\tMOVQ nfull+88(FP), R14")
	p("\tTESTQ R14, R14")
	p("\tJEQ  %s_ztail", name)
	p("%s_zero:", name)
	p("\tVMOVUPS Z7, (R13)")
	p("\tVMOVUPS Z7, 64(R13)")
	p("\tADDQ $128, R13")
	p("\tDECQ R14")
	p("\tJNE  %s_zero", name)
	p("%s_ztail:", name)
	p("\tVMOVUPS Z7, K2, (R13)")
	p("\tVMOVUPS Z7, K3, 64(R13)")

	p("\tMOVLQSX 4(DI), CX")
	p("\tMOVLQSX (DI), AX")
	p("\tSUBQ AX, CX")
	p("\tJEQ  %s_next", name)

	p("%s_row:", name)
	prefetch(name)
	p("\tMOVQ (SI), AX")
	p("\tMOVQ AX, DX")
	p("\tIMULQ rb+16(FP), AX")
	p("\tADDQ R8, AX")
	p("\tIMULQ ns+24(FP), DX")
	p("\tADDQ R9, DX")
	if weighted {
		p("\tVBROADCASTSS (R10), Z12")
	}
	p("\tADDQ R11, R10")
	p("\tMOVQ R12, R13")
	p("\tMOVQ nfull+88(FP), R14")
	p("\tTESTQ R14, R14")
	p("\tJEQ  %s_tail", name)
	p("%s_block:", name)
	decode(f, weighted, true, 0)
	p("\tVADDPS (R13), Z2, Z2")
	p("\tVADDPS 64(R13), Z3, Z3")
	p("\tVMOVUPS Z2, (R13)")
	p("\tVMOVUPS Z3, 64(R13)")
	p("\tADDQ $%d, AX", 4*f.bits)
	p("\tINCQ DX")
	p("\tADDQ $128, R13")
	p("\tDECQ R14")
	p("\tJNE  %s_block", name)

	p("%s_tail:", name)
	p("\tCMPQ tail+96(FP), $0")
	p("\tJEQ  %s_rowdone", name)
	// The short last block: only its code bytes are loaded and only its
	// elements stored (masked loads do not fault past the table's end).
	if f.bits == 4 {
		p("\tVMOVDQU8.Z (AX), K1, X0")
	} else {
		p("\tVMOVDQU8.Z (AX), K1, Y0")
	}
	decode(f, weighted, false, 0)
	p("\tVMOVUPS.Z (R13), K2, Z8")
	p("\tVMOVUPS.Z 64(R13), K3, Z9")
	p("\tVADDPS Z8, Z2, Z2")
	p("\tVADDPS Z9, Z3, Z3")
	p("\tVMOVUPS Z2, K2, (R13)")
	p("\tVMOVUPS Z3, K3, 64(R13)")

	p("%s_rowdone:", name)
	p("\tADDQ $8, SI")
	p("\tDECQ CX")
	p("\tJNE  %s_row", name)

	p("%s_next:", name)
	p("\tADDQ $4, DI")
	p("\tMOVQ ldo+80(FP), AX")
	p("\tLEAQ (R12)(AX*4), R12")
	p("\tDECQ nbags+64(FP)")
	p("\tJNE  %s_bag", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// maxRegBlocks is the most whole blocks a row may have for the
// register-accumulating kernels (regKernel): with the short block, up to
// 2·(maxRegBlocks+1) accumulators, Z21 on.
const maxRegBlocks = 4

// regKernel writes the register-accumulating kernel of f, for rows of at
// most maxRegBlocks whole blocks (dim < 160): it takes the generic
// kernel's arguments and the same decode, but keeps each bag's sums in
// Z21.. (zeroed per bag, as the Go bag clears its output row) and stores
// them once per bag, where the generic kernel adds each row into the
// output row in memory. One body per whole-block count (nfull, chosen on
// entry), the blocks unrolled; the short block, when tail > 0, is
// accumulated whole (its masked-off lanes hold the decode of zero codes)
// and stored under K2/K3.
func regKernel(f format, weighted bool) {
	name := "mxbag512" + f.name + "R"
	if weighted {
		name += "W"
	}
	out.Text(name, sig, frameArgs)
	p("\tMOVQ codes+0(FP), R8")
	p("\tMOVQ scales+8(FP), R9")
	p("\tMOVQ idx+32(FP), SI")
	p("\tMOVQ offs+40(FP), DI")
	p("\tMOVQ w+48(FP), R10")
	p("\tMOVQ wstep+56(FP), R11")
	p("\tMOVQ out+72(FP), R12")
	setup(f)
	p("\tMOVQ slut+112(FP), BX")
	p("\tMOVQ masks+120(FP), AX")
	p("\tKMOVQ (AX), K1")
	p("\tKMOVQ 8(AX), K2")
	p("\tKMOVQ 16(AX), K3")
	p("\tMOVQ nfull+88(FP), AX")
	for nb := range maxRegBlocks {
		p("\tCMPQ AX, $%d", nb)
		p("\tJEQ  %s_b%d_bag", name, nb)
	}
	p("\tJMP  %s_b%d_bag", name, maxRegBlocks)
	acc := func(i int) string { return fmt.Sprintf("Z%d", 21+i) }
	for nb := 0; nb <= maxRegBlocks; nb++ {
		l := fmt.Sprintf("%s_b%d", name, nb)
		p("%s_bag:", l)
		for i := range 2*nb + 2 {
			p("\tVPXORD %s, %s, %s", acc(i), acc(i), acc(i))
		}
		p("\tMOVLQSX 4(DI), CX")
		p("\tMOVLQSX (DI), AX")
		p("\tSUBQ AX, CX")
		p("\tJEQ  %s_store", l)
		p("%s_row:", l)
		prefetch(l)
		p("\tMOVQ (SI), AX")
		p("\tMOVQ AX, DX")
		p("\tIMULQ rb+16(FP), AX")
		p("\tADDQ R8, AX")
		p("\tIMULQ ns+24(FP), DX")
		p("\tADDQ R9, DX")
		if weighted {
			p("\tVBROADCASTSS (R10), Z12")
		}
		p("\tADDQ R11, R10")
		for b := range nb {
			decode(f, weighted, true, b)
			p("\tVADDPS Z2, %s, %s", acc(2*b), acc(2*b))
			p("\tVADDPS Z3, %s, %s", acc(2*b+1), acc(2*b+1))
		}
		p("\tCMPQ tail+96(FP), $0")
		p("\tJEQ  %s_rowdone", l)
		if f.bits == 4 {
			p("\tVMOVDQU8.Z %d(AX), K1, X0", nb*4*f.bits)
		} else {
			p("\tVMOVDQU8.Z %d(AX), K1, Y0", nb*4*f.bits)
		}
		decode(f, weighted, false, nb)
		p("\tVADDPS Z2, %s, %s", acc(2*nb), acc(2*nb))
		p("\tVADDPS Z3, %s, %s", acc(2*nb+1), acc(2*nb+1))
		p("%s_rowdone:", l)
		p("\tADDQ $8, SI")
		p("\tDECQ CX")
		p("\tJNE  %s_row", l)
		p("%s_store:", l)
		for b := range nb {
			p("\tVMOVUPS %s, %d(R12)", acc(2*b), 128*b)
			p("\tVMOVUPS %s, %d(R12)", acc(2*b+1), 128*b+64)
		}
		p("\tVMOVUPS %s, K2, %d(R12)", acc(2*nb), 128*nb)
		p("\tVMOVUPS %s, K3, %d(R12)", acc(2*nb+1), 128*nb+64)
		p("\tADDQ $4, DI")
		p("\tMOVQ ldo+80(FP), AX")
		p("\tLEAQ (R12)(AX*4), R12")
		p("\tDECQ nbags+64(FP)")
		p("\tJNE  %s_bag", l)
		p("\tVZEROUPPER")
		p("\tRET")
	}
}

// prefetch requests the code row pfdist indices ahead (pflines cache lines
// from its start and its last byte) and that row's scales, while that
// index is below pfend: uniform lookups into a big table are DRAM
// accesses, which the row being decoded would otherwise wait for one by
// one. R13, R14 and R15 are free at the top of the row loop.
func prefetch(name string) {
	p("\tMOVQ pfdist+128(FP), R15")
	p("\tTESTQ R15, R15")
	p("\tJEQ  %s_nopf", name)
	p("\tLEAQ (SI)(R15*8), R15")
	p("\tCMPQ R15, pfend+136(FP)")
	p("\tJAE  %s_nopf", name)
	p("\tMOVQ (R15), R15")
	p("\tMOVQ R15, R13")
	p("\tIMULQ ns+24(FP), R13")
	p("\tPREFETCHT2 (R9)(R13*1)")
	p("\tIMULQ rb+16(FP), R15")
	p("\tADDQ R8, R15")
	p("\tMOVQ rb+16(FP), R13")
	p("\tPREFETCHT2 -1(R15)(R13*1)")
	p("\tMOVQ pflines+144(FP), R14")
	p("%s_pf:", name)
	p("\tPREFETCHT2 (R15)")
	p("\tADDQ $64, R15")
	p("\tDECQ R14")
	p("\tJNE  %s_pf", name)
	p("%s_nopf:", name)
}

// setup loads the constants of f's decode into registers: FP4's 16-entry
// table (Z14) and nibble mask (X13); E4M3's sign-and-magnitude mask
// (Z15), its NaN-test bytes (Z16, Z17) and a NaN (Z18); the 6-bit formats'
// byte shuffles (Z16, Z17), shift counts (Z18) and sign-and-magnitude mask
// (Z19).
func setup(f format) {
	bcst := func(v uint32, z string) {
		p("\tMOVL $0x%08x, AX", v)
		p("\tVPBROADCASTD AX, %s", z)
	}
	switch f.name {
	case "FP4":
		p("\tMOVQ lut+104(FP), AX")
		p("\tVMOVUPS (AX), Z14")
		bcst(0x0f0f0f0f, "Z13")
	case "E4M3":
		bcst(0x87f00000, "Z15")
		bcst(0x01010101, "Z16")
		bcst(0x7f7f7f7f, "Z17")
		bcst(0x7fc00000, "Z18")
	case "E3M2", "E2M3":
		p("\tVMOVDQU32 mxbagFP6<>+0(SB), Z16")
		p("\tVMOVDQU32 mxbagFP6<>+64(SB), Z17")
		p("\tVBROADCASTI32X4 mxbagFP6<>+128(SB), Z18")
		bcst(f.mask, "Z19")
	}
}

// decode turns the block's codes into its 32 values in Z2 (elements
// 0..15) and Z3 (16..31), times the block's scale (Z5, from the scale
// table: mxScaleLUT, for INT8 mxScaleLUT/64, and for the expScale formats
// an exponent for VSCALEFPS, which multiplies by its power of two with one
// rounding), then times the weight when weighted: the Go bag's
// float32(t[q]*s) and float32(w*v), one rounding each, t[q] formed
// exactly or as t[q]·2^-k with the 2^k in the exponent (t[q]·2^-k·2^(e+k)
// is the real number t[q]·2^e, rounded once as the Go bag rounds it).
// Whole blocks (mem) are read from (AX), only their own bytes; the short
// block is in X0 (FP4) or Y0, loaded under the byte mask.
//
//   - FP4: nibbles are interleaved back into element order as bytes,
//     widened to dwords and looked up with VPERMPS in Z14.
//   - INT8: bytes sign-extended to dwords and converted (exact); the scale
//     table carries the 2^-6 of the element (q/64·s = q·(s/64), both exact
//     products of the same real number, rounded once).
//   - E5M2: a code is the high byte of the IEEE half of the same value,
//     Inf and NaN included: VCVTPH2PS is exact.
//   - E4M3: the code sign-extended to a dword, shifted left by 20 and
//     masked is the float32 S.0000EEEE.MMM000... (the code's magnitude in
//     the low bits of the exponent and the mantissa's top): the value
//     times 2^-120, normal or subnormal (a float32 subnormal) alike (k =
//     120). The codes S.1111.111 are NaN: those whose code+1 has no bit of
//     0x7F set get a NaN instead (VPTESTNMB, a blend under the mask).
//   - E3M2 and E2M3: each group of three bytes holds four codes (a
//     little-endian bit stream); the group is shuffled into the four dwords
//     of a 128-bit lane (groups 0..3 from bytes 0..15 broadcast to every
//     lane, groups 4..7 from bytes 8..23) and shifted left by 26, 20, 14, 8
//     so that a dword's code is at bits 26..31; an arithmetic shift right
//     by sra and the mask leave the float32 S.0000EEE.MM000... (E3M2, k =
//     124) or S.00000EE.MMM000... (E2M3, k = 126): the value times 2^-k,
//     normal, subnormal (a float32 subnormal) or -0.
func decode(f format, weighted, mem bool, blk int) {
	off := blk * 4 * f.bits // the block's first code byte, from AX
	p("\tMOVBLZX %d(DX), R15", blk)
	p("\tVBROADCASTSS (BX)(R15*4), Z5")
	// src16 is a source operand of the first or second 16 byte codes.
	src16 := func(half int) string {
		if mem {
			return fmt.Sprintf("%d(AX)", off+16*half)
		}
		if half == 1 {
			p("\tVEXTRACTI128 $1, Y0, X1")
			return "X1"
		}
		return "X0"
	}
	switch f.name {
	case "FP4":
		if mem {
			p("\tVMOVDQU %d(AX), X0", off)
		}
		p("\tVPSRLW $4, X0, X1")
		p("\tVPAND X13, X0, X0")
		p("\tVPAND X13, X1, X1")
		p("\tVPUNPCKLBW X1, X0, X2")
		p("\tVPUNPCKHBW X1, X0, X3")
		p("\tVPMOVZXBD X2, Z2")
		p("\tVPMOVZXBD X3, Z3")
		p("\tVPERMPS Z14, Z2, Z2")
		p("\tVPERMPS Z14, Z3, Z3")
	case "INT8":
		p("\tVPMOVSXBD %s, Z2", src16(0))
		p("\tVPMOVSXBD %s, Z3", src16(1))
		p("\tVCVTDQ2PS Z2, Z2")
		p("\tVCVTDQ2PS Z3, Z3")
	case "E5M2":
		p("\tVPMOVZXBW %s, Y2", src16(0))
		p("\tVPMOVZXBW %s, Y3", src16(1))
		p("\tVPSLLW $8, Y2, Y2")
		p("\tVPSLLW $8, Y3, Y3")
		p("\tVCVTPH2PS Y2, Z2")
		p("\tVCVTPH2PS Y3, Z3")
	case "E4M3":
		p("\tVPMOVSXBD %s, Z2", src16(0))
		p("\tVPMOVSXBD %s, Z3", src16(1))
		if mem {
			p("\tVPADDB %d(AX), Y16, Y4", off)
		} else {
			p("\tVPADDB Y0, Y16, Y4")
		}
		p("\tVPTESTNMB Y17, Y4, K4")
		p("\tVPSLLD $20, Z2, Z2")
		p("\tVPSLLD $20, Z3, Z3")
		p("\tVPANDD Z15, Z2, Z2")
		p("\tVPANDD Z15, Z3, Z3")
		p("\tKSHIFTRD $16, K4, K5")
		p("\tVMOVAPS Z18, K4, Z2")
		p("\tVMOVAPS Z18, K5, Z3")
	case "E3M2", "E2M3":
		if mem {
			p("\tVBROADCASTI32X4 %d(AX), Z0", off)
			p("\tVBROADCASTI32X4 %d(AX), Z1", off+8)
		} else {
			p("\tVALIGNQ $1, Z0, Z0, Z1")
			p("\tVSHUFI32X4 $0, Z0, Z0, Z0")
			p("\tVSHUFI32X4 $0, Z1, Z1, Z1")
		}
		p("\tVPSHUFB Z16, Z0, Z0")
		p("\tVPSHUFB Z17, Z1, Z1")
		p("\tVPSLLVD Z18, Z0, Z2")
		p("\tVPSLLVD Z18, Z1, Z3")
		p("\tVPSRAD $%d, Z2, Z2", f.sra)
		p("\tVPSRAD $%d, Z3, Z3", f.sra)
		p("\tVPANDD Z19, Z2, Z2")
		p("\tVPANDD Z19, Z3, Z3")
	}
	if f.expScale {
		p("\tVSCALEFPS Z5, Z2, Z2")
		p("\tVSCALEFPS Z5, Z3, Z3")
	} else {
		p("\tVMULPS Z5, Z2, Z2")
		p("\tVMULPS Z5, Z3, Z3")
	}
	if weighted {
		p("\tVMULPS Z12, Z2, Z2")
		p("\tVMULPS Z12, Z3, Z3")
	}
}

// format is a kernel's code layout and decode: FP4 (mxfp4's nibbles), E3M2
// and E2M3 (mxfp6), INT8 (mxint8), E5M2 and E4M3 (mxfp8).
type format struct {
	name string
	bits int
	// expScale: Z5 is an exponent (VSCALEFPS) rather than a factor.
	expScale bool
	// sra and mask: the 6-bit formats' shift and mask of a code at bits
	// 26..31 into a float32's sign, exponent and mantissa.
	sra  int
	mask uint32
}

var formats = []format{
	{name: "FP4", bits: 4},
	{name: "E3M2", bits: 6, expScale: true, sra: 5, mask: 0x83e00000},
	{name: "E2M3", bits: 6, expScale: true, sra: 6, mask: 0x81f00000},
	{name: "INT8", bits: 8},
	{name: "E5M2", bits: 8},
	{name: "E4M3", bits: 8, expScale: true},
}

// fp6Const writes the 6-bit formats' constants (mxbagFP6<>): the byte
// shuffles of the first and second 16 codes, 64 bytes each, then the left
// shift counts, 16 bytes (every 128-bit lane the same). Lane L's four
// dwords are the three bytes of group L, taken from bytes 0..15 of the
// block (broadcast to every lane), or of group 4+L, from bytes 8..23 (where
// it starts at 4+3L); their fourth byte is zero. The codes at bits 0, 6,
// 12, 18 of a group are shifted left to bits 26..31.
func fp6Const() {
	var b []byte
	for _, first := range []int{0, 4} {
		for l := range 4 {
			for range 4 {
				g := first + 3*l
				b = append(b, byte(g), byte(g+1), byte(g+2), 0x80)
			}
		}
	}
	for _, n := range []byte{26, 20, 14, 8} {
		b = append(b, n, 0, 0, 0)
	}
	p("")
	for i := 0; i < len(b); i += 8 {
		var q uint64
		for j := 7; j >= 0; j-- {
			q = q<<8 | uint64(b[i+j])
		}
		p("DATA mxbagFP6<>+%d(SB)/8, $0x%016x", i, q)
	}
	p("GLOBL mxbagFP6<>(SB), RODATA|NOPTR, $%d", len(b))
}

func main() {
	out.Header("go run ./internal/gen/mxbag")
	p("// The fused MX bag's AVX-512 kernels; see internal/gen/mxbag.")
	fp6Const()
	for _, f := range formats {
		kernel(f, false)
		kernel(f, true)
		regKernel(f, false)
		regKernel(f, true)
	}
	if err := out.Write("mxbag_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
