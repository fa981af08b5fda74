package evaluate

import (
	"fmt"
	"math"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/metrics"
	"github.com/rqtools/rq/model"
)

// NonFinitePredictionError reports a prediction that is not a probability
// (NaN or infinite), with its cause as far as the example's inputs show:
// a non-finite value in a table row it looked up, or in its dense
// features. Without either, the FC layers made it (non-finite or huge
// weights, or overflow).
type NonFinitePredictionError struct {
	File  string // the model file, when the caller named it
	What  string // "" or "baseline "
	Row   int64  // the example's row in the data file
	Exact bool   // false when rows were skipped: Row is then a lower bound
	Value float32
	// Cause, when found: the table tensor and row (Tensor != ""), or the
	// dense feature (Dense >= 0), and the column and value there.
	Tensor   string
	TableRow int64
	Dense    int
	Col      int
	Cause    float32
	// SampleWeight: the cause is the per-sample weight of the lookup of
	// TableRow in Tensor, not the row itself.
	SampleWeight bool
	// Tables and Lookups say what was searched when no cause was found.
	Tables, Lookups int
}

func (e *NonFinitePredictionError) Error() string {
	file := "model"
	if e.File != "" {
		file = e.File
	}
	row := fmt.Sprintf("data row %d", e.Row)
	if !e.Exact {
		row = fmt.Sprintf("the example at data row %d or later (rows were skipped)", e.Row)
	}
	msg := fmt.Sprintf("%s: %sprediction for %s is %v", file, e.What, row, e.Value)
	switch {
	case e.SampleWeight:
		return msg + fmt.Sprintf(": the per-sample weight of its lookup of row %d of table tensor %q is %v", e.TableRow, e.Tensor, e.Cause)
	case e.Tensor != "":
		return msg + fmt.Sprintf(": table tensor %q row %d, which it looks up, holds %v at column %d", e.Tensor, e.TableRow, e.Cause, e.Col)
	case e.Dense >= 0:
		return msg + fmt.Sprintf(": its dense feature %d is %v", e.Dense, e.Cause)
	}
	return msg + fmt.Sprintf(", though its dense features and the %d table rows it looks up (%d tables) are finite: an FC layer made it (non-finite or huge weights, or overflow)", e.Lookups, e.Tables)
}

// predictions accumulates one model's predictions, diagnosing (or, when
// allowed, counting) those that are not probabilities.
type predictions struct {
	acc   *metrics.Accumulator
	net   *model.Network
	file  string
	what  string // "" or "baseline "
	allow bool
	bad   int64 // predictions that were not probabilities
	pos   int64 // positive labels among them
	first error // the first one's diagnosis
}

// add records batch b's predictions p.
func (pr *predictions) add(p []float32, b *model.Batch, rd dataset.Reader) error {
	err := pr.acc.Add(p, b.Labels)
	if err == nil {
		return nil
	}
	i := firstBad(p)
	if i < 0 { // something else (a length mismatch)
		return fmt.Errorf("%srows from %d: %w", pr.what, b.Row, err)
	}
	diag := diagnose(pr.net, b, i, p[i], rd)
	diag.File, diag.What = pr.file, pr.what
	if !pr.allow {
		return diag
	}
	if pr.first == nil {
		pr.first = diag
	}
	// Keep the probabilities; count the rest.
	var good, labels []float32
	for k, v := range p {
		if v >= 0 && v <= 1 {
			good, labels = append(good, v), append(labels, b.Labels[k])
			continue
		}
		pr.bad++
		if b.Labels[k] >= 0.5 {
			pr.pos++
		}
	}
	return pr.acc.Add(good, labels)
}

