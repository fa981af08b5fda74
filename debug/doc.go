// Package debug is rq's numeric debugger: it measures, layer by layer, how
// far a quantized network strays from the fp32 network it came from, and
// names the layers that cost accuracy, with a suggestion for each.
//
// Analyze streams batches through both networks once. Per layer (each FC,
// each table, the interaction, and the output prediction) it accumulates
// SQNR, relative L2 error, the largest absolute error and where it occurs,
// and cosine similarity, in two modes:
//
//   - isolated: the layer's own error given exact inputs. The fp32 input of
//     every FC layer (recorded by model.Recorder) is fed to the quantized
//     layer alone; a table pools the same indices from both tables; the
//     interaction recomputes the fp32 feature rows.
//   - propagated: the quantized network's own activations (an Observer on
//     its forward pass) against fp32's, so error carried in from upstream
//     counts too.
//
// Besides: the fraction of each static int8 FC input clipped by its
// calibrated range (measured on fp32 inputs), the SQNR of each FC layer's
// stored weights, and per quantized table the row-wise reconstruction error
// and the rows with the largest ranges (outliers).
//
// Culprits are ranked by each layer's own contribution to ΔNE: the fp32
// network with only that layer taken from the quantized one, replayed from
// the fp32 activations (model.Runner.Replay) so only the layer and what
// follows it is recomputed. Each culprit gets a suggestion from simple
// rules (see Suggest), applied in order:
//
//  1. harmless: ΔNE alone <= 0, nothing to do.
//  2. clipping: a static int8 input clipped at least ClipThreshold of its
//     values: recalibrate wider (--method minmax or percentile), use dynamic
//     activations, or fall back to fp16.
//  3. weights: int8 weight SQNR below WeightSQNRThreshold dB: per-channel
//     weights (when per-tensor) or fp16.
//  4. activations: other int8 layers (the input quantization is what is
//     left): dynamic per-row activations, or fp16.
//  5. table-outliers: a 4- or 2-bit table whose largest row range is at
//     least OutlierRatio times the median: int8 rows or greedy ranges.
//  6. table-bits: other quantized tables: the next wider format.
//  7. precision: fp16/bf16 layers: fp16 (for bf16) or fp32; MX FC layers: the
//     next rungs up (mxfp4 -> mxfp6_e2m3 or int8, the others int8), MX
//     activations dropped first.
//
// # HTML report (not yet written)
//
// The HTML report of rq debug --html is meant to be a function
//
//	func HTML(w io.Writer, r *Report) error
//
// drawing with gonum/plot, self-contained (inline SVG, no network): a bar
// chart of Report.Layers[i].Isolated.SQNR and .Propagated.SQNR per layer,
// the culprit table, and the fp32 vs quantized histograms of the worst
// tensor, Report.Worst (64 shared bins over one range; Worst.Layer is the
// quantized layer with the lowest isolated SQNR). Everything it needs is in
// Report, so it can be added without touching the analysis.
package debug
