package kernels

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// cpuinfoFlags returns the flags of /proc/cpuinfo's first processor, or
// nil where there is no such file.
func cpuinfoFlags(t *testing.T) map[string]bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			flags := map[string]bool{}
			for _, f := range strings.Fields(val) {
				flags[f] = true
			}
			return flags
		}
	}
	t.Fatal("/proc/cpuinfo has no flags line")
	return nil
}

// TestAMXEnable checks AMX()'s verdict against the CPU: with no amx_tile
// flag (this AMD development machine) it is off with exactly "CPU has no
// AMX"; with AMX, on linux/amd64 with assembly, the permission request must
// succeed (a kernel that has the flag in /proc/cpuinfo has enabled the tile
// state), and the answer is the same on every call.
func TestAMXEnable(t *testing.T) {
	ok, why := AMX()
	flags := cpuinfoFlags(t)
	hasTile := cpu.X86.HasAMXTile
	if flags != nil {
		if flags["amx_tile"] != hasTile {
			t.Fatalf("/proc/cpuinfo amx_tile = %v but CPUID AMX-TILE = %v", flags["amx_tile"], hasTile)
		}
		if flags["amx_int8"] != cpu.X86.HasAMXInt8 || flags["amx_bf16"] != cpu.X86.HasAMXBF16 {
			t.Fatalf("/proc/cpuinfo amx_int8/amx_bf16 = %v/%v but CPUID says %v/%v",
				flags["amx_int8"], flags["amx_bf16"], cpu.X86.HasAMXInt8, cpu.X86.HasAMXBF16)
		}
	}
	switch {
	case !hasTile:
		if ok || why != "CPU has no AMX" {
			t.Fatalf("AMX() = %v, %q on a CPU without AMX, want false, %q", ok, why, "CPU has no AMX")
		}
	case amxCanRequest && (hasAMXInt8 || hasAMXBF16):
		if !ok {
			t.Fatalf("AMX() = false, %q on an AMX CPU with Linux: the permission request must succeed", why)
		}
	default:
		if ok || why == "" {
			t.Fatalf("AMX() = %v, %q where AMX cannot be requested, want false with a reason", ok, why)
		}
	}
	if ok2, why2 := AMX(); ok2 != ok || why2 != why {
		t.Fatalf("second AMX() = %v, %q, first %v, %q", ok2, why2, ok, why)
	}
	if amxReady() != ok {
		t.Fatalf("amxReady() = %v, AMX() = %v", amxReady(), ok)
	}
	t.Logf("AMX: %v (%s)", ok, why)
}

// TestAMXNotRegistered keeps AMX out of the kernel families until its
// assembly has run on AMX hardware (issue 14).
func TestAMXNotRegistered(t *testing.T) {
	for _, names := range [][]string{i8Gemms.names(), bf16Gemms.names()} {
		for _, n := range names {
			if strings.Contains(n, "amx") {
				t.Errorf("implementation %q is registered", n)
			}
		}
	}
}
