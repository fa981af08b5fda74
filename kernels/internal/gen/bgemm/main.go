package main

import (
	"fmt"
	"log"
	"strings"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

const (
	mr512  = 12  // largest row block: 24 accumulators + 2 bias + 2 B registers
	panelW = 32  // packed panel width (columns), must match kernels/bgemm.go
	unroll = 4   // k pairs per loop iteration
	pstep  = 128 // bytes of one packed k-pair row (panelW pairs of bf16)
)

var out = asmgen.New()

var p = out.P

// gpr numbers the general registers in x86 encoding order.
var gpr = map[string]int{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15}

// mem is a memory operand disp(base)(index*scale); bcst selects the
// {1to16} embedded broadcast of one dword.
type mem struct {
	base, index string
	scale, disp int
	bcst        bool
}

func (m mem) String() string {
	s := fmt.Sprintf("%d(%s)", m.disp, m.base)
	if m.index != "" {
		s += fmt.Sprintf("(%s*%d)", m.index, m.scale)
	}
	if m.bcst {
		s += "{1to16}"
	}
	return s
}

// Opcode fields of the three instructions: all EVEX.512.0F38.W0, told
// apart by the implied prefix (pp: 2 = F3, 3 = F2) and the opcode byte.
const (
	ppF3 = 2
	ppF2 = 3
)

// evex512 encodes EVEX.512.pp.0F38.W0 opcode /r with dst in ModRM.reg, src1
// in EVEX.vvvv (pass 0 when unused: it then encodes as 1111b), and either a
// zmm register rm (m == nil) or the memory operand m. No opmask.
func evex512(pp int, opcode byte, dst, src1, rm int, m *mem) []byte {
	R, Rp := dst>>3&1, dst>>4&1
	V, Vp := src1&15, src1>>4&1
	var X, B, b int
	var tail []byte
	if m == nil {
		B, X = rm>>3&1, rm>>4&1
		tail = []byte{byte(3<<6 | (dst&7)<<3 | rm&7)}
	} else {
		base, ok := gpr[m.base]
		if !ok {
			log.Fatalf("bad base %q", m.base)
		}
		B = base >> 3 & 1
		n := 64 // disp8*N: N is the full vector, or the element for a broadcast
		if m.bcst {
			b, n = 1, 4
		}
		var mod int
		var disp []byte
		switch {
		case m.disp == 0 && base&7 != 5: // (R)BP/R13 need an explicit displacement
		case m.disp%n == 0 && m.disp/n >= -128 && m.disp/n <= 127:
			mod, disp = 1, []byte{byte(int8(m.disp / n))}
		default:
			d := uint32(int32(m.disp))
			mod, disp = 2, []byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)}
		}
		switch {
		case m.index != "":
			idx, ok := gpr[m.index]
			ss, ok2 := map[int]int{1: 0, 2: 1, 4: 2, 8: 3}[m.scale]
			if !ok || !ok2 || idx == 4 {
				log.Fatalf("bad index %v", m)
			}
			X = idx >> 3 & 1
			tail = []byte{byte(mod<<6 | (dst&7)<<3 | 4), byte(ss<<6 | (idx&7)<<3 | base&7)}
		case base&7 == 4: // (R)SP/R12 need a SIB byte
			tail = []byte{byte(mod<<6 | (dst&7)<<3 | 4), 0x24}
		default:
			tail = []byte{byte(mod<<6 | (dst&7)<<3 | base&7)}
		}
		tail = append(tail, disp...)
	}
	p0 := byte((1-R)<<7 | (1-X)<<6 | (1-B)<<5 | (1-Rp)<<4 | 2) // map 0F38
	p1 := byte((^V&15)<<3 | 1<<2 | pp)                         // W0
	p2 := byte(2<<5 | b<<4 | (1-Vp)<<3)                        // L'L = 512, no mask
	return append([]byte{0x62, p0, p1, p2, opcode}, tail...)
}

// emit writes the BYTE directives of an instruction with its mnemonic.
func emit(mnemonic string, enc []byte) {
	var s []string
	for _, x := range enc {
		s = append(s, fmt.Sprintf("BYTE $0x%02x", x))
	}
	p("\t%s // %s", strings.Join(s, "; "), mnemonic)
}

// vdpbf16ps: acc.fp32[i] += src1.bf16[2i+1]*src2.bf16[2i+1], then += the
// even pair, with src2 a register or memory (Intel operand order: dst, src1, src2).
func vdpbf16psReg(dst, src1, src2 int) {
	emit(fmt.Sprintf("VDPBF16PS zmm%d, zmm%d, zmm%d", dst, src1, src2), evex512(ppF3, 0x52, dst, src1, src2, nil))
}

