package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkInteractDot measures the active implementation single-threaded
// on a batch of 2048 rows at DLRM sizes (F = 27: 26 tables + the bottom MLP;
// D = 16 for the criteo-18k model, 64 and 128 for MLPerf), reporting GFLOPS
// (2 flops per multiply-add of the F(F-1)/2 dots) and ns per row.
// Run e.g.: go test -run=^$ -bench='InteractDot/' ./kernels/
func BenchmarkInteractDot(b *testing.B) {
	for _, s := range interactBenchShapes {
		b.Run(fmt.Sprintf("F=%d/D=%d", s[0], s[1]), func(b *testing.B) {
			benchInteract(b, s[0], s[1], InteractDot)
		})
	}
}

var interactBenchShapes = [][2]int{{27, 16}, {27, 64}, {27, 128}, {100, 64}}

// BenchmarkInteractDotImpl compares all implementations and the plain
// float32 loop InteractDot used before ("plain").
func BenchmarkInteractDotImpl(b *testing.B) {
	defer keepActive(interactDots)()
	names := append(interactDots.names(), "plain")
	for _, name := range names {
		for _, s := range interactBenchShapes[:3] {
			b.Run(fmt.Sprintf("%s/F=%d/D=%d", name, s[0], s[1]), func(b *testing.B) {
				fn := InteractDot
				if name == "plain" {
					fn = interactDotPlain
				} else {
					interactDots.set(name)
				}
				benchInteract(b, s[0], s[1], fn)
			})
		}
	}
}

func benchInteract(b *testing.B, f, d int, fn func([]float32, int, int, int, bool, []float32, int, int, int)) {
	const rows = 2048
	rng := rand.New(rand.NewPCG(5, 6))
	tt := make([]float32, rows*f*d)
	for i := range tt {
		tt[i] = rng.Float32() - 0.5
	}
	w := InteractWidth(f, d, false)
	out := make([]float32, rows*w)
	b.SetBytes(int64(4 * rows * f * d))
	for b.Loop() {
		fn(tt, f*d, f, d, false, out, w, 0, rows)
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(f*(f-1))*float64(d)*rows*float64(b.N)/sec/1e9, "GFLOPS")
	b.ReportMetric(sec*1e9/float64(b.N)/rows, "ns/row")
}
