package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/precision"
)

// mixedPartTable quantizes w (rows x dim) into a part of precision p:
// a row-wise BagTable or an MX table.
func mixedPartTable(t testing.TB, p precision.Precision, w []float32, rows, dim int) RowTable {
	t.Helper()
	if f, ok := MXFormatOf(p); ok {
		codes := make([]byte, rows*MXCodeBytes(f, dim))
		scales := make([]byte, rows*MXScales(dim))
		if err := QuantizeMXRows(f, "part", w, rows, dim, codes, scales); err != nil {
			t.Fatal(err)
		}
		mt, err := NewMXBagTable(f, int64(rows), dim, codes, scales)
		if err != nil {
			t.Fatal(err)
		}
		return mt
	}
	f, ok := TableFormatOf(p)
	if !ok {
		t.Fatalf("no table format for %v", p)
	}
	data := make([]byte, rows*f.RowBytes(dim))
	switch f {
	case TableF32:
		copy(data, F32Bytes(w[:rows*dim]))
	case TableF16:
		QuantizeRowsF16(w, rows, dim, data)
	case TableQ8:
		QuantizeRows8(w, rows, dim, data)
	default:
		QuantizeRowsN(f.Bits(), w, rows, dim, data)
	}
	bt, err := NewBagTable(f, int64(rows), dim, data)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// mixedTestTable makes a mixed table of rows x dim random values with
// about share of its rows hot (a random set), hot rows at hp, the rest at cp.
func mixedTestTable(t testing.TB, rng *rand.Rand, rows, dim int, share float64, hp, cp precision.Precision) (*MixedBagTable, []int64) {
	t.Helper()
	var hot []int64
	for r := range rows {
		if rng.Float64() < share {
			hot = append(hot, int64(r))
		}
	}
	hw := make([]float32, 0, len(hot)*dim)
	cw := make([]float32, 0, (rows-len(hot))*dim)
	for r := range rows {
		row := make([]float32, dim)
		scale := math.Pow(2, float64(rng.IntN(8)-4))
		for j := range row {
			row[j] = float32(rng.NormFloat64() * scale)
		}
		if _, ok := slices.BinarySearch(hot, int64(r)); ok {
			hw = append(hw, row...)
		} else {
			cw = append(cw, row...)
		}
	}
	mt, err := NewMixedBagTable(int64(rows), dim, hot, mixedPartTable(t, hp, hw, len(hot), dim), mixedPartTable(t, cp, cw, rows-len(hot), dim))
	if err != nil {
		t.Fatal(err)
	}
	return mt, hot
}

// mixedPairs are the part pairs the tests cover: every row-wise and MX
// format as the cold part under int8, and a few others.
func mixedPairs() [][2]precision.Precision {
	var out [][2]precision.Precision
	for _, p := range precision.Tables() {
		if p != precision.Mixed {
			out = append(out, [2]precision.Precision{precision.Int8, p})
		}
	}
	return append(out,
		[2]precision.Precision{precision.FP16, precision.Int2},
		[2]precision.Precision{precision.MXFP8E4M3, precision.MXFP4},
		[2]precision.Precision{precision.Int4, precision.MXFP6E2M3},
		[2]precision.Precision{precision.FP32, precision.Int4})
}

// TestMixedBagRows: DequantizeRows over any range gives each row from its
// part (hot rows from the hot part at their rank, the others from the
// cold part in order), HotRows rebuilds the ids, and Bytes counts both
// parts and the ids.
func TestMixedBagRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	for _, rows := range []int{1, 63, 64, 65, 511, 512, 513, 1500} {
		for _, pair := range mixedPairs()[:3] {
			dim := 1 + rng.IntN(40)
			mt, hot := mixedTestTable(t, rng, rows, dim, 0.3, pair[0], pair[1])
			if got := mt.HotRows(); !slices.Equal(got, hot) && len(hot) > 0 {
				t.Fatalf("rows %d: HotRows = %v, want %v", rows, got, hot)
			}
			want := make([]float32, rows*dim)
			hi, ci := 0, 0
			for r := range rows {
				if hi < len(hot) && hot[hi] == int64(r) {
					mt.Hot.DequantizeRows(int64(hi), 1, want[r*dim:(r+1)*dim])
					hi++
				} else {
					mt.Cold.DequantizeRows(int64(ci), 1, want[r*dim:(r+1)*dim])
					ci++
				}
			}
			for k := 0; k < 20; k++ {
				r0 := rng.IntN(rows)
				n := rng.IntN(rows - r0 + 1)
				got := make([]float32, n*dim)
				mt.DequantizeRows(int64(r0), n, got)
				if !sameBits(got, want[r0*dim:(r0+n)*dim]) {
					t.Fatalf("rows %d %v: DequantizeRows(%d, %d) differs from the parts' rows", rows, pair, r0, n)
				}
			}
			idb := int64(MixedHotIDBytes(int64(rows)))
			if b := mt.Bytes(); b != mt.Hot.Bytes()+mt.Cold.Bytes()+int64(len(hot))*idb || idb != 4 {
				t.Errorf("Bytes = %d, want %d + %d + %d·4", b, mt.Hot.Bytes(), mt.Cold.Bytes(), len(hot))
			}
			if !mt.Whole() || mt.HotCount() != int64(len(hot)) {
				t.Errorf("Whole %v, HotCount %d of %d", mt.Whole(), mt.HotCount(), len(hot))
			}
		}
	}
	if MixedHotIDBytes(1<<31) != 4 || MixedHotIDBytes(1<<31+1) != 8 {
		t.Error("hot ids: I32 up to 2^31 rows, I64 beyond")
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

// TestMixedBagPool: a mixed table pools bit for bit what the fp32 bag
// pools from its dequantized rows (under every implementation of the fp32
// bag), and what a plain loop of o[j] + float32(w·v[j]) gives; with and
// without weights, sum and mean, empty bags, and the output's guard
// columns and rows outside [lo, hi) untouched.
func TestMixedBagPool(t *testing.T) {
	defer keepActive(bagPools)()
	rng := rand.New(rand.NewPCG(21, 2))
	for _, pair := range mixedPairs() {
		for _, dim := range []int{16, 45, 50} {
			const rows = 700
			mt, _ := mixedTestTable(t, rng, rows, dim, 0.05, pair[0], pair[1])
			deq := make([]float32, rows*dim)
			mt.DequantizeRows(0, rows, deq)
			const nb = 40
			offsets := make([]int32, nb+1)
			var indices []int64
			for i := range nb {
				n := rng.IntN(6)
				if i%7 == 3 {
					n = 0 // empty bags
				}
				for range n {
					indices = append(indices, rng.Int64N(rows))
				}
				offsets[i+1] = int32(len(indices))
			}
			weights := make([]float32, len(indices))
			for i := range weights {
				weights[i] = float32(rng.NormFloat64())
			}
			for _, mean := range []bool{false, true} {
				for _, ws := range [][]float32{nil, weights} {
					what := fmt.Sprintf("%v/%v dim %d mean %v weighted %v", pair[0], pair[1], dim, mean, ws != nil)
					ldo, lo, hi := dim+3, 2, nb-1
					got := guarded(nb * ldo)
					mt.Mean = mean
					if p := mt.Pool(indices, offsets, ws, got, ldo, lo, hi); p != -1 {
						t.Fatalf("%s: Pool = %d", what, p)
					}
					// The prefetching loop (tables of 1 MiB and more) pools the same.
					mt.prefetch = true
					far := guarded(nb * ldo)
					mt.Pool(indices, offsets, ws, far, ldo, lo, hi)
					mt.prefetch = false
					if !sameBits(got, far) {
						t.Fatalf("%s: the prefetching loop pools otherwise", what)
					}
					// And the pure-Go accumulation (the assembly off) too.
					simd := mixedSIMD
					mixedSIMD = false
					goOut := guarded(nb * ldo)
					mt.Pool(indices, offsets, ws, goOut, ldo, lo, hi)
					mixedSIMD = simd
					if !sameBits(got, goOut) {
						t.Fatalf("%s: the Go and assembly accumulations differ", what)
					}
					plain := guarded(nb * ldo)
					for i := lo; i < hi; i++ {
						o := plain[i*ldo : i*ldo+dim]
						clear(o)
						for p := offsets[i]; p < offsets[i+1]; p++ {
							w := float32(1)
							if ws != nil {
								w = ws[p]
							}
							v := deq[indices[p]*int64(dim) : (indices[p]+1)*int64(dim)]
							for j := range o {
								o[j] = o[j] + float32(w*v[j])
							}
						}
						if n := offsets[i+1] - offsets[i]; mean && n > 0 {
							for j := range o {
								o[j] /= float32(n)
							}
						}
					}
					if !sameBits(got, plain) {
						t.Fatalf("%s: differs from the plain loop on the dequantized rows", what)
					}
					for _, impl := range bagPools.names() {
						mustSet(t, bagPools, impl)
						ref := guarded(nb * ldo)
						EmbeddingBag(TableF32, F32Bytes(deq), rows, dim, indices, offsets, ws, mean, ref, ldo, lo, hi)
						if !sameBits(got, ref) {
							t.Fatalf("%s: differs from the %s fp32 bag on the dequantized rows", what, impl)
						}
					}
				}
			}
			mt.Mean = false
		}
	}
}

// guarded is an output buffer of NaN guards (a pooled value is never
// this NaN's bits, so untouched places stay recognisable).
func guarded(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(0x7fc0dead)
	}
	return out
}

// TestMixedBagBadIndex: an id outside the table is reported at the same
// position the other bags report it, and nothing is written; offsets that
// are not bags panic as they do for EmbeddingBag.
func TestMixedBagBadIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 3))
	mt, _ := mixedTestTable(t, rng, 100, 8, 0.1, precision.Int8, precision.Int2)
	data := make([]byte, 100*TableQ8.RowBytes(8))
	for _, bad := range []int64{-1, 100, 1 << 40} {
		indices := []int64{1, 2, 3, bad, 4, bad}
		offsets := []int32{0, 2, 6}
		out := guarded(16)
		p := mt.Pool(indices, offsets, nil, out, 8, 0, 2)
		want := EmbeddingBag(TableQ8, data, 100, 8, indices, offsets, nil, false, guarded(16), 8, 0, 2)
		if p != 3 || p != want {
			t.Errorf("id %d: Pool = %d, EmbeddingBag %d; want 3", bad, p, want)
		}
		if !sameBits(out, guarded(16)) {
			t.Errorf("id %d: output written", bad)
		}
	}
	for _, c := range []struct {
		offsets []int32
		out     int
	}{{[]int32{0, 3, 2}, 16}, {[]int32{0, 1, 9}, 16}, {[]int32{0, 1, 2}, 10}} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "kernels.EmbeddingBag") {
					t.Errorf("offsets %v out %d: recovered %v, want EmbeddingBag's panic", c.offsets, c.out, r)
				}
			}()
			mt.Pool([]int64{1, 2, 3}, c.offsets, nil, make([]float32, c.out), 8, 0, 2)
		}()
	}
}

