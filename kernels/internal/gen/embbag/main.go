package main

import (
	"fmt"
	"log"

	"github.com/rqtools/rq/kernels/internal/asmgen"
)

var out = asmgen.New()

var p = out.P

// format describes one table layout.
type format struct {
	name     string // F32, F16, Q8, Q4, Q2
	weighted bool   // F32/F16: the per-sample-weight variant (quantized kernels always scale by w)
}

func (f format) quant() bool { return f.name[0] == 'Q' }

// vectors per unit: how many accumulator vectors one unit fills.
func (f format) accPerUnit() int {
	switch f.name {
	case "Q4":
		return 2
	case "Q2":
		return 4
	}
	return 1
}

func (f format) symbol(isa string) string {
	s := "bag" + isa + f.name
	if f.weighted {
		s += "W"
	}
	return s
}

var formats = []format{
	{"F32", false}, {"F32", true}, {"F16", false}, {"F16", true},
	{"Q8", false}, {"Q4", false}, {"Q2", false},
}

const sig = "(tbl *byte, stride int, sboff int, idx *int64, offs *int32, w *float32, wstep int, nbags int, out *float32, ldo int, mean bool, nunits int, masks *uint64, pfdist int, pfend uintptr, pflines int)"

// Argument offsets in the frame (all 8 bytes; mean is a bool padded to 8).
const frameArgs = 128

func prologue(isa string, f format) {
	name := f.symbol(isa)
	p("")
	p("// func %s%s", name, sig)
	p("TEXT ·%s(SB), NOSPLIT, $0-%d", name, frameArgs)
	p("\tMOVQ tbl+0(FP), R8")
	p("\tMOVQ stride+8(FP), R9")
	p("\tMOVQ idx+24(FP), SI")
	p("\tMOVQ offs+32(FP), DI")
	p("\tMOVQ w+40(FP), R10")
	p("\tMOVQ wstep+48(FP), R11")
	p("\tMOVQ nbags+56(FP), R14")
	p("\tMOVQ out+64(FP), R12")
	p("\tMOVQ ldo+72(FP), R13")
	p("\tSHLQ $2, R13")
}

// dispatch jumps to the variant for nunits (1..max).
func dispatch(name string, maxUnits int) {
	p("\tMOVQ nunits+88(FP), AX")
	for u := 1; u < maxUnits; u++ {
		p("\tCMPQ AX, $%d", u)
		p("\tJEQ  %s_u%d_bag", name, u)
	}
	p("\tJMP  %s_u%d_bag", name, maxUnits)
}

// prefetch emits the software prefetch of the row pfdist indices ahead
// (bounded by pfend, the end of this call's indices): the row's last byte
// (R9 is the row length), then pflines lines from its start, which covers a
// row straddling one more line than its length suggests. PREFETCHT2 (into
// L2) rather than T0: on Zen 4 it was 1.5-2.5x faster for big tables, T0
// prefetches apparently queuing on the L1's few miss buffers while the L2
// tracks many more misses; the row moves to L1 on use at L2-hit latency.
func prefetch(l string) {
	p("\tMOVQ pfdist+104(FP), AX")
	p("\tTESTQ AX, AX")
	p("\tJEQ  %s_nopf", l)
	p("\tLEAQ (SI)(AX*8), AX")
	p("\tCMPQ AX, pfend+112(FP)")
	p("\tJAE  %s_nopf", l)
	p("\tMOVQ (AX), AX")
	p("\tIMULQ R9, AX")
	p("\tADDQ R8, AX")
	p("\tPREFETCHT2 -1(AX)(R9*1)")
	p("\tMOVQ pflines+120(FP), BX")
	p("%s_pf:", l)
	p("\tPREFETCHT2 (AX)")
	p("\tADDQ $64, AX")
	p("\tDECQ BX")
	p("\tJNE  %s_pf", l)
	p("%s_nopf:", l)
}

