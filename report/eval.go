package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/rqtools/rq/evaluate"
	"github.com/rqtools/rq/metrics"
)

// Metrics is one model's figures as rq eval prints them.
type Metrics struct {
	Examples int64 `json:"examples"`
	CTR      Float `json:"ctr"`
	NE       Float `json:"ne"`
	LogLoss  Float `json:"logloss"`
	AUC      Float `json:"auc"`
	// AUCErrorBound bounds |auc - exact AUC| (0: exact); see metrics.Accumulator.
	AUCErrorBound  Float `json:"auc_error_bound"`
	Calibration    Float `json:"calibration"`
	Accuracy       Float `json:"accuracy"`
	ExamplesPerSec Float `json:"examples_per_sec"`
}

// Delta is a model's change against its baseline.
type Delta struct {
	NEPct   Float `json:"ne_pct"`
	AUC     Float `json:"auc"`
	LogLoss Float `json:"logloss"`
}

// Eval is rq eval's output: exactly one JSON object with --json.
type Eval struct {
	Model          string   `json:"model"`
	Data           string   `json:"data"`
	Rows           string   `json:"rows,omitempty"`
	Threads        int      `json:"threads"`
	Batch          int      `json:"batch"`
	SkippedRows    int64    `json:"skipped_rows"`
	BaselineModel  string   `json:"baseline_model,omitempty"`
	Baseline       *Metrics `json:"baseline,omitempty"`
	Delta          *Delta   `json:"delta,omitempty"`
	MaxAbsPredDiff *Float   `json:"max_abs_pred_diff,omitempty"`
	// Bytes is the model's parameter bytes as stored; BaselineBytes the baseline's.
	Bytes         int64 `json:"bytes"`
	BaselineBytes int64 `json:"baseline_bytes,omitempty"`
	// SimulateMaxAbsDiff (with --simulate) is the largest |p_sim - p_real|.
	SimulateMaxAbsDiff *Float `json:"simulate_max_abs_diff,omitempty"`
	// Pass and Budget are set when budgets were given.
	Pass   *bool   `json:"pass,omitempty"`
	Budget *Budget `json:"budget,omitempty"`
	// Shard is the part of the rows evaluated ("I/N", rq eval --shard); Shards
	// the parts an rq merge combined ("all 4", or "0,2 of 4" when partial).
	Shard  string `json:"shard,omitempty"`
	Shards string `json:"shards,omitempty"`
	Metrics
}

// Budget is the accuracy budget an evaluation was judged against.
type Budget struct {
	MaxNEDeltaPct Float `json:"max_ne_delta_pct"`
	MaxAUCDrop    Float `json:"max_auc_drop"`
}

func metricsOf(r metrics.Result, eps float64) Metrics {
	return Metrics{
		Examples: r.Examples, CTR: Float(r.CTR), NE: Float(r.NE), LogLoss: Float(r.LogLoss), AUC: Float(r.AUC), AUCErrorBound: Float(r.AUCErrorBound),
		Calibration: Float(r.Calibration), Accuracy: Float(r.Accuracy), ExamplesPerSec: Float(eps),
	}
}

// NewEval builds the output from an evaluation report.
func NewEval(model, data, rows string, threads, batch int, baselineModel string, rep *evaluate.Report) *Eval {
	e := &Eval{Model: model, Data: data, Rows: rows, Threads: threads, Batch: batch, SkippedRows: rep.Data.Skipped,
		Metrics: metricsOf(rep.Result, rep.ExamplesPerSec)}
	if rep.Baseline != nil {
		m := metricsOf(*rep.Baseline, 0)
		m.ExamplesPerSec = 0
		e.BaselineModel = baselineModel
		e.Baseline = &m
		e.Delta = &Delta{NEPct: Float(rep.Delta.NEPct), AUC: Float(rep.Delta.AUC), LogLoss: Float(rep.Delta.LogLoss)}
		d := Float(rep.MaxAbsPredDiff)
		e.MaxAbsPredDiff = &d
	}
	return e
}

