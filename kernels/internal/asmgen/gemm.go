package asmgen

import "fmt"

// The row-blocked GEMM kernels (fp32, fp16, bf16 and int8 weights) share a
// register plan: SI = A block, R11/DI/R10 = A rows 0/4/8 moving along k,
// R8 = lda and R9 = 3*lda in bytes, BX = panel, CX = k steps left, DX = C
// block, R12 = ldc bytes, R13 = blocks left.

// RowReg returns the base register of A row i (rows 0-3 hang off R11, 4-7
// off DI, 8-11 off R10) and its index register and scale (lda R8 times 0,
// 1 or 2, or 3*lda R9; "" and 0 for the block's first row of four).
func RowReg(i int) (base, index string, scale int) {
	base = []string{"R11", "DI", "R10"}[i/4]
	switch i % 4 {
	case 1:
		return base, "R8", 1
	case 2:
		return base, "R8", 2
	case 3:
		return base, "R9", 1
	}
	return base, "", 0
}

// RowAddr is the address of A row i at byte displacement disp.
func RowAddr(i, disp int) string {
	base, index, scale := RowReg(i)
	if index == "" {
		return fmt.Sprintf("%d(%s)", disp, base)
	}
	return fmt.Sprintf("%d(%s)(%s*%d)", disp, base, index, scale)
}

// PanelAddr is byte displacement disp into panel g of a group of panels
// lying R14 bytes apart (R9 = 3*R14), the first at BX.
func PanelAddr(g, disp int) string {
	return fmt.Sprintf("%d(BX)%s", disp, []string{"", "(R14*1)", "(R14*2)", "(R9*1)"}[g])
}

// RowPointers points R11 (and DI, R10 as mr needs) at the block's rows.
func (f *File) RowPointers(mr int) {
	f.P("\tMOVQ SI, R11")
	if mr > 4 {
		f.P("\tLEAQ (SI)(R8*4), DI")
	}
	if mr > 8 {
		f.P("\tLEAQ (DI)(R8*4), R10")
	}
}

// AdvanceRows moves the row pointers of an mr-row block bytes along k.
func (f *File) AdvanceRows(mr, bytes int) {
	f.P("\tADDQ $%d, R11", bytes)
	if mr > 4 {
		f.P("\tADDQ $%d, DI", bytes)
	}
	if mr > 8 {
		f.P("\tADDQ $%d, R10", bytes)
	}
}

// KLoop describes the k loop of a row-blocked kernel: k steps of 4 A bytes
// and pstep panel bytes each, unroll per iteration, the count in the frame
// slot kArg (e.g. "k+24(FP)").
type KLoop struct {
	KArg          string
	Unroll, Pstep int
	// Label suffixes of the Loop; its defaults if empty.
	Tail, Tail1, Done string
}

// KLoop loads the panel (b+16(FP)) and the k count, then loops step(u)
// over k, moving the mr row pointers and the panel along.
func (f *File) KLoop(k KLoop, name string, mr int, step func(u int)) {
	f.P("\tMOVQ b+16(FP), BX")
	f.P("\tMOVQ %s, CX", k.KArg)
	f.Loop(Loop{Name: name, Unroll: k.Unroll, Step: step, Tail: k.Tail, Tail1: k.Tail1, Done: k.Done,
		Advance: func(n int) {
			f.AdvanceRows(mr, 4*n)
			f.P("\tADDQ $%d, BX", n*k.Pstep)
		}})
}

// ReLU emits the optional ReLU and the label name_store: if the bool at
// frame slot arg (read into the scratch register gpr) is false it jumps to
// name_store; otherwise it zeroes vector register zero with xor (VPXORD or
// VXORPS) and replaces registers 0..n-1 by max(0, x). vec is the register
// prefix: "Z", "Y" or "X".
func (f *File) ReLU(name, arg, gpr, xor, vec string, zero, n int) {
	f.P("\tMOVBLZX %s, %s", arg, gpr)
	f.P("\tTESTQ %s, %s", gpr, gpr)
	f.P("\tJEQ  %s_store", name)
	f.P("\t%s %s%d, %s%d, %s%d", xor, vec, zero, vec, zero, vec, zero)
	f.P("\t// max(0, x) with 0 as the first source keeps NaN (and -0), like the reference's x < 0 test.")
	for r := 0; r < n; r++ {
		f.P("\tVMAXPS %s%d, %s%d, %s%d", vec, r, vec, zero, vec, r)
	}
	f.P("%s_store:", name)
}

