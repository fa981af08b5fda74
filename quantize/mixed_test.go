package quantize

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// hotRows is a HotRowSource over fixed lists (the ids of a table by
// descending count, as calibrate.TableAccess lists them).
type hotRows map[string][]int64

func (h hotRows) HotRows(table string, share float64) ([]int64, error) {
	l, ok := h[table]
	if !ok {
		return nil, fmt.Errorf("no counts for %s", table)
	}
	return l[:h.count(table, share)], nil
}

func (h hotRows) count(table string, share float64) int64 {
	rows := map[string]int64{"emb_l.0": 20, "emb_l.1": 30, "emb_l.2": 10}[table]
	return HotCount(share, rows, int64(len(h[table])))
}

func (h hotRows) ListedRows(table string) (int64, bool) {
	l, ok := h[table]
	return int64(len(l)), ok
}

func (h hotRows) Range(layer, method string) (float32, float32, error) {
	return 0, 0, fmt.Errorf("no ranges")
}

// TestMixedPlanValidate: a mixed table needs both part precisions (table
// precisions, not mixed, not equal) and a share in (0, 1]; the mixed
// fields belong to mixed tables only; unknown part precisions are located.
func TestMixedPlanValidate(t *testing.T) {
	net := randNet(31)
	ok := MixedPlan(precision.Int8, precision.MXFP4, 0.1)
	for _, c := range []struct {
		layer string
		lp    LayerPlan
		want  string
	}{
		{"emb_l.0", LayerPlan{Precision: precision.Mixed, ColdPrecision: precision.Int2, HotShare: 0.1}, `emb_l.0 is a mixed table; its hot_precision must be one of fp32, fp16, int8, int4, int2, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, not ""`},
		{"emb_l.0", MixedPlan(precision.Int8, precision.Mixed, 0.1), `its cold_precision must be one of`},
		{"emb_l.0", MixedPlan(precision.Int8, precision.BF16, 0.1), `not "bf16"`},
		{"emb_l.0", MixedPlan(precision.Int4, precision.Int4, 0.1), "hot and cold rows both int4 is a int4 table"},
		{"emb_l.0", MixedPlan(precision.Int8, precision.Int2, 0), "hot_share is the share of its rows kept at hot_precision, above 0 and at most 1, not 0"},
		{"emb_l.0", MixedPlan(precision.Int8, precision.Int2, 1.5), "not 1.5"},
		{"emb_l.0", MixedPlan(precision.Int8, precision.Int2, math.NaN()), "not NaN"},
		{"emb_l.0", LayerPlan{Precision: precision.Int4, HotShare: 0.1}, "hot_precision, cold_precision and hot_share apply to mixed tables only"},
		{"bot_l.0", LayerPlan{Precision: precision.Int8, ColdPrecision: precision.Int2}, "apply to mixed tables only"},
		{"bot_l.0", ok, `bot_l.0 is an FC layer; its precision must be one of fp32, fp16, bf16, int8, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, not "mixed"`},
		{"emb_l.0", LayerPlan{Precision: precision.Mixed, HotPrecision: precision.Int8, ColdPrecision: precision.Int2, HotShare: 0.1, Greedy: true}, "greedy range search applies to int4 and int2 tables only"},
	} {
		p := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{c.layer: c.lp}}
		if err := p.Validate(net); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.lp, err, c.want)
		}
	}
	p := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{"emb_l.1": ok}}
	if err := p.Validate(net); err != nil {
		t.Fatal(err)
	}
	// Through JSON, as plans are written and read.
	back, err := DecodePlan(strings.NewReader(string(p.Encode())))
	if err != nil || back.Layers["emb_l.1"] != ok {
		t.Errorf("round trip: %+v, %v", back.Layers["emb_l.1"], err)
	}
	if !strings.Contains(string(p.Encode()), `"hot_precision": "int8"`) || strings.Contains(string((&Plan{Version: 1, Layers: map[string]LayerPlan{"x": {Precision: precision.Int8}}}).Encode()), "hot") {
		t.Errorf("encoding: %s", p.Encode())
	}
	_, err = DecodePlan(strings.NewReader(`{"version": 1, "layers": {"emb_l.1": {"precision": "mixed", "hot_precision": "int8", "cold_precision": "int3", "hot_share": 0.1}}}`))
	var unknown *precision.UnknownError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), `layers["emb_l.1"].cold_precision`) {
		t.Errorf("unknown cold precision: %v", err)
	}
	if got := p.MixedTables(); !slices.Equal(got, []string{"emb_l.1"}) {
		t.Errorf("MixedTables = %v", got)
	}
}