// EvalTable prints an evaluation as a table: one column for the model and,
// with a baseline, one for the baseline and one for the change.
func EvalTable(w io.Writer, e *Eval) error {
	header := []string{"metric", "model"}
	if e.Baseline != nil {
		header = append(header, "baseline", "delta")
	}
	row := func(name string, v, b float64, dec int, delta string) []string {
		r := []string{name, F(v, dec)}
		if e.Baseline != nil {
			r = append(r, F(b, dec), delta)
		}
		return r
	}
	var b Metrics
	var d Delta
	if e.Baseline != nil {
		b, d = *e.Baseline, *e.Delta
	}
	rows := [][]string{
		row("examples", float64(e.Examples), float64(b.Examples), 0, ""),
		row("ctr", float64(e.CTR), float64(b.CTR), 5, ""),
		row("NE", float64(e.NE), float64(b.NE), 5, Signed(float64(d.NEPct), 3, "%")),
		row("log loss", float64(e.LogLoss), float64(b.LogLoss), 5, Signed(float64(d.LogLoss), 5, "")),
		row("AUC", float64(e.AUC), float64(b.AUC), 5, Signed(float64(d.AUC), 5, "")),
		row("calibration", float64(e.Calibration), float64(b.Calibration), 4, ""),
		row("accuracy@0.5", float64(e.Accuracy), float64(b.Accuracy), 4, ""),
	}
	if err := Table(w, header, rows); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s on %s", e.Model, e.Data)
	if err == nil && e.Rows != "" {
		_, err = fmt.Fprintf(w, " rows %s", e.Rows)
	}
	if err == nil {
		_, err = fmt.Fprintf(w, ": %.0f examples/s (forward pass, %d threads, batch %d)", float64(e.ExamplesPerSec), e.Threads, e.Batch)
	}
	if err == nil && e.Shard != "" {
		_, err = fmt.Fprintf(w, ", shard %s", e.Shard)
	}
	if err == nil && e.Shards != "" {
		_, err = fmt.Fprintf(w, ", merged shards: %s", e.Shards)
	}
	if err == nil && float64(e.AUCErrorBound) > 0 {
		_, err = fmt.Fprintf(w, "; AUC within %.2g of exact", float64(e.AUCErrorBound))
	}
	if err == nil && e.SkippedRows > 0 {
		_, err = fmt.Fprintf(w, ", %d bad rows skipped", e.SkippedRows)
	}
	if err == nil && e.MaxAbsPredDiff != nil {
		_, err = fmt.Fprintf(w, "; max |p - p_baseline| %.3g", float64(*e.MaxAbsPredDiff))
	}
	if err == nil && e.SimulateMaxAbsDiff != nil {
		_, err = fmt.Fprintf(w, "; simulation vs real kernels: max |p_sim - p| %.3g", float64(*e.SimulateMaxAbsDiff))
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "\nsize %s", Bytes(e.Bytes))
		if err == nil && e.BaselineBytes > 0 {
			_, err = fmt.Fprintf(w, " (%.1f%% of the baseline's %s)", 100*float64(e.Bytes)/float64(e.BaselineBytes), Bytes(e.BaselineBytes))
		}
	}
	if err == nil && e.Pass != nil {
		verdict := "PASS"
		if !*e.Pass {
			verdict = "FAIL"
		}
		_, err = fmt.Fprintf(w, "\nbudget (NE +%s%%, AUC -%s): %s", fmtBudget(e.Budget.MaxNEDeltaPct), fmtBudget(e.Budget.MaxAUCDrop), verdict)
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	return err
}

func fmtBudget(f Float) string {
	if math.IsNaN(float64(f)) {
		return "any"
	}
	return strconv.FormatFloat(float64(f), 'g', -1, 64)
}

// EvalMarkdown writes an evaluation as a Markdown table for a CI job summary.
func EvalMarkdown(w io.Writer, e *Eval) error {
	var b strings.Builder
	verdict := ""
	if e.Pass != nil {
		verdict = " ✅ pass"
		if !*e.Pass {
			verdict = " ❌ budget broken"
		}
	}
	fmt.Fprintf(&b, "### rq eval: `%s`%s\n\n", e.Model, verdict)
	if e.Baseline == nil {
		fmt.Fprintf(&b, "| metric | model |\n|---|---|\n")
		fmt.Fprintf(&b, "| NE | %s |\n| AUC | %s |\n| log loss | %s |\n| examples | %d |\n| size | %s |\n",
			F(float64(e.NE), 5), F(float64(e.AUC), 5), F(float64(e.LogLoss), 5), e.Examples, Bytes(e.Bytes))
	} else {
		fmt.Fprintf(&b, "| metric | model | baseline (`%s`) | delta |\n|---|---|---|---|\n", e.BaselineModel)
		fmt.Fprintf(&b, "| NE | %s | %s | %s |\n", F(float64(e.NE), 5), F(float64(e.Baseline.NE), 5), Signed(float64(e.Delta.NEPct), 3, "%"))
		fmt.Fprintf(&b, "| AUC | %s | %s | %s |\n", F(float64(e.AUC), 5), F(float64(e.Baseline.AUC), 5), Signed(float64(e.Delta.AUC), 5, ""))
		fmt.Fprintf(&b, "| log loss | %s | %s | %s |\n", F(float64(e.LogLoss), 5), F(float64(e.Baseline.LogLoss), 5), Signed(float64(e.Delta.LogLoss), 5, ""))
		fmt.Fprintf(&b, "| size | %s | %s | %.1f%% |\n", Bytes(e.Bytes), Bytes(e.BaselineBytes), 100*float64(e.Bytes)/float64(max(e.BaselineBytes, 1)))
	}
	fmt.Fprintf(&b, "\n%d examples of `%s`", e.Examples, e.Data)
	if e.Rows != "" {
		fmt.Fprintf(&b, " (rows %s)", e.Rows)
	}
	if e.Budget != nil {
		fmt.Fprintf(&b, "; budget: NE +%s%%, AUC -%s", fmtBudget(e.Budget.MaxNEDeltaPct), fmtBudget(e.Budget.MaxAUCDrop))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
