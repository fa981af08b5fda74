package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rqtools/rq/precision"
)

// mxTestTable quantizes a random rows x dim table (values of several
// magnitudes per row, some zero blocks) and returns the weights, codes and
// scales.
func mxTestTable(t testing.TB, f MXFormat, rng *rand.Rand, rows, dim int) ([]float32, []byte, []byte) {
	w := make([]float32, rows*dim)
	for r := range rows {
		mag := math.Pow(2, float64(rng.IntN(40)-20))
		zero := rng.IntN(10) == 0
		for j := range dim {
			switch {
			case zero && j < MXBlock:
			case rng.IntN(30) == 0:
				w[r*dim+j] = float32(rng.NormFloat64() * mag * 1e4)
			default:
				w[r*dim+j] = float32(rng.NormFloat64() * mag)
			}
		}
	}
	codes := make([]byte, rows*MXCodeBytes(f, dim))
	scales := make([]byte, rows*MXScales(dim))
	if err := QuantizeMXRows(f, "emb", w, rows, dim, codes, scales); err != nil {
		t.Fatal(err)
	}
	return w, codes, scales
}

// TestQuantizeMXRows checks the table layout against QuantizeMX row by
// row, the dequantized table, and the error for a NaN.
func TestQuantizeMXRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range MXFormats {
		for _, dim := range []int{1, 7, 31, 32, 33, 48, 100, 128} {
			const rows = 9
			w, codes, scales := mxTestTable(t, f, rng, rows, dim)
			rb, ns := MXCodeBytes(f, dim), MXScales(dim)
			if rb != (dim*f.Bits()+7)/8 || ns != (dim+31)/32 || len(codes) != rows*rb || len(scales) != rows*ns {
				t.Fatalf("%v dim %d: %d code bytes and %d scales per row", f, dim, rb, ns)
			}
			deq := make([]float32, rows*dim)
			DequantizeMXRows(f, codes, scales, rows, dim, deq)
			for r := range rows {
				s, c := make([]byte, ns), make([]byte, rb)
				if err := QuantizeMX(f, "row", w[r*dim:r*dim+dim], s, c); err != nil {
					t.Fatal(err)
				}
				if string(s) != string(scales[r*ns:r*ns+ns]) || string(c) != string(codes[r*rb:r*rb+rb]) {
					t.Fatalf("%v dim %d row %d: table bytes differ from QuantizeMX of the row", f, dim, r)
				}
				d := make([]float32, dim)
				DequantizeMX(f, s, c, d)
				for j := range d {
					if math.Float32bits(d[j]) != math.Float32bits(deq[r*dim+j]) {
						t.Fatalf("%v dim %d: deq[%d][%d] = %g, want %g", f, dim, r, j, deq[r*dim+j], d[j])
					}
				}
			}
		}
		w := make([]float32, 3*40)
		w[2*40+35] = float32(math.Inf(-1))
		err := QuantizeMXRows(f, "emb.7.weight", w, 3, 40, make([]byte, 3*MXCodeBytes(f, 40)), make([]byte, 6))
		var me *MXError
		if !errors.As(err, &me) || me.Row != 2 || me.Col != 35 || !strings.Contains(err.Error(), "emb.7.weight: row 2 column 35 is -Inf") {
			t.Errorf("%v: error %v, want one naming emb.7.weight row 2 column 35", f, err)
		}
	}
}

// sameF32 reports whether a and b are the same float32, any NaN matching
// any NaN (the SIMD and Go fp32 bags may carry different NaN payloads).
func sameF32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

// TestEmbeddingBagMX checks the fused MX bag against dequantize-then-pool
// with the fp32 bag (every implementation of it), bit for bit: sum and
// mean, with and without per-sample weights, empty bags, row lengths with
// and without a short last block, output strides with guard columns, and
// tables of random bytes (NaN and Inf codes and scales included).
func TestEmbeddingBagMX(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	forEachImplOf(t, mxBagPools, func(t *testing.T) {
		forEachImplOf(t, bagPools, func(t *testing.T) {
			testEmbeddingBagMX(t, rng)
		})
	})
}