// TestHotCount matches calibrate.TableAccess.Hot's count, which the
// search's byte counts rely on.
func TestHotCount(t *testing.T) {
	for _, rows := range []int64{1, 7, 100, 1000} {
		for _, listed := range []int64{0, 1, 5, rows / 2, rows} {
			ta := &calibrate.TableAccess{Rows: rows}
			for r := range listed {
				ta.HotRows = append(ta.HotRows, calibrate.HotRow{Row: r, Count: uint64(listed - r)})
			}
			for _, share := range []float64{-1, 0, 0.001, 0.01, 0.05, 1.0 / 3, 0.5, 1, 2} {
				if got, want := HotCount(share, rows, listed), int64(len(ta.Hot(share))); got != want {
					t.Errorf("rows %d listed %d share %v: HotCount %d, Hot gives %d", rows, listed, share, got, want)
				}
			}
		}
	}
}

// TestQuantizeMixedTable: the hot rows (the source's first ceil(share·rows)
// of its list) go to the hot part at hot precision in id order, the
// others, unseen rows included, to the cold part; each part is what
// QuantizePart makes of its rows; Apply needs the rows' source.
func TestQuantizeMixedTable(t *testing.T) {
	net := randNet(32)
	src := hotRows{"emb_l.1": {17, 3, 29, 8, 0, 11}}
	for _, pair := range [][2]precision.Precision{{precision.Int8, precision.Int2}, {precision.Int8, precision.MXFP4}, {precision.MXFP8E4M3, precision.Int4}, {precision.FP16, precision.MXFP6E2M3}} {
		lp := MixedPlan(pair[0], pair[1], 0.1) // ceil(3) = 3 of 30 rows
		plan := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{"emb_l.1": lp}}
		q, err := Apply(net, plan, src)
		if err != nil {
			t.Fatal(err)
		}
		tb := q.Tables[1]
		mt, ok := tb.Kernel.(*kernels.MixedBagTable)
		if !ok {
			t.Fatalf("kernel %T", tb.Kernel)
		}
		if got := mt.HotRows(); !slices.Equal(got, []int64{3, 17, 29}) {
			t.Errorf("%v: hot rows %v, want 3 17 29", pair, got)
		}
		w := net.Tables[1].Weight
		dim := net.Tables[1].Dim
		var hw, cw []float32
		for r := range 30 {
			if r == 3 || r == 17 || r == 29 {
				hw = append(hw, w[r*dim:(r+1)*dim]...)
			} else {
				cw = append(cw, w[r*dim:(r+1)*dim]...)
			}
		}
		hp, _ := QuantizePart(pair[0], "x", hw, 3, dim)
		cp, _ := QuantizePart(pair[1], "x", cw, 27, dim)
		want := make([]float32, 30*dim)
		hd, cd := make([]float32, 3*dim), make([]float32, 27*dim)
		hp.DequantizeRows(0, 3, hd)
		cp.DequantizeRows(0, 27, cd)
		hi, ci := 0, 0
		for r := range 30 {
			if r == 3 || r == 17 || r == 29 {
				copy(want[r*dim:], hd[hi*dim:(hi+1)*dim])
				hi++
			} else {
				copy(want[r*dim:], cd[ci*dim:(ci+1)*dim])
				ci++
			}
		}
		got := make([]float32, 30*dim)
		mt.DequantizeRows(0, 30, got)
		if !slices.Equal(got, want) {
			t.Errorf("%v: rows differ from the parts quantized alone", pair)
		}
		if tb.Bytes() != hp.Bytes()+cp.Bytes()+3*4 {
			t.Errorf("%v: %d bytes, want %d + %d + 12", pair, tb.Bytes(), hp.Bytes(), cp.Bytes())
		}
		wantLabel := fmt.Sprintf("mixed(%s 10%% / %s)", pair[0], pair[1])
		if tb.Label() != wantLabel || tb.Precision() != precision.Mixed {
			t.Errorf("label %q precision %v, want %q", tb.Label(), tb.Precision(), wantLabel)
		}
	}
	plan := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{"emb_l.2": MixedPlan(precision.Int8, precision.Int2, 0.5)}}
	if _, err := Apply(net, plan, nil); err == nil || !strings.Contains(err.Error(), "emb_l.2: a mixed table keeps its hottest rows hot: it needs the calibration's access counts (rq calibrate, then --ranges)") {
		t.Errorf("no ranges: %v", err)
	}
	if _, err := Apply(net, plan, src); err == nil || !strings.Contains(err.Error(), "no counts for emb_l.2") {
		t.Errorf("no counts for the table: %v", err)
	}
	// calibrate.Ranges without access counts (an older ranges.json).
	old := &calibrate.Ranges{Version: 2, File: "old-ranges.json"}
	if _, err := QuantizeTableFrom(net.Tables[2], plan.Layers["emb_l.2"], old); err == nil || !strings.Contains(err.Error(), "old-ranges.json: no row access counts for embedding table emb_l.2") || !strings.Contains(err.Error(), "re-run rq calibrate") {
		t.Errorf("older ranges: %v", err)
	}
	if _, err := QuantizeTable(net.Tables[2], plan.Layers["emb_l.2"]); err == nil || !strings.Contains(err.Error(), "needs the calibration's access counts") {
		t.Errorf("QuantizeTable: %v", err)
	}
}

