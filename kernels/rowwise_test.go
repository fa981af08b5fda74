package kernels

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// ptVectors is testdata/rowwise/vectors.json: PyTorch 1.13's prepacked
// tables and pooled outputs (see testdata/rowwise/gen.py), with the arrays
// in vectors.bin.
type ptVectors struct {
	Torch string   `json:"torch"`
	Cases []ptCase `json:"cases"`
}

type ptArray struct {
	Off int `json:"off"`
	N   int `json:"n"`
}

type ptCase struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Bits    int      `json:"bits"`
	Greedy  bool     `json:"greedy"`
	Rows    int      `json:"rows"`
	Dim     int      `json:"dim"`
	Input   ptArray  `json:"input"`
	Packed  ptArray  `json:"packed"`
	Dequant ptArray  `json:"dequant"`
	Indices ptArray  `json:"indices"`
	Offsets ptArray  `json:"offsets"`
	Weights *ptArray `json:"weights"`
	Out     ptArray  `json:"out"`
}

func (c *ptCase) format() TableFormat {
	if c.Bits == 16 {
		return TableF16
	}
	f, _ := FormatForBits(c.Bits)
	return f
}

// loadPTVectors reads the committed PyTorch vectors; they are part of the
// package's testdata, so a missing or malformed file fails the test.
func loadPTVectors(t testing.TB) (*ptVectors, []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "rowwise")
	js, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "vectors.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var v ptVectors
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("vectors.json has no cases")
	}
	return &v, bin
}

func ptBytes(t testing.TB, bin []byte, a ptArray, size int) []byte {
	t.Helper()
	if a.Off < 0 || a.N < 0 || a.Off+a.N*size > len(bin) {
		t.Fatalf("array %+v (element size %d) outside vectors.bin (%d bytes)", a, size, len(bin))
	}
	return bin[a.Off : a.Off+a.N*size]
}

