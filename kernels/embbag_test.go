package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rqtools/rq/precision"
)

// refElem decodes element j of a stored row: for fp32/fp16 the value (q
// unused), for quantized rows the code and the row's scale and bias. It is
// written independently of the package's decoders.
func refElem(f TableFormat, row []byte, dim, j int) (v float32, q int, s, b float32) {
	switch f {
	case TableF32:
		return math.Float32frombits(binary.LittleEndian.Uint32(row[4*j:])), 0, 0, 0
	case TableF16:
		return F16ToF32(binary.LittleEndian.Uint16(row[2*j:])), 0, 0, 0
	case TableQ8:
		s = math.Float32frombits(binary.LittleEndian.Uint32(row[dim:]))
		b = math.Float32frombits(binary.LittleEndian.Uint32(row[dim+4:]))
		return 0, int(row[j]), s, b
	}
	bits := f.Bits()
	per := 8 / bits
	nb := (dim + per - 1) / per
	s = F16ToF32(binary.LittleEndian.Uint16(row[nb:]))
	b = F16ToF32(binary.LittleEndian.Uint16(row[nb+2:]))
	q = int(row[j/per]>>(bits*(j%per))) & (1<<bits - 1)
	return 0, q, s, b
}

// bagRef is the reference pooling, EmbeddingBag's documented formulas
// element by element (the quantized fma through math.FMA in double, then
// rounded, as PyTorch does). It also returns, per output element, a bound
// on the magnitudes summed, for the SIMD kernels' float32-FMA tolerance.
func bagRef(f TableFormat, table []byte, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out, mag []float32, ldo, lo, hi int) {
	rb := f.RowBytes(dim)
	for i := lo; i < hi; i++ {
		for j := 0; j < dim; j++ {
			var o, m float32
			for p := offsets[i]; p < offsets[i+1]; p++ {
				w := float32(1)
				if weights != nil {
					w = weights[p]
				}
				row := table[int(indices[p])*rb:]
				v, q, s, b := refElem(f, row, dim, j)
				if f == TableF32 || f == TableF16 {
					o = o + float32(w*v)
					m += float32(math.Abs(float64(w * v)))
					continue
				}
				ws, wb := float32(w*s), float32(w*b)
				o = float32(math.FMA(float64(ws), float64(q), float64(o+wb)))
				m += float32(math.Abs(float64(ws))*float64(q) + math.Abs(float64(wb)))
			}
			if n := offsets[i+1] - offsets[i]; mean && n > 0 {
				o /= float32(n)
			}
			out[i*ldo+j] = o
			if mag != nil {
				mag[i*ldo+j] = m
			}
		}
	}
}

// guard is the NaN payload the tests prefill outputs with, to detect stray
// writes (no computed value is this exact NaN).
const guard = 0x7fc0dead

// randomTable returns rows x dim random values of assorted magnitudes,
// stored in format f.
func randomTable(rng *rand.Rand, f TableFormat, rows, dim int) []byte {
	w := make([]float32, rows*dim)
	for r := 0; r < rows; r++ {
		scale := math.Pow(10, float64(rng.IntN(5)-3))
		shift := (rng.Float64() - 0.5) * scale * 4
		for j := 0; j < dim; j++ {
			w[r*dim+j] = float32(rng.NormFloat64()*scale + shift)
		}
	}
	data := make([]byte, rows*f.RowBytes(dim))
	switch f {
	case TableF32:
		copy(data, F32Bytes(w))
	case TableF16:
		QuantizeRowsF16(w, rows, dim, data)
	case TableQ8:
		QuantizeRows8(w, rows, dim, data)
	default:
		QuantizeRowsN(f.Bits(), w, rows, dim, data)
	}
	return data
}

// randomBags returns nb bags of 0..maxLen indices into rows rows.
func randomBags(rng *rand.Rand, nb, maxLen int, rows int64) ([]int64, []int32) {
	offsets := make([]int32, nb+1)
	var indices []int64
	for i := 0; i < nb; i++ {
		n := rng.IntN(maxLen + 1)
		for k := 0; k < n; k++ {
			indices = append(indices, rng.Int64N(rows))
		}
		offsets[i+1] = int32(len(indices))
	}
	return indices, offsets
}

