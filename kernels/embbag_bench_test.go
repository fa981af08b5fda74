package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Benchmark tables: 2^21 rows of dim 128 in every format (fp32 1 GiB, fp16
// 512 MiB, 8-bit 272 MiB, 4-bit 136 MiB, 2-bit 72 MiB), far larger than any
// cache, so a lookup is a DRAM access, as for DLRM's big tables; built once
// per process and shared by the benchmarks.
const (
	benchRows = 1 << 21
	benchDim  = 128
)

var benchTables sync.Map // TableFormat -> []byte

// benchTable fills a table with valid rows cheaply (no quantizer pass over
// 2^28 values): normal floats, random codes with a normal scale and bias.
func benchTable(f TableFormat, rows, dim int) []byte {
	key := fmt.Sprint(f, rows, dim)
	if t, ok := benchTables.Load(key); ok {
		return t.([]byte)
	}
	rb := f.RowBytes(dim)
	t := make([]byte, rows*rb)
	x := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { // xorshift: fast, good enough for codes
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	for r := 0; r < rows; r++ {
		row := t[r*rb : (r+1)*rb]
		switch f {
		case TableF32:
			for j := 0; j < dim; j++ {
				binary.LittleEndian.PutUint32(row[4*j:], math.Float32bits(float32(next()%2000)/1000-1))
			}
		case TableF16:
			for j := 0; j < dim; j++ {
				binary.LittleEndian.PutUint16(row[2*j:], F32ToF16(float32(next()%2000)/1000-1))
			}
		default:
			db := f.dataBytes(dim)
			for j := 0; j < db; j += 8 {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], next())
				copy(row[j:db], b[:])
			}
			if f == TableQ8 {
				binary.LittleEndian.PutUint32(row[db:], math.Float32bits(0.01))
				binary.LittleEndian.PutUint32(row[db+4:], math.Float32bits(-1))
			} else {
				binary.LittleEndian.PutUint16(row[db:], F32ToF16(0.1))
				binary.LittleEndian.PutUint16(row[db+2:], F32ToF16(-1))
			}
		}
	}
	actual, _ := benchTables.LoadOrStore(key, t)
	return actual.([]byte)
}

// benchPool is how many lookups the benchmarks cycle through: a batch
// uses the next window of the pool, so successive iterations touch
// different rows (reusing one batch would pool from cache after the first
// iteration: 2048 rows of 512 bytes fit in L2).
const benchPool = 1 << 22

// benchBags returns the index pool and the offsets of nb bags of n indices
// each into rows rows, uniform or Zipf-distributed (s = 1.05, like the skew
// of click-log categorical features; hot rows then hit in cache).
func benchBags(nb, n, rows int, zipf bool) ([]int64, []int32) {
	rng := rand.New(rand.NewPCG(11, 12))
	z := rand.NewZipf(rng, 1.05, 1, uint64(rows-1))
	indices := make([]int64, max(benchPool, nb*n))
	for i := range indices {
		if zipf {
			// Scatter the hot ranks over the table rather than packing them
			// at its start.
			indices[i] = int64(z.Uint64()*2654435761) % int64(rows)
		} else {
			indices[i] = rng.Int64N(int64(rows))
		}
	}
	offsets := make([]int32, nb+1)
	for i := range offsets { // the same offsets serve every window
		offsets[i] = int32(i * n)
	}
	return indices, offsets
}

// BenchmarkEmbeddingBag pools a batch of 2048 bags of 1 or 20 indices from
// the 2^21 x 128 tables with the best implementation, single-threaded, and
// reports lookups (rows pooled) per second and the table bytes they touch
// per second. Run e.g.:
//
//	go test -run=^$ -bench='EmbeddingBag/' ./kernels/
func BenchmarkEmbeddingBag(b *testing.B) {
	for _, dist := range []string{"uniform", "zipf"} {
		for _, n := range []int{1, 20} {
			for _, f := range allFormats {
				b.Run(fmt.Sprintf("%s/bag=%d/%v", dist, n, f), func(b *testing.B) {
					benchBag(b, f, benchRows, benchDim, 2048, n, dist == "zipf")
				})
			}
		}
	}
}

// BenchmarkEmbeddingBagImpl compares the implementations on 20-index bags,
// from the big tables and from small ones that stay in L2 (compute-bound).
func BenchmarkEmbeddingBagImpl(b *testing.B) {
	defer keepActive(bagPools)()
	for _, name := range bagPools.names() {
		for _, rows := range []int{benchRows, 2048} {
			for _, f := range allFormats {
				b.Run(fmt.Sprintf("%s/rows=%d/%v", name, rows, f), func(b *testing.B) {
					mustSet(b, bagPools, name)
					benchBag(b, f, rows, benchDim, 2048, 20, false)
				})
			}
		}
	}
}

func benchBag(b *testing.B, f TableFormat, rows, dim, nb, n int, zipf bool) {
	table := benchTable(f, rows, dim)
	indices, offsets := benchBags(nb, n, rows, zipf)
	out := make([]float32, nb*dim)
	rb := f.RowBytes(dim)
	batch := nb * n
	b.SetBytes(int64(batch * rb))
	win := 0
	for b.Loop() {
		if win+batch > len(indices) {
			win = 0
		}
		if p := EmbeddingBag(f, table, int64(rows), dim, indices[win:win+batch], offsets, nil, false, out, dim, 0, nb); p >= 0 {
			b.Fatalf("bad index at %d", p)
		}
		win += batch
	}
	lookups := float64(batch) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(lookups/1e6, "Mrows/s")
}

// BenchmarkEmbeddingBagCompare measures all formats in alternation, many
// short rounds each, and reports the best round of each (rows/s) and the
// quantized formats' throughput relative to fp32: on a machine shared with
// other jobs, best-of-alternating is far more stable than one long run per
// format. Run with -benchtime=1x.
func BenchmarkEmbeddingBagCompare(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("bag=%d", n), func(b *testing.B) {
			const nb = 2048
			batch := nb * n
			indices, offsets := benchBags(nb, n, benchRows, false)
			out := make([]float32, nb*benchDim)
			tables := make([][]byte, len(allFormats))
			for i, f := range allFormats {
				tables[i] = benchTable(f, benchRows, benchDim)
			}
			// Batches per timed round: 2^18 lookups, so each round reaches the
			// steady state of one table (its page-table entries cached as far as
			// they fit) rather than measuring the switch between tables.
			perRound := max(1, 1<<18/batch)
			best := make([]float64, len(allFormats))
			win := 0
			for b.Loop() {
				for round := 0; round < 12; round++ {
					for i, f := range allFormats {
						// One untimed batch first: the switch from the previous table.
						EmbeddingBag(f, tables[i], benchRows, benchDim, indices[:batch], offsets, nil, false, out, benchDim, 0, nb)
						start := time.Now()
						for k := 0; k < perRound; k++ {
							if win+batch > len(indices) {
								win = 0
							}
							EmbeddingBag(f, tables[i], benchRows, benchDim, indices[win:win+batch], offsets, nil, false, out, benchDim, 0, nb)
							win += batch
						}
						rate := float64(perRound*batch) / time.Since(start).Seconds()
						best[i] = max(best[i], rate)
					}
				}
			}
			for i, f := range allFormats {
				b.ReportMetric(best[i]/1e6, f.String()+"-Mrows/s")
				if f != TableF32 {
					b.ReportMetric(best[i]/best[0], f.String()+"/fp32")
				}
			}
		})
	}
}
