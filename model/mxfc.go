package model

import (
	"sync"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
)

// MXFC is an FC layer whose weights are stored in an OCP Microscaling
// format: each output channel's row of In weights is one MX row, in blocks
// of 32 along the input dimension sharing an E8M0 scale, laid out as an MX
// table's rows are (Codes: Out rows of kernels.MXCodeBytes(Format, In)
// bytes; Scales: Out rows of kernels.MXScales(In) bytes).
//
// It runs on the bf16 GEMM (see kernels.PackedBF16 for its semantics):
// every MX element has at most 8 significant bits (mxint8's 7 and a sign;
// the float formats 2 to 4), so a decoded weight is exactly a bf16 for
// every magnitude from 2^-126 up, and the bf16 panels decoded once at load
// are the MX weights themselves, not an approximation of them (smaller
// magnitudes are bf16 subnormals, which VDPBF16PS reads as zero anyway).
// That is the fastest correct route on CPUs with AVX512_BF16 (twice the
// fp32 GEMM on Zen 4) and the bf16 GEMM's exact fp32 emulation elsewhere.
// Activations are rounded to bf16 as the BF16FC layer's are, or, with
// DynamicAct, rounded to the layer's MX format per row (blocks of 32 along
// In, kernels.RoundMX), whose values are bf16 values too.
//
// Memory: at rest Bytes (codes and scales: In·Out·bits/8 + Out·ceil(In/32)
// bytes); in use the codes plus the bf16 panels, 2 bytes per weight.
type MXFC struct {
	In, Out    int
	Format     kernels.MXFormat
	Codes      []byte
	Scales     []byte
	DynamicAct bool

	once   sync.Once
	packed *kernels.PackedBF16
	bufs   sync.Pool // *[]float32: rounded activations, shared by concurrent runners
}

// Precision is the MX format's.
func (k *MXFC) Precision() precision.Precision { return k.Format.Precision() }

// Label is the format ("mxfp4"), with "-dynamic" for MX activations.
func (k *MXFC) Label() string { return precision.FCLabel(k.Precision(), k.activation()) }

func (k *MXFC) activation() precision.Activation {
	if k.DynamicAct {
		return precision.Dynamic
	}
	return 0
}

// RowWise is true: each output row depends on its input row alone (MX
// activations are rounded per row).
func (k *MXFC) RowWise() bool { return true }

// Bytes counts the codes and the scale bytes.
func (k *MXFC) Bytes() int64 { return int64(len(k.Codes)) + int64(len(k.Scales)) }

// Weight32 decodes the weights to fp32, row-major [Out][In] (exactly).
func (k *MXFC) Weight32() []float32 {
	w := make([]float32, k.Out*k.In)
	kernels.DequantizeMXRows(k.Format, k.Codes, k.Scales, k.Out, k.In, w)
	return w
}

// Prepare decodes the weights into the bf16 GEMM's panels.
func (k *MXFC) Prepare() {
	k.once.Do(func() { k.packed = kernels.PackBF16FromF32(k.Weight32(), k.Out, k.In) })
}

// Forward computes act(a·Wᵀ + bias) on the bf16 GEMM, where a is the
// input rounded to bf16, or to the MX format per row with DynamicAct.
func (k *MXFC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	k.Prepare()
	if !k.DynamicAct {
		floatGemm(par, in, out, bias, act, k.packed.Gemm)
		return
	}
	buf, _ := k.bufs.Get().(*[]float32)
	if buf == nil {
		buf = new([]float32)
	}
	x := roundMXRows(par, k.Format, in, buf)
	floatGemm(par, x, out, bias, act, k.packed.Gemm)
	k.bufs.Put(buf)
}

// roundMXRows copies in into *buf (grown as needed) with each row rounded
// to format f (kernels.RoundMX) and returns the copy.
func roundMXRows(par Parallel, f kernels.MXFormat, in Mat, buf *[]float32) Mat {
	K := in.Cols
	if need := in.Rows * K; cap(*buf) < need {
		*buf = make([]float32, need)
	}
	x := (*buf)[:in.Rows*K]
	par(in.Rows, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := x[i*K : i*K+K]
			copy(r, in.Row(i))
			kernels.RoundMX(f, r)
		}
	})
	return Mat{Rows: in.Rows, Cols: K, Stride: K, Data: x}
}

// FakeQuantMXFC simulates an MXFC with dynamic MX activations in fp32: the
// input rounded to the MX format as the layer rounds it, times the decoded
// weights on the fp32 GEMM. (An MXFC without MX activations is simulated
// by an fp32 layer holding its decoded weights.)
type FakeQuantMXFC struct {
	Q *MXFC

	once   sync.Once
	packed *kernels.PackedF32
}

// Precision is the simulated layer's.
func (k *FakeQuantMXFC) Precision() precision.Precision { return k.Q.Precision() }

// Label is the simulated layer's, with "-sim".
func (k *FakeQuantMXFC) Label() string { return k.Q.Label() + "-sim" }

// RowWise is true, as for the simulated layer.
func (k *FakeQuantMXFC) RowWise() bool { return true }

// Bytes is the simulated layer's.
func (k *FakeQuantMXFC) Bytes() int64 { return k.Q.Bytes() }

// Prepare packs the decoded weights for the fp32 GEMM.
func (k *FakeQuantMXFC) Prepare() {
	k.once.Do(func() { k.packed = kernels.PackF32(k.Q.Weight32(), k.Q.Out, k.Q.In) })
}

// Forward rounds the input to the MX format and runs the fp32 GEMM.
func (k *FakeQuantMXFC) Forward(par Parallel, in, out Mat, bias []float32, act Activation) {
	k.Prepare()
	var buf []float32
	x := roundMXRows(par, k.Q.Format, in, &buf)
	floatGemm(par, x, out, bias, act, k.packed.Gemm)
}
