//go:build !purego

#include "textflag.h"

// func xgetbv0() (eax, edx uint32)
// XCR0, the OS-enabled XSAVE state components (call only when CPUID
// reports OSXSAVE, or XGETBV faults).
TEXT ·xgetbv0(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
