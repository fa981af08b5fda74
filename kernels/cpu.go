package kernels

import (
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// CPU features the kernels dispatch on, read once at package initialization
// (x/sys/cpu already folds in the OS's XSAVE support for AVX and AVX-512 state).
var (
	// hasAVX512 gates the AVX-512 kernels: F for the zmm FMAs, BW for the
	// 32-bit opmask shifts (KSHIFTRD), VL because every AVX-512 CPU that has BW
	// has it and we do not want to reason about exotic subsets.
	hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL
	// hasAVX2FMA gates the AVX2 kernels (ymm FMAs need the separate FMA bit).
	hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	// hasAVX512VNNI gates the int8 GEMM's VPDPBUSD kernels (zmm, opmasks).
	hasAVX512VNNI = hasAVX512 && cpu.X86.HasAVX512VNNI
	// hasAVX2 gates the int8 GEMM's AVX2 kernels (integer only, no FMA).
	hasAVX2 = cpu.X86.HasAVX2
	// hasF16C gates VCVTPH2PS/VCVTPS2PH (the fp16-weight GEMM and the fp16
	// slice converters); F16C instructions are VEX-encoded, so they need the
	// OS's AVX state too.
	hasF16C = cpu.X86.HasF16C && cpu.X86.HasAVX
	// hasAVX512BF16 gates VDPBF16PS and VCVTNE(2)PS2BF16 (the bf16 GEMM).
	hasAVX512BF16 = hasAVX512 && cpu.X86.HasAVX512BF16
	// hasAMXInt8 and hasAMXBF16 are the CPUID bits (leaf 7 EDX 25 and 22,
	// with AMX-TILE, bit 24) of TDPBUSD and TDPBF16PS. The CPU having them
	// is not enough: the OS must enable the tile state and Linux grant it
	// (AMX(), amx_linux.go), so implementations also need amxReady().
	hasAMXInt8 = cpu.X86.HasAMXTile && cpu.X86.HasAMXInt8
	hasAMXBF16 = cpu.X86.HasAMXTile && cpu.X86.HasAMXBF16
)

// Features returns the SIMD features relevant to rq that this CPU (and OS)
// supports, space-separated in a fixed order, e.g.
// "avx512f avx512bw avx512vl avx512vnni avx512bf16 avx2 fma f16c". It is for
// diagnostics (rq prints it); it does not depend on the purego build tag.
func Features() string {
	var f []string
	add := func(ok bool, name string) {
		if ok {
			f = append(f, name)
		}
	}
	switch runtime.GOARCH {
	case "amd64", "386":
		x := cpu.X86
		add(x.HasAVX512F, "avx512f")
		add(x.HasAVX512BW, "avx512bw")
		add(x.HasAVX512VL, "avx512vl")
		add(x.HasAVX512VNNI, "avx512vnni")
		add(x.HasAVX512BF16, "avx512bf16")
		add(x.HasAVX2, "avx2")
		add(x.HasFMA, "fma")
		add(x.HasF16C, "f16c")
		add(x.HasAMXTile, "amx_tile")
		add(x.HasAMXInt8, "amx_int8")
		add(x.HasAMXBF16, "amx_bf16")
	case "arm64":
		a := cpu.ARM64
		add(a.HasASIMD, "asimd")
		add(a.HasFPHP, "fphp")
		add(a.HasASIMDHP, "asimdhp")
		add(a.HasASIMDDP, "asimddp")
		add(a.HasSVE, "sve")
	}
	return strings.Join(f, " ")
}
