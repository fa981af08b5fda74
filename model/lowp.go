package model

import (
	"sync"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
)

// Low-precision FC layers. Each holds its parameters as stored in a
// quantized file (so modelio can write and read them) and packs them for
// its kernel on first use. Tables need no type here: *kernels.BagTable is a
// BagKernel for every table format.

// F16FC is an FC layer with fp16 weights and fp32 math (FBGEMM's fp16 path).
type F16FC struct {
	In, Out int
	W       []uint16 // Out*In fp16 bits, row-major [Out][In]

	once   sync.Once
	packed *kernels.PackedF16
}

// Precision is fp16.
func (k *F16FC) Precision() precision.Precision { return precision.FP16 }

// Label is "fp16".
func (k *F16FC) Label() string { return precision.FP16.String() }

// RowWise is true: each output row depends on its input row alone.
func (k *F16FC) RowWise() bool { return true }

// Bytes counts fp16 weights and the fp32 bias.
func (k *F16FC) Bytes() int64 { return 2 * int64(k.In) * int64(k.Out) }

// Prepare packs the weights for the kernel.
func (k *F16FC) Prepare() { k.once.Do(func() { k.packed = kernels.PackF16(k.W, k.Out, k.In) }) }

// Forward computes act(in·Wᵀ + bias).
func (k *F16FC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	k.Prepare()
	p := k.packed
	floatGemm(par, in, out, bias, act, p.Gemm)
}

// Int8FC is an FC layer with symmetric int8 weights (per output channel or
// per tensor) and u8 activations quantized either statically (a calibrated
// per-tensor scale and zero point) or dynamically from each batch (per row,
// or per tensor as PyTorch's dynamic Linear does).
type Int8FC struct {
	In, Out int
	QWeight []int8    // Out*In, row-major [Out][In]
	WScale  []float32 // Out (per channel) or 1 (per tensor)
	// FullRange: weights use [-128, 127] (PyTorch's observer) rather than
	// the symmetric [-127, 127].
	FullRange bool
	// Static activations: real = InScale * (q - InZero).
	Static  bool
	InScale float32
	InZero  int32
	// Dynamic activations: per row (one scale per example) or per tensor.
	PerRow      bool
	ReduceRange bool // 7-bit activations (qmax 127)

	once   sync.Once
	packed *kernels.PackedI8
	bufs   sync.Pool // *int8Scratch, shared by concurrent runners
}

// int8Scratch is one Forward call's quantized input and per-row
// parameters, reused from call to call.
type int8Scratch struct {
	u8    []uint8
	scale []float32
	zero  []int32
}

// Precision is int8.
func (k *Int8FC) Precision() precision.Precision { return precision.Int8 }

// Label is "int8-static" or "int8-dynamic".
func (k *Int8FC) Label() string {
	a := precision.Dynamic
	if k.Static {
		a = precision.Static
	}
	return precision.FCLabel(precision.Int8, a)
}

// RowWise is false only for per-tensor dynamic activations, whose scale
// comes from the whole batch.
func (k *Int8FC) RowWise() bool { return k.Static || k.PerRow }

// Bytes counts int8 weights, scales, bias and static activation parameters.
func (k *Int8FC) Bytes() int64 {
	b := int64(k.In)*int64(k.Out) + 4*int64(len(k.WScale))
	if k.Static {
		b += 8
	}
	return b
}

// Prepare packs the weights for the kernel.
func (k *Int8FC) Prepare() { k.Packed() }

// Packed returns the packed weights (packing on first use).
func (k *Int8FC) Packed() *kernels.PackedI8 {
	k.once.Do(func() { k.packed = kernels.PackI8(k.QWeight, k.Out, k.In, k.WScale) })
	return k.packed
}

// QuantizeInput quantizes in (rows x In) into a u8 buffer with leading
// dimension In, as Forward does, and returns the buffer and its parameters.
// Per-row parameters go into scale and zero when they hold in.Rows
// entries, else into new slices.
func (k *Int8FC) QuantizeInput(par Parallel, in Mat, buf []uint8, scale []float32, zero []int32) kernels.ActQuant {
	K := k.In
	switch {
	case k.Static:
		par(in.Rows, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				kernels.QuantizeU8(in.Row(i), k.InScale, k.InZero, buf[i*K:i*K+K])
			}
		})
		return kernels.ActQuant{Scale: k.InScale, Zero: k.InZero}
	case k.PerRow:
		if len(scale) < in.Rows || len(zero) < in.Rows {
			scale, zero = make([]float32, in.Rows), make([]int32, in.Rows)
		}
		aq := kernels.ActQuant{RowScale: scale[:in.Rows], RowZero: zero[:in.Rows]}
		par(in.Rows, 1, func(lo, hi int) {
			kernels.QuantizeRowsDynamicU8To(in.Data[lo*in.Stride:], hi-lo, K, in.Stride, buf[lo*K:], K, k.ReduceRange, aq.RowScale[lo:hi], aq.RowZero[lo:hi])
		})
		return aq
	}
	// Per tensor: one scale and zero point from the whole batch.
	return kernels.QuantizeRowsDynamicU8(in.Data, in.Rows, K, in.Stride, buf, K, false, k.ReduceRange)
}