func testEmbeddingBagMX(t *testing.T, rng *rand.Rand) {
	const guard = float32(-12345)
	{
		for _, f := range MXFormats {
			for _, dim := range []int{1, 2, 5, 13, 16, 31, 32, 33, 48, 64, 100, 128, 129} {
				for _, randomBytes := range []bool{false, true} {
					const rows, nb = 37, 23
					_, codes, scales := mxTestTable(t, f, rng, rows, dim)
					if randomBytes {
						for i := range codes {
							codes[i] = byte(rng.Uint32())
						}
						for i := range scales {
							scales[i] = byte(rng.Uint32())
						}
					}
					deq := make([]float32, rows*dim)
					DequantizeMXRows(f, codes, scales, rows, dim, deq)
					offsets := make([]int32, nb+1)
					var indices []int64
					for i := range nb {
						n := rng.IntN(6)
						if i%7 == 3 {
							n = 0
						}
						for range n {
							indices = append(indices, rng.Int64N(rows))
						}
						offsets[i+1] = int32(len(indices))
					}
					weights := make([]float32, len(indices))
					for i := range weights {
						weights[i] = []float32{1, -1, 0.3, 2.5e-3, -7}[rng.IntN(5)]
					}
					for _, ws := range [][]float32{nil, weights} {
						for _, mean := range []bool{false, true} {
							ldo := dim + 3
							got := make([]float32, nb*ldo)
							want := make([]float32, nb*ldo)
							for i := range got {
								got[i], want[i] = guard, guard
							}
							lo, hi := 1, nb
							if p := EmbeddingBag(TableF32, F32Bytes(deq), rows, dim, indices, offsets, ws, mean, want, ldo, lo, hi); p >= 0 {
								t.Fatalf("fp32 bag: bad index at %d", p)
							}
							if p := EmbeddingBagMX(f, codes, scales, rows, dim, indices, offsets, ws, mean, got, ldo, lo, hi); p >= 0 {
								t.Fatalf("MX bag: bad index at %d", p)
							}
							for i := range got {
								if !sameF32(got[i], want[i]) {
									t.Fatalf("%v dim %d random bytes %v weights %v mean %v: out[%d][%d] = %g, dequantize-then-pool %g",
										f, dim, randomBytes, ws != nil, mean, i/ldo, i%ldo, got[i], want[i])
								}
							}
							if got[0] != guard || got[dim] != guard {
								t.Fatalf("%v dim %d: wrote outside bags [%d, %d) or past dim", f, dim, lo, hi)
							}
						}
					}
				}
			}
		}
	}
}

// TestEmbeddingBagMXIndex checks that an index out of range is reported
// by position with nothing written, and MXBagTable's checks.
func TestEmbeddingBagMXIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f := MXFP4E2M1
	_, codes, scales := mxTestTable(t, f, rng, 4, 40)
	tab, err := NewMXBagTable(f, 4, 40, codes, scales)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Bytes() != int64(4*20+4*2) {
		t.Errorf("Bytes() = %d, want %d", tab.Bytes(), 4*20+4*2)
	}
	out := make([]float32, 2*40)
	for i := range out {
		out[i] = 7
	}
	for _, bad := range []int64{4, -1} {
		if p := tab.Pool([]int64{0, 1, 2, bad}, []int32{0, 2, 4}, nil, out, 40, 0, 2); p != 3 {
			t.Errorf("index %d: Pool returned %d, want 3", bad, p)
		}
	}
	for i, v := range out {
		if v != 7 {
			t.Fatalf("out[%d] written on a bad index", i)
		}
	}
	tab.Prefetch([]int64{0, 3}, []int32{0, 2}, 0, 1) // a hint: must not fault
	tab.Prefetch([]int64{0, 99}, []int32{0, 2}, 0, 1)
	for _, c := range []struct {
		f          MXFormat
		rows       int64
		dim        int
		nc, ns     int
		wantSubstr string
	}{
		{0, 4, 40, 80, 8, "invalid format"},
		{f, 4, 0, 0, 0, "bad shape"},
		{f, 4, 40, 79, 8, "79 code bytes"},
		{f, 4, 40, 80, 7, "7 scale bytes"},
		{MXFP6E3M2, 4, 40, 80, 8, "80 code bytes for 4 rows of 30 bytes"},
	} {
		if _, err := NewMXBagTable(c.f, c.rows, c.dim, make([]byte, c.nc), make([]byte, c.ns)); err == nil || !strings.Contains(err.Error(), c.wantSubstr) {
			t.Errorf("NewMXBagTable(%v, %d, %d, %d codes, %d scales): error %v, want %q", c.f, c.rows, c.dim, c.nc, c.ns, err, c.wantSubstr)
		}
	}
}

