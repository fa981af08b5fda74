package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

const (
	mr512  = 12  // largest AVX-512 row block: 24 accumulators + 2 bias + 2 B + 2 broadcast registers
	mr256  = 6   // largest AVX2 row block: 12 accumulators + 2 B + 1 broadcast + 1 zero
	panelW = 32  // packed panel width (floats), must match kernels/sgemm.go
	unroll = 4   // k steps per loop iteration
	pstep  = 128 // bytes of one packed k-row (panelW * 4)
)

var out = asmgen.New()

var p = out.P

// kloop is the k loop of every row-blocked kernel.
var kloop = asmgen.KLoop{KArg: "k+24(FP)", Unroll: unroll, Pstep: pstep}

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

func gen512(mr int) {
	name := fmt.Sprintf("sgemm512x%d", mr)
	out.Masked512(name, "(a *float32, lda int, b *float32, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", mr, 2, kloop, func(u int) {
		p("\tVMOVUPS %d(BX), Z28", u*pstep)
		p("\tVMOVUPS %d(BX), Z29", u*pstep+64)
		for i := 0; i < mr; i++ {
			bc := 30 + i%2
			p("\tVBROADCASTSS %s, Z%d", asmgen.RowAddr(i, 4*u), bc)
			p("\tVFMADD231PS Z%d, Z28, Z%d", bc, acc(i, 0))
			p("\tVFMADD231PS Z%d, Z29, Z%d", bc, acc(i, 1))
		}
	})
}

func gen256(mr int) {
	name := fmt.Sprintf("sgemm256x%d", mr)
	out.Plain256(name, "(a *float32, lda int, b *float32, k int, c *float32, ldc int, bias *float32, relu bool, nblk int)", mr, kloop, func(u int) {
		p("\tVMOVUPS %d(BX), Y12", u*pstep)
		p("\tVMOVUPS %d(BX), Y13", u*pstep+32)
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %s, Y14", asmgen.RowAddr(i, 4*u))
			p("\tVFMADD231PS Y14, Y12, Y%d", acc(i, 0))
			p("\tVFMADD231PS Y14, Y13, Y%d", acc(i, 1))
		}
	})
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
	out.Text(name, "(a *float32, b *float32, k int, c *float32, bias *float32, bstep int, relu bool, ngrp int)", 64)
	out.GroupPrologue(name, "k+16(FP)", 7, G)
	for g := 0; g < G; g++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS %d(AX), Y%d", 128*g+32*v, gacc(g, v))
		}
	}
	out.GroupLoop(name, "k+16(FP)", unroll, pstep, func(u int) {
		p("\tVBROADCASTSS %d(R11), Y%d", 4*u, bc)
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVFMADD231PS %s, Y%d, Y%d", asmgen.PanelAddr(g, u*pstep+32*v), bc, gacc(g, v))
			}
		}
	})
	out.ReLU(name, "relu+48(FP)", "CX", "VXORPS", "Y", bc, 4*G)
	for g := 0; g < G; g++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS Y%d, %d(DX)", gacc(g, v), 128*g+32*v)
		}
	}
	out.NextGroup(name, "bstep+40(FP)", G)
}

func main() {
	out.Header("kernels/internal/gen/sgemm")
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
	if err := out.Write("sgemm_amd64.s"); err != nil {
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