// result is the accumulator's result, with the metrics that non-finite
// predictions make undefined set to NaN (and those predictions counted).
func (pr *predictions) result() (metrics.Result, error) {
	if pr.bad == 0 {
		return pr.acc.Result()
	}
	res, err := pr.acc.Result()
	if err != nil { // every prediction was non-finite
		res = metrics.Result{}
	}
	n := res.Examples + pr.bad
	pos := res.CTR*float64(res.Examples) + float64(pr.pos)
	nan := math.NaN()
	return metrics.Result{Examples: n, CTR: pos / float64(n), NE: nan, LogLoss: nan, AUC: nan, Calibration: nan, Accuracy: nan}, nil
}

// CheckPredictions returns a *NonFinitePredictionError naming file and the
// cause of the first prediction in p (net's predictions for batch b from
// rd) that is not a probability, or nil. It is for loops that run the
// model without evaluating it (calibration), so that a NaN there is
// reported as rq eval reports it rather than silently counted.
func CheckPredictions(file string, net *model.Network, b *model.Batch, p []float32, rd dataset.Reader) error {
	i := firstBad(p)
	if i < 0 {
		return nil
	}
	e := diagnose(net, b, i, p[i], rd)
	e.File = file
	return e
}

// firstBad is the index of the first prediction that is not a
// probability, or -1.
func firstBad(p []float32) int {
	for i, v := range p {
		if !(v >= 0 && v <= 1) {
			return i
		}
	}
	return -1
}

// diagnose looks for the cause of example i's prediction v among its
// inputs: its dense features, its per-sample weights and the table rows it
// looks up. Only that example's rows are read, so a table of GBs is never
// scanned.
func diagnose(net *model.Network, b *model.Batch, i int, v float32, rd dataset.Reader) *NonFinitePredictionError {
	// b.Row is the batch's first row; rows skipped inside the batch would
	// shift the examples after them, so the row is exact only without skips.
	e := &NonFinitePredictionError{Row: b.Row + int64(i), Exact: rd.Stats().Skipped == 0, Value: v, Dense: -1, Tables: len(net.Tables)}
	for j, x := range b.Dense[i*b.NumDense : (i+1)*b.NumDense] {
		if !finite(x) {
			e.Dense, e.Col, e.Cause = j, j, x
			return e
		}
	}
	var buf []float32
	for k, t := range net.Tables {
		if k >= len(b.Offsets) {
			break
		}
		lo, hi := b.Offsets[k][i], b.Offsets[k][i+1]
		for j := lo; j < hi; j++ {
			e.Lookups++
			if b.Weights != nil && k < len(b.Weights) && b.Weights[k] != nil && !finite(b.Weights[k][j]) {
				e.Tensor, e.TableRow, e.SampleWeight, e.Cause = t.Name+".weight", b.Indices[k][j], true, b.Weights[k][j]
				return e
			}
			r := b.Indices[k][j]
			if r < 0 || r >= t.Rows {
				continue
			}
			row, ok := tableRow(t, r, &buf)
			if !ok {
				continue
			}
			for c, x := range row {
				if !finite(x) {
					e.Tensor, e.TableRow, e.Col, e.Cause = t.Name+".weight", r, c, x
					return e
				}
			}
		}
	}
	return e
}

// tableRow is row r of t as float32 values: the fp32 weights in place, or
// the row of a quantized table dequantized into *buf (a non-finite scale
// or bias shows as non-finite values).
func tableRow(t *model.Table, r int64, buf *[]float32) ([]float32, bool) {
	d := int64(t.Dim)
	switch k := t.Kernel.(type) {
	case nil:
		if int64(len(t.Weight)) < (r+1)*d {
			return nil, false
		}
		return t.Weight[r*d : (r+1)*d], true
	case kernels.RowTable:
		// A NaN code, scale or bias shows as NaN values.
		rows, dim := k.Shape()
		if r < 0 || r >= rows || dim != t.Dim || !k.Whole() {
			return nil, false
		}
		if cap(*buf) < t.Dim {
			*buf = make([]float32, t.Dim)
		}
		out := (*buf)[:t.Dim]
		k.DequantizeRows(r, 1, out)
		return out, true
	}
	return nil, false
}

func finite(x float32) bool { return math.Float32bits(x)&0x7f800000 != 0x7f800000 }
