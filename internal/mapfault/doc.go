// Package mapfault turns a fault in a memory-mapped file into an error that
// names the file.
//
// rq reads models in place through read-only shared mappings. If the file
// shrinks while mapped (another process truncates or rewrites it in place),
// reading a page past its new end raises SIGBUS, which the Go runtime
// reports as "unexpected fault address" with a dump of every goroutine, and
// exits 2. With runtime/debug.SetPanicOnFault the fault becomes a panic
// carrying the address instead; Catch recovers it, finds the mapping that
// holds the address among those Register recorded, and returns a *FaultError
// naming the file and offset. Faults at other addresses are bugs, and are
// re-panicked untouched.
package mapfault
