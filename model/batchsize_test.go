package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rqtools/rq/kernels"
)

// sweepBatches are the batch sizes the tests below cut a click log into:
// single rows, sizes around the streaming chunk (streamRows = 96) and the
// kernels' row block (12), and one batch of everything.
var sweepBatches = []int{1, 2, 3, 95, 96, 97, 191, 2048}

// subBatch returns rows [lo, hi) of b as a batch of their own, the bag
// offsets rebased, as a reader cutting the same rows at another batch
// size would hand them out.
func subBatch(b *Batch, lo, hi int) *Batch {
	s := &Batch{N: hi - lo, NumDense: b.NumDense, Row: b.Row + int64(lo),
		Dense: b.Dense[lo*b.NumDense : hi*b.NumDense], Labels: b.Labels[lo:hi]}
	for t := range b.Indices {
		p0, p1 := b.Offsets[t][lo], b.Offsets[t][hi]
		s.Indices = append(s.Indices, b.Indices[t][p0:p1])
		off := make([]int32, hi-lo+1)
		for i := range off {
			off[i] = b.Offsets[t][lo+i] - p0
		}
		s.Offsets = append(s.Offsets, off)
		if b.Weights != nil {
			s.Weights = append(s.Weights, b.Weights[t][p0:p1])
		}
	}
	return s
}

// predictInBatches runs all of b through run in batches of size rows and
// returns every prediction.
func predictInBatches(t *testing.T, run *Runner, b *Batch, size int) []float32 {
	t.Helper()
	var out []float32
	for lo := 0; lo < b.N; lo += size {
		p, err := run.Forward(subBatch(b, lo, min(lo+size, b.N)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p...)
	}
	return out
}

// TestPredictionsIndependentOfBatch: every prediction has the same bits
// whatever batch size the rows come in, whatever the thread count and
// whichever schedule runs them (carried whole in chunks, layer by layer
// with the feature rows streamed, layer by layer under an observer), for
// fp32, fp16, bf16 and int8 (static and per-row dynamic) layers. The one
// kind of layer that legitimately depends on the batch, per-tensor dynamic
// int8 (PyTorch's quantize_dynamic: one activation scale per batch), is
// left out; TestPerTensorDependsOnBatch pins that exception down.
func TestPredictionsIndependentOfBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 8))
	const rows = 2048
	base := randNet(rng, Dot, 13, []int{64, 16}, []int64{500, 40, 3000}, []int{16, 16, 16}, []int{48, 24, 1})
	// Top layers of 4.4 MB: over streamMaxWeightBytes, so layer by layer.
	wide := randNet(rng, Dot, 13, []int{32, 16}, []int64{200, 300}, []int{16, 16}, []int{1100, 1000, 1})
	f16 := func(l *Linear) FCKernel {
		h := make([]uint16, len(l.Weight))
		kernels.F32ToF16Slice(h, l.Weight)
		return &F16FC{In: l.In, Out: l.Out, W: h}
	}
	bf16 := func(l *Linear) FCKernel {
		h := make([]uint16, len(l.Weight))
		kernels.F32ToBF16Slice(h, l.Weight)
		return &BF16FC{In: l.In, Out: l.Out, W: h}
	}
	nets := []struct {
		name string
		net  *Network
	}{
		{"fp32", base},
		{"fp32 wide top", wide},
		{"fp32 dot-self", randNet(rng, DotSelf, 5, []int{40, 8}, []int64{50, 20}, []int{8, 8}, []int{17, 1})},
		{"fp32 cat", randNet(rng, Cat, 3, []int{8}, []int64{11, 13}, []int{6, 2}, []int{25, 1})},
		{"fp16", withKernels(t, base, f16)},
		{"fp16 wide top", withKernels(t, wide, f16)},
		{"bf16", withKernels(t, base, bf16)},
		{"int8 static", withKernels(t, base, int8Kernel(true, false))},
		{"int8 dynamic per row", withKernels(t, base, int8Kernel(false, true))},
	}
	for _, c := range nets {
		n := rows
		if strings.HasSuffix(c.name, "wide top") {
			n = 500 // 4.4 MB of weights: fewer rows keep the test short
		}
		b := randBatch(rng, c.net, n, 3, c.name == "fp32")
		t.Run(c.name, func(t *testing.T) {
			checkBatchSweep(t, c.net, b)
		})
	}
}

// checkBatchSweep runs b through net in every batch size of sweepBatches,
// with 1, 2 and 3 threads, observed (layer by layer) or not, and compares
// every prediction's bits with those of one batch on one thread.
func checkBatchSweep(t *testing.T, net *Network, b *Batch) {
	t.Helper()
	noop := ObserverFunc(func(Event) {})
	want := append([]float32(nil), predictInBatches(t, NewRunner(net, 1), b, b.N)...)
	for _, size := range sweepBatches {
		for _, threads := range []int{1, 2, 3} {
			for _, observed := range []bool{false, true} {
				if size == 1 && threads > 1 {
					continue // one row has nothing to share out
				}
				run := NewRunner(net, threads)
				if observed {
					run = NewRunner(net, threads, noop)
				}
				got := predictInBatches(t, run, b, size)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("batch %d, %d threads, observed %v: row %d predicts %v (%#08x), one batch of %d on one thread %v (%#08x)",
							size, threads, observed, i, got[i], math.Float32bits(got[i]), b.N, want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// TestPerTensorDependsOnBatch documents the one exception: a per-tensor
// dynamic int8 layer quantizes its input with one scale over the whole
// batch (PyTorch's recipe, the pytorch-dynamic preset), so predictions move
// with the batch size; within a batch they still do not depend on the
// thread count.
func TestPerTensorDependsOnBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 9))
	net := withKernels(t, randNet(rng, Dot, 13, []int{64, 16}, []int64{500, 40}, []int{16, 16}, []int{48, 1}), int8Kernel(false, false))
	b := randBatch(rng, net, 500, 3, false)
	whole := append([]float32(nil), predictInBatches(t, NewRunner(net, 1), b, b.N)...)
	if got := predictInBatches(t, NewRunner(net, 3), b, b.N); !sameBits(got, whole) {
		t.Error("per-tensor dynamic: predictions depend on the thread count")
	}
	if got := predictInBatches(t, NewRunner(net, 1), b, 97); sameBits(got, whole) {
		t.Error("per-tensor dynamic: batches of 97 give the predictions of one batch of 500; is the scale still per batch?")
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
