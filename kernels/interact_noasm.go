//go:build !amd64 || purego

package kernels

// interactArchImpls is empty without assembly: only the pure-Go interaction
// is built.
var interactArchImpls []impl[interactFn]
