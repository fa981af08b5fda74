// Package kernels holds the numeric inner loops of rq: fp16/bf16 scalar
// conversions and the fp32 GEMM of the DLRM forward pass.
//
// The GEMM computes C = A·Wᵀ + bias (optionally followed by ReLU) for a
// PyTorch Linear weight W [N x K], packed once with PackF32 into column panels
// that the micro-kernels stream. On amd64 the micro-kernels are Go assembly
// (AVX-512 with opmask edges, or AVX2+FMA), chosen once from the CPU features;
// elsewhere, and under the purego build tag, a register-blocked pure-Go loop
// is used. All implementations produce the same results up to floating-point
// reassociation of the K-sum. The code is single-threaded: callers split the
// rows of A across goroutines.
//
// kernels imports nothing from the rest of rq.
package kernels
