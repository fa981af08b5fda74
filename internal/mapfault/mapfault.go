package mapfault

import (
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"
)

// FaultError is a read of a mapped file that faulted: the file changed
// (was truncated) underneath the process, or its storage failed.
type FaultError struct {
	File   string
	Offset int64 // byte offset of the faulting address in the file
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("%s: reading the file at byte %d failed: it was truncated or changed while rq read it (or its storage failed); the results so far are void", e.File, e.Offset)
}

type mapping struct {
	base, end uintptr
	file      string
}

var registry struct {
	sync.RWMutex
	maps []mapping
}

// Register records that data maps file, until the returned function is
// called (before unmapping).
func Register(data []byte, file string) (unregister func()) {
	if len(data) == 0 {
		return func() {}
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	m := mapping{base: base, end: base + uintptr(len(data)), file: file}
	registry.Lock()
	registry.maps = append(registry.maps, m)
	registry.Unlock()
	return func() {
		registry.Lock()
		defer registry.Unlock()
		registry.maps = slices.DeleteFunc(registry.maps, func(x mapping) bool { return x == m })
	}
}

// lookup finds the mapping holding addr.
func lookup(addr uintptr) (mapping, bool) {
	registry.RLock()
	defer registry.RUnlock()
	for _, m := range registry.maps {
		if addr >= m.base && addr < m.end {
			return m, true
		}
	}
	return mapping{}, false
}

// Guard makes memory faults in the calling goroutine panics (see the package
// doc) and returns the function that restores the previous setting:
//
//	defer mapfault.Guard()()
func Guard() (restore func()) {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

// addrError is the runtime's panic value for a fault under SetPanicOnFault.
type addrError interface {
	error
	Addr() uintptr
}

// FromPanic returns the *FaultError for a recovered panic value r when it is
// a fault inside a registered mapping.
func FromPanic(r any) (*FaultError, bool) {
	ae, ok := r.(addrError)
	if !ok {
		return nil, false
	}
	m, ok := lookup(ae.Addr())
	if !ok {
		return nil, false
	}
	return &FaultError{File: m.file, Offset: int64(ae.Addr() - m.base)}, true
}

// Catch, deferred, turns a panic from a fault inside a registered mapping
// into *errp = a *FaultError; any other panic goes on.
//
//	defer mapfault.Catch(&err)
func Catch(errp *error) {
	r := recover()
	if r == nil {
		return
	}
	if fe, ok := FromPanic(r); ok {
		*errp = fe
		return
	}
	panic(r)
}