// benchMXTable fills an MX table with random codes (E4M3's and E5M2's NaN
// and Inf codes avoided) and scales near 2^0, cheaply.
func benchMXTable(f MXFormat, rows, dim int) ([]byte, []byte) {
	key := fmt.Sprint("mx", f, rows, dim)
	if t, ok := benchTables.Load(key); ok {
		p := t.([2][]byte)
		return p[0], p[1]
	}
	codes := make([]byte, rows*MXCodeBytes(f, dim))
	scales := make([]byte, rows*MXScales(dim))
	x := uint64(0x9e3779b97f4a7c15)
	for i := range codes {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		codes[i] = byte(x)
		if f == MXFP8E4M3 || f == MXFP8E5M2 {
			codes[i] &^= 0x40 // top exponent bit clear: finite
		}
	}
	for i := range scales {
		scales[i] = byte(120 + i%8)
	}
	p, _ := benchTables.LoadOrStore(key, [2][]byte{codes, scales})
	return p.([2][]byte)[0], p.([2][]byte)[1]
}

// BenchmarkEmbeddingBagMX pools 2048 bags of 1 or 20 uniform lookups from
// 2^21 x 128 MX tables (BenchmarkEmbeddingBag's setting: every lookup a
// DRAM access) and, with 20, from 2048-row tables that stay in L2 (the
// decode's own cost), beside the row-wise int4 table with the best bag
// implementation and with the pure-Go one, each MX format with every
// implementation of the MX bag. bytes/s counts the table bytes
// (codes and scales) of the rows pooled. Run e.g.:
//
//	go test -run=^$ -bench='EmbeddingBagMX' ./kernels/
func BenchmarkEmbeddingBagMX(b *testing.B) {
	const nb = 2048
	for _, c := range []struct{ rows, n int }{{benchRows, 1}, {benchRows, 20}, {2048, 20}} {
		indices, offsets := benchBags(nb, c.n, c.rows, false)
		batch := nb * c.n
		out := make([]float32, nb*benchDim)
		pre := fmt.Sprintf("rows=%d/bag=%d", c.rows, c.n)
		b.Run(pre+"/int4-rowwise/"+bagPools.name(), func(b *testing.B) {
			benchBag(b, TableQ4, c.rows, benchDim, nb, c.n, false)
		})
		b.Run(pre+"/int4-rowwise/go", func(b *testing.B) {
			defer keepActive(bagPools)()
			mustSet(b, bagPools, "go")
			benchBag(b, TableQ4, c.rows, benchDim, nb, c.n, false)
		})
		for _, f := range MXFormats {
			for _, impl := range mxBagPools.names() {
				b.Run(fmt.Sprintf("%s/%v/%s", pre, f, impl), func(b *testing.B) {
					defer keepActive(mxBagPools)()
					mustSet(b, mxBagPools, impl)
					codes, scales := benchMXTable(f, c.rows, benchDim)
					b.SetBytes(int64(batch * (MXCodeBytes(f, benchDim) + MXScales(benchDim))))
					win := 0
					for b.Loop() {
						if win+batch > len(indices) {
							win = 0
						}
						if p := EmbeddingBagMX(f, codes, scales, int64(c.rows), benchDim, indices[win:win+batch], offsets, nil, false, out, benchDim, 0, nb); p >= 0 {
							b.Fatalf("bad index at %d", p)
						}
						win += batch
					}
					b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
				})
			}
		}
	}
}

