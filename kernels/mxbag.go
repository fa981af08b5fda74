package kernels

import (
	"fmt"

	"github.com/rqtools/rq/precision"
)

// MX tables: an embedding table whose rows are quantized to an MX format
// in blocks of 32 along the embedding dimension (the last block of a row
// may be shorter; a row shorter than 32 is one block), in two arrays that
// any reader can decode without rq:
//
//	codes  [rows, MXCodeBytes(f, dim)]  each row's elements as QuantizeMX's
//	                                    little-endian bit stream, padded to a byte
//	scales [rows, MXScales(dim)]        each row's E8M0 scale bytes
//
// Blocks never straddle rows, and a block of 32 elements fills whole bytes
// (32·bits/8), so a row's block b starts at byte b·4·bits of its codes.

// QuantizeMXRows quantizes rows x dim values of w (row-major) into codes
// and scales in the MX table layout. A NaN or Inf is an *MXError naming
// tensor, the row and the column. codes and scales must hold
// rows·MXCodeBytes(f, dim) and rows·MXScales(dim) bytes. Rows are
// independent, so a table can be quantized a chunk of rows at a time.
func QuantizeMXRows(f MXFormat, tensor string, w []float32, rows, dim int, codes, scales []byte) error {
	p := f.params()
	rb, ns := MXCodeBytes(f, dim), MXScales(dim)
	checkMXRows("QuantizeMXRows", f, rows, dim, codes, scales, len(w))
	clear(codes[:rows*rb])
	for r := range rows {
		if err := quantizeMX(p, tensor, r, w[r*dim:r*dim+dim], scales[r*ns:r*ns+ns], codes[r*rb:r*rb+rb]); err != nil {
			return err
		}
	}
	return nil
}

// DequantizeMXRows expands rows x dim values of an MX table into dst
// (rows·dim floats), each value as DequantizeMX decodes it.
func DequantizeMXRows(f MXFormat, codes, scales []byte, rows, dim int, dst []float32) {
	rb, ns := MXCodeBytes(f, dim), MXScales(dim)
	checkMXRows("DequantizeMXRows", f, rows, dim, codes, scales, len(dst))
	for r := range rows {
		DequantizeMX(f, scales[r*ns:r*ns+ns], codes[r*rb:r*rb+rb], dst[r*dim:r*dim+dim])
	}
}

// checkMXRows panics unless the slices hold rows x dim values of f:
// callers size them from validated shapes, so a mismatch is a programmer
// error, as for QuantizeRows8.
func checkMXRows(fn string, f MXFormat, rows, dim int, codes, scales []byte, floats int) {
	f.params()
	rb, ns := MXCodeBytes(f, dim), MXScales(dim)
	switch {
	case rows < 0 || dim < 0:
		panic(fmt.Sprintf("kernels.%s: bad shape %d x %d", fn, rows, dim))
	case dim > 0 && rows > floats/dim, floats < rows*dim:
		panic(fmt.Sprintf("kernels.%s: %d floats for a %d x %d table", fn, floats, rows, dim))
	case rb > 0 && rows > len(codes)/rb, ns > 0 && rows > len(scales)/ns, len(codes) < rows*rb, len(scales) < rows*ns:
		panic(fmt.Sprintf("kernels.%s: %d code and %d scale bytes for %d rows of %v dim %d", fn, len(codes), len(scales), rows, f, dim))
	}
}

// MXBagTable is an embedding table in an MX format, ready for pooling; its
// Pool method has the signature of the model's bag kernels. Codes and
// Scales may alias a memory-mapped file (they are only read).
type MXBagTable struct {
	Format MXFormat
	Rows   int64
	Dim    int
	Codes  []byte // [Rows, MXCodeBytes(Format, Dim)]
	Scales []byte // [Rows, MXScales(Dim)]
	// Mean selects mean pooling instead of sum.
	Mean bool
}

