package modelio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// Mixed-precision tables in a quantized file (docs/format.md): a table N
// whose rq.layers entry says precision "mixed", with "rows", "dim",
// "hot_precision" and "cold_precision", is stored as
//
//	N.hot_rows            I32 [H] (I64 when rows > 2^31): the hot rows' ids, ascending
//	N.hot_weight          the hot rows, in order, in hot_precision's own table layout
//	N.hot_weight_scale    U8 [H, ceil(dim/32)] when hot_precision is MX
//	N.cold_weight         every other row, in id order, in cold_precision's layout
//	N.cold_weight_scale   U8 [rows-H, ceil(dim/32)] when cold_precision is MX
//
// Row id is hot row k when hot_rows[k] = id, else cold row id - (the
// number of hot ids below id).

// The suffixes of a mixed table's tensors.
const (
	mixedHotRows   = "hot_rows"
	mixedHotW      = "hot_weight"
	mixedHotScale  = "hot_weight_scale"
	mixedColdW     = "cold_weight"
	mixedColdScale = "cold_weight_scale"
)

// MixedEncoding tells WriteQuantized to write an fp32 table as a mixed
// table, quantizing its parts while writing (TableEncoding.Mixed): the
// hot rows (ascending, checked by kernels.CheckHotRows) with Hot's
// encoding, every other row with Cold's. Each part's Check vets the
// source rows going into it (hot rows one at a time, cold rows a run of
// consecutive rows at a time) before they are encoded.
type MixedEncoding struct {
	HotRows   []int64
	Hot, Cold TableEncoding
}

// precision is the precision a part encoding writes.
func (e TableEncoding) precision() precision.Precision {
	if e.MX.Valid() {
		return e.MX.Precision()
	}
	return e.Format.Precision()
}

// mixedMeta is a mixed table's rq.layers entry.
func mixedMeta(rows int64, dim int, hot, cold precision.Precision) layerMeta {
	return layerMeta{Kind: "table", Precision: metaPrecision{p: precision.Mixed}, Dim: dim, Rows: rows,
		HotPrecision: &metaPrecision{p: hot}, ColdPrecision: &metaPrecision{p: cold}}
}

