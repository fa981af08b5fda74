// Command mxbag writes kernels/mxbag_amd64.s: the AVX-512 kernels of the
// fused MX embedding bag for mxfp4 (fp4_e2m1 nibble codes) and for the
// byte-coded formats (mxfp8 e4m3 and e5m2, mxint8), with E8M0 block
// scales, with and without per-sample weights. A kernel pools a range of bags over
// whole rows, accumulating in the output row with EmbeddingBagMX's exact
// rounding sequence (decode multiply, weight multiply, add; never fused),
// so its results are bit for bit the Go bag's. The four kernels differ
// only in the decode and one multiply, hence a generator.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/mxbag_amd64.go) and writes the file there.
package main
