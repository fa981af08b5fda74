package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

var out = asmgen.New()

var p = out.P

// aReg and bReg hold the block's row pointers: A rows (the block's output
// rows a0..a0+3, clamped to f-1) and B rows (the block's columns b0..b0+3).
var (
	aReg = []string{"R8", "R9", "R10", "R11"}
	bReg = []string{"R12", "R13", "R14", "R15"}
)

// Frame locals: the four output row pointers, the block row a0, the number
// of valid rows in the block row (1..4), and for AVX2 the tail and diagonal
// mask pointers.
const (
	locO   = "o%d-%d(SP)" // o<i>, at -8(i+1)
	locA0  = "a0-40(SP)"
	locNV  = "nv-48(SP)"
	locTM  = "tm-56(SP)"
	locDM  = "dm-64(SP)"
	locTLN = "tl-72(SP)"
	locST  = "st-80(SP)" // 4 rows in bytes: how far B rows move per block
)

func oSlot(i int) string { return fmt.Sprintf(locO, i, 8*(i+1)) }

// prologueRows emits the start of a block row: A row pointers (clamped so
// rows past f re-read row f-1, whose results are never stored), nv, and the
// output row pointers out + 4*P(a) with P(a) = a(a-1)/2 + self*a, the index
// of row a's first dot in the packed lower triangle.
func prologueRows(name string) {
	p("%s_rowblk:", name)
	p("\tMOVQ %s, BX", locA0)
	p("\tMOVQ f+8(FP), CX")
	p("\tMOVQ t+0(FP), R12")
	p("\tMOVQ d+16(FP), DI")
	p("\tSHLQ $2, DI") // bytes per vector
	p("\tLEAQ -1(CX), R15")
	p("\tSUBQ BX, CX")
	p("\tCMPQ CX, $4")
	p("\tJLE  %s_nvok", name)
	p("\tMOVQ $4, CX")
	p("%s_nvok:", name)
	p("\tMOVQ CX, %s", locNV)
	for i, r := range aReg {
		p("\tLEAQ %d(BX), AX", i)
		p("\tCMPQ AX, R15")
		p("\tCMOVQGT R15, AX")
		p("\tIMULQ DI, AX")
		p("\tADDQ R12, AX")
		p("\tMOVQ AX, %s", r)
	}
	p("\tMOVBLZX self+24(FP), R14")
	p("\tMOVQ out+32(FP), R13")
	for i := 0; i < 4; i++ {
		p("\tLEAQ %d(BX), AX", i)
		p("\tLEAQ -1(AX), CX")
		p("\tIMULQ AX, CX")
		p("\tSHRQ $1, CX")
		p("\tIMULQ R14, AX")
		p("\tADDQ AX, CX")
		p("\tLEAQ (R13)(CX*4), AX")
		p("\tMOVQ AX, %s", oSlot(i))
	}
	// B rows start at row 0; st = 4 rows in bytes; BX = full blocks = a0/4;
	// AX = byte offset of the block's first column in every output row.
	p("\tLEAQ (R12)(DI*1), R13")
	p("\tLEAQ (R13)(DI*1), R14")
	p("\tLEAQ (R14)(DI*1), R15")
	p("\tSHLQ $2, DI")
	p("\tMOVQ DI, %s", locST)
	p("\tSHRQ $2, BX")
	p("\tXORQ AX, AX")
}

// epilogueRows advances a0 and loops.
func epilogueRows(name string) {
	p("\tMOVQ %s, BX", locA0)
	p("\tADDQ $4, BX")
	p("\tMOVQ BX, %s", locA0)
	p("\tCMPQ BX, f+8(FP)")
	p("\tJLT  %s_rowblk", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// prefetch emits n prefetches of the next batch row (SI walks it 64 bytes
// at a time and stops at its last line, pfLast): the d loops of a row
// together issue about as many prefetches as the next row has cache lines,
// so it streams in from memory while this one is computed.
func prefetch(n int) {
	for i := 0; i < n; i++ {
		p("\tPREFETCHT0 (SI)")
		p("\tADDQ $64, SI")
	}
	p("\tCMPQ SI, pfLast+48(FP)")
	p("\tCMOVQGT pfLast+48(FP), SI")
}

// ---- AVX-512 ----

// fma512 emits the FMAs of one 16-float step for the pairs (i, j) of the
// block; A rows are in Z16..Z19, B rows in Z20..Z23 (or, on the diagonal,
// the A rows themselves).
func fma512(diag bool) {
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			if diag && j > i {
				continue
			}
			b := 20 + j
			if diag {
				b = 16 + j
			}
			p("\tVFMADD231PS Z%d, Z%d, Z%d", b, 16+i, 4*i+j)
		}
	}
}