func vdpbf16psMem(dst, src1 int, m mem) {
	emit(fmt.Sprintf("VDPBF16PS zmm%d, zmm%d, %v", dst, src1, m), evex512(ppF3, 0x52, dst, src1, 0, &m))
}

// vcvtne2ps2bf16: dst.bf16[0:16] = src2 (rm), dst.bf16[16:32] = src1 (vvvv).
func vcvtne2ps2bf16(dst, src1, src2 int) {
	emit(fmt.Sprintf("VCVTNE2PS2BF16 zmm%d, zmm%d, zmm%d", dst, src1, src2), evex512(ppF2, 0x72, dst, src1, src2, nil))
}

// vcvtneps2bf16: ymm dst = bf16 of zmm src.
func vcvtneps2bf16(dst, src int) {
	emit(fmt.Sprintf("VCVTNEPS2BF16 ymm%d, zmm%d", dst, src), evex512(ppF3, 0x72, dst, 0, src, nil))
}

// Every kernel accumulates each output in one register, bias first, then
// the k pairs in order, one VDPBF16PS each, whatever mr (see gen/sgemm):
// splitting the pairs of small blocks over extra accumulators would make a
// row's bits depend on the size of the block it lands in. A lone row gets
// its chains from several panels at once instead (genGroup).

func acc(i, v int) int { return 2*i + v }

// rowMem is A row i's pair at byte displacement disp (asmgen.RowReg),
// broadcast to 16 lanes.
func rowMem(i, disp int) mem {
	base, index, scale := asmgen.RowReg(i)
	return mem{base: base, index: index, scale: scale, disp: disp, bcst: true}
}

func gen512(mr int) {
	name := fmt.Sprintf("bgemm512x%d", mr)
	k := asmgen.KLoop{KArg: "kp+24(FP)", Unroll: unroll, Pstep: pstep}
	out.Masked512(name, "(a *uint16, lda int, b *uint16, kp int, c *float32, ldc int, bias *float32, mask uint64, relu bool, nblk int)", mr, 1, k, func(u int) {
		p("\tVMOVUPS %d(BX), Z28", u*pstep)
		p("\tVMOVUPS %d(BX), Z29", u*pstep+64)
		for i := 0; i < mr; i++ {
			vdpbf16psMem(acc(i, 0), 28, rowMem(i, 4*u))
			vdpbf16psMem(acc(i, 1), 29, rowMem(i, 4*u))
		}
	})
}

// genGroup writes bgemm512x1pG: gen512's kernel for one row over ngrp
// groups of G full panels at once (the panels of a group R14 = 128*kp bytes
// apart, C and, by bstep bytes, the bias advancing 32*G floats per group).
// One row has two accumulator chains per panel; G panels give 2G, and each
// output still gets exactly bgemm512x1's sequence of operations.
func genGroup(G int) {
	name := fmt.Sprintf("bgemm512x1p%d", G)
	gacc := func(g, v int) int { return 2*g + v }
	bReg := func(g, v int) int { return 2*G + 2*g + v }
	out.Text(name, "(a *uint16, b *uint16, kp int, c *float32, bias *float32, bstep int, relu bool, ngrp int)", 64)
	out.GroupPrologue(name, "kp+16(FP)", 7, G)
	for g := 0; g < G; g++ {
		p("\tVMOVUPS %d(AX), Z%d", 128*g, gacc(g, 0))
		p("\tVMOVUPS %d(AX), Z%d", 128*g+64, gacc(g, 1))
	}
	out.GroupLoop(name, "kp+16(FP)", unroll, pstep, func(u int) {
		for g := 0; g < G; g++ {
			p("\tVMOVUPS %s, Z%d", asmgen.PanelAddr(g, u*pstep), bReg(g, 0))
			p("\tVMOVUPS %s, Z%d", asmgen.PanelAddr(g, u*pstep+64), bReg(g, 1))
		}
		for g := 0; g < G; g++ {
			vdpbf16psMem(gacc(g, 0), bReg(g, 0), rowMem(0, 4*u))
			vdpbf16psMem(gacc(g, 1), bReg(g, 1), rowMem(0, 4*u))
		}
	})
	out.ReLU(name, "relu+48(FP)", "CX", "VPXORD", "Z", 30, 2*G)
	for g := 0; g < G; g++ {
		p("\tVMOVUPS Z%d, %d(DX)", gacc(g, 0), 128*g)
		p("\tVMOVUPS Z%d, %d(DX)", gacc(g, 1), 128*g+64)
	}
	out.NextGroup(name, "bstep+40(FP)", G)
}

