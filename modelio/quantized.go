package modelio

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unsafe"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// The quantized file format (docs/format.md): a safetensors file whose
// __metadata__ has format=rq-quantized.
const (
	quantFormat  = "rq-quantized"
	QuantVersion = 1
)

// layerMeta is one layer's entry in the rq.layers metadata.
type layerMeta struct {
	Kind        string        `json:"kind"` // fc or table
	Precision   metaPrecision `json:"precision"`
	Activation  string        `json:"activation,omitempty"`
	Granularity string        `json:"granularity,omitempty"`
	Weights     string        `json:"weights,omitempty"`
	ReduceRange bool          `json:"reduce_range,omitempty"`
	WeightRange string        `json:"weight_range,omitempty"` // int8: narrow or full
	Dim         int           `json:"dim,omitempty"`          // tables: values per row; MX FC layers: inputs
	// NoBias marks an FC-like layer without a bias (DCN's V kernels); the
	// file then has no <layer>.bias tensor for it.
	NoBias bool `json:"no_bias,omitempty"`
	// Mixed tables (mixed.go): the table's rows and its parts' precisions.
	Rows          int64          `json:"rows,omitempty"`
	HotPrecision  *metaPrecision `json:"hot_precision,omitempty"`
	ColdPrecision *metaPrecision `json:"cold_precision,omitempty"`
}

// metaPrecision is a layer's "precision" in rq.layers, written and read
// through package precision's names. Reading keeps precision.Parse's
// refusal (err) instead of failing the whole rq.layers document, so that
// the error names the layer's tensor, as every other rq.layers fault does.
type metaPrecision struct {
	p   precision.Precision
	err error // a *precision.UnknownError
}

func (m metaPrecision) MarshalText() ([]byte, error) { return m.p.MarshalText() }

func (m *metaPrecision) UnmarshalText(b []byte) error {
	m.p, m.err = precision.Parse(string(b))
	return nil
}

// name is the precision as rq.layers gave it, for error messages ("" when
// it gave none).
func (m metaPrecision) name() string {
	if m.err != nil {
		return m.err.(*precision.UnknownError).Name
	}
	if m.p == 0 {
		return ""
	}
	return m.p.String()
}

// unknownPrecisionError is a *FormatError naming the tensor of a layer
// whose rq.layers precision rq does not know, that also wraps
// precision.Parse's *precision.UnknownError: errors.As finds either.
type unknownPrecisionError struct {
	*FormatError
	unknown error
}

func (e *unknownPrecisionError) Unwrap() []error { return []error{e.FormatError, e.unknown} }

// TableEncoding tells WriteQuantized to quantize an fp32 table while
// writing it: Encode turns a block of rows into Format's bytes. It lets a
// table larger than memory be quantized block by block from its
// memory-mapped fp32 source. With MX set the table is written in that MX
// format instead (Format and Encode unused): codes and scales by
// kernels.QuantizeMXRows, each tensor block by block.
type TableEncoding struct {
	Format kernels.TableFormat
	Encode func(w []float32, rows, dim int, dst []byte)
	MX     kernels.MXFormat
	// Check, when set, vets each block of source rows (the first is row
	// first) before it is encoded; its error stops the write.
	Check func(w []float32, first int64, rows, dim int) error
	// Mixed, when set, writes the table as a mixed table (mixed.go); the
	// fields above are then unused.
	Mixed *MixedEncoding
}

// QuantInfo is the provenance written into a quantized file.
type QuantInfo struct {
	SourceSHA256 string
	Plan         []byte // the plan's JSON
}

// encodeRowsBlock is how many table rows are quantized per write (bounded
// memory whatever the table size).
const encodeRowsBlock = 1 << 14

// WriteQuantized writes net as an rq quantized safetensors file,
// atomically. Layers carry their precision in their kernels (model.Int8FC,
// F16FC, BF16FC, kernels.BagTable, kernels.MXBagTable); fp32 tables named in tables are
// quantized while written. The output is deterministic.
func WriteQuantized(path string, net *model.Network, tables map[string]TableEncoding, info QuantInfo) error {
	return WriteQuantizedContext(context.Background(), path, net, tables, info)
}