// bagHead starts a bag: CX = its length; returns with accumulators zeroed.
func bagHead(l string, nacc int, zero func(i int)) {
	p("%s_bag:", l)
	p("\tTESTQ R14, R14")
	p("\tJEQ  %s_done", l)
	p("\tMOVLQSX (DI), AX")
	p("\tMOVLQSX 4(DI), CX")
	p("\tSUBQ AX, CX")
	for i := 0; i < nacc; i++ {
		zero(i)
	}
	p("\tTESTQ CX, CX")
	p("\tJEQ  %s_store", l)
	p("%s_idx:", l)
	p("\tMOVQ (SI), AX")
	p("\tIMULQ R9, AX")
	p("\tLEAQ (R8)(AX*1), DX")
}

// bagMean divides the accumulators by the bag length when mean is set and
// the bag is not empty (empty bags stay zero).
func bagMean(l string, nacc int, reg string, div string) {
	p("%s_store:", l)
	p("\tCMPB mean+80(FP), $0")
	p("\tJEQ  %s_nomean", l)
	p("\tMOVLQSX (DI), AX")
	p("\tMOVLQSX 4(DI), BX")
	p("\tSUBQ AX, BX")
	p("\tJEQ  %s_nomean", l)
	p("\tVCVTSI2SSQ BX, X%s, X%s", div, div)
	p("\tVBROADCASTSS X%s, %s%s", div, reg, div)
	for i := 0; i < nacc; i++ {
		p("\tVDIVPS %s%s, %s%d, %s%d", reg, div, reg, i, reg, i)
	}
	p("%s_nomean:", l)
}

func bagTail(l string) {
	p("\tADDQ $4, DI")
	p("\tADDQ R13, R12")
	p("\tDECQ R14")
	p("\tJMP  %s_bag", l)
	p("%s_done:", l)
	p("\tVZEROUPPER")
	p("\tRET")
}

// ---------------------------------------------------------------- AVX-512
//
// Registers: Z0-Z7 accumulators, Z8-Z15 unit temporaries, Z16-Z23
// interleave temporaries, Z24-Z27 interleave index vectors, Z28 weight /
// divisor, Z29 code mask (0x0f or 0x03), Z30 scale, Z31 bias. K1 masks the
// loads of the last unit (one bit per byte, fp16 or fp32 element), K2-K5 the
// stores of its output vectors. GP: R8 table (+ chunk offset), R9 row
// stride, SI next index, DI offsets of the current bag, R10 its weight
// (R11 the weight stride, 0 without weights), R12 its output row (R13 ldo
// bytes), R14 bags left, CX indices left in the bag, DX the row.

const chunk512 = 128

func unitCols512(f format) int { return 16 * f.accPerUnit() }

func gen512(f format) {
	name := f.symbol("512")
	prologue("512", f)
	p("\tMOVQ masks+96(FP), AX")
	p("\tKMOVQ (AX), K1")
	p("\tKMOVQ 8(AX), K2")
	p("\tKSHIFTRQ $16, K2, K3")
	p("\tKSHIFTRQ $32, K2, K4")
	p("\tKSHIFTRQ $48, K2, K5")
	switch f.name {
	case "Q4":
		p("\tVPBROADCASTD bagMask4<>(SB), Z29")
		p("\tVMOVDQU32 bagIlv32Lo<>(SB), Z24")
		p("\tVMOVDQU32 bagIlv32Hi<>(SB), Z25")
	case "Q2":
		p("\tVPBROADCASTD bagMask2<>(SB), Z29")
		p("\tVMOVDQU32 bagIlv32Lo<>(SB), Z24")
		p("\tVMOVDQU32 bagIlv32Hi<>(SB), Z25")
		p("\tVMOVDQU64 bagIlv64Lo<>(SB), Z26")
		p("\tVMOVDQU64 bagIlv64Hi<>(SB), Z27")
	}
	maxUnits := chunk512 / unitCols512(f)
	dispatch(name, maxUnits)
	for n := 1; n <= maxUnits; n++ {
		variant512(f, name, n)
	}
}

