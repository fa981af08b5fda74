package cmd

import (
	"fmt"

	"github.com/rqtools/rq/debug"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
)

// mixedEncoding is how rq quantize writes table t under a mixed plan
// entry: its hot rows from the calibration's access counts (--ranges),
// each part quantized while written, each row vetted as its part's format
// needs (tableRowCheck, under --allow-nonfinite a warning).
func (mf *modelFlags) mixedEncoding(modelPath string, t *model.Table, lp quantize.LayerPlan, ranges quantize.RangeSource) (modelio.TableEncoding, error) {
	hs, ok := ranges.(quantize.HotRowSource)
	if !ok || ranges == nil {
		return modelio.TableEncoding{}, usageErrorf("the plan makes %s a mixed table, which keeps its most looked-up rows at %s: give --ranges from rq calibrate (its row access counts choose them)", t.Name, lp.HotPrecision)
	}
	hot, err := hs.HotRows(t.Name, lp.HotShare)
	if err != nil {
		return modelio.TableEncoding{}, err
	}
	if hot, err = quantize.SortedHotRows(t.Name, t.Rows, hot); err != nil {
		return modelio.TableEncoding{}, err
	}
	part := func(p precision.Precision) (modelio.TableEncoding, error) {
		if f, ok := kernels.MXFormatOf(p); ok {
			return modelio.TableEncoding{MX: f, Check: mf.tableRowCheck(modelPath, t, 0)}, nil
		}
		f, err := quantize.TableFormat(p)
		if err != nil {
			return modelio.TableEncoding{}, err
		}
		return modelio.TableEncoding{Format: f, Check: mf.tableRowCheck(modelPath, t, f), Encode: func(w []float32, rows, dim int, dst []byte) {
			quantize.QuantizeTableRows(f, false, w, rows, dim, dst)
		}}, nil
	}
	he, err := part(lp.HotPrecision)
	if err != nil {
		return modelio.TableEncoding{}, err
	}
	ce, err := part(lp.ColdPrecision)
	if err != nil {
		return modelio.TableEncoding{}, err
	}
	return modelio.TableEncoding{Mixed: &modelio.MixedEncoding{HotRows: hot, Hot: he, Cold: ce}}, nil
}

// mixedPartRows are rq debug's table rows under a mixed table: each
// part's row error on its own ("  hot int8-rowwise (12 rows)").
func mixedPartRows(t debug.TableRows) [][]string {
	var rows [][]string
	for _, p := range t.Parts {
		rows = append(rows, []string{"", fmt.Sprintf("  %s %s (%d rows)", p.Part, p.Precision, p.Rows), report.F(float64(p.MeanRowRMSE), 5),
			fmt.Sprintf("%s @%d", report.F(float64(p.MaxRowRMSE), 5), p.MaxRow), "", "", ""})
	}
	return rows
}
