package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/rqtools/rq/precision"
)

// TableFormat is how the rows of an embedding table are stored. The
// quantized formats are the "fused" row-wise layouts of FBGEMM and PyTorch
// (torch.ops.quantized.embedding_bag_{byte,4bit,2bit}_prepack): every row
// carries its own scale and bias after its values, so a lookup touches one
// contiguous run of bytes.
type TableFormat uint8

const (
	// TableF32 rows are dim little-endian float32 values.
	TableF32 TableFormat = iota + 1
	// TableF16 rows are dim little-endian IEEE binary16 values.
	TableF16
	// TableQ8 rows are dim uint8 codes q, then float32 scale, then float32
	// bias (FBGEMM's "8-bit rowwise, SB float"); value = scale*q + bias.
	// Row stride dim+8.
	TableQ8
	// TableQ4 rows are ceil(dim/2) bytes of 4-bit codes, element 2i in the
	// low nibble of byte i and 2i+1 in the high nibble, then fp16 scale and
	// fp16 bias ("SB half"). Row stride ceil(dim/2)+4.
	TableQ4
	// TableQ2 rows are ceil(dim/4) bytes of 2-bit codes, element 4i+k in
	// bits 2k..2k+1 of byte i, then fp16 scale and fp16 bias. Row stride
	// ceil(dim/4)+4.
	TableQ2
)

// formatPrecision is each format's precision: the one map between the
// storage formats and rq's precision vocabulary.
var formatPrecision = [...]precision.Precision{
	TableF32: precision.FP32,
	TableF16: precision.FP16,
	TableQ8:  precision.Int8,
	TableQ4:  precision.Int4,
	TableQ2:  precision.Int2,
}

// Precision is the format's precision as plans and quantized files name
// it (int4 for TableQ4); 0 for an invalid format.
func (f TableFormat) Precision() precision.Precision {
	if !f.Valid() {
		return 0
	}
	return formatPrecision[f]
}

// TableFormatOf is the format a table stored at p uses; false when no
// table format holds p (bf16, or an invalid p).
func TableFormatOf(p precision.Precision) (TableFormat, bool) {
	for f := TableF32; f.Valid(); f++ {
		if formatPrecision[f] == p {
			return f, true
		}
	}
	return 0, false
}

// String names the format as reports and cost models do: its precision's
// table label ("fp16", "int4-rowwise").
func (f TableFormat) String() string {
	if !f.Valid() {
		return fmt.Sprintf("TableFormat(%d)", uint8(f))
	}
	return f.Precision().TableLabel()
}

// Valid reports whether f is one of the formats above.
func (f TableFormat) Valid() bool { return f >= TableF32 && f <= TableQ2 }

// Bits is the width of one stored value: 32, 16, 8, 4 or 2 (0 if invalid).
func (f TableFormat) Bits() int {
	switch f {
	case TableF32:
		return 32
	case TableF16:
		return 16
	case TableQ8:
		return 8
	case TableQ4:
		return 4
	case TableQ2:
		return 2
	}
	return 0
}

// dataBytes is the size of a row's values, without scale and bias.
func (f TableFormat) dataBytes(dim int) int {
	switch f {
	case TableF32:
		return 4 * dim
	case TableF16:
		return 2 * dim
	case TableQ8:
		return dim
	case TableQ4:
		return (dim + 1) / 2
	case TableQ2:
		return (dim + 3) / 4
	}
	return 0
}

// trailerBytes is the size of a row's scale and bias.
func (f TableFormat) trailerBytes() int {
	switch f {
	case TableQ8:
		return 8
	case TableQ4, TableQ2:
		return 4
	}
	return 0
}

// RowBytes is the stride in bytes of a table row of dim values, or 0 for an
// invalid format or negative dim. dim must be small enough that the result
// fits in an int (callers validate dims against file sizes first).
func (f TableFormat) RowBytes(dim int) int {
	if dim < 0 || !f.Valid() {
		return 0
	}
	return f.dataBytes(dim) + f.trailerBytes()
}

// FormatForBits returns the quantized format with b-bit codes (8, 4 or 2).
func FormatForBits(b int) (TableFormat, bool) {
	switch b {
	case 8:
		return TableQ8, true
	case 4:
		return TableQ4, true
	case 2:
		return TableQ2, true
	}
	return 0, false
}

