//go:build !amd64 || purego

package kernels

// Without assembly CrossUpdate has its Go loop only.
var crossArchImpls []impl[crossFn]