// TestMixedBagErrors: hot rows out of range, repeated or out of order,
// and parts of the wrong shape or kind are refused with the position.
func TestMixedBagErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 4))
	part := func(p precision.Precision, rows, dim int) RowTable {
		w := make([]float32, rows*dim)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		return mixedPartTable(t, p, w, rows, dim)
	}
	for _, c := range []struct {
		rows          []int64
		hotPart, cold RowTable
		want          string
	}{
		{[]int64{1, 5, 5}, part(precision.Int8, 3, 4), part(precision.Int2, 7, 4), "hot row 2 is id 5 after id 5: listed twice"},
		{[]int64{1, 5, 3}, part(precision.Int8, 3, 4), part(precision.Int2, 7, 4), "hot row 2 is id 3 after id 5: not increasing"},
		{[]int64{1, 10}, part(precision.Int8, 2, 4), part(precision.Int2, 8, 4), "hot row 1 is id 10, outside the table's rows 0..9"},
		{[]int64{-1}, part(precision.Int8, 1, 4), part(precision.Int2, 9, 4), "hot row 0 is id -1"},
		{[]int64{1, 2}, part(precision.Int8, 3, 4), part(precision.Int2, 8, 4), "hot part is 3 x 4 (whole true), want 2 x 4"},
		{[]int64{1, 2}, part(precision.Int8, 2, 4), part(precision.MXFP4, 8, 5), "cold part is 8 x 5 (whole true), want 8 x 4"},
		{[]int64{1, 2}, part(precision.Int8, 2, 4), nil, "no cold part"},
	} {
		_, err := NewMixedBagTable(10, 4, c.rows, c.hotPart, c.cold)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("hot %v: %v, want %q", c.rows, err, c.want)
		}
	}
}