// RowBytes8 is the row stride of an 8-bit row-wise table: dim + 8.
func RowBytes8(dim int) int { return TableQ8.RowBytes(dim) }

// RowBytesN is the row stride of a 4- or 2-bit row-wise table:
// ceil(dim*bits/8) + 4. It panics for other bit widths.
func RowBytesN(bits, dim int) int {
	return nbitFormat("RowBytesN", bits).RowBytes(dim)
}

func nbitFormat(fn string, bits int) TableFormat {
	switch bits {
	case 4:
		return TableQ4
	case 2:
		return TableQ2
	}
	panic(fmt.Sprintf("kernels.%s: %d-bit codes, want 4 or 2", fn, bits))
}

// checkQuant panics unless w holds rows*dim floats and dst rows*rowBytes
// bytes. Callers size both from validated table shapes, so a mismatch is a
// programmer error, as for PackF32.
func checkQuant(fn string, w []float32, rows, dim, rowBytes int, dst []byte) {
	switch {
	case rows < 0 || dim < 0:
		panic(fmt.Sprintf("kernels.%s: bad shape %d x %d", fn, rows, dim))
	case dim > 0 && rows > len(w)/dim, len(w) < rows*dim:
		panic(fmt.Sprintf("kernels.%s: %d floats for a %d x %d table", fn, len(w), rows, dim))
	case rowBytes > 0 && rows > len(dst)/rowBytes, len(dst) < rows*rowBytes:
		panic(fmt.Sprintf("kernels.%s: %d bytes of output for %d rows of %d bytes", fn, len(dst), rows, rowBytes))
	}
}

// The quantizers below reproduce PyTorch 1.13's prepack operators bit for
// bit, including their corner cases (documented per function), because a
// table quantized by rq and one quantized by PyTorch must give the same
// model. They work on any run of whole rows, so huge tables can be
// quantized chunk by chunk while streaming.
//
// PyTorch's arithmetic is float32 throughout (no fused multiply-add: the
// reference C++ is built for baseline x86-64); Go rounds every float32
// operation the same way, and explicit float32() conversions below keep the
// compiler from fusing a*b+c where PyTorch does not.

// minElement and maxElement are std::min_element / std::max_element: the
// first element wins ties (so the sign of a zero minimum depends on order)
// and NaN is never "less" than anything, so a NaN in position 0 is the
// result and a NaN elsewhere is skipped.
func minElement(row []float32) float32 {
	m := row[0]
	for _, x := range row[1:] {
		if x < m {
			m = x
		}
	}
	return m
}

func maxElement(row []float32) float32 {
	m := row[0]
	for _, x := range row[1:] {
		if m < x {
			m = x
		}
	}
	return m
}

// lrintf is C's lrintf on x86-64: round half to even into an int64; NaN and
// values outside the int64 range give math.MinInt64 (cvtss2si's "integer
// indefinite").
func lrintf(x float32) int64 {
	if x != x || x >= 0x1p63 || x < -0x1p63 {
		return math.MinInt64
	}
	return int64(math.RoundToEven(float64(x)))
}

// halfPT is c10::Half(float): F32ToF16 (round to nearest even), except that
// every NaN becomes the canonical quiet NaN 0x7e00 with its sign.
func halfPT(x float32) uint16 {
	if x != x {
		return uint16(math.Float32bits(x)>>16)&0x8000 | 0x7e00
	}
	return F32ToF16(x)
}

// roundHalf rounds x to the nearest fp16 value, as a float32.
func roundHalf(x float32) float32 { return F16ToF32(halfPT(x)) }

