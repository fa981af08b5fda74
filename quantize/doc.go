// Package quantize is the step from an fp32 network to a low-precision
// one: plans (which precision of package precision each layer gets),
// presets (the common plans), the choice of quantization parameters from
// calibrated ranges, and Apply, which returns a network whose layers run on
// low-precision kernels.
//
// Precisions. FC layers: fp32; fp16 (fp16 weights, fp32 math); bf16 (bf16
// weights and activations, fp32 accumulation); int8 (weights symmetric int8
// per output channel or per tensor; activations u8 asymmetric, either
// static per tensor from calibration or dynamic per row or per batch).
// Embedding tables: fp32, fp16, and 8-, 4- and 2-bit row-wise (PyTorch's and
// FBGEMM's fused layouts). The interaction's own arithmetic (dot products,
// concatenation) stays fp32; FC-like layers an interaction has (DCN's cross
// network) are FC layers like the MLPs', for plans, presets, Apply and
// Simulate alike, since this package walks a network through its Layers,
// Linears and Map.
package quantize
