//go:build !purego

#include "textflag.h"

// func crossUpdate512(dst, x0, y, xl *float32, n int)
// dst[j] = x0[j]*y[j] + xl[j], 64 floats per iteration, then 16, then a
// masked tail (the masked loads read nothing past n).
TEXT ·crossUpdate512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x0+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ xl+24(FP), R8
	MOVQ n+32(FP), CX
	XORQ AX, AX
cross512_by64:
	CMPQ CX, $64
	JL   cross512_by16
	VMOVUPS (SI)(AX*1), Z0
	VMOVUPS 64(SI)(AX*1), Z1
	VMOVUPS 128(SI)(AX*1), Z2
	VMOVUPS 192(SI)(AX*1), Z3
	VMULPS (DX)(AX*1), Z0, Z0
	VMULPS 64(DX)(AX*1), Z1, Z1
	VMULPS 128(DX)(AX*1), Z2, Z2
	VMULPS 192(DX)(AX*1), Z3, Z3
	VADDPS (R8)(AX*1), Z0, Z0
	VADDPS 64(R8)(AX*1), Z1, Z1
	VADDPS 128(R8)(AX*1), Z2, Z2
	VADDPS 192(R8)(AX*1), Z3, Z3
	VMOVUPS Z0, (DI)(AX*1)
	VMOVUPS Z1, 64(DI)(AX*1)
	VMOVUPS Z2, 128(DI)(AX*1)
	VMOVUPS Z3, 192(DI)(AX*1)
	ADDQ $256, AX
	SUBQ $64, CX
	JMP  cross512_by64
cross512_by16:
	CMPQ CX, $16
	JL   cross512_tail
	VMOVUPS (SI)(AX*1), Z0
	VMULPS (DX)(AX*1), Z0, Z0
	VADDPS (R8)(AX*1), Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ $64, AX
	SUBQ $16, CX
	JMP  cross512_by16
cross512_tail:
	TESTQ CX, CX
	JEQ  cross512_done
	MOVQ $1, R9
	SHLQ CX, R9
	DECQ R9
	KMOVW R9, K1
	VMOVUPS.Z (SI)(AX*1), K1, Z0
	VMOVUPS.Z (DX)(AX*1), K1, Z1
	VMOVUPS.Z (R8)(AX*1), K1, Z2
	VMULPS Z1, Z0, Z0
	VADDPS Z2, Z0, Z0
	VMOVUPS Z0, K1, (DI)(AX*1)
cross512_done:
	VZEROUPPER
	RET

// func crossUpdate256(dst, x0, y, xl *float32, n int)
// The AVX2 loop: n a multiple of 8.
TEXT ·crossUpdate256(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x0+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ xl+24(FP), R8
	MOVQ n+32(FP), CX
	XORQ AX, AX
cross256_by8:
	CMPQ CX, $8
	JL   cross256_done
	VMOVUPS (SI)(AX*1), Y0
	VMULPS (DX)(AX*1), Y0, Y0
	VADDPS (R8)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	SUBQ $8, CX
	JMP  cross256_by8
cross256_done:
	VZEROUPPER
	RET
