package kernels

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
// available implementation through set.
type family[F any] struct {
	impls  []impl[F]
	active int
}

// newFamily returns the family of impls with its first available
// implementation active. It panics if none is available: the last must be
// the portable one.
func newFamily[F any](impls ...impl[F]) *family[F] {
	f := &family[F]{impls: impls, active: -1}
	for i, im := range impls {
		if im.available {
			f.active = i
			break
		}
	}
	if f.active < 0 || impls[len(impls)-1].name != "go" || !impls[len(impls)-1].available {
		panic("kernels: a kernel family needs the portable Go implementation last")
	}
	return f
}

// fn is the active implementation.
func (f *family[F]) fn() F { return f.impls[f.active].fn }

// name is the active implementation's name.
func (f *family[F]) name() string { return f.impls[f.active].name }

// set makes the named implementation active if this CPU can run it.
func (f *family[F]) set(name string) bool {
	for i, im := range f.impls {
		if im.name == name && im.available {
			f.active = i
			return true
		}
	}
	return false
}