func variant512(f format, name string, n int) {
	l := fmt.Sprintf("%s_u%d", name, n)
	apu := f.accPerUnit()
	nacc := n * apu
	bagHead(l, nacc, func(i int) { p("\tVPXORD Z%d, Z%d, Z%d", i, i, i) })
	prefetch(l)
	// Scale and bias (times the weight) in Z30, Z31; or the weight in Z28.
	switch {
	case f.quant():
		p("\tMOVQ sboff+16(FP), AX")
		if f.name == "Q8" {
			p("\tVMOVQ (DX)(AX*1), X30")
		} else {
			p("\tVMOVD (DX)(AX*1), X30")
			p("\tVCVTPH2PS X30, X30")
		}
		p("\tVBROADCASTSS (R10), X28")
		p("\tVMULPS X28, X30, X30")
		p("\tVMOVSHDUP X30, X31")
		p("\tVBROADCASTSS X30, Z30")
		p("\tVBROADCASTSS X31, Z31")
	case f.weighted:
		p("\tVBROADCASTSS (R10), Z28")
	}
	for u := 0; u < n; u++ {
		last := u == n-1
		t := 8 + (u % 2 * 4) // alternate temporaries between units
		switch f.name {
		case "F32":
			src := fmt.Sprintf("%d(DX)", 64*u)
			if last {
				p("\tVMOVUPS.Z %s, K1, Z%d", src, t)
				src = fmt.Sprintf("Z%d", t)
			}
			if f.weighted {
				p("\tVMULPS %s, Z28, Z%d", src, t)
				src = fmt.Sprintf("Z%d", t)
			}
			p("\tVADDPS %s, Z%d, Z%d", src, u, u)
		case "F16":
			if last {
				p("\tVMOVDQU16.Z %d(DX), K1, Y%d", 32*u, t)
				p("\tVCVTPH2PS Y%d, Z%d", t, t)
			} else {
				p("\tVCVTPH2PS %d(DX), Z%d", 32*u, t)
			}
			if f.weighted {
				p("\tVMULPS Z%d, Z28, Z%d", t, t)
			}
			p("\tVADDPS Z%d, Z%d, Z%d", t, u, u)
		default:
			if last {
				p("\tVMOVDQU8.Z %d(DX), K1, X%d", 16*u, t)
				p("\tVPMOVZXBD X%d, Z%d", t, t)
			} else {
				p("\tVPMOVZXBD %d(DX), Z%d", 16*u, t)
			}
			codes := []int{t}
			switch f.name {
			case "Q4": // element 2j: low nibble of byte j; 2j+1: high nibble
				p("\tVPSRLD $4, Z%d, Z%d", t, t+1)
				p("\tVPANDD Z29, Z%d, Z%d", t, t)
				codes = []int{t, t + 1}
			case "Q2": // element 4j+k: bits 2k..2k+1 of byte j
				p("\tVPSRLD $2, Z%d, Z%d", t, t+1)
				p("\tVPSRLD $4, Z%d, Z%d", t, t+2)
				p("\tVPSRLD $6, Z%d, Z%d", t, t+3)
				p("\tVPANDD Z29, Z%d, Z%d", t, t)
				p("\tVPANDD Z29, Z%d, Z%d", t+1, t+1)
				p("\tVPANDD Z29, Z%d, Z%d", t+2, t+2)
				codes = []int{t, t + 1, t + 2, t + 3}
			}
			// acc = fma(scale, q, acc + bias), the accumulators holding
			// elements unit*cols + k + apu*j (de-interleaved) for code k.
			for k, c := range codes {
				a := u*apu + k
				p("\tVCVTDQ2PS Z%d, Z%d", c, c)
				p("\tVADDPS Z31, Z%d, Z%d", a, a)
				p("\tVFMADD231PS Z30, Z%d, Z%d", c, a)
			}
		}
	}
	p("\tADDQ $8, SI")
	p("\tADDQ R11, R10")
	p("\tDECQ CX")
	p("\tJNE  %s_idx", l)
	bagMean(l, nacc, "Z", "28")
	for u := 0; u < n; u++ {
		last := u == n-1
		st := func(reg, off, kmask int) {
			if last {
				p("\tVMOVUPS Z%d, K%d, %d(R12)", reg, kmask, off)
			} else {
				p("\tVMOVUPS Z%d, %d(R12)", reg, off)
			}
		}
		switch f.name {
		case "Q4": // interleave even and odd elements back
			e, o := 2*u, 2*u+1
			p("\tVMOVDQA32 Z24, Z16")
			p("\tVPERMI2PS Z%d, Z%d, Z16", o, e)
			p("\tVMOVDQA32 Z25, Z17")
			p("\tVPERMI2PS Z%d, Z%d, Z17", o, e)
			st(16, 128*u, 2)
			st(17, 128*u+64, 3)
		case "Q2": // 4-way interleave: pairs of dwords, then pairs of qwords
			a := 4 * u
			p("\tVMOVDQA32 Z24, Z16")
			p("\tVPERMI2PS Z%d, Z%d, Z16", a+1, a)
			p("\tVMOVDQA32 Z25, Z17")
			p("\tVPERMI2PS Z%d, Z%d, Z17", a+1, a)
			p("\tVMOVDQA32 Z24, Z18")
			p("\tVPERMI2PS Z%d, Z%d, Z18", a+3, a+2)
			p("\tVMOVDQA32 Z25, Z19")
			p("\tVPERMI2PS Z%d, Z%d, Z19", a+3, a+2)
			p("\tVMOVDQA64 Z26, Z20")
			p("\tVPERMI2PD Z18, Z16, Z20")
			p("\tVMOVDQA64 Z27, Z21")
			p("\tVPERMI2PD Z18, Z16, Z21")
			p("\tVMOVDQA64 Z26, Z22")
			p("\tVPERMI2PD Z19, Z17, Z22")
			p("\tVMOVDQA64 Z27, Z23")
			p("\tVPERMI2PD Z19, Z17, Z23")
			st(20, 256*u, 2)
			st(21, 256*u+64, 3)
			st(22, 256*u+128, 4)
			st(23, 256*u+192, 5)
		default:
			st(u, 64*u, 2)
		}
	}
	bagTail(l)
}