// mxPrecision is each MX format's precision: the one map between the MX
// element formats and rq's precision vocabulary (as formatPrecision is for
// the row-wise formats). Plans, quantized files and ladders name an MX
// table by the precision; the kernels work on the MXFormat.
var mxPrecision = [...]precision.Precision{
	MXFP8E4M3: precision.MXFP8E4M3,
	MXFP8E5M2: precision.MXFP8E5M2,
	MXFP6E3M2: precision.MXFP6E3M2,
	MXFP6E2M3: precision.MXFP6E2M3,
	MXFP4E2M1: precision.MXFP4,
	MXINT8:    precision.MXINT8,
}

// Precision is the format's precision as plans and quantized files name
// it (mxfp4 for MXFP4E2M1); 0 for an invalid format.
func (f MXFormat) Precision() precision.Precision {
	if !f.Valid() {
		return 0
	}
	return mxPrecision[f]
}

// MXFormatOf is the MX format of a table stored at p; false when p is not
// an MX precision.
func MXFormatOf(p precision.Precision) (MXFormat, bool) {
	for _, f := range MXFormats {
		if mxPrecision[f] == p {
			return f, true
		}
	}
	return 0, false
}

// NewMXBagTable checks that codes and scales hold exactly rows rows of
// format f with dim values.
func NewMXBagTable(f MXFormat, rows int64, dim int, codes, scales []byte) (*MXBagTable, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("MX embedding table: invalid format %v", f)
	}
	if rows < 0 || dim < 1 {
		return nil, fmt.Errorf("MX embedding table: bad shape %d x %d", rows, dim)
	}
	rb, ns := int64(MXCodeBytes(f, dim)), int64(MXScales(dim))
	if rows > int64(len(codes))/rb || int64(len(codes)) != rows*rb {
		return nil, fmt.Errorf("MX embedding table: %d code bytes for %d rows of %d bytes (%v, dim %d)", len(codes), rows, rb, f, dim)
	}
	if int64(len(scales)) != rows*ns {
		return nil, fmt.Errorf("MX embedding table: %d scale bytes for %d rows of %d scales (%v, dim %d)", len(scales), rows, ns, f, dim)
	}
	return &MXBagTable{Format: f, Rows: rows, Dim: dim, Codes: codes, Scales: scales}, nil
}

// Precision is the table's precision (mxfp4 for MXFP4E2M1): with Bytes and
// Pool it makes the table a model.BagKernel.
func (t *MXBagTable) Precision() precision.Precision { return t.Format.Precision() }

// DequantizeRows expands rows [r0, r0+n) into dst (n·Dim floats), each
// value as DequantizeMX decodes it: what the bag pools for those rows.
// It panics when the rows are outside the table.
func (t *MXBagTable) DequantizeRows(r0 int64, n int, dst []float32) {
	if r0 < 0 || n < 0 || r0+int64(n) > t.Rows {
		panic(fmt.Sprintf("kernels.MXBagTable.DequantizeRows: rows [%d, %d) of %d", r0, r0+int64(n), t.Rows))
	}
	rb, ns := int64(MXCodeBytes(t.Format, t.Dim)), int64(MXScales(t.Dim))
	DequantizeMXRows(t.Format, t.Codes[r0*rb:(r0+int64(n))*rb], t.Scales[r0*ns:(r0+int64(n))*ns], n, t.Dim, dst)
}

// Bytes is the size of the table's data: codes and scales.
func (t *MXBagTable) Bytes() int64 { return int64(len(t.Codes) + len(t.Scales)) }

// Shape is the table's rows and dimension.
func (t *MXBagTable) Shape() (int64, int) { return t.Rows, t.Dim }

// Whole reports whether Codes and Scales hold all Rows rows.
func (t *MXBagTable) Whole() bool {
	return t.Dim > 0 && int64(len(t.Codes)) == t.Rows*int64(MXCodeBytes(t.Format, t.Dim)) &&
		int64(len(t.Scales)) == t.Rows*int64(MXScales(t.Dim))
}

// Pool pools bags [lo, hi) into out (see EmbeddingBagMX).
func (t *MXBagTable) Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	return EmbeddingBagMX(t.Format, t.Codes, t.Scales, t.Rows, t.Dim, indices, offsets, weights, t.Mean, out, ldo, lo, hi)
}

