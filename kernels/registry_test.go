package kernels

import "testing"

// forEachImplOf runs f as a subtest, named after the implementation, once
// for every implementation of fam that this CPU supports (as
// crypto/internal/impl's tests do), and restores the active one afterwards.
// Tests using it must not run in parallel: the active implementation is
// package state.
func forEachImplOf[F any](t *testing.T, fam *family[F], f func(t *testing.T)) {
	t.Helper()
	defer keepActive(fam)()
	ran := 0
	for _, im := range fam.impls {
		if !im.available {
			t.Logf("implementation %s: not supported by this CPU, skipped", im.name)
			continue
		}
		if !fam.set(im.name) {
			t.Fatalf("set(%q) failed for an available implementation", im.name)
		}
		ran++
		t.Run(im.name, f)
	}
	if ran == 0 {
		t.Fatal("no implementation available")
	}
}

// keepActive returns a function that makes fam's active implementation
// what it is now, for tests and benchmarks that set it by name:
// defer keepActive(fam)().
func keepActive[F any](fam *family[F]) func() {
	saved := fam.active
	return func() { fam.active = saved }
}

// mustSet makes the named implementation of fam active or fails tb.
func mustSet[F any](tb testing.TB, fam *family[F], name string) {
	tb.Helper()
	if !fam.set(name) {
		tb.Fatalf("set(%q) refused an implementation names() listed", name)
	}
}

func TestFamily(t *testing.T) {
	noop := func() {}
	f := newFamily([]impl[func()]{{name: "fast", available: false, fn: noop}, {name: "mid", available: true, fn: noop}}, noop)
	if f.name() != "mid" {
		t.Errorf("active = %q, want the first available, mid", f.name())
	}
	if got := f.names(); len(got) != 2 || got[0] != "mid" || got[1] != "go" {
		t.Errorf("names() = %q, want the available ones in order, [mid go]", got)
	}
	if f.set("fast") || f.set("nope") {
		t.Error("set accepted an unavailable or unknown implementation")
	}
	if f.name() != "mid" {
		t.Error("a refused set changed the active implementation")
	}
	if !f.set("go") || f.name() != "go" {
		t.Errorf("set(go) did not make the portable implementation active: %q", f.name())
	}
	if g := newFamily(nil, noop); g.name() != "go" || len(g.impls) != 1 {
		t.Errorf("a family without assembly: active %q of %d, want go of 1", g.name(), len(g.impls))
	}
	arch := make([]impl[func()], 1, 4)
	arch[0] = impl[func()]{name: "fast", available: true, fn: noop}
	newFamily(arch, noop)
	if arch[:2][1].name == "go" {
		t.Error("newFamily appended into its argument's backing array")
	}
	defer func() {
		if recover() == nil {
			t.Error("newFamily with a repeated name did not panic")
		}
	}()
	newFamily([]impl[func()]{{name: "go", available: true, fn: noop}}, noop)
}

// checkFamily checks a family's table: the diagnostic (SgemmImpl, ...)
// names the active implementation, which is the first available one; the
// portable Go one is last and available; set refuses unknown names and
// implementations this CPU lacks without changing the active one.
func checkFamily[F any](t *testing.T, fam *family[F], diag func() string) {
	if got, want := diag(), fam.names()[0]; got != want {
		t.Errorf("diagnostic = %q, want the first available %q", got, want)
	}
	if got := fam.name(); got != diag() {
		t.Errorf("active %q, diagnostic %q", got, diag())
	}
	if last := fam.impls[len(fam.impls)-1]; last.name != "go" || !last.available {
		t.Errorf("the pure-Go implementation must be last and always available: %+v", last)
	}
	defer keepActive(fam)()
	saved := fam.active
	if fam.set("no-such-impl") {
		t.Error("set accepted an unknown name")
	}
	for _, im := range fam.impls {
		if !im.available && fam.set(im.name) {
			t.Errorf("set(%q) accepted an implementation the CPU lacks", im.name)
		}
	}
	if fam.active != saved {
		t.Error("a refused set changed the active implementation")
	}
}

func TestFamilies(t *testing.T) {
	t.Run("sgemm", func(t *testing.T) { checkFamily(t, sgemms, SgemmImpl) })
	t.Run("bf16", func(t *testing.T) { checkFamily(t, bf16Gemms, BF16GemmImpl) })
	t.Run("fp16", func(t *testing.T) { checkFamily(t, f16Gemms, F16GemmImpl) })
	t.Run("int8", func(t *testing.T) { checkFamily(t, i8Gemms, I8GemmImpl) })
	t.Run("bags", func(t *testing.T) { checkFamily(t, bagPools, BagImpl) })
	t.Run("interact", func(t *testing.T) {
		checkFamily(t, interactDots, InteractImpl)
		if len(interactArchImpls) > 0 && hasAVX512 && InteractImpl() != "avx512" {
			t.Errorf("assembly built, AVX-512 CPU, but InteractImpl() = %q", InteractImpl())
		}
	})
	t.Run("cross", func(t *testing.T) { checkFamily(t, crossUpdates, CrossImpl) })
}
