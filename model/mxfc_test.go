package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// An MX FC layer is the bf16 layer holding its decoded weights, bit for
// bit: the decoded weights are bf16 values (checked here, for weights of
// many magnitudes, which is the claim the layer rests on), so packing them
// rounds nothing. With MX activations it is the bf16 layer applied to the
// input rounded by kernels.RoundMX, and its simulation the fp32 layer on
// that input. Results do not depend on the thread count.
func TestMXFCIsBF16OfDecodedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 33))
	const rows, in, out = 37, 83, 45 // a partial last block along In
	w := make([]float32, in*out)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(40)-30)))
	}
	bias := make([]float32, out)
	for i := range bias {
		bias[i] = float32(rng.NormFloat64()) * 0.1
	}
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xm := Mat{Rows: rows, Cols: in, Stride: in, Data: x}
	outMat := func() Mat { return Mat{Rows: rows, Cols: out, Stride: out, Data: make([]float32, rows*out)} }
	for _, f := range kernels.MXFormats {
		codes := make([]byte, out*kernels.MXCodeBytes(f, in))
		scales := make([]byte, out*kernels.MXScales(in))
		if err := kernels.QuantizeMXRows(f, "w", w, out, in, codes, scales); err != nil {
			t.Fatal(err)
		}
		dec := make([]float32, in*out)
		kernels.DequantizeMXRows(f, codes, scales, out, in, dec)
		h := make([]uint16, len(dec))
		kernels.F32ToBF16Slice(h, dec)
		for i, v := range dec {
			if back := math.Float32frombits(uint32(h[i]) << 16); back != v && math.Abs(float64(v)) >= 0x1p-126 {
				t.Fatalf("%v: decoded weight %d = %g is not a bf16 value (rounds to %g)", f, i, v, back)
			}
		}
		for _, dyn := range []bool{false, true} {
			k := &MXFC{In: in, Out: out, Format: f, Codes: codes, Scales: scales, DynamicAct: dyn}
			if k.Bytes() != int64(len(codes)+len(scales)) {
				t.Errorf("%v: Bytes %d", f, k.Bytes())
			}
			ref := &BF16FC{In: in, Out: out, W: h}
			refIn := xm
			if dyn {
				r := append([]float32(nil), x...)
				for i := 0; i < rows; i++ {
					kernels.RoundMX(f, r[i*in:i*in+in])
				}
				refIn = Mat{Rows: rows, Cols: in, Stride: in, Data: r}
			}
			for _, act := range []Activation{ActReLU, ActSigmoid, ActNone} {
				got, par, want := outMat(), outMat(), outMat()
				k.Forward(serial, xm, got, bias, act)
				k.Forward(threaded(3), xm, par, bias, act)
				ref.Forward(serial, refIn, want, bias, act)
				for i := range got.Data {
					if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) || math.Float32bits(par.Data[i]) != math.Float32bits(want.Data[i]) {
						t.Fatalf("%s act %d: [%d] = %v (3 threads %v), want %v", k.Label(), act, i, got.Data[i], par.Data[i], want.Data[i])
					}
				}
				if !dyn {
					continue
				}
				// The simulation: fp32 arithmetic on the same rounded input.
				sim, fp := outMat(), outMat()
				(&FakeQuantMXFC{Q: k}).Forward(serial, xm, sim, bias, act)
				floatGemm(serial, refIn, fp, bias, act, kernels.PackF32(dec, out, in).Gemm)
				for i := range sim.Data {
					if math.Float32bits(sim.Data[i]) != math.Float32bits(fp.Data[i]) {
						t.Fatalf("%s-sim act %d: [%d] = %v, want %v", k.Label(), act, i, sim.Data[i], fp.Data[i])
					}
				}
			}
		}
	}
}
