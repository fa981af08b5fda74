// Copyright rq authors. Generator for sgemm_amd64.s; run with `go generate`.

//go:build ignore

// This program writes sgemm_amd64.s: one register-blocked micro-kernel per
// row count mr, for AVX-512 (mr = 1..mr512, 32 columns in two zmm per row)
// and AVX2+FMA (mr = 1..mr256, 16 columns in two ymm per row). The kernels
// are straight-line code unrolled over rows and 4 steps of k, which Go's
// assembler cannot express with macros, hence a generator.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

const (
	mr512  = 12  // largest AVX-512 row block: 24 accumulators + 2 bias + 2 B + 2 broadcast registers
	mr256  = 6   // largest AVX2 row block: 12 accumulators + 2 B + 1 broadcast + 1 zero
	panelW = 32  // packed panel width (floats), must match sgemm.go
	unroll = 4   // k steps per loop iteration
	pstep  = 128 // bytes of one packed k-row (panelW * 4)
)

var out bytes.Buffer

// Every kernel accumulates each output in one register, starting from the
// bias and adding the k products in order with one FMA each, whatever its
// row count mr: an output's bits then depend on its own A row alone, not on
// M, on the row's place in its block or on how the caller splits the rows
// (the contract of GemmRowAlign). Splitting the k steps of small blocks over
// extra accumulators would keep more FMA chains in flight, but it reorders
// the sum, so rows computed in a short tail block (a batch of 1, 97, ...)
// would differ from the same rows in a full block. On Zen 4 (one zmm FMA
// per cycle, latency 4) two rows already keep the pipe full, and a one-row
// GEMV is bound by its weight loads, so the measured cost was nil.

// acc is the accumulator register number for row i, vector v.
func acc(i, v int) int { return 2*i + v }

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// rowAddr returns the address of A row i at byte displacement disp:
// rows 0-3 hang off R11, 4-7 off DI, 8-11 off R10, indexed by lda (R8) and 3*lda (R9).
func rowAddr(i, disp int) string {
	base := []string{"R11", "DI", "R10"}[i/4]
	idx := []string{"", "(R8*1)", "(R8*2)", "(R9*1)"}[i%4]
	return fmt.Sprintf("%d(%s)%s", disp, base, idx)
}

func rowPointers(mr int) {
	p("\tMOVQ SI, R11")
	if mr > 4 {
		p("\tLEAQ (SI)(R8*4), DI")
	}
	if mr > 8 {
		p("\tLEAQ (DI)(R8*4), R10")
	}
}

func advanceRows(mr, bytes int) {
	p("\tADDQ $%d, R11", bytes)
	if mr > 4 {
		p("\tADDQ $%d, DI", bytes)
	}
	if mr > 8 {
		p("\tADDQ $%d, R10", bytes)
	}
}

// kLoop emits the k loop around step(u), which does k step u of an unrolled group.
func kLoop(name string, mr int, step func(u int)) {
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ k+24(FP), CX")
	p("\tCMPQ CX, $%d", unroll)
	p("\tJL   %s_tail", name)
	p("%s_loop:", name)
	for u := 0; u < unroll; u++ {
		step(u)
	}
	advanceRows(mr, 4*unroll)
	p("\tADDQ $%d, BX", unroll*pstep)
	p("\tSUBQ $%d, CX", unroll)
	p("\tCMPQ CX, $%d", unroll)
	p("\tJGE  %s_loop", name)
	p("%s_tail:", name)
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_done", name)
	p("%s_tail1:", name)
	step(0)
	advanceRows(mr, 4)
	p("\tADDQ $%d, BX", pstep)
	p("\tDECQ CX")
	p("\tJNE  %s_tail1", name)
	p("%s_done:", name)
}

