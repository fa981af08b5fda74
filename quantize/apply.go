package quantize

import (
	"fmt"
	"math"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// RangeSource gives calibrated input ranges (calibrate.Ranges is one).
type RangeSource interface {
	Range(layer, method string) (lo, hi float32, err error)
}

// Greedy n-bit search parameters, as PyTorch's optimized_qparams prepack.
const (
	greedyBins  = 200
	greedyRatio = 0.16
)

// Apply returns a copy of net whose layers follow the plan, with
// low-precision weights quantized from net's fp32 ones (net is not
// modified; unchanged fp32 layers are shared). ranges may be nil when no
// layer uses static activations.
func Apply(net *model.Network, plan *Plan, ranges RangeSource) (*model.Network, error) {
	return apply(net, plan, ranges, true)
}

// ApplyFC is Apply for the FC layers only: tables stay fp32, for a caller
// that quantizes them while streaming them to a file (rq quantize on models
// larger than memory).
func ApplyFC(net *model.Network, plan *Plan, ranges RangeSource) (*model.Network, error) {
	return apply(net, plan, ranges, false)
}

func apply(net *model.Network, plan *Plan, ranges RangeSource, tables bool) (*model.Network, error) {
	if err := plan.Validate(net); err != nil {
		return nil, err
	}
	if err := CheckRanges(net, ranges); err != nil {
		return nil, err
	}
	if plan.NeedsRanges() && ranges == nil {
		return nil, fmt.Errorf("the plan quantizes activations statically: it needs calibrated ranges (rq calibrate, then --ranges)")
	}
	fc := func(l *model.Linear) (*model.Linear, error) { return QuantizeLinear(l, plan.Layer(l.Name), ranges) }
	// ApplyFC leaves every table as it is (nil: Map shares them); Apply
	// quantizes those the plan names (QuantizeTable returns an fp32 one
	// itself).
	var table func(*model.Table) (*model.Table, error)
	if tables {
		table = func(t *model.Table) (*model.Table, error) { return QuantizeTableFrom(t, plan.Layer(t.Name), ranges) }
	}
	return net.Map(fc, table)
}

// QuantizeLinear returns l under lp: l itself for fp32, else a copy
// sharing l's fp32 weights and bias and running on the low-precision kernel.
func QuantizeLinear(l *model.Linear, lp LayerPlan, ranges RangeSource) (*model.Linear, error) {
	if l.Weight == nil {
		return nil, fmt.Errorf("%s: no fp32 weights to quantize (is the model already quantized?)", l.Name)
	}
	k, err := QuantizeFC(l, lp, ranges)
	if err != nil || k == nil {
		return l, err
	}
	return &model.Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Weight: l.Weight, Bias: l.Bias, Kernel: k}, nil
}