func loads512(diag bool, masked bool) {
	mv := "VMOVUPS"
	if masked {
		mv = "VMOVUPS.Z"
	}
	mask := ""
	if masked {
		mask = " K5,"
	}
	for i, r := range aReg {
		p("\t%s (%s)(CX*1),%s Z%d", mv, r, mask, 16+i)
	}
	if !diag {
		for j, r := range bReg {
			p("\t%s (%s)(CX*1),%s Z%d", mv, r, mask, 20+j)
		}
	}
}

// dloop512 emits the d loop of a block: whole 16-float steps while CX < DX,
// then the d%16 tail under the zeroing mask K5 (no byte past d is read).
func dloop512(lbl string, diag bool) {
	for r := 0; r < 16; r++ {
		p("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tXORQ CX, CX")
	p("\tTESTQ DX, DX")
	p("\tJEQ  %s_tail", lbl)
	p("%s_loop:", lbl)
	prefetch(2)
	loads512(diag, false)
	fma512(diag)
	p("\tADDQ $64, CX")
	p("\tCMPQ CX, DX")
	p("\tJLT  %s_loop", lbl)
	p("%s_tail:", lbl)
	p("\tKORTESTW K5, K5")
	p("\tJEQ  %s_red", lbl)
	prefetch(1)
	loads512(diag, true)
	fma512(diag)
	p("%s_red:", lbl)
	reduce512()
}

// reduce512 sums each of Z0..Z15 (accumulator 4i+j = dot(i, j)) across its
// 16 lanes and leaves dot(i, j) in lane 4i+j of Z0. Lanes are only ever added
// to lanes of the same accumulator, so a NaN in one dot stays in it. The
// order of the adds is fixed: ((l0+l2)+(l1+l3)) within each 128-bit lane,
// then (L0+L1)+(L2+L3) across them. (A variant with one shuffle and two
// opmask blends per merge instead of two shuffles measured ~15% slower.)
func reduce512() {
	// Level 1: pairs (x2p, x2p+1) -> per 128-bit lane [x2p:0+2, x2p+1:0+2, x2p:1+3, x2p+1:1+3].
	for q := 0; q < 8; q++ {
		p("\tVUNPCKLPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q)
		p("\tVUNPCKHPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 17+2*q)
		p("\tVADDPS Z%d, Z%d, Z%d", 17+2*q, 16+2*q, q)
	}
	// Level 2: per 128-bit lane L, Zq = [s(x4q,L), s(x4q+1,L), s(x4q+2,L), s(x4q+3,L)].
	for q := 0; q < 4; q++ {
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", 2*q+1, 2*q, 17+2*q)
		p("\tVADDPS Z%d, Z%d, Z%d", 17+2*q, 16+2*q, q)
	}
	// Level 3: Z0 = [Z0.L0+L1, Z0.L2+L3, Z1.L0+L1, Z1.L2+L3], Z1 likewise from Z2, Z3.
	for q := 0; q < 2; q++ {
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", 2*q+1, 2*q, 17+2*q)
		p("\tVADDPS Z%d, Z%d, Z%d", 17+2*q, 16+2*q, q)
	}
	// Level 4: 128-bit lane i of Z0 = the four dots of block row i.
	p("\tVSHUFF32X4 $0x88, Z1, Z0, Z16")
	p("\tVSHUFF32X4 $0xdd, Z1, Z0, Z17")
	p("\tVADDPS Z17, Z16, Z0")
}

// store512 writes block row i's four dots (128-bit lane i of Z0) to output
// row a0+i at byte offset AX, for the rows that exist (nv); on the diagonal
// under mask K1+i, which keeps columns b < a (b <= a with self).
func store512(lbl string, diag bool) {
	for i := 0; i < 4; i++ {
		if i > 0 {
			p("\tCMPQ %s, $%d", locNV, i)
			p("\tJLE  %s_stored", lbl)
		}
		p("\tMOVQ %s, DI", oSlot(i))
		k := ""
		if diag {
			k = fmt.Sprintf(" K%d,", 1+i)
		}
		if i == 0 {
			p("\tVMOVUPS X0,%s (DI)(AX*1)", k)
		} else {
			p("\tVEXTRACTF32X4 $%d, Z0,%s (DI)(AX*1)", i, k)
		}
	}
	p("%s_stored:", lbl)
}

func gen512() {
	name := "interactDot512"
	p("")
	p("// func %s(t *float32, f int, d int, self bool, out *float32, pf *float32, pfLast *float32)", name)
	p("TEXT ·%s(SB), NOSPLIT, $80-56", name)
	p("\tMOVQ pf+40(FP), SI")
	p("\t// K5 = the d%%16 lanes of the last, partial step along d.")
	p("\tMOVQ d+16(FP), DX")
	p("\tMOVQ DX, CX")
	p("\tANDQ $15, CX")
	p("\tMOVL $1, AX")
	p("\tSHLL CX, AX")
	p("\tDECL AX")
	p("\tKMOVW AX, K5")
	p("\t// K1..K4: columns kept in row i of a diagonal block, j < i + self.")
	p("\tMOVBLZX self+24(FP), BX")
	for i := 0; i < 4; i++ {
		p("\tLEAQ %d(BX), CX", i)
		p("\tMOVL $1, AX")
		p("\tSHLL CX, AX")
		p("\tDECL AX")
		p("\tKMOVW AX, K%d", 1+i)
	}
	p("\t// DX = bytes of the whole 16-float steps of a vector.")
	p("\tSHLQ $2, DX")
	p("\tANDQ $-64, DX")
	p("\tMOVQ $0, %s", locA0)
	prologueRows(name)
	p("\tTESTQ BX, BX")
	p("\tJEQ  %s_diag", name)
	p("%s_full:", name)
	dloop512(name+"_f", false)
	store512(name+"_f", false)
	p("\tADDQ $16, AX")
	for _, r := range bReg {
		p("\tADDQ %s, %s", locST, r)
	}
	p("\tDECQ BX")
	p("\tJNE  %s_full", name)
	p("%s_diag:", name)
	dloop512(name+"_d", true)
	store512(name+"_d", true)
	epilogueRows(name)
}

// ---- AVX-512, outer-product form for small d ----

// genT512 writes interactDotT512, the kernel for small d, where the 4x4
// blocks' horizontal reductions would cost more than their FMAs. It first
// transposes T into tt (d x fp, fp = f rounded up to 16: column b of T·Tᵀ
// is then a contiguous vector) with 16x16 in-register transposes, then
// computes row a of the triangle 16 columns at a time as
// Σ_k T[a][k] · tt[k][16c:16c+16] (an embedded-broadcast FMA per k), for up
// to 8 rows a at once sharing each tt load, and stores each row chunk with
// a lane mask. Each dot is summed in order k = 0..d-1.
func genT512() {
	name := "interactDotT512"
	p("")
	p("// masks16<>+2n holds the 16-bit opmask of the first n lanes (n = 0..16).")
	for n := 0; n <= 16; n += 4 {
		var w [4]uint64
		for i := range w {
			if n+i <= 16 {
				w[i] = 1<<(n+i) - 1
			}
		}
		p("DATA masks16<>+%d(SB)/8, $0x%04x%04x%04x%04x", 2*n, w[3], w[2], w[1], w[0])
	}
	p("GLOBL masks16<>(SB), RODATA|NOPTR, $40")
	out.Text(name, "(t *float32, f int, d int, self bool, out *float32, tt *float32)", 48)
	p("\tMOVQ d+16(FP), R8")
	p("\tSHLQ $2, R8") // rb: bytes per vector of T
	p("\tMOVQ f+8(FP), R12")
	p("\tADDQ $15, R12")
	p("\tANDQ $-16, R12")
	p("\tSHLQ $2, R12") // fpb: bytes per row of tt
	p("\tLEAQ masks16<>(SB), SI")
	p("\t// Phase 1: tt[k][b] = T[b][k], 16x16 tiles (fc = R13 rows of T, dc = R14 floats along d).")
	p("\tXORQ R13, R13")
	p("%s_fc:", name)
	p("\tXORQ R14, R14")
	p("%s_dc:", name)
	p("\t// K1 = the valid lanes of this d chunk; rows past f load as zeros (mask 0, no access).")
	p("\tMOVQ d+16(FP), AX")
	p("\tSUBQ R14, AX")
	p("\tMOVQ $16, DI")
	p("\tCMPQ AX, DI")
	p("\tCMOVQGT DI, AX")
	p("\tMOVWLZX (SI)(AX*2), BX")
	p("\tMOVQ f+8(FP), DX")
	p("\tSUBQ R13, DX") // rows left in T from fc
	p("\tMOVQ R13, R10")
	p("\tIMULQ R8, R10")
	p("\tADDQ t+0(FP), R10")
	p("\tLEAQ (R10)(R14*4), R10")
	p("\tXORQ CX, CX")
	for i := 0; i < 16; i++ {
		p("\tMOVQ BX, AX")
		p("\tCMPQ DX, $%d", i)
		p("\tCMOVQLE CX, AX")
		p("\tKMOVW AX, K2")
		p("\tVMOVUPS.Z (R10), K2, Z%d", i)
		if i < 15 {
			p("\tADDQ R8, R10")
		}
	}
	transpose16()
	p("\t// Store column j of the tile to tt row dc+j (tt has rows up to d rounded up to 16).")
	p("\tMOVQ R14, R11")
	p("\tIMULQ R12, R11")
	p("\tADDQ tt+40(FP), R11")
	p("\tLEAQ (R11)(R13*4), R11")
	for j := 0; j < 16; j++ {
		p("\tVMOVUPS Z%d, (R11)", j)
		if j < 15 {
			p("\tADDQ R12, R11")
		}
	}
	p("\tADDQ $16, R14")
	p("\tCMPQ R14, d+16(FP)")
	p("\tJLT  %s_dc", name)
	p("\tADDQ $16, R13")
	p("\tCMPQ R13, f+8(FP)")
	p("\tJLT  %s_fc", name)

	p("\t// Phase 2: R13 = 16c (column chunk), R14 = a (first row of a group), R15 = self,")
	p("\t// R8 = rb, R9 = 3rb, R10/R11 = rows a/a+4 moving along k, BX = tt chunk moving along k.")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tMOVBLZX self+24(FP), R15")
	p("\tMOVQ out+32(FP), DX")
	p("\tXORQ R13, R13")
	p("%s_chunk:", name)
	p("\t// Rows a >= 16c+1-self have columns in this chunk.")
	p("\tLEAQ 1(R13), R14")
	p("\tSUBQ R15, R14")
	p("\tCMPQ R14, f+8(FP)")
	p("\tJGE  %s_done", name)
	p("%s_group:", name)
	p("\tMOVQ f+8(FP), AX")
	p("\tSUBQ R14, AX")
	p("\t// Groups of 8 rows, but 9..15 rows left split in two halves: a group of")
	p("\t// fewer than 4 rows would wait on FMA latency.")
	p("\tCMPQ AX, $16")
	p("\tJGE  %s_r8", name)
	p("\tCMPQ AX, $8")
	p("\tJLE  %s_pick", name)
	p("\tINCQ AX")
	p("\tSHRQ $1, AX")
	p("%s_pick:", name)
	for r := 8; r >= 2; r-- {
		p("\tCMPQ AX, $%d", r)
		p("\tJGE  %s_r%d", name, r)
	}
	p("\tJMP  %s_r1", name)
	for r := 8; r >= 1; r-- {
		genTGroup(name, r)
	}
	p("%s_next:", name)
	p("\tCMPQ R14, f+8(FP)")
	p("\tJLT  %s_group", name)
	p("\tADDQ $16, R13")
	p("\tJMP  %s_chunk", name)
	p("%s_done:", name)
	p("\tVZEROUPPER")
	p("\tRET")
}

// genTGroup emits the code for a group of r rows a..a+r-1 (R14 = a): the k
// loop, then the masked stores, then a += r.
func genTGroup(name string, r int) {
	lbl := fmt.Sprintf("%s_r%d", name, r)
	p("%s:", lbl)
	for i := 0; i < r; i++ {
		p("\tVPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tMOVQ R14, R10")
	p("\tIMULQ R8, R10")
	p("\tADDQ t+0(FP), R10")
	if r > 4 {
		p("\tLEAQ (R10)(R8*4), R11")
	}
	p("\tMOVQ tt+40(FP), BX")
	p("\tLEAQ (BX)(R13*4), BX")
	p("\tMOVQ d+16(FP), CX")
	p("%s_k:", lbl)
	p("\tVMOVUPS (BX), Z8")
	for i := 0; i < r; i++ {
		base := []string{"R10", "R11"}[i/4]
		idx := []string{"", "(R8*1)", "(R8*2)", "(R9*1)"}[i%4]
		p("\tVFMADD231PS.BCST (%s)%s, Z8, Z%d", base, idx, i)
	}
	p("\tADDQ $4, R10")
	if r > 4 {
		p("\tADDQ $4, R11")
	}
	p("\tADDQ R12, BX")
	p("\tDECQ CX")
	p("\tJNE  %s_k", lbl)
	for i := 0; i < r; i++ {
		p("\t// Row x = a+%d: lanes min(16, x+self-16c), at out + 4*(x(x-1)/2 + self*x + 16c).", i)
		p("\tLEAQ %d(R14), AX", i)
		p("\tLEAQ (AX)(R15*1), DI")
		p("\tSUBQ R13, DI")
		p("\tMOVQ $16, CX")
		p("\tCMPQ DI, CX")
		p("\tCMOVQGT CX, DI")
		p("\tKMOVW (SI)(DI*2), K1")
		p("\tLEAQ -1(AX), DI")
		p("\tIMULQ AX, DI")
		p("\tSHRQ $1, DI")
		p("\tIMULQ R15, AX")
		p("\tADDQ AX, DI")
		p("\tADDQ R13, DI")
		p("\tVMOVUPS Z%d, K1, (DX)(DI*4)", i)
	}
	p("\tADDQ $%d, R14", r)
	p("\tJMP  %s_next", name)
}

// transpose16 transposes the 16x16 tile in Z0..Z15 (row i in Zi) in place,
// using Z16..Z31: 4x4 transposes within 128-bit lanes (unpack ps, pd), then
// 128-bit lane shuffles.
func transpose16() {
	for q := 0; q < 8; q++ {
		p("\tVUNPCKLPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q)
		p("\tVUNPCKHPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 17+2*q)
	}
	// b_{4q+m}: lane L = column 4L+m, rows 4q..4q+3.
	for q := 0; q < 4; q++ {
		a := 16 + 4*q
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", a+2, a, 4*q)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", a+2, a, 4*q+1)
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", a+3, a+1, 4*q+2)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", a+3, a+1, 4*q+3)
	}
	for m := 0; m < 4; m++ {
		c := 16 + 4*m
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", 4+m, m, c)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", 4+m, m, c+1)
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", 12+m, 8+m, c+2)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", 12+m, 8+m, c+3)
	}
	for m := 0; m < 4; m++ {
		c := 16 + 4*m
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", c+2, c, m)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", c+2, c, 8+m)
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", c+3, c+1, 4+m)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", c+3, c+1, 12+m)
	}
}

