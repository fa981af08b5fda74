// Command sgemm writes kernels/sgemm_amd64.s: one register-blocked micro-kernel per
// row count mr, for AVX-512 (mr = 1..mr512, 32 columns in two zmm per row)
// and AVX2+FMA (mr = 1..mr256, 16 columns in two ymm per row). The kernels
// are straight-line code unrolled over rows and 4 steps of k, which Go's
// assembler cannot express with macros, hence a generator.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/sgemm_amd64.go) and writes the file there.
package main