func ptF32(t testing.TB, bin []byte, a ptArray) []float32 {
	b := ptBytes(t, bin, a, 4)
	v := make([]float32, a.N)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func ptI64(t testing.TB, bin []byte, a ptArray) []int64 {
	b := ptBytes(t, bin, a, 8)
	v := make([]int64, a.N)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

func ptI32(t testing.TB, bin []byte, a ptArray) []int32 {
	b := ptBytes(t, bin, a, 4)
	v := make([]int32, a.N)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// sameFloat is bit equality, except that any two NaNs match (PyTorch and
// Go may carry different NaN payloads through arithmetic).
func sameFloat(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

// TestRowwisePyTorchTables checks that the quantizers reproduce PyTorch's
// prepacked bytes exactly and DequantizeRows its pooled values exactly.
func TestRowwisePyTorchTables(t *testing.T) {
	v, bin := loadPTVectors(t)
	ntables := 0
	for _, c := range v.Cases {
		if c.Kind != "table" {
			continue
		}
		ntables++
		t.Run(c.Name, func(t *testing.T) {
			f := c.format()
			w := ptF32(t, bin, c.Input)
			want := ptBytes(t, bin, c.Packed, 1)
			rb := f.RowBytes(c.Dim)
			if len(w) != c.Rows*c.Dim || len(want) != c.Rows*rb {
				t.Fatalf("case sizes: %d floats, %d bytes for %d x %d (row %d bytes)", len(w), len(want), c.Rows, c.Dim, rb)
			}
			got := make([]byte, len(want))
			switch {
			case f == TableF16:
				QuantizeRowsF16(w, c.Rows, c.Dim, got)
			case f == TableQ8:
				QuantizeRows8(w, c.Rows, c.Dim, got)
			case c.Greedy:
				QuantizeRowsNGreedy(c.Bits, w, c.Rows, c.Dim, GreedyBins, GreedyRatio, got)
			default:
				QuantizeRowsN(c.Bits, w, c.Rows, c.Dim, got)
			}
			for r := 0; r < c.Rows; r++ {
				g, wt := got[r*rb:(r+1)*rb], want[r*rb:(r+1)*rb]
				if string(g) != string(wt) {
					t.Errorf("row %d (input %v):\n got  %v\n want %v", r, w[r*c.Dim:(r+1)*c.Dim], g, wt)
				}
			}
			deq := ptF32(t, bin, c.Dequant)
			out := make([]float32, c.Rows*c.Dim)
			DequantizeRows(f, want, c.Rows, c.Dim, out)
			bad := 0
			for i := range out {
				if !sameFloat(out[i], deq[i]) {
					if bad++; bad <= 5 {
						t.Errorf("dequant row %d col %d: %v (%#x), PyTorch %v (%#x)", i/c.Dim, i%c.Dim, out[i], math.Float32bits(out[i]), deq[i], math.Float32bits(deq[i]))
					}
				}
			}
		})
	}
	if ntables < 10 {
		t.Fatalf("only %d table cases in the vectors", ntables)
	}
}

// TestRowBytes pins the row strides of the formats.
func TestRowBytes(t *testing.T) {
	cases := []struct {
		f        TableFormat
		dim, row int
	}{
		{TableF32, 3, 12}, {TableF16, 3, 6}, {TableQ8, 3, 11}, {TableQ4, 3, 6}, {TableQ2, 3, 5},
		{TableQ4, 16, 12}, {TableQ2, 16, 8}, {TableQ2, 17, 9}, {TableQ8, 0, 8},
		{TableFormat(0), 4, 0}, {TableFormat(9), 4, 0}, {TableQ8, -1, 0},
	}
	for _, c := range cases {
		if got := c.f.RowBytes(c.dim); got != c.row {
			t.Errorf("%v.RowBytes(%d) = %d, want %d", c.f, c.dim, got, c.row)
		}
	}
	if RowBytes8(64) != 72 || RowBytesN(4, 64) != 36 || RowBytesN(2, 64) != 20 {
		t.Error("RowBytes8/RowBytesN disagree with the PyTorch layouts")
	}
}

// TestGreedyTerminates covers the rows PyTorch's greedy search never
// finishes on (a bin narrower than half an ulp): ours must stop, and the
// result must still be a valid row.
func TestGreedyTerminates(t *testing.T) {
	const dim = 16
	w := make([]float32, dim)
	for j := range w {
		w[j] = 1 + float32(j)*1e-7
	}
	for _, bits := range []int{4, 2} {
		dst := make([]byte, RowBytesN(bits, dim))
		QuantizeRowsNGreedy(bits, w, 1, dim, GreedyBins, GreedyRatio, dst)
		deq := make([]float32, dim)
		f, _ := FormatForBits(bits)
		DequantizeRows(f, dst, 1, dim, deq)
		for j, x := range deq {
			if math.Abs(float64(x-w[j])) > 1e-3 {
				t.Errorf("%d-bit: col %d dequantizes to %v, input %v", bits, j, x, w[j])
			}
		}
	}
}

// quantErrBound is the largest |dequant(quant(x)) - x| allowed for a finite
// row of a quantized format: half a step, plus the fp16 rounding of the bias
// (n-bit formats round min to fp16, which can shift every code) and of the
// scale (up to 2^bits-1 steps of half an fp16 ulp), plus float32 rounding.
func quantErrBound(f TableFormat, row []float32, deq []float32) float64 {
	mn, mx := float64(minElement(row)), float64(maxElement(row))
	rng := mx - mn
	mag := math.Max(math.Abs(mn), math.Abs(mx))
	if f == TableQ8 {
		return rng/255/2 + 4*mag*0x1p-24 + 1e-8
	}
	qmax := float64(int(1)<<f.Bits() - 1)
	step := rng / qmax
	// fp16 has 11 significant bits: relative rounding 2^-11; subnormals
	// below 2^-14 are spaced 2^-24.
	biasErr := math.Max(math.Abs(mn)*0x1p-11, 0x1p-25)
	scaleErr := math.Max(step*0x1p-11, 0x1p-25) * qmax
	return step/2 + biasErr + scaleErr + 4*mag*0x1p-24 + 1e-7
}

// FuzzQuantizeRows quantizes arbitrary rows in every format: it must not
// panic, codes must stay in range, padding bits must be zero, and for rows
// whose values fit fp16 (n-bit) or float32 ranges without overflow,
// dequantized values must be within quantErrBound of the input.
func FuzzQuantizeRows(f *testing.F) {
	v, bin := loadPTVectors(f)
	for _, c := range v.Cases {
		if c.Kind == "table" && c.Rows > 0 {
			b := ptBytes(f, bin, c.Input, 4)
			f.Add(b[:min(len(b), 4*c.Dim*3)], uint8(c.Dim), uint8(c.Bits))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, dim8, sel uint8) {
		dim := int(dim8%70) + 1
		rows := len(raw) / 4 / dim
		if rows == 0 {
			return
		}
		w := make([]float32, rows*dim)
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		formats := []TableFormat{TableQ8, TableQ4, TableQ2, TableF16}
		fm := formats[int(sel)%len(formats)]
		greedy := sel >= 128 && (fm == TableQ4 || fm == TableQ2)
		rb := fm.RowBytes(dim)
		dst := make([]byte, rows*rb+1)
		dst[len(dst)-1] = 0xa5 // guard byte: nothing may be written past the table
		switch {
		case fm == TableQ8:
			QuantizeRows8(w, rows, dim, dst[:rows*rb])
		case fm == TableF16:
			QuantizeRowsF16(w, rows, dim, dst[:rows*rb])
		case greedy:
			QuantizeRowsNGreedy(fm.Bits(), w, rows, dim, GreedyBins, GreedyRatio, dst[:rows*rb])
		default:
			QuantizeRowsN(fm.Bits(), w, rows, dim, dst[:rows*rb])
		}
		if dst[len(dst)-1] != 0xa5 {
			t.Fatal("quantizer wrote past the end of its output")
		}
		deq := make([]float32, rows*dim)
		DequantizeRows(fm, dst, rows, dim, deq)
		for r := 0; r < rows; r++ {
			row := w[r*dim : (r+1)*dim]
			pr := dst[r*rb : (r+1)*rb]
			if fm == TableQ4 && dim%2 == 1 && pr[dim/2]>>4 != 0 {
				t.Fatalf("row %d: padding nibble set: %#x", r, pr[dim/2])
			}
			if fm == TableQ2 && dim%4 != 0 && pr[dim/4]>>(2*uint(dim%4)) != 0 {
				t.Fatalf("row %d: padding bits set: %#x", r, pr[dim/4])
			}
			if greedy {
				continue // the greedy range clips outliers on purpose
			}
			finite := true
			limit := math.MaxFloat32 / 4
			if fm != TableQ8 {
				limit = 60000
			}
			for _, x := range row {
				if x != x || math.Abs(float64(x)) > limit {
					finite = false
				}
			}
			if !finite {
				continue
			}
			if fm == TableF16 {
				for j, x := range row {
					if !sameFloat(deq[r*dim+j], roundHalf(x)) {
						t.Fatalf("fp16 row %d col %d: %v, want %v", r, j, deq[r*dim+j], roundHalf(x))
					}
				}
				continue
			}
			bound := quantErrBound(fm, row, deq[r*dim:(r+1)*dim])
			for j, x := range row {
				if e := math.Abs(float64(deq[r*dim+j]) - float64(x)); !(e <= bound) {
					t.Fatalf("%v row %d col %d: %v dequantizes to %v, error %g > bound %g (row %v)", fm, r, j, x, deq[r*dim+j], e, bound, row)
				}
			}
		}
	})
}

// TestQuantizeRandomRoundTrip runs the round-trip bound on many random rows
// of assorted scales (the fuzz target's check, without the fuzzer).
func TestQuantizeRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for it := 0; it < 300; it++ {
		dim := 1 + rng.IntN(70)
		scale := math.Pow(10, float64(rng.IntN(9)-6))
		shift := (rng.Float64() - 0.5) * 10 * scale * float64(rng.IntN(3))
		w := make([]float32, 3*dim)
		for i := range w {
			w[i] = float32(rng.NormFloat64()*scale + shift)
		}
		for _, fm := range []TableFormat{TableQ8, TableQ4, TableQ2} {
			rb := fm.RowBytes(dim)
			dst := make([]byte, 3*rb)
			if fm == TableQ8 {
				QuantizeRows8(w, 3, dim, dst)
			} else {
				QuantizeRowsN(fm.Bits(), w, 3, dim, dst)
			}
			deq := make([]float32, len(w))
			DequantizeRows(fm, dst, 3, dim, deq)
			for r := 0; r < 3; r++ {
				row := w[r*dim : (r+1)*dim]
				bound := quantErrBound(fm, row, deq[r*dim:(r+1)*dim])
				for j, x := range row {
					if e := math.Abs(float64(deq[r*dim+j]) - float64(x)); e > bound {
						t.Fatalf("%v dim %d row %d col %d: error %g > %g", fm, dim, r, j, e, bound)
					}
				}
			}
		}
	}
}

func TestQuantizePanicsOnBadSizes(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	w := make([]float32, 10)
	mustPanic("short input", func() { QuantizeRows8(w, 3, 4, make([]byte, 100)) })
	mustPanic("short output", func() { QuantizeRows8(w, 2, 4, make([]byte, 23)) })
	mustPanic("bits", func() { QuantizeRowsN(3, w, 2, 4, make([]byte, 100)) })
	mustPanic("nbins", func() { QuantizeRowsNGreedy(4, w, 2, 4, 0, 0.16, make([]byte, 100)) })
	mustPanic("format", func() { DequantizeRows(TableFormat(0), nil, 1, 1, make([]float32, 1)) })
	_ = fmt.Sprint()
}