// benchRowTable is a bench table of precision p (row-wise or MX) with
// cheap random contents (benchTable, benchMXTable).
func benchRowTable(p precision.Precision, rows, dim int) RowTable {
	if f, ok := MXFormatOf(p); ok {
		codes, scales := benchMXTable(f, rows, dim)
		return &MXBagTable{Format: f, Rows: int64(rows), Dim: dim, Codes: codes, Scales: scales}
	}
	f, _ := TableFormatOf(p)
	return &BagTable{Format: f, Rows: int64(rows), Dim: dim, Data: benchTable(f, rows, dim)}
}

// BenchmarkEmbeddingBagMixed pools 2048 bags of 1 or 20 lookups from
// mixed tables (5% of rows hot) beside the row-wise and MX tables of the
// parts' precisions, each with its best bag implementation, on the same
// shapes: 2^21 x 128 (every lookup a DRAM access, as BenchmarkEmbeddingBag),
// 2^21 x 16 (criteo's width) and 2048 x 128 (in L2: the decode's own
// cost). Lookups are uniform, or Zipf (s = 1.05) with the hot part holding
// the Zipf-hottest rows, as calibration would choose them. bytes/s counts
// the stored bytes of the rows pooled. Run e.g.:
//
//	go test -run=^$ -bench='EmbeddingBagMixed' ./kernels/
func BenchmarkEmbeddingBagMixed(b *testing.B) {
	const nb = 2048
	for _, c := range []struct {
		rows, dim, n int
		zipf         bool
	}{{benchRows, benchDim, 1, false}, {benchRows, benchDim, 20, false}, {benchRows, 16, 1, false}, {benchRows, 16, 1, true}, {2048, benchDim, 20, false}} {
		indices, offsets := benchBags(nb, c.n, c.rows, c.zipf)
		batch := nb * c.n
		dist := "uniform"
		if c.zipf {
			dist = "zipf"
		}
		pre := fmt.Sprintf("rows=%d/dim=%d/bag=%d/%s", c.rows, c.dim, c.n, dist)
		run := func(b *testing.B, rowBytes float64, pool func(idx []int64) int) {
			b.SetBytes(int64(float64(batch) * rowBytes))
			win := 0
			for b.Loop() {
				if win+batch > len(indices) {
					win = 0
				}
				if p := pool(indices[win : win+batch]); p >= 0 {
					b.Fatalf("bad index at %d", p)
				}
				win += batch
			}
			b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
		}
		out := make([]float32, nb*c.dim)
		for _, p := range []precision.Precision{precision.Int8, precision.Int2, precision.MXFP4} {
			rt := benchRowTable(p, c.rows, c.dim)
			b.Run(fmt.Sprintf("%s/%s", pre, p.TableLabel()), func(b *testing.B) {
				pool := rt.(interface {
					Pool([]int64, []int32, []float32, []float32, int, int, int) int
				})
				run(b, float64(rt.Bytes())/float64(c.rows), func(idx []int64) int {
					return pool.Pool(idx, offsets, nil, out, c.dim, 0, nb)
				})
			})
		}
		nHot := c.rows / 20
		hot := make([]int64, nHot)
		for k := range hot {
			hot[k] = int64(uint64(k)*2654435761) % int64(c.rows) // benchBags' Zipf ranks 0..nHot-1
		}
		slices.Sort(hot)
		hot = slices.Compact(hot)
		for _, pair := range [][2]precision.Precision{{precision.Int8, precision.Int2}, {precision.Int8, precision.MXFP4}} {
			mt, err := NewMixedBagTable(int64(c.rows), c.dim, hot, benchRowTable(pair[0], len(hot), c.dim), benchRowTable(pair[1], c.rows-len(hot), c.dim))
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/mixed-%s-%s@0.05", pre, pair[0], pair[1]), func(b *testing.B) {
				run(b, float64(mt.Bytes())/float64(c.rows), func(idx []int64) int {
					return mt.Pool(idx, offsets, nil, out, c.dim, 0, nb)
				})
			})
		}
	}
}

