//go:build !amd64 || purego

package kernels

// archBF16Impls is empty without assembly: only the pure-Go emulation of
// the bf16 GEMM is built.
var archBF16Impls []impl[bf16GemmFn]