// TestMXPrecision checks the one map between MX formats and precisions:
// every format has an MX precision of the same name and width and maps
// back to itself (a table and an FC precision), and no other precision
// names an MX format.
func TestMXPrecision(t *testing.T) {
	seen := map[precision.Precision]bool{}
	for _, f := range MXFormats {
		p := f.Precision()
		if !p.IsMX() || !p.ForTable() || !p.ForFC() || p.String() != f.String() || p.Bits() != f.Bits() {
			t.Errorf("%v: precision %v (mx %v, table %v, fc %v, %d bits)", f, p, p.IsMX(), p.ForTable(), p.ForFC(), p.Bits())
		}
		if g, ok := MXFormatOf(p); !ok || g != f {
			t.Errorf("MXFormatOf(%v) = %v, %v; want %v", p, g, ok, f)
		}
		seen[p] = true
	}
	for _, p := range precision.All() {
		_, ok := MXFormatOf(p)
		if ok != p.IsMX() || ok != seen[p] {
			t.Errorf("MXFormatOf(%v) ok = %v, IsMX %v", p, ok, p.IsMX())
		}
		if _, row := TableFormatOf(p); row && ok {
			t.Errorf("%v is both a row-wise and an MX table format", p)
		}
	}
	if MXFormat(0).Precision() != 0 || MXFormat(200).Precision() != 0 {
		t.Error("an invalid MX format has a precision")
	}
}

// TestMXBagTableRows: the table's Precision, and DequantizeRows equal to
// DequantizeMXRows of the same rows, and refusing rows outside the table.
func TestMXBagTableRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range MXFormats {
		const rows, dim = 9, 45
		_, codes, scales := mxTestTable(t, f, rng, rows, dim)
		bt, err := NewMXBagTable(f, rows, dim, codes, scales)
		if err != nil {
			t.Fatal(err)
		}
		if bt.Precision() != f.Precision() || bt.Bytes() != int64(rows*(MXCodeBytes(f, dim)+MXScales(dim))) {
			t.Errorf("%v: precision %v, %d bytes", f, bt.Precision(), bt.Bytes())
		}
		all := make([]float32, rows*dim)
		DequantizeMXRows(f, codes, scales, rows, dim, all)
		got := make([]float32, 4*dim)
		bt.DequantizeRows(3, 4, got)
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(all[3*dim+i]) {
				t.Fatalf("%v: row %d col %d: %v, want %v", f, 3+i/dim, i%dim, v, all[3*dim+i])
			}
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%v: DequantizeRows(7, 3) of 9 rows did not panic", f)
				}
			}()
			bt.DequantizeRows(7, 3, got[:3*dim])
		}()
	}
}

// TestEmbeddingBagMXImpls checks every implementation of the MX bag
// against the pure-Go one, bit for bit, on every row length 1..130 (each
// count of whole blocks and every short last block) and some longer ones: sum and mean, with
// and without weights, empty bags (first, inside and last), random bytes
// (NaN and Inf scales and codes), and guard floats around and between the
// output rows that must stay untouched. An index out of range must be
// reported by position with nothing written. It runs with each of
// mxPrefetchLines (the kernels' prefetch distances).
func TestEmbeddingBagMXImpls(t *testing.T) {
	defer setPrefetchLines(setPrefetchLines(0))
	for _, lines := range mxPrefetchLines {
		setPrefetchLines(lines)
		t.Run(fmt.Sprintf("prefetch=%d", lines), testEmbeddingBagMXImpls)
	}
}

