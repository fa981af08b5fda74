//go:build !amd64 || purego

package kernels

// Without assembly only the pure-Go int8 GEMM and quantizers are built.
var archI8Impls []impl[i8GemmFn]

var i8QuantAsm = false

func quantU8Asm(x []float32, inv float32, zero int32, dst []uint8) {
	panic("unreachable: no assembly quantizer in this build")
}

func actMinMaxAsm(x []float32) (lo, hi float32) {
	panic("unreachable: no assembly quantizer in this build")
}
