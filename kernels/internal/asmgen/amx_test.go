package asmgen

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// amxCase is one AMX instruction: its encoding by this package, its GNU as
// (Intel syntax) text, and the bytes binutils 2.40 produced for that text.
type amxCase struct {
	enc    []byte
	intel  string
	golden string
}

// intelReg names a Go register in Intel syntax.
func intelReg(r string) string {
	if strings.HasPrefix(r, "R") && len(r) > 1 && r[1] >= '0' && r[1] <= '9' {
		return strings.ToLower(r)
	}
	return "r" + strings.ToLower(r)
}

func intelMem(m Mem) string {
	s := "[" + intelReg(m.Base)
	if m.Index != "" {
		s += fmt.Sprintf("+%s*%d", intelReg(m.Index), m.Scale)
	}
	if m.Disp != 0 {
		s += fmt.Sprintf("%+d", m.Disp)
	}
	return s + "]"
}

func amxCases() []amxCase {
	m := func(base, index string, scale, disp int) Mem {
		return Mem{Base: base, Index: index, Scale: scale, Disp: disp}
	}
	var cs []amxCase
	add := func(enc []byte, intel, golden string) { cs = append(cs, amxCase{enc, intel, golden}) }
	for _, mm := range []Mem{m("AX", "", 0, 0), m("SP", "", 0, 64), m("R13", "", 0, 0), m("R12", "", 0, -8), m("DI", "", 0, 4096)} {
		add(LDTILECFG(mm), "ldtilecfg "+intelMem(mm), "")
		add(STTILECFG(mm), "sttilecfg "+intelMem(mm), "")
	}
	add(TILERELEASE(), "tilerelease", "c4e27849c0")
	for t := 0; t < 8; t++ {
		add(TILEZERO(t), fmt.Sprintf("tilezero tmm%d", t), "")
	}
	mems := []Mem{m("SI", "DX", 1, 0), m("R8", "R9", 1, 128), m("BP", "CX", 1, 0), m("R13", "AX", 2, -64),
		m("SP", "R15", 1, 0), m("R12", "R13", 1, 0), m("BX", "SI", 8, 100000)}
	for i, mm := range mems {
		t := (3 * i) % 8
		add(TILELOADD(t, mm), fmt.Sprintf("tileloadd tmm%d, %s", t, intelMem(mm)), "")
		add(TILELOADDT1(t, mm), fmt.Sprintf("tileloaddt1 tmm%d, %s", t, intelMem(mm)), "")
		add(TILESTORED(mm, 7-t), fmt.Sprintf("tilestored %s, tmm%d", intelMem(mm), 7-t), "")
	}
	for _, r := range [][3]int{{0, 4, 6}, {4, 0, 2}, {7, 5, 3}, {1, 2, 3}, {6, 7, 0}} {
		add(TDPBUSD(r[0], r[1], r[2]), fmt.Sprintf("tdpbusd tmm%d, tmm%d, tmm%d", r[0], r[1], r[2]), "")
		add(TDPBSSD(r[0], r[1], r[2]), fmt.Sprintf("tdpbssd tmm%d, tmm%d, tmm%d", r[0], r[1], r[2]), "")
		add(TDPBF16PS(r[0], r[1], r[2]), fmt.Sprintf("tdpbf16ps tmm%d, tmm%d, tmm%d", r[0], r[1], r[2]), "")
	}
	// Bytes GNU as 2.40 (Debian 12) wrote for these forms, so the encoders
	// stay checked where binutils is missing.
	golden := map[string]string{
		"ldtilecfg [rax]":                    "c4e2784900",
		"ldtilecfg [rsp+64]":                 "c4e27849442440",
		"ldtilecfg [r13]":                    "c4c278494500",
		"ldtilecfg [r12-8]":                  "c4c278494424f8",
		"sttilecfg [rdi+4096]":               "c4e279498700100000",
		"tilerelease":                        "c4e27849c0",
		"tilezero tmm3":                      "c4e27b49d8",
		"tileloadd tmm0, [rsi+rdx*1]":        "c4e27b4b0416",
		"tileloadd tmm3, [r8+r9*1+128]":      "c4827b4b9c0880000000",
		"tileloaddt1 tmm1, [r13+rax*2-64]":   "c4c2794b4c45c0",
		"tileloadd tmm4, [rsp+r15*1]":        "c4a27b4b243c",
		"tilestored [r12+r13*1], tmm0":       "c4827a4b042c",
		"tilestored [rbp+rcx*1], tmm1":       "c4e27a4b4c0d00",
		"tileloadd tmm2, [rbx+rsi*8+100000]": "c4e27b4b94f3a0860100",
		"tdpbusd tmm0, tmm4, tmm6":           "c4e2495ec4",
		"tdpbssd tmm0, tmm4, tmm6":           "c4e24b5ec4",
		"tdpbf16ps tmm1, tmm2, tmm3":         "c4e2625cca",
		"tdpbf16ps tmm7, tmm5, tmm3":         "c4e2625cfd",
		"tdpbusd tmm6, tmm7, tmm0":           "c4e2795ef7",
	}
	for i := range cs {
		if g, ok := golden[cs[i].intel]; ok {
			cs[i].golden = g
		}
	}
	return cs
}

// TestAMXEncodingsGolden checks the encoders against bytes binutils wrote.
func TestAMXEncodingsGolden(t *testing.T) {
	n, cases := 0, amxCases()
	for _, c := range cases {
		if c.golden == "" {
			continue
		}
		n++
		if got := hex.EncodeToString(c.enc); got != c.golden {
			t.Errorf("%s: encoded %s, binutils %s", c.intel, got, c.golden)
		}
	}
	if n != 19 {
		t.Fatalf("%d golden encodings matched a case, want all 19", n)
	}
}

// TestAMXEncodingsAs assembles every case with GNU as (Intel syntax) and
// compares the bytes: needs binutils 2.36 or later, which know AMX.
func TestAMXEncodingsAs(t *testing.T) {
	as, err := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err != nil || err2 != nil {
		t.Skip("binutils (as, objcopy) not installed; TestAMXEncodingsGolden covers part of the forms")
	}
	dir := t.TempDir()
	cs := amxCases()
	var src strings.Builder
	src.WriteString(".intel_syntax noprefix\n")
	var want []byte
	for _, c := range cs {
		src.WriteString(c.intel + "\n")
		want = append(want, c.enc...)
	}
	s, o, bin := filepath.Join(dir, "amx.s"), filepath.Join(dir, "amx.o"), filepath.Join(dir, "amx.bin")
	if err := os.WriteFile(s, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(as, "--64", "-o", o, s).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", o, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	got, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	// Find the first instruction that differs.
	off := 0
	for _, c := range cs {
		end := off + len(c.enc)
		if end > len(got) || !bytes.Equal(got[off:end], c.enc) {
			t.Fatalf("%s: encoded %x, as wrote %x...", c.intel, c.enc, got[off:min(len(got), off+len(c.enc)+4)])
		}
		off = end
	}
	t.Fatalf("as wrote %d bytes, the encoders %d", len(got), len(want))
}

func TestEmit(t *testing.T) {
	f := New()
	f.Emit("TILERELEASE", TILERELEASE())
	if got, want := string(f.Bytes()), "\tBYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0 // TILERELEASE\n"; got != want {
		t.Errorf("Emit wrote %q, want %q", got, want)
	}
}
