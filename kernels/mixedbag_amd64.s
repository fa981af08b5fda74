//go:build !purego

#include "textflag.h"

// The mixed table's AVX-512 row accumulators (mixedbag_amd64.go): each adds
// n decoded values (n a multiple of the step) to o, with exactly the
// scalar code's IEEE operations, so that the results are the same bits.

// func mixedLUT4(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32)
// o[j] += lut[nibble j of codes], low nibble first; 16 values per 8 bytes.
TEXT ·mixedLUT4(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ lut+24(FP), AX
	MOVQ c+32(FP), BX
	VMOVUPS (AX), Z5         // the 16 values
	VMOVDQU32 (BX), Z6       // dword k reads the code word's dword k/8
	VMOVDQU32 64(BX), Z8     // shift of nibble k within that dword: 4·(k mod 8)
	VPBROADCASTD 192(BX), Z7 // 15
	TESTQ CX, CX
	JEQ lut4_done
lut4_loop:
	VMOVQ (SI), X0
	VPERMD Z0, Z6, Z1
	VPSRLVD Z8, Z1, Z1
	VPANDD Z7, Z1, Z1
	VPERMPS Z5, Z1, Z2
	VADDPS (DI), Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ lut4_loop
lut4_done:
	VZEROUPPER
	RET

// func mixedLUT2(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32)
// o[j] += lut[2-bit code j], lowest bits first; 16 values per 4 bytes.
TEXT ·mixedLUT2(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ lut+24(FP), AX
	MOVQ c+32(FP), BX
	VMOVUPS (AX), Z5
	VMOVDQU32 128(BX), Z8    // shift of code k: 2·k
	VPBROADCASTD 196(BX), Z7 // 3
	TESTQ CX, CX
	JEQ lut2_done
lut2_loop:
	VPBROADCASTD (SI), Z1
	VPSRLVD Z8, Z1, Z1
	VPANDD Z7, Z1, Z1
	VPERMPS Z5, Z1, Z2
	VADDPS (DI), Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ $4, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ lut2_loop
lut2_done:
	VZEROUPPER
	RET

// func mixedQ8(o *float32, codes *byte, n int, s float64, b float64, w float32)
// o[j] += float32(w · float32(s·q[j] + b)), the product and sum in double
// (s·q is exact, so the fused multiply-add rounds once, as s*q + b does);
// 8 values per 8 bytes.
TEXT ·mixedQ8(SB), NOSPLIT, $0-44
	MOVQ o+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD s+24(FP), Z1
	VBROADCASTSD b+32(FP), Z2
	VBROADCASTSS w+40(FP), Y3
	TESTQ CX, CX
	JEQ q8_done
q8_loop:
	VPMOVZXBD (SI), Y0
	VCVTDQ2PD Y0, Z0
	VFMADD213PD Z2, Z1, Z0
	VCVTPD2PS Z0, Y0
	VMULPS Y3, Y0, Y0
	VADDPS (DI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ q8_loop
q8_done:
	VZEROUPPER
	RET

// func mixedFP4(o *float32, codes *byte, n int, t *[16]float32, scales *byte, slut *[256]float32, w float32, c *[64]uint32)
// n values (a multiple of 32) of an mxfp4 row: per block of 32, the table
// of its 16 values float32(w · float32(t[q] · 2^e)) (w = 1 unweighted: the
// same bits as without it), then o[j] += table[nibble j].
TEXT ·mixedFP4(SB), NOSPLIT, $0-64
	MOVQ o+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ t+24(FP), AX
	MOVQ scales+32(FP), R8
	MOVQ slut+40(FP), R9
	VBROADCASTSS w+48(FP), Z10
	MOVQ c+56(FP), BX
	VMOVUPS (AX), Z4         // the element values
	VMOVDQU32 (BX), Z6
	VMOVDQU32 64(BX), Z8
	VPBROADCASTD 192(BX), Z7
	TESTQ CX, CX
	JEQ fp4_done
fp4_block:
	MOVBLZX (R8), AX
	VBROADCASTSS (R9)(AX*4), Z9
	VMULPS Z9, Z4, Z5
	VMULPS Z10, Z5, Z5
	VMOVQ (SI), X0
	VPERMD Z0, Z6, Z1
	VPSRLVD Z8, Z1, Z1
	VPANDD Z7, Z1, Z1
	VPERMPS Z5, Z1, Z2
	VADDPS (DI), Z2, Z2
	VMOVUPS Z2, (DI)
	VMOVQ 8(SI), X0
	VPERMD Z0, Z6, Z1
	VPSRLVD Z8, Z1, Z1
	VPANDD Z7, Z1, Z1
	VPERMPS Z5, Z1, Z2
	VADDPS 64(DI), Z2, Z2
	VMOVUPS Z2, 64(DI)
	INCQ R8
	ADDQ $16, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JNZ fp4_block
fp4_done:
	VZEROUPPER
	RET

// func mixedBag(a *mixedArgs, idx *int64, offs *int32, w *float32, wstep int, nbags int, out *float32, ldo int)
// Pools nbags bags of a mixed table whose parts are both row-wise, each
// lookup resolved through the id map, the row lookups a.pfdist ahead
// resolved too and prefetched (PREFETCHT2, as the row-wise bags), and
// every row added to its output row in memory 16 columns at a time: the
// sub-byte rows through the 16-value table of their decoded, weighted
// values (VPERMPS), int8 rows by the double-precision decode, fp32 and
// fp16 rows as the fp32 bag adds them. Each bag's output row is cleared
// first; mean is left to the caller. The last 16-column unit is masked
// (K1 its columns, the part's tail mask its code bytes), so nothing
// outside a row or an output row is read or written.
//
// Registers: R8 a, SI next lookup, DI the bag's offsets, R10 its weight
// (R11 the weight stride), R12 its output row (R13 ldo bytes), R14 bags
// left, CX lookups left in the bag; per row AX the output, DX the codes,
// BX units left, R9 the part, R15 scratch. Z31 the weight, Z5 the row's
// table, Z13/Z14 the codes 0..15 as doubles, Z15 zero, Z6/Z9/Z10 the
// nibble select, shifts and mask, Z8/Z7 the 2-bit shifts and mask.

// MIXED_RESOLVE maps the row id in AX to its part (R9: a's hot or cold
// part arguments) and index there (AX); clobbers BX, DX, R15.
#define MIXED_RESOLVE \
	MOVQ AX, BX; \
	SHRQ $6, BX; \
	SHLQ $4, BX; \
	ADDQ 0(R8), BX; \
	MOVQ (BX), DX; \
	MOVL 8(BX), R9; \
	MOVQ AX, BX; \
	ANDQ $63, BX; \
	BZHIQ BX, DX, R15; \
	POPCNTQ R15, R15; \
	ADDQ R15, R9; \
	SUBQ R9, AX; \
	BTQ BX, DX; \
	CMOVQCS R9, AX; \
	LEAQ 80(R8), R9; \
	LEAQ 8(R8), DX; \
	CMOVQCS DX, R9

TEXT ·mixedBag(SB), NOSPLIT, $0-64
	MOVQ a+0(FP), R8
	MOVQ idx+8(FP), SI
	MOVQ offs+16(FP), DI
	MOVQ w+24(FP), R10
	MOVQ wstep+32(FP), R11
	MOVQ nbags+40(FP), R14
	MOVQ out+48(FP), R12
	MOVQ ldo+56(FP), R13
	SHLQ $2, R13
	KMOVQ 160(R8), K1
	MOVQ 184(R8), AX
	VMOVUPD 0(AX), Z13       // 0..7 as doubles
	VMOVUPD 64(AX), Z14      // 8..15
	VMOVDQU32 128(AX), Z6    // dword k reads the code word's dword k/8
	VMOVDQU32 192(AX), Z9    // shift of nibble k: 4·(k mod 8)
	VMOVDQU32 256(AX), Z8    // shift of 2-bit code k: 2·k
	VPBROADCASTD 320(AX), Z10 // 15
	VPBROADCASTD 324(AX), Z7  // 3
	VPXORD Z15, Z15, Z15

mb_bag:
	TESTQ R14, R14
	JEQ  mb_done
	MOVLQSX (DI), AX
	MOVLQSX 4(DI), CX
	SUBQ AX, CX
	// clear the output row
	MOVQ R12, AX
	MOVQ 152(R8), BX
mb_clear:
	DECQ BX
	JEQ  mb_clear_last
	VMOVUPS Z15, (AX)
	ADDQ $64, AX
	JMP  mb_clear
mb_clear_last:
	VMOVUPS Z15, K1, (AX)
	TESTQ CX, CX
	JEQ  mb_bag_next

mb_row:
	// resolve and prefetch the lookup pfdist ahead (within this call's)
	MOVQ 168(R8), AX
	TESTQ AX, AX
	JEQ  mb_nopf
	LEAQ (SI)(AX*8), AX
	CMPQ AX, 176(R8)
	JAE  mb_nopf
	MOVQ 168(R8), BX
	LEAQ (AX)(BX*8), BX      // and the id map entries of the lookup twice as far
	CMPQ BX, 176(R8)
	JAE  mb_nomap
	MOVQ (BX), BX
	SHRQ $6, BX
	SHLQ $4, BX
	ADDQ 0(R8), BX
	PREFETCHT0 (BX)
mb_nomap:
	MOVQ (AX), AX
	MIXED_RESOLVE
	IMULQ 8(R9), AX
	ADDQ 0(R9), AX
	MOVQ 8(R9), BX
	PREFETCHT2 -1(AX)(BX*1)
	MOVQ 32(R9), BX
mb_pf:
	PREFETCHT2 (AX)
	ADDQ $64, AX
	DECQ BX
	JNE  mb_pf
mb_nopf:
	MOVQ (SI), AX
	MIXED_RESOLVE
	IMULQ 8(R9), AX
	MOVQ 0(R9), DX
	ADDQ AX, DX              // the row
	VBROADCASTSS (R10), Z31
	MOVQ R12, AX
	MOVQ 152(R8), BX
	DECQ BX                  // whole units before the last
	KMOVQ 40(R9), K2         // the last unit's code bytes
	MOVQ 16(R9), R15
	CMPQ R15, $5
	JEQ  mb_q2
	CMPQ R15, $3
	JEQ  mb_q8
	CMPQ R15, $4
	JEQ  mb_q4
	CMPQ R15, $2
	JEQ  mb_f16
	JMP  mb_f32

mb_q2:
	// table: float32(w · float32(s·q + (0 + b))), s, b the row's fp16
	// scale and bias widened, in double
	MOVQ 24(R9), R15
	VMOVD (DX)(R15*1), X0
	VCVTPH2PS X0, X0
	VCVTPS2PD X0, X0
	VBROADCASTSD X0, Z1
	VPERMILPD $1, X0, X2
	VBROADCASTSD X2, Z2
	VADDPD Z15, Z2, Z2
	VFMADD231PD Z13, Z1, Z2
	VCVTPD2PS Z2, Y5
	VMULPS Z31, Z5, Z5
	TESTQ BX, BX
	JEQ  mb_q2_last
mb_q2_unit:
	VPBROADCASTD (DX), Z0
	VPSRLVD Z8, Z0, Z0
	VPANDD Z7, Z0, Z0
	VPERMPS Z5, Z0, Z0
	VADDPS (AX), Z0, Z0
	VMOVUPS Z0, (AX)
	ADDQ $4, DX
	ADDQ $64, AX
	DECQ BX
	JNE  mb_q2_unit
mb_q2_last:
	VMOVDQU8.Z (DX), K2, X0
	VPBROADCASTD X0, Z0
	VPSRLVD Z8, Z0, Z0
	VPANDD Z7, Z0, Z0
	VPERMPS Z5, Z0, Z0
	JMP  mb_add_last

mb_q4:
	MOVQ 24(R9), R15
	VMOVD (DX)(R15*1), X0
	VCVTPH2PS X0, X0
	VCVTPS2PD X0, X0
	VBROADCASTSD X0, Z1
	VPERMILPD $1, X0, X2
	VBROADCASTSD X2, Z2
	VADDPD Z15, Z2, Z2
	VMOVAPD Z2, Z3
	VFMADD231PD Z13, Z1, Z2
	VFMADD231PD Z14, Z1, Z3
	VCVTPD2PS Z2, Y5
	VCVTPD2PS Z3, Y3
	VINSERTF32X8 $1, Y3, Z5, Z5
	VMULPS Z31, Z5, Z5
	TESTQ BX, BX
	JEQ  mb_q4_last
mb_q4_unit:
	VMOVQ (DX), X0
	VPERMD Z0, Z6, Z0
	VPSRLVD Z9, Z0, Z0
	VPANDD Z10, Z0, Z0
	VPERMPS Z5, Z0, Z0
	VADDPS (AX), Z0, Z0
	VMOVUPS Z0, (AX)
	ADDQ $8, DX
	ADDQ $64, AX
	DECQ BX
	JNE  mb_q4_unit
mb_q4_last:
	VMOVDQU8.Z (DX), K2, X0
	VPERMD Z0, Z6, Z0
	VPSRLVD Z9, Z0, Z0
	VPANDD Z10, Z0, Z0
	VPERMPS Z5, Z0, Z0
	JMP  mb_add_last

mb_q8:
	// float32(w · float32(s·q + (0 + b))), s and b the row's float32
	// scale and bias widened, in double (s·q exact: the FMA rounds once)
	MOVQ 24(R9), R15
	VMOVQ (DX)(R15*1), X0
	VCVTPS2PD X0, X0
	VBROADCASTSD X0, Z1
	VPERMILPD $1, X0, X2
	VBROADCASTSD X2, Z2
	VADDPD Z15, Z2, Z2
	TESTQ BX, BX
	JEQ  mb_q8_last
mb_q8_unit:
	VPMOVZXBD (DX), Z0
	VEXTRACTI32X8 $1, Z0, Y3
	VCVTDQ2PD Y0, Z0
	VCVTDQ2PD Y3, Z3
	VFMADD213PD Z2, Z1, Z0
	VFMADD213PD Z2, Z1, Z3
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z3, Y3
	VINSERTF32X8 $1, Y3, Z0, Z0
	VMULPS Z31, Z0, Z0
	VADDPS (AX), Z0, Z0
	VMOVUPS Z0, (AX)
	ADDQ $16, DX
	ADDQ $64, AX
	DECQ BX
	JNE  mb_q8_unit
mb_q8_last:
	VMOVDQU8.Z (DX), K2, X0
	VPMOVZXBD X0, Z0
	VEXTRACTI32X8 $1, Z0, Y3
	VCVTDQ2PD Y0, Z0
	VCVTDQ2PD Y3, Z3
	VFMADD213PD Z2, Z1, Z0
	VFMADD213PD Z2, Z1, Z3
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z3, Y3
	VINSERTF32X8 $1, Y3, Z0, Z0
	VMULPS Z31, Z0, Z0
	JMP  mb_add_last

mb_f16:
	// o + float32(w · v), v the fp16 value widened (exact)
	TESTQ BX, BX
	JEQ  mb_f16_last
mb_f16_unit:
	VCVTPH2PS (DX), Z0
	VMULPS Z31, Z0, Z0
	VADDPS (AX), Z0, Z0
	VMOVUPS Z0, (AX)
	ADDQ $32, DX
	ADDQ $64, AX
	DECQ BX
	JNE  mb_f16_unit
mb_f16_last:
	VMOVDQU16.Z (DX), K1, Y0
	VCVTPH2PS Y0, Z0
	VMULPS Z31, Z0, Z0
	JMP  mb_add_last

mb_f32:
	TESTQ BX, BX
	JEQ  mb_f32_last
mb_f32_unit:
	VMULPS (DX), Z31, Z0
	VADDPS (AX), Z0, Z0
	VMOVUPS Z0, (AX)
	ADDQ $64, DX
	ADDQ $64, AX
	DECQ BX
	JNE  mb_f32_unit
mb_f32_last:
	VMOVUPS.Z (DX), K1, Z0
	VMULPS Z31, Z0, Z0

mb_add_last:
	// Z0: the last unit's values; add them to its columns
	VMOVUPS.Z (AX), K1, Z1
	VADDPS Z1, Z0, Z0
	VMOVUPS Z0, K1, (AX)
	ADDQ $8, SI
	ADDQ R11, R10
	DECQ CX
	JNE  mb_row

mb_bag_next:
	ADDQ $4, DI
	ADDQ R13, R12
	DECQ R14
	JMP  mb_bag
mb_done:
	VZEROUPPER
	RET
