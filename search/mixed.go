package search

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// Mixed rungs (issue 15): a table's hottest rows at one precision, the
// rest at another, named "mixed-HOT-COLD@SHARE" (mixed-int8-int2@0.02: the
// 2% of rows the calibration looked up most at int8, the others at int2).
// A table gets mixed rungs only when the ranges have access counts for it
// (Layer.AccessRows); otherwise they are skipped for that table.

// mixedPrefix starts every mixed rung's name.
const mixedPrefix = "mixed-"

// mixedSyntax is how rung lists name the mixed rungs.
const mixedSyntax = "mixed-HOT-COLD@SHARE (e.g. mixed-int8-int2@0.02)"

// mixedRungName is a mixed plan's rung name.
func mixedRungName(lp quantize.LayerPlan) string {
	return fmt.Sprintf("%s%s-%s@%s", mixedPrefix, lp.HotPrecision, lp.ColdPrecision, strconv.FormatFloat(lp.HotShare, 'g', -1, 64))
}

// parseMixedRung reads a mixed rung's name into its plan; the error says
// what is wrong with it (an unknown precision wraps the
// *precision.UnknownError, as every unknown precision is reported).
func parseMixedRung(l Layer, name string) (quantize.LayerPlan, error) {
	bad := func(why string, err error) error {
		return &rungError{layer: l.Name, kind: l.Kind, name: name, rungs: "want " + mixedSyntax + ": " + why, err: err}
	}
	parts, share, ok := strings.Cut(strings.TrimPrefix(name, mixedPrefix), "@")
	hot, cold, ok2 := strings.Cut(parts, "-")
	if !ok || !ok2 {
		return quantize.LayerPlan{}, bad("no hot and cold precisions and share", nil)
	}
	hp, err := precision.Parse(hot)
	if err != nil {
		return quantize.LayerPlan{}, bad(err.Error(), err)
	}
	cp, err := precision.Parse(cold)
	if err != nil {
		return quantize.LayerPlan{}, bad(err.Error(), err)
	}
	s, err := strconv.ParseFloat(share, 64)
	if err != nil {
		return quantize.LayerPlan{}, bad(fmt.Sprintf("share %q is not a number", share), nil)
	}
	lp := quantize.MixedPlan(hp, cp, s)
	if err := quantize.CheckMixedPlan(l.Name, lp); err != nil {
		return quantize.LayerPlan{}, bad(err.Error(), nil)
	}
	return lp, nil
}

// tableRung resolves a table rung name that is not in tableRungs: a
// mixed rung, skipped (ok false) on a table without access counts.
func tableRung(l Layer, name string) (lp quantize.LayerPlan, ok bool, err error) {
	if !strings.HasPrefix(name, mixedPrefix) {
		return lp, false, unknownRung(l, name, tableRungs)
	}
	if lp, err = parseMixedRung(l, name); err != nil {
		return lp, false, err
	}
	return lp, l.AccessRows > 0, nil
}

// mixedBytes is a mixed table's stored size, as kernels.MixedBagTable.Bytes
// counts it for the rows quantize.HotCount says the access counts give:
// both parts and the hot ids.
func (l Layer) mixedBytes(lp quantize.LayerPlan) int64 {
	hp, ok1 := partRowBytes(lp.HotPrecision, l.Dim)
	cp, ok2 := partRowBytes(lp.ColdPrecision, l.Dim)
	if !ok1 || !ok2 {
		return 0
	}
	hot := quantize.HotCount(lp.HotShare, l.Rows, l.AccessRows)
	return hot*(hp+int64(kernels.MixedHotIDBytes(l.Rows))) + (l.Rows-hot)*cp
}

// partRowBytes is the stored bytes of one row of dim values at table
// precision p (not mixed).
func partRowBytes(p precision.Precision, dim int) (int64, bool) {
	if f, ok := kernels.MXFormatOf(p); ok {
		return int64(kernels.MXCodeBytes(f, dim) + kernels.MXScales(dim)), true
	}
	if f, ok := kernels.TableFormatOf(p); ok {
		return int64(f.RowBytes(dim)), true
	}
	return 0, false
}

// markAccess sets each table's AccessRows from src's access counts, when
// src has them (calibrate.Ranges).
func markAccess(layers []Layer, src quantize.RangeSource) {
	hs, ok := src.(quantize.HotRowSource)
	if !ok || src == nil {
		return
	}
	for i, l := range layers {
		if l.Kind != KindTable {
			continue
		}
		if n, ok := hs.ListedRows(l.Name); ok {
			layers[i].AccessRows = n
		}
	}
}

// mixedCostPair and mixedCostShare are the mixed table the cost model
// times for a table shape (key "mixed ROWS DIM"): every mixed rung is
// priced from it. The mixed bag's time is a row lookup (the id map, then
// one part's row) and the decode of dim values, about the same for every
// pair of part formats and hot share (measured: int8/int2 and int8/mxfp4
// within the machine's noise); lookups are uniform, as for the other bags.
var (
	mixedCostPair  = [2]precision.Precision{precision.Int8, precision.Int2}
	mixedCostShare = 0.05
)

// mixedCostTable builds the timed mixed table from w (rows x dim), its hot
// rows drawn at random.
func mixedCostTable(w []float32, rows int64, dim int, rng *rand.Rand) (*kernels.MixedBagTable, error) {
	var hot []int64
	for r := int64(0); r < rows; r++ {
		if rng.Float64() < mixedCostShare {
			hot = append(hot, r)
		}
	}
	hw := make([]float32, 0, len(hot)*dim)
	cw := make([]float32, 0, int(rows)*dim)
	k := 0
	for r := int64(0); r < rows; r++ {
		row := w[r*int64(dim) : (r+1)*int64(dim)]
		if k < len(hot) && hot[k] == r {
			hw = append(hw, row...)
			k++
		} else {
			cw = append(cw, row...)
		}
	}
	hp, err := quantize.QuantizePart(mixedCostPair[0], "synthetic", hw, int64(len(hot)), dim)
	if err != nil {
		return nil, err
	}
	cp, err := quantize.QuantizePart(mixedCostPair[1], "synthetic", cw, rows-int64(len(hot)), dim)
	if err != nil {
		return nil, err
	}
	return kernels.NewMixedBagTable(rows, dim, hot, hp, cp)
}

// defaultMixedBelow and defaultMixedAbove are the default table ladder's
// mixed rungs below mxfp4 (int2 cold) and between mxfp4 and int4 (mxfp4
// cold); see DefaultLadders for their bytes.
func defaultMixedBelow() []string {
	var out []string
	for _, h := range []float64{0.01, 0.02, 0.04} {
		out = append(out, mixedRungName(quantize.MixedPlan(precision.Int8, precision.Int2, h)))
	}
	return out
}

func defaultMixedAbove() []string {
	var out []string
	for _, h := range []float64{0.05, 0.15} {
		out = append(out, mixedRungName(quantize.MixedPlan(precision.Int8, precision.MXFP4, h)))
	}
	return out
}