// NextBlock moves A and C on by mr rows (through the scratch register
// gpr) and loops to name_block while blocks are left, then returns.
func (f *File) NextBlock(name string, mr int, gpr string) {
	f.P("\tIMUL3Q $%d, R8, %s", mr, gpr)
	f.P("\tADDQ %s, SI", gpr)
	f.P("\tIMUL3Q $%d, R12, %s", mr, gpr)
	f.P("\tADDQ %s, DX", gpr)
	f.P("\tDECQ R13")
	f.P("\tJNE  %s_block", name)
	f.P("\tVZEROUPPER")
	f.P("\tRET")
}

// Text opens the TEXT symbol name with its Go declaration's parameter
// list sig as a comment, frameless, argBytes of arguments.
func (f *File) Text(name, sig string, argBytes int) {
	f.P("")
	f.P("// func %s%s", name, sig)
	f.P("TEXT ·%s(SB), NOSPLIT, $0-%d", name, argBytes)
}

// Strides loads R8 = lda in bytes (lda+8(FP) << ldaShift), R9 = 3*R8 and
// R12 = ldc in float bytes (ldc+40(FP)).
func (f *File) Strides(ldaShift int) {
	f.P("	MOVQ lda+8(FP), R8")
	f.P("	SHLQ $%d, R8", ldaShift)
	f.P("	LEAQ (R8)(R8*2), R9")
	f.P("	MOVQ ldc+40(FP), R12")
	f.P("	SHLQ $2, R12")
}

// Masks512 loads the panel's column mask (frame slot maskArg) into K1
// (columns 0-15) and K2 (16-31).
func (f *File) Masks512(maskArg string) {
	f.P("	// K1 masks columns 0-15 of the panel, K2 columns 16-31: bias loads and C stores never touch column >= N.")
	f.P("	MOVQ %s, AX", maskArg)
	f.P("	KMOVD AX, K1")
	f.P("	KSHIFTRD $16, K1, K2")
}

// BlockStart loads SI = A, DX = C and R13 = nblk (frame slot nblkArg) and
// opens the block loop name_block.
func (f *File) BlockStart(name, nblkArg string) {
	f.P("	MOVQ a+0(FP), SI")
	f.P("	MOVQ c+32(FP), DX")
	f.P("	MOVQ %s, R13", nblkArg)
	f.P("%s_block:", name)
}

// StoreRows emits store(i) for the mr rows of a C tile whose row i the
// register gpr points at, moving gpr on by ldc (R12) between rows.
func (f *File) StoreRows(mr int, gpr string, store func(i int)) {
	for i := 0; i < mr; i++ {
		store(i)
		if i < mr-1 {
			f.P("\tADDQ R12, %s", gpr)
		}
	}
}

// Masked512 writes a row-blocked AVX-512 kernel of the frame (a, lda, b,
// k, c, ldc, bias, mask, relu, nblk): nblk blocks of mr rows x 32 columns,
// accumulators Z(2i), Z(2i+1) for row i starting from the bias (Z26, Z27,
// loaded under the column masks K1, K2), ReLU, and a store under the
// masks. sig is the Go declaration's parameter list, ldaShift the log2 of
// an A element's bytes, step(u) the k step u (Z28-Z31 free for it).
func (f *File) Masked512(name, sig string, mr, ldaShift int, k KLoop, step func(u int)) {
	f.Text(name, sig, 80)
	f.Strides(ldaShift)
	f.Masks512("mask+56(FP)")
	f.P("\tMOVQ bias+48(FP), AX")
	f.P("\tVMOVUPS.Z (AX), K1, Z26")
	f.P("\tVMOVUPS.Z 64(AX), K2, Z27")
	f.BlockStart(name, "nblk+72(FP)")
	for i := 0; i < mr; i++ {
		f.P("\tVMOVAPS Z26, Z%d", 2*i)
		f.P("\tVMOVAPS Z27, Z%d", 2*i+1)
	}
	f.RowPointers(mr)
	f.KLoop(k, name, mr, step)
	f.ReLU(name, "relu+64(FP)", "AX", "VPXORD", "Z", 28, 2*mr)
	f.P("\tMOVQ DX, AX")
	f.StoreRows(mr, "AX", func(i int) {
		f.P("\tVMOVUPS Z%d, K1, (AX)", 2*i)
		f.P("\tVMOVUPS Z%d, K2, 64(AX)", 2*i+1)
	})
	f.NextBlock(name, mr, "AX")
}