// ---------------------------------------------------------------- AVX2
//
// Registers: Y0-Y7 accumulators, Y8-Y11 temporaries, Y12 bias, Y13 scale
// or weight, Y14 code mask, Y15 load/store masks and the divisor. Without
// opmasks, the last unit's loads that could run past the row use
// VPMASKMOVD/VMASKMOVPS with dword masks (masks[0..7]; masked-out dwords
// never fault), and its stores VMASKMOVPS (masks[8+8v..] for output vector
// v). The Go side guarantees no dword of a masked load straddles the row
// end (fp16 rows of odd dim take the Go path).

const chunk256 = 64

func unitCols256(f format) int { return 8 * f.accPerUnit() }

func gen256(f format) {
	name := f.symbol("256")
	prologue("256", f)
	switch f.name {
	case "Q4":
		p("\tVPBROADCASTD bagMask4<>(SB), Y14")
	case "Q2":
		p("\tVPBROADCASTD bagMask2<>(SB), Y14")
	}
	maxUnits := chunk256 / unitCols256(f)
	dispatch(name, maxUnits)
	for n := 1; n <= maxUnits; n++ {
		variant256(f, name, n)
	}
}

func variant256(f format, name string, n int) {
	l := fmt.Sprintf("%s_u%d", name, n)
	apu := f.accPerUnit()
	nacc := n * apu
	bagHead(l, nacc, func(i int) { p("\tVXORPS Y%d, Y%d, Y%d", i, i, i) })
	prefetch(l)
	switch {
	case f.quant():
		p("\tMOVQ sboff+16(FP), AX")
		if f.name == "Q8" {
			p("\tVMOVQ (DX)(AX*1), X12")
		} else {
			p("\tVMOVD (DX)(AX*1), X12")
			p("\tVCVTPH2PS X12, X12")
		}
		p("\tVBROADCASTSS (R10), X13")
		p("\tVMULPS X13, X12, X12")
		p("\tVBROADCASTSS X12, Y13")
		p("\tVMOVSHDUP X12, X12")
		p("\tVBROADCASTSS X12, Y12")
	case f.weighted:
		p("\tVBROADCASTSS (R10), Y13")
	}
	loadMask := func() {
		p("\tMOVQ masks+96(FP), AX")
		p("\tVMOVDQU (AX), Y15")
	}
	for u := 0; u < n; u++ {
		last := u == n-1
		switch f.name {
		case "F32":
			src := fmt.Sprintf("%d(DX)", 32*u)
			if last {
				loadMask()
				p("\tVMASKMOVPS %s, Y15, Y8", src)
				src = "Y8"
			}
			if f.weighted {
				p("\tVMULPS %s, Y13, Y8", src)
				src = "Y8"
			}
			p("\tVADDPS %s, Y%d, Y%d", src, u, u)
		case "F16":
			if last {
				loadMask()
				p("\tVPMASKMOVD %d(DX), X15, X8", 16*u)
				p("\tVCVTPH2PS X8, Y8")
			} else {
				p("\tVCVTPH2PS %d(DX), Y8", 16*u)
			}
			if f.weighted {
				p("\tVMULPS Y8, Y13, Y8")
			}
			p("\tVADDPS Y8, Y%d, Y%d", u, u)
		default:
			if last && f.name != "Q8" {
				// Q8 rows end in 8 bytes of scale and bias, so an 8-byte
				// load from inside the codes never leaves the row.
				loadMask()
				p("\tVPMASKMOVD %d(DX), X15, X8", 8*u)
				p("\tVPMOVZXBD X8, Y8")
			} else {
				p("\tVPMOVZXBD %d(DX), Y8", 8*u)
			}
			codes := []int{8}
			switch f.name {
			case "Q4":
				p("\tVPSRLD $4, Y8, Y9")
				p("\tVPAND Y14, Y8, Y8")
				codes = []int{8, 9}
			case "Q2":
				p("\tVPSRLD $2, Y8, Y9")
				p("\tVPSRLD $4, Y8, Y10")
				p("\tVPSRLD $6, Y8, Y11")
				p("\tVPAND Y14, Y8, Y8")
				p("\tVPAND Y14, Y9, Y9")
				p("\tVPAND Y14, Y10, Y10")
				codes = []int{8, 9, 10, 11}
			}
			for k, c := range codes {
				a := u*apu + k
				p("\tVCVTDQ2PS Y%d, Y%d", c, c)
				p("\tVADDPS Y12, Y%d, Y%d", a, a)
				p("\tVFMADD231PS Y13, Y%d, Y%d", c, a)
			}
		}
	}
	p("\tADDQ $8, SI")
	p("\tADDQ R11, R10")
	p("\tDECQ CX")
	p("\tJNE  %s_idx", l)
	bagMean(l, nacc, "Y", "15")
	for u := 0; u < n; u++ {
		last := u == n-1
		st := func(reg, off, v int) {
			if last {
				p("\tMOVQ masks+96(FP), AX")
				p("\tVMOVDQU %d(AX), Y15", 32+32*v)
				p("\tVMASKMOVPS Y%d, Y15, %d(R12)", reg, off)
			} else {
				p("\tVMOVUPS Y%d, %d(R12)", reg, off)
			}
		}
		switch f.name {
		case "Q4":
			e, o := 2*u, 2*u+1
			p("\tVUNPCKLPS Y%d, Y%d, Y8", o, e)
			p("\tVUNPCKHPS Y%d, Y%d, Y9", o, e)
			p("\tVPERM2F128 $0x20, Y9, Y8, Y10")
			p("\tVPERM2F128 $0x31, Y9, Y8, Y11")
			st(10, 64*u, 0)
			st(11, 64*u+32, 1)
		case "Q2":
			a := 4 * u
			p("\tVUNPCKLPS Y%d, Y%d, Y8", a+1, a)
			p("\tVUNPCKHPS Y%d, Y%d, Y9", a+1, a)
			p("\tVUNPCKLPS Y%d, Y%d, Y10", a+3, a+2)
			p("\tVUNPCKHPS Y%d, Y%d, Y11", a+3, a+2)
			p("\tVUNPCKLPD Y10, Y8, Y12")
			p("\tVUNPCKHPD Y10, Y8, Y13")
			p("\tVUNPCKLPD Y11, Y9, Y8")
			p("\tVUNPCKHPD Y11, Y9, Y10")
			p("\tVPERM2F128 $0x20, Y13, Y12, Y9")
			st(9, 128*u, 0)
			p("\tVPERM2F128 $0x20, Y10, Y8, Y11")
			st(11, 128*u+32, 1)
			p("\tVPERM2F128 $0x31, Y13, Y12, Y9")
			st(9, 128*u+64, 2)
			p("\tVPERM2F128 $0x31, Y10, Y8, Y11")
			st(11, 128*u+96, 3)
		default:
			st(u, 32*u, 0)
		}
	}
	bagTail(l)
}