// QuantizeRows8 writes rows x dim values of w (row-major) to dst in the
// TableQ8 layout, exactly as torch.ops.quantized.embedding_bag_byte_prepack
// (PyTorch 1.13, and FBGEMM's FloatToFused8BitRowwiseQuantizedSBFloat
// reference) does:
//
//	min, max = min_element(row), max_element(row)
//	range = max - min
//	scale = range / 255; bias = min          (stored as float32)
//	inv = 255 / (range + 1e-8)
//	q[j] = uint8(lrintf((row[j] - min) * inv))   (low 8 bits, no clamp)
//
// so q never exceeds 255 for finite rows. A row whose range overflows or
// holds ±Inf gets scale Inf and codes 0 where the product is NaN; NaN
// elements get code 0. dst must hold rows*RowBytes8(dim) bytes.
func QuantizeRows8(w []float32, rows, dim int, dst []byte) {
	rb := RowBytes8(dim)
	checkQuant("QuantizeRows8", w, rows, dim, rb, dst)
	if dim == 0 {
		return
	}
	for r := 0; r < rows; r++ {
		row := w[r*dim : r*dim+dim]
		out := dst[r*rb : r*rb+rb]
		mn, mx := minElement(row), maxElement(row)
		rng := mx - mn
		inv := float32(255) / (rng + float32(1e-8))
		for j, x := range row {
			out[j] = uint8(lrintf((x - mn) * inv))
		}
		binary.LittleEndian.PutUint32(out[dim:], math.Float32bits(rng/255))
		binary.LittleEndian.PutUint32(out[dim+4:], math.Float32bits(mn))
	}
}

// QuantizeRowsN writes rows x dim values of w to dst with bits-bit codes
// (4 or 2: TableQ4 or TableQ2), exactly as torch.ops.quantized.
// embedding_bag_{4,2}bit_prepack (optimized_qparams=False) does:
//
//	min = half(min_element(row)); max = max_element(row)   (half: fp16 RNE)
//	range = max - min
//	scale = half(range == 0 ? 1 : range / (2^bits - 1))
//	inv = 1 / scale
//	if scale == 0 or inv is ±Inf { scale = 1; inv = 1 }   (ranges below fp16's subnormals)
//	q[j] = clamp(int32(lrintf((row[j] - min) * inv)), 0, 2^bits - 1)
//	stored: codes, then fp16 scale, fp16 min
//
// Because min is rounded to fp16 first, elements below it get code 0 and a
// row whose minimum exceeds fp16's range gets bias ±Inf (all codes 0).
// PyTorch accepts only dims that fill whole bytes; any dim works here, the
// unused high bits of the last byte being zero. dst must hold
// rows*RowBytesN(bits, dim) bytes.
func QuantizeRowsN(bits int, w []float32, rows, dim int, dst []byte) {
	f := nbitFormat("QuantizeRowsN", bits)
	rb := f.RowBytes(dim)
	checkQuant("QuantizeRowsN", w, rows, dim, rb, dst)
	if dim == 0 {
		return
	}
	for r := 0; r < rows; r++ {
		row := w[r*dim : r*dim+dim]
		quantRowN(bits, row, minElement(row), maxElement(row), dst[r*rb:r*rb+rb])
	}
}

// quantRowN quantizes one row with the given (unrounded) min and max, the
// tail of PyTorch's _qembeddingbag_nbit_prepack_helper.
func quantRowN(bits int, row []float32, xmin, xmax float32, out []byte) {
	qmax := int32(1)<<bits - 1
	xmin = roundHalf(xmin)
	rng := xmax - xmin
	sh := halfPT(1)
	if rng != 0 {
		sh = halfPT(rng / float32(qmax))
	}
	scale := F16ToF32(sh)
	inv := float32(1)
	if scale != 0 {
		inv = 1 / scale
	}
	if scale == 0 || math.IsInf(float64(inv), 0) {
		sh, inv = halfPT(1), 1
	}
	per := 8 / bits
	nb := (len(row) + per - 1) / per
	clear(out[:nb])
	for j, x := range row {
		q := int32(lrintf((x - xmin) * inv)) // C's long -> int: the low 32 bits
		q = max(0, min(q, qmax))
		out[j/per] |= byte(q) << (uint(j%per) * uint(bits))
	}
	binary.LittleEndian.PutUint16(out[nb:], sh)
	binary.LittleEndian.PutUint16(out[nb+2:], halfPT(xmin))
}

// The defaults of PyTorch's optimized_qparams search
// (embedding_bag_4bit_prepack(w, optimized_qparams=True)).
const (
	GreedyBins  = 200
	GreedyRatio = 0.16
)