// Plain256 writes a row-blocked AVX2 kernel of the frame (a, lda, b, k, c,
// ldc, bias, relu, nblk) over 16 float columns, without masks: nblk blocks
// of mr rows, accumulators Y(2i), Y(2i+1) for row i loaded from the bias,
// ReLU, and a store of all 16 columns. step(u) is k step u (Y12-Y15 free
// for it); A is float32.
func (f *File) Plain256(name, sig string, mr int, k KLoop, step func(u int)) {
	f.Text(name, sig, 72)
	f.Strides(2)
	f.P("\tMOVQ bias+48(FP), AX")
	f.BlockStart(name, "nblk+64(FP)")
	for i := 0; i < mr; i++ {
		f.P("\tVMOVUPS (AX), Y%d", 2*i)
		f.P("\tVMOVUPS 32(AX), Y%d", 2*i+1)
	}
	f.RowPointers(mr)
	f.KLoop(k, name, mr, step)
	f.ReLU(name, "relu+56(FP)", "R10", "VXORPS", "Y", 15, 2*mr)
	f.P("\tMOVQ DX, R10")
	f.StoreRows(mr, "R10", func(i int) {
		f.P("\tVMOVUPS Y%d, (R10)", 2*i)
		f.P("\tVMOVUPS Y%d, 32(R10)", 2*i+1)
	})
	f.NextBlock(name, mr, "R10")
}

// The one-row group kernels (frame a, b, k, c, bias, bstep, relu, ngrp)
// run a lone A row over ngrp groups of G full panels at once, the panels
// of a group R14 bytes apart, for more independent FMA chains.

// GroupPrologue loads the group kernel's registers and opens name_grp:
// R14 = panel bytes (k << pstepShift), R9 = 3*R14, R10 = G*R14, AX = bias,
// R13 = first panel of the group, DX = C, DI = groups left. kArg is the
// frame slot of k at offset 16 ("k+16(FP)").
func (f *File) GroupPrologue(name, kArg string, pstepShift, G int) {
	f.P("\tMOVQ %s, R14", kArg)
	f.P("\tSHLQ $%d, R14", pstepShift)
	f.P("\tLEAQ (R14)(R14*2), R9")
	f.P("\tIMUL3Q $%d, R14, R10", G)
	f.P("\tMOVQ bias+32(FP), AX")
	f.P("\tMOVQ b+8(FP), R13")
	f.P("\tMOVQ c+24(FP), DX")
	f.P("\tMOVQ ngrp+56(FP), DI")
	f.P("%s_grp:", name)
}

// GroupLoop loads R11 = the A row, BX = the group's first panel and CX =
// k (frame slot kArg), and loops step(u) over k, moving R11 4 bytes and
// BX pstep bytes a step.
func (f *File) GroupLoop(name, kArg string, unroll, pstep int, step func(u int)) {
	f.P("\tMOVQ a+0(FP), R11")
	f.P("\tMOVQ R13, BX")
	f.P("\tMOVQ %s, CX", kArg)
	f.Loop(Loop{Name: name, Unroll: unroll, Step: step, Advance: func(n int) {
		f.P("\tADDQ $%d, R11", 4*n)
		f.P("\tADDQ $%d, BX", n*pstep)
	}})
}

// NextGroup moves the bias (by the frame slot bstepArg), C (by G panels of
// 32 floats) and the panels on, and loops to name_grp, then returns.
func (f *File) NextGroup(name, bstepArg string, G int) {
	f.P("\tADDQ %s, AX", bstepArg)
	f.P("\tADDQ $%d, DX", 128*G)
	f.P("\tADDQ R10, R13")
	f.P("\tDECQ DI")
	f.P("\tJNE  %s_grp", name)
	f.P("\tVZEROUPPER")
	f.P("\tRET")
}
