package debug

import (
	"fmt"
	"math"

	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/report"
)

// Thresholds of the suggestion rules (see the package documentation).
const (
	// ClipThreshold: a static int8 input with at least this fraction of
	// its values outside the calibrated range is clipping (0.1%).
	ClipThreshold = 0.001
	// WeightSQNRThreshold: int8 weights below this SQNR (dB) lose too much
	// (per-channel int8 weights of a trained layer are typically 35-45 dB).
	WeightSQNRThreshold = 30
	// OutlierRatio: an n-bit table whose largest row range is this many
	// times its median range has outlier rows.
	OutlierRatio = 4
)

// Rule names.
const (
	RuleHarmless      = "harmless"
	RuleClipping      = "clipping"
	RuleWeights       = "weights"
	RuleActivations   = "activations"
	RuleTableOutliers = "table-outliers"
	RuleTableBits     = "table-bits"
	RulePrecision     = "precision"
)

// Suggest picks the rule that explains a quantized layer's cost and says
// what to do about it. l is as Analyze fills it (its rules read the
// layer's typed precision and activation mode, not the Precision label);
// t is the layer's row statistics when it is a quantized table (else
// nil); deltaNEPct is its ΔNE alone in percent.
func Suggest(l *Layer, t *TableRows, deltaNEPct float64) (rule, text string) {
	if deltaNEPct <= 0 { // NaN falls through: a broken layer needs a fix
		return RuleHarmless, fmt.Sprintf("%s alone does not raise NE: keep it %s", l.Name, l.Precision)
	}
	iso := math.NaN()
	if l.Isolated != nil {
		iso = float64(l.Isolated.SQNR)
	}
	if l.Kind == KindTable {
		return suggestTable(l, t, iso)
	}
	switch {
	case l.Clip != nil && float64(l.Clip.Fraction) >= ClipThreshold:
		return RuleClipping, fmt.Sprintf("%s input clipped %.2f%% (range [%.3g, %.3g]): recalibrate with --method minmax (or percentile), use dynamic activations, or fall back to fp16",
			l.Name, 100*float64(l.Clip.Fraction), float64(l.Clip.Lo), float64(l.Clip.Hi))
	case l.prec.IsInteger() && l.WeightSQNR != nil && float64(*l.WeightSQNR) < WeightSQNRThreshold:
		fix := "fp16"
		if l.PerTensorWeights {
			fix = "per-channel weights or fp16"
		}
		return RuleWeights, fmt.Sprintf("%s int8 weights SQNR %.1f dB: %s", l.Name, float64(*l.WeightSQNR), fix)
	case l.prec.IsInteger():
		fix := "dynamic per-row activations, or fall back to fp16"
		if l.act == precision.Dynamic {
			fix = "fall back to fp16"
		}
		return RuleActivations, fmt.Sprintf("%s int8 activation rounding (isolated SQNR %.1f dB, weights %s): %s", l.Name, iso, dB(l.WeightSQNR), fix)
	}
	if l.prec.IsMX() {
		// The next rungs of the FC ladder up, by bytes; MX activations
		// cost accuracy and save no bytes, so they go first.
		fix := map[precision.Precision]string{precision.MXFP4: "mxfp6_e2m3 or int8", precision.MXFP6E2M3: "int8", precision.MXFP6E3M2: "mxfp6_e2m3 (one more mantissa bit) or int8"}[l.prec]
		if fix == "" {
			fix = "int8 (per-channel scales) or fp16"
		}
		if l.act == precision.Dynamic {
			fix = "drop the MX activations (weights only, bf16 inputs), or " + fix
		}
		return RulePrecision, fmt.Sprintf("%s %s (isolated SQNR %.1f dB, weights %s): use %s", l.Name, l.Precision, iso, dB(l.WeightSQNR), fix)
	}
	fix := "fp32"
	if l.prec == precision.BF16 {
		fix = "fp16 (10 mantissa bits to bf16's 7) or fp32"
	}
	return RulePrecision, fmt.Sprintf("%s %s (isolated SQNR %.1f dB): use %s", l.Name, l.Precision, iso, fix)
}

func suggestTable(l *Layer, t *TableRows, iso float64) (string, string) {
	if t != nil && len(t.Parts) == 2 {
		return suggestMixed(l, t, iso)
	}
	nbit := l.prec.IsInteger() && l.prec.Bits() < 8
	bits := fmt.Sprintf("%d-bit", l.prec.Bits())
	if t != nil && nbit && float64(t.MaxRange) >= OutlierRatio*float64(t.MedianRange) {
		return RuleTableOutliers, fmt.Sprintf("%s %s rows with extreme ranges (max %.3g vs median %.3g): use int8 rows, or greedy ranges (\"greedy\": true in the plan)",
			l.Name, bits, float64(t.MaxRange), float64(t.MedianRange))
	}
	next := "int8 rows"
	switch l.prec {
	case precision.Int8:
		next = "fp16"
	case precision.FP16:
		next = "fp32"
	}
	detail := fmt.Sprintf("isolated SQNR %.1f dB", iso)
	if t != nil {
		detail += fmt.Sprintf(", mean row RMSE %.3g", float64(t.MeanRowRMSE))
	}
	return RuleTableBits, fmt.Sprintf("%s %s (%s): use %s", l.Name, l.Precision, detail, next)
}

// dB formats an optional SQNR.
func dB(f *report.Float) string {
	switch {
	case f == nil:
		return "n/a"
	case math.IsInf(float64(*f), 1):
		return "exact"
	}
	return fmt.Sprintf("%.1f dB", float64(*f))
}