// QuantizeRowsNGreedy is QuantizeRowsN with each row's [min, max] chosen by
// PyTorch's greedy search (embedding_bag_{4,2}bit_prepack with
// optimized_qparams=True, nbins, ratio; at::choose_qparams_optimized), which
// shrinks the range one bin of (max-min)/nbins at a time from whichever end
// lowers the L2 quantization error more, for up to nbins*ratio bins, keeping
// the best local optimum. The result matches PyTorch 1.13 bit for bit, with
// one deliberate difference: when a bin is narrower than half an ulp of the
// bounds (rows whose values span only a few ulps, e.g. all within 1e-6 of
// 1.0) PyTorch's loop stops making progress and never terminates; here the
// search stops at that point, returning what PyTorch's loop holds forever.
// nbins must be >= 1.
func QuantizeRowsNGreedy(bits int, w []float32, rows, dim int, nbins int, ratio float64, dst []byte) {
	f := nbitFormat("QuantizeRowsNGreedy", bits)
	if nbins < 1 {
		panic(fmt.Sprintf("kernels.QuantizeRowsNGreedy: nbins = %d, want >= 1", nbins))
	}
	rb := f.RowBytes(dim)
	checkQuant("QuantizeRowsNGreedy", w, rows, dim, rb, dst)
	if dim == 0 {
		return
	}
	for r := 0; r < rows; r++ {
		row := w[r*dim : r*dim+dim]
		xmin, xmax := greedyRange(row, bits, nbins, ratio)
		quantRowN(bits, row, xmin, xmax, dst[r*rb:r*rb+rb])
	}
}

// greedyRange is at::choose_qparams_optimized: it returns (xmin, xmax).
func greedyRange(row []float32, bits, nbins int, ratio float64) (float32, float32) {
	xmin, xmax := minElement(row), maxElement(row)
	stepsize := (xmax - xmin) / float32(nbins)
	// int min_bins = n_bins * (1.0 - (float)ratio): double arithmetic, truncated.
	minBins := int(float64(nbins) * (1.0 - float64(float32(ratio))))
	loss := quantLoss(row, xmin, xmax, bits)
	best := loss
	curMin, curMax, curLoss := xmin, xmax, loss
	thr := float32(minBins) * stepsize
	for curMin+thr < curMax {
		loss1 := quantLoss(row, curMin+stepsize, curMax, bits)
		loss2 := quantLoss(row, curMin, curMax-stepsize, bits)
		if curLoss < loss1 && curLoss < loss2 && curLoss < best {
			best = curLoss
			xmin, xmax = curMin, curMax
		}
		oldMin, oldMax := curMin, curMax
		if loss1 < loss2 {
			curMin += stepsize
			curLoss = loss1
		} else {
			curMax -= stepsize
			curLoss = loss2
		}
		if curMin == oldMin && curMax == oldMax {
			// A step below half an ulp: PyTorch would repeat this iteration
			// forever with the same state (see QuantizeRowsNGreedy).
			break
		}
	}
	return xmin, xmax
}

// quantLoss is PyTorch's calculate_quant_loss: the L2 norm of the error of
// fake-quantizing row with [xmin, xmax], in float32 with a sequential sum.
func quantLoss(row []float32, xmin, xmax float32, bits int) float32 {
	xmin = roundHalf(xmin)
	rng := xmax - xmin
	qmax := float32(int(1)<<bits - 1)
	scale := float32(1)
	if rng != 0 {
		scale = roundHalf(rng / qmax)
	}
	inv := float32(1)
	if scale != 0 {
		inv = 1 / scale
	}
	var norm float32
	for _, x := range row {
		t := float32(math.RoundToEven(float64((x - xmin) * inv))) // nearbyint
		if qmax < t {                                             // std::min<float>(t, qmax)
			t = qmax
		}
		if !(0 < t) { // std::max(0.0f, t): NaN becomes 0
			t = 0
		}
		q := float32(t*scale) + xmin
		d := x - q
		norm += float32(d * d)
	}
	return float32(math.Sqrt(float64(norm)))
}

// QuantizeRowsF16 writes rows x dim values of w to dst as little-endian
// fp16 (TableF16), rounding to nearest even like PyTorch's .half(); NaNs
// become the canonical quiet NaN. dst must hold rows*dim*2 bytes.
func QuantizeRowsF16(w []float32, rows, dim int, dst []byte) {
	checkQuant("QuantizeRowsF16", w, rows, dim, 2*dim, dst)
	for i, x := range w[:rows*dim] {
		binary.LittleEndian.PutUint16(dst[2*i:], halfPT(x))
	}
}