// WriteQuantizedContext is WriteQuantized that stops, leaving any existing
// file at path untouched and no temporary file behind, when ctx is done
// (checked between tensors and between blocks of table rows).
func WriteQuantizedContext(ctx context.Context, path string, net *model.Network, tables map[string]TableEncoding, info QuantInfo) error {
	specs, meta, err := quantizedSpecs(ctx, net, tables, info)
	if err != nil {
		return err
	}
	return WriteSafetensors(path, specs, meta)
}

// quantizedSpecs lays out net as the tensors and metadata of an rq quantized
// file: each layer's tensors in the order of net.Layers (the bottom MLP, the
// tables, the top MLP), so the same network always gives the same bytes.
// Each tensor's Write stops once ctx is done.
func quantizedSpecs(ctx context.Context, net *model.Network, tables map[string]TableEncoding, info QuantInfo) ([]TensorSpec, map[string]string, error) {
	var specs []TensorSpec
	layers := map[string]layerMeta{}
	addFC := func(l *model.Linear) error {
		w := l.Name + ".weight"
		shape := []int{l.Out, l.In}
		switch k := l.Kernel.(type) {
		case nil:
			specs = append(specs, f32Spec(w, shape, l.Weight))
			layers[l.Name] = layerMeta{Kind: "fc", Precision: metaPrecision{p: precision.FP32}}
		case *model.F16FC:
			specs = append(specs, u16Spec(w, F16, shape, k.W))
			layers[l.Name] = layerMeta{Kind: "fc", Precision: metaPrecision{p: precision.FP16}}
		case *model.BF16FC:
			specs = append(specs, u16Spec(w, BF16, shape, k.W))
			layers[l.Name] = layerMeta{Kind: "fc", Precision: metaPrecision{p: precision.BF16}}
		case *model.MXFC:
			// The MX table layout, one row per output channel, blocks of 32
			// along the input; dim (the input width) is in rq.layers.
			specs = append(specs,
				bytesSpec(w, U8, []int{l.Out, kernels.MXCodeBytes(k.Format, l.In)}, k.Codes),
				bytesSpec(l.Name+".weight_scale", U8, []int{l.Out, kernels.MXScales(l.In)}, k.Scales))
			m := layerMeta{Kind: "fc", Precision: metaPrecision{p: k.Format.Precision()}, Dim: l.In}
			if k.DynamicAct {
				m.Activation = "dynamic"
			}
			layers[l.Name] = m
		case *model.Int8FC:
			specs = append(specs, bytesSpec(w, I8, shape, int8Bytes(k.QWeight)))
			specs = append(specs, f32Spec(l.Name+".weight_scale", []int{len(k.WScale)}, k.WScale))
			m := layerMeta{Kind: "fc", Precision: metaPrecision{p: precision.Int8}, Weights: "channel", ReduceRange: k.ReduceRange, WeightRange: "narrow"}
			if k.FullRange {
				m.WeightRange = "full"
			}
			if len(k.WScale) == 1 {
				m.Weights = "tensor"
			}
			switch {
			case k.Static:
				m.Activation, m.Granularity = "static", "tensor"
				specs = append(specs, f32Spec(l.Name+".input_scale", []int{1}, []float32{k.InScale}))
				var z [4]byte
				binary.LittleEndian.PutUint32(z[:], uint32(k.InZero))
				specs = append(specs, bytesSpec(l.Name+".input_zero_point", I32, []int{1}, z[:]))
			case k.PerRow:
				m.Activation, m.Granularity = "dynamic", "row"
			default:
				m.Activation, m.Granularity = "dynamic", "tensor"
			}
			layers[l.Name] = m
		default:
			return fmt.Errorf("%s: cannot write a %s layer", l.Name, l.Label())
		}
		if len(l.Bias) == 0 {
			m := layers[l.Name]
			m.NoBias = true
			layers[l.Name] = m
			return nil
		}
		specs = append(specs, f32Spec(l.Name+".bias", []int{l.Out}, l.Bias))
		return nil
	}
	addTable := func(t *model.Table) error {
		name := t.Name + ".weight"
		enc, streamed := tables[t.Name]
		switch k := t.Kernel.(type) {
		case nil:
			if streamed && enc.Mixed != nil {
				specs = append(specs, streamMixedSpecs(t, enc.Mixed)...)
				layers[t.Name] = mixedMeta(t.Rows, t.Dim, enc.Mixed.Hot.precision(), enc.Mixed.Cold.precision())
				return nil
			}
			if streamed && enc.MX.Valid() {
				specs = append(specs, streamMXSpecs(name, t, enc)...)
				layers[t.Name] = layerMeta{Kind: "table", Precision: metaPrecision{p: enc.MX.Precision()}, Dim: t.Dim}
				return nil
			}
			if !streamed || enc.Format == kernels.TableF32 {
				specs = append(specs, f32Spec(name, []int{int(t.Rows), t.Dim}, t.Weight))
				layers[t.Name] = layerMeta{Kind: "table", Precision: metaPrecision{p: precision.FP32}, Dim: t.Dim}
				return nil
			}
			specs = append(specs, streamTableSpec(name, t, enc))
			layers[t.Name] = layerMeta{Kind: "table", Precision: metaPrecision{p: enc.Format.Precision()}, Dim: t.Dim}
		case *kernels.BagTable:
			specs = append(specs, tableSpec(name, k))
			layers[t.Name] = layerMeta{Kind: "table", Precision: metaPrecision{p: k.Format.Precision()}, Dim: t.Dim}
		case *kernels.MXBagTable:
			specs = append(specs,
				bytesSpec(name, U8, []int{int(k.Rows), kernels.MXCodeBytes(k.Format, k.Dim)}, k.Codes),
				bytesSpec(t.Name+".weight_scale", U8, []int{int(k.Rows), kernels.MXScales(k.Dim)}, k.Scales))
			layers[t.Name] = layerMeta{Kind: "table", Precision: metaPrecision{p: k.Format.Precision()}, Dim: t.Dim}
		case *kernels.MixedBagTable:
			ms, err := mixedSpecs(t.Name, k)
			if err != nil {
				return err
			}
			specs = append(specs, ms...)
			layers[t.Name] = mixedMeta(k.Rows, k.Dim, k.HotPrecision(), k.ColdPrecision())
		default:
			return fmt.Errorf("%s: cannot write a %s table", t.Name, t.Label())
		}
		return nil
	}
	for l := range net.Layers() {
		var err error
		if l.FC != nil {
			err = addFC(l.FC)
		} else {
			err = addTable(l.Table)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	lj, err := json.Marshal(layers) // maps marshal with sorted keys
	if err != nil {
		return nil, nil, err
	}
	meta := map[string]string{
		"format":           quantFormat,
		"rq.version":       strconv.Itoa(QuantVersion),
		"rq.source_sha256": info.SourceSHA256,
		"rq.interaction":   net.Interaction.String(),
		"rq.layers":        string(lj),
	}
	if info.Plan != nil {
		meta["rq.plan"] = string(info.Plan)
	}
	for i := range specs {
		w := specs[i].Write
		specs[i].Write = func(out io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return w(&ctxWriter{ctx: ctx, w: out})
		}
	}
	return specs, meta, nil
}

// ctxWriter fails writes once its context is done, so a long tensor (a
// table quantized block by block) stops within a block.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

func tableShape(f kernels.TableFormat, rows int64, dim int) ([]int, DType) {
	switch f {
	case kernels.TableF32:
		return []int{int(rows), dim}, F32
	case kernels.TableF16:
		return []int{int(rows), dim}, F16
	}
	return []int{int(rows), f.RowBytes(dim)}, U8
}

func tableSpec(name string, t *kernels.BagTable) TensorSpec {
	shape, dt := tableShape(t.Format, t.Rows, t.Dim)
	return bytesSpec(name, dt, shape, t.Data)
}

// streamTableSpec quantizes an fp32 table block by block while writing.
// Each block's source rows are released (releasePages) once encoded: the
// writer reads every table once, front to back, so a memory-mapped model
// larger than memory would otherwise end up wholly resident.
func streamTableSpec(name string, t *model.Table, enc TableEncoding) TensorSpec {
	shape, dt := tableShape(enc.Format, t.Rows, t.Dim)
	rb := enc.Format.RowBytes(t.Dim)
	return TensorSpec{Name: name, DType: dt, Shape: shape, Write: func(w io.Writer) error {
		buf := make([]byte, encodeRowsBlock*rb)
		for r := int64(0); r < t.Rows; r += encodeRowsBlock {
			n := int(min(encodeRowsBlock, t.Rows-r))
			src := t.Weight[r*int64(t.Dim) : (r+int64(n))*int64(t.Dim)]
			if enc.Check != nil {
				if err := enc.Check(src, r, n, t.Dim); err != nil {
					return err
				}
			}
			enc.Encode(src, n, t.Dim, buf[:n*rb])
			releasePages(kernels.F32Bytes(src))
			if _, err := w.Write(buf[:n*rb]); err != nil {
				return err
			}
		}
		return nil
	}}
}

// streamMXSpecs quantizes an fp32 table to an MX format block by block
// while writing: N.weight (the codes) and then N.weight_scale. Each tensor
// quantizes the rows again and keeps its own half, so memory stays one
// block whatever the table size (the scales alone are 1/128 of the fp32
// table: too much to hold for a table larger than memory). enc.Check vets
// each block once, before its codes.
func streamMXSpecs(name string, t *model.Table, enc TableEncoding) []TensorSpec {
	f := enc.MX
	rb, ns := kernels.MXCodeBytes(f, t.Dim), kernels.MXScales(t.Dim)
	stream := func(codes bool) func(w io.Writer) error {
		return func(w io.Writer) error {
			cbuf := make([]byte, encodeRowsBlock*rb)
			sbuf := make([]byte, encodeRowsBlock*ns)
			for r := int64(0); r < t.Rows; r += encodeRowsBlock {
				n := int(min(encodeRowsBlock, t.Rows-r))
				src := t.Weight[r*int64(t.Dim) : (r+int64(n))*int64(t.Dim)]
				if codes && enc.Check != nil {
					if err := enc.Check(src, r, n, t.Dim); err != nil {
						return err
					}
				}
				if err := kernels.QuantizeMXRows(f, name, src, n, t.Dim, cbuf[:n*rb], sbuf[:n*ns]); err != nil {
					var mx *kernels.MXError
					if errors.As(err, &mx) {
						mx.Row += int(r) // the block's row is the table's row r + Row
					}
					return err
				}
				releasePages(kernels.F32Bytes(src))
				out := cbuf[:n*rb]
				if !codes {
					out = sbuf[:n*ns]
				}
				if _, err := w.Write(out); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return []TensorSpec{
		{Name: name, DType: U8, Shape: []int{int(t.Rows), rb}, Write: stream(true)},
		{Name: t.Name + ".weight_scale", DType: U8, Shape: []int{int(t.Rows), ns}, Write: stream(false)},
	}
}

// releaseBlock is how many bytes of a memory-mapped source the writers
// read between releases.
const releaseBlock = 8 << 20

// bytesSpec writes b as is, releasing its pages block by block when it is
// memory-mapped (a quantized table of a loaded quantized file, written again).
func bytesSpec(name string, dt DType, shape []int, b []byte) TensorSpec {
	return TensorSpec{Name: name, DType: dt, Shape: shape, Write: func(w io.Writer) error {
		for rest := b; len(rest) > 0; {
			k := min(len(rest), releaseBlock)
			if _, err := w.Write(rest[:k]); err != nil {
				return err
			}
			releasePages(rest[:k])
			rest = rest[k:]
		}
		return nil
	}}
}

// f32Spec writes v little-endian. When v is memory-mapped (an fp32 table
// kept as it is), its pages are released every releaseBlock bytes, as
// streamTableSpec does.
func f32Spec(name string, shape []int, v []float32) TensorSpec {
	return TensorSpec{Name: name, DType: F32, Shape: shape, Write: func(w io.Writer) error {
		var buf [4096]byte
		rest := v
		read := v // the part of v read since the last release
		for len(rest) > 0 {
			n := min(len(rest), len(buf)/4)
			for i, x := range rest[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
			}
			if _, err := w.Write(buf[:4*n]); err != nil {
				return err
			}
			rest = rest[n:]
			if k := len(read) - len(rest); 4*k >= releaseBlock || len(rest) == 0 {
				releasePages(kernels.F32Bytes(read[:k]))
				read = rest
			}
		}
		return nil
	}}
}

func u16Spec(name string, dt DType, shape []int, v []uint16) TensorSpec {
	return TensorSpec{Name: name, DType: dt, Shape: shape, Write: func(w io.Writer) error {
		var buf [4096]byte
		for len(v) > 0 {
			n := min(len(v), len(buf)/2)
			for i, x := range v[:n] {
				binary.LittleEndian.PutUint16(buf[2*i:], x)
			}
			if _, err := w.Write(buf[:2*n]); err != nil {
				return err
			}
			v = v[n:]
		}
		return nil
	}}
}

func int8Bytes(q []int8) []byte {
	if len(q) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), len(q))
}

// IsQuantized reports whether safetensors metadata marks an rq quantized file.
func IsQuantized(meta map[string]string) bool { return meta["format"] == quantFormat }

// buildQuantized builds the network of an rq quantized file: the fp32 scheme
// inference gives the structure from the tensor names (scales and zero
// points set aside), and rq.layers gives each layer's precision.
// buildQuantized is buildQuantizedScheme without the naming scheme.
func buildQuantized(file string, f *SafetensorsFile) (*model.Network, error) {
	net, _, err := buildQuantizedScheme(file, f)
	return net, err
}

// buildQuantizedScheme reads an rq quantized file's network, and names the
// naming scheme of the model it was quantized from.
func buildQuantizedScheme(file string, f *SafetensorsFile) (*model.Network, string, error) {
	meta := f.Metadata
	if v := meta["rq.version"]; v != strconv.Itoa(QuantVersion) {
		return nil, "", &UnsupportedError{File: file, What: fmt.Sprintf("rq quantized format version %q (this rq reads %d)", v, QuantVersion)}
	}
	var layers map[string]layerMeta
	if err := json.Unmarshal([]byte(meta["rq.layers"]), &layers); err != nil {
		return nil, "", &FormatError{File: file, Tensor: "__metadata__", Msg: "rq.layers is not valid JSON: " + err.Error()}
	}
	byName := map[string]*Tensor{}
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	need := func(name string, dt DType, shape ...int) (*Tensor, error) {
		t, ok := byName[name]
		if !ok {
			return nil, &FormatError{File: file, Tensor: name, Msg: "missing"}
		}
		if t.DType != dt {
			return nil, &FormatError{File: file, Tensor: name, Msg: fmt.Sprintf("dtype %s, want %s", t.DType, dt)}
		}
		if shape != nil && !sameShape(t.Shape, shape) {
			return nil, &FormatError{File: file, Tensor: name, Msg: fmt.Sprintf("shape %v, want %v", t.Shape, shape)}
		}
		return t, nil
	}
	// Structure: the tensors that name layers, with quantized tables viewed
	// through a placeholder fp32 shape so the scheme inference checks widths.
	var skeleton []Tensor
	mixedSeen := map[string]bool{}
	for _, t := range f.Tensors {
		prefix, suffix := splitSuffix(t.Name)
		lm, ok := layers[prefix]
		if !ok {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: "its layer is not described in rq.layers"}
		}
		if lm.Kind != "fc" && lm.Kind != "table" {
			return nil, "", &FormatError{File: file, Tensor: "__metadata__", Msg: fmt.Sprintf("rq.layers: %s has kind %q, want fc or table", prefix, lm.Kind)}
		}
		if err := lm.Precision.err; err != nil {
			// Before the structure: the layer's tensors cannot be read
			// without their precision.
			return nil, "", &unknownPrecisionError{FormatError: &FormatError{File: file, Tensor: prefix + ".weight", Msg: "rq.layers: " + err.Error()}, unknown: err}
		}
		if lm.Kind == "table" && lm.Precision.p == precision.Mixed {
			st, err := mixedSkeleton(file, t, prefix, suffix, lm, mixedSeen)
			if err != nil {
				return nil, "", err
			}
			if st != nil {
				skeleton = append(skeleton, *st)
			}
			continue
		}
		switch suffix {
		case "weight_scale", "input_scale", "input_zero_point":
			continue
		case "weight":
			if f, ok := kernels.MXFormatOf(lm.Precision.p); ok && len(t.Shape) == 2 {
				// The stored width is code bytes per row; the dim is in rq.layers.
				dim := lm.Dim
				if dim < 1 || dim > 1<<20 || kernels.MXCodeBytes(f, dim) != t.Shape[1] {
					return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("%d bytes per row do not fit a %s row of dim %d (rq.layers): want ceil(%d·%d/8) = %d", t.Shape[1], lm.Precision.name(), dim, dim, f.Bits(), kernels.MXCodeBytes(f, max(dim, 0)))}
				}
				skeleton = append(skeleton, Tensor{Name: t.Name, DType: F32, Shape: []int{t.Shape[0], dim}})
				continue
			}
			if f, ok := kernels.TableFormatOf(lm.Precision.p); lm.Kind == "table" && ok && f != kernels.TableF32 && f != kernels.TableF16 && len(t.Shape) == 2 {
				// The stored width is bytes per row; the dim is in rq.layers.
				dim := lm.Dim
				if dim < 1 || dim > 1<<20 || f.RowBytes(dim) != t.Shape[1] {
					return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("%d bytes per row do not fit a %s row of dim %d (rq.layers)", t.Shape[1], lm.Precision.name(), dim)}
				}
				skeleton = append(skeleton, Tensor{Name: t.Name, DType: F32, Shape: []int{t.Shape[0], dim}})
				continue
			}
		}
		skeleton = append(skeleton, Tensor{Name: t.Name, DType: F32, Shape: t.Shape})
	}
	net, scheme, err := buildStructure(file, skeleton, meta["rq.interaction"])
	if err != nil {
		return nil, "", err
	}
	if op := meta["rq.interaction"]; op != net.Interaction.String() {
		return nil, "", &FormatError{File: file, Tensor: "__metadata__", Msg: fmt.Sprintf("rq.interaction is %q but the top MLP's width implies %s", op, net.Interaction)}
	}
	fc := func(l *model.Linear) error {
		lm := layers[l.Name]
		if lm.NoBias {
			if _, ok := byName[l.Name+".bias"]; ok {
				return &FormatError{File: file, Tensor: l.Name + ".bias", Msg: "present, but rq.layers says the layer has no bias"}
			}
			l.Bias = nil
		} else {
			b, err := need(l.Name+".bias", F32, l.Out)
			if err != nil {
				return err
			}
			if l.Bias, err = weights(file, b); err != nil {
				return err
			}
		}
		switch lm.Precision.p {
		case precision.FP32:
			w, err := need(l.Name+".weight", F32, l.Out, l.In)
			if err != nil {
				return err
			}
			l.Weight, err = weights(file, w)
			return err
		case precision.FP16, precision.BF16:
			dt := map[precision.Precision]DType{precision.FP16: F16, precision.BF16: BF16}[lm.Precision.p]
			w, err := need(l.Name+".weight", dt, l.Out, l.In)
			if err != nil {
				return err
			}
			u := u16s(w.Data)
			if lm.Precision.p == precision.FP16 {
				l.Kernel = &model.F16FC{In: l.In, Out: l.Out, W: u}
			} else {
				l.Kernel = &model.BF16FC{In: l.In, Out: l.Out, W: u}
			}
			return nil
		case precision.MXFP8E4M3, precision.MXFP8E5M2, precision.MXFP6E3M2, precision.MXFP6E2M3, precision.MXFP4, precision.MXINT8:
			k, err := mxFC(file, l, lm, need)
			if err != nil {
				return err
			}
			l.Kernel = k
			return nil
		case precision.Int8:
			w, err := need(l.Name+".weight", I8, l.Out, l.In)
			if err != nil {
				return err
			}
			nScale := l.Out
			if lm.Weights == "tensor" {
				nScale = 1
			} else if lm.Weights != "channel" {
				return &FormatError{File: file, Tensor: l.Name + ".weight", Msg: fmt.Sprintf("rq.layers says weights %q, want channel or tensor", lm.Weights)}
			}
			st, err := need(l.Name+".weight_scale", F32, nScale)
			if err != nil {
				return err
			}
			scale, err := Float32s(st)
			if err != nil {
				return err
			}
			for _, s := range scale {
				if !(s > 0) || math.IsInf(float64(s), 0) {
					return &FormatError{File: file, Tensor: st.Name, Msg: fmt.Sprintf("scale %v is not a positive finite number", s)}
				}
			}
			k := &model.Int8FC{In: l.In, Out: l.Out, QWeight: i8s(w.Data), WScale: scale, ReduceRange: lm.ReduceRange}
			switch lm.WeightRange {
			case "full":
				k.FullRange = true
			case "narrow", "": // narrow is the default
				for _, q := range k.QWeight {
					if q == -128 {
						return &FormatError{File: file, Tensor: w.Name, Msg: "holds -128, but rq.layers says its range is narrow ([-127, 127])"}
					}
				}
			default:
				return &FormatError{File: file, Tensor: w.Name, Msg: fmt.Sprintf("rq.layers gives weight_range %q, want narrow or full", lm.WeightRange)}
			}
			switch lm.Activation + "/" + lm.Granularity {
			case "static/tensor":
				is, err := need(l.Name+".input_scale", F32, 1)
				if err != nil {
					return err
				}
				iz, err := need(l.Name+".input_zero_point", I32, 1)
				if err != nil {
					return err
				}
				s, _ := Float32s(is)
				z := int32(binary.LittleEndian.Uint32(iz.Data))
				if !(s[0] > 0) || math.IsInf(float64(s[0]), 0) || z < 0 || z > 255 {
					return &FormatError{File: file, Tensor: is.Name, Msg: fmt.Sprintf("input scale %v and zero point %d: want a positive finite scale and a zero point in [0, 255]", s[0], z)}
				}
				k.Static, k.InScale, k.InZero = true, s[0], z
			case "dynamic/row":
				k.PerRow = true
			case "dynamic/tensor":
			default:
				return &FormatError{File: file, Tensor: l.Name + ".weight", Msg: fmt.Sprintf("rq.layers gives activation %q granularity %q", lm.Activation, lm.Granularity)}
			}
			l.Kernel = k
			return nil
		}
		return &FormatError{File: file, Tensor: l.Name + ".weight", Msg: fmt.Sprintf("rq.layers gives FC precision %q", lm.Precision.name())}
	}
	// Every FC layer first, then every table: the order in which a file
	// with several faults has always reported them.
	for l := range net.Linears() {
		l.Weight = nil
		if err := fc(l); err != nil {
			return nil, "", err
		}
	}
	for l := range net.Layers() {
		t := l.Table
		if t == nil {
			continue
		}
		t.Weight = nil
		lm := layers[t.Name]
		if lm.Precision.p == precision.Mixed {
			mt, err := mixedTable(file, t, lm, byName, need)
			if err != nil {
				return nil, "", err
			}
			t.Kernel = mt
			continue
		}
		if mf, ok := kernels.MXFormatOf(lm.Precision.p); ok {
			bt, err := mxTable(file, t, mf, need)
			if err != nil {
				return nil, "", err
			}
			t.Kernel = bt
			continue
		}
		if _, ok := byName[t.Name+".weight_scale"]; ok {
			return nil, "", &FormatError{File: file, Tensor: t.Name + ".weight_scale", Msg: fmt.Sprintf("present, but a %s table (rq.layers) has no scale tensor", lm.Precision.name())}
		}
		tf, ok := kernels.TableFormatOf(lm.Precision.p)
		if !ok {
			return nil, "", &FormatError{File: file, Tensor: t.Name + ".weight", Msg: fmt.Sprintf("rq.layers gives table precision %q", lm.Precision.name())}
		}
		shape, dt := tableShape(tf, t.Rows, t.Dim)
		w, err := need(t.Name+".weight", dt, shape...)
		if err != nil {
			return nil, "", err
		}
		if tf == kernels.TableF32 {
			if t.Weight, err = weights(file, w); err != nil {
				return nil, "", err
			}
			continue
		}
		bt, err := kernels.NewBagTable(tf, t.Rows, t.Dim, w.Data)
		if err != nil {
			return nil, "", &FormatError{File: file, Tensor: w.Name, Msg: err.Error()}
		}
		t.Kernel = bt
	}
	if err := net.Validate(); err != nil {
		return nil, "", &FormatError{File: file, Msg: err.Error()}
	}
	return net, scheme, nil
}

