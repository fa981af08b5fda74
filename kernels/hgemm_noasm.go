//go:build !amd64 || purego

package kernels

// archF16Impls is empty without assembly: only the pure-Go fp16 GEMM is built.
var archF16Impls []impl[f16GemmFn]