// mxImplsDims are the row lengths of TestEmbeddingBagMXImpls: every one
// up to 130, and around 160, where the kernels that keep sums in
// registers hand over to the ones that add into the output row.
var mxImplsDims = func() (d []int) {
	for dim := 1; dim <= 130; dim++ {
		d = append(d, dim)
	}
	return append(d, 158, 159, 160, 161, 191, 192, 193, 257)
}()

func testEmbeddingBagMXImpls(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const guard = float32(-4321)
	forEachImplOf(t, mxBagPools, func(t *testing.T) {
		for _, f := range MXFormats {
			for _, dim := range mxImplsDims {
				const rows, nb = 11, 9
				codes := make([]byte, rows*MXCodeBytes(f, dim))
				scales := make([]byte, rows*MXScales(dim))
				for i := range codes {
					codes[i] = byte(rng.Uint32())
				}
				for i := range scales {
					// Mostly ordinary scales, sometimes 0 (2^-127, subnormal)
					// and 255 (NaN) and the extremes of the range.
					scales[i] = []byte{127, 120, 130, 0, 255, 1, 254, byte(rng.Uint32())}[rng.IntN(8)]
				}
				offsets := make([]int32, nb+1)
				var indices []int64
				for i := range nb {
					n := 1 + rng.IntN(5)
					if i == 0 || i == 4 || i == nb-1 {
						n = 0
					}
					for range n {
						indices = append(indices, rng.Int64N(rows))
					}
					offsets[i+1] = int32(len(indices))
				}
				weights := make([]float32, len(indices))
				for i := range weights {
					weights[i] = []float32{1, -1, 0.3, 2.5e-3, -7, 1e30}[rng.IntN(6)]
				}
				for _, ws := range [][]float32{nil, weights} {
					for _, mean := range []bool{false, true} {
						ldo := dim + 5
						// One guard row before and after the output.
						got := make([]float32, (nb+2)*ldo)
						want := make([]float32, (nb+2)*ldo)
						for i := range got {
							got[i], want[i] = guard, guard
						}
						lo, hi := 0, nb
						rb, ns := MXCodeBytes(f, dim), MXScales(dim)
						mxBagGo(f, codes, scales, rb, ns, dim, indices, offsets, ws, mean, want[ldo:], ldo, lo, hi)
						if p := EmbeddingBagMX(f, codes, scales, rows, dim, indices, offsets, ws, mean, got[ldo:], ldo, lo, hi); p >= 0 {
							t.Fatalf("bad index at %d", p)
						}
						for i := range got {
							if !sameF32(got[i], want[i]) {
								t.Fatalf("%v dim %d weights %v mean %v: out[%d][%d] = %g (%#x), Go bag %g (%#x)",
									f, dim, ws != nil, mean, i/ldo-1, i%ldo, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
							}
						}
						for i := range ldo {
							if got[i] != guard || got[(nb+1)*ldo+i] != guard {
								t.Fatalf("%v dim %d: wrote outside the output rows", f, dim)
							}
						}
						for i := range nb {
							for j := dim; j < ldo; j++ {
								if got[(i+1)*ldo+j] != guard {
									t.Fatalf("%v dim %d: wrote past dim in bag %d", f, dim, i)
								}
							}
						}
					}
				}
				// An index out of range: reported, nothing written.
				bad := append([]int64(nil), indices...)
				bad[len(bad)-1] = rows
				out := make([]float32, nb*dim)
				for i := range out {
					out[i] = guard
				}
				if p := EmbeddingBagMX(f, codes, scales, rows, dim, bad, offsets, nil, false, out, dim, 0, nb); p != len(bad)-1 {
					t.Fatalf("%v dim %d: bad index reported at %d, want %d", f, dim, p, len(bad)-1)
				}
				for i, v := range out {
					if v != guard {
						t.Fatalf("%v dim %d: out[%d] written on a bad index", f, dim, i)
					}
				}
			}
		}
	})
}

// TestMXBagImpl checks that MXBagImpl names the first implementation this
// CPU runs, and follows set.
func TestMXBagImpl(t *testing.T) {
	names := mxBagPools.names()
	if got := MXBagImpl(); got != names[0] {
		t.Errorf("MXBagImpl() = %q, want %q (of %v)", got, names[0], names)
	}
	defer keepActive(mxBagPools)()
	mustSet(t, mxBagPools, "go")
	if got := MXBagImpl(); got != "go" {
		t.Errorf("after set(go): MXBagImpl() = %q", got)
	}
}

// TestEmbeddingBagMXEveryCode pools, for every format and every scale
// byte 0..255 (2^-127, a subnormal, through 2^127 and the NaN 0xFF), rows
// that hold every code of the format in whole blocks and, rotating from
// row to row, every code in the short last block too, at a row length
// below 160 (the kernels that keep sums in registers) and one above:
// E4M3's and E5M2's NaN and Inf codes, -0, subnormal elements, and
// products lut·s that are float32 subnormals or overflow, whose rounding
// must be the Go bag's. Each implementation must give mxBagGo's bits,
// unweighted and weighted, bags of one row and of two.
func TestEmbeddingBagMXEveryCode(t *testing.T) {
	forEachImplOf(t, mxBagPools, func(t *testing.T) {
		for _, f := range MXFormats {
			n := 1 << f.Bits()
			for _, dim := range []int{min(n, 128) + 13, n + 13 + 160} {
				testMXEveryCode(t, f, n, dim)
			}
		}
	})
}

// testMXEveryCode is TestEmbeddingBagMXEveryCode at one row length: row r
// holds codes (j+8r) mod n, so that over the rows both the whole blocks
// and the short block (13 values) see every code.
func testMXEveryCode(t *testing.T, f MXFormat, n, dim int) {
	rows := max(2, n/8)
	rb, ns := MXCodeBytes(f, dim), MXScales(dim)
	codes := make([]byte, rows*rb)
	for r := range rows {
		for j := range dim {
			putMXCode(codes[r*rb:r*rb+rb], f.Bits(), j, uint32((j+8*r)%n))
		}
	}
	scales := make([]byte, rows*ns)
	var indices []int64
	offsets := []int32{0}
	for r := range rows {
		indices = append(indices, int64(r))
		offsets = append(offsets, int32(len(indices)))
		indices = append(indices, int64(r), int64((r+1)%rows))
		offsets = append(offsets, int32(len(indices)))
	}
	nb := len(offsets) - 1
	weights := make([]float32, len(indices))
	for i := range weights {
		weights[i] = []float32{0.3, -7, 1e30, 2.5e-3, 1e-30, -1}[i%6]
	}
	got, want := make([]float32, nb*dim), make([]float32, nb*dim)
	for s := range 256 {
		for i := range scales {
			scales[i] = byte(s)
		}
		for _, ws := range [][]float32{nil, weights} {
			mxBagGo(f, codes, scales, rb, ns, dim, indices, offsets, ws, false, want, dim, 0, nb)
			if p := EmbeddingBagMX(f, codes, scales, int64(rows), dim, indices, offsets, ws, false, got, dim, 0, nb); p >= 0 {
				t.Fatalf("bad index at %d", p)
			}
			for i := range got {
				if !sameF32(got[i], want[i]) {
					b, j := i/dim, i%dim
					r := indices[offsets[b]]
					t.Fatalf("%v dim %d scale byte %d weights %v: bag %d (row %d) out[%d] = %g (%#x), Go bag %g (%#x); code %#x",
						f, dim, s, ws != nil, b, r, j, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]), (j+8*int(r))%n)
				}
			}
		}
	}
}