func gen512(mr int) {
	name := fmt.Sprintf("sgemm512x%d", mr)
	p("")
	p("// func %s(a *float32, lda int, b *float32, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", name)
	p("\tMOVQ lda+8(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tMOVQ ldc+40(FP), R12")
	p("\tSHLQ $2, R12")
	p("\t// K1 masks columns 0-15 of the panel, K2 columns 16-31: bias loads and C stores never touch column >= N.")
	p("\tMOVQ mask+56(FP), AX")
	p("\tKMOVD AX, K1")
	p("\tKSHIFTRD $16, K1, K2")
	p("\tMOVQ bias+48(FP), AX")
	p("\tVMOVUPS.Z (AX), K1, Z26")
	p("\tVMOVUPS.Z 64(AX), K2, Z27")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ c+32(FP), DX")
	p("\tMOVQ nblk+72(FP), R13")
	p("%s_block:", name)
	for i := 0; i < mr; i++ {
		p("\tVMOVAPS Z26, Z%d", 2*i)
		p("\tVMOVAPS Z27, Z%d", 2*i+1)
	}
	rowPointers(mr)
	kLoop(name, mr, func(u int) {
		p("\tVMOVUPS %d(BX), Z28", u*pstep)
		p("\tVMOVUPS %d(BX), Z29", u*pstep+64)
		for i := 0; i < mr; i++ {
			bc := 30 + i%2
			p("\tVBROADCASTSS %s, Z%d", rowAddr(i, 4*u), bc)
			p("\tVFMADD231PS Z%d, Z28, Z%d", bc, acc(i, 0))
			p("\tVFMADD231PS Z%d, Z29, Z%d", bc, acc(i, 1))
		}
	})
	p("\tMOVBLZX relu+64(FP), AX")
	p("\tTESTQ AX, AX")
	p("\tJEQ  %s_store", name)
	p("\tVPXORD Z28, Z28, Z28")
	p("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for i := 0; i < 2*mr; i++ {
		p("\tVMAXPS Z%d, Z28, Z%d", i, i)
	}
	p("%s_store:", name)
	p("\tMOVQ DX, AX")
	for i := 0; i < mr; i++ {
		p("\tVMOVUPS Z%d, K1, (AX)", 2*i)
		p("\tVMOVUPS Z%d, K2, 64(AX)", 2*i+1)
		if i < mr-1 {
			p("\tADDQ R12, AX")
		}
	}
	p("\tIMUL3Q $%d, R8, AX", mr)
	p("\tADDQ AX, SI")
	p("\tIMUL3Q $%d, R12, AX", mr)
	p("\tADDQ AX, DX")
	p("\tDECQ R13")
	p("\tJNE  %s_block", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

func gen256(mr int) {
	name := fmt.Sprintf("sgemm256x%d", mr)
	p("")
	p("// func %s(a *float32, lda int, b *float32, k int, c *float32, ldc int, bias *float32, relu bool, nblk int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
	p("\tMOVQ lda+8(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tMOVQ ldc+40(FP), R12")
	p("\tSHLQ $2, R12")
	p("\tMOVQ bias+48(FP), AX")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ c+32(FP), DX")
	p("\tMOVQ nblk+64(FP), R13")
	p("%s_block:", name)
	for i := 0; i < mr; i++ {
		p("\tVMOVUPS (AX), Y%d", 2*i)
		p("\tVMOVUPS 32(AX), Y%d", 2*i+1)
	}
	rowPointers(mr)
	kLoop(name, mr, func(u int) {
		p("\tVMOVUPS %d(BX), Y12", u*pstep)
		p("\tVMOVUPS %d(BX), Y13", u*pstep+32)
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %s, Y14", rowAddr(i, 4*u))
			p("\tVFMADD231PS Y14, Y12, Y%d", acc(i, 0))
			p("\tVFMADD231PS Y14, Y13, Y%d", acc(i, 1))
		}
	})
	p("\tMOVBLZX relu+56(FP), R10")
	p("\tTESTQ R10, R10")
	p("\tJEQ  %s_store", name)
	p("\tVXORPS Y15, Y15, Y15")
	p("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for i := 0; i < 2*mr; i++ {
		p("\tVMAXPS Y%d, Y15, Y%d", i, i)
	}
	p("%s_store:", name)
	p("\tMOVQ DX, R10")
	for i := 0; i < mr; i++ {
		p("\tVMOVUPS Y%d, (R10)", 2*i)
		p("\tVMOVUPS Y%d, 32(R10)", 2*i+1)
		if i < mr-1 {
			p("\tADDQ R12, R10")
		}
	}
	p("\tIMUL3Q $%d, R8, R10", mr)
	p("\tADDQ R10, SI")
	p("\tIMUL3Q $%d, R12, R10", mr)
	p("\tADDQ R10, DX")
	p("\tDECQ R13")
	p("\tJNE  %s_block", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// gen256Group writes sgemm256x1pG: gen256's one-row kernel over ngrp groups
// of G full panels at once (the panels of a group R14 = 128*k bytes apart;
// C and, by bstep bytes, the bias advancing 32*G floats per group). One row
// of a 16-column half has two ymm FMA chains, a quarter of what keeps two
// FMA pipes of latency 4 busy; G = 2 whole panels give eight, each output
// still getting exactly gen256's sequence (bias, then k in order). The
// panel is read by the FMAs from memory: eight accumulators, the broadcast
// and eight loaded panel registers would not fit AVX2's sixteen.
func gen256Group(G int) {
	name := fmt.Sprintf("sgemm256x1p%d", G)
	gacc := func(g, v int) int { return 4*g + v }
	bc := 4 * G
	panel := []string{"", "(R14*1)", "(R14*2)", "(R9*1)"}
	p("")
	p("// func %s(a *float32, b *float32, k int, c *float32, bias *float32, bstep int, relu bool, ngrp int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	p("\tMOVQ k+16(FP), R14")
	p("\tSHLQ $7, R14")
	p("\tLEAQ (R14)(R14*2), R9")
	p("\tIMUL3Q $%d, R14, R10", G)
	p("\tMOVQ bias+32(FP), AX")
	p("\tMOVQ b+8(FP), R13")
	p("\tMOVQ c+24(FP), DX")
	p("\tMOVQ ngrp+56(FP), DI")
	p("%s_grp:", name)
	for g := 0; g < G; g++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS %d(AX), Y%d", 128*g+32*v, gacc(g, v))
		}
	}
	p("\tMOVQ a+0(FP), R11")
	p("\tMOVQ R13, BX")
	p("\tMOVQ k+16(FP), CX")
	step := func(u int) {
		p("\tVBROADCASTSS %d(R11), Y%d", 4*u, bc)
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVFMADD231PS %d(BX)%s, Y%d, Y%d", u*pstep+32*v, panel[g], bc, gacc(g, v))
			}
		}
	}
	p("\tCMPQ CX, $%d", unroll)
	p("\tJL   %s_tail", name)
	p("%s_loop:", name)
	for u := 0; u < unroll; u++ {
		step(u)
	}
	p("\tADDQ $%d, R11", 4*unroll)
	p("\tADDQ $%d, BX", unroll*pstep)
	p("\tSUBQ $%d, CX", unroll)
	p("\tCMPQ CX, $%d", unroll)
	p("\tJGE  %s_loop", name)
	p("%s_tail:", name)
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_done", name)
	p("%s_tail1:", name)
	step(0)
	p("\tADDQ $4, R11")
	p("\tADDQ $%d, BX", pstep)
	p("\tDECQ CX")
	p("\tJNE  %s_tail1", name)
	p("%s_done:", name)
	p("\tMOVBLZX relu+48(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_store", name)
	p("\tVXORPS Y%d, Y%d, Y%d", bc, bc, bc)
	p("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for r := 0; r < 4*G; r++ {
		p("\tVMAXPS Y%d, Y%d, Y%d", r, bc, r)
	}
	p("%s_store:", name)
	for g := 0; g < G; g++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS Y%d, %d(DX)", gacc(g, v), 128*g+32*v)
		}
	}
	p("\tADDQ bstep+40(FP), AX")
	p("\tADDQ $%d, DX", 128*G)
	p("\tADDQ R10, R13")
	p("\tDECQ DI")
	p("\tJNE  %s_grp", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

func main() {
	p("// Code generated by sgemm_gen.go; DO NOT EDIT.")
	p("")
	p("//go:build !purego")
	p("")
	p("#include \"textflag.h\"")
	p("")
	p("// Micro-kernels for PackedF32.Gemm. Each computes nblk consecutive blocks of mr rows of")
	p("// C[:, panel] = A·Wᵀ[:, panel] + bias over one packed panel of %d columns: the panel", panelW)
	p("// holds W transposed, k-major (%d floats per k), so one k step is a broadcast of A[i][k]", panelW)
	p("// per row times the panel's k-row, accumulated with FMA in registers for the whole K;")
	p("// bias initializes the accumulators and ReLU is applied before the single store of C.")
	p("// Registers: SI = A block, R11/DI/R10 = rows 0/4/8 moving along k, R8 = lda bytes,")
	p("// R9 = 3*lda bytes, BX = panel, CX = k left, DX = C block, R12 = ldc bytes, R13 = blocks left.")
	for mr := 1; mr <= mr512; mr++ {
		gen512(mr)
	}
	p(dotKernel)
	p("")
	p(dotKernel256)
	p("")
	p("// AVX2 kernels: 16 columns (at panel byte offset b), no masking; the Go caller pads the")
	p("// bias and stages partial-width C tiles through a buffer.")
	for mr := 1; mr <= mr256; mr++ {
		gen256(mr)
	}
	gen256Group(2)
	if err := os.WriteFile("sgemm_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// dotKernel is the AVX-512 kernel for outputs narrower than a panel is worth
// (N <= 4, e.g. DLRM's final 256 -> 1 layer): each C entry is a dot product of
// an A row and a row-major W row, 64 floats per iteration in four
// accumulators, a masked load for the K tail, then a horizontal sum.
const dotKernel = `
// func sgemmDot512(a *float32, lda int, w *float32, k int, c *float32, ldc int, bias *float32, relu bool, m int, n int)
TEXT ·sgemmDot512(SB), NOSPLIT, $0-80
	MOVQ lda+8(FP), R8
	SHLQ $2, R8
	MOVQ ldc+40(FP), R12
	SHLQ $2, R12
	// K1 selects the k%16 floats of the tail.
	MOVQ k+24(FP), CX
	ANDQ $15, CX
	MOVQ $1, DX
	SHLQ CX, DX
	DECQ DX
	KMOVW DX, K1
	MOVQ k+24(FP), CX
	MOVBLZX relu+56(FP), R13
	VPXORD Z16, Z16, Z16
	MOVQ a+0(FP), SI
	MOVQ c+32(FP), DI
	MOVQ m+64(FP), R14
dot_row:
	MOVQ w+16(FP), BX
	MOVQ bias+48(FP), AX
	MOVQ DI, R9
	MOVQ n+72(FP), R10
dot_col:
	MOVQ SI, R11
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ CX, DX
	CMPQ DX, $64
	JL   dot_by16
dot_by64:
	VMOVUPS (R11), Z4
	VMOVUPS 64(R11), Z5
	VMOVUPS 128(R11), Z6
	VMOVUPS 192(R11), Z7
	VFMADD231PS (BX), Z4, Z0
	VFMADD231PS 64(BX), Z5, Z1
	VFMADD231PS 128(BX), Z6, Z2
	VFMADD231PS 192(BX), Z7, Z3
	ADDQ $256, R11
	ADDQ $256, BX
	SUBQ $64, DX
	CMPQ DX, $64
	JGE  dot_by64
dot_by16:
	CMPQ DX, $16
	JL   dot_tail
	VMOVUPS (R11), Z4
	VFMADD231PS (BX), Z4, Z0
	ADDQ $64, R11
	ADDQ $64, BX
	SUBQ $16, DX
	JMP  dot_by16
dot_tail:
	// DX = k%16 floats left; the masked loads touch none past them.
	VMOVUPS.Z (R11), K1, Z4
	VMOVUPS.Z (BX), K1, Z5
	VFMADD231PS Z5, Z4, Z1
	LEAQ (BX)(DX*4), BX
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDSS X1, X0, X0
	VADDSS (AX), X0, X0
	TESTQ R13, R13
	JEQ  dot_store
	// max(0, x) with 0 as the first source keeps NaN, like the reference.
	VMAXSS X0, X16, X0
dot_store:
	VMOVSS X0, (R9)
	ADDQ $4, R9
	ADDQ $4, AX
	DECQ R10
	JNE  dot_col
	ADDQ R8, SI
	ADDQ R12, DI
	DECQ R14
	JNE  dot_row
	VZEROUPPER
	RET`

// dotKernel256 is dotKernel for AVX2: 32 floats per iteration, and the K
// tail loaded with VMASKMOVPS under a mask cut from dotmask<>.
const dotKernel256 = `
// dotmask<>+32-4r holds r all-ones lanes followed by zero lanes (r = 0..7).
DATA dotmask<>+0(SB)/4, $0xffffffff
DATA dotmask<>+4(SB)/4, $0xffffffff
DATA dotmask<>+8(SB)/4, $0xffffffff
DATA dotmask<>+12(SB)/4, $0xffffffff
DATA dotmask<>+16(SB)/4, $0xffffffff
DATA dotmask<>+20(SB)/4, $0xffffffff
DATA dotmask<>+24(SB)/4, $0xffffffff
DATA dotmask<>+28(SB)/4, $0xffffffff
DATA dotmask<>+32(SB)/4, $0
DATA dotmask<>+36(SB)/4, $0
DATA dotmask<>+40(SB)/4, $0
DATA dotmask<>+44(SB)/4, $0
DATA dotmask<>+48(SB)/4, $0
DATA dotmask<>+52(SB)/4, $0
DATA dotmask<>+56(SB)/4, $0
DATA dotmask<>+60(SB)/4, $0
GLOBL dotmask<>(SB), RODATA|NOPTR, $64

// func sgemmDot256(a *float32, lda int, w *float32, k int, c *float32, ldc int, bias *float32, relu bool, m int, n int)
TEXT ·sgemmDot256(SB), NOSPLIT, $0-80
	MOVQ lda+8(FP), R8
	SHLQ $2, R8
	MOVQ ldc+40(FP), R12
	SHLQ $2, R12
	MOVQ k+24(FP), CX
	// Y15 selects the k%8 floats of the tail.
	MOVQ CX, AX
	ANDQ $7, AX
	SHLQ $2, AX
	LEAQ dotmask<>+32(SB), DX
	SUBQ AX, DX
	VMOVDQU (DX), Y15
	MOVBLZX relu+56(FP), R13
	VXORPS X14, X14, X14
	MOVQ a+0(FP), SI
	MOVQ c+32(FP), DI
	MOVQ m+64(FP), R14
dot_row:
	MOVQ w+16(FP), BX
	MOVQ bias+48(FP), AX
	MOVQ DI, R9
	MOVQ n+72(FP), R10
dot_col:
	MOVQ SI, R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ CX, DX
	CMPQ DX, $32
	JL   dot_by8
dot_by32:
	VMOVUPS (R11), Y4
	VMOVUPS 32(R11), Y5
	VMOVUPS 64(R11), Y6
	VMOVUPS 96(R11), Y7
	VFMADD231PS (BX), Y4, Y0
	VFMADD231PS 32(BX), Y5, Y1
	VFMADD231PS 64(BX), Y6, Y2
	VFMADD231PS 96(BX), Y7, Y3
	ADDQ $128, R11
	ADDQ $128, BX
	SUBQ $32, DX
	CMPQ DX, $32
	JGE  dot_by32
dot_by8:
	CMPQ DX, $8
	JL   dot_tail
	VMOVUPS (R11), Y4
	VFMADD231PS (BX), Y4, Y0
	ADDQ $32, R11
	ADDQ $32, BX
	SUBQ $8, DX
	JMP  dot_by8
dot_tail:
	// DX = k%8 floats left; VMASKMOVPS reads none past them.
	VMASKMOVPS (R11), Y15, Y4
	VMASKMOVPS (BX), Y15, Y5
	VFMADD231PS Y5, Y4, Y1
	LEAQ (BX)(DX*4), BX
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDSS X1, X0, X0
	VADDSS (AX), X0, X0
	TESTQ R13, R13
	JEQ  dot_store
	// max(0, x) with 0 as the first source keeps NaN, like the reference.
	VMAXSS X0, X14, X0
dot_store:
	VMOVSS X0, (R9)
	ADDQ $4, R9
	ADDQ $4, AX
	DECQ R10
	JNE  dot_col
	ADDQ R8, SI
	ADDQ R12, DI
	DECQ R14
	JNE  dot_row
	VZEROUPPER
	RET`
