package kernels

import (
	"fmt"
	"unsafe"

	"github.com/rqtools/rq/precision"
)

// EmbeddingBag pools bags [lo, hi) of rows of a table stored in format f,
// the PyTorch EmbeddingBag convention (bag i holds indices[offsets[i] :
// offsets[i+1]]):
//
//	for i := lo; i < hi; i++ {
//		o := out[i*ldo : i*ldo+dim]
//		o[:] = 0
//		for p := offsets[i]; p < offsets[i+1]; p++ {
//			w := 1 (or weights[p] when weights != nil)
//			o[:] += w * row(indices[p])
//		}
//		if mean && offsets[i+1] > offsets[i] {
//			o[:] /= float32(offsets[i+1] - offsets[i])
//		}
//	}
//
// The floating-point steps are fixed so that results are reproducible:
//
//	fp32, fp16:  o[j] = o[j] + float32(w*v[j])   (v: the fp32 value or the exactly
//	             widened fp16; two roundings, no FMA; for w = 1 just o[j] + v[j])
//	quantized:   s = float32(w*scale), b = float32(w*bias)
//	             o[j] = fma(s, q[j], o[j] + b)
//
// which for the quantized formats is PyTorch's formula (embedding_bag_byte/
// 4bit/2bit_rowwise_offsets, per-sample weights included). PyTorch evaluates
// that fma in double precision and rounds to float32; the pure-Go
// implementation does the same and so matches PyTorch bit for bit, while
// the SIMD kernels use a float32 FMA: the two agree unless the exact s*q +
// (o+b) needs more than 53 significant bits and the double rounding lands on
// a float32 tie (exponents of s*q and o+b some 30 binades apart), and then
// differ by one ulp of that step. fp32 and fp16 results are identical across
// implementations. mean divides once at the end (an IEEE division, exact
// across implementations); empty bags give zeros.
//
// table holds rows rows of f.RowBytes(dim) bytes (see TableFormat). It
// returns the position p in indices of the first index outside [0, rows),
// or -1 when all were in range; on a bad index nothing is written. It writes
// only out[i*ldo+j] for lo <= i < hi, j < dim, and reads only the rows
// indexed. The caller validates offsets (CheckBags); EmbeddingBag panics if
// they or the slice sizes are inconsistent (a programmer error, like a bad
// Gemm shape): hi must be < len(offsets), offsets[lo..hi] non-decreasing
// within len(indices), weights nil or covering offsets[hi], ldo >= dim.
// Safe for concurrent calls on disjoint output rows.
func EmbeddingBag(f TableFormat, table []byte, rows int64, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo int, lo, hi int) int {
	checkBagArgs(f, table, rows, dim, indices, offsets, weights, out, ldo, lo, hi)
	if lo == hi {
		return -1
	}
	p0, p1 := int(offsets[lo]), int(offsets[hi])
	for p, ix := range indices[p0:p1] {
		if ix < 0 || ix >= rows {
			return p0 + p
		}
	}
	if dim == 0 {
		return -1
	}
	if p0 == p1 {
		// Only empty bags: zeros, without handing the kernels a table
		// that may have no rows at all.
		for i := lo; i < hi; i++ {
			clear(out[i*ldo : i*ldo+dim])
		}
		return -1
	}
	bagPools.fn()(f, table, f.RowBytes(dim), dim, indices, offsets, weights, mean, out, ldo, lo, hi)
	return -1
}

