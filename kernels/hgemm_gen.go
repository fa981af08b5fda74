// Copyright rq authors. Generator for hgemm_amd64.s; run with `go generate`.

//go:build ignore

// This program writes hgemm_amd64.s: the micro-kernels of PackedF16.Gemm.
// They are sgemm_gen.go's kernels with the one change that matters: the
// packed panel holds fp16, widened to fp32 in registers by VCVTPH2PS straight
// from memory, so a k step streams 64 bytes of weights instead of 128. Row
// blocks, the k unroll and the FMA order are the same as
// the fp32 kernels', so on the widened weights the results are bit-identical
// to PackedF32.Gemm's (the tests check this).
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

const (
	mr512  = 12 // largest AVX-512 row block: 24 accumulators + 2 bias + 2 B + 2 broadcast registers
	mr256  = 6  // largest AVX2 row block: 12 accumulators + 2 B + 1 broadcast + 1 zero
	mr512y = 6  // largest ymm-widening AVX-512 row block: 24 accumulators + 4 B + 1 broadcast
	panelW = 32 // packed panel width (halves), must match hgemm.go
	unroll = 4  // k steps per loop iteration
	pstep  = 64 // bytes of one packed k-row (panelW * 2)
)

var out bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// As in sgemm_gen.go, every kernel accumulates each output in one register,
// bias first, then the k products in order, one FMA each, whatever mr: no
// split of the k steps over extra accumulators, which would make a row's
// bits depend on the size of the block it lands in.

// acc is the zmm accumulator register number for row i, vector v.
func acc(i, v int) int { return 2*i + v }

// rowAddr: rows 0-3 hang off R11, 4-7 off DI, 8-11 off R10, indexed by lda (R8) and 3*lda (R9).
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
	name := fmt.Sprintf("hgemm512x%d", mr)
	p("")
	p("// func %s(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", name)
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
		p("\tVCVTPH2PS %d(BX), Z28", u*pstep)
		p("\tVCVTPH2PS %d(BX), Z29", u*pstep+32)
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

