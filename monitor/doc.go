// Package monitor keeps a quantized model honest over its lifespan: for each
// new model snapshot and each window of fresh traffic it quantizes the
// snapshot with the production plan and ranges, measures the accuracy cost
// against the snapshot's own fp32, measures how far the window's activations
// have drifted from what calibration saw, and gives a verdict.
//
// # Measures (per snapshot × window)
//
//   - ΔNE (percent) and ΔAUC of the snapshot quantized with the production
//     plan and ranges against the same snapshot in fp32, on the window's rows.
//   - Clip rate, per FC layer with static int8 activations: the fraction of
//     the layer's fp32 inputs on the window outside the production range (the
//     plan's method's [lo, hi] in ranges.json). The table shows the largest.
//   - Drift, per such layer: the total-variation distance, in [0, 1], between
//     the window's fp32 input histogram and the production (calibration)
//     histogram. Both histograms have power-of-two bin widths anchored at 0,
//     so a coarser one's bins are unions of a finer one's: both are re-binned
//     exactly onto the coarsest common grid that spans both and has at most
//     DriftBins bins (few bins, so that two samples of the same distribution
//     are close: with 2048 bins sampling noise alone would read as drift).
//     TV = ½ Σ |p_i − q_i| over the normalized bins: the share of the mass
//     that would have to move. The table shows the largest.
//
// # Verdicts
//
//   - OK: the budget holds and neither clip rate nor drift crosses its
//     threshold; or the inputs drifted but the production ranges still meet
//     the budget while fresh ranges would not (the reason says so: keep the
//     ranges, watch the drift).
//   - RECALIBRATE: the budget breaks or the drift is high, and fresh ranges
//     calibrated on this very window (same plan) meet the budget: verified
//     by calibrating, quantizing and evaluating again.
//   - RESEARCH: the budget breaks and even fresh ranges do not meet it; the
//     plan itself must be searched again (rq search).
//
// Each verdict carries a reason naming the numbers behind it.
package monitor