// checkBagArgs panics unless EmbeddingBag's arguments are consistent, so
// that no implementation can read or write outside the slices.
func checkBagArgs(f TableFormat, table []byte, rows int64, dim int, indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) {
	fail := func(format string, args ...any) {
		panic("kernels.EmbeddingBag: " + fmt.Sprintf(format, args...))
	}
	if !f.Valid() {
		fail("invalid table format %v", f)
	}
	if rows < 0 || dim < 0 || ldo < dim {
		fail("bad shape rows=%d dim=%d ldo=%d", rows, dim, ldo)
	}
	if rb := int64(f.RowBytes(dim)); rb > 0 && rows > int64(len(table))/rb {
		fail("table has %d bytes, want %d rows of %d bytes (%v, dim %d)", len(table), rows, rb, f, dim)
	}
	if lo < 0 || hi < lo || hi >= len(offsets) {
		fail("bags [%d, %d) with %d offsets", lo, hi, len(offsets))
	}
	if offsets[lo] < 0 || int(offsets[hi]) > len(indices) {
		fail("offsets %d..%d outside %d indices", offsets[lo], offsets[hi], len(indices))
	}
	for i := lo; i < hi; i++ {
		if offsets[i+1] < offsets[i] {
			fail("offsets decrease at bag %d", i)
		}
	}
	if weights != nil && len(weights) < int(offsets[hi]) {
		fail("%d weights for %d indices", len(weights), offsets[hi])
	}
	if hi > lo && (hi-1 > (len(out)-dim)/max(ldo, 1) || len(out) < dim) {
		fail("out has %d floats, want (%d-1)*%d+%d", len(out), hi, ldo, dim)
	}
}

// EmbeddingBagF32 is EmbeddingBag on an fp32 table given as floats, with
// sum pooling (the model's fp32 path).
func EmbeddingBagF32(table []float32, rows int64, dim int, indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	return EmbeddingBag(TableF32, F32Bytes(table), rows, dim, indices, offsets, weights, false, out, ldo, lo, hi)
}

// F32Bytes views a float32 slice as its little-endian bytes (amd64 and
// arm64 are little-endian; so is every platform rq builds for), without
// copying.
func F32Bytes(w []float32) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 4*len(w))
}

// CheckBags reports whether offsets describe n bags over nIdx indices in the
// EmbeddingBag convention: n+1 entries, starting at 0, non-decreasing, ending
// at nIdx.
func CheckBags(offsets []int32, n, nIdx int) bool {
	if n < 0 || len(offsets) != n+1 || offsets[0] != 0 || int(offsets[n]) != nIdx {
		return false
	}
	for i := 0; i < n; i++ {
		if offsets[i+1] < offsets[i] {
			return false
		}
	}
	return true
}

// BagTable is an embedding table in one of the TableFormats, ready for
// pooling; its Pool method has the signature the model's bag kernels use.
// Data may alias a memory-mapped file (it is only read).
type BagTable struct {
	Format TableFormat
	Rows   int64
	Dim    int
	Data   []byte
	// Mean selects mean pooling instead of sum.
	Mean bool
}

// NewBagTable checks that data holds rows rows of format f with dim values.
func NewBagTable(f TableFormat, rows int64, dim int, data []byte) (*BagTable, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("embedding table: invalid format %v", f)
	}
	if rows < 0 || dim < 1 {
		return nil, fmt.Errorf("embedding table: bad shape %d x %d", rows, dim)
	}
	rb := int64(f.RowBytes(dim))
	if rows > int64(len(data))/rb || int64(len(data)) != rows*rb {
		return nil, fmt.Errorf("embedding table: %d bytes for %d rows of %d bytes (%v, dim %d)", len(data), rows, rb, f, dim)
	}
	return &BagTable{Format: f, Rows: rows, Dim: dim, Data: data}, nil
}

// Precision is the table's precision as plans name it (int4 for
// TableQ4); Format.String is its label in reports ("int4-rowwise").
func (t *BagTable) Precision() precision.Precision { return t.Format.Precision() }

// Bytes is the size of the table's data.
func (t *BagTable) Bytes() int64 { return int64(len(t.Data)) }

// RowTable is a stored embedding table whose rows read back as float32,
// as its bags pool them: the row-wise tables (BagTable) and the MX ones
// (MXBagTable). Debugging, diagnosis and simulation read tables through
// it, whatever the storage.
type RowTable interface {
	Shape() (rows int64, dim int)
	Bytes() int64
	// Whole reports whether the stored bytes hold every row (a table made
	// by its constructor does; one assembled by hand may not).
	Whole() bool
	// DequantizeRows writes rows [r0, r0+n) into dst (n*dim floats).
	DequantizeRows(r0 int64, n int, dst []float32)
}

