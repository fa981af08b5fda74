package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Clip is the bound predictions are clipped to before taking logs.
const Clip = 1e-7

// Result is one evaluation's figures.
type Result struct {
	Examples    int64   `json:"examples"`
	CTR         float64 `json:"ctr"`
	NE          float64 `json:"ne"`
	LogLoss     float64 `json:"logloss"`
	AUC         float64 `json:"auc"`
	Calibration float64 `json:"calibration"`
	Accuracy    float64 `json:"accuracy"`
}

// Accumulator streams predictions and labels; the zero value is ready to use.
// It is not safe for concurrent use.
type Accumulator struct {
	n       int64
	pos     int64
	sumLoss float64 // Kahan-compensated sum of per-example log loss
	comp    float64
	sumPred float64
	correct int64
	preds   []float32
	labels  []bool
}

// Add records a batch of predictions p with labels y (0 or 1).
func (a *Accumulator) Add(p []float32, y []float32) error {
	if len(p) != len(y) {
		return fmt.Errorf("metrics: %d predictions for %d labels", len(p), len(y))
	}
	for i, pi := range p {
		if math.IsNaN(float64(pi)) {
			return fmt.Errorf("metrics: prediction %d is NaN", a.n+int64(i))
		}
		label := y[i] >= 0.5
		q := min(max(float64(pi), Clip), 1-Clip)
		var l float64
		if label {
			l = -math.Log(q)
			a.pos++
		} else {
			l = -math.Log(1 - q)
		}
		// Kahan summation keeps the mean exact to ~1e-16 over billions of rows.
		yk := l - a.comp
		t := a.sumLoss + yk
		a.comp = (t - a.sumLoss) - yk
		a.sumLoss = t
		a.sumPred += float64(pi)
		if (pi >= 0.5) == label {
			a.correct++
		}
		a.preds = append(a.preds, pi)
		a.labels = append(a.labels, label)
	}
	a.n += int64(len(p))
	return nil
}

// Merge folds b's examples into a, as if they had been added after a's.
func (a *Accumulator) Merge(b *Accumulator) {
	a.n += b.n
	a.pos += b.pos
	a.sumLoss += b.sumLoss
	a.comp += b.comp
	a.sumPred += b.sumPred
	a.correct += b.correct
	a.preds = append(a.preds, b.preds...)
	a.labels = append(a.labels, b.labels...)
}

// Count is the number of examples added.
func (a *Accumulator) Count() int64 { return a.n }

// Predictions returns the predictions added so far, in order (aliased: do not modify).
func (a *Accumulator) Predictions() []float32 { return a.preds }

// ErrNoExamples is returned by Result when nothing was added.
var ErrNoExamples = errors.New("metrics: no examples")

// Result computes the figures. NE is undefined (NaN) when every label is the
// same, and AUC is NaN then too; both are reported as such rather than guessed.
func (a *Accumulator) Result() (Result, error) {
	if a.n == 0 {
		return Result{}, ErrNoExamples
	}
	n := float64(a.n)
	ctr := float64(a.pos) / n
	ll := (a.sumLoss - a.comp) / n
	r := Result{
		Examples:    a.n,
		CTR:         ctr,
		LogLoss:     ll,
		NE:          ll / Entropy(ctr),
		AUC:         AUC(a.preds, a.labels),
		Calibration: (a.sumPred / n) / ctr,
		Accuracy:    float64(a.correct) / n,
	}
	if a.pos == 0 {
		r.Calibration = math.Inf(1)
	}
	return r, nil
}

// Entropy is the binary entropy (in nats) of a Bernoulli(p); NaN at p = 0 or 1.
func Entropy(p float64) float64 {
	if p <= 0 || p >= 1 {
		return math.NaN()
	}
	return -(p*math.Log(p) + (1-p)*math.Log(1-p))
}

// AUC is the exact area under the ROC curve of scores p for labels y, with
// tied scores counted as half a correct ordering (the Mann-Whitney U
// statistic with average ranks). It is NaN when only one class is present.
func AUC(p []float32, y []bool) float64 {
	idx := make([]int32, len(p))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		switch pa, pb := p[a], p[b]; {
		case pa < pb:
			return -1
		case pa > pb:
			return 1
		}
		return 0
	})
	var pos, neg float64
	var rankSum float64 // sum of (1-based, tie-averaged) ranks of positives
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && p[idx[j]] == p[idx[i]] {
			j++
		}
		avg := float64(i+1+j) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if y[idx[k]] {
				pos++
				rankSum += avg
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}