// TestQuantizeMixedRowChecks: a row is checked as its part needs: a value
// beyond fp16 is refused in an int2 part (naming the table row), kept in
// an int8 one; NaN anywhere is refused.
func TestQuantizeMixedRowChecks(t *testing.T) {
	net := randNet(33)
	tb := net.Tables[0]
	w := slices.Clone(tb.Weight)
	w[5*tb.Dim+2] = 1e6 // row 5
	big := &model.Table{Name: tb.Name, Rows: tb.Rows, Dim: tb.Dim, Weight: w}
	if _, err := QuantizeMixedTable(big, MixedPlan(precision.Int8, precision.Int2, 0.1), []int64{1}); err == nil || !strings.Contains(err.Error(), `tensor "emb_l.0.weight": row 5 holds 1e+06 (column 2)`) {
		t.Errorf("cold int2 row beyond fp16: %v", err)
	}
	if _, err := QuantizeMixedTable(big, MixedPlan(precision.Int8, precision.Int2, 0.1), []int64{5}); err != nil {
		t.Errorf("hot int8 row beyond fp16: %v", err)
	}
	w[5*tb.Dim+2] = float32(math.NaN())
	var nf *NonFiniteRowError
	if _, err := QuantizeMixedTable(big, MixedPlan(precision.Int8, precision.MXFP4, 0.1), []int64{5}); !errors.As(err, &nf) || nf.Row != 5 {
		t.Errorf("NaN: %v", err)
	}
	if _, err := QuantizeMixedTable(tb, MixedPlan(precision.Int8, precision.Int2, 0.1), []int64{3, 3}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("repeated hot row: %v", err)
	}
}

// TestSimulateMixed: the simulated (fp32 fake-quant) network predicts bit
// for bit what the mixed tables' own bag does.
func TestSimulateMixed(t *testing.T) {
	net := randNet(34)
	b := randBatch(net, 64, 35)
	src := hotRows{"emb_l.0": {4, 9, 1, 0}, "emb_l.1": {7, 2, 20, 21, 22}, "emb_l.2": {3}}
	plan := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{
		"emb_l.0": MixedPlan(precision.Int8, precision.Int2, 0.2),
		"emb_l.1": MixedPlan(precision.Int4, precision.MXFP4, 0.1),
		"emb_l.2": MixedPlan(precision.FP16, precision.Int8, 1),
	}}
	q, err := Apply(net, plan, src)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(q)
	if err != nil {
		t.Fatal(err)
	}
	got, want := predict(t, sim, b), predict(t, q, b)
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("row %d: simulated %v, real %v", i, got[i], want[i])
		}
	}
	if d := maxAbsDiff(want, predict(t, net, b)); d == 0 || d > 0.1 {
		t.Errorf("mixed vs fp32: max |Δp| %v", d)
	}
}