// gen512y is the AVX-512 kernel with the panel widened by ymm VCVTPH2PS
// (8 halves each) and ymm FMAs, four accumulators per row: on Zen 4 a zmm
// VCVTPH2PS costs about as much FP-pipe time as two ymm ones plus the zmm
// FMAs it feeds, which makes the zmm kernel ~1.6x slower than the fp32 one
// at one row. Per lane the accumulation order is exactly the zmm kernels'
// (one accumulator per output, same k order), so results do not change. The bias is reloaded
// from memory per block (masked), since 4*mr accumulators leave no
// registers to keep it.
func gen512y(mr int) {
	name := fmt.Sprintf("hgemm512y%d", mr)
	yacc := func(i, v int) int { return 4*i + v }
	bReg := 4 * mr // first of 4 B registers
	bc := bReg + 4
	p("")
	p("// func %s(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", name)
	p("\tMOVQ lda+8(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tMOVQ ldc+40(FP), R12")
	p("\tSHLQ $2, R12")
	p("\t// K1-K4 mask columns 0-7, 8-15, 16-23, 24-31 of the panel.")
	p("\tMOVQ mask+56(FP), AX")
	p("\tKMOVD AX, K1")
	p("\tKSHIFTRD $8, K1, K2")
	p("\tKSHIFTRD $16, K1, K3")
	p("\tKSHIFTRD $24, K1, K4")
	p("\tMOVQ bias+48(FP), AX")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ c+32(FP), DX")
	p("\tMOVQ nblk+72(FP), R13")
	p("%s_block:", name)
	for i := 0; i < mr; i++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS.Z %d(AX), K%d, Y%d", 32*v, v+1, yacc(i, v))
		}
	}
	rowPointers(mr)
	kLoop(name, mr, func(u int) {
		for v := 0; v < 4; v++ {
			p("\tVCVTPH2PS %d(BX), Y%d", u*pstep+16*v, bReg+v)
		}
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %s, Y%d", rowAddr(i, 4*u), bc)
			for v := 0; v < 4; v++ {
				p("\tVFMADD231PS Y%d, Y%d, Y%d", bc, bReg+v, yacc(i, v))
			}
		}
	})
	p("\tMOVBLZX relu+64(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_store", name)
	p("\tVPXORD Y%d, Y%d, Y%d", bc, bc, bc)
	p("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for r := 0; r < 4*mr; r++ {
		p("\tVMAXPS Y%d, Y%d, Y%d", r, bc, r)
	}
	p("%s_store:", name)
	p("\tMOVQ DX, CX")
	for i := 0; i < mr; i++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS Y%d, K%d, %d(CX)", yacc(i, v), v+1, 32*v)
		}
		if i < mr-1 {
			p("\tADDQ R12, CX")
		}
	}
	p("\tIMUL3Q $%d, R8, CX", mr)
	p("\tADDQ CX, SI")
	p("\tIMUL3Q $%d, R12, CX", mr)
	p("\tADDQ CX, DX")
	p("\tDECQ R13")
	p("\tJNE  %s_block", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// panelAddr is byte displacement disp into panel g of a group: panels lie
// R14 bytes apart (R9 = 3*R14), the first at BX.
func panelAddr(g, disp int) string {
	return fmt.Sprintf("%d(BX)%s", disp, []string{"", "(R14*1)", "(R14*2)", "(R9*1)"}[g])
}

// gen512yGroup is gen512y for mr <= 3 rows over groups of G full panels at
// once: ngrp groups, the panels of a group R14 = 64*k bytes apart, C and the
// bias advancing 32*G floats per group (the bias by bstep bytes, 0 for a
// shared zero bias). A lone row has only four ymm FMA chains per panel,
// half of what keeps Zen 4's two FMA pipes busy at latency 4; two panels
// side by side give eight, where the original kernel split the k steps over
// extra accumulators and so summed in another order than the multi-row
// kernels. Here each output still gets exactly gen512y's sequence.
func gen512yGroup(mr, G int) {
	name := fmt.Sprintf("hgemm512y%dp%d", mr, G)
	yacc := func(g, i, v int) int { return g*4*mr + 4*i + v }
	bReg := func(g, v int) int { return 4*mr*G + 4*g + v }
	bc := 4*mr*G + 4*G
	p("")
	p("// func %s(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, bstep int, relu bool, ngrp int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", name)
	p("\tMOVQ lda+8(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tMOVQ ldc+40(FP), R12")
	p("\tSHLQ $2, R12")
	p("\tMOVQ k+24(FP), R14")
	p("\tSHLQ $%d, R14", log2(pstep))
	p("\tLEAQ (R14)(R14*2), R9")
	p("\tIMUL3Q $%d, R14, R10", G)
	p("\tMOVQ bias+48(FP), AX")
	p("\tMOVQ b+16(FP), R13")
	p("\tMOVQ c+32(FP), DX")
	p("\tMOVQ ngrp+72(FP), DI")
	p("%s_grp:", name)
	for g := 0; g < G; g++ {
		for i := 0; i < mr; i++ {
			for v := 0; v < 4; v++ {
				p("\tVMOVUPS %d(AX), Y%d", 128*g+32*v, yacc(g, i, v))
			}
		}
	}
	p("\tMOVQ a+0(FP), R11")
	p("\tMOVQ R13, BX")
	p("\tMOVQ k+24(FP), CX")
	step := func(u int) {
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVCVTPH2PS %s, Y%d", panelAddr(g, u*pstep+16*v), bReg(g, v))
			}
		}
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %s, Y%d", rowAddr(i, 4*u), bc)
			for g := 0; g < G; g++ {
				for v := 0; v < 4; v++ {
					p("\tVFMADD231PS Y%d, Y%d, Y%d", bc, bReg(g, v), yacc(g, i, v))
				}
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
	p("\tMOVBLZX relu+64(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_store", name)
	p("\tVPXORD Y%d, Y%d, Y%d", bc, bc, bc)
	p("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for r := 0; r < 4*mr*G; r++ {
		p("\tVMAXPS Y%d, Y%d, Y%d", r, bc, r)
	}
	p("%s_store:", name)
	p("\tMOVQ DX, CX")
	for i := 0; i < mr; i++ {
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVMOVUPS Y%d, %d(CX)", yacc(g, i, v), 128*g+32*v)
			}
		}
		if i < mr-1 {
			p("\tADDQ R12, CX")
		}
	}
	p("\tADDQ bstep+56(FP), AX")
	p("\tADDQ $%d, DX", 128*G)
	p("\tADDQ R10, R13")
	p("\tDECQ DI")
	p("\tJNE  %s_grp", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// gen256Group writes hgemm256x1pG: gen256's one-row kernel over ngrp groups
// of G full panels at once (panels R14 = 64*k bytes apart; C and, by bstep
// bytes, the bias advancing 32*G floats per group): 4G ymm FMA chains for a
// lone row instead of two, each output getting exactly gen256's sequence.
// Each panel's k-row is widened into the same four registers in turn, so
// the eight accumulators fit AVX2's sixteen.
func gen256Group(G int) {
	name := fmt.Sprintf("hgemm256x1p%d", G)
	gacc := func(g, v int) int { return 4*g + v }
	bReg := 4 * G
	bc := bReg + 4
	p("")
	p("// func %s(a *float32, b *uint16, k int, c *float32, bias *float32, bstep int, relu bool, ngrp int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	p("\tMOVQ k+16(FP), R14")
	p("\tSHLQ $%d, R14", log2(pstep))
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
				p("\tVCVTPH2PS %s, Y%d", panelAddr(g, u*pstep+16*v), bReg+v)
			}
			for v := 0; v < 4; v++ {
				p("\tVFMADD231PS Y%d, Y%d, Y%d", bc, bReg+v, gacc(g, v))
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

func log2(x int) int {
	n := 0
	for 1<<n < x {
		n++
	}
	return n
}

func gen256(mr int) {
	name := fmt.Sprintf("hgemm256x%d", mr)
	p("")
	p("// func %s(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, relu bool, nblk int)", name)
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
		p("\tVCVTPH2PS %d(BX), Y12", u*pstep)
		p("\tVCVTPH2PS %d(BX), Y13", u*pstep+16)
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

func main() {
	p("// Code generated by hgemm_gen.go; DO NOT EDIT.")
	p("")
	p("//go:build !purego")
	p("")
	p("#include \"textflag.h\"")
	p("")
	p("// Micro-kernels for PackedF16.Gemm. Each computes nblk consecutive blocks of mr rows of")
	p("// C[:, panel] = A·Wᵀ[:, panel] + bias over one packed panel of %d fp16 columns: the panel", panelW)
	p("// holds W transposed, k-major (%d halves = %d bytes per k), widened by VCVTPH2PS as it is", panelW, pstep)
	p("// loaded; then a broadcast of A[i][k] per row times the widened k-row, accumulated with FMA")
	p("// in registers for the whole K; bias initializes the accumulators and ReLU is applied")
	p("// before the single store of C.")
	p("// Registers: SI = A block, R11/DI/R10 = rows 0/4/8 moving along k, R8 = lda bytes,")
	p("// R9 = 3*lda bytes, BX = panel, CX = k left, DX = C block, R12 = ldc bytes, R13 = blocks left.")
	// Blocks of up to mr512y rows use the ymm-widening kernels, so the zmm
	// ones are only needed above that.
	for mr := mr512y + 1; mr <= mr512; mr++ {
		gen512(mr)
	}
	for mr := 1; mr <= mr512y; mr++ {
		gen512y(mr)
	}
	gen512yGroup(1, 2)
	p("")
	p("// AVX2+F16C kernels: 16 columns (at panel byte offset b), no masking; the Go caller pads")
	p("// the bias and stages partial-width C tiles through a buffer.")
	for mr := 1; mr <= mr256; mr++ {
		gen256(mr)
	}
	gen256Group(2)
	if err := os.WriteFile("hgemm_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
