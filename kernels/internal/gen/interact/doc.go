// Command interact writes kernels/interact_amd64.s, the SIMD kernels of InteractDot: one
// batch row's lower triangle of Z = T·Tᵀ (T is f x d, row-major), computed in
// 4x4 blocks of dot products. Every block keeps its 16 (AVX-512) or 2x8
// (AVX2) dot products as vector accumulators running along d, then reduces
// them horizontally all at once with a transpose-and-add tree whose result
// lands with row i's four dots in 128-bit lane i, ready for one 4-float store
// per output row. The code is unrolled over the block's rows and columns,
// which Go's assembler cannot express with macros, hence a generator.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/interact_amd64.go) and writes the file there.
package main