var allFormats = []TableFormat{TableF32, TableF16, TableQ8, TableQ4, TableQ2}

// checkBagOutput compares an implementation's output with the reference:
// fp32/fp16 and the Go implementation exactly, the SIMD quantized kernels
// within the float32-FMA bound of EmbeddingBag's doc (one ulp of the
// magnitudes summed per index, which is far looser than what they achieve:
// at most 1% of elements may differ at all). Guard columns and rows outside
// [lo, hi) must keep the guard NaN.
func checkBagOutput(t *testing.T, f TableFormat, dim, ldo, lo, hi int, offsets []int32, got, want, mag []float32, what string) {
	t.Helper()
	exact := f == TableF32 || f == TableF16 || bagPools.name() == "go"
	diff, bad := 0, 0
	for i := 0; i < len(got)/ldo; i++ {
		for j := 0; j < ldo; j++ {
			g := got[i*ldo+j]
			if i < lo || i >= hi || j >= dim {
				if math.Float32bits(g) != guard {
					t.Fatalf("%s: wrote outside the bags' outputs at row %d col %d: %v", what, i, j, g)
				}
				continue
			}
			w := want[i*ldo+j]
			if sameFloat(g, w) {
				continue
			}
			diff++
			n := float64(offsets[i+1] - offsets[i])
			tol := (n + 1) * float64(mag[i*ldo+j]) * 0x1p-23
			if exact || !(math.Abs(float64(g)-float64(w)) <= tol) {
				if bad++; bad <= 5 {
					t.Errorf("%s: bag %d col %d: %v (%#x), want %v (%#x), tolerance %g", what, i, j, g, math.Float32bits(g), w, math.Float32bits(w), tol)
				}
			}
		}
	}
	if total := (hi - lo) * dim; diff*100 > total && total >= 100 {
		t.Errorf("%s: %d of %d elements differ from the reference", what, diff, total)
	} else if diff > 0 {
		t.Logf("%s: %d of %d elements differ from the reference (float32 vs double-rounded FMA), within tolerance", what, diff, total)
	}
}

func fillGuard(out []float32) {
	for i := range out {
		out[i] = math.Float32frombits(guard)
	}
}

// TestEmbeddingBagImpls runs every implementation against bagRef on every
// format, dims 1..67 plus chunked widths, bags of 0..5 indices, with and
// without weights, sum and mean, strided outputs with guard columns, and a
// bag range not starting at 0.
func TestEmbeddingBagImpls(t *testing.T) {
	dims := []int{}
	for d := 1; d <= 67; d++ {
		dims = append(dims, d)
	}
	dims = append(dims, 96, 127, 128, 129, 130, 200, 256, 300)
	forEachImplOf(t, bagPools, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, f := range allFormats {
			for _, dim := range dims {
				const rows, nb = 37, 13
				table := randomTable(rng, f, rows, dim)
				indices, offsets := randomBags(rng, nb, 5, rows)
				weights := make([]float32, len(indices))
				for i := range weights {
					weights[i] = float32(rng.NormFloat64())
				}
				ldo := dim + 3
				for _, weighted := range []bool{false, true} {
					for _, mean := range []bool{false, true} {
						var w []float32
						if weighted {
							w = weights
						}
						lo, hi := 2, nb
						got := make([]float32, nb*ldo)
						want := make([]float32, nb*ldo)
						mag := make([]float32, nb*ldo)
						fillGuard(got)
						bagRef(f, table, dim, indices, offsets, w, mean, want, mag, ldo, lo, hi)
						if p := EmbeddingBag(f, table, rows, dim, indices, offsets, w, mean, got, ldo, lo, hi); p != -1 {
							t.Fatalf("reported bad index at %d", p)
						}
						checkBagOutput(t, f, dim, ldo, lo, hi, offsets, got, want, mag,
							fmt.Sprintf("%v dim %d weighted=%v mean=%v", f, dim, weighted, mean))
					}
				}
			}
		}
	})
}

