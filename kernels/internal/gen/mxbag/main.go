package main

import (
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

var out = asmgen.New()

var p = out.P

const sig = "(codes *byte, scales *byte, rb int, ns int, idx *int64, offs *int32, w *float32, wstep int, nbags int, out *float32, ldo int, nfull int, tail int, lut *float32, slut *float32, masks *uint64, pfdist int, pfend uintptr, pflines int)"

const frameArgs = 152

// Registers: R8 codes, R9 scales, R10 the weight pointer, R11 its step in
// bytes (0 for unweighted calls), SI the current index, DI the bag's
// offsets entry, R12 the bag's output row, BX the scale LUT (mxScaleLUT),
// Z14 the 16-entry value LUT, X13 sixteen 0x0F bytes, Z7 zeros, Z12 the
// broadcast weight, K1 the tail block's code-byte load mask, K2/K3 the
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
	if f.bits == 4 {
		p("\tMOVQ lut+104(FP), AX")
		p("\tVMOVUPS (AX), Z14")
	}
	p("\tMOVQ slut+112(FP), BX")
	p("\tMOVQ masks+120(FP), AX")
	p("\tKMOVQ (AX), K1")
	p("\tKMOVQ 8(AX), K2")
	p("\tKMOVQ 16(AX), K3")
	p("\tMOVL $0x0f0f0f0f, AX")
	p("\tVMOVD AX, X13")
	p("\tVPBROADCASTD X13, X13")
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
	if f.bits == 4 {
		p("\tVMOVDQU (AX), X0")
	} else {
		p("\tVMOVDQU (AX), Y0")
	}
	decode(f, weighted)
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
	decode(f, weighted)
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

// decode turns the block's codes (X0: 16 bytes of 32 nibbles, element 2i
// in the low nibble of byte i; Y0: 32 byte codes) into its 32 values in Z2
// (elements 0..15) and Z3 (16..31), times the block's scale
// (mxScaleLUT[scale byte], Z5), then times the weight when weighted: the
// Go bag's float32(t[q]*s) and float32(w*v), one rounding each. Nibbles
// are interleaved back into element order as bytes, widened to dwords and
// looked up with VPERMPS in Z14; byte codes are widened and gathered from
// the format's 256-entry table (lut).
func decode(f format, weighted bool) {
	p("\tMOVBLZX (DX), R15")
	p("\tVBROADCASTSS (BX)(R15*4), Z5")
	if f.bits == 4 {
		p("\tVPSRLW $4, X0, X1")
		p("\tVPAND X13, X0, X0")
		p("\tVPAND X13, X1, X1")
		p("\tVPUNPCKLBW X1, X0, X2")
		p("\tVPUNPCKHBW X1, X0, X3")
		p("\tVPMOVZXBD X2, Z2")
		p("\tVPMOVZXBD X3, Z3")
		p("\tVPERMPS Z14, Z2, Z2")
		p("\tVPERMPS Z14, Z3, Z3")
	} else {
		p("\tMOVQ lut+104(FP), R15")
		p("\tVEXTRACTI128 $1, Y0, X1")
		p("\tVPMOVZXBD X0, Z0")
		p("\tVPMOVZXBD X1, Z1")
		p("\tKXNORW K0, K0, K4")
		p("\tVGATHERDPS (R15)(Z0*4), K4, Z2")
		p("\tKXNORW K0, K0, K4")
		p("\tVGATHERDPS (R15)(Z1*4), K4, Z3")
	}
	p("\tVMULPS Z5, Z2, Z2")
	p("\tVMULPS Z5, Z3, Z3")
	if weighted {
		p("\tVMULPS Z12, Z2, Z2")
		p("\tVMULPS Z12, Z3, Z3")
	}
}

// format is a kernel's code layout: FP4 (mxfp4's nibbles) or B8 (the byte
// codes of mxfp8 e4m3/e5m2 and mxint8, which differ only in their table).
type format struct {
	name string
	bits int
}

func main() {
	out.Header("go run ./internal/gen/mxbag")
	p("// The fused MX bag's AVX-512 kernels; see internal/gen/mxbag.")
	for _, f := range []format{{"FP4", 4}, {"B8", 8}} {
		kernel(f, false)
		kernel(f, true)
	}
	if err := out.Write("mxbag_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
