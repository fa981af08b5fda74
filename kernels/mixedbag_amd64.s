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
