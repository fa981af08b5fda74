// Command mixedbag writes kernels/mixedpool_amd64.s: mixedPool, the
// AVX-512 kernel that pools whole bags of a mixed-precision table
// (kernels.MixedBagTable) whose two parts are row-wise (fp32, fp16, int8,
// int4 or int2) or mxfp4, for rows of at most 128 columns. Every lookup is resolved
// through the table's id map (hot-row bitmap and rank directory) in the
// kernel, the rows a fixed distance ahead are resolved and prefetched, and
// a bag's output columns stay in registers (one zmm per 16 columns) from
// its first row to its store; the code for each count of 16-column units
// (1..8) is unrolled, hence a generator, and the kernel jumps to the
// variant for its count once per call.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/mixedbag_amd64.go) and writes the file there.
package main
