// Package kernels holds rq's numeric inner loops: the arithmetic of
// low-precision DLRM inference, written for Go with assembly where it pays.
//
//   - GEMMs computing C = A·Wᵀ + bias (then ReLU) for a PyTorch Linear weight
//     W [N x K] packed once into the micro-kernels' layout: fp32 (PackF32),
//     fp16 weights with fp32 math (PackF16, FBGEMM's fp16 path), bf16 with
//     fp32 accumulation (PackBF16, VDPBF16PS), and int8 (PackI8: u8
//     activations x s8 weights -> s32 with VPDPBUSD, per-channel scales, column
//     sums for zero-point compensation, a fused dequantize/bias/ReLU or
//     requantize epilogue).
//   - Quantization routines (quant.go): PyTorch's choose_qparams, static and
//     dynamic (per row or per tensor) u8 activation quantization, symmetric
//     int8 weights. One rounding rule throughout: q = round half to even
//     (x * (1/scale)) + zero, clamped.
//   - Embedding bags (embbag.go) over fp32, fp16 and 8/4/2-bit row-wise
//     tables in FBGEMM's fused layouts (rowwise.go quantizes rows bit for bit
//     as PyTorch's embedding_bag_*_prepack), sum or mean, per-sample
//     weights, prefetching; PrefetchBags asks for the rows of bags to be
//     pooled later (prefetch_amd64.s).
//   - The DLRM dot interaction (interact.go) and fp16/bf16 conversions.
//
// Each kernel family has a pure-Go implementation whose doc comment is the
// reference loop, and on amd64 (unless built with -tags purego) AVX-512 and
// AVX2 assembly; one registry (registry.go) lists a family's
// implementations and uses the first the CPU features allow (cpu.go). Tests
// run every implementation the CPU has against the reference. The .s files
// are written by go generate's programs in internal/gen, one per file,
// which share the emit library internal/asmgen. The code is
// single-threaded: callers split rows across goroutines (at multiples of
// GemmRowAlign for the GEMMs, for speed). Every kernel computes a row from
// that row alone, with the same operations whatever the number of rows, so
// results do not depend on the batch size or the split.
//
// Intel AMX (tile registers, TDPBUSD, TDPBF16PS) is prepared but not used
// yet: amx_model.go models the tile instructions after the SDM,
// amx_pack.go packs weights for the tiles and runs the int8 and bf16 GEMMs'
// blocking on that model (tested bit for bit against the int8 reference and
// VNNI kernels), AMX() checks the CPU, XCR0 and Linux's permission, and
// internal/asmgen encodes the instructions for future generators. No
// family registers an AMX implementation until its assembly has run on an
// AMX machine (docs/amx.md).
//
// kernels imports nothing from the rest of rq.
package kernels
