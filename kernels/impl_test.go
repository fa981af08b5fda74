package kernels

import "testing"

// forEachImpl runs f as a subtest once for every GEMM implementation built
// into this binary that the CPU supports (like crypto/internal/impl), and
// restores the default afterwards. Tests using it must not run in parallel:
// the active implementation is package state.
func forEachImpl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := active
	defer func() { active = saved }()
	ran := 0
	for _, im := range impls {
		if !im.available {
			t.Logf("implementation %s: not supported by this CPU, skipped", im.name)
			continue
		}
		if !setImpl(im.name) {
			t.Fatalf("setImpl(%q) failed for an available implementation", im.name)
		}
		ran++
		t.Run(im.name, f)
	}
	if ran == 0 {
		t.Fatal("no GEMM implementation available")
	}
}

// implNames lists the available implementations, for fuzz targets and
// benchmarks that cannot nest subtests.
func implNames() []string {
	var names []string
	for _, im := range impls {
		if im.available {
			names = append(names, im.name)
		}
	}
	return names
}

func TestImplTable(t *testing.T) {
	if got, want := SgemmImpl(), firstAvailable().name; got != want {
		t.Errorf("SgemmImpl() = %q, want the first available %q", got, want)
	}
	if impls[len(impls)-1].name != "go" || !impls[len(impls)-1].available {
		t.Errorf("the pure-Go implementation must be last and always available: %+v", impls[len(impls)-1])
	}
	saved := active
	defer func() { active = saved }()
	if setImpl("no-such-impl") {
		t.Error("setImpl accepted an unknown name")
	}
	if active != saved {
		t.Error("a failed setImpl changed the active implementation")
	}
	for _, im := range impls {
		if !im.available && setImpl(im.name) {
			t.Errorf("setImpl(%q) accepted an implementation the CPU lacks", im.name)
		}
	}
	seen := map[string]bool{}
	for _, im := range impls {
		if seen[im.name] {
			t.Errorf("duplicate implementation name %q", im.name)
		}
		seen[im.name] = true
	}
}
