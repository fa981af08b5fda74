package metrics

import (
	"math"
	"slices"
)

// Clip is the bound predictions are clipped to before taking logs.
const Clip = 1e-7

// Result is one evaluation's figures.
type Result struct {
	Examples int64   `json:"examples"`
	CTR      float64 `json:"ctr"`
	NE       float64 `json:"ne"`
	LogLoss  float64 `json:"logloss"`
	AUC      float64 `json:"auc"`
	// AUCErrorBound bounds |AUC - exact AUC| for an Accumulator's AUC,
	// which may order predictions more coarsely than float32 to keep its
	// memory bounded (see Accumulator); 0 means the AUC is exact.
	AUCErrorBound float64 `json:"auc_error_bound"`
	Calibration   float64 `json:"calibration"`
	Accuracy      float64 `json:"accuracy"`
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
