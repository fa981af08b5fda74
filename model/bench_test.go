package model

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkForwardMLPerf times the fp32 forward pass on the shape
// ../shared/bench/synth_dlrm.py makes by default (the MLPerf DLRM: 26 tables
// of 100k x 128, bottom 13-512-256-128, top 479-1024-1024-512-256-1), batch
// 2048, one thread, with Zipf-distributed indices as the script draws them.
// It reports examples/s; compare with torch_peer.py --time in the same run
// (scripts/bench-eval.sh does both).
func BenchmarkForwardMLPerf(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	tables := make([]int64, 26)
	dims := make([]int, 26)
	for i := range tables {
		tables[i], dims[i] = 100000, 128
	}
	net := randNet(rng, Dot, 13, []int{512, 256, 128}, tables, dims, []int{1024, 1024, 512, 256, 1})
	const batch = 2048
	bt := randBatch(rng, net, batch, 1, false)
	z := rand.NewZipf(rng, 1.2, 1, 99999)
	for t := range bt.Indices {
		for i := range bt.Indices[t] {
			bt.Indices[t][i] = int64(z.Uint64())
		}
	}
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			run := NewRunner(net, threads)
			if _, err := run.Forward(bt); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := run.Forward(bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}
