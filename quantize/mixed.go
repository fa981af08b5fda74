package quantize

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// Mixed-precision tables (issue 15): a plan entry
//
//	{"precision": "mixed", "hot_precision": "int8", "cold_precision": "int2", "hot_share": 0.05}
//
// keeps the table's hottest rows, ceil(hot_share·rows) of them by the
// calibration rows' lookups (rq calibrate counts them into ranges.json),
// at hot_precision and every other row, those never looked up among them,
// at cold_precision. The hot rows come from a HotRowSource
// (calibrate.Ranges), so quantizing such a plan needs ranges.

// HotRowSource gives the hottest rows of a table from calibration's access
// counts. calibrate.Ranges is one.
type HotRowSource interface {
	// HotRows returns the table's hottest rows covering share of its rows
	// (calibrate.TableAccess.Hot), in any order; an error naming the
	// table when there are no access counts for it.
	HotRows(table string, share float64) ([]int64, error)
	// ListedRows is how many of the table's rows the counts list: the
	// most HotRows can return. false when there are no counts for it.
	ListedRows(table string) (int64, bool)
}

// HotCount is how many rows HotRows returns for share of a table of rows
// rows whose counts list listed rows: ceil(share·rows), at most listed,
// all listed for share >= 1 and none for share <= 0 (as
// calibrate.TableAccess.Hot). Rows no count lists stay cold.
func HotCount(share float64, rows, listed int64) int64 {
	if !(share > 0) {
		return 0
	}
	n := listed
	if share < 1 {
		if k := math.Ceil(share * float64(rows)); k < float64(n) {
			n = int64(k)
		}
	}
	return n
}

// MixedPlan is the plan entry of a mixed table.
func MixedPlan(hot, cold precision.Precision, share float64) LayerPlan {
	return LayerPlan{Precision: precision.Mixed, HotPrecision: hot, ColdPrecision: cold, HotShare: share}
}

// partPrecisions are the precisions a mixed table's part can hold: every
// table precision but mixed.
func partPrecisions() []precision.Precision {
	var ps []precision.Precision
	for _, p := range precision.Tables() {
		if !p.IsMixed() {
			ps = append(ps, p)
		}
	}
	return ps
}

// checkMixed validates the mixed fields of layer name's plan entry: set,
// and consistent, exactly when the layer is a mixed table.
func checkMixed(name, kind string, lp LayerPlan) error {
	if lp.Precision != precision.Mixed {
		if lp.HotPrecision != 0 || lp.ColdPrecision != 0 || lp.HotShare != 0 {
			return fmt.Errorf("plan: %s: hot_precision, cold_precision and hot_share apply to mixed tables only (precision \"mixed\"), not %s", name, named(lp.Precision))
		}
		return nil
	}
	if kind != "table" {
		return nil // refused as an FC precision by Validate
	}
	for _, part := range []struct {
		key string
		p   precision.Precision
	}{{"hot_precision", lp.HotPrecision}, {"cold_precision", lp.ColdPrecision}} {
		if !part.p.ForTable() || part.p.IsMixed() {
			return fmt.Errorf("plan: %s is a mixed table; its %s must be one of %s, not %q", name, part.key, precision.Join(partPrecisions()), named(part.p))
		}
	}
	if lp.HotPrecision == lp.ColdPrecision {
		return fmt.Errorf("plan: %s: a mixed table with hot and cold rows both %s is a %s table: give that precision instead", name, lp.HotPrecision, lp.HotPrecision)
	}
	if !(lp.HotShare > 0 && lp.HotShare <= 1) {
		return fmt.Errorf("plan: %s: a mixed table's hot_share is the share of its rows kept at hot_precision, above 0 and at most 1, not %v", name, lp.HotShare)
	}
	return nil
}

// mixedField says which of a plan's precision fields holds the unknown
// precision bad ("precision" when none of the mixed ones does), so that
// locate points at it.
func mixedField(data []byte, field, bad string) string {
	var loose struct {
		Layers map[string]map[string]any `json:"layers"`
	}
	if json.Unmarshal(data, &loose) != nil {
		return field
	}
	names := make([]string, 0, len(loose.Layers))
	for n := range loose.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, f := range []string{"precision", "hot_precision", "cold_precision"} {
			if v, ok := loose.Layers[n][f].(string); ok && v == bad {
				return f
			}
		}
	}
	return field
}

// errMixedNeedsRows is QuantizeTable's refusal of a mixed table: its hot
// rows come from calibration (QuantizeTableFrom).
func errMixedNeedsRows(table string) error {
	return fmt.Errorf("%s: a mixed table keeps its hottest rows hot: it needs the calibration's access counts (rq calibrate, then --ranges)", table)
}