// TestMixedBagPoolShapes: every row-wise part pair and a few MX ones, at
// dims 1 to 129 (every count of 16-column units the kernels unroll, full
// and partial last units, the wide-row path past 128), hot shares 0, 1%,
// 50% and 100%, pool bit for bit as the plain loop on the dequantized rows
// does, with the assembly and without, prefetching or not; bags include
// empty ones and the table's last row, and the output's guard columns
// and rows stay untouched.
func TestMixedBagPoolShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 5))
	rw := []precision.Precision{precision.Int8, precision.Int4, precision.Int2, precision.FP16, precision.FP32}
	var pairs [][2]precision.Precision
	for _, h := range rw {
		for _, c := range rw {
			pairs = append(pairs, [2]precision.Precision{h, c})
		}
	}
	pairs = append(pairs, [2]precision.Precision{precision.Int8, precision.MXFP4}, [2]precision.Precision{precision.MXFP8E4M3, precision.Int2})
	dims := []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 63, 64, 65, 80, 95, 96, 100, 112, 113, 127, 128, 129}
	for _, pair := range pairs {
		for _, dim := range dims {
			share := []float64{0, 0.01, 0.5, 1}[rng.IntN(4)]
			rows := 64 + rng.IntN(200)
			mt, _ := mixedTestTable(t, rng, rows, dim, share, pair[0], pair[1])
			deq := make([]float32, rows*dim)
			mt.DequantizeRows(0, rows, deq)
			const nb = 12
			offsets := make([]int32, nb+1)
			var indices []int64
			for i := range nb {
				n := rng.IntN(5)
				if i%5 == 2 {
					n = 0
				}
				for k := range n {
					id := rng.Int64N(int64(rows))
					if k == 0 && i%3 == 0 {
						id = int64(rows - 1)
					}
					indices = append(indices, id)
				}
				offsets[i+1] = int32(len(indices))
			}
			weights := make([]float32, len(indices))
			for i := range weights {
				weights[i] = float32(rng.NormFloat64())
			}
			mean := rng.IntN(2) == 1
			for _, ws := range [][]float32{nil, weights} {
				what := fmt.Sprintf("%v/%v dim %d hot %v mean %v weighted %v", pair[0], pair[1], dim, share, mean, ws != nil)
				ldo, lo, hi := dim+5, 1, nb
				plain := guarded(nb * ldo)
				for i := lo; i < hi; i++ {
					o := plain[i*ldo : i*ldo+dim]
					clear(o)
					for p := offsets[i]; p < offsets[i+1]; p++ {
						w := float32(1)
						if ws != nil {
							w = ws[p]
						}
						v := deq[indices[p]*int64(dim) : (indices[p]+1)*int64(dim)]
						for j := range o {
							o[j] = o[j] + float32(w*v[j])
						}
					}
					if n := offsets[i+1] - offsets[i]; mean && n > 0 {
						for j := range o {
							o[j] /= float32(n)
						}
					}
				}
				mt.Mean = mean
				simd := mixedSIMD
				for _, asm := range []bool{true, false} {
					for _, far := range []bool{false, true} {
						mixedSIMD = asm && simd
						mt.prefetch = far
						got := guarded(nb * ldo)
						p := mt.Pool(indices, offsets, ws, got, ldo, lo, hi)
						mixedSIMD = simd
						if p != -1 || !sameBits(got, plain) {
							t.Fatalf("%s (assembly %v, prefetching %v): Pool = %d, differs from the plain loop", what, asm && simd, far, p)
						}
					}
				}
				mt.prefetch = false
			}
		}
	}
}