// ---- AVX2 ----

// The AVX2 kernel computes each 4x4 block as two halves of 2 rows x 4
// columns (8 accumulators Y0..Y7, accumulator 4r+j = dot(2h+r, j)), A rows in
// Y8, Y9, B rows in Y10..Y13, the tail mask in Y14.

func fma256(h int, diag bool) {
	for r := 0; r < 2; r++ {
		i := 2*h + r
		for j := 0; j < 4; j++ {
			if diag && j > i {
				continue
			}
			a := 8 + r
			if diag {
				a = 10 + i
			}
			p("\tVFMADD231PS Y%d, Y%d, Y%d", 10+j, a, 4*r+j)
		}
	}
}

// loads256 loads the rows a half needs: its two A rows and four B rows, or
// on the diagonal rows 0..2h+1 of the block into Y10.. (A and B at once).
func loads256(h int, diag, masked bool) {
	ld := func(src string, dst int) {
		if masked {
			p("\tVMASKMOVPS (%s)(CX*1), Y14, Y%d", src, dst)
		} else {
			p("\tVMOVUPS (%s)(CX*1), Y%d", src, dst)
		}
	}
	if diag {
		for i := 0; i <= 2*h+1; i++ {
			ld(aReg[i], 10+i)
		}
		return
	}
	ld(aReg[2*h], 8)
	ld(aReg[2*h+1], 9)
	for j, r := range bReg {
		ld(r, 10+j)
	}
}

