// Command i8gemm writes kernels/i8gemm_amd64.s: the u8 x s8 -> s32 GEMM micro-kernels
// with their fused epilogue, for AVX-512 VNNI (mr = 1..12 rows x 32 columns,
// VPDPBUSD) and AVX2 (mr = 1..6 rows x 8 columns, widened to 16 bits and
// multiplied with VPMADDWD, which is exact), and the AVX-512 activation
// quantization loops. Like gen/sgemm, the kernels are straight-line code
// unrolled over rows and k groups, hence a generator.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/i8gemm_amd64.go) and writes the file there.
package main
