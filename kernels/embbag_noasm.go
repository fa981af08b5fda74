//go:build !amd64 || purego

package kernels

// bagArchImpls is empty without assembly: only the pure-Go pooling is built.
var bagArchImpls []impl[bagFn]
