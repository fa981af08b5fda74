// Command embbag writes kernels/embbag_amd64.s: the embedding-bag kernels, one TEXT
// symbol per table format (fp32 and fp16 with and without per-sample
// weights, 8/4/2-bit row-wise) and ISA (AVX-512, AVX2+FMA). A kernel pools
// a range of bags over one column chunk of the rows (at most 128 columns
// for AVX-512, 64 for AVX2), with the chunk's accumulators in registers for
// the whole bag. A chunk is a number of "units" (the columns one 16-byte
// load of codes or one vector of values covers); the code for every unit
// count is unrolled, hence a generator, and the kernel jumps to the variant
// for its unit count once per call.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/embbag_amd64.go) and writes the file there.
package main