// TestEmbeddingBagBatch pools DLRM-like batches (many bags, the
// single-call path with prefetching across bags) and bags split at
// arbitrary points: results must not depend on the split.
func TestEmbeddingBagBatch(t *testing.T) {
	forEachImplOf(t, bagPools, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, f := range allFormats {
			for _, dim := range []int{16, 64, 128, 200} {
				const rows, nb = 5000, 300
				table := randomTable(rng, f, rows, dim)
				indices, offsets := randomBags(rng, nb, 25, rows)
				whole := make([]float32, nb*dim)
				fillGuard(whole)
				want := make([]float32, nb*dim)
				mag := make([]float32, nb*dim)
				bagRef(f, table, dim, indices, offsets, nil, false, want, mag, dim, 0, nb)
				if p := EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, whole, dim, 0, nb); p != -1 {
					t.Fatalf("bad index at %d", p)
				}
				checkBagOutput(t, f, dim, dim, 0, nb, offsets, whole, want, mag, fmt.Sprintf("%v dim %d", f, dim))
				split := make([]float32, nb*dim)
				for lo := 0; lo < nb; {
					hi := min(nb, lo+1+rng.IntN(40))
					EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, split, dim, lo, hi)
					lo = hi
				}
				for i := range split {
					if math.Float32bits(split[i]) != math.Float32bits(whole[i]) {
						t.Fatalf("%v dim %d: element %d differs between one call (%v) and split calls (%v)", f, dim, i, whole[i], split[i])
					}
				}
			}
		}
	})
}

// TestEmbeddingBagBadIndex checks the first out-of-range position is
// reported and nothing is written.
func TestEmbeddingBagBadIndex(t *testing.T) {
	forEachImplOf(t, bagPools, func(t *testing.T) {
		for _, f := range allFormats {
			const rows, dim = 5, 19
			table := make([]byte, rows*f.RowBytes(dim))
			indices := []int64{0, 1, 4, 5, 2, -1, 7}
			offsets := []int32{0, 2, 3, 5, 7}
			out := make([]float32, 4*dim)
			fillGuard(out)
			if p := EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, out, dim, 0, 4); p != 3 {
				t.Errorf("%v: index 5 of a 5-row table at position 3: reported %d", f, p)
			}
			if p := EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, out, dim, 3, 4); p != 5 {
				t.Errorf("%v: index -1 at position 5 (bags 3..4): reported %d", f, p)
			}
			if p := EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, out, dim, 0, 2); p != -1 {
				t.Errorf("%v: bags 0..2 are valid, reported %d", f, p)
			}
			for i, v := range out[2*dim:] {
				if math.Float32bits(v) != guard {
					t.Fatalf("%v: output %d written despite a bad index", f, 2*dim+i)
				}
			}
			if p := EmbeddingBag(f, nil, 0, dim, []int64{0}, []int32{0, 1}, nil, false, out, dim, 0, 1); p != 0 {
				t.Errorf("%v: empty table: reported %d", f, p)
			}
		}
	})
}

// TestEmbeddingBagPyTorch pools PyTorch's bag vectors (multi-hot bags, with
// and without per-sample weights): the Go implementation must match
// bit for bit, the SIMD ones within their bound.
func TestEmbeddingBagPyTorch(t *testing.T) {
	v, bin := loadPTVectors(t)
	forEachImplOf(t, bagPools, func(t *testing.T) {
		n := 0
		for _, c := range v.Cases {
			if c.Kind != "bag" {
				continue
			}
			n++
			f := c.format()
			table := ptBytes(t, bin, c.Packed, 1)
			indices := ptI64(t, bin, c.Indices)
			offsets := ptI32(t, bin, c.Offsets)
			want := ptF32(t, bin, c.Out)
			var weights []float32
			if c.Weights != nil {
				weights = ptF32(t, bin, *c.Weights)
			}
			nb := len(offsets) - 1
			if !CheckBags(offsets, nb, len(indices)) || len(want) != nb*c.Dim {
				t.Fatalf("%s: inconsistent case", c.Name)
			}
			got := make([]float32, nb*c.Dim)
			if p := EmbeddingBag(f, table, int64(c.Rows), c.Dim, indices, offsets, weights, false, got, c.Dim, 0, nb); p != -1 {
				t.Fatalf("%s: bad index at %d", c.Name, p)
			}
			ref := make([]float32, nb*c.Dim)
			mag := make([]float32, nb*c.Dim)
			bagRef(f, table, c.Dim, indices, offsets, weights, false, ref, mag, c.Dim, 0, nb)
			for i := range ref {
				if !sameFloat(ref[i], want[i]) {
					t.Fatalf("%s: the reference itself differs from PyTorch at %d: %v vs %v", c.Name, i, ref[i], want[i])
				}
			}
			checkBagOutput(t, f, c.Dim, c.Dim, 0, nb, offsets, got, want, mag, c.Name)
		}
		if n == 0 {
			t.Fatal("no bag cases in the vectors")
		}
	})
}