// DequantizeRows expands rows x dim values stored in format f (src, rows *
// f.RowBytes(dim) bytes) to float32 in dst (rows*dim). fp32 and fp16 values
// are copied exactly. A quantized value is what an embedding bag holding
// just that row yields:
//
//	v = fma(scale, q, 0 + bias)
//
// evaluated as PyTorch does (in double precision, then rounded to float32),
// so the result is bit-identical to torch.ops.quantized.
// embedding_bag_*_rowwise_offsets with one index per bag.
func DequantizeRows(f TableFormat, src []byte, rows, dim int, dst []float32) {
	rb := f.RowBytes(dim)
	switch {
	case !f.Valid():
		panic(fmt.Sprintf("kernels.DequantizeRows: invalid format %v", f))
	case rows < 0 || dim < 0:
		panic(fmt.Sprintf("kernels.DequantizeRows: bad shape %d x %d", rows, dim))
	case rb > 0 && rows > len(src)/rb, dim > 0 && rows > len(dst)/dim:
		panic(fmt.Sprintf("kernels.DequantizeRows: %d bytes in, %d floats out for %d rows of %v dim %d", len(src), len(dst), rows, f, dim))
	}
	for r := 0; r < rows; r++ {
		o := dst[r*dim : r*dim+dim]
		row := src[r*rb : r*rb+rb]
		switch f {
		case TableF32:
			for j := range o {
				o[j] = math.Float32frombits(binary.LittleEndian.Uint32(row[4*j:]))
			}
		case TableF16:
			for j := range o {
				o[j] = F16ToF32(binary.LittleEndian.Uint16(row[2*j:]))
			}
		default:
			clear(o)
			accumRow(f, row, dim, 1, o)
		}
	}
}

// rowScaleBias returns the scale and bias of a quantized row.
func rowScaleBias(f TableFormat, row []byte, dim int) (float32, float32) {
	nb := f.dataBytes(dim)
	if f == TableQ8 {
		return math.Float32frombits(binary.LittleEndian.Uint32(row[nb:])),
			math.Float32frombits(binary.LittleEndian.Uint32(row[nb+4:]))
	}
	return F16ToF32(binary.LittleEndian.Uint16(row[nb:])), F16ToF32(binary.LittleEndian.Uint16(row[nb+2:]))
}

// accumRow adds w times one stored row to o (len dim), with the pooling
// arithmetic every bag implementation follows (see EmbeddingBag):
//
//	fp32/fp16:  o[j] = o[j] + float32(w*v[j])                 (two roundings)
//	quantized:  s, b = float32(w*scale), float32(w*bias)
//	            o[j] = float32(float64(s)*q[j] + float64(o[j]+b))
//
// The quantized form is PyTorch's fma(s, q, o + b): C++ promotes the uint8
// code to double, so the fused multiply-add runs in double precision and is
// rounded to float32 afterwards. s*q is exact in double, so a plain double
// multiply and add gives the same result whether or not Go fuses it.
func accumRow(f TableFormat, row []byte, dim int, w float32, o []float32) {
	o = o[:dim]
	switch f {
	case TableF32:
		row = row[:4*dim]
		if w == 1 {
			for j := range o {
				o[j] += math.Float32frombits(binary.LittleEndian.Uint32(row[4*j:]))
			}
			return
		}
		for j := range o {
			o[j] += float32(w * math.Float32frombits(binary.LittleEndian.Uint32(row[4*j:])))
		}
	case TableF16:
		row = row[:2*dim]
		for j := range o {
			o[j] += float32(w * F16ToF32(binary.LittleEndian.Uint16(row[2*j:])))
		}
	case TableQ8:
		sc, bi := rowScaleBias(f, row, dim)
		s, b := float64(float32(w*sc)), float32(w*bi)
		for j, q := range row[:dim] {
			o[j] = float32(s*float64(q) + float64(o[j]+b))
		}
	case TableQ4:
		sc, bi := rowScaleBias(f, row, dim)
		s, b := float64(float32(w*sc)), float32(w*bi)
		for j := range o {
			q := row[j>>1] >> (uint(j&1) * 4) & 15
			o[j] = float32(s*float64(q) + float64(o[j]+b))
		}
	case TableQ2:
		sc, bi := rowScaleBias(f, row, dim)
		s, b := float64(float32(w*sc)), float32(w*bi)
		for j := range o {
			q := row[j>>2] >> (uint(j&3) * 2) & 3
			o[j] = float32(s*float64(q) + float64(o[j]+b))
		}
	}
}
