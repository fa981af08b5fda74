package evaluate

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/rqtools/rq/metrics"
)

// bigAcc is an accumulator of n predictions spread over (0.05, 0.95) like a
// CTR model's, from seed: about 0.75 n bins, at one drop bit.
func bigAcc(t testing.TB, n int, seed uint64) *metrics.Accumulator {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]float32, n)
	y := make([]float32, n)
	for i := range p {
		z := r.NormFloat64()*1.2 - 1.2
		p[i] = float32(1 / (1 + math.Exp(-z)))
		if r.Float64() < float64(p[i]) {
			y[i] = 1
		}
	}
	var a metrics.Accumulator
	if err := a.Add(p, y); err != nil {
		t.Fatal(err)
	}
	return &a
}

// TestWriteBigStates writes two shards' states of a large evaluation (with
// a baseline: 2 histograms of about 1.4 M bins each, as criteo-18k gives)
// to $RQ_BIG_STATE{0,1}.json, for measuring rq merge; skipped without it.
func TestWriteBigStates(t *testing.T) {
	out := os.Getenv("RQ_BIG_STATE")
	if out == "" {
		t.Skip("RQ_BIG_STATE not set")
	}
	for shard := range 2 {
		acc := bigAcc(t, 2_400_000, uint64(2*shard))
		base := bigAcc(t, 2_400_000, uint64(2*shard+1))
		res, _ := acc.Result()
		bres, _ := base.Result()
		s := NewState(&Report{Result: res, Acc: acc, Baseline: &bres, BaselineAcc: base, ForwardSeconds: 1}, shard, 2)
		s.Model, s.ModelSHA256, s.Baseline, s.BaselineSHA256, s.Data, s.Rows, s.Batch = "m.safetensors", "ab", "b.safetensors", "cd", "d.tsv", "", 2048
		t.Logf("shard %d: %d and %d bins at drop bits %d", shard, len(s.Metrics.Bins), len(s.BaselineMetrics.Bins), s.Metrics.DropBits)
		if err := s.Write(out + string(rune('0'+shard)) + ".json"); err != nil {
			t.Fatal(err)
		}
	}
}