// TestEmbeddingBagSpecialRows pools rows with Inf/NaN scales and values:
// every implementation must agree with the reference (NaN where it has NaN).
func TestEmbeddingBagSpecialRows(t *testing.T) {
	v, bin := loadPTVectors(t)
	forEachImplOf(t, bagPools, func(t *testing.T) {
		for _, c := range v.Cases {
			if c.Kind != "table" {
				continue
			}
			f := c.format()
			table := ptBytes(t, bin, c.Packed, 1)
			nb := c.Rows
			indices := make([]int64, nb)
			offsets := make([]int32, nb+1)
			for i := range indices {
				indices[i] = int64(i)
				offsets[i+1] = int32(i + 1)
			}
			got := make([]float32, nb*c.Dim)
			EmbeddingBag(f, table, int64(c.Rows), c.Dim, indices, offsets, nil, false, got, c.Dim, 0, nb)
			want := make([]float32, nb*c.Dim)
			bagRef(f, table, c.Dim, indices, offsets, nil, false, want, nil, c.Dim, 0, nb)
			for i := range want {
				if !sameFloat(got[i], want[i]) {
					// Single-index bags: fma(s, q, b) of one row cannot double-round
					// differently unless s*q and b are ~30 binades apart.
					if f == TableF32 || f == TableF16 || math.Abs(float64(got[i]-want[i])) > math.Abs(float64(want[i]))*0x1p-22 {
						t.Errorf("%s row %d col %d: %v, want %v", c.Name, i/c.Dim, i%c.Dim, got[i], want[i])
					}
				}
			}
		}
	})
}

func TestEmbeddingBagPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	table := make([]byte, 4*TableQ8.RowBytes(3))
	idx := []int64{0, 1, 2}
	off := []int32{0, 1, 3}
	out := make([]float32, 6)
	mustPanic("format", func() { EmbeddingBag(0, table, 4, 3, idx, off, nil, false, out, 3, 0, 2) })
	mustPanic("short table", func() { EmbeddingBag(TableQ8, table, 5, 3, idx, off, nil, false, out, 3, 0, 2) })
	mustPanic("hi", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, off, nil, false, out, 3, 0, 3) })
	mustPanic("decreasing", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, []int32{0, 2, 1}, nil, false, out, 3, 0, 2) })
	mustPanic("offsets past indices", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, []int32{0, 1, 4}, nil, false, out, 3, 0, 2) })
	mustPanic("weights", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, off, []float32{1}, false, out, 3, 0, 2) })
	mustPanic("short out", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, off, nil, false, out[:5], 3, 0, 2) })
	mustPanic("ldo", func() { EmbeddingBag(TableQ8, table, 4, 3, idx, off, nil, false, out, 2, 0, 2) })
}

func TestBagTable(t *testing.T) {
	data := make([]byte, 3*TableQ4.RowBytes(6))
	if _, err := NewBagTable(TableQ4, 4, 6, data); err == nil {
		t.Error("NewBagTable accepted 3 rows of data for 4")
	}
	if _, err := NewBagTable(TableFormat(7), 3, 6, data); err == nil {
		t.Error("NewBagTable accepted an invalid format")
	}
	bt, err := NewBagTable(TableQ4, 3, 6, data)
	if err != nil {
		t.Fatal(err)
	}
	if bt.Precision() != precision.Int4 || bt.Format.String() != "int4-rowwise" || bt.Bytes() != int64(len(data)) {
		t.Errorf("Precision %v (%s) Bytes %d", bt.Precision(), bt.Format, bt.Bytes())
	}
	out := make([]float32, 6)
	if p := bt.Pool([]int64{3}, []int32{0, 1}, nil, out, 6, 0, 1); p != 0 {
		t.Errorf("Pool of row 3 in a 3-row table: %d", p)
	}
}

