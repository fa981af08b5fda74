// Command hgemm writes kernels/hgemm_amd64.s: the micro-kernels of PackedF16.Gemm.
// They are gen/sgemm's kernels with the one change that matters: the
// packed panel holds fp16, widened to fp32 in registers by VCVTPH2PS straight
// from memory, so a k step streams 64 bytes of weights instead of 128. Row
// blocks, the k unroll and the FMA order are the same as
// the fp32 kernels', so on the widened weights the results are bit-identical
// to PackedF32.Gemm's (the tests check this).
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/hgemm_amd64.go) and writes the file there.
package main
