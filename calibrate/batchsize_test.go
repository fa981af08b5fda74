package calibrate

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// sweepBatches are the batch sizes calibration is cut into below: single
// rows, sizes around the forward pass's 96-row chunks and the GEMMs'
// 12-row blocks, and one batch of everything.
var sweepBatches = []int{1, 2, 3, 95, 96, 97, 191, 2048}

// randomNet is a DLRM of the criteo-18k model's kind, small: 13 dense
// features, bottom 13-64-16, three tables of width 16, dot interaction,
// top 67-48-24-1, weights drawn from seed.
func randomNet(seed uint64) *model.Network {
	rng := rand.New(rand.NewPCG(seed, 12))
	lin := func(name string, in, out int, act model.Activation) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		s := 1 / math.Sqrt(float64(in))
		for i := range l.Weight {
			l.Weight[i] = float32(rng.NormFloat64() * s)
		}
		for i := range l.Bias {
			l.Bias[i] = float32(rng.NormFloat64() * 0.1)
		}
		return l
	}
	net := &model.Network{NumDense: 13, Interaction: model.Dot,
		Bottom: []*model.Linear{lin("bot_l.0", 13, 64, model.ActReLU), lin("bot_l.2", 64, 16, model.ActReLU)},
		Top:    []*model.Linear{lin("top_l.0", 16+6, 48, model.ActReLU), lin("top_l.2", 48, 24, model.ActReLU), lin("top_l.4", 24, 1, model.ActSigmoid)},
	}
	for t := range 3 {
		tb := &model.Table{Name: "emb_l." + strconv.Itoa(t), Rows: 300, Dim: 16, Weight: make([]float32, 300*16)}
		for i := range tb.Weight {
			tb.Weight[i] = float32(rng.NormFloat64() * 0.5)
		}
		net.Tables = append(net.Tables, tb)
	}
	return net
}

// randomRows is n rows for randomNet: log1p-like dense values and one
// index per table.
func randomRows(seed uint64, n int) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 13))
	b := &model.Batch{N: n, NumDense: 13, Dense: make([]float32, n*13), Labels: make([]float32, n)}
	for i := range b.Dense {
		b.Dense[i] = float32(math.Log1p(rng.ExpFloat64() * 20))
	}
	for range 3 {
		idx, off := make([]int64, n), make([]int32, n+1)
		for i := range idx {
			idx[i] = rng.Int64N(300)
			off[i+1] = int32(i + 1)
		}
		b.Indices, b.Offsets = append(b.Indices, idx), append(b.Offsets, off)
	}
	return b
}

// cutBatches cuts b into batches of size rows (the last one shorter), bag
// offsets rebased, as a reader at that batch size hands them out.
func cutBatches(b *model.Batch, size int) []*model.Batch {
	var out []*model.Batch
	for lo := 0; lo < b.N; lo += size {
		hi := min(lo+size, b.N)
		s := &model.Batch{N: hi - lo, NumDense: b.NumDense, Row: int64(lo),
			Dense: b.Dense[lo*b.NumDense : hi*b.NumDense], Labels: b.Labels[lo:hi]}
		for t := range b.Indices {
			p0, p1 := b.Offsets[t][lo], b.Offsets[t][hi]
			off := make([]int32, hi-lo+1)
			for i := range off {
				off[i] = b.Offsets[t][lo+i] - p0
			}
			s.Indices, s.Offsets = append(s.Indices, b.Indices[t][p0:p1]), append(s.Offsets, off)
		}
		out = append(out, s)
	}
	return out
}

// TestRunIndependentOfBatch: ranges.json has the same bytes whatever the
// batch size the calibration rows come in and the thread count. (Fewer
// bins than the default keep the range searches, most of each run's time,
// short; the histograms see the same values either way.)
func TestRunIndependentOfBatch(t *testing.T) {
	net := randomNet(1)
	rows := randomRows(2, 2048)
	encode := func(size, threads int) []byte {
		r, err := Run(context.Background(), net, &sliceReader{cutBatches(rows, size)},
			Options{Threads: threads, Bins: 256, ModelSHA256: testSHA, Rows: "0:2048", Data: "synthetic"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := encode(rows.N, 1)
	for _, size := range sweepBatches {
		for _, threads := range []int{1, 2, 3} {
			if size == 1 && threads > 1 {
				continue // a single row has nothing to share out
			}
			if got := encode(size, threads); !bytes.Equal(got, want) {
				t.Fatalf("batch %d, %d threads: ranges.json differs from one batch on one thread's (first difference at byte %d)", size, threads, firstByteDiff(got, want))
			}
		}
	}
}

// TestRunCriteoIndependentOfBatch is TestRunIndependentOfBatch on the real
// model and 1,200 real rows, read by the npz reader at each batch size.
func TestRunCriteoIndependentOfBatch(t *testing.T) {
	mp := calibrateSharedPath(t, "criteo-18k/model.safetensors")
	dp := calibrateSharedPath(t, "criteo-18k/dlrm-processed.npz")
	m, err := modelio.Load(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sha := fileSHA(t, mp)
	encode := func(size, threads int) []byte {
		rd, err := dataset.Open(dp, dataset.Options{Rows: dataset.Range{Start: 0, End: 1200}, NumDense: m.Net.NumDense,
			TableRows: m.Net.TableRows(), BatchSize: size})
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		r, err := Run(context.Background(), m.Net, rd, Options{Threads: threads, Bins: 512, ModelSHA256: sha, Rows: "0:1200", Data: "dlrm-processed.npz"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := encode(1200, 1)
	for _, size := range sweepBatches {
		for _, threads := range []int{1, 2} {
			if size == 1 && threads > 1 {
				continue // a single row has nothing to share out
			}
			if got := encode(size, threads); !bytes.Equal(got, want) {
				t.Fatalf("batch %d, %d threads: ranges.json differs from one batch on one thread's (first difference at byte %d)", size, threads, firstByteDiff(got, want))
			}
		}
	}
}

func firstByteDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