func TestEmbeddingBagF32(t *testing.T) {
	const rows, dim = 5, 3
	table := make([]float32, rows*dim)
	for i := range table {
		table[i] = float32(i) * 0.5
	}
	indices := []int64{4, 0, 0, 2, 1}
	offsets := []int32{0, 1, 1, 3, 5} // bags: {4}, {}, {0,0}, {2,1}
	weights := []float32{2, 1, 3, -1, 1}
	const ldo = 5 // wider than dim: a guard column between rows
	for _, weighted := range []bool{false, true} {
		out := make([]float32, 4*ldo)
		for i := range out {
			out[i] = float32(math.NaN())
		}
		var w []float32
		if weighted {
			w = weights
		}
		if p := EmbeddingBagF32(table, rows, dim, indices, offsets, w, out, ldo, 0, 4); p != -1 {
			t.Fatalf("reported bad index at %d", p)
		}
		for b := 0; b < 4; b++ {
			for j := 0; j < dim; j++ {
				var want float32
				for p := offsets[b]; p < offsets[b+1]; p++ {
					f := float32(1)
					if weighted {
						f = weights[p]
					}
					want += f * table[indices[p]*dim+int64(j)]
				}
				if got := out[b*ldo+j]; got != want {
					t.Errorf("weighted=%v bag %d col %d: %v, want %v", weighted, b, j, got, want)
				}
			}
			for j := dim; j < ldo; j++ {
				if !math.IsNaN(float64(out[b*ldo+j])) {
					t.Errorf("guard column %d of row %d written", j, b)
				}
			}
		}
	}
	out := make([]float32, 4*ldo)
	if p := EmbeddingBagF32(table, rows, dim, []int64{1, 5}, []int32{0, 1, 2}, nil, out, ldo, 0, 2); p != 1 {
		t.Errorf("index 5 of a 5-row table: reported position %d, want 1", p)
	}
	if p := EmbeddingBagF32(table, rows, dim, []int64{-1}, []int32{0, 1}, nil, out, ldo, 0, 1); p != 0 {
		t.Errorf("index -1: reported position %d, want 0", p)
	}
}

func TestCheckBags(t *testing.T) {
	cases := []struct {
		off     []int32
		n, nIdx int
		ok      bool
	}{
		{[]int32{0, 1, 2}, 2, 2, true},
		{[]int32{0, 0, 0}, 2, 0, true},
		{[]int32{0, 2, 1}, 2, 1, false}, // decreasing
		{[]int32{1, 2, 3}, 2, 3, false}, // not from 0
		{[]int32{0, 1, 2}, 2, 3, false}, // does not end at nIdx
		{[]int32{0, 1}, 2, 1, false},    // too short
		{nil, -1, 0, false},             // negative count
	}
	for _, c := range cases {
		if got := CheckBags(c.off, c.n, c.nIdx); got != c.ok {
			t.Errorf("CheckBags(%v, %d, %d) = %v", c.off, c.n, c.nIdx, got)
		}
	}
}