func dloop256(lbl string, h int, diag bool) {
	for r := 0; r < 8; r++ {
		p("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	p("\tXORQ CX, CX")
	p("\tTESTQ DX, DX")
	p("\tJEQ  %s_tail", lbl)
	p("%s_loop:", lbl)
	prefetch(1)
	loads256(h, diag, false)
	fma256(h, diag)
	p("\tADDQ $32, CX")
	p("\tCMPQ CX, DX")
	p("\tJLT  %s_loop", lbl)
	p("%s_tail:", lbl)
	p("\tCMPQ %s, $0", locTLN)
	p("\tJEQ  %s_red", lbl)
	p("\tMOVQ %s, DI", locTM)
	p("\tVMOVUPS (DI), Y14")
	prefetch(1)
	loads256(h, diag, true)
	fma256(h, diag)
	p("%s_red:", lbl)
	reduce256()
}

// reduce256 sums each of Y0..Y7 across its 8 lanes, leaving dot(2h, 0..3)
// in the low 128 bits of Y0 and dot(2h+1, 0..3) in the high ones (same
// scheme and fixed order as reduce512).
func reduce256() {
	for q := 0; q < 4; q++ {
		p("\tVUNPCKLPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 8+2*q)
		p("\tVUNPCKHPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 9+2*q)
		p("\tVADDPS Y%d, Y%d, Y%d", 9+2*q, 8+2*q, q)
	}
	for q := 0; q < 2; q++ {
		p("\tVUNPCKLPD Y%d, Y%d, Y%d", 2*q+1, 2*q, 8+2*q)
		p("\tVUNPCKHPD Y%d, Y%d, Y%d", 2*q+1, 2*q, 9+2*q)
		p("\tVADDPS Y%d, Y%d, Y%d", 9+2*q, 8+2*q, q)
	}
	p("\tVPERM2F128 $0x20, Y1, Y0, Y8")
	p("\tVPERM2F128 $0x31, Y1, Y0, Y9")
	p("\tVADDPS Y9, Y8, Y0")
}

// store256 writes rows 2h and 2h+1 (if they exist); on the diagonal with
// VMASKMOVPS under the row's mask from interactMask<>.
func store256(lbl string, h int, diag bool) {
	for r := 0; r < 2; r++ {
		i := 2*h + r
		if i > 0 {
			p("\tCMPQ %s, $%d", locNV, i)
			p("\tJLE  %s_stored", lbl)
		}
		src := "X0"
		if r == 1 {
			if diag {
				p("\tVEXTRACTF128 $1, Y0, X15")
				src = "X15"
			}
		}
		if diag {
			p("\tMOVQ %s, DI", locDM)
			p("\tVMOVUPS %d(DI), X14", -4*i)
			p("\tMOVQ %s, DI", oSlot(i))
			p("\tVMASKMOVPS %s, X14, (DI)(AX*1)", src)
			continue
		}
		p("\tMOVQ %s, DI", oSlot(i))
		if r == 0 {
			p("\tVMOVUPS X0, (DI)(AX*1)")
		} else {
			p("\tVEXTRACTF128 $1, Y0, (DI)(AX*1)")
		}
	}
	p("%s_stored:", lbl)
}

func gen256() {
	name := "interactDot256"
	p("")
	p("// interactMask<>+32-4r holds r all-ones lanes followed by zero lanes (r = 0..8).")
	for i := 0; i < 16; i++ {
		v := "$0xffffffff"
		if i >= 8 {
			v = "$0"
		}
		p("DATA interactMask<>+%d(SB)/4, %s", 4*i, v)
	}
	p("GLOBL interactMask<>(SB), RODATA|NOPTR, $64")
	p("")
	p("// func %s(t *float32, f int, d int, self bool, out *float32, pf *float32, pfLast *float32)", name)
	p("TEXT ·%s(SB), NOSPLIT, $80-56", name)
	p("\tMOVQ pf+40(FP), SI")
	p("\tMOVQ d+16(FP), DX")
	p("\t// tl = d%%8, the floats of the last, partial step; tm = its VMASKMOVPS mask.")
	p("\tMOVQ DX, CX")
	p("\tANDQ $7, CX")
	p("\tMOVQ CX, %s", locTLN)
	p("\tSHLQ $2, CX")
	p("\tLEAQ interactMask<>+32(SB), AX")
	p("\tMOVQ AX, BX")
	p("\tSUBQ CX, AX")
	p("\tMOVQ AX, %s", locTM)
	p("\t// dm - 4i = the mask of row i of a diagonal block: i + self lanes.")
	p("\tMOVBLZX self+24(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tSUBQ CX, BX")
	p("\tMOVQ BX, %s", locDM)
	p("\t// DX = bytes of the whole 8-float steps of a vector.")
	p("\tSHLQ $2, DX")
	p("\tANDQ $-32, DX")
	p("\tMOVQ $0, %s", locA0)
	prologueRows(name)
	p("\tTESTQ BX, BX")
	p("\tJEQ  %s_diag", name)
	p("%s_full:", name)
	for h := 0; h < 2; h++ {
		lbl := fmt.Sprintf("%s_f%d", name, h)
		if h == 1 {
			p("\tCMPQ %s, $2", locNV)
			p("\tJLE  %s_stored", lbl)
		}
		dloop256(lbl, h, false)
		store256(lbl, h, false)
	}
	p("\tADDQ $16, AX")
	for _, r := range bReg {
		p("\tADDQ %s, %s", locST, r)
	}
	p("\tDECQ BX")
	p("\tJNE  %s_full", name)
	p("%s_diag:", name)
	for h := 0; h < 2; h++ {
		lbl := fmt.Sprintf("%s_d%d", name, h)
		if h == 1 {
			p("\tCMPQ %s, $2", locNV)
			p("\tJLE  %s_stored", lbl)
		}
		dloop256(lbl, h, true)
		store256(lbl, h, true)
	}
	epilogueRows(name)
}

func main() {
	out.Header("kernels/internal/gen/interact")
	p("// Kernels for InteractDot: the pairwise dots of one batch row, T (f x d floats at t,")
	p("// row-major) -> out[P(a)+b] = dot(T[a], T[b]) for b < a (b <= a with self), P(a) =")
	p("// a(a-1)/2 + self*a. The lower triangle is walked in 4x4 blocks (block row a0 = 0, 4, ...;")
	p("// full blocks b0 < a0, then the diagonal block b0 = a0, which computes only j <= i).")
	p("// Registers: R8-R11 = A rows of the block, R12-R15 = B rows, CX = byte offset along d,")
	p("// DX = bytes of whole steps, AX = byte offset of column b0 in the output rows,")
	p("// BX = full blocks left, SI = prefetch pointer into the next batch row.")
	gen512()
	genT512()
	gen256()
	if err := out.Write("interact_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
