package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

const (
	mr512  = 12 // largest AVX-512 row block: 24 accumulators + 2 bias + 2 B + 2 broadcast registers
	mr256  = 6  // largest AVX2 row block: 12 accumulators + 2 B + 1 broadcast + 1 zero
	mr512y = 6  // largest ymm-widening AVX-512 row block: 24 accumulators + 4 B + 1 broadcast
	panelW = 32 // packed panel width (halves), must match kernels/hgemm.go
	unroll = 4  // k steps per loop iteration
	pstep  = 64 // bytes of one packed k-row (panelW * 2)
)

var out = asmgen.New()

var p = out.P

// kloop is the k loop of every row-blocked kernel.
var kloop = asmgen.KLoop{KArg: "k+24(FP)", Unroll: unroll, Pstep: pstep}

// rowAddr is A row i's address at byte displacement disp.
var rowAddr = asmgen.RowAddr

// As in gen/sgemm, every kernel accumulates each output in one register,
// bias first, then the k products in order, one FMA each, whatever mr: no
// split of the k steps over extra accumulators, which would make a row's
// bits depend on the size of the block it lands in.

// acc is the zmm accumulator register number for row i, vector v.
func acc(i, v int) int { return 2*i + v }

func gen512(mr int) {
	name := fmt.Sprintf("hgemm512x%d", mr)
	out.Masked512(name, "(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", mr, 2, kloop, func(u int) {
		p("\tVCVTPH2PS %d(BX), Z28", u*pstep)
		p("\tVCVTPH2PS %d(BX), Z29", u*pstep+32)
		for i := 0; i < mr; i++ {
			bc := 30 + i%2
			p("\tVBROADCASTSS %s, Z%d", rowAddr(i, 4*u), bc)
			p("\tVFMADD231PS Z%d, Z28, Z%d", bc, acc(i, 0))
			p("\tVFMADD231PS Z%d, Z29, Z%d", bc, acc(i, 1))
		}
	})
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
	out.Text(name, "(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", 80)
	out.Strides(2)
	p("\t// K1-K4 mask columns 0-7, 8-15, 16-23, 24-31 of the panel.")
	p("\tMOVQ mask+56(FP), AX")
	p("\tKMOVD AX, K1")
	p("\tKSHIFTRD $8, K1, K2")
	p("\tKSHIFTRD $16, K1, K3")
	p("\tKSHIFTRD $24, K1, K4")
	p("\tMOVQ bias+48(FP), AX")
	out.BlockStart(name, "nblk+72(FP)")
	for i := 0; i < mr; i++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS.Z %d(AX), K%d, Y%d", 32*v, v+1, yacc(i, v))
		}
	}
	out.RowPointers(mr)
	out.KLoop(kloop, name, mr, func(u int) {
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
	out.ReLU(name, "relu+64(FP)", "CX", "VPXORD", "Y", bc, 4*mr)
	p("\tMOVQ DX, CX")
	out.StoreRows(mr, "CX", func(i int) {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS Y%d, K%d, %d(CX)", yacc(i, v), v+1, 32*v)
		}
	})
	out.NextBlock(name, mr, "CX")
}

// panelAddr is byte displacement disp into panel g of a group.
var panelAddr = asmgen.PanelAddr

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
	out.Text(name, "(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, bstep int, relu bool, ngrp int)", 80)
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
	out.GroupLoop(name, "k+24(FP)", unroll, pstep, func(u int) {
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
	})
	out.ReLU(name, "relu+64(FP)", "CX", "VPXORD", "Y", bc, 4*mr*G)
	p("\tMOVQ DX, CX")
	out.StoreRows(mr, "CX", func(i int) {
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVMOVUPS Y%d, %d(CX)", yacc(g, i, v), 128*g+32*v)
			}
		}
	})
	out.NextGroup(name, "bstep+56(FP)", G)
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
	out.Text(name, "(a *float32, b *uint16, k int, c *float32, bias *float32, bstep int, relu bool, ngrp int)", 64)
	out.GroupPrologue(name, "k+16(FP)", log2(pstep), G)
	for g := 0; g < G; g++ {
		for v := 0; v < 4; v++ {
			p("\tVMOVUPS %d(AX), Y%d", 128*g+32*v, gacc(g, v))
		}
	}
	out.GroupLoop(name, "k+16(FP)", unroll, pstep, func(u int) {
		p("\tVBROADCASTSS %d(R11), Y%d", 4*u, bc)
		for g := 0; g < G; g++ {
			for v := 0; v < 4; v++ {
				p("\tVCVTPH2PS %s, Y%d", panelAddr(g, u*pstep+16*v), bReg+v)
			}
			for v := 0; v < 4; v++ {
				p("\tVFMADD231PS Y%d, Y%d, Y%d", bc, bReg+v, gacc(g, v))
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

func log2(x int) int {
	n := 0
	for 1<<n < x {
		n++
	}
	return n
}

func gen256(mr int) {
	name := fmt.Sprintf("hgemm256x%d", mr)
	out.Plain256(name, "(a *float32, lda int, b *uint16, k int, c *float32, ldc int, bias *float32, relu bool, nblk int)", mr, kloop, func(u int) {
		p("\tVCVTPH2PS %d(BX), Y12", u*pstep)
		p("\tVCVTPH2PS %d(BX), Y13", u*pstep+16)
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %s, Y14", rowAddr(i, 4*u))
			p("\tVFMADD231PS Y14, Y12, Y%d", acc(i, 0))
			p("\tVFMADD231PS Y14, Y13, Y%d", acc(i, 1))
		}
	})
}

func main() {
	out.Header("kernels/internal/gen/hgemm")
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
	if err := out.Write("hgemm_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