// QuantizeTable returns t under lp: t itself for fp32, else a copy whose
// rows are quantized in memory into a kernels.BagTable (row-wise formats)
// or a kernels.MXBagTable (MX formats). A NaN or infinite value in the
// table is a *NonFiniteRowError: its row's range, scale and every code
// would be meaningless (and an MX block's shared scale with them).
func QuantizeTable(t *model.Table, lp LayerPlan) (*model.Table, error) {
	if lp.Precision == precision.FP32 {
		return t, nil
	}
	if lp.Precision == precision.Mixed {
		return nil, errMixedNeedsRows(t.Name)
	}
	if t.Weight == nil {
		return nil, fmt.Errorf("%s: no fp32 weights to quantize (is the model already quantized?)", t.Name)
	}
	if mf, ok := kernels.MXFormatOf(lp.Precision); ok {
		bt, err := QuantizeMXTable(mf, t.Name+".weight", t.Weight, t.Rows, t.Dim)
		if err != nil {
			return nil, err
		}
		return &model.Table{Name: t.Name, Rows: t.Rows, Dim: t.Dim, Weight: t.Weight, Kernel: bt}, nil
	}
	f, err := TableFormat(lp.Precision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	if err := CheckRowsFor(f, t.Name+".weight", t.Weight, 0, int(t.Rows), t.Dim); err != nil {
		return nil, err
	}
	data := make([]byte, t.Rows*int64(f.RowBytes(t.Dim)))
	QuantizeTableRows(f, lp.Greedy, t.Weight, int(t.Rows), t.Dim, data)
	bt, err := kernels.NewBagTable(f, t.Rows, t.Dim, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return &model.Table{Name: t.Name, Rows: t.Rows, Dim: t.Dim, Weight: t.Weight, Kernel: bt}, nil
}

// QuantizeMXTable quantizes a rows x dim fp32 table (tensor names it in
// errors) to MX format f: codes and scales as kernels.QuantizeMXRows lays
// them out. A NaN or ±Inf is the *NonFiniteRowError CheckRows gives every
// table format, found before anything is encoded; MX needs no range check
// (its scale reaches 2^127, so every finite float32 is in range).
func QuantizeMXTable(f kernels.MXFormat, tensor string, w []float32, rows int64, dim int) (*kernels.MXBagTable, error) {
	if err := CheckRows(tensor, w, 0, int(rows), dim); err != nil {
		return nil, err
	}
	codes := make([]byte, rows*int64(kernels.MXCodeBytes(f, dim)))
	scales := make([]byte, rows*int64(kernels.MXScales(dim)))
	if err := kernels.QuantizeMXRows(f, tensor, w, int(rows), dim, codes, scales); err != nil {
		return nil, err // unreachable after CheckRows; kept for the codec's own check
	}
	return kernels.NewMXBagTable(f, rows, dim, codes, scales)
}

// NonFiniteRowError reports a NaN or infinite value in an embedding table
// row that was to be quantized.
type NonFiniteRowError struct {
	Tensor string // the table's tensor, e.g. emb_l.3.weight
	Row    int64
	Col    int
	Value  float32
}

func (e *NonFiniteRowError) Error() string {
	return fmt.Sprintf("tensor %q: row %d holds %v (column %d); a row with a non-finite value has no quantization range", e.Tensor, e.Row, e.Value, e.Col)
}

// CheckRows returns a *NonFiniteRowError for the first NaN or ±Inf among
// rows x dim values w, the block of table tensor's rows that starts at row
// first. It costs one pass over values the encoder reads anyway, so
// callers that quantize a table block by block check each block as they go.
func CheckRows(tensor string, w []float32, first int64, rows, dim int) error {
	for i, v := range w[:rows*dim] {
		// Exponent all ones: infinite or NaN.
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return &NonFiniteRowError{Tensor: tensor, Row: first + int64(i/dim), Col: i % dim, Value: v}
		}
	}
	return nil
}

// maxHalf is fp16's largest finite value.
const maxHalf = 65504

// RangeRowError reports a finite table value that the table's format cannot
// hold: beyond fp16's range for fp16 rows, or for the fp16 scale and bias
// of 4- and 2-bit rows. Stored, it would become infinite.
type RangeRowError struct {
	Tensor string
	Row    int64
	Col    int
	Value  float32
	Format kernels.TableFormat
}

func (e *RangeRowError) Error() string {
	what := "fp16 values"
	if e.Format != kernels.TableF16 {
		what = "the fp16 scale and bias of " + e.Format.String() + " rows"
	}
	return fmt.Sprintf("tensor %q: row %d holds %v (column %d), beyond the ±%d that %s can hold (it would be stored as infinite); quantize this table to int8 or keep it fp32", e.Tensor, e.Row, e.Value, e.Col, maxHalf, what)
}

// CheckRowsFor is CheckRows, and for formats that store fp16 (fp16 rows,
// and the scale and bias of 4- and 2-bit rows) a *RangeRowError for the
// first value beyond fp16's range.
func CheckRowsFor(f kernels.TableFormat, tensor string, w []float32, first int64, rows, dim int) error {
	if err := CheckRows(tensor, w, first, rows, dim); err != nil {
		return err
	}
	if f != kernels.TableF16 && f != kernels.TableQ4 && f != kernels.TableQ2 {
		return nil
	}
	for i, v := range w[:rows*dim] {
		if v > maxHalf || v < -maxHalf {
			return &RangeRowError{Tensor: tensor, Row: first + int64(i/dim), Col: i % dim, Value: v, Format: f}
		}
	}
	return nil
}

// TableFormat maps a row-wise table precision to its storage format. The
// MX precisions have none: their format is kernels.MXFormatOf's.
func TableFormat(p precision.Precision) (kernels.TableFormat, error) {
	if f, ok := kernels.TableFormatOf(p); ok {
		return f, nil
	}
	if p.IsMX() {
		return 0, fmt.Errorf("precision %q is an MX table format, not a row-wise one (kernels.MXFormatOf)", named(p))
	}
	return 0, fmt.Errorf("no table format for precision %q", named(p))
}

// QuantizeTableRows quantizes rows x dim fp32 values into dst in format f
// (PyTorch's prepack rules; greedy range search for n-bit formats when
// asked). It works on any block of rows, so tables can be streamed.
func QuantizeTableRows(f kernels.TableFormat, greedy bool, w []float32, rows, dim int, dst []byte) {
	switch f {
	case kernels.TableF32:
		copy(dst, kernels.F32Bytes(w[:rows*dim]))
	case kernels.TableF16:
		kernels.QuantizeRowsF16(w, rows, dim, dst)
	case kernels.TableQ8:
		kernels.QuantizeRows8(w, rows, dim, dst)
	case kernels.TableQ4, kernels.TableQ2:
		if greedy {
			kernels.QuantizeRowsNGreedy(f.Bits(), w, rows, dim, greedyBins, greedyRatio, dst)
		} else {
			kernels.QuantizeRowsN(f.Bits(), w, rows, dim, dst)
		}
	}
}

// QuantizeFC builds the kernel for one FC layer under lp, or nil for fp32.
func QuantizeFC(l *model.Linear, lp LayerPlan, ranges RangeSource) (model.FCKernel, error) {
	switch lp.Precision {
	case precision.FP32:
		return nil, nil
	case precision.FP16:
		w := make([]uint16, len(l.Weight))
		kernels.F32ToF16Slice(w, l.Weight)
		return &model.F16FC{In: l.In, Out: l.Out, W: w}, nil
	case precision.BF16:
		return newBF16FC(l)
	case precision.MXFP8E4M3, precision.MXFP8E5M2, precision.MXFP6E3M2, precision.MXFP6E2M3, precision.MXFP4, precision.MXINT8:
		return newMXFC(l, lp)
	case precision.Int8:
		var q []int8
		var scale []float32
		if lp.WeightRange == FullRange {
			q, scale = quantizeWeightsFull(l.Weight, l.Out, l.In, lp.Weights == PerChannel)
		} else {
			q, scale = kernels.QuantizeWeightsI8(l.Weight, l.Out, l.In, lp.Weights == PerChannel)
		}
		k := &model.Int8FC{In: l.In, Out: l.Out, QWeight: q, WScale: scale, ReduceRange: lp.ReduceRange, FullRange: lp.WeightRange == FullRange}
		if lp.Activation == Static {
			lo, hi, err := ranges.Range(l.Name, lp.Method)
			if err != nil {
				return nil, err
			}
			k.Static = true
			k.InScale, k.InZero = kernels.ChooseQParamsU8(lo, hi, lp.ReduceRange)
		} else {
			k.PerRow = lp.Granularity == PerRow
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s: unknown precision %q", l.Name, named(lp.Precision))
}

// Simulate returns a copy of a quantized network computed in fp32: int8
// layers, and MX layers with MX activations, fake-quantize their inputs and
// use dequantized weights; fp16/bf16/MX layers and quantized tables use
// their dequantized weights. The
// difference from the real network is the arithmetic alone.
func Simulate(net *model.Network) (*model.Network, error) {
	fc := func(l *model.Linear) (*model.Linear, error) {
		if l.Kernel == nil {
			// fp32 already: shared, so its predictions are the same bits.
			return l, nil
		}
		c := &model.Linear{Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, Bias: l.Bias}
		switch k := l.Kernel.(type) {
		case *model.Int8FC:
			c.Kernel = &model.FakeQuantFC{Q: k}
		case *model.F16FC:
			c.Weight = make([]float32, len(k.W))
			kernels.F16ToF32Slice(c.Weight, k.W)
		case *model.MXFC:
			if k.DynamicAct {
				c.Kernel = &model.FakeQuantMXFC{Q: k}
			} else {
				c.Weight = k.Weight32()
			}
		default:
			w, err := simulatedWeight(l)
			if err != nil {
				return nil, err
			}
			c.Weight = w
		}
		return c, nil
	}
	table := func(t *model.Table) (*model.Table, error) {
		if bt, ok := t.Kernel.(*kernels.BagTable); t.Kernel == nil || ok && bt.Format == kernels.TableF32 {
			return t, nil
		}
		rt, ok := t.Kernel.(kernels.RowTable)
		if !ok {
			return nil, fmt.Errorf("%s: cannot simulate a %s table", t.Name, t.Label())
		}
		w := make([]float32, t.Rows*int64(t.Dim))
		rt.DequantizeRows(0, int(t.Rows), w)
		return &model.Table{Name: t.Name, Rows: t.Rows, Dim: t.Dim, Weight: w}, nil
	}
	return net.Map(fc, table)
}

// quantizeWeightsFull quantizes weights as PyTorch's per_tensor_symmetric
// (or per_channel_symmetric) MinMaxObserver does for qint8: scale =
// max|w| / 127.5 (half the width of [-128, 127]), q = clamp(round half to
// even(w * (1/scale)), -128, 127). A zero group gets scale 1.
func quantizeWeightsFull(w []float32, n, k int, perChannel bool) ([]int8, []float32) {
	q := make([]int8, n*k)
	groups, size := 1, n*k
	if perChannel {
		groups, size = n, k
	}
	scale := make([]float32, groups)
	for g := 0; g < groups; g++ {
		var amax float32
		for _, v := range w[g*size : (g+1)*size] {
			if a := float32(math.Abs(float64(v))); a > amax && !math.IsInf(float64(a), 0) {
				amax = a
			}
		}
		s := amax / 127.5
		if !(s > 0) {
			s = 1
		}
		scale[g] = s
		inv := 1 / s
		for i, v := range w[g*size : (g+1)*size] {
			r := math.RoundToEven(float64(v * inv))
			q[g*size+i] = int8(min(max(r, -128), 127))
		}
	}
	return q, scale
}
