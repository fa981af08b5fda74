//go:build !amd64 || purego

package kernels

// archImpls is empty without assembly: only the pure-Go GEMM is built.
var archImpls []sgemmImpl
