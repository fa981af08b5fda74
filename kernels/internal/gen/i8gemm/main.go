package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

const (
	mr512  = 12  // AVX-512 row block: 24 accumulators + 2 B + 2 broadcast + 4 epilogue registers
	mr256  = 6   // AVX2 row block: 12 accumulators + 2 B + 1 A + 1 product
	unroll = 4   // k groups per loop iteration
	pstep  = 128 // bytes of one packed k group of a panel (32 columns x 4 k)
)

// Flag bits of the kernels' flags argument; must match kernels/i8gemm.go.
const (
	flagReLU = 1
	flagU8   = 2
	flagS32  = 4
	flagTail = 8
)

var out = asmgen.New()

var p = out.P

// nsets is how many independent accumulator sets a kernel of mr rows keeps
// so that enough VPDPBUSD chains are in flight for the latency (as in
// gen/sgemm); the sets are summed (exactly: integers) before the epilogue.
func nsets(mr int) int {
	switch {
	case mr == 1:
		return 4
	case mr <= 3:
		return 2
	}
	return 1
}

// acc is the accumulator register number for set s, row i, vector v.
func acc(mr, s, i, v int) int { return s*2*mr + 2*i + v }

// rowAddr is A row i's address at byte displacement disp.
var rowAddr = asmgen.RowAddr

// prefetchC requests the block's C tile (mr rows of 128 bytes at DX,
// ldc R12) before the k loop: where C is larger than the caches (a
// 2048 x 1024 fp32 output is 8 MiB), each of the tile's stores would
// otherwise miss at the end of the block, all at once, with no work left
// to hide them behind. Prefetches never fault, so columns past N are
// harmless. Clobbers AX.
func prefetchC(mr int) {
	p("\tMOVQ DX, AX")
	out.StoreRows(mr, "AX", func(i int) {
		p("\tPREFETCHT0 (AX)")
		p("\tPREFETCHT0 64(AX)")
	})
}

// kloop is the loop over the kg full k groups of every kernel: a step
// reads A at displacement 4u; the k tail (atail) follows at name_ktail.
var kloop = asmgen.KLoop{KArg: "kg+24(FP)", Unroll: unroll, Pstep: pstep, Tail: "_rest", Tail1: "_rest1", Done: "_ktail"}

// Argument frame (both kernel families share the Go signature):
//
//	a+0 lda+8 b+16 kg+24 atail+32 c+40 ldc+48 colsum+56 wscale+64 bias+72
//	mask+80 azero+88 ascale+96 qstride+104 flags+112 outInv+120 outZero+124 nblk+128
const sig = "(a *uint8, lda int, b *int8, kg int, atail *uint32, c unsafe.Pointer, ldc int, colsum *int32, wscale *float32, bias *float32, mask uint64, azero *int32, ascale *float32, qstride int, flags int, outInv float32, outZero int32, nblk int)"

// prologue loads the loop-invariant registers shared by both families.
func prologue() {
	p("\tMOVQ lda+8(FP), R8")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tMOVQ ldc+48(FP), R12")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ c+40(FP), DX")
	p("\tMOVQ nblk+128(FP), R13")
	p("\tXORQ R14, R14 // row index of the block within this call, for azero/ascale/atail")
}

// epiloguePointers sets DI = azero and R11 = ascale for the block's first
// row (R14 rows in, stride qstride bytes, 0 for per-tensor), R10 = qstride.
func epiloguePointers() {
	p("\tMOVQ qstride+104(FP), R10")
	p("\tMOVQ R14, AX")
	p("\tIMULQ R10, AX")
	p("\tMOVQ azero+88(FP), DI")
	p("\tADDQ AX, DI")
	p("\tMOVQ ascale+96(FP), R11")
	p("\tADDQ AX, R11")
}