// hotRowsSpec writes the hot ids: I32 for tables of up to 2^31 rows, else I64.
func hotRowsSpec(name string, rows int64, hot []int64) TensorSpec {
	size := kernels.MixedHotIDBytes(rows)
	dt := I32
	if size == 8 {
		dt = I64
	}
	return TensorSpec{Name: name, DType: dt, Shape: []int{len(hot)}, Write: func(w io.Writer) error {
		buf := make([]byte, 0, 4096)
		for i, id := range hot {
			if size == 4 {
				buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
			} else {
				buf = binary.LittleEndian.AppendUint64(buf, uint64(id))
			}
			if len(buf) >= 4096-8 || i == len(hot)-1 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		return nil
	}}
}

// mixedSpecs lays out a mixed table held in memory (quantize.Apply's, or
// one read from a file).
func mixedSpecs(name string, k *kernels.MixedBagTable) ([]TensorSpec, error) {
	specs := []TensorSpec{hotRowsSpec(name+"."+mixedHotRows, k.Rows, k.HotRows())}
	for _, p := range []struct {
		rt           kernels.RowTable
		weight, scal string
	}{{k.Hot, mixedHotW, mixedHotScale}, {k.Cold, mixedColdW, mixedColdScale}} {
		switch pt := p.rt.(type) {
		case *kernels.BagTable:
			specs = append(specs, tableSpec(name+"."+p.weight, pt))
		case *kernels.MXBagTable:
			specs = append(specs,
				bytesSpec(name+"."+p.weight, U8, []int{int(pt.Rows), kernels.MXCodeBytes(pt.Format, pt.Dim)}, pt.Codes),
				bytesSpec(name+"."+p.scal, U8, []int{int(pt.Rows), kernels.MXScales(pt.Dim)}, pt.Scales))
		default:
			return nil, fmt.Errorf("%s: cannot write a mixed table part of type %T", name, p.rt)
		}
	}
	return specs, nil
}

// partRows walks the source rows of one part of a mixed table in order,
// gathered into blocks of at most encodeRowsBlock rows: fn gets each
// block's values and the source row of each of its rows. check, when set,
// vets the source rows first: the hot rows one at a time, the cold ones a
// run of consecutive rows at a time (cold rows' source pages are released
// once gathered, as streamTableSpec releases a table's).
func partRows(t *model.Table, hot []int64, isHot bool, check func(w []float32, first int64, rows, dim int) error, fn func(block []float32, ids []int64) error) error {
	dim := int64(t.Dim)
	buf := make([]float32, 0, encodeRowsBlock*t.Dim)
	ids := make([]int64, 0, encodeRowsBlock)
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		err := fn(buf, ids)
		buf, ids = buf[:0], ids[:0]
		return err
	}
	add := func(first, n int64) error {
		src := t.Weight[first*dim : (first+n)*dim]
		if check != nil {
			if err := check(src, first, int(n), t.Dim); err != nil {
				return err
			}
		}
		for r := first; r < first+n; r++ {
			buf = append(buf, t.Weight[r*dim:(r+1)*dim]...)
			ids = append(ids, r)
			if len(ids) == encodeRowsBlock {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if !isHot {
			releasePages(kernels.F32Bytes(src))
		}
		return nil
	}
	if isHot {
		for _, id := range hot {
			if err := add(id, 1); err != nil {
				return err
			}
		}
		return flush()
	}
	next := int64(0) // the first row not yet walked
	for i := 0; i <= len(hot); i++ {
		id := t.Rows // after the last hot row: the rest of the table
		if i < len(hot) {
			id = hot[i]
		}
		for next < id {
			n := min(id-next, encodeRowsBlock)
			if err := add(next, n); err != nil {
				return err
			}
			next += n
		}
		next = id + 1
	}
	return flush()
}

// streamMixedSpecs quantizes an fp32 table into a mixed table's tensors
// while writing them, a block of each part's rows at a time (an MX part's
// codes and scales each quantize the rows again, as streamMXSpecs does).
func streamMixedSpecs(t *model.Table, enc *MixedEncoding) []TensorSpec {
	specs := []TensorSpec{hotRowsSpec(t.Name+"."+mixedHotRows, t.Rows, enc.HotRows)}
	nHot := int64(len(enc.HotRows))
	for _, p := range []struct {
		isHot        bool
		enc          TableEncoding
		rows         int64
		weight, scal string
	}{{true, enc.Hot, nHot, mixedHotW, mixedHotScale}, {false, enc.Cold, t.Rows - nHot, mixedColdW, mixedColdScale}} {
		name := t.Name + "." + p.weight
		if f := p.enc.MX; f.Valid() {
			rb, ns := kernels.MXCodeBytes(f, t.Dim), kernels.MXScales(t.Dim)
			stream := func(codes bool) func(w io.Writer) error {
				return func(w io.Writer) error {
					cbuf := make([]byte, encodeRowsBlock*rb)
					sbuf := make([]byte, encodeRowsBlock*ns)
					check := p.enc.Check
					if !codes {
						check = nil // vetted once, with the codes
					}
					return partRows(t, enc.HotRows, p.isHot, check, func(block []float32, ids []int64) error {
						n := len(ids)
						if err := kernels.QuantizeMXRows(f, t.Name+".weight", block, n, t.Dim, cbuf[:n*rb], sbuf[:n*ns]); err != nil {
							var mx *kernels.MXError
							if errors.As(err, &mx) && mx.Row >= 0 && mx.Row < n {
								mx.Row = int(ids[mx.Row]) // the table's row
							}
							return err
						}
						out := cbuf[:n*rb]
						if !codes {
							out = sbuf[:n*ns]
						}
						_, err := w.Write(out)
						return err
					})
				}
			}
			specs = append(specs,
				TensorSpec{Name: name, DType: U8, Shape: []int{int(p.rows), rb}, Write: stream(true)},
				TensorSpec{Name: t.Name + "." + p.scal, DType: U8, Shape: []int{int(p.rows), ns}, Write: stream(false)})
			continue
		}
		pe := p
		shape, dt := tableShape(pe.enc.Format, pe.rows, t.Dim)
		rb := pe.enc.Format.RowBytes(t.Dim)
		specs = append(specs, TensorSpec{Name: name, DType: dt, Shape: shape, Write: func(w io.Writer) error {
			out := make([]byte, encodeRowsBlock*rb)
			return partRows(t, enc.HotRows, pe.isHot, pe.enc.Check, func(block []float32, ids []int64) error {
				n := len(ids)
				pe.enc.Encode(block, n, t.Dim, out[:n*rb])
				_, err := w.Write(out[:n*rb])
				return err
			})
		}})
	}
	return specs
}

// mixedSkeleton handles a tensor of a mixed table in the structure pass of
// buildQuantizedScheme: the table's placeholder fp32 tensor (N.weight
// [rows, dim], once per table, at its first tensor) and the refusal of a
// suffix a mixed table does not have.
func mixedSkeleton(file string, t Tensor, prefix, suffix string, lm layerMeta, seen map[string]bool) (*Tensor, error) {
	switch suffix {
	case mixedHotRows, mixedHotW, mixedHotScale, mixedColdW, mixedColdScale:
	default:
		return nil, &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("rq.layers says %s is a mixed table, whose tensors are %s.{%s, %s, %s, %s, %s}", prefix, prefix, mixedHotRows, mixedHotW, mixedHotScale, mixedColdW, mixedColdScale)}
	}
	if seen[prefix] {
		return nil, nil
	}
	seen[prefix] = true
	if lm.Dim < 1 || lm.Dim > 1<<20 || lm.Rows < 1 || lm.Rows > 1<<40 {
		return nil, &FormatError{File: file, Tensor: "__metadata__", Msg: fmt.Sprintf("rq.layers: mixed table %s has rows %d and dim %d: want rows in 1..2^40 and dim in 1..2^20", prefix, lm.Rows, lm.Dim)}
	}
	return &Tensor{Name: prefix + ".weight", DType: F32, Shape: []int{int(lm.Rows), lm.Dim}}, nil
}

// mixedTable builds a mixed table from its tensors, the parts aliasing
// the file's bytes (the hot ids are copied), every tensor checked against
// rq.layers: the hot ids sorted, unique and in range, each part's shape
// and dtype its precision's for its rows. Errors name the tensor.
func mixedTable(file string, t *model.Table, lm layerMeta, byName map[string]*Tensor, need func(string, DType, ...int) (*Tensor, error)) (*kernels.MixedBagTable, error) {
	bad := func(tensor, format string, args ...any) error {
		return &FormatError{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	idName := t.Name + "." + mixedHotRows
	dt := I32
	if kernels.MixedHotIDBytes(t.Rows) == 8 {
		dt = I64
	}
	ht, err := need(idName, dt)
	if err != nil {
		return nil, err
	}
	if len(ht.Shape) != 1 || ht.Shape[0] > int(t.Rows) {
		return nil, bad(idName, "shape %v, want [hot rows] with at most the table's %d rows", ht.Shape, t.Rows)
	}
	hot := make([]int64, ht.Shape[0])
	if len(ht.Data) != len(hot)*kernels.MixedHotIDBytes(t.Rows) {
		return nil, bad(idName, "%d bytes for %d ids", len(ht.Data), len(hot))
	}
	for i := range hot {
		if dt == I32 {
			hot[i] = int64(int32(binary.LittleEndian.Uint32(ht.Data[4*i:])))
		} else {
			hot[i] = int64(binary.LittleEndian.Uint64(ht.Data[8*i:]))
		}
	}
	if err := kernels.CheckHotRows(t.Rows, hot); err != nil {
		return nil, bad(idName, "%v", err)
	}
	var parts [2]kernels.RowTable
	for i, p := range []struct {
		mp           *metaPrecision
		key          string
		rows         int64
		weight, scal string
	}{{lm.HotPrecision, "hot_precision", int64(len(hot)), mixedHotW, mixedHotScale}, {lm.ColdPrecision, "cold_precision", t.Rows - int64(len(hot)), mixedColdW, mixedColdScale}} {
		wName, sName := t.Name+"."+p.weight, t.Name+"."+p.scal
		switch {
		case p.mp == nil:
			return nil, bad(wName, "rq.layers gives mixed table %s no %s", t.Name, p.key)
		case p.mp.err != nil:
			return nil, &unknownPrecisionError{FormatError: &FormatError{File: file, Tensor: wName, Msg: "rq.layers: " + p.key + ": " + p.mp.err.Error()}, unknown: p.mp.err}
		case !p.mp.p.ForTable() || p.mp.p.IsMixed():
			return nil, bad(wName, "rq.layers gives mixed table %s %s %q: want a table precision other than mixed", t.Name, p.key, p.mp.name())
		}
		if f, ok := kernels.MXFormatOf(p.mp.p); ok {
			w, err := need(wName, U8, int(p.rows), kernels.MXCodeBytes(f, t.Dim))
			if err != nil {
				return nil, err
			}
			s, err := need(sName, U8, int(p.rows), kernels.MXScales(t.Dim))
			if err != nil {
				return nil, err
			}
			mt, err := kernels.NewMXBagTable(f, p.rows, t.Dim, w.Data, s.Data)
			if err != nil {
				return nil, bad(wName, "%v", err)
			}
			parts[i] = mt
			continue
		}
		if _, ok := byName[sName]; ok {
			return nil, bad(sName, "present, but a %s part (rq.layers %s) has no scale tensor", p.mp.name(), p.key)
		}
		tf, _ := kernels.TableFormatOf(p.mp.p)
		shape, dt := tableShape(tf, p.rows, t.Dim)
		w, err := need(wName, dt, shape...)
		if err != nil {
			return nil, err
		}
		bt, err := kernels.NewBagTable(tf, p.rows, t.Dim, w.Data)
		if err != nil {
			return nil, bad(wName, "%v", err)
		}
		parts[i] = bt
	}
	mt, err := kernels.NewMixedBagTable(t.Rows, t.Dim, hot, parts[0], parts[1])
	if err != nil {
		return nil, bad(t.Name+"."+mixedHotW, "%v", err)
	}
	return mt, nil
}

// mixedRegions are the memory a mixed table's lookups read: each part's
// stored rows (codes and scales for MX), each set through the part and
// then the table refreshed (kernels.MixedBagTable.Refresh). Empty parts
// have none.
func mixedRegions(k *kernels.MixedBagTable) []region {
	var rs []region
	for _, p := range []kernels.RowTable{k.Hot, k.Cold} {
		switch pt := p.(type) {
		case *kernels.BagTable:
			if len(pt.Data) > 0 {
				rs = append(rs, region{pt.Data, func(c []byte) { pt.Data = c; k.Refresh() }})
			}
		case *kernels.MXBagTable:
			if len(pt.Codes) > 0 {
				rs = append(rs, region{pt.Codes, func(c []byte) { pt.Codes = c; k.Refresh() }}, region{pt.Scales, func(c []byte) { pt.Scales = c; k.Refresh() }})
			}
		}
	}
	return rs
}
