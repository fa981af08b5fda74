// Package asmgen is the emit library of the kernels' assembly generators
// (kernels/internal/gen/...): the output buffer and its header, the
// unrolled counted loop, the A-row addressing of the row-blocked GEMM
// kernels, their ReLU and block epilogues, and whole kernel templates where
// two GEMMs differ only in their k step (fp32 and fp16 weights). A change
// here changes every generated file that uses it; CI regenerates them all
// and fails if a committed .s differs (.ci/run).
package asmgen
