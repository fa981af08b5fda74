package kernels

import "fmt"

// impl is one implementation of a kernel family: its name (for tests,
// benchmarks and diagnostics), whether this CPU can run it, and the function.
type impl[F any] struct {
	name      string
	available bool
	fn        F
}

// family is a kernel family's implementations, fastest first with the
// portable Go one last and always available, and the one in use: the first
// available at start-up (as crypto/internal/impl chooses). Tests run every
// available implementation through set (forEachImplOf).
//
// A family selects a kernel's top-level function only: the micro-kernels
// under it are called directly (see kern512), so escape analysis still sees
// their //go:noescape pointers.
type family[F any] struct {
	impls  []impl[F]
	active int
}

// newFamily returns the family of arch, the SIMD implementations built into
// this binary fastest first (nil without assembly), followed by portable,
// named "go" and always available; the first available is active. arch is
// copied, so families never share a backing array. It panics on a repeated
// name: tests and diagnostics select implementations by name.
func newFamily[F any](arch []impl[F], portable F) *family[F] {
	impls := append(append(make([]impl[F], 0, len(arch)+1), arch...), impl[F]{name: "go", available: true, fn: portable})
	seen := map[string]bool{}
	for _, im := range impls {
		if seen[im.name] {
			panic(fmt.Sprintf("kernels: two implementations of a kernel family are named %q", im.name))
		}
		seen[im.name] = true
	}
	f := &family[F]{impls: impls}
	for !impls[f.active].available {
		f.active++
	}
	return f
}

// fn is the active implementation.
func (f *family[F]) fn() F { return f.impls[f.active].fn }

// name is the active implementation's name.
func (f *family[F]) name() string { return f.impls[f.active].name }

// set makes the named implementation active if this CPU can run it, and
// reports whether it did.
func (f *family[F]) set(name string) bool {
	for i, im := range f.impls {
		if im.name == name && im.available {
			f.active = i
			return true
		}
	}
	return false
}

// names lists the implementations this CPU can run, fastest first, for
// fuzz targets and benchmarks that select them by name.
func (f *family[F]) names() []string {
	var names []string
	for _, im := range f.impls {
		if im.available {
			names = append(names, im.name)
		}
	}
	return names
}