// nextBlock advances A, C and the row index by mr rows and loops.
func nextBlock(name string, mr int) {
	p("%s_next:", name)
	p("\tIMUL3Q $%d, R8, AX", mr)
	p("\tADDQ AX, SI")
	p("\tIMUL3Q $%d, R12, AX", mr)
	p("\tADDQ AX, DX")
	p("\tADDQ $%d, R14", mr)
	p("\tDECQ R13")
	p("\tJNE  %s_block", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

func gen512(mr int) {
	name := fmt.Sprintf("i8gemm512x%d", mr)
	ns := nsets(mr)
	out.Text(name, sig, 136)
	prologue()
	out.Masks512("mask+80(FP)")
	p("\t// Z28 = ReLU floor: max(floor, y) is ReLU for floor = 0 and the identity for -Inf (NaN kept either way).")
	p("\tVPXORD Z28, Z28, Z28")
	p("\tMOVQ flags+112(FP), AX")
	p("\tTESTQ $%d, AX", flagReLU)
	p("\tJNE  %s_relu", name)
	p("\tVPBROADCASTD i8const<>+12(SB), Z28")
	p("%s_relu:", name)
	p("\tVBROADCASTSS outInv+120(FP), Z29")
	p("%s_block:", name)
	for r := 0; r < 2*mr*ns; r++ {
		p("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	out.RowPointers(mr)
	prefetchC(mr)
	step := func(u int) {
		s := u % ns
		p("\tVMOVDQU32 %d(BX), Z24", u*pstep)
		p("\tVMOVDQU32 %d(BX), Z25", u*pstep+64)
		for i := 0; i < mr; i++ {
			bc := 26 + i%2
			p("\tVPBROADCASTD %s, Z%d", rowAddr(i, 4*u), bc)
			p("\tVPDPBUSD Z24, Z%d, Z%d", bc, acc(mr, s, i, 0))
			p("\tVPDPBUSD Z25, Z%d, Z%d", bc, acc(mr, s, i, 1))
		}
	}
	out.KLoop(kloop, name, mr, step)
	p("\t// The last K%%4 bytes of each row come zero-padded from atail (one dword per row),")
	p("\t// so A is never read past K.")
	p("\tMOVQ flags+112(FP), AX")
	p("\tTESTQ $%d, AX", flagTail)
	p("\tJEQ  %s_sum", name)
	p("\tMOVQ atail+32(FP), AX")
	p("\tLEAQ (AX)(R14*4), AX")
	p("\tVMOVDQU32 (BX), Z24")
	p("\tVMOVDQU32 64(BX), Z25")
	for i := 0; i < mr; i++ {
		bc := 26 + i%2
		p("\tVPBROADCASTD %d(AX), Z%d", 4*i, bc)
		p("\tVPDPBUSD Z24, Z%d, Z%d", bc, acc(mr, 0, i, 0))
		p("\tVPDPBUSD Z25, Z%d, Z%d", bc, acc(mr, 0, i, 1))
	}
	p("%s_sum:", name)
	for s := 1; s < ns; s++ {
		for r := 0; r < 2*mr; r++ {
			p("\tVPADDD Z%d, Z%d, Z%d", s*2*mr+r, r, r)
		}
	}
	p("\tMOVQ DX, AX")
	p("\tMOVQ flags+112(FP), CX")
	p("\tTESTQ $%d, CX", flagS32)
	p("\tJEQ  %s_float", name)
	out.StoreRows(mr, "AX", func(i int) {
		p("\tVMOVDQU32 Z%d, K1, (AX)", 2*i)
		p("\tVMOVDQU32 Z%d, K2, 64(AX)", 2*i+1)
	})
	p("\tJMP  %s_next", name)
	p("%s_float:", name)
	p("\t// y = float32(acc - azero*colsum) * (ascale*wscale) + bias, each step rounded once, as i8gemm.go's epilogue.")
	p("\tMOVQ bias+72(FP), BX")
	p("\tVMOVUPS.Z (BX), K1, Z24")
	p("\tVMOVUPS.Z 64(BX), K2, Z25")
	p("\tMOVQ colsum+56(FP), BX")
	p("\tMOVQ wscale+64(FP), CX")
	epiloguePointers()
	p("\tMOVQ DX, AX")
	p("\tMOVQ flags+112(FP), R9")
	p("\tTESTQ $%d, R9", flagU8)
	p("\tLEAQ (R8)(R8*2), R9 // restore 3*lda; LEAQ leaves the flags alone")
	p("\tJNE  %s_u8", name)
	floatRows := func(store func(i, v, r int)) {
		out.StoreRows(mr, "AX", func(i int) {
			p("\tVPBROADCASTD (DI), Z26")
			p("\tVBROADCASTSS (R11), Z27")
			p("\tADDQ R10, DI")
			p("\tADDQ R10, R11")
			for v := 0; v < 2; v++ {
				r := 2*i + v
				p("\tVPMULLD %d(BX), Z26, Z30", 64*v)
				p("\tVPSUBD Z30, Z%d, Z%d", r, r)
				p("\tVCVTDQ2PS Z%d, Z%d", r, r)
				p("\tVMULPS %d(CX), Z27, Z31", 64*v)
				p("\tVMULPS Z31, Z%d, Z%d", r, r)
				p("\tVADDPS Z%d, Z%d, Z%d", 24+v, r, r)
				p("\tVMAXPS Z%d, Z28, Z%d", r, r)
				store(i, v, r)
			}
		})
	}
	floatRows(func(i, v, r int) {
		p("\tVMOVUPS Z%d, K%d, %d(AX)", r, v+1, 64*v)
	})
	p("\tJMP  %s_next", name)
	p("%s_u8:", name)
	floatRows(func(i, v, r int) {
		p("\t// q = clamp(rne(clamp(y*outInv, -512, 512)) + outZero, 0, 255); NaN -> -512 -> 0.")
		p("\tVMULPS Z29, Z%d, Z%d", r, r)
		p("\tVMAXPS.BCST i8const<>+0(SB), Z%d, Z%d", r, r)
		p("\tVMINPS.BCST i8const<>+4(SB), Z%d, Z%d", r, r)
		p("\tVCVTPS2DQ Z%d, Z%d", r, r)
		p("\tVBROADCASTSS outZero+124(FP), Z31 // the int32 bits, broadcast")
		p("\tVPADDD Z31, Z%d, Z%d", r, r)
		p("\tVPMAXSD.BCST i8const<>+8(SB), Z%d, Z%d", r, r)
		p("\tVPMOVUSDB Z%d, K%d, %d(AX)", r, v+1, 16*v)
	})
	nextBlock(name, mr)
}

// gen256 writes the AVX2 kernel for mr rows and 8 columns (at byte offset
// 4*(column%32) in a panel). A k group of 4 columns is 16 bytes: VPMOVSXBW
// widens it to 16 words [c0k0..c0k3, c1k0..], the row's 4 A bytes are
// broadcast and zero-extended to [a0..a3] x 4, and VPMADDWD leaves per
// column two exact partial sums (k0+k1, k2+k3) in adjacent dwords, added
// into the accumulators with VPADDD and folded with VPHADDD at the end.
func gen256(mr int) {
	name := fmt.Sprintf("i8gemm256x%d", mr)
	out.Text(name, sig, 136)
	prologue()
	p("%s_block:", name)
	for r := 0; r < 2*mr; r++ {
		p("\tVPXOR Y%d, Y%d, Y%d", r, r, r)
	}
	out.RowPointers(mr)
	group := func(bdisp int, arow func(i int) string) {
		p("\tVPMOVSXBW %d(BX), Y12", bdisp)
		p("\tVPMOVSXBW %d(BX), Y13", bdisp+16)
		for i := 0; i < mr; i++ {
			p("\tVPBROADCASTD %s, X14", arow(i))
			p("\tVPMOVZXBW X14, Y14")
			p("\tVPMADDWD Y12, Y14, Y15")
			p("\tVPADDD Y15, Y%d, Y%d", 2*i, 2*i)
			p("\tVPMADDWD Y13, Y14, Y15")
			p("\tVPADDD Y15, Y%d, Y%d", 2*i+1, 2*i+1)
		}
	}
	out.KLoop(kloop, name, mr, func(u int) {
		group(u*pstep, func(i int) string { return rowAddr(i, 4*u) })
	})
	p("\tMOVQ flags+112(FP), AX")
	p("\tTESTQ $%d, AX", flagTail)
	p("\tJEQ  %s_sum", name)
	p("\tMOVQ atail+32(FP), AX")
	p("\tLEAQ (AX)(R14*4), AX")
	group(0, func(i int) string { return fmt.Sprintf("%d(AX)", 4*i) })
	p("%s_sum:", name)
	p("\t// Fold the pairs: row i's 8 columns end up in order in Y(2i).")
	for i := 0; i < mr; i++ {
		p("\tVPHADDD Y%d, Y%d, Y%d", 2*i+1, 2*i, 2*i)
		p("\tVPERMQ $0xd8, Y%d, Y%d", 2*i, 2*i)
	}
	p("\tMOVQ DX, AX")
	p("\tMOVQ flags+112(FP), CX")
	p("\tTESTQ $%d, CX", flagS32)
	p("\tJEQ  %s_float", name)
	out.StoreRows(mr, "AX", func(i int) {
		p("\tVMOVDQU Y%d, (AX)", 2*i)
	})
	p("\tJMP  %s_next", name)
	p("%s_float:", name)
	p("\tMOVQ colsum+56(FP), BX")
	p("\tVMOVDQU (BX), Y12")
	p("\tMOVQ wscale+64(FP), BX")
	p("\tVMOVUPS (BX), Y13")
	p("\tMOVQ bias+72(FP), BX")
	p("\tVMOVUPS (BX), Y14")
	p("\tVXORPS Y15, Y15, Y15")
	p("\tTESTQ $%d, CX", flagReLU)
	p("\tJNE  %s_relu", name)
	p("\tVPBROADCASTD i8const<>+12(SB), Y15")
	p("%s_relu:", name)
	p("\tVBROADCASTSS outInv+120(FP), Y1")
	p("\tVBROADCASTSS outZero+124(FP), Y11 // the int32 bits, broadcast")
	epiloguePointers()
	p("\tMOVQ DX, AX")
	p("\tTESTQ $%d, CX", flagU8)
	p("\tJNE  %s_u8", name)
	floatRows := func(store func(r int)) {
		out.StoreRows(mr, "AX", func(i int) {
			r := 2 * i
			p("\tVPBROADCASTD (DI), Y3")
			p("\tVBROADCASTSS (R11), Y5")
			p("\tADDQ R10, DI")
			p("\tADDQ R10, R11")
			p("\tVPMULLD Y12, Y3, Y7")
			p("\tVPSUBD Y7, Y%d, Y%d", r, r)
			p("\tVCVTDQ2PS Y%d, Y%d", r, r)
			p("\tVMULPS Y13, Y5, Y9")
			p("\tVMULPS Y9, Y%d, Y%d", r, r)
			p("\tVADDPS Y14, Y%d, Y%d", r, r)
			p("\tVMAXPS Y%d, Y15, Y%d", r, r)
			store(r)
		})
	}
	floatRows(func(r int) { p("\tVMOVUPS Y%d, (AX)", r) })
	p("\tJMP  %s_next", name)
	p("%s_u8:", name)
	floatRows(func(r int) {
		p("\tVMULPS Y1, Y%d, Y%d", r, r)
		p("\tVMAXPS i8const256<>+0(SB), Y%d, Y%d", r, r)
		p("\tVMINPS i8const256<>+32(SB), Y%d, Y%d", r, r)
		p("\tVCVTPS2DQ Y%d, Y%d", r, r)
		p("\tVPADDD Y11, Y%d, Y%d", r, r)
		p("\t// Signed-to-unsigned saturating packs clamp to [0, 255] (values are within [-512, 767]).")
		p("\tVEXTRACTI128 $1, Y%d, X7", r)
		p("\tVPACKUSDW X7, X%d, X%d", r, r)
		p("\tVPACKUSWB X%d, X%d, X%d", r, r, r)
		p("\tVMOVQ X%d, (AX)", r)
	})
	nextBlock(name, mr)
}

const constants = `
// i8const<>: -512.0, 512.0 (the clamp window before rounding), int32 0, -Inf (no-ReLU floor).
DATA i8const<>+0(SB)/4, $0xc4000000
DATA i8const<>+4(SB)/4, $0x44000000
DATA i8const<>+8(SB)/4, $0
DATA i8const<>+12(SB)/4, $0xff800000
GLOBL i8const<>(SB), RODATA|NOPTR, $16

// i8const256<>: 8 x -512.0, 8 x 512.0 for the AVX2 epilogue's memory operands.
DATA i8const256<>+0(SB)/8, $0xc4000000c4000000
DATA i8const256<>+8(SB)/8, $0xc4000000c4000000
DATA i8const256<>+16(SB)/8, $0xc4000000c4000000
DATA i8const256<>+24(SB)/8, $0xc4000000c4000000
DATA i8const256<>+32(SB)/8, $0x4400000044000000
DATA i8const256<>+40(SB)/8, $0x4400000044000000
DATA i8const256<>+48(SB)/8, $0x4400000044000000
DATA i8const256<>+56(SB)/8, $0x4400000044000000
GLOBL i8const256<>(SB), RODATA|NOPTR, $64
`

// quantKernels are the AVX-512 activation quantizers (see quant.go for the
// rule they implement, and quantU8Go for the reference).
const quantKernels = `
// func i8dot512(a *uint8, lda int, w *int8, ldw int, k int, c *int32, m int, n int)
// c[i*n+j] = Σ_k a[i*lda+k]·w[j*ldw+k] for i < m, j < n: the raw sums for
// outputs too narrow for a panel (N <= 4). Full 64-byte chunks of A, then
// the last k%64 bytes with a masked load; W rows are zero-padded to ldw, a
// multiple of 64, so its loads need no mask.
TEXT ·i8dot512(SB), NOSPLIT, $0-64
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), R8
	MOVQ ldw+24(FP), R10
	MOVQ k+32(FP), R13
	MOVQ c+40(FP), DI
	MOVQ m+48(FP), R11
	// K1 selects the k%64 bytes of the tail.
	MOVQ R13, CX
	ANDQ $63, CX
	MOVQ $1, DX
	SHLQ CX, DX
	DECQ DX
	KMOVQ DX, K1
dot_row:
	MOVQ w+16(FP), BX
	MOVQ n+56(FP), R12
dot_col:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ SI, AX
	MOVQ BX, DX
	MOVQ R13, CX
	CMPQ CX, $128
	JL   dot_by64
dot_by128:
	VMOVDQU8 (AX), Z2
	VMOVDQU8 64(AX), Z3
	VPDPBUSD (DX), Z2, Z0
	VPDPBUSD 64(DX), Z3, Z1
	ADDQ $128, AX
	ADDQ $128, DX
	SUBQ $128, CX
	CMPQ CX, $128
	JGE  dot_by128
dot_by64:
	CMPQ CX, $64
	JL   dot_tail
	VMOVDQU8 (AX), Z2
	VPDPBUSD (DX), Z2, Z0
	ADDQ $64, AX
	ADDQ $64, DX
	SUBQ $64, CX
dot_tail:
	TESTQ CX, CX
	JEQ  dot_sum
	VMOVDQU8.Z (AX), K1, Z2
	VPDPBUSD (DX), Z2, Z1
dot_sum:
	VPADDD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, (DI)
	ADDQ $4, DI
	ADDQ R10, BX
	DECQ R12
	JNE  dot_col
	ADDQ R8, SI
	DECQ R11
	JNE  dot_row
	VZEROUPPER
	RET

// func quantU8x512(x *float32, n int, dst *uint8, inv float32, zero int32)
// dst[i] = clamp(rne(clamp(x[i]*inv, -512, 512)) + zero, 0, 255), NaN -> -512.
TEXT ·quantU8x512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ dst+16(FP), DI
	VBROADCASTSS inv+24(FP), Z0
	VBROADCASTSS zero+28(FP), Z1 // the int32 bits, broadcast
	VBROADCASTSS i8const<>+0(SB), Z2
	VBROADCASTSS i8const<>+4(SB), Z3
	VPXORD Z4, Z4, Z4
	CMPQ CX, $64
	JL   q_by16
q_by64:
	VMULPS (SI), Z0, Z5
	VMULPS 64(SI), Z0, Z6
	VMULPS 128(SI), Z0, Z7
	VMULPS 192(SI), Z0, Z8
	VMAXPS Z2, Z5, Z5
	VMAXPS Z2, Z6, Z6
	VMAXPS Z2, Z7, Z7
	VMAXPS Z2, Z8, Z8
	VMINPS Z3, Z5, Z5
	VMINPS Z3, Z6, Z6
	VMINPS Z3, Z7, Z7
	VMINPS Z3, Z8, Z8
	VCVTPS2DQ Z5, Z5
	VCVTPS2DQ Z6, Z6
	VCVTPS2DQ Z7, Z7
	VCVTPS2DQ Z8, Z8
	VPADDD Z1, Z5, Z5
	VPADDD Z1, Z6, Z6
	VPADDD Z1, Z7, Z7
	VPADDD Z1, Z8, Z8
	VPMAXSD Z4, Z5, Z5
	VPMAXSD Z4, Z6, Z6
	VPMAXSD Z4, Z7, Z7
	VPMAXSD Z4, Z8, Z8
	VPMOVUSDB Z5, (DI)
	VPMOVUSDB Z6, 16(DI)
	VPMOVUSDB Z7, 32(DI)
	VPMOVUSDB Z8, 48(DI)
	ADDQ $256, SI
	ADDQ $64, DI
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  q_by64
q_by16:
	TESTQ CX, CX
	JEQ  q_done
	// Up to 16 left: a masked load and store touch none past n.
	MOVQ $0xffff, AX
	CMPQ CX, $16
	JGE  q_mask
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
q_mask:
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z5
	VMULPS Z0, Z5, Z5
	VMAXPS Z2, Z5, Z5
	VMINPS Z3, Z5, Z5
	VCVTPS2DQ Z5, Z5
	VPADDD Z1, Z5, Z5
	VPMAXSD Z4, Z5, Z5
	VPMOVUSDB Z5, K1, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
	JG   q_by16
q_done:
	VZEROUPPER
	RET

// func minMax512(x *float32, n int) (lo float32, hi float32)
// lo = min(0, x...), hi = max(0, x...), NaN ignored: the operand order of
// VMINPS/VMAXPS returns the accumulator when the element is NaN.
TEXT ·minMax512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $32
	JL   mm_by16
mm_by32:
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMINPS Z0, Z4, Z0
	VMAXPS Z1, Z4, Z1
	VMINPS Z2, Z5, Z2
	VMAXPS Z3, Z5, Z3
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  mm_by32
mm_by16:
	TESTQ CX, CX
	JLE  mm_reduce
	// Masked-off lanes load as 0, which the range includes anyway.
	MOVQ $0xffff, AX
	CMPQ CX, $16
	JGE  mm_mask
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
mm_mask:
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMINPS Z0, Z4, Z0
	VMAXPS Z1, Z4, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP  mm_by16
mm_reduce:
	VMINPS Z2, Z0, Z0
	VMAXPS Z3, Z1, Z1
	VEXTRACTF64X4 $1, Z0, Y2
	VEXTRACTF64X4 $1, Z1, Y3
	VMINPS Y2, Y0, Y0
	VMAXPS Y3, Y1, Y1
	VEXTRACTF128 $1, Y0, X2
	VEXTRACTF128 $1, Y1, X3
	VMINPS X2, X0, X0
	VMAXPS X3, X1, X1
	VPERMILPS $0x4e, X0, X2
	VPERMILPS $0x4e, X1, X3
	VMINPS X2, X0, X0
	VMAXPS X3, X1, X1
	VPERMILPS $0xb1, X0, X2
	VPERMILPS $0xb1, X1, X3
	VMINSS X2, X0, X0
	VMAXSS X3, X1, X1
	VMOVSS X0, lo+16(FP)
	VMOVSS X1, hi+20(FP)
	VZEROUPPER
	RET
`

func main() {
	out.Header("kernels/internal/gen/i8gemm")
	p("// Micro-kernels for PackedI8's GEMMs. Each computes nblk consecutive blocks of mr rows of")
	p("// C[:, panel] for u8 A and a packed s8 panel: a panel k group holds 4 consecutive k of each")
	p("// of its 32 columns in one dword, so a k group is a broadcast of the row's 4 A bytes times")
	p("// the group (VPDPBUSD: exact u8*s8 products summed into s32). The epilogue then stores the")
	p("// raw s32 sums, or the dequantized float (bias, ReLU), or that requantized to u8.")
	p("// Registers: SI = A block, R11/DI/R10 = rows 0/4/8 moving along k, R8 = lda, R9 = 3*lda,")
	p("// BX = panel, CX = groups left, DX = C block, R12 = ldc (bytes), R13 = blocks left,")
	p("// R14 = first row of the block within the call.")
	p(constants)
	for mr := 1; mr <= mr512; mr++ {
		gen512(mr)
	}
	p("")
	p("// AVX2 kernels: 8 columns, no masking; the Go caller pads bias and stages partial C tiles.")
	for mr := 1; mr <= mr256; mr++ {
		gen256(mr)
	}
	p(quantKernels)
	if err := out.Write("i8gemm_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