// genDot writes bgemmDot512, the kernel for outputs narrower than a panel
// is worth (N <= 4): each C entry is a dot product of a bf16 A row and a
// row-major bf16 W row, 128 halves per iteration in four accumulators, then
// 32 at a time, the K tail with word-masked loads (so odd K and unpadded
// rows are fine), and a horizontal sum.
func genDot() {
	p("")
	p("// func bgemmDot512(a *uint16, lda int, w *uint16, k int, c *float32, ldc int, bias *float32, relu bool, m int, n int)")
	p("TEXT ·bgemmDot512(SB), NOSPLIT, $0-80")
	p("\tMOVQ lda+8(FP), R8")
	p("\tSHLQ $1, R8")
	p("\tMOVQ ldc+40(FP), R12")
	p("\tSHLQ $2, R12")
	p("\t// K1 selects the k%%32 halves of the tail.")
	p("\tMOVQ k+24(FP), CX")
	p("\tANDQ $31, CX")
	p("\tMOVQ $1, DX")
	p("\tSHLQ CX, DX")
	p("\tDECQ DX")
	p("\tKMOVD DX, K1")
	p("\tMOVQ k+24(FP), CX")
	p("\tMOVBLZX relu+56(FP), R13")
	p("\tVPXORD Z16, Z16, Z16")
	p("\tMOVQ a+0(FP), SI")
	p("\tMOVQ c+32(FP), DI")
	p("\tMOVQ m+64(FP), R14")
	p("bdot_row:")
	p("\tMOVQ w+16(FP), BX")
	p("\tMOVQ bias+48(FP), AX")
	p("\tMOVQ DI, R9")
	p("\tMOVQ n+72(FP), R10")
	p("bdot_col:")
	p("\tMOVQ SI, R11")
	for r := 0; r < 4; r++ {
		p("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tMOVQ CX, DX")
	p("\tCMPQ DX, $128")
	p("\tJL   bdot_by32")
	p("bdot_by128:")
	for r := 0; r < 4; r++ {
		p("\tVMOVDQU16 %d(R11), Z%d", 64*r, 4+r)
	}
	for r := 0; r < 4; r++ {
		vdpbf16psMem(r, 4+r, mem{base: "BX", disp: 64 * r})
	}
	p("\tADDQ $256, R11")
	p("\tADDQ $256, BX")
	p("\tSUBQ $128, DX")
	p("\tCMPQ DX, $128")
	p("\tJGE  bdot_by128")
	p("bdot_by32:")
	p("\tCMPQ DX, $32")
	p("\tJL   bdot_tail")
	p("\tVMOVDQU16 (R11), Z4")
	vdpbf16psMem(0, 4, mem{base: "BX"})
	p("\tADDQ $64, R11")
	p("\tADDQ $64, BX")
	p("\tSUBQ $32, DX")
	p("\tJMP  bdot_by32")
	p("bdot_tail:")
	p("\t// DX = k%%32 halves left; the masked loads touch none past them.")
	p("\tVMOVDQU16.Z (R11), K1, Z4")
	p("\tVMOVDQU16.Z (BX), K1, Z5")
	vdpbf16psReg(1, 4, 5)
	p("\tLEAQ (BX)(DX*2), BX")
	p("\tVADDPS Z1, Z0, Z0")
	p("\tVADDPS Z3, Z2, Z2")
	p("\tVADDPS Z2, Z0, Z0")
	p("\tVEXTRACTF64X4 $1, Z0, Y1")
	p("\tVADDPS Y1, Y0, Y0")
	p("\tVEXTRACTF128 $1, Y0, X1")
	p("\tVADDPS X1, X0, X0")
	p("\tVPERMILPS $0x4e, X0, X1")
	p("\tVADDPS X1, X0, X0")
	p("\tVPERMILPS $0xb1, X0, X1")
	p("\tVADDSS X1, X0, X0")
	p("\tVADDSS (AX), X0, X0")
	p("\tTESTQ R13, R13")
	p("\tJEQ  bdot_store")
	p("\t// max(0, x) with 0 as the first source keeps NaN, like the reference.")
	p("\tVMAXSS X0, X16, X0")
	p("bdot_store:")
	p("\tVMOVSS X0, (R9)")
	p("\tADDQ $4, R9")
	p("\tADDQ $4, AX")
	p("\tDECQ R10")
	p("\tJNE  bdot_col")
	p("\tADDQ R8, SI")
	p("\tADDQ R12, DI")
	p("\tDECQ R14")
	p("\tJNE  bdot_row")
	p("\tVZEROUPPER")
	p("\tRET")
}

// genCvt writes bf16CvtRows, the conversion of fp32 rows of A to bf16 with
// the GEMM's rounding: 32 floats per VCVTNE2PS2BF16, and the k%32 tail
// from zero-masked loads (so nothing past K is read) with VCVTNEPS2BF16
// when it fits one zmm. Each destination row receives round_up(k, 32)
// halves when k%32 > 16 or k%32 == 0, else round_up(k, 16): the caller's
// rows are at least round_up(k, 32) long. The halves past k are zero.
func genCvt() {
	p("")
	p("// func bf16CvtRows(dst *uint16, ldd int, src *float32, lds int, k int, rows int)")
	p("TEXT ·bf16CvtRows(SB), NOSPLIT, $0-48")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+8(FP), R9")
	p("\tSHLQ $1, R9")
	p("\tMOVQ src+16(FP), SI")
	p("\tMOVQ lds+24(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tMOVQ k+32(FP), R10")
	p("\tMOVQ R10, R11")
	p("\tSHRQ $5, R10 // full 32-float chunks")
	p("\tANDQ $31, R11 // tail floats")
	p("\t// K1 selects tail floats 0-15, K2 floats 16-31.")
	p("\tMOVQ R11, CX")
	p("\tMOVQ $1, DX")
	p("\tSHLQ CX, DX")
	p("\tDECQ DX")
	p("\tKMOVD DX, K1")
	p("\tKSHIFTRD $16, K1, K2")
	p("\tMOVQ rows+40(FP), R12")
	p("cvt_row:")
	p("\tMOVQ SI, AX")
	p("\tMOVQ DI, BX")
	p("\tMOVQ R10, CX")
	p("\tTESTQ CX, CX")
	p("\tJEQ  cvt_tail")
	p("cvt_loop:")
	p("\tVMOVUPS (AX), Z0")
	p("\tVMOVUPS 64(AX), Z1")
	vcvtne2ps2bf16(2, 1, 0)
	p("\tVMOVDQU32 Z2, (BX)")
	p("\tADDQ $128, AX")
	p("\tADDQ $64, BX")
	p("\tDECQ CX")
	p("\tJNE  cvt_loop")
	p("cvt_tail:")
	p("\tTESTQ R11, R11")
	p("\tJEQ  cvt_next")
	p("\tVMOVUPS.Z (AX), K1, Z0")
	p("\tCMPQ R11, $16")
	p("\tJG   cvt_tail2")
	vcvtneps2bf16(2, 0)
	p("\tVMOVDQU Y2, (BX)")
	p("\tJMP  cvt_next")
	p("cvt_tail2:")
	p("\tVMOVUPS.Z 64(AX), K2, Z1")
	vcvtne2ps2bf16(2, 1, 0)
	p("\tVMOVDQU32 Z2, (BX)")
	p("cvt_next:")
	p("\tADDQ R8, SI")
	p("\tADDQ R9, DI")
	p("\tDECQ R12")
	p("\tJNE  cvt_row")
	p("\tVZEROUPPER")
	p("\tRET")
}

// genHook writes vdpbf16ps16, one register-form VDPBF16PS on 16 lanes, for
// the unit test of the instruction's arithmetic.
func genHook() {
	p("")
	p("// func vdpbf16ps16(acc *[16]float32, a *[32]uint16, b *[32]uint16)")
	p("TEXT ·vdpbf16ps16(SB), NOSPLIT, $0-24")
	p("\tMOVQ acc+0(FP), AX")
	p("\tMOVQ a+8(FP), BX")
	p("\tMOVQ b+16(FP), CX")
	p("\tVMOVUPS (AX), Z17")
	p("\tVMOVDQU16 (BX), Z18")
	vdpbf16psMem(17, 18, mem{base: "CX"})
	p("\tVMOVUPS Z17, (AX)")
	p("\tVZEROUPPER")
	p("\tRET")
}

func main() {
	out.Header("kernels/internal/gen/bgemm")
	p("// AVX-512 BF16 kernels for PackedBF16. The panel of %d columns holds W transposed by", panelW)
	p("// k pairs: one %d-byte row per pair of k, column j's two bf16 in dword j, as VDPBF16PS", pstep)
	p("// takes them. A is bf16 row-major, so a dword of a row is a (k, k+1) pair, broadcast to")
	p("// all lanes by the instruction's {1to16} memory form. Each VDPBF16PS adds the odd then")
	p("// the even product to the fp32 accumulators, each rounded to nearest even, with")
	p("// subnormal inputs read as zero and subnormal results flushed (Intel SDM); bias")
	p("// initializes the accumulators and ReLU is applied before the single store of C.")
	p("// Registers: SI = A block, R11/DI/R10 = rows 0/4/8 moving along k, R8 = lda bytes,")
	p("// R9 = 3*lda bytes, BX = panel, CX = pairs left, DX = C block, R12 = ldc bytes, R13 = blocks left.")
	for mr := 1; mr <= mr512; mr++ {
		gen512(mr)
	}
	genGroup(4)
	genGroup(2)
	genDot()
	genCvt()
	genHook()
	if err := out.Write("bgemm_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