func data() {
	p("")
	p("DATA bagMask4<>+0(SB)/4, $0x0f")
	p("GLOBL bagMask4<>(SB), RODATA|NOPTR, $4")
	p("DATA bagMask2<>+0(SB)/4, $0x03")
	p("GLOBL bagMask2<>(SB), RODATA|NOPTR, $4")
	// VPERMI2PS indices interleaving two vectors' dwords: lo = 0,16,1,17,...,7,23; hi = 8,24,...,15,31.
	for h, nm := range []string{"Lo", "Hi"} {
		for i := 0; i < 16; i++ {
			v := 8*h + i/2
			if i%2 == 1 {
				v += 16
			}
			p("DATA bagIlv32%s<>+%d(SB)/4, $%d", nm, 4*i, v)
		}
		p("GLOBL bagIlv32%s<>(SB), RODATA|NOPTR, $64", nm)
	}
	// VPERMI2PD indices interleaving qwords: lo = 0,8,1,9,2,10,3,11; hi = 4,12,...,7,15.
	for h, nm := range []string{"Lo", "Hi"} {
		for i := 0; i < 8; i++ {
			v := 4*h + i/2
			if i%2 == 1 {
				v += 8
			}
			p("DATA bagIlv64%s<>+%d(SB)/8, $%d", nm, 8*i, v)
		}
		p("GLOBL bagIlv64%s<>(SB), RODATA|NOPTR, $64", nm)
	}
}

func main() {
	out.Header("kernels/internal/gen/embbag")
	p("// Embedding-bag kernels (see kernels/internal/gen/embbag for the register use). Each pools nbags bags")
	p("// over one column chunk: for every bag, the accumulators start at zero and, for each of")
	p("// its indices, add the row: fp32/fp16 acc += w*v (multiply, then add, as the Go code);")
	p("// quantized acc = fma(w*scale, q, acc + w*bias) in float32. Then mean divides by the bag")
	p("// length, and the chunk is stored to the bag's output row.")
	for _, f := range formats {
		gen512(f)
	}
	for _, f := range formats {
		gen256(f)
	}
	data()
	if err := out.Write("embbag_amd64.s"); err != nil {
		log.Fatal(err)
	}
}
