//go:build purego || !amd64

package kernels

// prefetchBagRows does nothing: Go has no prefetch instruction to call.
func prefetchBagRows(table []byte, rb int, indices []int64) {}
