package debug

import (
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/report"
)

// Layer kinds.
const (
	KindFC          = "fc"
	KindTable       = "table"
	KindInteraction = "interaction"
	KindOutput      = "output" // the click probability
)

// Report is the outcome of Analyze, ready for JSON.
type Report struct {
	Rows int64 `json:"rows"`
	// NE of the fp32 and the quantized network on the rows, and the
	// quantized one's change in percent (100·(ne_q − ne)/ne).
	NE          report.Float `json:"ne"`
	QuantizedNE report.Float `json:"quantized_ne"`
	DeltaNEPct  report.Float `json:"delta_ne_pct"`
	// Layers in network order: bottom MLP, tables, interaction, top MLP,
	// then the output prediction.
	Layers []Layer `json:"layers"`
	// Tables: the row-wise reconstruction of every quantized table.
	Tables []TableRows `json:"tables"`
	// Culprits: every quantized layer, worst ΔNE alone first.
	Culprits []Culprit `json:"culprits"`
	// Worst holds histograms of the worst tensor for the HTML report.
	Worst *Worst `json:"worst,omitempty"`
}

// Layer is one layer's numeric error.
type Layer struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Precision string `json:"precision"`
	// Quantized: the layer differs from fp32 (it has a low-precision kernel).
	Quantized bool `json:"quantized"`
	// Isolated is the layer's own error on exact fp32 inputs (nil for the
	// output, which is the last layer's propagated error).
	Isolated *Error `json:"isolated,omitempty"`
	// Propagated is the quantized network's error at this layer's output.
	Propagated Error `json:"propagated"`
	// Clip is set for int8 FC layers with static activations.
	Clip *Clip `json:"clip,omitempty"`
	// WeightSQNR is the SQNR of the stored weights against fp32's (FC
	// layers only).
	WeightSQNR *report.Float `json:"weight_sqnr_db,omitempty"`
	// PerTensorWeights: an int8 layer with one weight scale for the layer.
	PerTensorWeights bool `json:"per_tensor_weights,omitempty"`

	// prec and act are what Precision names (its label, as the kernel
	// reports it), typed for Suggest's rules: the layer's precision and,
	// for an integer FC layer, its activation mode.
	prec precision.Precision
	act  precision.Activation
}

// Clip is how much of a static int8 layer's fp32 input falls outside its
// calibrated range [Lo, Hi] = [scale·(0−zero), scale·(255−zero)].
type Clip struct {
	Lo       report.Float `json:"lo"`
	Hi       report.Float `json:"hi"`
	Clipped  int64        `json:"clipped"`
	Values   int64        `json:"values"`
	Fraction report.Float `json:"fraction"`
}

// TableRows is a quantized table's row-wise reconstruction error: the
// dequantized rows against the fp32 ones, over every row of the table.
// A row's error is its RMSE (root mean square of dequantized − fp32); a
// row's range is max − min of its fp32 values, what its scale must span.
type TableRows struct {
	Table       string       `json:"table"`
	Precision   string       `json:"precision"`
	Rows        int64        `json:"rows"`
	MeanRowRMSE report.Float `json:"mean_row_rmse"`
	MaxRowRMSE  report.Float `json:"max_row_rmse"`
	MaxRow      int64        `json:"max_row"`
	// MedianRange is approximate: to within 1/2048 of MaxRange.
	MedianRange report.Float `json:"median_range"`
	MaxRange    report.Float `json:"max_range"`
	// Outliers are the rows with the largest ranges, largest first.
	Outliers []OutlierRow `json:"outliers"`
	// Parts splits a mixed table's row error by part (hot, then cold).
	Parts []TablePart `json:"parts,omitempty"`
}

// OutlierRow is one row of a table with an extreme range.
type OutlierRow struct {
	Row   int64        `json:"row"`
	Range report.Float `json:"range"`
	RMSE  report.Float `json:"rmse"`
}

// Culprit is one quantized layer's own cost: ΔNE of the fp32 network with
// only this layer quantized.
type Culprit struct {
	Layer      string       `json:"layer"`
	Precision  string       `json:"precision"`
	DeltaNEPct report.Float `json:"delta_ne_pct"`
	Rule       string       `json:"rule"`
	Suggestion string       `json:"suggestion"`
}

// Worst is the quantized layer with the lowest isolated SQNR, with
// histograms of its fp32 and quantized outputs (on the same fp32 inputs)
// over shared bins.
type Worst struct {
	Layer     string       `json:"layer"`
	SQNR      report.Float `json:"sqnr_db"`
	FP32      Histogram    `json:"fp32"`
	Quantized Histogram    `json:"quantized"`
}
