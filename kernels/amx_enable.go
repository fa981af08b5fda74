package kernels

import (
	"sync"

	"golang.org/x/sys/cpu"
)

// AMX enabling: a CPU with AMX runs tile instructions only once the OS
// has enabled the tile state (XCR0 bits 17 XTILECFG and 18 XTILEDATA) and,
// on Linux, granted this process the right to use it (amx_linux.go). The
// request is made once, on first use; a refusal keeps AMX off and says why.
// No implementation uses AMX yet: the assembly kernels still need an AMX
// machine to be run (docs/amx.md).

var (
	amxOnce sync.Once
	amxOK   bool
	amxWhy  string
)

// AMX reports whether the AMX tile instructions may run in this process,
// and if not, why (one line for rq bench and --verbose): "CPU has no AMX",
// the OS or build that keeps them off, or the Linux permission request's
// refusal. On a CPU with AMX the first call asks Linux for the tile data
// permission.
func AMX() (ok bool, why string) {
	amxOnce.Do(func() { amxOK, amxWhy = amxEnable() })
	return amxOK, amxWhy
}

// amxReady reports whether tile instructions may run. An AMX
// implementation registers with it, e.g. in archI8Impls
//
//	{name: "amx", available: hasAMXInt8 && amxReady(), fn: gemmI8AMX},
//
// (and hasAMXBF16 for bf16): families are built at package
// initialization, so on an AMX CPU the permission is then requested there,
// before any kernel runs; on others the && never calls it.
func amxReady() bool {
	ok, _ := AMX()
	return ok
}

// amxEnable checks the CPU, then asks the OS (amxOSEnable).
func amxEnable() (bool, string) {
	switch {
	case !cpu.X86.HasAMXTile:
		return false, "CPU has no AMX"
	case !hasAMXInt8 && !hasAMXBF16:
		return false, "CPU has AMX-TILE but neither AMX-INT8 nor AMX-BF16"
	}
	return amxOSEnable()
}
