package model

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// threaded splits rows like a Runner (serial is in stream.go).
func threaded(threads int) Parallel {
	r := &Runner{threads: threads}
	return r.parallel
}

// TestInt8FCAgainstSimulation checks the int8 kernel against its fp32
// fake-quant simulation (same quantized inputs and weights, fp32
// arithmetic) for every activation mode, and that results do not depend on
// the thread count.
func TestInt8FCAgainstSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const rows, in, out = 53, 37, 29
	w := make([]float32, in*out)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * 0.2
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
	modes := []struct {
		name string
		k    *Int8FC
	}{
		{"static", &Int8FC{Static: true}},
		{"dynamic per row", &Int8FC{PerRow: true}},
		{"dynamic per tensor reduce-range", &Int8FC{ReduceRange: true}},
	}
	for _, m := range modes {
		for _, perChannel := range []bool{true, false} {
			k := m.k
			k.In, k.Out = in, out
			k.QWeight, k.WScale = kernels.QuantizeWeightsI8(w, out, in, perChannel)
			k.InScale, k.InZero = kernels.ChooseQParamsU8(-2.5, 3, false)
			k.once, k.packed = sync.Once{}, nil
			for _, act := range []Activation{ActReLU, ActSigmoid, ActNone} {
				got := make([]float32, rows*out)
				k.Forward(serial, xm, Mat{Rows: rows, Cols: out, Stride: out, Data: got}, bias, act)
				par := make([]float32, rows*out)
				k.Forward(threaded(3), xm, Mat{Rows: rows, Cols: out, Stride: out, Data: par}, bias, act)
				sim := make([]float32, rows*out)
				(&FakeQuantFC{Q: k}).Forward(serial, xm, Mat{Rows: rows, Cols: out, Stride: out, Data: sim}, bias, act)
				for i := range got {
					if got[i] != par[i] {
						t.Fatalf("%s: element %d differs with 3 threads: %v vs %v", m.name, i, par[i], got[i])
					}
					if d := math.Abs(float64(got[i] - sim[i])); d > 1e-4 {
						t.Fatalf("%s per-channel=%v act %v: element %d: int8 %v, simulation %v", m.name, perChannel, act, i, got[i], sim[i])
					}
				}
			}
		}
	}
}

func TestF16FCEqualsFP32OnWidenedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const rows, in, out = 31, 40, 33
	w := make([]float32, in*out)
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	h := make([]uint16, len(w))
	kernels.F32ToF16Slice(h, w)
	wide := make([]float32, len(w))
	kernels.F16ToF32Slice(wide, h)
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = rng.Float32()
	}
	bias := make([]float32, out)
	xm := Mat{Rows: rows, Cols: in, Stride: in, Data: x}
	got := make([]float32, rows*out)
	(&F16FC{In: in, Out: out, W: h}).Forward(serial, xm, Mat{Rows: rows, Cols: out, Stride: out, Data: got}, bias, ActReLU)
	want := make([]float32, rows*out)
	kernels.PackF32(wide, out, in).Gemm(rows, x, in, want, out, bias, true)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("element %d: fp16 kernel %v, fp32 on widened weights %v", i, got[i], want[i])
		}
	}
}