// FuzzEmbeddingBag pools arbitrary table bytes (any scale, bias, NaN, Inf)
// with arbitrary bags on every implementation: no panic, no write outside
// the bags' rows, bad indices reported, and all implementations agreeing
// with the reference (exactly for fp32/fp16 and Go; for SIMD quantized
// kernels within the float32-FMA bound of EmbeddingBag's doc).
func FuzzEmbeddingBag(f *testing.F) {
	// Seeds: the PyTorch-packed tables of testdata/rowwise (rows with NaN,
	// Inf, huge and tiny scales), pooled as bags {0, 1} and {2}.
	v, bin := loadPTVectors(f)
	for _, c := range v.Cases {
		if c.Kind == "table" && c.Rows >= 3 {
			fsel := 0
			for i, fm := range allFormats {
				if fm == c.format() {
					fsel = i
				}
			}
			packed := ptBytes(f, bin, c.Packed, 1)
			f.Add(packed[:3*c.format().RowBytes(c.Dim)], []byte{2, 0, 1, 1, 2}, uint8(c.Dim-1), uint8(fsel), uint8(1))
		}
	}
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14"), []byte{0, 1, 2, 1, 0}, uint8(5), uint8(2), uint8(0))
	f.Add(make([]byte, 300), []byte{3, 3, 0, 9, 1}, uint8(33), uint8(7), uint8(3))
	f.Fuzz(func(t *testing.T, tbl []byte, bagSpec []byte, dim8, fsel, flags uint8) {
		fm := allFormats[int(fsel)%len(allFormats)]
		dim := int(dim8)%150 + 1
		rb := fm.RowBytes(dim)
		rows := int64(len(tbl) / rb)
		table := tbl[:int(rows)*rb]
		// bagSpec: pairs (length, index byte...) decoded into bags.
		var indices []int64
		offsets := []int32{0}
		for i := 0; i < len(bagSpec) && len(offsets) < 20; {
			n := int(bagSpec[i] % 6)
			i++
			for k := 0; k < n && i < len(bagSpec); k++ {
				indices = append(indices, int64(int8(bagSpec[i]))) // may be negative or too big
				i++
			}
			offsets = append(offsets, int32(len(indices)))
		}
		nb := len(offsets) - 1
		var weights []float32
		if flags&1 != 0 {
			weights = make([]float32, len(indices))
			for i := range weights {
				weights[i] = float32(i%5) - 1.5
			}
		}
		mean := flags&2 != 0
		ldo := dim + int(flags>>2&3)
		want := make([]float32, nb*ldo)
		mag := make([]float32, nb*ldo)
		wantBad := -1
		for p, ix := range indices {
			if ix < 0 || ix >= rows {
				wantBad = p
				break
			}
		}
		if wantBad < 0 {
			bagRef(fm, table, dim, indices, offsets, weights, mean, want, mag, ldo, 0, nb)
		}
		defer keepActive(bagPools)()
		for _, name := range bagPools.names() {
			mustSet(t, bagPools, name)
			got := make([]float32, nb*ldo)
			fillGuard(got)
			p := EmbeddingBag(fm, table, rows, dim, indices, offsets, weights, mean, got, ldo, 0, nb)
			if p != wantBad {
				t.Fatalf("%s: bad index reported at %d, want %d", name, p, wantBad)
			}
			for i := 0; i < nb; i++ {
				for j := 0; j < ldo; j++ {
					g := got[i*ldo+j]
					if j >= dim || wantBad >= 0 {
						if math.Float32bits(g) != guard {
							t.Fatalf("%s: stray write at bag %d col %d", name, i, j)
						}
						continue
					}
					w := want[i*ldo+j]
					if sameFloat(g, w) {
						continue
					}
					n := float64(offsets[i+1] - offsets[i])
					tol := (n + 1) * float64(mag[i*ldo+j]) * 0x1p-23
					if fm == TableF32 || fm == TableF16 || name == "go" || (g != g) != (w != w) ||
						!(math.Abs(float64(g)-float64(w)) <= tol) {
						t.Fatalf("%s %v dim %d: bag %d col %d: %v, want %v", name, fm, dim, i, j, g, w)
					}
				}
			}
		}
	})
}

func TestInteractDot(t *testing.T) {
	const f, d = 3, 2
	// One row: vectors (1,2), (3,4), (5,6).
	tt := []float32{1, 2, 3, 4, 5, 6}
	out := make([]float32, d+6)
	InteractDot(tt, f*d, f, d, false, out, len(out), 0, 1)
	want := []float32{1, 2, 1*3 + 2*4, 1*5 + 2*6, 3*5 + 4*6}
	for i, w := range want {
		if out[i] != w {
			t.Errorf("dot: out[%d] = %v, want %v", i, out[i], w)
		}
	}
	InteractDot(tt, f*d, f, d, true, out, len(out), 0, 1)
	want = []float32{1, 2, 1 + 4, 11, 9 + 16, 17, 39, 25 + 36}
	for i, w := range want {
		if out[i] != w {
			t.Errorf("self: out[%d] = %v, want %v", i, out[i], w)
		}
	}
}

