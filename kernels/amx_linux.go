//go:build linux && amd64 && !purego

package kernels

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// xgetbv0 returns XCR0 (amx_amd64.s).
func xgetbv0() (eax, edx uint32)

// Linux's arch_prctl codes for dynamically enabled XSAVE state
// (Documentation/arch/x86/xstate.rst) and the tile data component.
const (
	archGetXcompPerm  = 0x1022
	archReqXcompPerm  = 0x1023
	xfeatureXTileCfg  = 17
	xfeatureXTileData = 18
)

// amxOSEnable checks that the OS enabled the tile state in XCR0 and asks
// Linux (5.16 and later) for permission to use XTILEDATA, which it grants
// per process: every thread, so every goroutine, may then run tile
// instructions. Go's signal stacks (32 KiB) hold the larger signal frame
// the kernel checks for before granting.
func amxOSEnable() (bool, string) {
	if !cpu.X86.HasOSXSAVE {
		return false, "the OS has not enabled XSAVE (CPUID OSXSAVE), so no AMX tile state"
	}
	if eax, _ := xgetbv0(); eax&(1<<xfeatureXTileCfg) == 0 || eax&(1<<xfeatureXTileData) == 0 {
		return false, fmt.Sprintf("the OS has not enabled the AMX tile state (XCR0 = %#x, bits 17-18 clear)", eax)
	}
	if amxPermitted() {
		return true, "AMX enabled"
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXTileData, 0); errno != 0 {
		return false, amxPermReason(errno)
	}
	if !amxPermitted() {
		return false, "Linux granted the AMX request but ARCH_GET_XCOMP_PERM does not list tile data"
	}
	return true, "AMX enabled"
}

// amxPermitted reports whether this process may already use tile data.
func amxPermitted() bool {
	var perm uint64
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archGetXcompPerm, uintptr(unsafe.Pointer(&perm)), 0)
	return errno == 0 && perm&(1<<xfeatureXTileData) != 0
}

// amxPermReason words a refused ARCH_REQ_XCOMP_PERM: EINVAL is a kernel
// without dynamic XSAVE features (before 5.16) or without AMX support.
func amxPermReason(err error) string {
	if errors.Is(err, syscall.EINVAL) {
		return "Linux kernel does not support AMX (arch_prctl ARCH_REQ_XCOMP_PERM: EINVAL; needs 5.16 or later)"
	}
	return fmt.Sprintf("Linux refused AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM: %v)", err)
}

// amxCanRequest: this build can ask the OS for the tile state.
const amxCanRequest = true
