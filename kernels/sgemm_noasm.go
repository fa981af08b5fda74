//go:build !amd64 || purego

package kernels

// sgemmArchImpls is empty without assembly: only the pure-Go GEMM is built.
var sgemmArchImpls []impl[sgemmFn]