// Shape is the table's rows and dimension.
func (t *BagTable) Shape() (int64, int) { return t.Rows, t.Dim }

// Whole reports whether Data holds all Rows rows.
func (t *BagTable) Whole() bool {
	return t.Dim > 0 && int64(len(t.Data)) >= t.Rows*int64(t.Format.RowBytes(t.Dim))
}

// DequantizeRows writes rows [r0, r0+n) of the table, dequantized as its
// bags pool them, into dst. It panics outside the table.
func (t *BagTable) DequantizeRows(r0 int64, n int, dst []float32) {
	if r0 < 0 || n < 0 || r0+int64(n) > t.Rows {
		panic(fmt.Sprintf("kernels.BagTable.DequantizeRows: rows [%d, %d) of %d", r0, r0+int64(n), t.Rows))
	}
	rb := int64(t.Format.RowBytes(t.Dim))
	DequantizeRows(t.Format, t.Data[r0*rb:(r0+int64(n))*rb], n, t.Dim, dst)
}

// Pool pools bags [lo, hi) into out (see EmbeddingBag).
func (t *BagTable) Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	return EmbeddingBag(t.Format, t.Data, t.Rows, t.Dim, indices, offsets, weights, t.Mean, out, ldo, lo, hi)
}

// bagFn is the signature of the pooling loop's implementations: they
// receive arguments validated by EmbeddingBag: indices in range, lo < hi,
// dim >= 1, rb = f.RowBytes(dim).
type bagFn func(f TableFormat, table []byte, rb, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo, lo, hi int)

// bagPools is EmbeddingBag's family: bagArchImpls (embbag_amd64.go or
// embbag_noasm.go), then bagGo.
var bagPools = newFamily(bagArchImpls, bagGo)

// BagImpl names the embedding-bag implementation in use ("avx512", "avx2"
// or "go"), for diagnostics.
func BagImpl() string { return bagPools.name() }

// bagGo is the portable implementation: accumRow per index, the formulas of
// EmbeddingBag evaluated exactly as documented (PyTorch's, for the
// quantized formats).
func bagGo(f TableFormat, table []byte, rb, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo, lo, hi int) {
	for i := lo; i < hi; i++ {
		o := out[i*ldo : i*ldo+dim]
		clear(o)
		p0, p1 := int(offsets[i]), int(offsets[i+1])
		for p := p0; p < p1; p++ {
			w := float32(1)
			if weights != nil {
				w = weights[p]
			}
			r := int(indices[p]) * rb
			accumRow(f, table[r:r+rb], dim, w, o)
		}
		if mean && p1 > p0 {
			n := float32(p1 - p0)
			for j := range o {
				o[j] /= n
			}
		}
	}
}

// Prefetch asks for the table rows of bags [lo, hi) to be brought toward
// the core (see PrefetchBags).
func (t *BagTable) Prefetch(indices []int64, offsets []int32, lo, hi int) {
	PrefetchBags(t.Format, t.Data, t.Dim, indices, offsets, lo, hi)
}

// PrefetchBags asks for the rows of a table of format f that bags [lo, hi)
// pool to be brought into L2, without waiting for them: a caller that
// pools those bags after other work gives the memory system that long to
// fetch them, where the pooling kernels' own prefetching only runs a few
// dozen rows ahead of themselves. It is a hint: it changes no memory,
// and arguments it cannot use (bad offsets, indices out of range) make it
// do less, never fault, since a prefetch of any address is harmless.
func PrefetchBags(f TableFormat, table []byte, dim int, indices []int64, offsets []int32, lo, hi int) {
	if !f.Valid() || dim < 1 || lo < 0 || lo >= hi || hi >= len(offsets) {
		return
	}
	p0, p1 := int(offsets[lo]), int(offsets[hi])
	if p0 < 0 || p1 > len(indices) || p0 >= p1 || len(table) == 0 {
		return
	}
	prefetchBagRows(table, f.RowBytes(dim), indices[p0:p1])
}