// TestEmbeddingBagDoubleRounding pins the one documented difference between
// the implementations: a row whose exact s*q + b lies just above a float32
// tie but within half a double ulp of it. PyTorch (and the Go code) round
// the double fma to the tie and then to even, 1.0; a float32 FMA rounds
// once, up to 1+2^-23. (s*q = 2^-24 + 2^-54 with s = 16519105*2^-55, q = 130.)
func TestEmbeddingBagDoubleRounding(t *testing.T) {
	row := make([]byte, TableQ8.RowBytes(1))
	row[0] = 130
	binary.LittleEndian.PutUint32(row[1:], math.Float32bits(float32(16519105*0x1p-55)))
	binary.LittleEndian.PutUint32(row[5:], math.Float32bits(1))
	forEachImplOf(t, bagPools, func(t *testing.T) {
		out := make([]float32, 1)
		EmbeddingBag(TableQ8, row, 1, 1, []int64{0}, []int32{0, 1}, nil, false, out, 1, 0, 1)
		want := float32(1) // PyTorch 1.13: case bag8_double_rounding of testdata/rowwise
		if bagPools.name() != "go" {
			want = 1 + 0x1p-23
		}
		if out[0] != want {
			t.Errorf("got %v (%#x), want %v", out[0], math.Float32bits(out[0]), want)
		}
	})
}

// TestEmbeddingBagEmpty pools only empty bags, from an empty table too.
func TestEmbeddingBagEmpty(t *testing.T) {
	forEachImplOf(t, bagPools, func(t *testing.T) {
		for _, f := range allFormats {
			for _, dim := range []int{1, 200} {
				out := make([]float32, 3*dim)
				fillGuard(out)
				if p := EmbeddingBag(f, nil, 0, dim, nil, []int32{0, 0, 0, 0}, nil, true, out, dim, 1, 3); p != -1 {
					t.Fatalf("%v: reported %d", f, p)
				}
				for i, v := range out {
					if (i < dim) != (math.Float32bits(v) == guard) || (i >= dim && v != 0) {
						t.Fatalf("%v dim %d: out[%d] = %v", f, dim, i, v)
					}
				}
			}
		}
	})
}

// TestPrefetchBags: prefetching is a hint. It must change no memory and
// never fault, whatever the indices (negative, far beyond the table) or
// offsets, and pooling after it gives the same bits.
func TestPrefetchBags(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, f := range allFormats {
		for _, dim := range []int{1, 16, 100, 128} {
			const rows, nb = 300, 50
			table := randomTable(rng, f, rows, dim)
			indices, offsets := randomBags(rng, nb, 4, rows)
			want := make([]float32, nb*dim)
			EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, want, dim, 0, nb)
			tcopy := append([]byte(nil), table...)
			icopy := append([]int64(nil), indices...)
			ocopy := append([]int32(nil), offsets...)
			PrefetchBags(f, table, dim, indices, offsets, 0, nb)
			PrefetchBags(f, table, dim, indices, offsets, 7, 9)
			wild := append([]int64(nil), indices...)
			for i := range wild {
				wild[i] = []int64{-1 << 40, -1, rows, 1 << 50, math.MaxInt64, math.MinInt64}[i%6]
			}
			PrefetchBags(f, table, dim, wild, offsets, 0, nb)
			PrefetchBags(f, table, dim, indices, []int32{5, 1 << 30}, 0, 1) // offsets beyond the indices
			PrefetchBags(f, table, dim, indices, offsets, 3, 2)             // empty range
			PrefetchBags(f, nil, dim, indices, offsets, 0, nb)
			(&BagTable{Format: f, Rows: rows, Dim: dim, Data: table}).Prefetch(indices, offsets, 0, nb)
			if string(tcopy) != string(table) {
				t.Fatalf("%v dim %d: prefetching changed the table", f, dim)
			}
			for i := range icopy {
				if icopy[i] != indices[i] {
					t.Fatalf("%v dim %d: prefetching changed index %d", f, dim, i)
				}
			}
			for i := range ocopy {
				if ocopy[i] != offsets[i] {
					t.Fatalf("%v dim %d: prefetching changed offset %d", f, dim, i)
				}
			}
			got := make([]float32, nb*dim)
			EmbeddingBag(f, table, rows, dim, indices, offsets, nil, false, got, dim, 0, nb)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v dim %d: element %d pools to %v after prefetching, %v before", f, dim, i, got[i], want[i])
				}
			}
		}
	}
}
