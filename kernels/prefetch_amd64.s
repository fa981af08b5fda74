//go:build !purego

#include "textflag.h"

// func prefetchRows(tbl *byte, rb int, idx *int64, n int, lines int)
TEXT ·prefetchRows(SB), NOSPLIT, $0-40
	MOVQ tbl+0(FP), R8
	MOVQ rb+8(FP), R9
	MOVQ idx+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ lines+32(FP), DX
	TESTQ CX, CX
	JEQ  prefetchRows_done
prefetchRows_row:
	MOVQ (SI), AX
	IMULQ R9, AX
	ADDQ R8, AX
	PREFETCHT2 -1(AX)(R9*1)
	MOVQ DX, BX
prefetchRows_line:
	PREFETCHT2 (AX)
	ADDQ $64, AX
	DECQ BX
	JNZ  prefetchRows_line
	ADDQ $8, SI
	DECQ CX
	JNZ  prefetchRows_row
prefetchRows_done:
	RET
