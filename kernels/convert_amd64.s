//go:build !purego

#include "textflag.h"

// SIMD slice converters behind F32ToF16Slice and friends (convert.go). Each
// handles n elements, n a positive multiple of 16, 16 per iteration, and is
// bit-exact with the scalar function of half.go.

DATA convConst<>+0(SB)/4, $0x00007fff  // f16: magnitude mask / bf16: rounding bias
DATA convConst<>+4(SB)/4, $0x00007c00  // f16: exponent all ones (Inf)
DATA convConst<>+8(SB)/4, $0x00400000  // f32 quiet-NaN bit
DATA convConst<>+12(SB)/4, $0x00000001 // bf16: lsb
DATA convConst<>+16(SB)/4, $0x7fffffff // f32 magnitude mask
DATA convConst<>+20(SB)/4, $0x7f800000 // f32 Inf
DATA convConst<>+24(SB)/4, $0x00000040 // bf16 quiet-NaN bit
GLOBL convConst<>(SB), RODATA|NOPTR, $28

// func f32ToF16Vec(dst *uint16, src *float32, n int)
// VCVTPS2PH with imm8 = 0 rounds to nearest even whatever MXCSR says, and
// quiets NaNs keeping the top payload bits, exactly as F32ToF16.
TEXT ·f32ToF16Vec(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
f32tof16_loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JNE  f32tof16_loop
	VZEROUPPER
	RET

// func f16ToF32Vec(dst *float32, src *uint16, n int)
// VCVTPH2PS is exact except that it quiets signalling NaNs (sets float32 bit
// 22), which F16ToF32 does not: lanes that are NaN with a clear half quiet
// bit (bit 9) get bit 22 cleared again.
TEXT ·f16ToF32Vec(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPBROADCASTD convConst<>+0(SB), Y13 // 0x7fff
	VPBROADCASTD convConst<>+4(SB), Y14 // 0x7c00
	VPBROADCASTD convConst<>+8(SB), Y15 // 0x00400000
f16tof32_loop:
	VCVTPH2PS (SI), Y0
	VPMOVZXWD (SI), Y1
	VCVTPH2PS 16(SI), Y6
	VPMOVZXWD 16(SI), Y7
	// Y3 = NaN lanes: (h & 0x7fff) > 0x7c00.
	VPAND Y13, Y1, Y2
	VPCMPGTD Y14, Y2, Y3
	VPAND Y13, Y7, Y8
	VPCMPGTD Y14, Y8, Y9
	// Y4 = h << 13 puts the half quiet bit on float32 bit 22; clear bit 22
	// where the lane is NaN and that bit is 0.
	VPSLLD $13, Y1, Y4
	VPANDN Y3, Y4, Y5
	VPAND Y15, Y5, Y5
	VPANDN Y0, Y5, Y0
	VPSLLD $13, Y7, Y10
	VPANDN Y9, Y10, Y11
	VPAND Y15, Y11, Y11
	VPANDN Y6, Y11, Y6
	VMOVUPS Y0, (DI)
	VMOVUPS Y6, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNE  f16tof32_loop
	VZEROUPPER
	RET

// func f32ToBF16Vec(dst *uint16, src *float32, n int)
// F32ToBF16 in integer arithmetic: (x + 0x7fff + (x>>16 & 1)) >> 16, or
// (x >> 16) | 0x40 for NaN; VCVTNEPS2BF16 would flush subnormals to zero.
TEXT ·f32ToBF16Vec(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPBROADCASTD convConst<>+0(SB), Y10  // 0x7fff
	VPBROADCASTD convConst<>+12(SB), Y11 // 1
	VPBROADCASTD convConst<>+16(SB), Y12 // 0x7fffffff
	VPBROADCASTD convConst<>+20(SB), Y13 // 0x7f800000
	VPBROADCASTD convConst<>+24(SB), Y14 // 0x40
f32tobf16_loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y5
	// Rounded lanes in Y1 / Y6.
	VPSRLD $16, Y0, Y2
	VPAND Y11, Y2, Y1
	VPADDD Y10, Y1, Y1
	VPADDD Y0, Y1, Y1
	VPSRLD $16, Y1, Y1
	VPSRLD $16, Y5, Y7
	VPAND Y11, Y7, Y6
	VPADDD Y10, Y6, Y6
	VPADDD Y5, Y6, Y6
	VPSRLD $16, Y6, Y6
	// NaN lanes ((x & 0x7fffffff) > 0x7f800000, a signed compare of two
	// non-negative values) take (x >> 16) | 0x40.
	VPAND Y12, Y0, Y3
	VPCMPGTD Y13, Y3, Y3
	VPOR Y14, Y2, Y2
	VPBLENDVB Y3, Y2, Y1, Y1
	VPAND Y12, Y5, Y8
	VPCMPGTD Y13, Y8, Y8
	VPOR Y14, Y7, Y7
	VPBLENDVB Y8, Y7, Y6, Y6
	// Narrow the 16 dwords (all <= 0xffff) to words; VPACKUSDW interleaves
	// the 128-bit lanes, VPERMQ puts them back in order.
	VPACKUSDW Y6, Y1, Y1
	VPERMQ $0xd8, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JNE  f32tobf16_loop
	VZEROUPPER
	RET

// func bf16ToF32Vec(dst *float32, src *uint16, n int)
TEXT ·bf16ToF32Vec(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
bf16tof32_loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD $16, Y0, Y0
	VPSLLD $16, Y1, Y1
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNE  bf16tof32_loop
	VZEROUPPER
	RET

// func widenF16x512(dst *float32, src *uint16, n int)
TEXT ·widenF16x512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JEQ  widenf16_done
widenf16_loop:
	VCVTPH2PS (SI), Z0
	VMOVUPS Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNE  widenf16_loop
widenf16_done:
	VZEROUPPER
	RET