// TestMixedBagInt8Rows: int8 rows whose scale and bias are far apart in
// magnitude (exponents 0 to 40 apart either way, zero and -0 biases,
// subnormal scales) pool bit for bit as the Go code's double-precision
// decode, with the assembly (which takes float32 arithmetic only where it
// is provably the same) and without.
func TestMixedBagInt8Rows(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 6))
	for _, dim := range []int{5, 16, 29, 64, 128} {
		const rows = 300
		rb := TableQ8.RowBytes(dim)
		var hot []int64
		for r := 0; r < rows; r += 2 {
			hot = append(hot, int64(r))
		}
		data := make([]byte, len(hot)*rb)
		for i := range hot {
			row := data[i*rb : (i+1)*rb]
			for j := range dim {
				row[j] = byte(rng.IntN(256))
			}
			se := rng.IntN(60) - 30
			s := float32(math.Ldexp(1+rng.Float64(), se))
			b := float32(math.Ldexp(rng.Float64()*2-1, se+rng.IntN(81)-40))
			switch i % 13 {
			case 3:
				b = 0
			case 4:
				b = float32(math.Copysign(0, -1))
			case 5:
				s = math.Float32frombits(uint32(1 + rng.IntN(1<<20))) // subnormal
			case 6:
				s = float32(math.Ldexp(1, -20))
				b = float32(math.Ldexp(1+rng.Float64(), 1+rng.IntN(12))) // 21..32 apart
			case 7:
				// s·205 + 1 = 1 + 2^-24 + 2^-54 exactly: double rounds it to
				// the float32 midpoint 1 + 2^-24, then to 1 (ties to even),
				// where one float32 FMA gives 1 + 2^-23.
				s, b = float32(math.Ldexp(10475530, -55)), 1
				for j := range dim {
					row[j] = 205
				}
			}
			binary.LittleEndian.PutUint32(row[dim:], math.Float32bits(s))
			binary.LittleEndian.PutUint32(row[dim+4:], math.Float32bits(b))
		}
		ht, err := NewBagTable(TableQ8, int64(len(hot)), dim, data)
		if err != nil {
			t.Fatal(err)
		}
		cw := make([]float32, (rows-len(hot))*dim)
		for i := range cw {
			cw[i] = float32(rng.NormFloat64())
		}
		mt, err := NewMixedBagTable(rows, dim, hot, ht, mixedPartTable(t, precision.Int2, cw, rows-len(hot), dim))
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, rows*dim)
		mt.DequantizeRows(0, rows, deq)
		indices := make([]int64, 3*rows)
		offsets := make([]int32, rows+1)
		weights := make([]float32, len(indices))
		for i := range indices {
			indices[i] = int64(i % rows)
			weights[i] = float32(rng.NormFloat64())
		}
		for i := range offsets {
			offsets[i] = int32(3 * i)
		}
		for _, ws := range [][]float32{nil, weights} {
			plain := make([]float32, rows*dim)
			for i := range rows {
				o := plain[i*dim : (i+1)*dim]
				for p := offsets[i]; p < offsets[i+1]; p++ {
					w := float32(1)
					if ws != nil {
						w = ws[p]
					}
					v := deq[indices[p]*int64(dim):]
					for j := range o {
						o[j] = o[j] + float32(w*v[j])
					}
				}
			}
			simd := mixedSIMD
			for _, asm := range []bool{true, false} {
				mixedSIMD = asm && simd
				got := make([]float32, rows*dim)
				mt.Pool(indices, offsets, ws, got, dim, 0, rows)
				mixedSIMD = simd
				if !sameBits(got, plain) {
					t.Fatalf("dim %d weighted %v assembly %v: differs from the plain loop", dim, ws != nil, asm && simd)
				}
			}
		}
	}
}
