// Package search finds a per-layer precision plan that keeps a model within
// an accuracy budget while making it as small (or as fast) as it can: rq
// search.
//
// The search starts from the lowest rung of every layer's ladder (4-bit
// tables, int8 FC layers), measures each layer's own damage (sensitivity:
// that layer alone at its lowest rung), finds by bisection the shortest
// prefix of the most sensitive layers that must fall back to fp32, then
// walks each fallen-back layer up its ladder again one rung at a time
// (least sensitive first), keeping the cheapest rung that still meets the
// budget. Every evaluated plan is recorded in a Trace, so a search can be
// resumed and audited.
//
// Accuracy is judged with paired statistics: the plan and the fp32
// baseline run on the same rows, and a bootstrap over rows gives confidence
// intervals for ΔNE% and ΔAUC. A plan passes only when the interval's upper
// end of the damage is within the budget; when the point estimate is within
// the budget but the interval is not, the verdict is "inconclusive" (too few
// rows to decide), which is not a pass.
//
// The Evaluator interface separates the search from the model: NetEvaluator
// runs a real network on rows held in memory and caches every quantized
// layer, so the many plans a search tries never quantize a layer twice.
package search