// mxTable builds an MX table from its two tensors, in place (the codes and
// scales alias the mapped file): N.weight U8 [rows, ceil(dim·bits/8)] and
// N.weight_scale U8 [rows, ceil(dim/32)], checked against the rows, the
// dim and the format rq.layers gives.
func mxTable(file string, t *model.Table, f kernels.MXFormat, need func(string, DType, ...int) (*Tensor, error)) (*kernels.MXBagTable, error) {
	w, err := need(t.Name+".weight", U8, int(t.Rows), kernels.MXCodeBytes(f, t.Dim))
	if err != nil {
		return nil, err
	}
	s, err := need(t.Name+".weight_scale", U8, int(t.Rows), kernels.MXScales(t.Dim))
	if err != nil {
		return nil, err
	}
	bt, err := kernels.NewMXBagTable(f, t.Rows, t.Dim, w.Data, s.Data)
	if err != nil {
		return nil, &FormatError{File: file, Tensor: w.Name, Msg: err.Error()}
	}
	return bt, nil
}

// mxFC builds an MX FC layer from N.weight U8 [out, ceil(in·bits/8)] and
// N.weight_scale U8 [out, ceil(in/32)], in place; rq.layers' activation is
// absent (bf16 activations) or "dynamic" (MX activations).
func mxFC(file string, l *model.Linear, lm layerMeta, need func(string, DType, ...int) (*Tensor, error)) (*model.MXFC, error) {
	f, _ := kernels.MXFormatOf(lm.Precision.p)
	w, err := need(l.Name+".weight", U8, l.Out, kernels.MXCodeBytes(f, l.In))
	if err != nil {
		return nil, err
	}
	s, err := need(l.Name+".weight_scale", U8, l.Out, kernels.MXScales(l.In))
	if err != nil {
		return nil, err
	}
	if lm.Activation != "" && lm.Activation != "dynamic" || lm.Granularity != "" || lm.Weights != "" || lm.WeightRange != "" || lm.ReduceRange {
		return nil, &FormatError{File: file, Tensor: w.Name, Msg: fmt.Sprintf("rq.layers gives %s options (activation %q, granularity %q, weights %q, weight_range %q, reduce_range %v); an %s layer takes only activation \"dynamic\" or none", lm.Precision.name(), lm.Activation, lm.Granularity, lm.Weights, lm.WeightRange, lm.ReduceRange, lm.Precision.name())}
	}
	return &model.MXFC{In: l.In, Out: l.Out, Format: f, Codes: w.Data, Scales: s.Data, DynamicAct: lm.Activation == "dynamic"}, nil
}

func splitSuffix(name string) (prefix, suffix string) {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[:i], name[i+1:]
		}
	}
	return name, ""
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// u16s views little-endian 16-bit data (copying when unaligned).
func u16s(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out
}

func i8s(b []byte) []int8 {
	out := make([]int8, len(b))
	for i, v := range b {
		out[i] = int8(v)
	}
	return out
}
