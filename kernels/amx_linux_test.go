//go:build linux && amd64 && !purego

package kernels

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/cpu"
)

func TestAMXPermReason(t *testing.T) {
	if r := amxPermReason(syscall.EINVAL); !strings.Contains(r, "EINVAL") || !strings.Contains(r, "5.16") {
		t.Errorf("EINVAL: %q, want the kernel version named", r)
	}
	if r := amxPermReason(syscall.EPERM); !strings.Contains(r, "refused") || !strings.Contains(r, syscall.EPERM.Error()) {
		t.Errorf("EPERM: %q", r)
	}
	if r := amxPermReason(errors.New("x")); !strings.Contains(r, "refused AMX tile data") {
		t.Errorf("other error: %q", r)
	}
}

// TestAMXPermissionCall checks the arch_prctl plumbing on any Linux: the
// GET call works (it needs no AMX) and reports tile data permitted
// exactly when AMX() enabled it.
func TestAMXPermissionCall(t *testing.T) {
	ok, _ := AMX()
	if amxPermitted() != ok {
		t.Errorf("ARCH_GET_XCOMP_PERM lists tile data: %v, AMX() = %v", amxPermitted(), ok)
	}
}

// TestXGETBV runs the XGETBV stub on any x86 CPU: XCR0 must agree with
// what x/sys/cpu derived from it (AVX needs the SSE and AVX state bits 1-2).
func TestXGETBV(t *testing.T) {
	if !cpu.X86.HasOSXSAVE {
		t.Skip("no OSXSAVE: XGETBV would fault")
	}
	eax, _ := xgetbv0()
	if eax&1 == 0 {
		t.Errorf("XCR0 = %#x has no x87 state bit", eax)
	}
	if cpu.X86.HasAVX != (eax&6 == 6) {
		t.Errorf("XCR0 = %#x, but x/sys/cpu HasAVX = %v", eax, cpu.X86.HasAVX)
	}
}
