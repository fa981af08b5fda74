package debug

import (
	"fmt"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/report"
)

// TablePart is the row error of one part of a mixed-precision table (its
// hot rows or its cold ones), so that each format's error shows apart.
type TablePart struct {
	Part        string       `json:"part"` // "hot" or "cold"
	Precision   string       `json:"precision"`
	Rows        int64        `json:"rows"`
	MeanRowRMSE report.Float `json:"mean_row_rmse"`
	MaxRowRMSE  report.Float `json:"max_row_rmse"`
	MaxRow      int64        `json:"max_row"`
}

// partStats splits a mixed table's row errors by part; nil (and a no-op)
// for any other table.
type partStats struct {
	mt     *kernels.MixedBagTable
	n      [2]int64
	sum    [2]float64
	max    [2]float64
	maxRow [2]int64
}

func newPartStats(k model.BagKernel) *partStats {
	mt, ok := k.(*kernels.MixedBagTable)
	if !ok {
		return nil
	}
	return &partStats{mt: mt, maxRow: [2]int64{-1, -1}}
}

// add counts row's RMSE in its part.
func (p *partStats) add(row int64, rmse float64) {
	if p == nil {
		return
	}
	i := 1
	if p.mt.IsHot(row) {
		i = 0
	}
	p.n[i]++
	p.sum[i] += rmse
	if rmse > p.max[i] || p.maxRow[i] < 0 {
		p.max[i], p.maxRow[i] = rmse, row
	}
}

// parts is the two parts' errors, hot first; nil for a table not mixed.
func (p *partStats) parts() []TablePart {
	if p == nil {
		return nil
	}
	var out []TablePart
	for i, name := range []string{"hot", "cold"} {
		prec := p.mt.HotPrecision()
		if i == 1 {
			prec = p.mt.ColdPrecision()
		}
		tp := TablePart{Part: name, Precision: prec.TableLabel(), Rows: p.n[i], MaxRowRMSE: report.Float(p.max[i]), MaxRow: p.maxRow[i]}
		if p.n[i] > 0 {
			tp.MeanRowRMSE = report.Float(p.sum[i] / float64(p.n[i]))
		}
		out = append(out, tp)
	}
	return out
}

// suggestMixed explains a costly mixed table by its parts' errors: the
// cold rows are nearly always the larger error, and the fixes are more
// hot rows or a wider cold format.
func suggestMixed(l *Layer, t *TableRows, iso float64) (string, string) {
	hot, cold := t.Parts[0], t.Parts[1]
	return RuleTableBits, fmt.Sprintf("%s %s (isolated SQNR %.1f dB; mean row RMSE %.3g in the %d cold %s rows, %.3g in the %d hot %s rows): keep more rows hot (a larger hot_share) or give the cold rows a wider precision, or use int8 rows",
		l.Name, l.Precision, iso, float64(cold.MeanRowRMSE), cold.Rows, cold.Precision, float64(hot.MeanRowRMSE), hot.Rows, hot.Precision)
}