// Forward quantizes the input, runs the int8 GEMM with the fused
// dequantize + bias + ReLU epilogue, and applies a sigmoid if asked.
func (k *Int8FC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	p := k.Packed()
	sc, _ := k.bufs.Get().(*int8Scratch)
	if sc == nil {
		sc = new(int8Scratch)
	}
	if need := in.Rows * k.In; cap(sc.u8) < need {
		sc.u8 = make([]uint8, need)
	}
	if cap(sc.scale) < in.Rows {
		sc.scale, sc.zero = make([]float32, in.Rows), make([]int32, in.Rows)
	}
	buf := sc.u8[:in.Rows*k.In]
	aq := k.QuantizeInput(par, in, buf, sc.scale[:in.Rows], sc.zero[:in.Rows])
	par(in.Rows, kernels.GemmRowAlign, func(lo, hi int) {
		sub := aq
		if aq.RowScale != nil {
			sub.RowScale, sub.RowZero = aq.RowScale[lo:hi], aq.RowZero[lo:hi]
		}
		p.Gemm(hi-lo, buf[lo*k.In:], k.In, sub, out.Data[lo*out.Stride:], out.Stride, bias, act == ActReLU)
		if act == ActSigmoid {
			SigmoidRows(out, lo, hi)
		}
	})
	k.bufs.Put(sc)
}

// DequantizedWeight returns the fp32 weights the int8 ones stand for
// (q * scale), for simulation and the numeric debugger.
func (k *Int8FC) DequantizedWeight() []float32 {
	w := make([]float32, len(k.QWeight))
	for o := 0; o < k.Out; o++ {
		s := k.WScale[0]
		if len(k.WScale) > 1 {
			s = k.WScale[o]
		}
		for i := 0; i < k.In; i++ {
			w[o*k.In+i] = float32(k.QWeight[o*k.In+i]) * s
		}
	}
	return w
}

// FakeQuantFC simulates an Int8FC in fp32: the input is quantized and
// dequantized with the same parameters the int8 kernel would use, then
// multiplied by the dequantized weights in fp32. Comparing it with the real
// kernel isolates the arithmetic (accumulation, rounding) from the
// quantization itself.
type FakeQuantFC struct {
	Q *Int8FC

	once   sync.Once
	packed *kernels.PackedF32
}

// Precision is the simulated layer's.
func (k *FakeQuantFC) Precision() precision.Precision { return k.Q.Precision() }

// Label is the simulated layer's, with "-sim".
func (k *FakeQuantFC) Label() string { return k.Q.Label() + "-sim" }

// RowWise is the simulated layer's.
func (k *FakeQuantFC) RowWise() bool { return k.Q.RowWise() }

// Bytes is the simulated layer's.
func (k *FakeQuantFC) Bytes() int64 { return k.Q.Bytes() }

// Prepare packs the dequantized weights.
func (k *FakeQuantFC) Prepare() {
	k.once.Do(func() { k.packed = kernels.PackF32(k.Q.DequantizedWeight(), k.Q.Out, k.Q.In) })
}

// Forward fake-quantizes the input and runs the fp32 GEMM.
func (k *FakeQuantFC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	k.Prepare()
	K := k.Q.In
	need := in.Rows * K
	q := make([]uint8, need)
	aq := k.Q.QuantizeInput(par, in, q, nil, nil)
	x := make([]float32, need)
	par(in.Rows, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s, z := aq.Scale, aq.Zero
			if aq.RowScale != nil {
				s, z = aq.RowScale[i], aq.RowZero[i]
			}
			kernels.DequantizeU8(q[i*K:i*K+K], s, z, x[i*K:i*K+K])
		}
	})
	floatGemm(par, Mat{Rows: in.Rows, Cols: K, Stride: K, Data: x}, out, bias, act, k.packed.Gemm)
}

// BF16FC is an FC layer with bf16 weights; activations are rounded to bf16
// and products accumulate in fp32 (VDPBF16PS).
type BF16FC struct {
	In, Out int
	W       []uint16 // Out*In bf16 bits, row-major [Out][In]

	once   sync.Once
	packed *kernels.PackedBF16
}

// Precision is bf16.
func (k *BF16FC) Precision() precision.Precision { return precision.BF16 }

// Label is "bf16".
func (k *BF16FC) Label() string { return precision.BF16.String() }

// RowWise is true: each output row depends on its input row alone.
func (k *BF16FC) RowWise() bool { return true }

// Bytes counts bf16 weights and the fp32 bias.
func (k *BF16FC) Bytes() int64 { return 2 * int64(k.In) * int64(k.Out) }

// Weight32 widens the weights to fp32 (exactly).
func (k *BF16FC) Weight32() []float32 {
	w := make([]float32, len(k.W))
	kernels.BF16ToF32Slice(w, k.W)
	return w
}

// Prepare packs the weights for the kernel. The weights are bf16 already,
// so packing from their exact fp32 widening rounds nothing.
func (k *BF16FC) Prepare() {
	k.once.Do(func() { k.packed = kernels.PackBF16FromF32(k.Weight32(), k.Out, k.In) })
}

// Forward computes act(bf16(in)·Wᵀ + bias) with fp32 accumulation.
func (k *BF16FC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	k.Prepare()
	p := k.packed
	floatGemm(par, in, out, bias, act, p.Gemm)
}

// gemmFunc is the signature every float GEMM of package kernels shares.
type gemmFunc func(m int, a []float32, lda int, c []float32, ldc int, bias []float32, relu bool)

// floatGemm runs an FC layer's float GEMM over the rows, split at multiples
// of GemmRowAlign (whole kernel row blocks; the results do not depend on the
// split), with ReLU fused and the sigmoid applied after.
func floatGemm(par Parallel, in, out Mat, bias []float32, act Activation, gemm gemmFunc) {
	par(in.Rows, kernels.GemmRowAlign, func(lo, hi int) {
		gemm(hi-lo, in.Data[lo*in.Stride:], in.Stride, out.Data[lo*out.Stride:], out.Stride, bias, act == ActReLU)
		if act == ActSigmoid {
			SigmoidRows(out, lo, hi)
		}
	})
}