// Prefetch asks for the code and scale rows of bags [lo, hi) to be brought
// toward the core (see PrefetchBags); a hint, harmless on any arguments.
func (t *MXBagTable) Prefetch(indices []int64, offsets []int32, lo, hi int) {
	if t.Dim < 1 || lo < 0 || lo >= hi || hi >= len(offsets) || len(t.Codes) == 0 {
		return
	}
	p0, p1 := int(offsets[lo]), int(offsets[hi])
	if p0 < 0 || p1 > len(indices) || p0 >= p1 {
		return
	}
	prefetchBagRows(t.Codes, MXCodeBytes(t.Format, t.Dim), indices[p0:p1])
	prefetchBagRows(t.Scales, MXScales(t.Dim), indices[p0:p1])
}

// EmbeddingBagMX pools bags [lo, hi) of an MX table (codes and scales as
// QuantizeMXRows lays them out) with EmbeddingBag's conventions and
// arithmetic for fp32 tables: each value is decoded as DequantizeMX does,
//
//	v[j] = float32(elem(code j) · 2^e(block of j))
//
// and then pooled exactly as the fp32 bag pools a row holding v: indices
// in bag order, o[j] = o[j] + float32(w·v[j]) (o[j] + v[j] without
// weights), mean dividing once at the end. So the result is bit for bit
// that of EmbeddingBag(TableF32) on DequantizeMXRows of the table, on
// every implementation of the fp32 bag, for any bytes (for NaN codes and
// scales up to the NaN's payload). Index checks, the return value and the panics on inconsistent
// arguments are EmbeddingBag's.
func EmbeddingBagMX(f MXFormat, codes, scales []byte, rows int64, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo int, lo, hi int) int {
	if !f.Valid() {
		panic(fmt.Sprintf("kernels.EmbeddingBagMX: invalid format %v", f))
	}
	if rows < 0 || dim < 0 {
		panic(fmt.Sprintf("kernels.EmbeddingBagMX: bad shape rows=%d dim=%d", rows, dim))
	}
	rb, ns := MXCodeBytes(f, dim), MXScales(dim)
	if rb > 0 && (rows > int64(len(codes)/rb) || rows > int64(len(scales)/ns)) {
		panic(fmt.Sprintf("kernels.EmbeddingBagMX: %d code and %d scale bytes for %d rows of %v dim %d", len(codes), len(scales), rows, f, dim))
	}
	// The offsets, weights and output checks are the fp32 bag's: an fp32
	// table of dim values per row stands in for the sizes (never read).
	checkBagArgs(TableF32, nil, 0, dim, indices, offsets, weights, out, ldo, lo, hi)
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
	mxBagPools.fn()(f, codes, scales, rb, ns, dim, indices, offsets, weights, mean, out, ldo, lo, hi)
	return -1
}

// mxBagFn is the signature of the MX bag's implementations: they receive
// arguments validated by EmbeddingBagMX: indices in range, lo < hi,
// dim >= 1, rb = MXCodeBytes(f, dim), ns = MXScales(dim).
type mxBagFn func(f MXFormat, codes, scales []byte, rb, ns, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo, lo, hi int)

// mxBagPools is EmbeddingBagMX's family: mxBagArchImpls (mxbag_amd64.go or
// mxbag_noasm.go), then mxBagGo.
var mxBagPools = newFamily(mxBagArchImpls, mxBagGo)

// MXBagImpl names the MX bag implementation in use ("avx512" or "go"),
// for diagnostics and for keying measurements of the MX bags' speed.
func MXBagImpl() string { return mxBagPools.name() }

// mxBagGo is the portable implementation: mxAccumRow per index, in bag
// order, then the mean's one division per bag.
func mxBagGo(f MXFormat, codes, scales []byte, rb, ns, dim int, indices []int64, offsets []int32, weights []float32, mean bool, out []float32, ldo, lo, hi int) {
	for i := lo; i < hi; i++ {
		o := out[i*ldo : i*ldo+dim]
		clear(o)
		b0, b1 := int(offsets[i]), int(offsets[i+1])
		for p := b0; p < b1; p++ {
			r := int(indices[p])
			w := float32(1)
			if weights != nil {
				w = weights[p]
			}
			mxAccumRow(f, codes[r*rb:r*rb+rb], scales[r*ns:r*ns+ns], w, weights != nil, o)
		}
		if mean {
			bagMean(dim, offsets, out, ldo, i, i+1) // while the row is in cache
		}
	}
}

