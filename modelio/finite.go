package modelio

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/rqtools/rq/kernels"
)

// NonFiniteError reports a NaN or infinite value in a model's weights: the
// file, the tensor (as the file names it), and where in it. One such value
// makes every prediction it touches NaN, so rq refuses the model rather
// than quantize it to garbage or fail later without saying why.
type NonFiniteError struct {
	File   string
	Tensor string
	Shape  []int
	Index  int64   // flat index of the first non-finite element
	Value  float64 // NaN, ±Inf, or an F64 value beyond float32's range
}

func (e *NonFiniteError) Error() string {
	where := fmt.Sprintf("element %d", e.Index)
	if len(e.Shape) == 2 && e.Shape[1] > 0 {
		where += fmt.Sprintf(" (row %d, col %d of %v)", e.Index/int64(e.Shape[1]), e.Index%int64(e.Shape[1]), e.Shape)
	}
	what := fmt.Sprint(e.Value)
	if !math.IsNaN(e.Value) && !math.IsInf(e.Value, 0) {
		what += ", infinite in float32" // an F64 beyond float32's range
	}
	return fmt.Sprintf("%s: tensor %q: %s is %s; a model with non-finite weights gives non-finite predictions", e.File, e.Tensor, where, what)
}

// CheckFinite returns a *NonFiniteError for the first NaN or ±Inf value in
// m's tensors other than embedding tables: FC weights and biases, and the
// scales of a quantized file. These are small (MBs), so the scan is cheap;
// tables (up to GBs, memory-mapped) are checked where rq reads every row
// anyway (rq quantize) or when a prediction comes out non-finite
// (evaluate). Integer tensors (int8 weights, zero points, quantized
// tables) cannot hold a non-finite value.
func CheckFinite(m *Model) error {
	tables := map[string]bool{}
	if m.Net != nil {
		for _, t := range m.Net.Tables {
			tables[t.Name+".weight"] = true
			// A mixed table's parts (mixed.go) are table rows too.
			tables[t.Name+"."+mixedHotW], tables[t.Name+"."+mixedColdW] = true, true
		}
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if tables[t.Name] {
			continue
		}
		if at, v, bad := firstNonFinite(t); bad {
			return &NonFiniteError{File: m.Path, Tensor: t.Name, Shape: t.Shape, Index: at, Value: v}
		}
	}
	return nil
}

// firstNonFinite finds the first element of t that is NaN or infinite as
// rq reads it (float32: an F64 beyond float32's range becomes infinite),
// reading the raw bytes so that nothing is allocated. Tensors whose data
// does not match their shape are left to the loaders' own checks.
func firstNonFinite(t *Tensor) (int64, float64, bool) {
	n, err := checkedLen(t)
	if err != nil {
		return 0, 0, false
	}
	d, le := t.Data, binary.LittleEndian
	switch t.DType {
	case F32:
		for i := range n {
			// Exponent all ones: infinite or NaN.
			if b := le.Uint32(d[4*i:]); b&0x7f800000 == 0x7f800000 {
				return int64(i), float64(math.Float32frombits(b)), true
			}
		}
	case BF16:
		for i := range n {
			if b := le.Uint16(d[2*i:]); b&0x7f80 == 0x7f80 {
				return int64(i), float64(kernels.BF16ToF32(b)), true
			}
		}
	case F16:
		for i := range n {
			if b := le.Uint16(d[2*i:]); b&0x7c00 == 0x7c00 {
				return int64(i), float64(kernels.F16ToF32(b)), true
			}
		}
	case F64:
		for i := range n {
			v := math.Float64frombits(le.Uint64(d[8*i:]))
			if f := float64(float32(v)); math.IsNaN(f) || math.IsInf(f, 0) {
				return int64(i), v, true
			}
		}
	}
	return 0, 0, false
}
