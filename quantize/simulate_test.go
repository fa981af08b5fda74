package quantize

import (
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// simulateBound is the largest |p_sim - p| that rq eval --simulate is held
// to on the Criteo model (cmd's TestEvalBudgetAndSimulate): the simulation
// must explain the quantized model's predictions to within it.
const simulateBound = 0.01

// Where the simulation computes exactly what the kernel does (the same
// quantized inputs and weights; int8 products summed exactly in int32 by
// the kernel, in float32 by the simulation over at most 28 inputs), the
// two differ by float32 rounding alone: ~1e-7 measured, 1e-5 allowed. It
// is the bound that catches a simulation using the fp32 weights, or
// skipping the input's fake quantization (7e-4 or more here). bf16
// rounds activations in the kernel and not in the simulation, so it is held
// to simulateBound only.
var simulateExact = map[string]bool{
	"fp16": true, "int8-dynamic": true, "int8": true, "int8-int4": true, "pytorch-dynamic": true, "pytorch-dynamic-int4": true,
}

// Simulate of a network quantized with each preset predicts what the real
// kernels predict, within the bound rq eval --simulate is held to (and
// within float32 rounding where it models the kernel exactly); its int8
// layers fake-quantize with the real kernel's own parameters, and every
// other layer is fp32 on the dequantized weights.
func TestSimulatePresets(t *testing.T) {
	net := randNet(11)
	b := randBatch(net, 256, 12)
	ranges := observeRanges(t, net, b)
	p32 := predict(t, net, b)
	for _, name := range PresetNames() {
		plan, err := Preset(name, net)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Apply(net, plan, ranges)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Simulate(q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pq, ps := predict(t, q, b), predict(t, s, b)
		bound := simulateBound
		if simulateExact[name] {
			bound = 1e-5
		}
		d := maxAbsDiff(ps, pq)
		if d > bound {
			t.Errorf("%s: max |p_sim - p| = %.3g, bound %.3g", name, d, bound)
		}
		if testing.Verbose() {
			t.Logf("%s: max |p_sim - p| = %.3g; max |p - p_fp32| = %.3g", name, d, maxAbsDiff(pq, p32))
		}
		ql := slices.Collect(q.Layers())
		for i, l := range slices.Collect(s.Layers()) {
			o := ql[i]
			if l.Name() != o.Name() {
				t.Fatalf("%s: layer %d is %s, want %s", name, i, l.Name(), o.Name())
			}
			switch k := layerKernel(o).(type) {
			case nil:
				if l.FC != o.FC || l.Table != o.Table {
					t.Errorf("%s: fp32 layer %s was copied", name, l.Name())
				}
			case *model.Int8FC:
				if f, ok := l.FC.Kernel.(*model.FakeQuantFC); !ok || f.Q != k || l.FC.Bias == nil || &l.FC.Bias[0] != &o.FC.Bias[0] {
					t.Errorf("%s: %s simulates int8 with %s", name, l.Name(), l.Label())
				}
			default:
				// fp32 on exactly the dequantized weights.
				if l.Precision() != precision.FP32 {
					t.Errorf("%s: %s is %s in the simulation", name, l.Name(), l.Label())
					continue
				}
				want := dequantized(t, o)
				got := layerWeight(l)
				if !slices.Equal(got, want) {
					t.Errorf("%s: %s: simulated weights are not the dequantized ones", name, l.Name())
				}
			}
		}
	}
}

// Simulate of an fp32 network is that network: the same layers, the same
// predictions bit for bit.
func TestSimulateFP32(t *testing.T) {
	net := randNet(13)
	b := randBatch(net, 128, 14)
	s, err := Simulate(net)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Collect(s.Layers()), slices.Collect(net.Layers())) {
		t.Error("Simulate copied layers of an fp32 network")
	}
	p, ps := predict(t, net, b), predict(t, s, b)
	for i := range p {
		if p[i] != ps[i] {
			t.Fatalf("example %d: %v simulated as %v", i, p[i], ps[i])
		}
	}
	// Also an fp32 table stored as a BagTable (a quantized file's fp32
	// table) is kept as it is.
	tb := net.Tables[0]
	bt, err := kernels.NewBagTable(kernels.TableF32, tb.Rows, tb.Dim, kernels.F32Bytes(tb.Weight))
	if err != nil {
		t.Fatal(err)
	}
	n2 := *net
	n2.Tables = slices.Clone(net.Tables)
	n2.Tables[0] = &model.Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Kernel: bt}
	s2, err := Simulate(&n2)
	if err != nil || s2.Tables[0] != n2.Tables[0] {
		t.Errorf("fp32 BagTable: %v", err)
	}
}

// A kernel Simulate cannot widen is an error naming the layer.
func TestSimulateUnknownKernel(t *testing.T) {
	net := randNet(15)
	odd, err := net.Map(func(l *model.Linear) (*model.Linear, error) {
		if l.Name != "top_l.0" {
			return l, nil
		}
		return &model.Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Bias: l.Bias, Kernel: oddFC{}}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Simulate(odd); err == nil || !strings.Contains(err.Error(), "top_l.0: cannot simulate a odd layer") {
		t.Errorf("odd FC kernel: %v", err)
	}
	odd, _ = net.Map(nil, func(tb *model.Table) (*model.Table, error) {
		if tb.Name != "emb_l.1" {
			return tb, nil
		}
		return &model.Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Kernel: oddBag{}}, nil
	})
	if _, err := Simulate(odd); err == nil || !strings.Contains(err.Error(), "emb_l.1: cannot simulate a int4-rowwise table") {
		t.Errorf("odd table kernel: %v", err)
	}
}

type oddFC struct{}

func (oddFC) Precision() precision.Precision { return precision.Int8 }
func (oddFC) Label() string                  { return "odd" }
func (oddFC) Bytes() int64                   { return 0 }
func (oddFC) Forward(model.Parallel, model.Mat, model.Mat, []float32, model.Activation) {
}

type oddBag struct{}

// Precision is one BagTable has too: Simulate must look at the kernel's
// type, not its precision.
func (oddBag) Precision() precision.Precision { return precision.Int4 }
func (oddBag) Bytes() int64                   { return 0 }
func (oddBag) Pool([]int64, []int32, []float32, []float32, int, int, int) int {
	return -1
}

// dequantized widens a quantized layer's stored values to fp32, by the
// kernels' own conversions.
func dequantized(t *testing.T, l model.Layer) []float32 {
	t.Helper()
	switch k := layerKernel(l).(type) {
	case *model.F16FC:
		w := make([]float32, len(k.W))
		kernels.F16ToF32Slice(w, k.W)
		return w
	case *model.BF16FC:
		return k.Weight32()
	case *kernels.BagTable:
		w := make([]float32, l.Table.Rows*int64(l.Table.Dim))
		kernels.DequantizeRows(k.Format, k.Data, int(l.Table.Rows), l.Table.Dim, w)
		return w
	}
	t.Fatalf("%s: no dequantization for %T", l.Name(), layerKernel(l))
	return nil
}

// layerKernel is l's kernel, nil for fp32 (model.Layer has no such method;
// a model helper could add Kernel and Weight to it).
func layerKernel(l model.Layer) any {
	if l.FC != nil {
		if l.FC.Kernel != nil {
			return l.FC.Kernel
		}
		return nil
	}
	if l.Table.Kernel != nil {
		return l.Table.Kernel
	}
	return nil
}

// layerWeight is l's fp32 weight.
func layerWeight(l model.Layer) []float32 {
	if l.FC != nil {
		return l.FC.Weight
	}
	return l.Table.Weight
}
