package asmgen

import (
	"fmt"
	"strings"
)

// AMX instructions as bytes: Go's assembler has no AMX mnemonics, so the
// AMX kernels' generators emit them as BYTE directives (File.Emit) from
// these encoders. All are VEX.128 (C4, map 0F38, W0) with the tile
// registers tmm0..tmm7 in ModRM.reg, ModRM.rm and VEX.vvvv as the SDM's
// opcode tables give them; memory operands are SIB (base + index*scale +
// disp; TILELOADD/TILESTORED take the row stride as the index). The test
// compares every form with GNU as.

// Mem is a memory operand disp(Base)(Index*Scale) with Go's register names
// (AX .. R15); Index "" is none.
type Mem struct {
	Base, Index string
	Scale, Disp int
}

// gprNum numbers the general registers in x86 encoding order.
var gprNum = map[string]int{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15}

func (m Mem) String() string {
	s := fmt.Sprintf("%d(%s)", m.Disp, m.Base)
	if m.Index != "" {
		s += fmt.Sprintf("(%s*%d)", m.Index, m.Scale)
	}
	return s
}

// VEX pp field values (implied prefixes).
const (
	ppNone = 0
	pp66   = 1
	ppF3   = 2
	ppF2   = 3
)

// vex3 is the 3-byte VEX prefix of map 0F38, W0, L0: R̄X̄B̄ from the
// register extension bits, vvvv inverted.
func vex3(r, x, b, vvvv, pp int) []byte {
	return []byte{0xc4, byte((1-r)<<7 | (1-x)<<6 | (1-b)<<5 | 2), byte((^vvvv&15)<<3 | pp)}
}

// modrmMem encodes ModRM (reg in bits 5:3), SIB and displacement for m,
// and returns them with the VEX X and B bits. It panics on an operand x86
// cannot encode (the generator's bug).
func modrmMem(reg int, m Mem) (tail []byte, x, b int) {
	base, ok := gprNum[m.Base]
	if !ok {
		panic(fmt.Sprintf("asmgen: bad base register %q", m.Base))
	}
	b = base >> 3
	var mod int
	var disp []byte
	switch {
	case m.Disp == 0 && base&7 != 5: // (R)BP and R13 need a displacement
	case m.Disp >= -128 && m.Disp <= 127:
		mod, disp = 1, []byte{byte(int8(m.Disp))}
	default:
		d := uint32(int32(m.Disp))
		mod, disp = 2, []byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)}
	}
	switch {
	case m.Index != "":
		idx, ok := gprNum[m.Index]
		ss, ok2 := map[int]int{1: 0, 2: 1, 4: 2, 8: 3}[m.Scale]
		if !ok || !ok2 || idx == 4 {
			panic(fmt.Sprintf("asmgen: bad index in %v", m))
		}
		x = idx >> 3
		tail = []byte{byte(mod<<6 | (reg&7)<<3 | 4), byte(ss<<6 | (idx&7)<<3 | base&7)}
	case base&7 == 4: // (R)SP and R12 need a SIB byte
		tail = []byte{byte(mod<<6 | (reg&7)<<3 | 4), 0x24}
	default:
		tail = []byte{byte(mod<<6 | (reg&7)<<3 | base&7)}
	}
	return append(tail, disp...), x, b
}

func tmm(t int) int {
	if t < 0 || t > 7 {
		panic(fmt.Sprintf("asmgen: no tile register tmm%d", t))
	}
	return t
}

func memOp(pp int, opcode byte, reg int, m Mem) []byte {
	tail, x, b := modrmMem(reg, m)
	return append(append(vex3(0, x, b, 0, pp), opcode), tail...)
}

// LDTILECFG m: load the 64-byte tile configuration (VEX.128.NP.0F38.W0 49 /0).
func LDTILECFG(m Mem) []byte { return memOp(ppNone, 0x49, 0, m) }

// STTILECFG m: store the tile configuration (VEX.128.66.0F38.W0 49 /0).
func STTILECFG(m Mem) []byte { return memOp(pp66, 0x49, 0, m) }

// TILERELEASE: tiles back to the init state (VEX.128.NP.0F38.W0 49 C0).
func TILERELEASE() []byte { return append(vex3(0, 0, 0, 0, ppNone), 0x49, 0xc0) }

// TILEZERO tmm(t) (VEX.128.F2.0F38.W0 49 11:rrr:000).
func TILEZERO(t int) []byte { return append(vex3(0, 0, 0, 0, ppF2), 0x49, byte(0xc0|tmm(t)<<3)) }

// TILELOADD tmm(t), m: rows at m.Base + disp + row*m.Index (VEX.128.F2.0F38.W0 4B /r).
func TILELOADD(t int, m Mem) []byte { return memOp(ppF2, 0x4b, tmm(t), m) }

// TILELOADDT1 tmm(t), m: TILELOADD with a hint that the data is not reused
// soon (VEX.128.66.0F38.W0 4B /r).
func TILELOADDT1(t int, m Mem) []byte { return memOp(pp66, 0x4b, tmm(t), m) }

// TILESTORED m, tmm(t) (VEX.128.F3.0F38.W0 4B /r).
func TILESTORED(m Mem, t int) []byte { return memOp(ppF3, 0x4b, tmm(t), m) }

// tileOp encodes op tmm(dst), tmm(src1), tmm(src2): dst in ModRM.reg,
// src1 in ModRM.rm, src2 in VEX.vvvv.
func tileOp(pp int, opcode byte, dst, src1, src2 int) []byte {
	return append(vex3(0, 0, 0, tmm(src2), pp), opcode, byte(0xc0|tmm(dst)<<3|tmm(src1)))
}

// TDPBUSD tmm(dst) += u8 tmm(a) · s8 tmm(b) (VEX.128.66.0F38.W0 5E).
func TDPBUSD(dst, a, b int) []byte { return tileOp(pp66, 0x5e, dst, a, b) }

// TDPBSSD tmm(dst) += s8 tmm(a) · s8 tmm(b) (VEX.128.F2.0F38.W0 5E).
func TDPBSSD(dst, a, b int) []byte { return tileOp(ppF2, 0x5e, dst, a, b) }

// TDPBF16PS tmm(dst) += bf16 tmm(a) · bf16 tmm(b) (VEX.128.F3.0F38.W0 5C).
func TDPBF16PS(dst, a, b int) []byte { return tileOp(ppF3, 0x5c, dst, a, b) }

// Emit writes enc as BYTE directives with the instruction's mnemonic in a
// comment, so the generated file reads as assembly.
func (f *File) Emit(mnemonic string, enc []byte) {
	s := make([]string, len(enc))
	for i, x := range enc {
		s[i] = fmt.Sprintf("BYTE $0x%02x", x)
	}
	f.P("\t%s // %s", strings.Join(s, "; "), mnemonic)
}