// QuantizeTableFrom is QuantizeTable, and for a mixed table takes the hot
// rows from src, which must be a HotRowSource (calibrate.Ranges): an
// error naming the table when it is not, or has no access counts for it.
func QuantizeTableFrom(t *model.Table, lp LayerPlan, src RangeSource) (*model.Table, error) {
	if lp.Precision != precision.Mixed {
		return QuantizeTable(t, lp)
	}
	hs, ok := src.(HotRowSource)
	if !ok || src == nil || reflect.ValueOf(src).Kind() == reflect.Pointer && reflect.ValueOf(src).IsNil() {
		return nil, errMixedNeedsRows(t.Name)
	}
	hot, err := hs.HotRows(t.Name, lp.HotShare)
	if err != nil {
		return nil, err
	}
	return QuantizeMixedTable(t, lp, hot)
}

// MixedTables lists the plan's mixed tables, sorted.
func (p *Plan) MixedTables() []string {
	var out []string
	for n, lp := range p.Layers {
		if lp.Precision == precision.Mixed {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// SortedHotRows is hot sorted ascending, checked against a table of rows
// rows (ids in range, none twice: kernels.CheckHotRows's error).
func SortedHotRows(table string, rows int64, hot []int64) ([]int64, error) {
	s := slices.Clone(hot)
	slices.Sort(s)
	if err := kernels.CheckHotRows(rows, s); err != nil {
		return nil, fmt.Errorf("%s: %w", table, err)
	}
	return s, nil
}

// QuantizeMixedTable returns t as a mixed table under lp (precision
// mixed) with the given hot rows (any order): those rows quantized to
// lp.HotPrecision, the others, in id order, to lp.ColdPrecision. Each row
// is checked as its part's format needs (CheckRowsFor: no NaN or Inf, and
// within fp16's range for fp16, int4 and int2 parts), errors naming the
// table's tensor and the row.
func QuantizeMixedTable(t *model.Table, lp LayerPlan, hot []int64) (*model.Table, error) {
	if err := checkMixed(t.Name, "table", lp); err != nil {
		return nil, err
	}
	if t.Weight == nil {
		return nil, fmt.Errorf("%s: no fp32 weights to quantize (is the model already quantized?)", t.Name)
	}
	hot, err := SortedHotRows(t.Name, t.Rows, hot)
	if err != nil {
		return nil, err
	}
	tensor := t.Name + ".weight"
	dim := t.Dim
	hw := make([]float32, 0, len(hot)*dim)
	cw := make([]float32, 0, (int(t.Rows)-len(hot))*dim)
	k := 0
	for r := int64(0); r < t.Rows; r++ {
		row := t.Weight[r*int64(dim) : (r+1)*int64(dim)]
		p := lp.ColdPrecision
		if k < len(hot) && hot[k] == r {
			p = lp.HotPrecision
			k++
			hw = append(hw, row...)
		} else {
			cw = append(cw, row...)
		}
		if err := CheckPartRows(p, tensor, row, r, 1, dim); err != nil {
			return nil, err
		}
	}
	hp, err := QuantizePart(lp.HotPrecision, tensor, hw, int64(len(hot)), dim)
	if err != nil {
		return nil, err
	}
	cp, err := QuantizePart(lp.ColdPrecision, tensor, cw, t.Rows-int64(len(hot)), dim)
	if err != nil {
		return nil, err
	}
	mt, err := kernels.NewMixedBagTable(t.Rows, dim, hot, hp, cp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return &model.Table{Name: t.Name, Rows: t.Rows, Dim: t.Dim, Weight: t.Weight, Kernel: mt}, nil
}

// CheckPartRows checks rows of a table's values (the first being the
// table's row first) as a part at precision p needs: CheckRowsFor for the
// row-wise formats, CheckRows (no NaN or Inf) for MX.
func CheckPartRows(p precision.Precision, tensor string, w []float32, first int64, rows, dim int) error {
	if f, ok := kernels.TableFormatOf(p); ok {
		return CheckRowsFor(f, tensor, w, first, rows, dim)
	}
	return CheckRows(tensor, w, first, rows, dim)
}

// QuantizePart quantizes rows x dim values (already checked) to a table
// of precision p: a kernels.BagTable for the row-wise formats, an
// MXBagTable for MX. tensor names the table in errors.
func QuantizePart(p precision.Precision, tensor string, w []float32, rows int64, dim int) (kernels.RowTable, error) {
	if mf, ok := kernels.MXFormatOf(p); ok {
		return QuantizeMXTable(mf, tensor, w, rows, dim)
	}
	f, ok := kernels.TableFormatOf(p)
	if !ok {
		return nil, fmt.Errorf("%s: no table format for precision %q", tensor, named(p))
	}
	data := make([]byte, rows*int64(f.RowBytes(dim)))
	QuantizeTableRows(f, false, w, int(rows), dim, data)
	return kernels.NewBagTable(f, rows, dim, data)
}

// CheckMixedPlan is Validate's check of a mixed table's plan entry lp
// (its part precisions and share), for table name.
func CheckMixedPlan(name string, lp LayerPlan) error {
	if lp.Precision != precision.Mixed {
		return fmt.Errorf("plan: %s: precision %s, not mixed", name, named(lp.Precision))
	}
	return checkMixed(name, "table", lp)
}