// bagMean divides each non-empty bag of [lo, hi) by its size, once (an
// IEEE division, so every implementation of the MX and mixed bags shares
// it).
func bagMean(dim int, offsets []int32, out []float32, ldo, lo, hi int) {
	for i := lo; i < hi; i++ {
		if b0, b1 := offsets[i], offsets[i+1]; b1 > b0 {
			n := float32(b1 - b0)
			o := out[i*ldo : i*ldo+dim]
			for j := range o {
				o[j] /= n
			}
		}
	}
}

// mxAccumRow adds one row to o (len dim): o[j] += float32(w·v[j]) when
// weighted, else o[j] += v[j], with v as EmbeddingBagMX defines it. Whole
// blocks go to a loop per element width over fixed-size arrays (no bounds
// checks; codes index tables of exactly 2^bits entries), the short last
// block to the generic stream reader. The explicit float32 conversions keep
// the compiler from fusing the decode multiply into the add.
func mxAccumRow(f MXFormat, codes, scales []byte, w float32, weighted bool, o []float32) {
	bits := f.Bits()
	lut := mxLUT[f]
	full := len(o) / MXBlock
	bb := MXBlock * bits / 8 // bytes per full block
	for b := range full {
		s := mxScaleLUT[scales[b]]
		ob := (*[MXBlock]float32)(o[b*MXBlock:])
		switch bits {
		case 8:
			mxBlock8((*[256]float32)(lut), (*[MXBlock]byte)(codes[b*bb:]), s, w, weighted, ob)
		case 6:
			mxBlock6((*[64]float32)(lut), (*[MXBlock * 6 / 8]byte)(codes[b*bb:]), s, w, weighted, ob)
		case 4:
			mxBlock4((*[16]float32)(lut), (*[MXBlock / 2]byte)(codes[b*bb:]), s, w, weighted, ob)
		}
	}
	if full*MXBlock < len(o) {
		s := mxScaleLUT[scales[full]]
		for j := full * MXBlock; j < len(o); j++ {
			v := float32(lut[mxCode(codes, bits, j)] * s)
			if weighted {
				v = float32(w * v)
			}
			o[j] += v
		}
	}
}

func mxBlock8(t *[256]float32, c *[MXBlock]byte, s, w float32, weighted bool, o *[MXBlock]float32) {
	if weighted {
		for j, q := range c {
			o[j] += float32(w * float32(t[q]*s))
		}
		return
	}
	for j, q := range c {
		o[j] += float32(t[q] * s)
	}
}

// mxBlock6 decodes four 6-bit codes from each three bytes.
func mxBlock6(t *[64]float32, c *[MXBlock * 6 / 8]byte, s, w float32, weighted bool, o *[MXBlock]float32) {
	for g := range MXBlock / 4 {
		u := uint32(c[3*g]) | uint32(c[3*g+1])<<8 | uint32(c[3*g+2])<<16
		v0, v1 := float32(t[u&63]*s), float32(t[u>>6&63]*s)
		v2, v3 := float32(t[u>>12&63]*s), float32(t[u>>18&63]*s)
		if weighted {
			v0, v1, v2, v3 = float32(w*v0), float32(w*v1), float32(w*v2), float32(w*v3)
		}
		og := (*[4]float32)(o[4*g:])
		og[0] += v0
		og[1] += v1
		og[2] += v2
		og[3] += v3
	}
}

// mxBlock4 decodes the low nibble, then the high one, of each byte.
func mxBlock4(t *[16]float32, c *[MXBlock / 2]byte, s, w float32, weighted bool, o *[MXBlock]float32) {
	for g, q := range c {
		v0, v1 := float32(t[q&15]*s), float32(t[q>>4]*s)
		if weighted {
			v0, v1 = float32(w*v0), float32(w*v1)
		}
		og := (*[2]float32)(o[2*g:])
		og[0] += v0
		og[1] += v1
	}
}
